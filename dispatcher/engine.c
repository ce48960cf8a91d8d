/* engine.c - the Bayeux meta operations and publish, as CometD does them
 * (reference: shared bayeux-wire.md §2 and §7), answering both the CometD and
 * the Faye client.
 */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "channel.h"
#include "engine_int.h"
#include "log.h"
#include "util.h"
#include "wire.h"

#define TAG "engine"

static const int JSON_OUT = JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE;

static int bx_json_is_number(json_object *v)
{
    return json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double);
}

void bx_engine_cfg_defaults(bx_engine_cfg_t *cfg)
{
    cfg->timeout_ms = 20000;
    cfg->interval_ms = 0;
    cfg->max_interval_ms = 10000;
    cfg->sweep_period_ms = 997;
    cfg->browser_binding = 1;
    cfg->duplicate_connect_status = 500;
    cfg->max_queue = 10000;
    cfg->overflow_end = 0;
    cfg->ack = 1;
    cfg->timestamp = 0;
    cfg->history = NULL;
    cfg->wall_ms = bx_wall_ms;
}

bx_engine_t *bx_engine_new(const bx_engine_cfg_t *cfg, bx_engine_send_fn send, void *ud)
{
    bx_engine_t *e = bx_calloc(1, sizeof *e);
    e->cfg = *cfg;
    if (!e->cfg.wall_ms)
        e->cfg.wall_ms = bx_wall_ms;
    e->send = send;
    e->ud = ud;
    e->sessions = bx_map_new();
    e->channels = bx_map_new();
    e->parked = bx_map_new();
    e->next_sweep = INT64_MIN;
    e->next_msgid = 1;
    if (bx_history_init(e) != 0) {
        bx_engine_destroy(&e);
        return NULL;
    }
    return e;
}

int bx_engine_load(bx_engine_t *e, bx_store_t *st, int64_t now)
{
    e->store = st;
    if (bx_persist_load(e, now) != 0)
        return -1;
    /* Trims what the rules keep no more; written by the first flush. */
    bx_history_sweep(e, e->cfg.wall_ms());
    return 0;
}

static void s_out_free(bx_out_t *o)
{
    free(o->body);
    for (uint32_t i = 0; i < o->ntaken; i++)
        bx_msg_unref(&o->taken[i]);
    free(o->taken);
}

void bx_engine_destroy(bx_engine_t **pe)
{
    if (!pe || !*pe)
        return;
    bx_engine_t *e = *pe;
    size_t pos = 0;
    bx_session_t *s;
    /* Freeing edits the map: always take the first remaining session. */
    while ((pos = 0, s = bx_map_next(e->sessions, &pos, NULL, NULL)) != NULL)
        bx_state_session_free(e, &s);
    bx_map_destroy(&e->sessions);
    bx_map_destroy(&e->channels);
    bx_map_destroy(&e->parked);
    if (e->hist)
        bx_history_free(e);
    for (uint32_t i = 0; i < e->nout; i++)
        s_out_free(&e->out[i]);
    free(e->out);
    free(e->doomed);
    free(e->heap);
    free(e->wake);
    free(e);
    *pe = NULL;
}

/* ---- building replies ---- */

/* One HTTP request being handled. */
typedef struct {
    bx_engine_t *e;
    const bx_origin_t *from;
    int transport;
    const char *browser;              /* the request's cookie, "" if none */
    char set_browser[BX_BROWSER_LEN + 1]; /* cookie to set, "" if none */
    int64_t now;
    int64_t wall;                     /* wall clock at arrival */
    size_t nmsgs;                     /* messages in the batch */
    bx_buf_t replies;                 /* reply objects, comma-separated */
    int nreplies;
    bx_session_t *drain;              /* whose queue goes into this response */
    bx_session_t *ack_session;        /* ack connect whose batch is pending */
    size_t ack_off;                   /* where in replies its number goes */
    bx_session_t *first;              /* first session a message named */
    int parked;                       /* the request is a held connect */
} s_req_t;

static void s_advice(bx_buf_t *b, const bx_engine_cfg_t *cfg, const char *reconnect)
{
    /* Bayeux rule kept by both clients: send all of reconnect, interval and
     * timeout whenever advice is sent; CometD JS resets missing fields. */
    bx_buf_printf(b, ",\"advice\":{\"reconnect\":\"%s\",\"interval\":%lld,\"timeout\":%lld}",
                  reconnect, (long long)cfg->interval_ms, (long long)cfg->timeout_ms);
}

/* Starts a reply object: {"id":"..","channel":"..". */
static void s_reply_open(s_req_t *r, const char *id, const char *channel)
{
    bx_buf_t *b = &r->replies;
    if (r->nreplies++ > 0)
        bx_buf_putc(b, ',');
    bx_buf_putc(b, '{');
    if (id && *id) {
        bx_buf_puts(b, "\"id\":");
        bx_buf_put_json_string(b, id, strlen(id));
        bx_buf_putc(b, ',');
    }
    bx_buf_puts(b, "\"channel\":");
    if (channel)
        bx_buf_put_json_string(b, channel, strlen(channel));
    else
        bx_buf_puts(b, "null");
}

/* ---- extensions on replies ---- */

/* CometD TimesyncExtension, server side (shared bayeux-wire.md §5.3): what a
 * meta message's ext.timesync asks its reply to carry. */
static void s_tsync_in(json_object *msg, int64_t wall, bx_tsync_t *t)
{
    json_object *ext, *tx, *v;
    memset(t, 0, sizeof *t);
    if (!json_object_object_get_ex(msg, "ext", &ext) ||
        !json_object_is_type(ext, json_type_object) ||
        !json_object_object_get_ex(ext, "timesync", &tx) ||
        !json_object_is_type(tx, json_type_object) ||
        !json_object_object_get_ex(tx, "tc", &v) || !bx_json_is_number(v))
        return;
    t->on = 1;
    t->tc = json_object_get_int64(v);
    t->ts = wall;
    if (json_object_object_get_ex(tx, "l", &v) && bx_json_is_number(v)) {
        int64_t l = json_object_get_int64(v), o = 0;
        if (json_object_object_get_ex(tx, "o", &v) && bx_json_is_number(v))
            o = json_object_get_int64(v);
        t->a = (t->tc + o + l) - t->ts;
        t->has_a = 1;
        /* Answered only while the client is not yet accurate enough. */
        if (l != 0 && t->a > -25 && t->a < 25)
            t->on = 0;
    }
}

/* Appends ,"timesync":{...} if t answers. */
static void s_ext_members(bx_buf_t *b, const bx_tsync_t *t, int64_t wall)
{
    if (!t || !t->on)
        return;
    bx_buf_printf(b, ",\"timesync\":{\"tc\":%lld,\"ts\":%lld,\"p\":%lld", (long long)t->tc,
                  (long long)t->ts, (long long)(wall - t->ts));
    if (t->has_a)
        bx_buf_printf(b, ",\"a\":%lld", (long long)t->a);
    bx_buf_putc(b, '}');
}

/* Appends ,"ext":{...} with the members that apply: ack (JSON text),
 * timesync, replay (object members, without braces). */
static void s_ext(bx_buf_t *b, const char *ack, const bx_tsync_t *t, int64_t wall,
                  const char *replay, size_t rlen)
{
    if (!ack && !(t && t->on) && rlen == 0)
        return;
    /* A leading member keeps the commas simple: ack, else the replay. */
    bx_buf_puts(b, ",\"ext\":{");
    if (ack)
        bx_buf_printf(b, "\"ack\":%s", ack);
    if (rlen > 0) {
        bx_buf_printf(b, "%s\"replay\":{", ack ? "," : "");
        bx_buf_append(b, replay, rlen);
        bx_buf_putc(b, '}');
    }
    size_t mark = b->len;
    s_ext_members(b, t, wall);
    if (!ack && rlen == 0 && b->len > mark) {
        /* timesync alone: drop its leading comma */
        memmove(b->data + mark, b->data + mark + 1, b->len - mark - 1);
        b->len--;
        b->data[b->len] = '\0';
    }
    bx_buf_putc(b, '}');
}

/* Ends a reply object: the timesync answer of a meta message, then '}'. */
static void s_reply_close(s_req_t *r, const bx_tsync_t *t)
{
    s_ext(&r->replies, NULL, t, r->wall, NULL, 0);
    bx_buf_putc(&r->replies, '}');
}

static void s_reply_error(s_req_t *r, const char *id, const char *channel, const char *error,
                          json_object *subscription, const bx_tsync_t *t)
{
    bx_buf_t *b = &r->replies;
    s_reply_open(r, id, channel);
    bx_buf_puts(b, ",\"successful\":false,\"error\":");
    bx_buf_put_json_string(b, error, strlen(error));
    if (subscription)
        bx_buf_printf(b, ",\"subscription\":%s",
                      json_object_to_json_string_ext(subscription, JSON_OUT));
    s_reply_close(r, t);
}

/* Bayeux/CometD: an unknown session gets 402::session_unknown; on handshake
 * and connect replies with advice to handshake again. */
static void s_reply_unknown(s_req_t *r, const char *id, const char *channel, int advise,
                            const bx_tsync_t *t)
{
    bx_buf_t *b = &r->replies;
    s_reply_open(r, id, channel);
    bx_buf_puts(b, ",\"successful\":false,\"error\":\"402::session_unknown\"");
    if (advise)
        s_advice(b, &r->e->cfg, "handshake");
    s_reply_close(r, t);
}

/* ---- sending ---- */

/* Queues a reply for the next flush; takes the body's buffer. */
static bx_out_t *s_out(bx_engine_t *e, const bx_origin_t *to, int status, const char *browser,
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
    snprintf(o->browser, sizeof o->browser, "%s", browser ? browser : "");
    if (body) {
        o->body = body->data;
        o->len = body->len;
        bx_buf_init(body);
    }
    return o;
}

/* Sends "[ queued messages of s, extra ]": with the ack extension the
 * messages stay queued until acknowledged, else they leave the queue with
 * the reply (and come back if it cannot be sent). extra is one reply object
 * (or several, comma-separated). */
static void s_out_body(bx_engine_t *e, const bx_origin_t *to, const char *browser,
                       bx_session_t *s, const char *extra, size_t elen)
{
    bx_buf_t b;
    bx_buf_init(&b);
    bx_buf_putc(&b, '[');
    uint32_t n = s ? s->queue.count : 0;
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
    bx_out_t *o = s_out(e, to, 200, browser, &b);
    if (n == 0)
        return;
    snprintf(o->session, sizeof o->session, "%s", s->id);
    o->nsent = n;
    if (!s->ack) {
        o->taken = bx_malloc(n * sizeof *o->taken);
        for (uint32_t i = 0; i < n; i++)
            o->taken[i] = bx_queue_shift(&s->queue);
        o->ntaken = n;
    }
}

/* Ack: the batch number a connect reply of s carries. It names everything
 * queued now; messages queued later get the next number. A reply with
 * nothing new repeats the last number, so idle connects write nothing. */
static uint64_t s_ack_batch(bx_engine_t *e, bx_session_t *s)
{
    if (s->queue.count == 0)
        return s->batch - 1;
    uint64_t b = s->batch++;
    bx_persist_session_batch(e, s);
    return b;
}

/* Writes the ack member of a connect reply of s ("" if none) into buf. */
static const char *s_ack_member(bx_engine_t *e, bx_session_t *s, char *buf, size_t len)
{
    if (!s->ack)
        return NULL;
    snprintf(buf, len, "%llu", (unsigned long long)s_ack_batch(e, s));
    return buf;
}

/* The reply to a held connect of s, with everything queued for it. */
static void s_answer_parked(bx_engine_t *e, bx_session_t *s, int64_t now, const char *reconnect)
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
        s_advice(&reply, &e->cfg, reconnect);
    else if (s->park_advice)
        s_advice(&reply, &e->cfg, "retry");
    s_ext(&reply, s_ack_member(e, s, ack, sizeof ack), &s->park_ts, e->cfg.wall_ms(), NULL, 0);
    bx_buf_putc(&reply, '}');

    bx_origin_t to = s->park_origin;
    bx_state_unpark(e, s);
    s_out_body(e, &to, NULL, s, reply.data, reply.len);
    /* CometD: the expiry clock starts when a connect reply has been written. */
    s->expires = now + e->cfg.interval_ms + e->cfg.max_interval_ms;
    bx_buf_free(&reply);
}

int bx_engine_flush(bx_engine_t *e, int64_t now)
{
    if (e->store && bx_store_commit(e->store) != 0)
        return -1;
    while (e->nout > 0) {
        uint32_t nfail = 0;
        for (uint32_t i = 0; i < e->nout; i++) {
            bx_out_t *o = &e->out[i];
            if (e->send(e->ud, &o->to, o->status, o->browser[0] ? o->browser : NULL,
                        o->body ? o->body : "", o->len) == 0) {
                e->delivered += o->nsent;
                s_out_free(o);
                continue;
            }
            if (o->nsent > 0)
                bx_info(TAG, "session %s: its reply could not be sent; %u message(s) kept",
                        o->session, o->nsent);
            if (o->ntaken > 0)
                e->out[nfail++] = *o;    /* i >= nfail: nothing is overwritten early */
            else
                s_out_free(o);
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
            s_out_free(&fails[i]);
        }
        /* A connect held meanwhile takes them at once (its reply is sent by
         * the next round; no ack session is involved, nothing to commit). */
        for (uint32_t i = 0; i < n; i++) {
            bx_session_t *s = bx_state_session_get(e, fails[i].session);
            if (s && s->parked && s->queue.count > 0)
                s_answer_parked(e, s, now, NULL);
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
static void s_remove_session(bx_engine_t *e, bx_session_t *s, int64_t now, const char *why,
                             const char *reconnect)
{
    bx_debug(TAG, "session %s removed (%s)", s->id, why);
    bx_persist_session_del(e, s);
    bx_queue_clear(&s->queue);
    if (s->parked)
        s_answer_parked(e, s, now, reconnect);
    bx_state_session_free(e, &s);
}

/* Sessions a fan-out found over their max_queue (end-session policy). */
static void s_reap_doomed(bx_engine_t *e, int64_t now)
{
    while (e->ndoomed > 0) {
        bx_session_t *s = e->doomed[--e->ndoomed];
        s_remove_session(e, s, now, "queue overflow", "handshake");
        e->overflowed++;
    }
}

/* ---- message handlers ---- */

static bx_session_t *s_lookup(s_req_t *r, json_object *msg)
{
    const char *cid = bx_message_str(msg, "clientId");
    if (!cid)
        return NULL;
    bx_session_t *s = bx_state_session_get(r->e, cid);
    if (!s)
        return NULL;
    /* CometD: a session is found only with the BAYEUX_BROWSER cookie it was
     * created under (trustClientSession=false), so a leaked clientId alone
     * is useless. */
    if (r->e->cfg.browser_binding && strcmp(s->browser, r->browser) != 0)
        return NULL;
    if (!r->first)
        r->first = s;
    return s;
}

/* CometD: any message from a client extends its session's life. */
static void s_touch(s_req_t *r, bx_session_t *s)
{
    int64_t t = r->now + r->e->cfg.max_interval_ms;
    if (!s->parked && s->expires < t)
        s->expires = t;
}

/* The ext member of msg, if it is an object. */
static json_object *s_ext_of(json_object *msg)
{
    json_object *ext;
    if (json_object_object_get_ex(msg, "ext", &ext) && json_object_is_type(ext, json_type_object))
        return ext;
    return NULL;
}

static void s_handshake(s_req_t *r, json_object *msg, const char *id, const bx_tsync_t *t)
{
    bx_engine_t *e = r->e;
    const char *browser = r->browser;
    if (!*browser) {
        if (!r->set_browser[0] && bx_random_id(r->set_browser, BX_BROWSER_LEN) != 0) {
            s_reply_error(r, id, "/meta/handshake", "500::random_failed", NULL, t);
            return;
        }
        browser = r->set_browser;
    }
    bx_session_t *s = bx_state_session_new(e, browser, NULL);
    if (!s) {
        s_reply_error(r, id, "/meta/handshake", "500::random_failed", NULL, t);
        return;
    }
    /* Ack extension: on when the client asks with ext.ack === true. The
     * queue it needs is the session's own, there before anything can be
     * queued for it (CometD #521). */
    json_object *ext = s_ext_of(msg), *ack;
    s->ack = e->cfg.ack && ext && json_object_object_get_ex(ext, "ack", &ack) &&
             json_object_is_type(ack, json_type_boolean) && json_object_get_boolean(ack);
    s->batch = 1;
    s->created = r->wall;
    s->expires = r->now + e->cfg.interval_ms + e->cfg.max_interval_ms;
    bx_persist_session_new(e, s);
    bx_buf_t *b = &r->replies;
    s_reply_open(r, id, "/meta/handshake");
    /* Only the transports really served: listing websocket would make the
     * CometD client switch to it. */
    bx_buf_printf(b, ",\"successful\":true,\"clientId\":\"%s\",\"version\":\"1.0\","
                  "\"minimumVersion\":\"1.0\","
                  "\"supportedConnectionTypes\":[\"long-polling\",\"callback-polling\"]",
                  s->id);
    s_advice(b, &e->cfg, "retry");
    s_ext(b, s->ack ? "true" : NULL, t, r->wall, NULL, 0);
    bx_buf_putc(b, '}');
    bx_debug(TAG, "session %s created%s", s->id, s->ack ? " (ack)" : "");
}

/* Puts the pending ack batch number into the replies. final: the request's
 * response carries that session's queue; else it only repeats the number of
 * what was sent before, which acknowledges nothing new. */
static void s_splice_ack(s_req_t *r, int final)
{
    bx_session_t *s = r->ack_session;
    if (!s)
        return;
    char num[24];
    snprintf(num, sizeof num, "%llu",
             (unsigned long long)(final ? s_ack_batch(r->e, s) : s->batch - 1));
    bx_buf_t full;
    bx_buf_init(&full);
    bx_buf_append(&full, r->replies.data, r->ack_off);
    bx_buf_puts(&full, num);
    bx_buf_append(&full, r->replies.data + r->ack_off, r->replies.len - r->ack_off);
    bx_buf_free(&r->replies);
    r->replies = full;
    r->ack_session = NULL;
}

static void s_connect(s_req_t *r, json_object *msg, const char *id, const bx_tsync_t *t)
{
    bx_engine_t *e = r->e;
    bx_session_t *s = s_lookup(r, msg);
    if (!s) {
        s_reply_unknown(r, id, "/meta/connect", 1, t);
        return;
    }
    /* Bayeux/CometD: a newer connect releases a held one at once, with an
     * HTTP error (duplicateMetaConnectHttpResponseCode) and no body; its
     * messages stay queued for the newer one. */
    if (s->parked) {
        bx_origin_t old = s->park_origin;
        bx_state_unpark(e, s);
        s_out(e, &old, e->cfg.duplicate_connect_status, NULL, NULL);
    }
    /* Ack: what the client received up to ext.ack is done with; anything
     * sent after it is sent again (CometD #511: keyed by batch, so a lost
     * reply or a second connect loses nothing). */
    json_object *ext = s_ext_of(msg), *ackv;
    if (s->ack && ext && json_object_object_get_ex(ext, "ack", &ackv) &&
        json_object_is_type(ackv, json_type_int) && json_object_get_int64(ackv) > 0)
        bx_persist_ack(e, s, (uint64_t)json_object_get_int64(ackv));

    int64_t timeout = e->cfg.timeout_ms;
    json_object *advice, *tv;
    int client_advice = json_object_object_get_ex(msg, "advice", &advice) &&
                        json_object_is_type(advice, json_type_object);
    /* The client's advice.timeout holds this connect only (0 after a
     * handshake, a failure or a reload), never longer than ours. */
    if (client_advice && json_object_object_get_ex(advice, "timeout", &tv) &&
        bx_json_is_number(tv)) {
        int64_t ct = json_object_get_int64(tv);
        if (ct < timeout)
            timeout = ct < 0 ? 0 : ct;
    }
    int first = s->state == BX_SESSION_HANDSHAKEN;
    s->state = BX_SESSION_CONNECTED;
    /* Bayeux/CometD: the first connect after a handshake and a connect that
     * shares its request with other messages return at once, and so does one
     * that finds messages waiting, unacknowledged ones included (CometD
     * #595: a client whose reply was lost must not wait a whole timeout). */
    if (!first && r->nmsgs == 1 && s->queue.count == 0 && timeout > 0) {
        snprintf(s->park_id, sizeof s->park_id, "%s", id);
        s->park_advice = (uint8_t)client_advice;
        s->park_ts = *t;
        bx_state_park(e, s, r->from, r->now + timeout);
        r->parked = 1;
        return;
    }
    s_reply_open(r, id, "/meta/connect");
    bx_buf_puts(&r->replies, ",\"successful\":true");
    if (first || client_advice)
        s_advice(&r->replies, &e->cfg, "retry");
    s_splice_ack(r, 0);    /* an earlier connect of this batch */
    if (s->ack) {
        /* The batch number is only known once the whole request has been
         * handled (a publish in it may queue more): spliced in then. */
        bx_buf_puts(&r->replies, ",\"ext\":{\"ack\":");
        r->ack_off = r->replies.len;
        r->ack_session = s;
        s_ext_members(&r->replies, t, r->wall);
        bx_buf_putc(&r->replies, '}');
    } else {
        s_ext(&r->replies, NULL, t, r->wall, NULL, 0);
    }
    bx_buf_putc(&r->replies, '}');
    r->drain = s;
    s->expires = r->now + e->cfg.interval_ms + e->cfg.max_interval_ms;
}

static void s_disconnect(s_req_t *r, json_object *msg, const char *id, const bx_tsync_t *t)
{
    bx_session_t *s = s_lookup(r, msg);
    if (!s) {
        s_reply_unknown(r, id, "/meta/disconnect", 0, t);
        return;
    }
    if (r->first == s)
        r->first = NULL;
    if (r->ack_session == s)
        s_splice_ack(r, 0);
    if (r->drain == s)
        r->drain = NULL;
    s_remove_session(r->e, s, r->now, "disconnect", "none");
    s_reply_open(r, id, "/meta/disconnect");
    bx_buf_puts(&r->replies, ",\"successful\":true");
    s_reply_close(r, t);
}

/* Checks one subscription name. Returns NULL if acceptable, else the error. */
static const char *s_check_subscription(json_object *v, int *is_service)
{
    if (!json_object_is_type(v, json_type_string))
        return "403::subscription_invalid";
    const char *name = json_object_get_string(v);
    size_t len = (size_t)json_object_get_string_len(v);
    if (strlen(name) != len || bx_channel_parse(name, len) == BX_CHAN_INVALID)
        return "405::subscription_invalid";
    /* Bayeux: nothing under /meta is subscribable by a remote client. */
    if (bx_channel_is_meta(name) || strncmp(name, "/meta/*", 7) == 0 ||
        strcmp(name, "/meta") == 0)
        return "403::subscribe_denied";
    /* CometD: subscribing under /service succeeds and does nothing; service
     * messages are never broadcast. */
    *is_service = bx_channel_is_service(name) || strncmp(name, "/service/*", 10) == 0;
    return NULL;
}

static void s_subscription(s_req_t *r, json_object *msg, const char *id, const char *channel,
                           int subscribe, const bx_tsync_t *t)
{
    bx_session_t *s = s_lookup(r, msg);
    json_object *sub;
    if (!s) {
        s_reply_unknown(r, id, channel, 0, t);
        return;
    }
    s_touch(r, s);
    if (!json_object_object_get_ex(msg, "subscription", &sub) || sub == NULL) {
        s_reply_error(r, id, channel, "403::subscription_missing", NULL, t);
        return;
    }
    int is_array = json_object_is_type(sub, json_type_array);
    size_t n = is_array ? json_object_array_length(sub) : 1;
    if (is_array && n == 0) {
        s_reply_error(r, id, channel, "403::subscription_missing", sub, t);
        return;
    }
    const char **names = bx_malloc(n * sizeof *names);
    size_t nnames = 0;
    /* CometD: names are handled in order; the first failure stops the loop
     * and fails the reply (earlier ones stay done). */
    for (size_t i = 0; i < n; i++) {
        json_object *v = is_array ? json_object_array_get_idx(sub, i) : sub;
        int is_service = 0;
        const char *err = s_check_subscription(v, &is_service);
        if (err) {
            s_reply_error(r, id, channel, err, sub, t);
            free(names);
            return;
        }
        if (is_service)
            continue;
        const char *name = json_object_get_string(v);
        size_t len = strlen(name);
        if (subscribe) {
            if (bx_state_subscribe(r->e, s, name, len) == 0)
                bx_persist_sub(r->e, s, name, 1);
            names[nnames++] = name;
        } else if (bx_state_unsubscribe(r->e, s, name, len) == 0) {
            bx_persist_sub(r->e, s, name, 0);
        }
    }
    /* Replay (docs/persistence.md): ext.replay asks for the history kept
     * after a sequence number, queued before anything newer. */
    bx_buf_t replay;
    bx_buf_init(&replay);
    json_object *ext = s_ext_of(msg), *rv;
    if (subscribe && nnames > 0 && ext && json_object_object_get_ex(ext, "replay", &rv) &&
        rv != NULL)
        bx_history_replay(r->e, s, names, nnames, rv, &replay);
    free(names);
    s_reply_open(r, id, channel);
    bx_buf_printf(&r->replies, ",\"successful\":true,\"subscription\":%s",
                  json_object_to_json_string_ext(sub, JSON_OUT));
    s_ext(&r->replies, NULL, t, r->wall, replay.data, replay.len);
    bx_buf_putc(&r->replies, '}');
    bx_buf_free(&replay);
}

/* RFC 1123 date, as HTTP and the CometD clients write it. */
static void s_rfc1123(int64_t wall_ms, char *out, size_t len)
{
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;
    static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    gmtime_r(&t, &tm);
    snprintf(out, len, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* The message as subscribers get it: every field of the publisher's but
 * clientId (CometD: "do not leak clientId") and id (CometD resets it); with
 * a history, ext.seq; with the timestamp option, the server's timestamp. */
static bx_msg_t *s_delivery(bx_engine_t *e, json_object *msg, uint64_t seq, int64_t wall)
{
    bx_buf_t b;
    bx_buf_init(&b);
    bx_buf_putc(&b, '{');
    int n = 0, had_ext = 0;
    json_object_object_foreach(msg, key, val) {
        if (strcmp(key, "clientId") == 0 || strcmp(key, "id") == 0)
            continue;
        if (e->cfg.timestamp && strcmp(key, "timestamp") == 0)
            continue;
        if (n++ > 0)
            bx_buf_putc(&b, ',');
        bx_buf_put_json_string(&b, key, strlen(key));
        bx_buf_putc(&b, ':');
        if (seq > 0 && strcmp(key, "ext") == 0) {
            /* The publisher's ext, with our seq in place of any of its own. */
            had_ext = 1;
            bx_buf_putc(&b, '{');
            if (json_object_is_type(val, json_type_object)) {
                json_object_object_foreach(val, k2, v2) {
                    if (strcmp(k2, "seq") == 0)
                        continue;
                    bx_buf_put_json_string(&b, k2, strlen(k2));
                    bx_buf_putc(&b, ':');
                    bx_buf_puts(&b, v2 ? json_object_to_json_string_ext(v2, JSON_OUT) : "null");
                    bx_buf_putc(&b, ',');
                }
            }
            bx_buf_printf(&b, "\"seq\":%llu}", (unsigned long long)seq);
            continue;
        }
        bx_buf_puts(&b, val ? json_object_to_json_string_ext(val, JSON_OUT) : "null");
    }
    if (seq > 0 && !had_ext)
        bx_buf_printf(&b, "%s\"ext\":{\"seq\":%llu}", n++ ? "," : "", (unsigned long long)seq);
    if (e->cfg.timestamp) {
        char date[40];
        s_rfc1123(wall, date, sizeof date);
        bx_buf_printf(&b, "%s\"timestamp\":\"%s\"", n++ ? "," : "", date);
    }
    bx_buf_putc(&b, '}');
    bx_msg_t *m = bx_msg_new(b.data, b.len);
    bx_buf_free(&b);
    m->id = e->next_msgid++;
    m->time = wall;
    return m;
}

static void s_publish(s_req_t *r, json_object *msg, const char *id, const char *channel,
                      size_t clen)
{
    json_object *data;
    bx_engine_t *e = r->e;
    if (bx_channel_parse(channel, clen) != BX_CHAN_NAME) {
        s_reply_error(r, id, channel, "405::channel_invalid", NULL, NULL);
        return;
    }
    if (bx_channel_is_meta(channel) || strcmp(channel, "/meta") == 0) {
        s_reply_error(r, id, channel, "403::publish_denied", NULL, NULL);
        return;
    }
    if (!json_object_object_get_ex(msg, "data", &data)) {
        s_reply_error(r, id, channel, "400::data_missing", NULL, NULL);
        return;
    }
    /* CometD: publishing needs a session (Faye would accept it). */
    bx_session_t *s = s_lookup(r, msg);
    if (!s) {
        s_reply_unknown(r, id, channel, 0, NULL);
        return;
    }
    s_touch(r, s);
    if (!bx_channel_is_service(channel)) {
        bx_hist_t *h = bx_history_for(e, channel);
        bx_msg_t *m = s_delivery(e, msg, h ? h->seq + 1 : 0, r->wall);
        if (h) {
            h->seq++;
            bx_history_append(e, h, m, h->seq, 1);
        }
        bx_state_fanout(e, channel, m);
        bx_msg_unref(&m);
        s_reap_doomed(e, r->now);
        e->published++;
    }
    s_reply_open(r, id, channel);
    bx_buf_puts(&r->replies, ",\"successful\":true}");
}

static void s_message(s_req_t *r, json_object *msg)
{
    char id[BX_ID_MAX + 1];
    const char *channel = bx_message_str(msg, "channel");
    if (bx_message_id(msg, id, sizeof id) != 0) {
        s_reply_error(r, NULL, channel, "405::message_id_invalid", NULL, NULL);
        return;
    }
    if (!channel) {
        s_reply_error(r, id, NULL, "400::channel_missing", NULL, NULL);
        return;
    }
    json_object *cv = NULL;
    json_object_object_get_ex(msg, "channel", &cv);
    size_t clen = strlen(channel);
    /* A "\u0000" in the name would hide its tail from every check below and
     * reach subscribers of its head (s_check_subscription refuses it too). */
    if (clen != (size_t)json_object_get_string_len(cv) ||
        bx_channel_parse(channel, clen) == BX_CHAN_INVALID) {
        s_reply_error(r, id, channel, "405::channel_invalid", NULL, NULL);
        return;
    }
    bx_tsync_t t;
    memset(&t, 0, sizeof t);
    if (strncmp(channel, "/meta/", 6) == 0)
        s_tsync_in(msg, r->wall, &t);
    if (strcmp(channel, "/meta/handshake") == 0)
        s_handshake(r, msg, id, &t);
    else if (strcmp(channel, "/meta/connect") == 0)
        s_connect(r, msg, id, &t);
    else if (strcmp(channel, "/meta/disconnect") == 0)
        s_disconnect(r, msg, id, &t);
    else if (strcmp(channel, "/meta/subscribe") == 0)
        s_subscription(r, msg, id, channel, 1, &t);
    else if (strcmp(channel, "/meta/unsubscribe") == 0)
        s_subscription(r, msg, id, channel, 0, &t);
    else if (strncmp(channel, "/meta/", 6) == 0)
        s_reply_error(r, id, channel, "403::publish_denied", NULL, &t);
    else
        s_publish(r, msg, id, channel, clen);
}

/* Answers held connects of sessions that got messages. */
static void s_wake(bx_engine_t *e, int64_t now)
{
    while (e->nwake > 0) {
        bx_session_t *s = e->wake[--e->nwake];
        s->in_wake = 0;
        if (s->parked && s->queue.count > 0)
            s_answer_parked(e, s, now, NULL);
    }
}

void bx_engine_request(bx_engine_t *e, const bx_origin_t *from, int transport,
                       const char *browser, json_object *batch, int64_t now)
{
    s_req_t r;
    memset(&r, 0, sizeof r);
    r.e = e;
    r.from = from;
    r.transport = transport;
    r.browser = browser ? browser : "";
    r.now = now;
    r.wall = e->cfg.wall_ms();
    r.nmsgs = json_object_array_length(batch);
    bx_buf_init(&r.replies);

    for (size_t i = 0; i < r.nmsgs; i++)
        s_message(&r, json_object_array_get_idx(batch, i));

    /* CometD: a response also carries what is queued for the requesting
     * session (deliveries first, then replies), except over callback-polling
     * where messages only travel in connect replies, and for ack sessions,
     * whose messages only travel in connect replies (their batch numbers). */
    bx_session_t *drain = r.drain;
    if (!drain && transport == BX_TRANSPORT_LONG_POLLING && r.first && !r.first->ack)
        drain = r.first;

    if (!r.parked) {
        /* The queue that goes with the connect reply is final now. */
        s_splice_ack(&r, r.ack_session == drain);
        s_out_body(e, from, r.set_browser[0] ? r.set_browser : NULL, drain, r.replies.data,
                   r.replies.len);
    }
    /* else: the batch was one connect, now held; it is answered later. */
    bx_buf_free(&r.replies);
    s_wake(e, now);
}

void bx_engine_cancel(bx_engine_t *e, const bx_origin_t *from, int64_t now)
{
    bx_session_t *s = bx_state_parked_by_origin(e, from);
    if (!s)
        return;
    /* The client went away mid long-poll: nothing may go into that request.
     * Its messages wait for the next connect; the expiry clock starts. */
    bx_state_unpark(e, s);
    s->expires = now + e->cfg.interval_ms + e->cfg.max_interval_ms;
    bx_debug(TAG, "session %s: held connect cancelled by the client", s->id);
}

static void s_sweep(bx_engine_t *e, int64_t now)
{
    bx_session_t **dead = NULL;
    size_t ndead = 0, cap = 0, pos = 0;
    bx_session_t *s;
    while ((s = bx_map_next(e->sessions, &pos, NULL, NULL)) != NULL) {
        if (s->parked || s->expires > now)
            continue;
        if (ndead == cap) {
            cap = cap ? cap * 2 : 16;
            dead = bx_realloc(dead, cap * sizeof *dead);
        }
        dead[ndead++] = s;
    }
    for (size_t i = 0; i < ndead; i++) {
        s_remove_session(e, dead[i], now, "expired", "none");
        e->expired++;
    }
    free(dead);
}

int64_t bx_engine_tick(bx_engine_t *e, int64_t now)
{
    bx_session_t *s;
    while ((s = bx_state_heap_top(e)) != NULL && s->park_deadline <= now)
        s_answer_parked(e, s, now, NULL);
    if (now >= e->next_sweep) {
        s_sweep(e, now);
        bx_history_sweep(e, e->cfg.wall_ms());
        e->next_sweep = now + e->cfg.sweep_period_ms;
    }
    s = bx_state_heap_top(e);
    if (s && s->park_deadline < e->next_sweep)
        return s->park_deadline;
    return e->next_sweep;
}

void bx_engine_release_all(bx_engine_t *e, int64_t now)
{
    bx_session_t *s;
    while ((s = bx_state_heap_top(e)) != NULL)
        s_answer_parked(e, s, now, NULL);
}

void bx_engine_stats(const bx_engine_t *e, bx_engine_stats_t *st)
{
    memset(st, 0, sizeof *st);
    st->sessions = bx_map_count(e->sessions);
    st->channels = bx_map_count(e->channels);
    st->parked = e->nheap;
    st->published = e->published;
    st->delivered = e->delivered;
    st->dropped = e->dropped;
    st->overflowed = e->overflowed;
    st->expired = e->expired;
    st->acked = e->acked;
    st->replayed = e->replayed;
    st->histories = bx_map_count(e->hist);
    st->memory = bx_map_memory(e->sessions) + bx_map_memory(e->channels) +
                 bx_map_memory(e->parked) + st->sessions * sizeof(bx_session_t) +
                 (size_t)e->capheap * sizeof(*e->heap);
}
