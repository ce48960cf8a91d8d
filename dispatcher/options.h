/* options.h - bayeuxd's settings: defaults, config file keys and flags. */
#ifndef BX_OPTIONS_H
#define BX_OPTIONS_H

#include <stdint.h>

#include "config.h"
#include "engine.h"

#define BX_DEFAULT_DISPATCHER "ipc:///tmp/bayeux-fcgi/dispatcher.sock"
#define BX_DEFAULT_APP "ipc:///tmp/bayeux-fcgi/app.sock"
#define BX_DEFAULT_EVENTS "ipc:///tmp/bayeux-fcgi/events.sock"
#ifndef BX_LOCALSTATEDIR
#define BX_LOCALSTATEDIR "/var"
#endif
#define BX_DEFAULT_DATABASE BX_LOCALSTATEDIR "/lib/bayeux-fcgi/bayeuxd.db"

typedef struct {
    char *dispatcher;              /* ROUTER endpoint to bind */
    int64_t timeout, interval, max_interval, sweep_period; /* ms */
    int browser_binding;
    int64_t duplicate_connect_status;
    int64_t max_queue;
    int64_t max_queue_bytes;
    int64_t max_reply_bytes;
    int64_t queue_memory;
    char *queue_overflow;          /* "drop-oldest" or "end-session" */
    int ack, timestamp;
    char *history;                 /* "PATTERN COUNT [MAX-AGE], ..." */
    char *database;                /* SQLite file, or ":memory:" */
    char *synchronous;             /* "normal" or "full" */
    char *app_endpoint;            /* backends' commands, "" for none */
    char *events_endpoint;         /* the event stream, "" for none */
    char *app_mode;                /* octal mode of their ipc:// files */
    char *auth;                    /* "off", "optional" or "required" */
    char *auth_secret;             /* the tokens' key, or "" */
    char *auth_secret_file;        /* or a file holding it, or "" */
    char *channel_default;         /* "open" or "closed" */
    char *channel_rules;           /* rules.h */
    int64_t max_message_size, max_sessions_per_address, publish_rate;
    int64_t max_handshakes_per_request, handshake_rate, handshake_burst;
    int64_t unconnected_expiry;    /* ms */
    char *stats_channel;           /* "" for none */
    int64_t stats_interval;        /* ms */
    char secret[512];              /* the key, read by bx_dopts_check */
    size_t secret_len;
    int64_t max_body, max_messages, max_depth;
    char *log;                     /* "-" stderr, "syslog", or a file */
    char *log_level;
    char *pidfile;                 /* "" for none */
} bx_dopts_t;

/* Fills o with the defaults and returns the option table bound to o (valid
 * while o lives). */
const bx_option_t *bx_dopts_init(bx_dopts_t *o);

/* Checks what the table cannot (enumerations, the history and channel
 * rules) and reads the token key into o->secret. Returns 0, or -1 with a
 * message in err. */
int bx_dopts_check(bx_dopts_t *o, char *err, size_t errlen);

/* Keys of bayeux-fcgi that a shared config file may hold. */
extern const char *const bx_dopts_foreign[];

/* Copies the engine's part of o into cfg. */
void bx_dopts_engine_cfg(const bx_dopts_t *o, bx_engine_cfg_t *cfg);

#endif
