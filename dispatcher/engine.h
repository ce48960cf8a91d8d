/* engine.h - the Bayeux protocol state machine of bayeuxd.
 *
 * Sessions, the channel tree, per-session queues, held (parked) connects and
 * expiry. The engine does no I/O and reads no clock: the server hands it
 * parsed batches with the current time and gives it a send callback, so the
 * unit tests drive it with an injected clock and capture what it sends.
 *
 * Replies are not sent at once: the engine collects them in an outbox and
 * bx_engine_flush() first commits the store's transaction (group commit),
 * then sends them. So no reply leaves before what it depends on (a publish
 * that was queued for ack sessions, an ack batch number) is in the database.
 *
 * Ordering guarantee: messages of a session without the ack extension leave
 * its queue when a reply takes them; if that reply cannot be sent (responder
 * gone), they are put back in front of the queue for the next connect. With
 * the ack extension they stay queued, and are re-sent, until the client
 * acknowledges their batch (shared bayeux-wire.md §5.1).
 */
#ifndef BX_ENGINE_H
#define BX_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

#include "bayeux.h"
#include "store.h"
#include "util.h"

#define BX_CLIENTID_LEN 26   /* [0-9a-z], 134 bits from getrandom */

typedef struct {
    int64_t timeout_ms;            /* advice timeout: longest hold of a connect */
    int64_t interval_ms;           /* advice interval between connects */
    int64_t max_interval_ms;       /* a session without a connect for
                                      interval + max_interval expires */
    int64_t sweep_period_ms;       /* how often expiry is checked */
    int browser_binding;           /* a clientId is only accepted with the
                                      BAYEUX_BROWSER cookie it was created under */
    int duplicate_connect_status;  /* HTTP status that releases a held connect
                                      superseded by a newer one (CometD: 500) */
    int64_t max_queue;             /* messages queued per session; 0 = unbounded */
    int64_t max_queue_bytes;       /* bytes queued per session; 0 = unbounded
                                      (one message is always let in) */
    int overflow_end;              /* beyond max_queue or max_queue_bytes: 1
                                      ends the session, 0 drops the oldest */
    int64_t max_reply_bytes;       /* queued bytes one reply carries (at least
                                      one message, or one ack batch); the rest
                                      waits for the next connect; 0 = all */
    int64_t queue_memory;          /* budget of all sessions' queued messages,
                                      each counted once: beyond it the largest
                                      queues are trimmed (docs/security.md);
                                      0 = no budget */
    int ack;                       /* offer the ack extension */
    int timestamp;                 /* stamp deliveries with "timestamp" */
    const char *history;           /* "PATTERN COUNT [MAX-AGE], ..." or NULL;
                                      checked by bx_engine_history_check */
    int64_t (*wall_ms)(void);      /* wall clock (timesync, timestamps,
                                      history age); default bx_wall_ms */
    int64_t max_message_size;      /* bytes of one published message; 0: none */
    int64_t max_sessions_per_address; /* live sessions of one client
                                      address; 0: no limit */
    int64_t publish_rate;          /* publishes per second per session (a
                                      bucket of one second); 0: no limit */
    int64_t max_handshakes_per_request; /* handshakes in one request; the
                                      others are refused; 0: no limit */
    int64_t handshake_rate;        /* handshakes per second per client
                                      address; 0: no limit */
    int64_t handshake_burst;       /* handshakes an address may make at once */
    int64_t unconnected_expiry_ms; /* a session that never sent /meta/connect
                                      expires this long after its last message
                                      (capped at interval + max_interval); 0:
                                      like any other */
    const char *stats_channel;     /* publish stats there, or NULL */
    int64_t stats_interval_ms;     /* how often */
    int auth;                      /* handshake tokens: BX_AUTH_* */
    const char *auth_secret;       /* the tokens' HMAC key */
    size_t auth_secret_len;
    const char *rules;             /* channel-rules (rules.h), or NULL */
    int rules_closed;              /* channels no rule names: 1 nobody, 0 anyone */
    int64_t slice_work;            /* work of one turn (between two flushes)
                                      after which a request's remaining
                                      messages wait for the next turn, in
                                      messages queued for sessions (a
                                      message handled counts 8); 0: none */
} bx_engine_cfg_t;

enum { BX_AUTH_OFF = 0, BX_AUTH_OPTIONAL, BX_AUTH_REQUIRED };

/* CometD's defaults: timeout 20000, interval 0, maxInterval 10000, sweep 997,
 * browser binding on, duplicate connect 500; max_queue 10000 and 1 MiB per
 * session, drop oldest; replies of 512 KiB; 64 MiB of queued messages;
 * ack offered; no timestamps, no history; messages bounded by the request
 * size only, 1000 sessions per address, one handshake per request, 20
 * handshakes a second per address with bursts of 200, sessions that never
 * connected expire after 5 s, no publish rate limit, no stats channel. */
void bx_engine_cfg_defaults(bx_engine_cfg_t *cfg);

/* Where a reply goes: a responder (numbered by the server) and its request. */
typedef struct {
    uint32_t peer;
    uint64_t reqid;
} bx_origin_t;

/* Sends a reply. browser: cookie value to set, or NULL. body: a JSON array
 * (len > 0) for status 200, possibly empty otherwise. Returns 0 if the reply
 * was handed to the transport, -1 if it cannot reach the responder. */
typedef int (*bx_engine_send_fn)(void *ud, const bx_origin_t *to, int status,
                                 const char *browser, const char *body, size_t len);

typedef struct bx_engine bx_engine_t;

/* Why a message was refused, counted in the stats. */
enum {
    BX_REFUSED_MESSAGE_SIZE,       /* 413::message_too_large */
    BX_REFUSED_SESSIONS,           /* 403::too_many_sessions */
    BX_REFUSED_RATE,               /* 429::publish_rate_exceeded */
    BX_REFUSED_HANDSHAKE,          /* 403::handshake_denied */
    BX_REFUSED_SUBSCRIBE,          /* 403:denied_by_security_policy:subscribe_denied */
    BX_REFUSED_PUBLISH,            /* 403:denied_by_security_policy:publish_denied */
    BX_REFUSED_CREATE,             /* 403:denied_by_security_policy:create_denied */
    BX_REFUSED_HANDSHAKES,         /* 400::too_many_handshakes (in one request) */
    BX_REFUSED_HANDSHAKE_RATE,     /* 429::handshake_rate_exceeded */
    BX_REFUSAL_COUNT
};
/* Their names in stats: "message_too_large", "too_many_sessions"... */
extern const char *const bx_refusal_names[BX_REFUSAL_COUNT];

/* Something the application behind the server may want to hear of
 * (docs/backend.md, the event stream). Pointers are valid during the call. */
typedef struct {
    const char *kind;        /* "session.created", "session.removed",
                                "subscribe", "unsubscribe", "service",
                                "refused" */
    const char *client_id;
    const char *channel;     /* subscribe, unsubscribe, service */
    const char *reason;      /* session.removed: disconnect, expired,
                                kicked, overflow; refused: the Bayeux error */
    const char *address;     /* session.created */
    int ack;                 /* session.created: ack extension on */
    const char *id;          /* service: the message's id, NULL if none */
    json_object *data, *ext; /* service: lent, ext may be NULL */
} bx_event_t;

typedef void (*bx_engine_event_fn)(void *ud, const bx_event_t *ev);

/* cfg->history must have passed bx_engine_history_check, and cfg->rules
 * bx_rules_new; NULL is returned otherwise. */
bx_engine_t *bx_engine_new(const bx_engine_cfg_t *cfg, bx_engine_send_fn send, void *ud);

/* Checks a history specification: comma-separated "PATTERN COUNT [MAX-AGE]"
 * (COUNT 1..1000000, or 0 for no count limit when MAX-AGE is given; MAX-AGE
 * like 90s, 10m, 1h, 2d). Returns 0, or -1 with a message in err. */
int bx_engine_history_check(const char *spec, char *err, size_t errlen);

/* Attaches the store and loads what it holds: sessions (given a fresh
 * interval + max-interval to reconnect), subscriptions, unacknowledged
 * messages, histories. Everything the engine changes from then on is written
 * to it. Returns 0, or -1 if the store could not be read. */
int bx_engine_load(bx_engine_t *e, bx_store_t *st, int64_t now);

/* Commits the store, then sends every reply collected since the last flush.
 * Returns 0, or -1 if the commit failed: then nothing was sent, and the
 * caller must stop (the state in memory is ahead of the database). */
int bx_engine_flush(bx_engine_t *e, int64_t now);

/* Frees every session, channel and queued message without sending anything.
 * Call bx_engine_release_all first to answer held connects. */
void bx_engine_destroy(bx_engine_t **pe);

/* Handles one HTTP request's batch (an array of message objects, lent).
 * transport: BX_TRANSPORT_* from wire.h. browser: the request's
 * BAYEUX_BROWSER cookie, "" if none; addr: the client's address, "" if
 * unknown. Answers (at the next flush), or parks a /meta/connect until a
 * message arrives for its session or it times out. */
void bx_engine_request(bx_engine_t *e, const bx_origin_t *from, int transport,
                       const char *browser, const char *addr, json_object *batch,
                       int64_t now);

/* 1 while a request's work is split over turns: its remaining messages
 * are handled by bx_engine_resume, which the caller runs at the start of
 * every turn (before anything else) until this is 0, reading no new
 * requests meanwhile, and flushing after each turn as usual; the sweep,
 * the stats channel and the removal of overflowed sessions wait for it.
 * A bx_engine_request made meanwhile first finishes it. */
int bx_engine_busy(const bx_engine_t *e);
void bx_engine_resume(bx_engine_t *e, int64_t now);

/* The HTTP client of request `from` went away. If it was a held connect, it is
 * forgotten without a reply; if it was answered since the last flush, the
 * answer is not sent. Queued messages wait for the next connect. */
void bx_engine_cancel(bx_engine_t *e, const bx_origin_t *from, int64_t now);

/* Answers held connects whose time is up and removes expired sessions.
 * Returns the time (same clock as now) at which it next needs to run. */
int64_t bx_engine_tick(bx_engine_t *e, int64_t now);

/* Answers every held connect now (at shutdown), each with its queued messages
 * and a successful reply, so no HTTP request is left hanging. Flush after. */
void bx_engine_release_all(bx_engine_t *e, int64_t now);

typedef struct {
    size_t sessions;        /* live sessions */
    size_t channels;        /* channels and patterns with subscribers */
    size_t parked;          /* held connects */
    uint64_t published;     /* broadcast publishes accepted */
    uint64_t delivered;     /* messages that left in a reply */
    uint64_t dropped;       /* messages dropped by max_queue (or bytes) */
    uint64_t overflowed;    /* sessions ended by max_queue (end-session) */
    uint64_t evicted;       /* messages dropped, or sessions ended, to keep
                               within queue_memory */
    uint64_t queued_bytes;  /* memory of queued messages, each counted once,
                               and of every queue's entries (queue_memory
                               bounds it) */
    uint64_t queued_msgs;   /* queued messages, each counted once */
    uint64_t queue_max_bytes; /* the largest queue's bytes (its messages'
                               json and its entries: max_queue_bytes) */
    uint64_t expired;       /* sessions removed by expiry */
    uint64_t acked;         /* messages acknowledged by ack sessions */
    uint64_t replayed;      /* history messages queued by a replay */
    size_t histories;       /* channels keeping a history */
    uint64_t refused[BX_REFUSAL_COUNT]; /* by reason, bx_refusal_names */
    size_t memory;          /* bytes held by sessions, channels and indexes
                               (not counting queued message bodies) */
} bx_engine_stats_t;

void bx_engine_stats(const bx_engine_t *e, bx_engine_stats_t *st);

/* A responder refused a request itself with this HTTP status (400, 413,
 * 414, 405...): counted in the stats' http_refused. */
void bx_engine_note_http(bx_engine_t *e, int status);

/* bayeuxd's loop took us microseconds for one turn (requests, commit,
 * replies), cpu_us of them on the CPU: the longest of each are in the stats
 * (turn_max_us, turn_cpu_max_us; the first includes waiting for the disk
 * and for the CPU, the second only the loop's own work). */
void bx_engine_note_turn(bx_engine_t *e, int64_t us, int64_t cpu_us);

/* The stats as one JSON object (what the stats op and the stats channel
 * say; the store's figures included when there is one). */
void bx_engine_stats_json(const bx_engine_t *e, bx_buf_t *b);

/* ---- for backends (api.c; docs/backend.md) ---- */

void bx_engine_on_event(bx_engine_t *e, bx_engine_event_fn fn, void *ud);

typedef enum {
    BX_API_OK = 0,
    BX_API_UNKNOWN_CLIENT,
    BX_API_INVALID_CHANNEL,
    BX_API_CHANNEL_DENIED,
} bx_api_err_t;

/* Publishes data (and ext, may be NULL) to every subscriber of channel, as
 * a client's publish would. *reached, *seq: as bx_broadcast. */
bx_api_err_t bx_engine_publish(bx_engine_t *e, const char *channel, json_object *data,
                               json_object *ext, size_t *reached, uint64_t *seq);

/* Queues a message for one session. id (may be NULL) and successful (-1:
 * absent, 0, 1) become fields of the message: a remote call's answer. */
bx_api_err_t bx_engine_deliver(bx_engine_t *e, const char *client_id, const char *channel,
                               json_object *data, const char *id, int successful,
                               json_object *ext);

/* Ends a session (reason "kicked"); its held connect gets reconnect none. */
bx_api_err_t bx_engine_kick(bx_engine_t *e, const char *client_id, int64_t now);

typedef struct {
    const char *client_id;
    int ack;
    int64_t created;
    uint32_t subscriptions;
    uint32_t queued;
    int connected;           /* a connect is held */
    const char *address;
} bx_session_info_t;

typedef void (*bx_session_fn)(void *ud, const bx_session_info_t *si);
typedef void (*bx_name_fn)(void *ud, const char *name);

/* Calls fn for each session, at most limit (0: all). Returns the count. */
size_t bx_engine_sessions(bx_engine_t *e, size_t limit, bx_session_fn fn, void *ud);
/* One session's figures (fn) and subscriptions (sub); either may be NULL.
 * BX_API_UNKNOWN_CLIENT if there is no such session. */
bx_api_err_t bx_engine_session(bx_engine_t *e, const char *client_id, bx_session_fn fn,
                               bx_name_fn sub, void *ud);
/* The sessions a publish to channel (a plain name) would reach. */
bx_api_err_t bx_engine_subscribers(bx_engine_t *e, const char *channel, bx_name_fn fn,
                                   void *ud, size_t *count);
/* A copy of the database as of now into a new file (bx_store_backup).
 * Returns 0, or -1 with the reason in err (no database, path exists...). */
int bx_engine_backup(bx_engine_t *e, const char *path, char *err, size_t errlen);

#endif
