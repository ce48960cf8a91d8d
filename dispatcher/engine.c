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
#include "token.h"
#include "util.h"
#include "wire.h"

#define TAG "engine"

static const int JSON_OUT = JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE;

const char *const bx_refusal_names[BX_REFUSAL_COUNT] = {
    "message_too_large", "too_many_sessions", "publish_rate_exceeded", "handshake_denied",
    "subscribe_denied", "publish_denied", "create_denied", "too_many_handshakes",
    "handshake_rate_exceeded",
};

/* The Bayeux errors of the refusals (CometD's security policy strings). */
static const char *const s_refusal_errors[BX_REFUSAL_COUNT] = {
    "413::message_too_large", "403::too_many_sessions", "429::publish_rate_exceeded",
    "403::handshake_denied", "403:denied_by_security_policy:subscribe_denied",
    "403:denied_by_security_policy:publish_denied",
    "403:denied_by_security_policy:create_denied",
    "400::too_many_handshakes", "429::handshake_rate_exceeded",
};

void bx_engine_cfg_defaults(bx_engine_cfg_t *cfg)
{
    cfg->timeout_ms = 20000;
    cfg->interval_ms = 0;
    cfg->max_interval_ms = 10000;
    cfg->sweep_period_ms = 997;
    cfg->browser_binding = 1;
    cfg->duplicate_connect_status = 500;
    cfg->max_queue = 10000;
    cfg->max_queue_bytes = 1 << 20;
    cfg->overflow_end = 0;
    cfg->max_reply_bytes = 512 << 10;
    cfg->queue_memory = 64 << 20;
    cfg->ack = 1;
    cfg->timestamp = 0;
    cfg->history = NULL;
    cfg->wall_ms = bx_wall_ms;
    cfg->max_message_size = 0;
    cfg->max_sessions_per_address = 1000;
    cfg->publish_rate = 0;
    cfg->max_handshakes_per_request = 1;
    cfg->handshake_rate = 20;
    cfg->handshake_burst = 200;
    cfg->unconnected_expiry_ms = 5000;
    cfg->stats_channel = NULL;
    cfg->stats_interval_ms = 10000;
    cfg->auth = BX_AUTH_OFF;
    cfg->auth_secret = NULL;
    cfg->auth_secret_len = 0;
    cfg->rules = NULL;
    cfg->rules_closed = 0;
    cfg->slice_work = 8192;
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
    e->next_stats = INT64_MIN;
    e->next_msgid = 1;
    e->addresses = bx_map_new();
    char err[256];
    e->rules = bx_rules_new(cfg->rules, cfg->rules_closed, err, sizeof err);
    if (!e->rules)
        bx_error(TAG, "%s", err);
    if (!e->rules || bx_history_init(e) != 0) {
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

static void s_pending_free(bx_engine_t *e);

void bx_engine_destroy(bx_engine_t **pe)
{
    if (!pe || !*pe)
        return;
    bx_engine_t *e = *pe;
    s_pending_free(e);
    size_t pos = 0;
    bx_session_t *s;
    /* Freeing edits the map: always take the first remaining session. */
    while ((pos = 0, s = bx_map_next(e->sessions, &pos, NULL, NULL)) != NULL)
        bx_state_session_free(e, &s);
    bx_map_destroy(&e->sessions);
    bx_map_destroy(&e->channels);
    bx_map_destroy(&e->parked);
    bx_map_destroy(&e->addresses);
    bx_admit_free(e);
    bx_rules_free(&e->rules);
    if (e->hist)
        bx_history_free(e);
    for (uint32_t i = 0; i < e->nout; i++)
        bx_out_free(&e->out[i]);
    free(e->out);
    free(e->doomed);
    free(e->heap);
    free(e->wake);
    free(e);
    *pe = NULL;
}

/* ---- building replies ---- */

/* One HTTP request being handled: on the stack, or, when its work is split
 * over several turns (bx_engine_busy), the engine's pending request. */
typedef struct bx_req {
    bx_engine_t *e;
    bx_origin_t from_;                /* its origin (from points here) */
    const bx_origin_t *from;
    int transport;
    const char *browser;              /* the request's cookie, "" if none */
    const char *addr;                 /* the client's address, "" if unknown */
    char browser_[BX_BROWSER_LEN + 1]; /* their copies while it is pending */
    char addr_[64];
    json_object *batch;               /* lent, or held while pending */
    size_t next;                      /* the next message to handle */
    int cancelled;                    /* its client went away meanwhile */
    char set_browser[BX_BROWSER_LEN + 1]; /* cookie to set, "" if none */
    int64_t now;
    int64_t wall;                     /* wall clock at arrival */
    size_t nmsgs;                     /* messages in the batch */
    int64_t handshakes;               /* handshakes in it so far */
    bx_buf_t replies;                 /* reply objects, comma-separated */
    int nreplies;
    bx_session_t *drain;              /* whose queue goes into this response */
    bx_session_t *ack_session;        /* ack connect whose batch is pending */
    size_t ack_off;                   /* where in replies its number goes */
    bx_session_t *first;              /* first session a message named */
    int parked;                       /* the request is a held connect */
} s_req_t;

/* The work of handling one message, in the units of cfg.slice_work (one
 * unit is one message queued for a session: a fan-out costs one per
 * subscriber reached). */
#define WORK_PER_MESSAGE 8

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

/* Ends a reply object: the timesync answer of a meta message, then '}'. */
static void s_reply_close(s_req_t *r, const bx_tsync_t *t)
{
    bx_ext(&r->replies, NULL, t, r->wall, NULL, 0);
    bx_buf_putc(&r->replies, '}');
}

/* An unsuccessful reply: its error, the subscription it was about (may be
 * NULL), reconnect advice (NULL: none), the timesync answer. */
static void s_reply_fail(s_req_t *r, const char *id, const char *channel, const char *error,
                         json_object *subscription, const char *advice, const bx_tsync_t *t)
{
    bx_buf_t *b = &r->replies;
    s_reply_open(r, id, channel);
    bx_buf_puts(b, ",\"successful\":false,\"error\":");
    bx_buf_put_json_string(b, error, strlen(error));
    if (subscription)
        bx_buf_printf(b, ",\"subscription\":%s",
                      json_object_to_json_string_ext(subscription, JSON_OUT));
    if (advice)
        bx_advice(b, &r->e->cfg, advice);
    s_reply_close(r, t);
}

static void s_reply_error(s_req_t *r, const char *id, const char *channel, const char *error,
                          json_object *subscription, const bx_tsync_t *t)
{
    s_reply_fail(r, id, channel, error, subscription, NULL, t);
}

/* Bayeux/CometD: an unknown session gets 402::session_unknown; on handshake
 * and connect replies with advice to handshake again. */
static void s_reply_unknown(s_req_t *r, const char *id, const char *channel, int advise,
                            const bx_tsync_t *t)
{
    s_reply_fail(r, id, channel, "402::session_unknown", NULL, advise ? "handshake" : NULL, t);
}

/* A refusal: counted, told to the event stream, answered with its error.
 * advice: the reconnect advice to add, or NULL. */
static void s_refuse(s_req_t *r, int why, const bx_session_t *s, const char *id,
                     const char *channel, json_object *subscription, const char *refused,
                     const bx_tsync_t *t, const char *advice)
{
    bx_engine_t *e = r->e;
    e->refused[why]++;
    if (e->event) {
        /* The event names what was refused: the subscribed channel, not
         * /meta/subscribe. */
        bx_event_t ev = { .kind = "refused", .client_id = s ? s->id : NULL,
                          .channel = refused ? refused : channel,
                          .reason = s_refusal_errors[why], .address = r->addr };
        e->event(e->event_ud, &ev);
    }
    s_reply_fail(r, id, channel, s_refusal_errors[why], subscription, advice, t);
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

/* How long a session lives without a connect: a session that never
 * connected is likely one nobody uses (docs/security.md, "Handshakes"). */
static int64_t s_lifetime(const bx_engine_t *e, const bx_session_t *s)
{
    int64_t live = e->cfg.interval_ms + e->cfg.max_interval_ms;
    int64_t u = e->cfg.unconnected_expiry_ms;
    return s->state == BX_SESSION_HANDSHAKEN && u > 0 && u < live ? u : live;
}

/* CometD: any message from a client extends its session's life. */
static void s_touch(s_req_t *r, bx_session_t *s)
{
    int64_t t = r->now + (s->state == BX_SESSION_HANDSHAKEN ? s_lifetime(r->e, s)
                                                            : r->e->cfg.max_interval_ms);
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
    /* Neither one request nor one client may take its address's whole
     * session budget (docs/security.md, "Handshakes"). No client sends two
     * handshakes in one request. Checked first: they cost no HMAC. */
    if (e->cfg.max_handshakes_per_request > 0 &&
        ++r->handshakes > e->cfg.max_handshakes_per_request) {
        s_refuse(r, BX_REFUSED_HANDSHAKES, NULL, id, "/meta/handshake", NULL, NULL, t, NULL);
        return;
    }
    if (!bx_admit_handshake(e, r->addr, r->now)) {
        s_refuse(r, BX_REFUSED_HANDSHAKE_RATE, NULL, id, "/meta/handshake", NULL, NULL, t,
                 "handshake");
        return;
    }
    const char *browser = r->browser;
    if (!*browser) {
        if (!r->set_browser[0] && bx_random_id(r->set_browser, BX_BROWSER_LEN) != 0) {
            s_reply_error(r, id, "/meta/handshake", "500::random_failed", NULL, t);
            return;
        }
        browser = r->set_browser;
    }
    /* Authentication (docs/security.md): a token in ext.token, signed with
     * the configured secret. One that is there but wrong is always refused. */
    json_object *ext = s_ext_of(msg), *tok = NULL;
    char subject[BX_TOKEN_SUBJECT_MAX + 1] = "";
    if (e->cfg.auth != BX_AUTH_OFF) {
        int has = ext && json_object_object_get_ex(ext, "token", &tok);
        int64_t exp;
        int rc = !has ? BX_TOKEN_MALFORMED
                 : !bx_json_cstr(tok) ? BX_TOKEN_MALFORMED
                 : bx_token_verify(e->cfg.auth_secret, e->cfg.auth_secret_len,
                                   bx_json_cstr(tok), r->wall / 1000, subject,
                                   sizeof subject, &exp);
        if (rc != BX_TOKEN_OK && (has || e->cfg.auth == BX_AUTH_REQUIRED)) {
            bx_info(TAG, "handshake from %s refused: %s", *r->addr ? r->addr : "?",
                    has ? bx_token_strerror(rc) : "no token");
            s_refuse(r, BX_REFUSED_HANDSHAKE, NULL, id, "/meta/handshake", NULL, NULL, t,
                     "none");
            return;
        }
        if (rc != BX_TOKEN_OK)
            subject[0] = '\0';
    }
    if (e->cfg.max_sessions_per_address > 0 && *r->addr &&
        bx_state_address_count(e, r->addr) >= (size_t)e->cfg.max_sessions_per_address) {
        s_refuse(r, BX_REFUSED_SESSIONS, NULL, id, "/meta/handshake", NULL, NULL, t,
                 "handshake");
        return;
    }
    bx_session_t *s = bx_state_session_new(e, browser, NULL);
    if (!s) {
        s_reply_error(r, id, "/meta/handshake", "500::random_failed", NULL, t);
        return;
    }
    /* Ack extension: on when the client asks with ext.ack === true. The
     * queue it needs is the session's own, there before anything can be
     * queued for it (CometD #521). */
    json_object *ack;
    s->ack = e->cfg.ack && ext && json_object_object_get_ex(ext, "ack", &ack) &&
             json_object_is_type(ack, json_type_boolean) && json_object_get_boolean(ack);
    s->batch = 1;
    s->created = r->wall;
    bx_state_address(e, s, r->addr);
    if (subject[0])
        s->subject = bx_strdup(subject);
    s->expires = r->now + s_lifetime(e, s);
    bx_persist_session_new(e, s);
    bx_persist_session_subject(e, s);
    bx_buf_t *b = &r->replies;
    s_reply_open(r, id, "/meta/handshake");
    /* Only the transports really served: listing websocket would make the
     * CometD client switch to it. */
    bx_buf_printf(b, ",\"successful\":true,\"clientId\":\"%s\",\"version\":\"1.0\","
                  "\"minimumVersion\":\"1.0\","
                  "\"supportedConnectionTypes\":[\"long-polling\",\"callback-polling\"]",
                  s->id);
    bx_advice(b, &e->cfg, "retry");
    bx_ext(b, s->ack ? "true" : NULL, t, r->wall, NULL, 0);
    bx_buf_putc(b, '}');
    bx_debug(TAG, "session %s created%s", s->id, s->ack ? " (ack)" : "");
    if (e->event) {
        bx_event_t ev = { .kind = "session.created", .client_id = s->id, .ack = s->ack,
                          .address = s->address };
        e->event(e->event_ud, &ev);
    }
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
             (unsigned long long)(final ? bx_ack_batch(r->e, s) : bx_ack_none(s)));
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
        bx_out(e, &old, e->cfg.duplicate_connect_status, NULL, NULL);
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
        bx_advice(&r->replies, &e->cfg, "retry");
    s_splice_ack(r, 0);    /* an earlier connect of this batch */
    if (s->ack) {
        /* The batch number is only known once the whole request has been
         * handled (a publish in it may queue more): spliced in then. */
        bx_buf_puts(&r->replies, ",\"ext\":{\"ack\":");
        r->ack_off = r->replies.len;
        r->ack_session = s;
        bx_ext_members(&r->replies, t, r->wall);
        bx_buf_putc(&r->replies, '}');
    } else {
        bx_ext(&r->replies, NULL, t, r->wall, NULL, 0);
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
    bx_remove_session(r->e, s, r->now, "disconnect", "none");
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
        /* Channel rules (docs/security.md); creating is subscribing to what
         * nobody subscribes to yet. */
        int why = -1;
        if (subscribe && !bx_rules_allow(r->e->rules, BX_OP_SUBSCRIBE, name, s->subject))
            why = BX_REFUSED_SUBSCRIBE;
        else if (subscribe && !bx_map_get(r->e->channels, name, len) &&
                 !bx_rules_allow(r->e->rules, BX_OP_CREATE, name, s->subject))
            why = BX_REFUSED_CREATE;
        if (why >= 0) {
            s_refuse(r, why, s, id, channel, sub, name, t, NULL);
            free(names);
            return;
        }
        int changed = subscribe ? bx_state_subscribe(r->e, s, name, len) == 0
                                : bx_state_unsubscribe(r->e, s, name, len) == 0;
        if (subscribe)
            names[nnames++] = name;
        if (!changed)
            continue;
        bx_persist_sub(r->e, s, name, subscribe);
        if (r->e->event) {
            bx_event_t ev = { .kind = subscribe ? "subscribe" : "unsubscribe",
                              .client_id = s->id, .channel = name };
            r->e->event(r->e->event_ud, &ev);
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
    bx_ext(&r->replies, NULL, t, r->wall, replay.data, replay.len);
    bx_buf_putc(&r->replies, '}');
    bx_buf_free(&replay);
}

/* The limits and rules of a publish (docs/security.md); 1 if refused. */
static int s_publish_refused(s_req_t *r, bx_session_t *s, json_object *msg, const char *id,
                             const char *channel)
{
    bx_engine_t *e = r->e;
    int why = -1;
    if (e->cfg.max_message_size > 0 &&
        strlen(json_object_to_json_string_ext(msg, JSON_OUT)) >
            (size_t)e->cfg.max_message_size) {
        why = BX_REFUSED_MESSAGE_SIZE;
    } else if (!bx_rules_allow(e->rules, BX_OP_PUBLISH, channel, s->subject)) {
        why = BX_REFUSED_PUBLISH;
    } else if (!bx_map_get(e->channels, channel, strlen(channel)) &&
               !bx_map_get(e->hist, channel, strlen(channel)) &&
               !bx_rules_allow(e->rules, BX_OP_CREATE, channel, s->subject)) {
        why = BX_REFUSED_CREATE;
    } else if (e->cfg.publish_rate > 0) {
        /* A bucket of one second's worth, refilled as time passes. */
        double rate = (double)e->cfg.publish_rate;
        if (!bx_bucket_take(&s->publish_bucket, rate, rate, r->now))
            why = BX_REFUSED_RATE;
    }
    if (why < 0)
        return 0;
    s_refuse(r, why, s, id, channel, NULL, NULL, NULL, NULL);
    return 1;
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
    if (s_publish_refused(r, s, msg, id, channel))
        return;
    if (!bx_channel_is_service(channel)) {
        bx_broadcast(e, channel, msg, r->wall, NULL);
    } else if (e->event) {
        /* CometD services: the application answers (docs/backend.md). */
        json_object *ext = NULL;
        json_object_object_get_ex(msg, "ext", &ext);
        bx_event_t ev = { .kind = "service", .client_id = s->id, .channel = channel,
                          .id = *id ? id : NULL, .data = data, .ext = ext };
        e->event(e->event_ud, &ev);
    }
    s_reply_open(r, id, channel);
    bx_buf_puts(&r->replies, ",\"successful\":true}");
}

size_t bx_broadcast(bx_engine_t *e, const char *channel, json_object *msg, int64_t wall,
                    uint64_t *seq)
{
    bx_hist_t *h = bx_history_for(e, channel);
    bx_msg_t *m = bx_delivery(e, msg, h ? h->seq + 1 : 0, wall);
    if (h) {
        h->seq++;
        bx_history_append(e, h, m, h->seq, 1);
    }
    if (seq)
        *seq = h ? h->seq : 0;
    size_t reached = bx_state_fanout(e, channel, m);
    bx_msg_unref(&m);
    /* Sessions the fan-out found over max-queue end at the flush: the
     * request being handled may still point at one of them. */
    e->published++;
    return reached;
}

static void s_message(s_req_t *r, json_object *msg)
{
    char id[BX_ID_MAX + 1];
    json_object *cv = NULL;
    json_object_object_get_ex(msg, "channel", &cv);
    const char *channel = json_object_is_type(cv, json_type_string)
                              ? json_object_get_string(cv) : NULL;
    if (bx_message_id(msg, id, sizeof id) != 0) {
        s_reply_error(r, NULL, channel, "405::message_id_invalid", NULL, NULL);
        return;
    }
    if (!channel) {
        s_reply_error(r, id, NULL, "400::channel_missing", NULL, NULL);
        return;
    }
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
        bx_ext_tsync_in(msg, r->wall, &t);
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

void bx_wake(bx_engine_t *e, int64_t now)
{
    while (e->nwake > 0) {
        bx_session_t *s = e->wake[--e->nwake];
        s->in_wake = 0;
        if (s->parked && s->queue.count > 0)
            bx_answer_parked(e, s, now, NULL);
    }
}

/* Handles the rest of r's messages, or as many as the turn's work allows
 * (cfg.slice_work; all of them when limit is 0). Returns 1 when it is done
 * and answered, 0 when messages are left for a later turn. */
static int s_run(s_req_t *r, int limit)
{
    bx_engine_t *e = r->e;
    while (r->next < r->nmsgs) {
        s_message(r, json_object_array_get_idx(r->batch, r->next++));
        e->work += WORK_PER_MESSAGE;
        if (limit && e->cfg.slice_work > 0 && e->work >= (uint64_t)e->cfg.slice_work &&
            r->next < r->nmsgs)
            return 0;
    }
    /* CometD: a response also carries what is queued for the requesting
     * session (deliveries first, then replies), except over callback-polling
     * where messages only travel in connect replies, and for ack sessions,
     * whose messages only travel in connect replies (their batch numbers). */
    bx_session_t *drain = r->drain;
    if (!drain && r->transport == BX_TRANSPORT_LONG_POLLING && r->first && !r->first->ack)
        drain = r->first;

    if (!r->parked) {
        /* The queue that goes with the connect reply is final now. */
        s_splice_ack(r, r->ack_session == drain);
        bx_out_body(e, r->from, r->set_browser[0] ? r->set_browser : NULL, drain,
                    r->replies.data, r->replies.len);
        if (r->cancelled)
            e->out[e->nout - 1].cancelled = 1;
    }
    /* else: the batch was one connect, now held; it is answered later. */
    bx_buf_free(&r->replies);
    bx_wake(e, r->now);
    return 1;
}

static void s_pending_free(bx_engine_t *e)
{
    s_req_t *r = e->pending;
    if (!r)
        return;
    json_object_put(r->batch);
    bx_buf_free(&r->replies);
    free(r);
    e->pending = NULL;
}

/* Finishes the pending request. limit: as s_run. */
static void s_resume(bx_engine_t *e, int limit)
{
    s_req_t *r = e->pending;
    if (r && s_run(r, limit))
        s_pending_free(e);
}

void bx_engine_request(bx_engine_t *e, const bx_origin_t *from, int transport,
                       const char *browser, const char *addr, json_object *batch, int64_t now)
{
    /* Requests are handled in the order they came: one that arrives while
     * another is pending (the caller did not wait for bx_engine_busy to
     * clear) waits for it to finish. */
    s_resume(e, 0);
    s_req_t r;
    memset(&r, 0, sizeof r);
    r.e = e;
    r.from_ = *from;
    r.from = &r.from_;
    r.transport = transport;
    r.browser = browser ? browser : "";
    r.addr = addr ? addr : "";
    r.now = now;
    r.wall = e->cfg.wall_ms();
    r.batch = batch;
    r.nmsgs = json_object_array_length(batch);
    bx_buf_init(&r.replies);
    if (s_run(&r, 1))
        return;
    /* Its work is over the turn's share: the rest waits for the next turns
     * (bx_engine_resume), so that the commit, the replies and the timers of
     * this turn are not held up by one request. */
    s_req_t *p = bx_malloc(sizeof *p);
    *p = r;
    p->from = &p->from_;
    snprintf(p->browser_, sizeof p->browser_, "%s", r.browser);
    snprintf(p->addr_, sizeof p->addr_, "%s", r.addr);
    p->browser = p->browser_;
    p->addr = p->addr_;
    p->batch = json_object_get(batch);
    e->pending = p;
}

int bx_engine_busy(const bx_engine_t *e)
{
    return e->pending != NULL;
}

void bx_engine_resume(bx_engine_t *e, int64_t now)
{
    (void)now;
    s_resume(e, 1);
}

void bx_engine_cancel(bx_engine_t *e, const bx_origin_t *from, int64_t now)
{
    /* Answered since the last flush: that reply is not sent, and what it
     * took from a queue goes back for the next connect. */
    for (uint32_t i = 0; i < e->nout; i++)
        if (e->out[i].to.peer == from->peer && e->out[i].to.reqid == from->reqid)
            e->out[i].cancelled = 1;
    s_req_t *p = e->pending;
    if (p && p->from_.peer == from->peer && p->from_.reqid == from->reqid)
        p->cancelled = 1;
    bx_session_t *s = bx_state_parked_by_origin(e, from);
    if (!s)
        return;
    /* The client went away mid long-poll: nothing may go into that request.
     * Its messages wait for the next connect; the expiry clock starts. */
    bx_state_unpark(e, s);
    s->expires = now + e->cfg.interval_ms + e->cfg.max_interval_ms;
    bx_debug(TAG, "session %s: held connect cancelled by the client", s->id);
}

/* Removes expired sessions. Returns 1 when it found them all, 0 when the
 * turn's work (cfg.slice_work, a session's queue counting one a message)
 * ran out first: the rest go next turn. */
static int s_sweep(bx_engine_t *e, int64_t now)
{
    bx_session_t **dead = NULL;
    size_t ndead = 0, cap = 0, pos = 0;
    bx_session_t *s;
    uint64_t work = 0;
    int all = 1;
    while ((s = bx_map_next(e->sessions, &pos, NULL, NULL)) != NULL) {
        if (s->parked || s->expires > now)
            continue;
        if (e->cfg.slice_work > 0 && e->work + work >= (uint64_t)e->cfg.slice_work &&
            ndead > 0) {
            all = 0;
            break;
        }
        if (ndead == cap) {
            cap = cap ? cap * 2 : 16;
            dead = bx_realloc(dead, cap * sizeof *dead);
        }
        dead[ndead++] = s;
        work += WORK_PER_MESSAGE + s->queue.count;
    }
    for (size_t i = 0; i < ndead; i++) {
        bx_remove_session(e, dead[i], now, "expired", "none");
        e->expired++;
    }
    e->work += work;
    free(dead);
    return all;
}

/* The stats channel: what the stats op says, for a dashboard page. */
static void s_publish_stats(bx_engine_t *e)
{
    bx_buf_t b;
    bx_buf_init(&b);
    bx_engine_stats_json(e, &b);
    json_object *data = json_tokener_parse(b.data);
    bx_buf_free(&b);
    if (!data)
        return;
    json_object *msg = json_object_new_object();
    json_object_object_add(msg, "channel", json_object_new_string(e->cfg.stats_channel));
    json_object_object_add(msg, "data", data);
    bx_broadcast(e, e->cfg.stats_channel, msg, e->cfg.wall_ms(), NULL);
    json_object_put(msg);
}

int64_t bx_engine_tick(bx_engine_t *e, int64_t now)
{
    bx_session_t *s;
    while ((s = bx_state_heap_top(e)) != NULL && s->park_deadline <= now)
        bx_answer_parked(e, s, now, NULL);
    /* No session is removed while a request is pending: it may point at
     * any of them. The sweep and the stats wait for it. */
    if (now >= e->next_sweep && !e->pending) {
        if (s_sweep(e, now)) {
            bx_admit_sweep(e, now);
            bx_history_sweep(e, e->cfg.wall_ms());
            e->next_sweep = now + e->cfg.sweep_period_ms;
        }
    }
    if (e->cfg.stats_channel && *e->cfg.stats_channel && now >= e->next_stats &&
        !e->pending) {
        if (e->next_stats != INT64_MIN)
            s_publish_stats(e);
        e->next_stats = now + e->cfg.stats_interval_ms;
    }
    int64_t next = e->next_sweep;
    s = bx_state_heap_top(e);
    if (s && s->park_deadline < next)
        next = s->park_deadline;
    if (e->cfg.stats_channel && *e->cfg.stats_channel && e->next_stats < next)
        next = e->next_stats;
    return next;
}

void bx_engine_release_all(bx_engine_t *e, int64_t now)
{
    s_resume(e, 0);
    bx_session_t *s;
    while ((s = bx_state_heap_top(e)) != NULL)
        bx_answer_parked(e, s, now, NULL);
}
