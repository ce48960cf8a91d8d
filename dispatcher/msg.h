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
    uint32_t refs;      /* owners: queues and the publisher while fanning out */
    uint32_t len;       /* bytes of json, excluding the NUL */
    char json[];        /* one JSON object, NUL-terminated */
} bx_msg_t;

/* A new message with one reference, holding a copy of json. */
bx_msg_t *bx_msg_new(const char *json, size_t len);
bx_msg_t *bx_msg_ref(bx_msg_t *m);
/* Drops a reference, frees at zero, sets *pm to NULL. Tolerates NULL. */
void bx_msg_unref(bx_msg_t **pm);

/* FIFO of message references (a ring that grows; lazily allocated so an idle
 * session costs nothing here). */
typedef struct {
    bx_msg_t **ring;
    uint32_t head;      /* index of the oldest */
    uint32_t count;
    uint32_t cap;
} bx_queue_t;

/* Appends a reference to m (takes a new reference). If the queue already holds
 * max messages (max > 0), the oldest is dropped first; returns 1 then, else 0. */
int bx_queue_push(bx_queue_t *q, bx_msg_t *m, size_t max);
/* The i-th oldest message (0 = oldest), borrowed; i < count. */
bx_msg_t *bx_queue_at(const bx_queue_t *q, uint32_t i);
/* Drops the n oldest messages (n <= count). */
void bx_queue_pop(bx_queue_t *q, uint32_t n);
/* Drops everything and frees the ring. */
void bx_queue_clear(bx_queue_t *q);

#endif
