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

typedef struct bx_session bx_session_t;
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

struct bx_session {
    char id[BX_CLIENTID_LEN + 1];       /* clientId */
    char browser[BX_BROWSER_MAX + 1];   /* BAYEUX_BROWSER it is bound to */
    uint8_t state;                      /* BX_SESSION_* */
    uint8_t parked;                     /* a connect is held */
    uint8_t park_advice;                /* its reply must carry advice */
    uint8_t in_wake;                    /* on the engine's wake list */
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

struct bx_engine {
    bx_engine_cfg_t cfg;
    bx_engine_send_fn send;
    void *ud;
    bx_map_t *sessions;        /* clientId -> bx_session_t (owned) */
    bx_map_t *channels;        /* name or pattern -> bx_chan_t (owned) */
    bx_map_t *parked;          /* origin bytes -> bx_session_t (borrowed) */
    bx_session_t **heap;       /* min-heap of parked sessions by deadline */
    uint32_t nheap, capheap;
    bx_session_t **wake;       /* parked sessions that got messages */
    uint32_t nwake, capwake;
    uint64_t fanout_seq;       /* numbers fan-outs for once-only delivery */
    int64_t next_sweep;
    uint64_t published, delivered, dropped, expired;
};

/* state.c: sessions */
bx_session_t *bx_state_session_new(bx_engine_t *e, const char *browser);
bx_session_t *bx_state_session_get(bx_engine_t *e, const char *id);
/* Unsubscribes, forgets a held connect without answering it, frees. */
void bx_state_session_free(bx_engine_t *e, bx_session_t **ps);

/* state.c: subscriptions. Return 0, or 1 when nothing changed. */
int bx_state_subscribe(bx_engine_t *e, bx_session_t *s, const char *name, size_t len);
int bx_state_unsubscribe(bx_engine_t *e, bx_session_t *s, const char *name, size_t len);

/* state.c: queues a message for every session subscribed to a pattern that
 * matches name, once per session; parked sessions go on the wake list.
 * Returns how many sessions it reached. */
size_t bx_state_fanout(bx_engine_t *e, const char *name, bx_msg_t *m);

/* state.c: held connects */
void bx_state_park(bx_engine_t *e, bx_session_t *s, const bx_origin_t *o, int64_t deadline);
void bx_state_unpark(bx_engine_t *e, bx_session_t *s);
bx_session_t *bx_state_parked_by_origin(bx_engine_t *e, const bx_origin_t *o);
/* The parked session with the earliest deadline, or NULL. */
bx_session_t *bx_state_heap_top(bx_engine_t *e);

#endif
