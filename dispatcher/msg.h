/* msg.h - serialized messages shared by reference, and per-session queues.
 *
 * A published message is serialized once; every subscriber's queue holds a
 * reference to the same bytes, and a connect reply is built by concatenating
 * them. Nothing per subscriber is parsed or re-encoded.
 */
#ifndef BX_MSG_H
#define BX_MSG_H

#include <stddef.h>
#include <stdint.h>

typedef struct bx_msg {
    uint32_t refs;      /* owners: queues, histories, the publisher while
                           fanning out */
    uint32_t len;       /* bytes of json, excluding the NUL */
    uint64_t id;        /* publish order; its row in the database */
    int64_t time;       /* wall-clock ms when published */
    uint32_t stored;    /* references that are rows in the database (queued
                           and history rows); the row goes at zero */
    uint32_t held;      /* queues with an accounting (bx_qacct_t) holding it */
    char json[];        /* one JSON object, NUL-terminated */
} bx_msg_t;

/* A new message with one reference, holding a copy of json. */
bx_msg_t *bx_msg_new(const char *json, size_t len);
bx_msg_t *bx_msg_ref(bx_msg_t *m);
/* Drops a reference, frees at zero, sets *pm to NULL. Tolerates NULL. */
void bx_msg_unref(bx_msg_t **pm);

/* One queued message: with the ack extension, tag is the batch it was queued
 * under (bayeux-wire.md §5.1). */
typedef struct {
    bx_msg_t *m;
    uint64_t tag;
} bx_qent_t;

/* What a set of queues holds: the memory their messages really take, each
 * message counted once however many of them share it, plus the queues'
 * rings. */
typedef struct {
    uint64_t bytes;     /* distinct messages (bx_msg_t and json) and every
                           queue's ring (cap entries of bx_qent_t) */
    uint64_t msgs;      /* distinct messages */
} bx_qacct_t;

/* FIFO of message references (a ring that grows; lazily allocated so an idle
 * session costs nothing here). */
typedef struct {
    bx_qent_t *ring;
    uint32_t head;      /* index of the oldest */
    uint32_t count;
    uint32_t cap;       /* a power of two, or 0 */
    uint64_t bytes;     /* what it holds: json of its messages and its
                           entries (len + sizeof(bx_qent_t) each) */
    bx_qacct_t *acct;   /* borrowed, or NULL: counts the messages once across
                           the queues that share it (bx_msg_t.held) */
} bx_queue_t;

/* Makes room for n entries in all (never shrinks). */
void bx_queue_reserve(bx_queue_t *q, uint32_t n);
/* Appends a reference to m (takes a new reference) with its tag. */
void bx_queue_push(bx_queue_t *q, bx_msg_t *m, uint64_t tag);
/* Puts n messages back in front of the queue, in their order, taking over
 * the references (for a reply that could not be sent). */
void bx_queue_unshift(bx_queue_t *q, bx_msg_t **ms, uint32_t n);
/* The i-th oldest entry (0 = oldest), borrowed; i < count. */
bx_qent_t *bx_queue_ent(const bx_queue_t *q, uint32_t i);
static inline bx_msg_t *bx_queue_at(const bx_queue_t *q, uint32_t i)
{
    return bx_queue_ent(q, i)->m;
}
/* Drops the n oldest messages (n <= count). */
void bx_queue_pop(bx_queue_t *q, uint32_t n);
/* Takes the oldest message out, handing its reference to the caller. */
bx_msg_t *bx_queue_shift(bx_queue_t *q);
/* Drops everything and frees the ring. */
void bx_queue_clear(bx_queue_t *q);

#endif
