/* msg.c - see msg.h. */
#include "msg.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

bx_msg_t *bx_msg_new(const char *json, size_t len)
{
    bx_msg_t *m = bx_malloc(sizeof *m + len + 1);
    m->refs = 1;
    m->len = (uint32_t)len;
    memcpy(m->json, json, len);
    m->json[len] = '\0';
    return m;
}

bx_msg_t *bx_msg_ref(bx_msg_t *m)
{
    m->refs++;
    return m;
}

void bx_msg_unref(bx_msg_t **pm)
{
    if (!pm || !*pm)
        return;
    if (--(*pm)->refs == 0)
        free(*pm);
    *pm = NULL;
}

int bx_queue_push(bx_queue_t *q, bx_msg_t *m, size_t max)
{
    int dropped = 0;
    if (max > 0 && q->count >= max) {
        bx_queue_pop(q, 1);
        dropped = 1;
    }
    if (q->count == q->cap) {
        uint32_t ncap = q->cap ? q->cap * 2 : 4;
        bx_msg_t **ring = bx_malloc(ncap * sizeof *ring);
        for (uint32_t i = 0; i < q->count; i++)
            ring[i] = q->ring[(q->head + i) % q->cap];
        free(q->ring);
        q->ring = ring;
        q->head = 0;
        q->cap = ncap;
    }
    q->ring[(q->head + q->count) % q->cap] = bx_msg_ref(m);
    q->count++;
    return dropped;
}

bx_msg_t *bx_queue_at(const bx_queue_t *q, uint32_t i)
{
    return q->ring[(q->head + i) % q->cap];
}

void bx_queue_pop(bx_queue_t *q, uint32_t n)
{
    for (uint32_t i = 0; i < n && q->count > 0; i++) {
        bx_msg_unref(&q->ring[q->head]);
        q->head = (q->head + 1) % q->cap;
        q->count--;
    }
    /* An idle session should cost nothing: give a big ring back. */
    if (q->count == 0 && q->cap > 64) {
        free(q->ring);
        q->ring = NULL;
        q->cap = 0;
        q->head = 0;
    }
}

void bx_queue_clear(bx_queue_t *q)
{
    bx_queue_pop(q, q->count);
    free(q->ring);
    q->ring = NULL;
    q->cap = 0;
    q->head = 0;
}
