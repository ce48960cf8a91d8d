/* engine_int.h - the engine's structures, shared by engine.c (protocol) and
 * state.c (sessions, channels, timers). Not for use outside dispatcher/.
 */
#ifndef BX_ENGINE_INT_H
#define BX_ENGINE_INT_H

#include <stdint.h>

#include "bayeux.h"
#include "engine.h"
#include "map.h"
#include "msg.h"
#include "rules.h"
#include "store.h"
#include "util.h"

typedef struct bx_session bx_session_t;
struct bx_req;
typedef struct bx_chan bx_chan_t;

/* One subscription of a session: the channel and the session's position in
 * that channel's subscriber array, so unsubscribing is O(1) there. */
typedef struct {
    bx_chan_t *ch;
    uint32_t pos;
} bx_sub_t;

/* A channel name or pattern that has at least one subscriber. */
struct bx_chan {
    char *name;                 /* owned, NUL-terminated */
    size_t len;
    bx_session_t **subs;        /* subscribers; owned array, borrowed sessions */
    uint32_t nsubs, capsubs;
};

enum { BX_SESSION_HANDSHAKEN = 1, BX_SESSION_CONNECTED = 2 };

/* The timesync extension's figures of one meta message (CometD
 * TimesyncExtension): what its reply's ext.timesync must say. */
typedef struct {
    uint8_t on;          /* the message asked, and the reply answers */
    uint8_t has_a;       /* new style: "a" is sent */
    int64_t tc;          /* client time of the request */
    int64_t ts;          /* server time it arrived */
    int64_t a;           /* accuracy: (tc + o + l) - ts */
} bx_tsync_t;

struct bx_session {
    char id[BX_CLIENTID_LEN + 1];       /* clientId */
    char browser[BX_BROWSER_LEN + 1];   /* BAYEUX_BROWSER it is bound to */
    uint8_t state;                      /* BX_SESSION_* */
    uint8_t parked;                     /* a connect is held */
    uint8_t park_advice;                /* its reply must carry advice */
    uint8_t in_wake;                    /* on the engine's wake list */
    uint8_t ack;                        /* the ack extension is on */
    uint8_t doomed;                     /* to be removed (queue overflow) */
    uint64_t batch;                     /* ack: the open batch, the number
                                           messages queued now are tagged with */
    uint64_t open_bytes;                /* ack: bytes queued in the open batch */
    int64_t created;                    /* wall clock, for the database */
    char address[48];                   /* the client's address at handshake */
    char *subject;                      /* the token's subject, NULL if anonymous */
    bx_bucket_t publish_bucket;         /* publish-rate */
    uint64_t dropped;                   /* messages its bounds dropped */
    bx_tsync_t park_ts;                 /* timesync of the held connect */
    bx_queue_t queue;                   /* messages waiting for a reply */
    bx_origin_t park_origin;            /* the held connect's request */
    int64_t park_deadline;              /* when it is answered anyway */
    uint32_t heap_idx;                  /* position in the timer heap */
    char park_id[BX_ID_MAX + 1];        /* the held connect's message id */
    int64_t expires;                    /* removed at this time unless parked */
    uint64_t mark;                      /* last fan-out that reached it */
    bx_sub_t *subs;                     /* owned array of subscriptions */
    uint32_t nsubs, capsubs;
};

/* A reply waiting for the group commit (bx_engine_flush). */
typedef struct {
    bx_origin_t to;
    int status;
    char browser[BX_BROWSER_LEN + 1];   /* cookie to set, "" if none */
    char *body;                         /* owned */
    size_t len;
    char session[BX_CLIENTID_LEN + 1];  /* whose messages it carries */
    bx_msg_t **taken;                   /* those taken from a queue (not
                                           ack): put back if unsent */
    uint32_t ntaken;
    uint32_t nsent;                     /* messages it carries */
    uint8_t cancelled;                  /* its client went away: not sent,
                                           what it took goes back */
} bx_out_t;

/* A history rule from the configuration. */
typedef struct {
    char *pattern;
    uint32_t count;        /* most messages kept; 0 = no count limit */
    int64_t max_age_ms;    /* oldest kept; 0 = no age limit */
} bx_hrule_t;

/* A channel that keeps a history: a ring of its last messages. */
typedef struct {
    char *name;
    const bx_hrule_t *rule;
    uint64_t seq;          /* last sequence number given out */
    bx_queue_t q;          /* the messages kept, oldest first; tag = seq */
} bx_hist_t;

struct bx_engine {
    bx_engine_cfg_t cfg;
    bx_store_t *store;         /* NULL: nothing is persisted */
    bx_engine_send_fn send;
    void *ud;
    bx_engine_event_fn event;  /* the event stream, or NULL */
    void *event_ud;
    bx_map_t *sessions;        /* clientId -> bx_session_t (owned) */
    bx_map_t *channels;        /* name or pattern -> bx_chan_t (owned) */
    bx_map_t *parked;          /* origin bytes -> bx_session_t (borrowed) */
    bx_session_t **heap;       /* min-heap of parked sessions by deadline */
    uint32_t nheap, capheap;
    bx_session_t **wake;       /* parked sessions that got messages */
    uint32_t nwake, capwake;
    uint64_t fanout_seq;       /* numbers fan-outs for once-only delivery */
    int64_t next_sweep;
    bx_out_t *out;             /* replies waiting for the next flush */
    uint32_t nout, capout;
    bx_session_t **doomed;     /* sessions to end after a fan-out */
    uint32_t ndoomed, capdoomed;
    uint64_t next_msgid;       /* id of the next published message */
    bx_hrule_t *hrules;        /* history rules, in configuration order */
    size_t nhrules;
    bx_map_t *hist;            /* channel name -> bx_hist_t (owned) */
    uint64_t published, delivered, dropped, overflowed, expired, acked, replayed;
    uint64_t evicted;          /* messages and sessions queue_memory took */
    int64_t turn_max_us;       /* the longest turn of bayeuxd's loop */
    struct bx_req *pending;    /* a request whose work goes on next turn */
    uint64_t work;             /* work done this turn (cfg.slice_work) */
    uint8_t relieved;          /* queue_memory was enforced this turn */
    int64_t turn_cpu_max_us;   /* the most CPU one turn used */
    bx_qacct_t qacct;          /* every session queue's messages, once each */
    uint64_t refused[BX_REFUSAL_COUNT];
    uint64_t http_refused[5];  /* by the responders: 400, 405, 413, 414, other */
    bx_map_t *addresses;       /* client address -> live sessions (uintptr) */
    bx_rules_t *rules;         /* channel rules (always set) */
    bx_map_t *hs_buckets;      /* client address -> handshake bucket (admit.c,
                                  owned), NULL until the first handshake */
    int64_t next_stats;        /* when the stats channel hears next */
};

/* admit.c: 1 if the address may handshake now (takes a token of its
 * handshake-rate bucket), 0 if its rate is exceeded. */
int bx_admit_handshake(bx_engine_t *e, const char *addr, int64_t now);
/* Forgets the buckets that are full again. */
void bx_admit_sweep(bx_engine_t *e, int64_t now);
/* Addresses with a bucket (for the unit tests). */
size_t bx_admit_addresses(const bx_engine_t *e);
void bx_admit_free(bx_engine_t *e);

/* state.c: sessions. id: the clientId to restore, or NULL for a new one. */
bx_session_t *bx_state_session_new(bx_engine_t *e, const char *browser, const char *id);
bx_session_t *bx_state_session_get(bx_engine_t *e, const char *id);
/* Unsubscribes, forgets a held connect without answering it, frees. */
void bx_state_session_free(bx_engine_t *e, bx_session_t **ps);

/* state.c: the client address of a new session, counted per address.
 * Returns the sessions that address now has. */
size_t bx_state_address(bx_engine_t *e, bx_session_t *s, const char *addr);
size_t bx_state_address_count(bx_engine_t *e, const char *addr);

/* state.c: subscriptions. Return 0, or 1 when nothing changed. */
int bx_state_subscribe(bx_engine_t *e, bx_session_t *s, const char *name, size_t len);
int bx_state_unsubscribe(bx_engine_t *e, bx_session_t *s, const char *name, size_t len);

/* state.c: queues a message (bx_enqueue) for every session
 * subscribed to a pattern that matches name, once per session; parked
 * sessions go on the wake list. Returns how many sessions it reached. */
size_t bx_state_fanout(bx_engine_t *e, const char *name, bx_msg_t *m);
/* state.c: puts a parked session on the wake list. */
void bx_state_wake(bx_engine_t *e, bx_session_t *s);

/* state.c: held connects */
void bx_state_park(bx_engine_t *e, bx_session_t *s, const bx_origin_t *o, int64_t deadline);
void bx_state_unpark(bx_engine_t *e, bx_session_t *s);
bx_session_t *bx_state_parked_by_origin(bx_engine_t *e, const bx_origin_t *o);
/* The parked session with the earliest deadline, or NULL. */
bx_session_t *bx_state_heap_top(bx_engine_t *e);

/* extension.c: message building besides the protocol's own fields. */
int bx_json_is_number(json_object *v);
/* The timesync extension's question in a meta message (CometD TimesyncExtension). */
void bx_ext_tsync_in(json_object *msg, int64_t wall, bx_tsync_t *t);
/* Appends ,"timesync":{...} if t answers. */
void bx_ext_members(bx_buf_t *b, const bx_tsync_t *t, int64_t wall);
/* Appends ,"ext":{...} with what applies: ack (JSON text), timesync, replay
 * (object members, without braces). */
void bx_ext(bx_buf_t *b, const char *ack, const bx_tsync_t *t, int64_t wall, const char *replay,
            size_t rlen);
void bx_rfc1123(int64_t wall_ms, char *out, size_t len);
/* The message as subscribers get it, numbered for the store. */
bx_msg_t *bx_delivery(bx_engine_t *e, json_object *msg, uint64_t seq, int64_t wall);

/* outbox.c: replies wait for bx_engine_flush. */
void bx_advice(bx_buf_t *b, const bx_engine_cfg_t *cfg, const char *reconnect);
void bx_out_free(bx_out_t *o);
/* Queues a reply; takes body's buffer (NULL: no body). */
bx_out_t *bx_out(bx_engine_t *e, const bx_origin_t *to, int status, const char *browser,
                 bx_buf_t *body);
/* Queues "[ queued messages of s, extra ]" (s may be NULL). */
void bx_out_body(bx_engine_t *e, const bx_origin_t *to, const char *browser, bx_session_t *s,
                 const char *extra, size_t elen);
/* Ack: the batch number a connect reply of s carries now, closing what it
 * carries; bx_ack_none: the number of a reply that carries none of it. */
uint64_t bx_ack_batch(bx_engine_t *e, bx_session_t *s);
uint64_t bx_ack_none(const bx_session_t *s);
const char *bx_ack_member(bx_engine_t *e, bx_session_t *s, char *buf, size_t len);
/* Answers the held connect of s with what is queued; reconnect: advice or NULL. */
void bx_answer_parked(bx_engine_t *e, bx_session_t *s, int64_t now, const char *reconnect);
/* Ends a session (database rows included); why: for the log. */
void bx_remove_session(bx_engine_t *e, bx_session_t *s, int64_t now, const char *why,
                       const char *reconnect);
/* Ends the sessions a fan-out found over max_queue. */
void bx_reap_doomed(bx_engine_t *e, int64_t now);

/* engine.c: publishes msg (an object with channel, data, ext...) to every
 * subscriber of channel, keeping it in the channel's history. Returns the
 * sessions reached; *seq (may be NULL) gets its ext.seq or 0. */
size_t bx_broadcast(bx_engine_t *e, const char *channel, json_object *msg, int64_t wall,
                    uint64_t *seq);

/* engine.c: answers the held connects of sessions that got messages. */
void bx_wake(bx_engine_t *e, int64_t now);

/* squeue.c: queues m for s within its bounds (max_queue, max_queue_bytes:
 * the oldest dropped or the session doomed), in the ack batch it belongs to
 * (batches are closed at max_reply_bytes), its row written for an ack
 * session; then keeps all queues within queue_memory. */
void bx_enqueue(bx_engine_t *e, bx_session_t *s, bx_msg_t *m);
/* squeue.c: how many of the oldest queued messages of s the next reply
 * carries: as many as fit in max_reply_bytes, at least one; for an ack
 * session whole batches tagged <= upto only, at least the first. *last: the
 * tag of the last one carried (may be NULL). */
uint32_t bx_reply_count(const bx_engine_t *e, const bx_session_t *s, uint64_t upto,
                        uint64_t *last);
/* squeue.c: ends s after the current fan-out (bx_reap_doomed). */
void bx_doom(bx_engine_t *e, bx_session_t *s);

/* persist.c: m was queued for the ack session s under batch: its rows. */
void bx_persist_queued(bx_engine_t *e, const bx_session_t *s, bx_msg_t *m, uint64_t batch);
/* persist.c: m, queued for s, was dropped unsent (bounds, memory budget). */
void bx_persist_dropped(bx_engine_t *e, const bx_session_t *s, bx_msg_t *m);
/* persist.c: the client acknowledged batch: drops what was sent up to it. */
void bx_persist_ack(bx_engine_t *e, bx_session_t *s, uint64_t batch);
/* persist.c: a message reference that was a database row is gone. */
void bx_persist_unstore(bx_engine_t *e, bx_msg_t *m);
/* persist.c: the database side of sessions and subscriptions. */
void bx_persist_session_new(bx_engine_t *e, const bx_session_t *s);
void bx_persist_session_batch(bx_engine_t *e, const bx_session_t *s);
void bx_persist_session_subject(bx_engine_t *e, const bx_session_t *s);
void bx_persist_session_del(bx_engine_t *e, bx_session_t *s);
void bx_persist_sub(bx_engine_t *e, const bx_session_t *s, const char *name, int add);
int bx_persist_load(bx_engine_t *e, int64_t now);

/* history.c */
int bx_history_init(bx_engine_t *e);      /* parses cfg.history */
void bx_history_free(bx_engine_t *e);
/* The history of channel name, created if a rule matches; NULL if none. */
bx_hist_t *bx_history_for(bx_engine_t *e, const char *name);
bx_hist_t *bx_history_restore(bx_engine_t *e, const char *name, uint64_t seq);
/* Appends m with its seq and trims by count; store: write the rows. */
void bx_history_append(bx_engine_t *e, bx_hist_t *h, bx_msg_t *m, uint64_t seq, int store);
/* Trims every history by age. */
void bx_history_sweep(bx_engine_t *e, int64_t wall);
/* Replays, for a subscribe of s to names[0..n), what ext.replay asks;
 * writes the reply's "replay" ext member (without braces) into out. */
void bx_history_replay(bx_engine_t *e, bx_session_t *s, const char *const *names, size_t n,
                       json_object *replay, bx_buf_t *out);

#endif
