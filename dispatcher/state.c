/* state.c - sessions, the channel index and the timer heap of the engine.
 *
 * Two indexes, as Redis keeps pub/sub: channel -> sessions (bx_chan_t.subs)
 * and session -> channels (bx_session_t.subs). Each side records the other's
 * position, so subscribe, unsubscribe and a session's removal cost O(its own
 * subscriptions), whatever the size of the channels.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "engine_int.h"
#include "log.h"
#include "util.h"

#define TAG "state"

bx_session_t *bx_state_session_new(bx_engine_t *e, const char *browser, const char *id)
{
    bx_session_t *s = bx_calloc(1, sizeof *s);
    if (id) {
        if (strlen(id) != BX_CLIENTID_LEN || bx_map_get(e->sessions, id, BX_CLIENTID_LEN)) {
            free(s);
            return NULL;
        }
        memcpy(s->id, id, BX_CLIENTID_LEN);
    } else {
        do {
            if (bx_random_id(s->id, BX_CLIENTID_LEN) != 0) {
                free(s);
                return NULL;
            }
        } while (bx_map_get(e->sessions, s->id, BX_CLIENTID_LEN));
    }
    snprintf(s->browser, sizeof s->browser, "%s", browser);
    s->state = BX_SESSION_HANDSHAKEN;
    s->heap_idx = UINT32_MAX;
    s->queue.acct = &e->qacct;
    bx_map_put(e->sessions, s->id, BX_CLIENTID_LEN, s);
    return s;
}

bx_session_t *bx_state_session_get(bx_engine_t *e, const char *id)
{
    size_t len = strlen(id);
    if (len != BX_CLIENTID_LEN)
        return NULL;
    return bx_map_get(e->sessions, id, len);
}

void bx_state_session_free(bx_engine_t *e, bx_session_t **ps)
{
    bx_session_t *s = *ps;
    if (!s)
        return;
    while (s->nsubs > 0) {
        bx_chan_t *ch = s->subs[s->nsubs - 1].ch;
        bx_state_unsubscribe(e, s, ch->name, ch->len);
    }
    if (s->parked)
        bx_state_unpark(e, s);
    if (s->in_wake) {
        for (uint32_t i = 0; i < e->nwake; i++) {
            if (e->wake[i] == s) {
                e->wake[i] = e->wake[--e->nwake];
                break;
            }
        }
    }
    /* Ended before the flush reaped it (a disconnect in the same batch). */
    if (s->doomed) {
        for (uint32_t i = 0; i < e->ndoomed; i++) {
            if (e->doomed[i] == s) {
                e->doomed[i] = e->doomed[--e->ndoomed];
                break;
            }
        }
    }
    if (s->address[0]) {
        size_t alen = strlen(s->address);
        uintptr_t n = (uintptr_t)bx_map_get(e->addresses, s->address, alen);
        if (n > 1)
            bx_map_put(e->addresses, s->address, alen, (void *)(n - 1));
        else
            bx_map_del(e->addresses, s->address, alen);
    }
    bx_map_del(e->sessions, s->id, BX_CLIENTID_LEN);
    bx_queue_clear(&s->queue);
    free(s->subs);
    free(s->subject);
    free(s);
    *ps = NULL;
}

size_t bx_state_address_count(bx_engine_t *e, const char *addr)
{
    return (uintptr_t)bx_map_get(e->addresses, addr, strlen(addr));
}

size_t bx_state_address(bx_engine_t *e, bx_session_t *s, const char *addr)
{
    snprintf(s->address, sizeof s->address, "%s", addr);
    if (!s->address[0])
        return 0;
    size_t alen = strlen(s->address);
    uintptr_t n = (uintptr_t)bx_map_get(e->addresses, s->address, alen) + 1;
    bx_map_put(e->addresses, s->address, alen, (void *)n);
    return n;
}

static bx_sub_t *s_find_sub(bx_session_t *s, const bx_chan_t *ch)
{
    for (uint32_t i = 0; i < s->nsubs; i++)
        if (s->subs[i].ch == ch)
            return &s->subs[i];
    return NULL;
}

int bx_state_subscribe(bx_engine_t *e, bx_session_t *s, const char *name, size_t len)
{
    bx_chan_t *ch = bx_map_get(e->channels, name, len);
    if (ch && s_find_sub(s, ch))
        return 1;   /* Bayeux: re-subscribing is idempotent and successful */
    if (!ch) {
        ch = bx_calloc(1, sizeof *ch);
        ch->name = bx_strndup(name, len);
        ch->len = len;
        bx_map_put(e->channels, ch->name, len, ch);
    }
    if (ch->nsubs == ch->capsubs) {
        ch->capsubs = ch->capsubs ? ch->capsubs * 2 : 4;
        ch->subs = bx_realloc(ch->subs, ch->capsubs * sizeof *ch->subs);
    }
    if (s->nsubs == s->capsubs) {
        s->capsubs = s->capsubs ? s->capsubs * 2 : 2;
        s->subs = bx_realloc(s->subs, s->capsubs * sizeof *s->subs);
    }
    ch->subs[ch->nsubs] = s;
    s->subs[s->nsubs].ch = ch;
    s->subs[s->nsubs].pos = ch->nsubs;
    ch->nsubs++;
    s->nsubs++;
    return 0;
}

int bx_state_unsubscribe(bx_engine_t *e, bx_session_t *s, const char *name, size_t len)
{
    bx_chan_t *ch = bx_map_get(e->channels, name, len);
    bx_sub_t *sub = ch ? s_find_sub(s, ch) : NULL;
    if (!sub)
        return 1;
    /* Swap-remove from the channel, fixing the moved session's back index. */
    uint32_t pos = sub->pos;
    bx_session_t *moved = ch->subs[ch->nsubs - 1];
    ch->subs[pos] = moved;
    ch->nsubs--;
    if (moved != s)
        s_find_sub(moved, ch)->pos = pos;
    /* Swap-remove from the session. */
    *sub = s->subs[--s->nsubs];
    if (ch->nsubs == 0) {
        bx_map_del(e->channels, ch->name, ch->len);
        free(ch->subs);
        free(ch->name);
        free(ch);
    }
    return 0;
}

typedef struct {
    bx_engine_t *e;
    bx_msg_t *m;
    size_t reached;
} s_fanout_t;

void bx_state_wake(bx_engine_t *e, bx_session_t *s)
{
    if (s->in_wake || !s->parked)
        return;
    if (e->nwake == e->capwake) {
        e->capwake = e->capwake ? e->capwake * 2 : 64;
        e->wake = bx_realloc(e->wake, e->capwake * sizeof *e->wake);
    }
    e->wake[e->nwake++] = s;
    s->in_wake = 1;
}

static int s_fanout_pattern(const char *pattern, size_t len, void *ud)
{
    s_fanout_t *f = ud;
    bx_engine_t *e = f->e;
    bx_chan_t *ch = bx_map_get(e->channels, pattern, len);
    if (!ch)
        return 0;
    for (uint32_t i = 0; i < ch->nsubs; i++) {
        bx_session_t *s = ch->subs[i];
        /* Bayeux: each subscriber gets a message once, however many of its
         * subscriptions match. */
        if (s->mark == e->fanout_seq)
            continue;
        s->mark = e->fanout_seq;
        bx_enqueue(e, s, f->m);
        bx_state_wake(e, s);
        f->reached++;
    }
    return 0;
}

size_t bx_state_fanout(bx_engine_t *e, const char *name, bx_msg_t *m)
{
    s_fanout_t f = { e, m, 0 };
    e->fanout_seq++;
    bx_channel_expand(name, s_fanout_pattern, &f);
    return f.reached;
}

/* ---- timer heap of parked connects, ordered by deadline ---- */

static void s_heap_swap(bx_engine_t *e, uint32_t a, uint32_t b)
{
    bx_session_t *t = e->heap[a];
    e->heap[a] = e->heap[b];
    e->heap[b] = t;
    e->heap[a]->heap_idx = a;
    e->heap[b]->heap_idx = b;
}

static void s_heap_up(bx_engine_t *e, uint32_t i)
{
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (e->heap[p]->park_deadline <= e->heap[i]->park_deadline)
            break;
        s_heap_swap(e, i, p);
        i = p;
    }
}

static void s_heap_down(bx_engine_t *e, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < e->nheap && e->heap[l]->park_deadline < e->heap[m]->park_deadline)
            m = l;
        if (r < e->nheap && e->heap[r]->park_deadline < e->heap[m]->park_deadline)
            m = r;
        if (m == i)
            break;
        s_heap_swap(e, i, m);
        i = m;
    }
}

static void s_origin_key(const bx_origin_t *o, unsigned char key[12])
{
    memcpy(key, &o->peer, 4);
    memcpy(key + 4, &o->reqid, 8);
}

void bx_state_park(bx_engine_t *e, bx_session_t *s, const bx_origin_t *o, int64_t deadline)
{
    unsigned char key[12];
    s->parked = 1;
    s->park_origin = *o;
    s->park_deadline = deadline;
    s_origin_key(o, key);
    bx_map_put(e->parked, key, sizeof key, s);
    if (e->nheap == e->capheap) {
        e->capheap = e->capheap ? e->capheap * 2 : 64;
        e->heap = bx_realloc(e->heap, e->capheap * sizeof *e->heap);
    }
    s->heap_idx = e->nheap;
    e->heap[e->nheap++] = s;
    s_heap_up(e, s->heap_idx);
}

void bx_state_unpark(bx_engine_t *e, bx_session_t *s)
{
    unsigned char key[12];
    if (!s->parked)
        return;
    s_origin_key(&s->park_origin, key);
    bx_map_del(e->parked, key, sizeof key);
    uint32_t i = s->heap_idx;
    e->nheap--;
    if (i != e->nheap) {
        s_heap_swap(e, i, e->nheap);
        s_heap_down(e, i);
        s_heap_up(e, i);
    }
    s->heap_idx = UINT32_MAX;
    s->parked = 0;
}

bx_session_t *bx_state_parked_by_origin(bx_engine_t *e, const bx_origin_t *o)
{
    unsigned char key[12];
    s_origin_key(o, key);
    return bx_map_get(e->parked, key, sizeof key);
}

bx_session_t *bx_state_heap_top(bx_engine_t *e)
{
    return e->nheap ? e->heap[0] : NULL;
}
