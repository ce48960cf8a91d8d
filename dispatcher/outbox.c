/* outbox.c - replies on their way out: built by the engine, sent by
 * bx_engine_flush() after the group commit; held connects answered; sessions
 * ended. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "log.h"
#include "util.h"

#define TAG "engine"

void bx_advice(bx_buf_t *b, const bx_engine_cfg_t *cfg, const char *reconnect)
{
    /* Bayeux rule kept by both clients: send all of reconnect, interval and
     * timeout whenever advice is sent; CometD JS resets missing fields. */
    bx_buf_printf(b, ",\"advice\":{\"reconnect\":\"%s\",\"interval\":%lld,\"timeout\":%lld}",
                  reconnect, (long long)cfg->interval_ms, (long long)cfg->timeout_ms);
}

void bx_out_free(bx_out_t *o)
{
    free(o->body);
    for (uint32_t i = 0; i < o->ntaken; i++)
        bx_msg_unref(&o->taken[i]);
    free(o->taken);
}

/* Copies the string src into dst of size len, cut to fit, as snprintf "%s"
 * would, without its cost (this runs once or twice per reply). */
static void s_copy(char *dst, size_t len, const char *src)
{
    size_t n = strlen(src);
    if (n >= len)
        n = len - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* ---- sending ---- */

/* Queues a reply for the next flush; takes the body's buffer. */
bx_out_t *bx_out(bx_engine_t *e, const bx_origin_t *to, int status, const char *browser,
                       bx_buf_t *body)
{
    if (e->nout == e->capout) {
        e->capout = e->capout ? e->capout * 2 : 64;
        e->out = bx_realloc(e->out, e->capout * sizeof *e->out);
    }
    bx_out_t *o = &e->out[e->nout++];
    memset(o, 0, sizeof *o);
    o->to = *to;
    o->status = status;
    s_copy(o->browser, sizeof o->browser, browser ? browser : "");
    if (body) {
        o->body = body->data;
        o->len = body->len;
        bx_buf_init(body);
    }
    return o;
}

/* Sends "[ queued messages of s, extra ]": as many as bx_reply_count lets
 * one reply carry. With the ack extension they stay queued until
 * acknowledged (bx_ack_batch closed the batches they belong to), else they
 * leave the queue with the reply (and come back if it cannot be sent).
 * extra is one reply object (or several, comma-separated). */
void bx_out_body(bx_engine_t *e, const bx_origin_t *to, const char *browser,
                       bx_session_t *s, const char *extra, size_t elen)
{
    bx_buf_t b;
    uint32_t n = s ? bx_reply_count(e, s, s->batch - 1, NULL) : 0;
    /* One allocation of the exact size: "[", the messages and extra with
     * a comma between each two, "]". */
    size_t need = 2 + elen + n;
    for (uint32_t i = 0; i < n; i++)
        need += bx_queue_at(&s->queue, i)->len;
    bx_buf_init(&b);
    bx_buf_reserve(&b, need);
    bx_buf_putc(&b, '[');
    for (uint32_t i = 0; i < n; i++) {
        const bx_msg_t *m = bx_queue_at(&s->queue, i);
        if (i > 0)
            bx_buf_putc(&b, ',');
        bx_buf_append(&b, m->json, m->len);
    }
    if (elen > 0) {
        if (n > 0)
            bx_buf_putc(&b, ',');
        bx_buf_append(&b, extra, elen);
    }
    bx_buf_putc(&b, ']');
    bx_out_t *o = bx_out(e, to, 200, browser, &b);
    if (n == 0)
        return;
    s_copy(o->session, sizeof o->session, s->id);
    o->nsent = n;
    if (!s->ack) {
        o->taken = bx_malloc(n * sizeof *o->taken);
        for (uint32_t i = 0; i < n; i++)
            o->taken[i] = bx_queue_shift(&s->queue);
        o->ntaken = n;
    }
}

/* Ack: the batch number a connect reply of s carries (bx_reply_count: as
 * many whole batches as fit in one reply). Messages queued later get a
 * higher number. A reply with nothing queued repeats the last number, so
 * idle connects write nothing. */
uint64_t bx_ack_batch(bx_engine_t *e, bx_session_t *s)
{
    uint64_t last;
    uint32_t n = bx_reply_count(e, s, s->batch, &last);
    if (n == 0)
        return s->batch - 1;
    if (n < s->queue.count)
        return last;     /* the open batch waits for a later reply */
    /* All of it: the open batch is closed, even if empty (messages sent
     * again), so every reply that carries the whole queue has a new number,
     * as CometD's. */
    uint64_t b = s->batch++;
    s->open_bytes = 0;
    bx_persist_session_batch(e, s);
    return b;
}

/* Ack: the number a connect reply of s carries when it carries none of the
 * queue: one below the oldest batch still queued, so that the client's
 * acknowledgement of it cannot drop anything it has not received. */
uint64_t bx_ack_none(const bx_session_t *s)
{
    return s->queue.count ? bx_queue_ent(&s->queue, 0)->tag - 1 : s->batch - 1;
}

/* Writes the ack member of a connect reply of s ("" if none) into buf. */
const char *bx_ack_member(bx_engine_t *e, bx_session_t *s, char *buf, size_t len)
{
    if (!s->ack)
        return NULL;
    snprintf(buf, len, "%llu", (unsigned long long)bx_ack_batch(e, s));
    return buf;
}

/* The reply to a held connect of s, with everything queued for it. */
void bx_answer_parked(bx_engine_t *e, bx_session_t *s, int64_t now, const char *reconnect)
{
    bx_buf_t reply;
    char ack[24];
    bx_buf_init(&reply);
    bx_buf_putc(&reply, '{');
    if (s->park_id[0]) {
        bx_buf_puts(&reply, "\"id\":");
        bx_buf_put_json_string(&reply, s->park_id, strlen(s->park_id));
        bx_buf_putc(&reply, ',');
    }
    bx_buf_puts(&reply, "\"channel\":\"/meta/connect\",\"successful\":true");
    if (reconnect)
        bx_advice(&reply, &e->cfg, reconnect);
    else if (s->park_advice)
        bx_advice(&reply, &e->cfg, "retry");
    bx_ext(&reply, bx_ack_member(e, s, ack, sizeof ack), &s->park_ts, e->cfg.wall_ms(), NULL, 0);
    bx_buf_putc(&reply, '}');

    bx_origin_t to = s->park_origin;
    bx_state_unpark(e, s);
    bx_out_body(e, &to, NULL, s, reply.data, reply.len);
    /* CometD: the expiry clock starts when a connect reply has been written. */
    s->expires = now + e->cfg.interval_ms + e->cfg.max_interval_ms;
    bx_buf_free(&reply);
}

int bx_engine_flush(bx_engine_t *e, int64_t now)
{
    /* Sessions over max-queue (end-session) end now, between requests;
     * then whatever queued messages since (a backend's publish, the stats
     * channel) wakes its held connects. */
    if (!e->pending)
        bx_reap_doomed(e, now);
    bx_wake(e, now);
    e->work = 0;
    e->relieved = 0;
    if (e->store && bx_store_commit(e->store) != 0)
        return -1;
    while (e->nout > 0) {
        uint32_t nfail = 0;
        for (uint32_t i = 0; i < e->nout; i++) {
            bx_out_t *o = &e->out[i];
            if (!o->cancelled &&
                e->send(e->ud, &o->to, o->status, o->browser[0] ? o->browser : NULL,
                        o->body ? o->body : "", o->len) == 0) {
                e->delivered += o->nsent;
                bx_out_free(o);
                continue;
            }
            if (o->nsent > 0 && !o->cancelled)
                bx_info(TAG, "session %s: its reply could not be sent; %u message(s) kept",
                        o->session, o->nsent);
            if (o->ntaken > 0)
                e->out[nfail++] = *o;    /* i >= nfail: nothing is overwritten early */
            else
                bx_out_free(o);
        }
        /* Unsent messages go back in front, newest reply first, so the
         * queue keeps its order for the next connect. */
        uint32_t n = nfail;
        bx_out_t *fails = n ? bx_malloc(n * sizeof *fails) : NULL;
        if (n)
            memcpy(fails, e->out, n * sizeof *fails);
        e->nout = 0;
        for (uint32_t i = n; i-- > 0;) {
            bx_session_t *s = bx_state_session_get(e, fails[i].session);
            if (s) {
                bx_queue_unshift(&s->queue, fails[i].taken, fails[i].ntaken);
                fails[i].ntaken = 0;
            }
            bx_out_free(&fails[i]);
        }
        /* A connect held meanwhile takes them at once (its reply is sent by
         * the next round; no ack session is involved, nothing to commit). */
        for (uint32_t i = 0; i < n; i++) {
            bx_session_t *s = bx_state_session_get(e, fails[i].session);
            if (s && s->parked && s->queue.count > 0)
                bx_answer_parked(e, s, now, NULL);
        }
        free(fails);
    }
    /* Give a big outbox back. */
    if (e->capout > 1024) {
        free(e->out);
        e->out = NULL;
        e->capout = 0;
    }
    return 0;
}

/* Ends a session: its row, subscriptions and unacknowledged messages leave
 * the database. reconnect: the advice its held connect gets (Bayeux: "none"
 * when the server ends it; "handshake" to make the client start over). */
void bx_remove_session(bx_engine_t *e, bx_session_t *s, int64_t now, const char *why,
                             const char *reconnect)
{
    bx_debug(TAG, "session %s removed (%s)", s->id, why);
    if (e->event) {
        bx_event_t ev = { .kind = "session.removed", .client_id = s->id, .reason = why };
        e->event(e->event_ud, &ev);
    }
    bx_persist_session_del(e, s);
    bx_queue_clear(&s->queue);
    if (s->parked)
        bx_answer_parked(e, s, now, reconnect);
    bx_state_session_free(e, &s);
}

/* Sessions a fan-out found over their max_queue (end-session policy). */
void bx_reap_doomed(bx_engine_t *e, int64_t now)
{
    while (e->ndoomed > 0) {
        bx_session_t *s = e->doomed[--e->ndoomed];
        bx_remove_session(e, s, now, "overflow", "handshake");
        e->overflowed++;
    }
}

