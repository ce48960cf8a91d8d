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
    m->id = 0;
    m->time = 0;
    m->stored = 0;
    m->held = 0;
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

/* m enters or leaves q: its bytes, and the accounting's distinct ones. */
static void s_count_in(bx_queue_t *q, bx_msg_t *m)
{
    q->bytes += m->len + sizeof(bx_qent_t);
    if (q->acct && m->held++ == 0) {
        q->acct->bytes += sizeof *m + m->len + 1;
        q->acct->msgs++;
    }
}

static void s_count_out(bx_queue_t *q, bx_msg_t *m)
{
    q->bytes -= m->len + sizeof(bx_qent_t);
    if (q->acct && --m->held == 0) {
        q->acct->bytes -= sizeof *m + m->len + 1;
        q->acct->msgs--;
    }
}

/* Makes room for at least need entries, keeping the order from head. */
/* A new ring of ncap entries (>= count; 0 frees it), in order from head. */
static void s_resize(bx_queue_t *q, uint32_t ncap)
{
    bx_qent_t *ring = ncap ? bx_malloc(ncap * sizeof *ring) : NULL;
    for (uint32_t i = 0; i < q->count; i++)
        ring[i] = q->ring[(q->head + i) & (q->cap - 1)];
    free(q->ring);
    if (q->acct)
        q->acct->bytes = q->acct->bytes - (uint64_t)q->cap * sizeof *ring +
                         (uint64_t)ncap * sizeof *ring;
    q->ring = ring;
    q->head = 0;
    q->cap = ncap;
}

static void s_grow(bx_queue_t *q, uint32_t need)
{
    if (need <= q->cap)
        return;
    uint32_t ncap = q->cap ? q->cap : 4;
    while (ncap < need)
        ncap *= 2;
    s_resize(q, ncap);
}

void bx_queue_reserve(bx_queue_t *q, uint32_t n)
{
    s_grow(q, n);
}

void bx_queue_push(bx_queue_t *q, bx_msg_t *m, uint64_t tag)
{
    s_grow(q, q->count + 1);
    bx_qent_t *e = &q->ring[(q->head + q->count) & (q->cap - 1)];
    e->m = bx_msg_ref(m);
    e->tag = tag;
    q->count++;
    s_count_in(q, m);
}

void bx_queue_unshift(bx_queue_t *q, bx_msg_t **ms, uint32_t n)
{
    if (n == 0)
        return;
    s_grow(q, q->count + n);
    for (uint32_t i = n; i-- > 0;) {
        q->head = (q->head + q->cap - 1) & (q->cap - 1);
        q->ring[q->head].m = ms[i];
        q->ring[q->head].tag = 0;
        q->count++;
        s_count_in(q, ms[i]);
    }
}

bx_qent_t *bx_queue_ent(const bx_queue_t *q, uint32_t i)
{
    return &q->ring[(q->head + i) & (q->cap - 1)];
}

/* An idle session should cost next to nothing: an empty ring is given back
 * unless it is the smallest (kept so that a session that drains at every
 * message does not allocate at every message), and half of one that is
 * three quarters empty (a queue cut by the memory budget). Rings count in
 * queue_memory: empty ones kept large would fill it with nothing that
 * dropping messages could give back. */
static void s_shrink(bx_queue_t *q)
{
    if (q->cap <= 4)
        return;
    if (q->count == 0)
        s_resize(q, 0);
    else if (q->cap > 64 && q->count < q->cap / 4)
        s_resize(q, q->cap / 2);
}

bx_msg_t *bx_queue_shift(bx_queue_t *q)
{
    if (q->count == 0)
        return NULL;
    bx_msg_t *m = q->ring[q->head].m;
    q->ring[q->head].m = NULL;
    s_count_out(q, m);
    q->head = (q->head + 1) & (q->cap - 1);
    q->count--;
    s_shrink(q);
    return m;
}

void bx_queue_pop(bx_queue_t *q, uint32_t n)
{
    for (uint32_t i = 0; i < n && q->count > 0; i++) {
        s_count_out(q, q->ring[q->head].m);
        bx_msg_unref(&q->ring[q->head].m);
        q->head = (q->head + 1) & (q->cap - 1);
        q->count--;
    }
    s_shrink(q);
}

void bx_queue_clear(bx_queue_t *q)
{
    bx_queue_pop(q, q->count);
    s_resize(q, 0);
}
