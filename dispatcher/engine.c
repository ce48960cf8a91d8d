/* engine.c - the Bayeux meta operations and publish, as CometD does them
 * (reference: shared bayeux-wire.md §2 and §7), answering both the CometD and
 * the Faye client.
 */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "engine_int.h"
#include "log.h"
#include "util.h"
#include "wire.h"

#define TAG "engine"

static const int JSON_OUT = JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE;

void bx_engine_cfg_defaults(bx_engine_cfg_t *cfg)
{
    cfg->timeout_ms = 20000;
    cfg->interval_ms = 0;
    cfg->max_interval_ms = 10000;
    cfg->sweep_period_ms = 997;
    cfg->browser_binding = 1;
    cfg->duplicate_connect_status = 500;
    cfg->max_queue = 10000;
}

bx_engine_t *bx_engine_new(const bx_engine_cfg_t *cfg, bx_engine_send_fn send, void *ud)
{
    bx_engine_t *e = bx_calloc(1, sizeof *e);
    e->cfg = *cfg;
    e->send = send;
    e->ud = ud;
    e->sessions = bx_map_new();
    e->channels = bx_map_new();
    e->parked = bx_map_new();
    e->next_sweep = INT64_MIN;
    return e;
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
    size_t nmsgs;                     /* messages in the batch */
    bx_buf_t replies;                 /* reply objects, comma-separated */
    int nreplies;
    bx_session_t *drain;              /* whose queue goes into this response */
    int drain_for_connect;            /* the response answers drain's connect */
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

static void s_reply_error(s_req_t *r, const char *id, const char *channel, const char *error,
                          json_object *subscription)
{
    bx_buf_t *b = &r->replies;
    s_reply_open(r, id, channel);
    bx_buf_puts(b, ",\"successful\":false,\"error\":");
    bx_buf_put_json_string(b, error, strlen(error));
    if (subscription)
        bx_buf_printf(b, ",\"subscription\":%s",
                      json_object_to_json_string_ext(subscription, JSON_OUT));
    bx_buf_putc(b, '}');
}

/* Bayeux/CometD: an unknown session gets 402::session_unknown; on handshake
 * and connect replies with advice to handshake again. */
static void s_reply_unknown(s_req_t *r, const char *id, const char *channel, int advise)
{
    bx_buf_t *b = &r->replies;
    s_reply_open(r, id, channel);
    bx_buf_puts(b, ",\"successful\":false,\"error\":\"402::session_unknown\"");
    if (advise)
        s_advice(b, &r->e->cfg, "handshake");
    bx_buf_putc(b, '}');
}

/* ---- sending ---- */

/* Builds "[ queued messages of s (if any), extra ]" into b. */
static void s_body(bx_buf_t *b, const bx_session_t *s, const char *extra, size_t elen)
{
    bx_buf_putc(b, '[');
    uint32_t n = s ? s->queue.count : 0;
    for (uint32_t i = 0; i < n; i++) {
        const bx_msg_t *m = bx_queue_at(&s->queue, i);
        if (i > 0)
            bx_buf_putc(b, ',');
        bx_buf_append(b, m->json, m->len);
    }
    if (elen > 0) {
        if (n > 0)
            bx_buf_putc(b, ',');
        bx_buf_append(b, extra, elen);
    }
    bx_buf_putc(b, ']');
}

/* The reply to a held connect of s, with everything queued for it. The
 * queue is emptied only if the reply reached the responder. */
static void s_answer_parked(bx_engine_t *e, bx_session_t *s, int64_t now, const char *reconnect)
{
    bx_buf_t b, reply;
    bx_buf_init(&b);
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
    bx_buf_putc(&reply, '}');
    s_body(&b, s, reply.data, reply.len);

    bx_origin_t to = s->park_origin;
    uint32_t n = s->queue.count;
    bx_state_unpark(e, s);
    if (e->send(e->ud, &to, 200, NULL, b.data, b.len) == 0) {
        bx_queue_pop(&s->queue, n);
        e->delivered += n;
    } else {
        bx_info(TAG, "session %s: held connect's responder is gone; %u message(s) kept",
                s->id, n);
    }
    /* CometD: the expiry clock starts when a connect reply has been written. */
    s->expires = now + e->cfg.interval_ms + e->cfg.max_interval_ms;
    bx_buf_free(&b);
    bx_buf_free(&reply);
}

static void s_remove_session(bx_engine_t *e, bx_session_t *s, int64_t now, const char *why)
{
    bx_debug(TAG, "session %s removed (%s)", s->id, why);
    if (s->parked) {
        /* Bayeux: a held connect of a session that ends is answered with
         * reconnect "none"; its queue dies with it. */
        bx_queue_clear(&s->queue);
        s_answer_parked(e, s, now, "none");
    }
    bx_state_session_free(e, &s);
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

static void s_handshake(s_req_t *r, json_object *msg, const char *id)
{
    bx_engine_t *e = r->e;
    const char *browser = r->browser;
    if (!*browser) {
        if (!r->set_browser[0] && bx_random_id(r->set_browser, BX_BROWSER_LEN) != 0) {
            s_reply_error(r, id, "/meta/handshake", "500::random_failed", NULL);
            return;
        }
        browser = r->set_browser;
    }
    bx_session_t *s = bx_state_session_new(e, browser);
    if (!s) {
        s_reply_error(r, id, "/meta/handshake", "500::random_failed", NULL);
        return;
    }
    s->expires = r->now + e->cfg.interval_ms + e->cfg.max_interval_ms;
    bx_buf_t *b = &r->replies;
    s_reply_open(r, id, "/meta/handshake");
    /* Only the transports really served: listing websocket would make the
     * CometD client switch to it. */
    bx_buf_printf(b, ",\"successful\":true,\"clientId\":\"%s\",\"version\":\"1.0\","
                  "\"minimumVersion\":\"1.0\","
                  "\"supportedConnectionTypes\":[\"long-polling\",\"callback-polling\"]",
                  s->id);
    s_advice(b, &e->cfg, "retry");
    bx_buf_putc(b, '}');
    bx_debug(TAG, "session %s created", s->id);
}

static void s_connect(s_req_t *r, json_object *msg, const char *id)
{
    bx_engine_t *e = r->e;
    bx_session_t *s = s_lookup(r, msg);
    if (!s) {
        s_reply_unknown(r, id, "/meta/connect", 1);
        return;
    }
    /* Bayeux/CometD: a newer connect releases a held one at once, with an
     * HTTP error (duplicateMetaConnectHttpResponseCode) and no body; its
     * messages stay queued for the newer one. */
    if (s->parked) {
        bx_origin_t old = s->park_origin;
        bx_state_unpark(e, s);
        e->send(e->ud, &old, e->cfg.duplicate_connect_status, NULL, "", 0);
    }
    int64_t timeout = e->cfg.timeout_ms;
    json_object *advice, *t;
    int client_advice = json_object_object_get_ex(msg, "advice", &advice) &&
                        json_object_is_type(advice, json_type_object);
    /* The client's advice.timeout holds this connect only (0 after a
     * handshake, a failure or a reload), never longer than ours. */
    if (client_advice && json_object_object_get_ex(advice, "timeout", &t) &&
        (json_object_is_type(t, json_type_int) || json_object_is_type(t, json_type_double))) {
        int64_t ct = json_object_get_int64(t);
        if (ct < timeout)
            timeout = ct < 0 ? 0 : ct;
    }
    int first = s->state == BX_SESSION_HANDSHAKEN;
    s->state = BX_SESSION_CONNECTED;
    /* Bayeux/CometD: the first connect after a handshake and a connect that
     * shares its request with other messages return at once, and so does one
     * that finds messages waiting. */
    if (!first && r->nmsgs == 1 && s->queue.count == 0 && timeout > 0) {
        snprintf(s->park_id, sizeof s->park_id, "%s", id);
        s->park_advice = (uint8_t)client_advice;
        bx_state_park(e, s, r->from, r->now + timeout);
        r->parked = 1;
        return;
    }
    s_reply_open(r, id, "/meta/connect");
    bx_buf_puts(&r->replies, ",\"successful\":true");
    if (first || client_advice)
        s_advice(&r->replies, &e->cfg, "retry");
    bx_buf_putc(&r->replies, '}');
    r->drain = s;
    r->drain_for_connect = 1;
    s->expires = r->now + e->cfg.interval_ms + e->cfg.max_interval_ms;
}

static void s_disconnect(s_req_t *r, json_object *msg, const char *id)
{
    bx_session_t *s = s_lookup(r, msg);
    if (!s) {
        s_reply_unknown(r, id, "/meta/disconnect", 0);
        return;
    }
    if (r->first == s)
        r->first = NULL;
    if (r->drain == s) {
        r->drain = NULL;
        r->drain_for_connect = 0;
    }
    s_remove_session(r->e, s, r->now, "disconnect");
    s_reply_open(r, id, "/meta/disconnect");
    bx_buf_puts(&r->replies, ",\"successful\":true}");
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
                           int subscribe)
{
    bx_session_t *s = s_lookup(r, msg);
    json_object *sub;
    if (!s) {
        s_reply_unknown(r, id, channel, 0);
        return;
    }
    s_touch(r, s);
    if (!json_object_object_get_ex(msg, "subscription", &sub) || sub == NULL) {
        s_reply_error(r, id, channel, "403::subscription_missing", NULL);
        return;
    }
    int is_array = json_object_is_type(sub, json_type_array);
    size_t n = is_array ? json_object_array_length(sub) : 1;
    if (is_array && n == 0) {
        s_reply_error(r, id, channel, "403::subscription_missing", sub);
        return;
    }
    /* CometD: names are handled in order; the first failure stops the loop
     * and fails the reply (earlier ones stay done). */
    for (size_t i = 0; i < n; i++) {
        json_object *v = is_array ? json_object_array_get_idx(sub, i) : sub;
        int is_service = 0;
        const char *err = s_check_subscription(v, &is_service);
        if (err) {
            s_reply_error(r, id, channel, err, sub);
            return;
        }
        if (is_service)
            continue;
        const char *name = json_object_get_string(v);
        size_t len = strlen(name);
        if (subscribe)
            bx_state_subscribe(r->e, s, name, len);
        else
            bx_state_unsubscribe(r->e, s, name, len);
    }
    s_reply_open(r, id, channel);
    bx_buf_printf(&r->replies, ",\"successful\":true,\"subscription\":%s}",
                  json_object_to_json_string_ext(sub, JSON_OUT));
}

/* The message as subscribers get it: every field of the publisher's but
 * clientId (CometD: "do not leak clientId") and id (CometD resets it). */
static bx_msg_t *s_delivery(json_object *msg)
{
    bx_buf_t b;
    bx_buf_init(&b);
    bx_buf_putc(&b, '{');
    int n = 0;
    json_object_object_foreach(msg, key, val) {
        if (strcmp(key, "clientId") == 0 || strcmp(key, "id") == 0)
            continue;
        if (n++ > 0)
            bx_buf_putc(&b, ',');
        bx_buf_put_json_string(&b, key, strlen(key));
        bx_buf_putc(&b, ':');
        bx_buf_puts(&b, val ? json_object_to_json_string_ext(val, JSON_OUT) : "null");
    }
    bx_buf_putc(&b, '}');
    bx_msg_t *m = bx_msg_new(b.data, b.len);
    bx_buf_free(&b);
    return m;
}

static void s_publish(s_req_t *r, json_object *msg, const char *id, const char *channel,
                      size_t clen)
{
    json_object *data;
    if (bx_channel_parse(channel, clen) != BX_CHAN_NAME) {
        s_reply_error(r, id, channel, "405::channel_invalid", NULL);
        return;
    }
    if (bx_channel_is_meta(channel) || strcmp(channel, "/meta") == 0) {
        s_reply_error(r, id, channel, "403::publish_denied", NULL);
        return;
    }
    if (!json_object_object_get_ex(msg, "data", &data)) {
        s_reply_error(r, id, channel, "400::data_missing", NULL);
        return;
    }
    /* CometD: publishing needs a session (Faye would accept it). */
    bx_session_t *s = s_lookup(r, msg);
    if (!s) {
        s_reply_unknown(r, id, channel, 0);
        return;
    }
    s_touch(r, s);
    if (!bx_channel_is_service(channel)) {
        bx_msg_t *m = s_delivery(msg);
        bx_state_fanout(r->e, channel, m);
        bx_msg_unref(&m);
        r->e->published++;
    }
    s_reply_open(r, id, channel);
    bx_buf_puts(&r->replies, ",\"successful\":true}");
}

static void s_message(s_req_t *r, json_object *msg)
{
    char id[BX_ID_MAX + 1];
    const char *channel = bx_message_str(msg, "channel");
    if (bx_message_id(msg, id, sizeof id) != 0) {
        s_reply_error(r, NULL, channel, "405::message_id_invalid", NULL);
        return;
    }
    if (!channel) {
        s_reply_error(r, id, NULL, "400::channel_missing", NULL);
        return;
    }
    json_object *cv = NULL;
    json_object_object_get_ex(msg, "channel", &cv);
    size_t clen = strlen(channel);
    /* A "\u0000" in the name would hide its tail from every check below and
     * reach subscribers of its head (s_check_subscription refuses it too). */
    if (clen != (size_t)json_object_get_string_len(cv) ||
        bx_channel_parse(channel, clen) == BX_CHAN_INVALID) {
        s_reply_error(r, id, channel, "405::channel_invalid", NULL);
        return;
    }
    if (strcmp(channel, "/meta/handshake") == 0)
        s_handshake(r, msg, id);
    else if (strcmp(channel, "/meta/connect") == 0)
        s_connect(r, msg, id);
    else if (strcmp(channel, "/meta/disconnect") == 0)
        s_disconnect(r, msg, id);
    else if (strcmp(channel, "/meta/subscribe") == 0)
        s_subscription(r, msg, id, channel, 1);
    else if (strcmp(channel, "/meta/unsubscribe") == 0)
        s_subscription(r, msg, id, channel, 0);
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
    r.nmsgs = json_object_array_length(batch);
    bx_buf_init(&r.replies);

    for (size_t i = 0; i < r.nmsgs; i++)
        s_message(&r, json_object_array_get_idx(batch, i));

    /* CometD: a response also carries what is queued for the requesting
     * session (deliveries first, then replies), except over callback-polling
     * where messages only travel in connect replies. */
    bx_session_t *drain = r.drain;
    if (!drain && transport == BX_TRANSPORT_LONG_POLLING)
        drain = r.first;

    if (!r.parked) {
        bx_buf_t body;
        bx_buf_init(&body);
        s_body(&body, drain, r.replies.data, r.replies.len);
        uint32_t n = drain ? drain->queue.count : 0;
        if (e->send(e->ud, from, 200, r.set_browser[0] ? r.set_browser : NULL,
                    body.data, body.len) == 0 && n > 0) {
            bx_queue_pop(&drain->queue, n);
            e->delivered += n;
        }
        bx_buf_free(&body);
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
        s_remove_session(e, dead[i], now, "expired");
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
    st->expired = e->expired;
    st->memory = bx_map_memory(e->sessions) + bx_map_memory(e->channels) +
                 bx_map_memory(e->parked) + st->sessions * sizeof(bx_session_t) +
                 (size_t)e->capheap * sizeof(*e->heap);
}
