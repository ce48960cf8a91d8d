/* options.c - see options.h. */
#include "options.h"

#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>

#include "bayeux.h"
#include "channel.h"
#include "rules.h"
#include "token.h"

const char *const bx_dopts_foreign[] = {
    "listen", "listen-mode", "listen-backlog", "workers", "request-timeout",
    "cors-origins", "cookie-samesite", "cookie-path", NULL
};

const bx_option_t *bx_dopts_init(bx_dopts_t *o)
{
    static bx_option_t table[48];
    bx_engine_cfg_t d;
    bx_engine_cfg_defaults(&d);
    memset(o, 0, sizeof *o);
    o->dispatcher = (char *)BX_DEFAULT_DISPATCHER;
    o->timeout = d.timeout_ms;
    o->interval = d.interval_ms;
    o->max_interval = d.max_interval_ms;
    o->sweep_period = d.sweep_period_ms;
    o->browser_binding = d.browser_binding;
    o->duplicate_connect_status = d.duplicate_connect_status;
    o->max_queue = d.max_queue;
    o->max_queue_bytes = d.max_queue_bytes;
    o->max_reply_bytes = d.max_reply_bytes;
    o->queue_memory = d.queue_memory;
    o->queue_overflow = (char *)"drop-oldest";
    o->ack = d.ack;
    o->timestamp = d.timestamp;
    o->history = (char *)"";
    o->database = (char *)BX_DEFAULT_DATABASE;
    o->synchronous = (char *)"normal";
    o->app_endpoint = (char *)BX_DEFAULT_APP;
    o->events_endpoint = (char *)BX_DEFAULT_EVENTS;
    o->app_mode = (char *)"0660";
    o->auth = (char *)"off";
    o->auth_secret = (char *)"";
    o->auth_secret_file = (char *)"";
    o->channel_default = (char *)"open";
    o->channel_rules = (char *)"";
    o->max_message_size = d.max_message_size;
    o->max_sessions_per_address = d.max_sessions_per_address;
    o->publish_rate = d.publish_rate;
    o->max_handshakes_per_request = d.max_handshakes_per_request;
    o->handshake_rate = d.handshake_rate;
    o->handshake_burst = d.handshake_burst;
    o->unconnected_expiry = d.unconnected_expiry_ms;
    o->stats_channel = (char *)"";
    o->stats_interval = d.stats_interval_ms;
    o->max_body = BX_DEFAULT_MAX_BODY;
    o->max_messages = BX_DEFAULT_MAX_MESSAGES;
    o->max_depth = BX_DEFAULT_MAX_DEPTH;
    o->log = (char *)"-";
    o->log_level = (char *)"info";
    o->pidfile = (char *)"";

    const bx_option_t t[] = {
        { "dispatcher", BX_OPT_STR, &o->dispatcher, 0, 0,
          "ZeroMQ endpoint the responders connect to (ipc:// or tcp://)" },
        { "timeout", BX_OPT_MS, &o->timeout, 0, 600000,
          "advice timeout: longest hold of a /meta/connect" },
        { "interval", BX_OPT_MS, &o->interval, 0, 600000,
          "advice interval: pause the client makes between connects" },
        { "max-interval", BX_OPT_MS, &o->max_interval, 1000, 86400000,
          "a session with no connect for interval + max-interval expires" },
        { "sweep-period", BX_OPT_MS, &o->sweep_period, 10, 60000,
          "how often expired sessions are looked for" },
        { "browser-binding", BX_OPT_BOOL, &o->browser_binding, 0, 1,
          "accept a clientId only with the BAYEUX_BROWSER cookie it was made under" },
        { "duplicate-connect-status", BX_OPT_INT, &o->duplicate_connect_status, 400, 599,
          "HTTP status that releases a held connect superseded by a newer one" },
        { "max-queue", BX_OPT_INT, &o->max_queue, 0, 100000000,
          "messages queued (or unacknowledged) per session (0: no limit)" },
        { "max-queue-bytes", BX_OPT_SIZE, &o->max_queue_bytes, 0, (int64_t)1 << 40,
          "bytes queued (or unacknowledged) per session (0: no limit)" },
        { "queue-overflow", BX_OPT_STR, &o->queue_overflow, 0, 0,
          "beyond max-queue or max-queue-bytes: drop-oldest, or end-session (the "
          "client handshakes again)" },
        { "max-reply-bytes", BX_OPT_SIZE, &o->max_reply_bytes, 0, (int64_t)1 << 40,
          "queued bytes one reply carries, at least one message; the rest goes in the "
          "next (0: no limit)" },
        { "queue-memory", BX_OPT_SIZE, &o->queue_memory, 0, (int64_t)1 << 40,
          "memory for all queued messages; beyond it the largest queues are trimmed "
          "(0: no limit)" },
        { "ack", BX_OPT_BOOL, &o->ack, 0, 1,
          "offer the ack extension: nothing is lost between a client and bayeuxd" },
        { "history", BX_OPT_STR, &o->history, 0, 0,
          "channels that keep messages for replay: \"PATTERN COUNT [MAX-AGE], ...\"" },
        { "timestamp", BX_OPT_BOOL, &o->timestamp, 0, 1,
          "stamp every delivery with an RFC 1123 \"timestamp\"" },
        { "database", BX_OPT_STR, &o->database, 0, 0,
          "SQLite file for sessions, unacknowledged messages and histories "
          "(:memory: keeps nothing)" },
        { "synchronous", BX_OPT_STR, &o->synchronous, 0, 0,
          "normal: survives a crash of bayeuxd; full: survives a power loss too" },
        { "app-endpoint", BX_OPT_STR, &o->app_endpoint, 0, 0,
          "ZeroMQ endpoint for backends' commands (docs/backend.md); \"\" for none" },
        { "events-endpoint", BX_OPT_STR, &o->events_endpoint, 0, 0,
          "ZeroMQ endpoint of the event stream for backends; \"\" for none" },
        { "app-mode", BX_OPT_STR, &o->app_mode, 0, 0,
          "file mode (octal) of the ipc:// app and events sockets" },
        { "auth", BX_OPT_STR, &o->auth, 0, 0,
          "handshake tokens (docs/security.md): off, optional, or required" },
        { "auth-secret", BX_OPT_STR, &o->auth_secret, 0, 0,
          "the key tokens are signed with (16 bytes or more)" },
        { "auth-secret-file", BX_OPT_STR, &o->auth_secret_file, 0, 0,
          "or a file holding it (a trailing newline is not part of it)" },
        { "channel-default", BX_OPT_STR, &o->channel_default, 0, 0,
          "channels no rule names: open (anyone) or closed (nobody)" },
        { "channel-rules", BX_OPT_STR, &o->channel_rules, 0, 0,
          "\"PATTERN subscribe=WHO publish=WHO create=WHO; ...\" (docs/security.md)" },
        { "max-message-size", BX_OPT_SIZE, &o->max_message_size, 0, 64 << 20,
          "largest message a client may publish, as JSON (0: max-body only)" },
        { "max-sessions-per-address", BX_OPT_INT, &o->max_sessions_per_address, 0, 100000000,
          "live sessions one client address may hold (0: no limit)" },
        { "max-handshakes-per-request", BX_OPT_INT, &o->max_handshakes_per_request, 0,
          1000000, "handshakes one request may carry; the others are refused (0: no limit)" },
        { "handshake-rate", BX_OPT_INT, &o->handshake_rate, 0, 1000000,
          "handshakes per second one client address may make (0: no limit)" },
        { "handshake-burst", BX_OPT_INT, &o->handshake_burst, 1, 100000000,
          "handshakes one client address may make at once, before handshake-rate counts" },
        { "unconnected-expiry", BX_OPT_MS, &o->unconnected_expiry, 0, 86400000,
          "a session that never sent /meta/connect expires this long after its last "
          "message (0: as any session)" },
        { "publish-rate", BX_OPT_INT, &o->publish_rate, 0, 1000000,
          "publishes per second one session may make (0: no limit)" },
        { "stats-channel", BX_OPT_STR, &o->stats_channel, 0, 0,
          "publish the stats on this channel for a dashboard (\"\": none)" },
        { "stats-interval", BX_OPT_MS, &o->stats_interval, 100, 86400000,
          "how often the stats channel hears" },
        { "max-body", BX_OPT_SIZE, &o->max_body, 64, 64 << 20,
          "largest request body (bytes, k/M suffixes)" },
        { "max-messages", BX_OPT_INT, &o->max_messages, 1, 1000000,
          "most messages in one request" },
        { "max-depth", BX_OPT_INT, &o->max_depth, 2, 1000, "deepest JSON nesting" },
        { "log", BX_OPT_STR, &o->log, 0, 0, "log to - (stderr), syslog, or a file" },
        { "log-level", BX_OPT_STR, &o->log_level, 0, 0, "error, warn, info or debug" },
        { "pidfile", BX_OPT_STR, &o->pidfile, 0, 0, "write the pid to this file" },
        { NULL, 0, NULL, 0, 0, NULL }
    };
    memcpy(table, t, sizeof t);
    return table;
}

/* Reads the token key into o->secret; with auth on, it must have 16 bytes
 * or more. */
static int s_secret(bx_dopts_t *o, char *err, size_t errlen)
{
    if (bx_token_secret_load(o->auth_secret, o->auth_secret_file, o->secret, sizeof o->secret,
                             &o->secret_len, err, errlen) != 0)
        return -1;
    if (strcmp(o->auth, "off") != 0 && strcmp(o->auth, "optional") != 0 &&
        strcmp(o->auth, "required") != 0) {
        snprintf(err, errlen, "auth: expected off, optional or required, not \"%s\"", o->auth);
        return -1;
    }
    if (strcmp(o->auth, "off") != 0 && o->secret_len < 16) {
        snprintf(err, errlen, "auth = %s needs auth-secret or auth-secret-file of 16 bytes or "
                 "more (head -c 32 /dev/urandom | base64)", o->auth);
        return -1;
    }
    return 0;
}

int bx_dopts_check(bx_dopts_t *o, char *err, size_t errlen)
{
    if (strcmp(o->queue_overflow, "drop-oldest") != 0 &&
        strcmp(o->queue_overflow, "end-session") != 0) {
        snprintf(err, errlen, "queue-overflow: expected drop-oldest or end-session, not \"%s\"",
                 o->queue_overflow);
        return -1;
    }
    if (strcmp(o->synchronous, "normal") != 0 && strcmp(o->synchronous, "full") != 0) {
        snprintf(err, errlen, "synchronous: expected normal or full, not \"%s\"",
                 o->synchronous);
        return -1;
    }
    char *end;
    long mode = strtol(o->app_mode, &end, 8);
    if (!*o->app_mode || *end || mode < 0 || mode > 0777) {
        snprintf(err, errlen, "app-mode: expected an octal file mode such as 0660, not \"%s\"",
                 o->app_mode);
        return -1;
    }
    if (strcmp(o->channel_default, "open") != 0 && strcmp(o->channel_default, "closed") != 0) {
        snprintf(err, errlen, "channel-default: expected open or closed, not \"%s\"",
                 o->channel_default);
        return -1;
    }
    bx_rules_t *rules = bx_rules_new(o->channel_rules, 0, err, errlen);
    if (!rules)
        return -1;
    bx_rules_free(&rules);
    if (*o->stats_channel && bx_channel_parse(o->stats_channel, strlen(o->stats_channel)) !=
                                 BX_CHAN_NAME) {
        snprintf(err, errlen, "stats-channel: \"%s\" is not a channel name", o->stats_channel);
        return -1;
    }
    if (s_secret(o, err, errlen) != 0)
        return -1;
    if (!*o->database) {
        snprintf(err, errlen, "database: give a file, or :memory:");
        return -1;
    }
    return bx_engine_history_check(o->history, err, errlen);
}

void bx_dopts_engine_cfg(const bx_dopts_t *o, bx_engine_cfg_t *cfg)
{
    bx_engine_cfg_defaults(cfg);
    cfg->timeout_ms = o->timeout;
    cfg->interval_ms = o->interval;
    cfg->max_interval_ms = o->max_interval;
    cfg->sweep_period_ms = o->sweep_period;
    cfg->browser_binding = o->browser_binding;
    cfg->duplicate_connect_status = (int)o->duplicate_connect_status;
    cfg->max_queue = o->max_queue;
    cfg->max_queue_bytes = o->max_queue_bytes;
    cfg->max_reply_bytes = o->max_reply_bytes;
    cfg->queue_memory = o->queue_memory;
    cfg->overflow_end = strcmp(o->queue_overflow, "end-session") == 0;
    cfg->ack = o->ack;
    cfg->timestamp = o->timestamp;
    cfg->history = o->history;
    cfg->max_message_size = o->max_message_size;
    cfg->max_sessions_per_address = o->max_sessions_per_address;
    cfg->publish_rate = o->publish_rate;
    cfg->max_handshakes_per_request = o->max_handshakes_per_request;
    cfg->handshake_rate = o->handshake_rate;
    cfg->handshake_burst = o->handshake_burst;
    cfg->unconnected_expiry_ms = o->unconnected_expiry;
    cfg->stats_channel = *o->stats_channel ? o->stats_channel : NULL;
    cfg->stats_interval_ms = o->stats_interval;
    cfg->auth = strcmp(o->auth, "required") == 0   ? BX_AUTH_REQUIRED
                : strcmp(o->auth, "optional") == 0 ? BX_AUTH_OPTIONAL
                                                   : BX_AUTH_OFF;
    cfg->auth_secret = o->secret;
    cfg->auth_secret_len = o->secret_len;
    cfg->rules = o->channel_rules;
    cfg->rules_closed = strcmp(o->channel_default, "closed") == 0;
}
