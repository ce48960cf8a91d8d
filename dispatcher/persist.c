/* persist.c - what the engine keeps in the database, and reading it back.
 *
 * The engine's memory is the truth while bayeuxd runs; the database is what
 * survives it (docs/persistence.md). Every live session is a row, with its
 * subscriptions. Messages queued for an ack session are rows of `queued`
 * until acknowledged; their bodies are rows of `message`, counted by
 * bx_msg_t.stored (queued and history rows) and deleted when the count
 * falls to zero. Messages queued for sessions without the ack extension live
 * only in memory: those clients cannot tell the server what they received.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "log.h"

#define TAG "persist"

void bx_persist_unstore(bx_engine_t *e, bx_msg_t *m)
{
    if (m->stored > 0 && --m->stored == 0 && e->store)
        bx_store_msg_del(e->store, m->id);
}

/* Gives m a database row if it has none yet; counts one more reference. */
static void s_store_msg(bx_engine_t *e, bx_msg_t *m)
{
    if (m->stored++ == 0)
        bx_store_msg_put(e->store, m->id, m->json, m->len, m->time);
}

void bx_persist_queued(bx_engine_t *e, const bx_session_t *s, bx_msg_t *m, uint64_t batch)
{
    if (!e->store)
        return;
    s_store_msg(e, m);
    bx_store_queued_add(e->store, s->id, m->id, batch);
}

void bx_persist_dropped(bx_engine_t *e, const bx_session_t *s, bx_msg_t *m)
{
    if (s->ack && e->store && m->stored > 0) {
        bx_store_queued_del(e->store, s->id, m->id);
        bx_persist_unstore(e, m);
    }
}

void bx_persist_ack(bx_engine_t *e, bx_session_t *s, uint64_t batch)
{
    uint32_t n = 0;
    while (n < s->queue.count && bx_queue_ent(&s->queue, n)->tag <= batch)
        n++;
    if (n == 0)
        return;
    if (e->store) {
        for (uint32_t i = 0; i < n; i++)
            bx_persist_unstore(e, bx_queue_at(&s->queue, i));
        bx_store_queued_ack(e->store, s->id, batch);
    }
    bx_queue_pop(&s->queue, n);
    e->acked += n;
}

void bx_persist_session_new(bx_engine_t *e, const bx_session_t *s)
{
    if (e->store)
        bx_store_session_put(e->store, s->id, s->browser, s->ack, s->batch, s->created);
}

void bx_persist_session_subject(bx_engine_t *e, const bx_session_t *s)
{
    if (e->store && s->subject)
        bx_store_session_subject(e->store, s->id, s->subject);
}

void bx_persist_session_batch(bx_engine_t *e, const bx_session_t *s)
{
    if (e->store)
        bx_store_session_batch(e->store, s->id, s->batch);
}

void bx_persist_session_del(bx_engine_t *e, bx_session_t *s)
{
    if (!e->store)
        return;
    /* Only an ack session's queue is in the database. */
    for (uint32_t i = 0; s->ack && i < s->queue.count; i++)
        bx_persist_unstore(e, bx_queue_at(&s->queue, i));
    bx_store_session_del(e->store, s->id);
}

void bx_persist_sub(bx_engine_t *e, const bx_session_t *s, const char *name, int add)
{
    if (!e->store)
        return;
    if (add)
        bx_store_sub_add(e->store, s->id, name);
    else
        bx_store_sub_del(e->store, s->id, name);
}

/* ---- loading ---- */

typedef struct {
    bx_engine_t *e;
    bx_map_t *msgs;        /* id (8 bytes) -> bx_msg_t (one reference) */
    int64_t now;
    size_t nsessions, nsubs, nqueued, nhist;
    uint64_t max_id;
} s_load_t;

static int s_load_message(void *ud, uint64_t id, const char *json, size_t len, int64_t time)
{
    s_load_t *l = ud;
    bx_msg_t *m = bx_msg_new(json, len);
    m->id = id;
    m->time = time;
    bx_map_put(l->msgs, &m->id, sizeof m->id, m);
    if (id > l->max_id)
        l->max_id = id;
    return 0;
}

static int s_load_session(void *ud, const char *id, const char *browser, int ack,
                          uint64_t batch, int64_t created)
{
    s_load_t *l = ud;
    bx_engine_t *e = l->e;
    bx_session_t *s = bx_state_session_new(e, browser, id);
    if (!s) {
        bx_warn(TAG, "session row %s is not a valid clientId; ignored", id);
        return 0;
    }
    s->ack = ack ? 1 : 0;
    s->batch = batch > 0 ? batch : 1;
    s->created = created;
    /* The client was not to blame for the restart: it gets a whole
     * interval + max-interval to come back. */
    s->state = BX_SESSION_CONNECTED;
    s->expires = l->now + e->cfg.interval_ms + e->cfg.max_interval_ms;
    l->nsessions++;
    return 0;
}

static int s_load_subject(void *ud, const char *id, const char *subject)
{
    s_load_t *l = ud;
    bx_session_t *s = bx_state_session_get(l->e, id);
    if (s && !s->subject)
        s->subject = bx_strdup(subject);
    return 0;
}

static int s_load_subscription(void *ud, const char *id, const char *channel)
{
    s_load_t *l = ud;
    bx_session_t *s = bx_state_session_get(l->e, id);
    if (s && bx_state_subscribe(l->e, s, channel, strlen(channel)) == 0)
        l->nsubs++;
    return 0;
}

static int s_load_queued(void *ud, const char *id, uint64_t msgid, uint64_t batch)
{
    s_load_t *l = ud;
    bx_session_t *s = bx_state_session_get(l->e, id);
    bx_msg_t *m = bx_map_get(l->msgs, &msgid, sizeof msgid);
    if (!s || !m)
        return 0;     /* --check-db reports such rows */
    /* Rows of a batch closed but not saved as closed (a crash between the
     * two writes cannot happen, one transaction holds both; a database of an
     * older bayeuxd): the open batch moves past them. */
    if (batch > s->batch) {
        s->batch = batch;
        s->open_bytes = 0;
    }
    if (batch == s->batch)
        s->open_bytes += m->len;
    bx_queue_push(&s->queue, m, batch);
    m->stored++;
    l->nqueued++;
    return 0;
}

static int s_load_channel(void *ud, const char *name, uint64_t seq)
{
    s_load_t *l = ud;
    bx_history_restore(l->e, name, seq);
    return 0;
}

static int s_load_history(void *ud, const char *channel, uint64_t seq, uint64_t msgid,
                          int64_t time)
{
    s_load_t *l = ud;
    (void)time;
    bx_hist_t *h = bx_map_get(l->e->hist, channel, strlen(channel));
    bx_msg_t *m = bx_map_get(l->msgs, &msgid, sizeof msgid);
    if (!h || !m)
        return 0;
    /* Rows come in seq order. */
    if (seq > h->seq)
        h->seq = seq;
    bx_history_append(l->e, h, m, seq, 0);
    l->nhist++;
    return 0;
}

int bx_persist_load(bx_engine_t *e, int64_t now)
{
    s_load_t l;
    memset(&l, 0, sizeof l);
    l.e = e;
    l.now = now;
    l.msgs = bx_map_new();
    bx_store_loader_t loader = {
        &l, s_load_message, s_load_session, s_load_subscription, s_load_queued,
        s_load_channel, s_load_history, s_load_subject
    };
    /* Nothing may be written while loading: the engine's hooks stay off. */
    bx_store_t *st = e->store;
    e->store = NULL;
    int rc = bx_store_load(st, &loader);
    e->store = st;

    /* Bodies nothing refers to any more (a trimmed history, a crash between
     * two writes of one message) go now. */
    size_t pos = 0, orphans = 0;
    bx_msg_t *m;
    while ((m = bx_map_next(l.msgs, &pos, NULL, NULL)) != NULL) {
        if (m->stored == 0 && rc == 0) {
            bx_store_msg_del(st, m->id);
            orphans++;
        }
        bx_msg_unref(&m);
    }
    bx_map_destroy(&l.msgs);
    if (l.max_id >= e->next_msgid)
        e->next_msgid = l.max_id + 1;
    if (rc != 0)
        return -1;
    /* Histories whose rule now keeps fewer are trimmed by the next sweep. */
    bx_info(TAG, "loaded %zu session(s), %zu subscription(s), %zu unacknowledged and %zu "
            "history message(s)%s", l.nsessions, l.nsubs, l.nqueued, l.nhist,
            orphans ? "; unreferenced messages removed" : "");
    return 0;
}
