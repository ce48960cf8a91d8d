/* squeue.c - a session's queue within its bounds, and all queues within the
 * memory budget.
 *
 * What one client can make bayeuxd hold is bounded in bytes, not only in
 * messages (docs/security.md). A session queues at most max_queue messages
 * and max_queue_bytes bytes, unacknowledged ones included; all sessions
 * together at most queue_memory bytes, each message counted once however
 * many queues share it, and each queue's entries too (bx_qacct_t): a
 * million small messages queued for a thousand sessions take their entries'
 * memory even if they are one message. A reply carries at most
 * max_reply_bytes of a queue: ack batches are closed at that size as
 * messages are queued, so a reply carries whole batches and the number the
 * client acknowledges names exactly what it received.
 */
#include <stdlib.h>

#include "engine_int.h"
#include "log.h"

#define TAG "queue"

void bx_doom(bx_engine_t *e, bx_session_t *s)
{
    /* Removing s while a fan-out walks the channel arrays would pull them
     * from under the walk: bx_reap_doomed ends it at the flush. */
    if (s->doomed)
        return;
    s->doomed = 1;
    if (e->ndoomed == e->capdoomed) {
        e->capdoomed = e->capdoomed ? e->capdoomed * 2 : 8;
        e->doomed = bx_realloc(e->doomed, e->capdoomed * sizeof *e->doomed);
    }
    e->doomed[e->ndoomed++] = s;
}

/* Drops the oldest message of s unsent, database row included. */
static void s_drop_oldest(bx_engine_t *e, bx_session_t *s)
{
    const bx_qent_t *q = bx_queue_ent(&s->queue, 0);
    if (s->ack && q->tag == s->batch)
        s->open_bytes -= q->m->len;
    bx_msg_t *old = bx_queue_shift(&s->queue);
    bx_persist_dropped(e, s, old);
    bx_msg_unref(&old);
}

/* 1 if queuing len more bytes would take s past a bound. An empty queue
 * always takes one message: max_message_size, not the queue, bounds that. */
static int s_over(const bx_engine_t *e, const bx_session_t *s, size_t len)
{
    if (s->queue.count == 0)
        return 0;
    if (e->cfg.max_queue > 0 && s->queue.count >= (uint64_t)e->cfg.max_queue)
        return 1;
    return e->cfg.max_queue_bytes > 0 &&
           s->queue.bytes + len + sizeof(bx_qent_t) > (uint64_t)e->cfg.max_queue_bytes;
}

static int s_by_bytes(const void *a, const void *b)
{
    uint64_t x = (*(bx_session_t *const *)a)->queue.bytes;
    uint64_t y = (*(bx_session_t *const *)b)->queue.bytes;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Past queue_memory: the largest queues give back first, until all hold
 * three quarters of the budget, so that the next relief is far off. Each
 * pass halves the size the largest are cut to; a queue is cut as its
 * overflow policy says: its oldest messages dropped, or (end-session) the
 * session ended. One client's many queues are the largest; the small
 * queues of everyone else are the last to be touched. */
static void s_relieve(bx_engine_t *e)
{
    /* Once a turn, and a bounded amount of work: the turn's other enqueues
     * add at most one turn's intake before the next relief. */
    if (e->relieved)
        return;
    e->relieved = 1;
    uint64_t low = (uint64_t)e->cfg.queue_memory / 4 * 3;
    uint64_t budget = e->cfg.slice_work > 0 ? (uint64_t)e->cfg.slice_work : UINT64_MAX;
    size_t n = 0, pos = 0, cut = 0;
    uint64_t dropped = 0;
    bx_session_t *s, **v = bx_malloc(bx_map_count(e->sessions) * sizeof *v);
    while ((s = bx_map_next(e->sessions, &pos, NULL, NULL)) != NULL)
        if (s->queue.count > 0 && !s->doomed)
            v[n++] = s;
    qsort(v, n, sizeof *v, s_by_bytes);
    uint64_t target = n ? v[0]->queue.bytes / 2 : 0;
    while (e->qacct.bytes > low && n > 0 && dropped < budget) {
        for (size_t i = 0; i < n && e->qacct.bytes > low && dropped < budget; i++) {
            s = v[i];
            if (s->doomed || s->queue.bytes <= target)
                continue;
            cut++;
            if (e->cfg.overflow_end) {
                dropped += s->queue.count;
                while (s->queue.count > 0)
                    s_drop_oldest(e, s);
                bx_doom(e, s);
                e->evicted++;
                continue;
            }
            while (s->queue.count > 0 && s->queue.bytes > target && dropped < budget) {
                s_drop_oldest(e, s);
                dropped++;
                e->evicted++;
            }
        }
        if (target == 0)
            break;
        target /= 2;
    }
    free(v);
    e->work += dropped;
    bx_warn(TAG, "queued messages reached queue-memory (%lld bytes): %llu message(s) of %zu "
            "queue(s) dropped%s, largest first; %llu bytes are queued now",
            (long long)e->cfg.queue_memory, (unsigned long long)dropped, cut,
            e->cfg.overflow_end ? " and their sessions ended" : "",
            (unsigned long long)e->qacct.bytes);
}

void bx_enqueue(bx_engine_t *e, bx_session_t *s, bx_msg_t *m)
{
    e->work++;     /* a fan-out's cost: one a subscriber (cfg.slice_work) */
    if (s->doomed)
        return;
    if (s_over(e, s, m->len)) {
        if (e->cfg.overflow_end) {
            bx_warn(TAG, "session %s: queue full (%u messages, %llu bytes), session ended",
                    s->id, s->queue.count, (unsigned long long)s->queue.bytes);
            bx_doom(e, s);
            return;
        }
        if (s->dropped == 0)
            bx_warn(TAG, "session %s: queue full (%u messages, %llu bytes), dropping the "
                    "oldest", s->id, s->queue.count, (unsigned long long)s->queue.bytes);
        do {
            s_drop_oldest(e, s);
            e->dropped++;
            s->dropped++;
        } while (s_over(e, s, m->len));
    }
    uint64_t tag = 0;
    if (s->ack) {
        /* Ack: tagged with the batch that will carry it (CometD
         * BatchArrayQueue); a batch that would outgrow a reply is closed
         * first, so that a reply always carries whole batches. */
        if (s->open_bytes > 0 && e->cfg.max_reply_bytes > 0 &&
            s->open_bytes + m->len > (uint64_t)e->cfg.max_reply_bytes) {
            s->batch++;
            s->open_bytes = 0;
            bx_persist_session_batch(e, s);
        }
        tag = s->batch;
        s->open_bytes += m->len;
    }
    uint32_t cap = s->queue.cap;
    /* A ring doubles a little ahead of need, by an amount of its own (from
     * the session's id): the rings of a thousand sessions fed the same
     * messages would otherwise all double, copy and touch fresh pages in
     * one fan-out. */
    if (cap >= 256) {
        uint32_t early = ((uint32_t)(unsigned char)s->id[0] * 131u +
                          (unsigned char)s->id[1]) % (cap / 4);
        if (s->queue.count + 1 + early > cap)
            bx_queue_reserve(&s->queue, cap * 2);
    }
    bx_queue_push(&s->queue, m, tag);
    /* A ring that doubled was copied, into fresh pages: work too, or a
     * fan-out that grows a thousand rings at once is one long turn. */
    if (s->queue.cap != cap)
        e->work += 32 + s->queue.count / 64;
    if (s->ack)
        bx_persist_queued(e, s, m, tag);
    if (e->cfg.queue_memory > 0 && e->qacct.bytes > (uint64_t)e->cfg.queue_memory)
        s_relieve(e);
}

uint32_t bx_reply_count(const bx_engine_t *e, const bx_session_t *s, uint64_t upto,
                        uint64_t *last)
{
    uint64_t cap = e->cfg.max_reply_bytes > 0 ? (uint64_t)e->cfg.max_reply_bytes : UINT64_MAX;
    uint64_t bytes = 0;
    uint32_t n = 0;
    while (n < s->queue.count) {
        const bx_qent_t *first = bx_queue_ent(&s->queue, n);
        if (s->ack && first->tag > upto)
            break;
        /* The next group: one message, or a whole ack batch. */
        uint32_t g = n;
        uint64_t gbytes = 0;
        do {
            gbytes += bx_queue_at(&s->queue, g)->len;
            g++;
        } while (s->ack && g < s->queue.count && bx_queue_ent(&s->queue, g)->tag == first->tag);
        if (n > 0 && bytes + gbytes > cap)
            break;
        bytes += gbytes;
        n = g;
        if (last)
            *last = first->tag;
    }
    return n;
}
