/* app.c - see app.h; the format is docs/backend.md (version 1). */
#include "app.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#include "bayeux.h"
#include "log.h"
#include "util.h"

#define TAG "app"
#define APP_BATCH 256         /* requests handled per loop iteration */
#define APP_MAX_FRAMES 8      /* routing id, envelope, the request */
#define EVENTS_HWM 100000     /* events kept for a slow listener, then dropped */

static const int JSON_OUT = JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE;

/* A reply or an event waiting for the flush: frames, the last one JSON. */
typedef struct {
    bx_buf_t head;            /* routing id + envelope (reply), or the topic */
    uint32_t nhead;           /* frames in head, each [u32 length][bytes] */
    char *json;
    size_t len;
    int is_event;             /* goes to the PUB socket, else to the ROUTER */
} s_pending_t;

struct bx_app {
    bx_engine_t *engine;
    void *router;             /* NULL: no app endpoint */
    void *pub;                /* NULL: no event stream */
    size_t max_request;
    s_pending_t *out;         /* replies and events, in order */
    uint32_t nout, capout;
    uint64_t event_seq;
    uint64_t requests, refused, dropped_events;
};

int bx_ipc_dir(const char *endpoint)
{
    char err[512];
    if (!endpoint || strncmp(endpoint, "ipc://", 6) != 0)
        return 0;
    if (bx_mkdirs_for(endpoint + 6, 0755, err, sizeof err) != 0) {
        bx_error(TAG, "%s", err);
        return -1;
    }
    return 0;
}

/* ---- what leaves at the flush ---- */

static s_pending_t *s_pending(bx_app_t *a)
{
    if (a->nout == a->capout) {
        a->capout = a->capout ? a->capout * 2 : 16;
        a->out = bx_realloc(a->out, a->capout * sizeof *a->out);
    }
    s_pending_t *p = &a->out[a->nout++];
    memset(p, 0, sizeof *p);
    bx_buf_init(&p->head);
    return p;
}

static void s_head_frame(s_pending_t *p, const void *data, size_t len)
{
    uint32_t l = (uint32_t)len;
    bx_buf_append(&p->head, (const char *)&l, sizeof l);
    bx_buf_append(&p->head, data, len);
    p->nhead++;
}

/* ---- events ---- */

static void s_event(void *ud, const bx_event_t *ev)
{
    bx_app_t *a = ud;
    if (!a->pub)
        return;
    char topic[1100];
    int is_service = strcmp(ev->kind, "service") == 0;
    snprintf(topic, sizeof topic, "%s%s%s", ev->kind, is_service ? ":" : "",
             is_service ? ev->channel : "");
    bx_buf_t b;
    bx_buf_init(&b);
    bx_buf_printf(&b, "{\"v\":1,\"event\":\"%s\",\"time\":%lld,\"seq\":%llu",
                  ev->kind, (long long)bx_wall_ms(), (unsigned long long)++a->event_seq);
    if (ev->client_id) {   /* a refused handshake has none */
        bx_buf_puts(&b, ",\"clientId\":");
        bx_buf_put_json_string(&b, ev->client_id, strlen(ev->client_id));
    }
    if (ev->channel) {
        bx_buf_puts(&b, ",\"channel\":");
        bx_buf_put_json_string(&b, ev->channel, strlen(ev->channel));
    }
    if (ev->reason)
        bx_buf_printf(&b, ",\"reason\":\"%s\"", ev->reason);
    if (strcmp(ev->kind, "session.created") == 0)
        bx_buf_printf(&b, ",\"ack\":%s", ev->ack ? "true" : "false");
    if (ev->address) {
        bx_buf_puts(&b, ",\"address\":");
        bx_buf_put_json_string(&b, ev->address, strlen(ev->address));
    }
    if (is_service) {
        if (ev->id) {
            bx_buf_puts(&b, ",\"id\":");
            bx_buf_put_json_string(&b, ev->id, strlen(ev->id));
        }
        bx_buf_printf(&b, ",\"data\":%s",
                      ev->data ? json_object_to_json_string_ext(ev->data, JSON_OUT) : "null");
        if (ev->ext)
            bx_buf_printf(&b, ",\"ext\":%s", json_object_to_json_string_ext(ev->ext, JSON_OUT));
    }
    bx_buf_putc(&b, '}');
    s_pending_t *p = s_pending(a);
    p->is_event = 1;
    s_head_frame(p, topic, strlen(topic));
    p->json = bx_buf_steal(&b, &p->len);
}

/* ---- requests ---- */

static void s_fail(bx_buf_t *b, const char *error, const char *message)
{
    bx_buf_printf(b, ",\"ok\":false,\"error\":\"%s\",\"message\":", error);
    bx_buf_put_json_string(b, message, strlen(message));
}

static const char *s_api_error(bx_api_err_t err, const char **message)
{
    switch (err) {
    case BX_API_UNKNOWN_CLIENT:
        *message = "no session has that clientId";
        return "unknown_client";
    case BX_API_INVALID_CHANNEL:
        *message = "not a valid channel name";
        return "invalid_channel";
    case BX_API_CHANNEL_DENIED:
        *message = "not a channel a backend may publish to (/meta/**, or /service/** "
                   "for publish: use deliver)";
        return "channel_denied";
    default:
        *message = "";
        return "ok";
    }
}

static const char *s_str(json_object *req, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(req, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    /* A "\u0000" would cut the name short behind every check. */
    if (strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v))
        return NULL;
    return json_object_get_string(v);
}

static void s_session_json(void *ud, const bx_session_info_t *si)
{
    bx_buf_t *b = ud;
    bx_buf_puts(b, "\"clientId\":");
    bx_buf_put_json_string(b, si->client_id, strlen(si->client_id));
    bx_buf_printf(b, ",\"ack\":%s,\"created\":%lld,\"queued\":%u,\"connected\":%s,\"address\":",
                  si->ack ? "true" : "false", (long long)si->created, si->queued,
                  si->connected ? "true" : "false");
    bx_buf_put_json_string(b, si->address, strlen(si->address));
}

typedef struct {
    bx_buf_t *b;
    int n;
} s_list_t;

static void s_sessions_item(void *ud, const bx_session_info_t *si)
{
    s_list_t *l = ud;
    bx_buf_puts(l->b, l->n++ ? ",{" : "{");
    s_session_json(l->b, si);
    bx_buf_printf(l->b, ",\"subscriptions\":%u}", si->subscriptions);
}

static void s_name_item(void *ud, const char *name)
{
    s_list_t *l = ud;
    if (l->n++)
        bx_buf_putc(l->b, ',');
    bx_buf_put_json_string(l->b, name, strlen(name));
}

static void s_session_item(void *ud, const bx_session_info_t *si)
{
    s_list_t *l = ud;
    bx_buf_putc(l->b, ',');
    s_session_json(l->b, si);
    bx_buf_puts(l->b, ",\"subscriptions\":[");
}

/* Writes the members of the reply to req after "v", "op" and "ref". */
static void s_op(bx_app_t *a, json_object *req, const char *op, bx_buf_t *b, int64_t now)
{
    bx_engine_t *e = a->engine;
    json_object *data = NULL, *ext = NULL, *v;
    const char *message;
    bx_api_err_t err = BX_API_OK;
    int has_data = json_object_object_get_ex(req, "data", &data);
    if (json_object_object_get_ex(req, "ext", &ext) && !json_object_is_type(ext, json_type_object)) {
        s_fail(b, "bad_request", "ext must be an object");
        return;
    }

    if (strcmp(op, "publish") == 0) {
        const char *channel = s_str(req, "channel");
        size_t reached = 0;
        uint64_t seq = 0;
        if (!channel || !has_data) {
            s_fail(b, "bad_request", "publish needs channel (a string) and data");
            return;
        }
        err = bx_engine_publish(e, channel, data, ext, &reached, &seq);
        if (!err) {
            bx_buf_printf(b, ",\"ok\":true,\"reached\":%zu", reached);
            if (seq)
                bx_buf_printf(b, ",\"seq\":%llu", (unsigned long long)seq);
            return;
        }
    } else if (strcmp(op, "deliver") == 0) {
        const char *cid = s_str(req, "clientId"), *channel = s_str(req, "channel");
        const char *id = s_str(req, "id");
        int successful = -1;
        if (json_object_object_get_ex(req, "id", &v) && !id) {
            s_fail(b, "bad_request", "id must be a string");
            return;
        }
        if (json_object_object_get_ex(req, "successful", &v)) {
            if (!json_object_is_type(v, json_type_boolean)) {
                s_fail(b, "bad_request", "successful must be true or false");
                return;
            }
            successful = json_object_get_boolean(v);
        }
        if (!cid || !channel || !has_data) {
            s_fail(b, "bad_request", "deliver needs clientId, channel (strings) and data");
            return;
        }
        err = bx_engine_deliver(e, cid, channel, data, id, successful, ext);
    } else if (strcmp(op, "disconnect") == 0) {
        const char *cid = s_str(req, "clientId");
        if (!cid) {
            s_fail(b, "bad_request", "disconnect needs clientId (a string)");
            return;
        }
        err = bx_engine_kick(e, cid, now);
    } else if (strcmp(op, "sessions") == 0) {
        int64_t limit = 1000;
        if (json_object_object_get_ex(req, "limit", &v)) {
            if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0) {
                s_fail(b, "bad_request", "limit must be a number >= 0");
                return;
            }
            limit = json_object_get_int64(v);
        }
        s_list_t l = { b, 0 };
        bx_buf_puts(b, ",\"ok\":true,\"sessions\":[");
        size_t n = bx_engine_sessions(e, (size_t)limit, s_sessions_item, &l);
        /* limit 0 lists all: a backend asked for it. */
        bx_buf_printf(b, "],\"count\":%zu", n);
        return;
    } else if (strcmp(op, "session") == 0) {
        const char *cid = s_str(req, "clientId");
        if (!cid) {
            s_fail(b, "bad_request", "session needs clientId (a string)");
            return;
        }
        bx_buf_t tmp;
        bx_buf_init(&tmp);
        s_list_t l = { &tmp, 0 };
        err = bx_engine_session(e, cid, s_session_item, NULL, &l);
        if (!err) {
            s_list_t names = { &tmp, 0 };
            bx_engine_session(e, cid, NULL, s_name_item, &names);
            bx_buf_puts(b, ",\"ok\":true");
            bx_buf_append(b, tmp.data, tmp.len);
            bx_buf_putc(b, ']');
        }
        bx_buf_free(&tmp);
        if (!err)
            return;
    } else if (strcmp(op, "subscribers") == 0) {
        const char *channel = s_str(req, "channel");
        if (!channel) {
            s_fail(b, "bad_request", "subscribers needs channel (a string)");
            return;
        }
        bx_buf_t tmp;
        bx_buf_init(&tmp);
        s_list_t l = { &tmp, 0 };
        size_t count = 0;
        err = bx_engine_subscribers(e, channel, s_name_item, &l, &count);
        if (!err) {
            bx_buf_puts(b, ",\"ok\":true,\"channel\":");
            bx_buf_put_json_string(b, channel, strlen(channel));
            bx_buf_printf(b, ",\"count\":%zu,\"subscribers\":[", count);
            bx_buf_append(b, tmp.data, tmp.len);
            bx_buf_putc(b, ']');
        }
        bx_buf_free(&tmp);
        if (!err)
            return;
    } else if (strcmp(op, "backup") == 0) {
        const char *path = s_str(req, "path");
        char why[512];
        if (!path) {
            s_fail(b, "bad_request", "backup needs path (a string)");
            return;
        }
        if (bx_engine_backup(e, path, why, sizeof why) != 0) {
            s_fail(b, "backup_failed", why);
            return;
        }
        bx_buf_puts(b, ",\"ok\":true,\"path\":");
        bx_buf_put_json_string(b, path, strlen(path));
        return;
    } else if (strcmp(op, "stats") == 0) {
        bx_buf_t st;
        bx_buf_init(&st);
        bx_engine_stats_json(e, &st);
        /* Its members, after "ok", then the endpoint's own. */
        bx_buf_puts(b, ",\"ok\":true,");
        bx_buf_append(b, st.data + 1, st.len - 2);
        bx_buf_printf(b, ",\"app_requests\":%llu,\"app_refused\":%llu,"
                      "\"events_dropped\":%llu", (unsigned long long)a->requests,
                      (unsigned long long)a->refused, (unsigned long long)a->dropped_events);
        bx_buf_free(&st);
        return;
    } else {
        s_fail(b, "unknown_op", "op must be publish, deliver, disconnect, sessions, session, "
               "subscribers, stats or backup");
        return;
    }
    if (err) {
        const char *code = s_api_error(err, &message);
        s_fail(b, code, message);
        return;
    }
    bx_buf_puts(b, ",\"ok\":true");
}

/* One request's JSON text: the whole reply object into b. */
static void s_request(bx_app_t *a, const char *text, size_t len, bx_buf_t *b, int64_t now)
{
    json_object *req = NULL;
    const char *op = NULL;
    json_object *ref = NULL;
    a->requests++;
    if (len > a->max_request) {
        bx_buf_puts(b, "{\"v\":1");
        s_fail(b, "too_large", "the request is larger than max-body");
        goto done;
    }
    /* The clients' parser (RFC 8259, strict UTF-8), so that what a backend
     * publishes reaches clients exactly as written too: json-c alone would
     * clamp integers beyond 64 bits. One object, not a batch. */
    size_t i = 0;
    while (i < len && strchr(" \t\r\n", text[i]) && text[i])
        i++;
    bx_limits_t lim = { .max_body = len, .max_messages = 1, .max_depth = 32 };
    json_object *wrapped = i < len && text[i] == '{' ? bx_batch_parse(text, len, &lim, NULL)
                                                    : NULL;
    if (wrapped)
        req = json_object_get(json_object_array_get_idx(wrapped, 0));
    json_object_put(wrapped);
    if (req) {
        op = s_str(req, "op");
        json_object_object_get_ex(req, "ref", &ref);
    }
    bx_buf_puts(b, "{\"v\":1");
    if (op) {
        bx_buf_puts(b, ",\"op\":");
        bx_buf_put_json_string(b, op, strlen(op));
    }
    if (ref)
        bx_buf_printf(b, ",\"ref\":%s", json_object_to_json_string_ext(ref, JSON_OUT));
    if (!req)
        s_fail(b, "bad_request", "a request is one JSON object");
    else if (!op)
        s_fail(b, "bad_request", "op is missing (a string)");
    else
        s_op(a, req, op, b, now);
done:
    bx_buf_putc(b, '}');
    json_object_put(req);
    if (strstr(b->data, "\"ok\":false"))
        a->refused++;
}

void bx_app_handle(bx_app_t *a, int64_t now)
{
    if (!a->router)
        return;
    for (int n = 0; n < APP_BATCH; n++) {
        zmq_msg_t fr[APP_MAX_FRAMES];
        int nfr = 0, more = 1;
        while (more) {
            zmq_msg_t *f = &fr[nfr < APP_MAX_FRAMES ? nfr : APP_MAX_FRAMES - 1];
            if (nfr >= APP_MAX_FRAMES)
                zmq_msg_close(f);   /* too many: keep overwriting the last */
            zmq_msg_init(f);
            if (zmq_msg_recv(f, a->router, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(f);
                if (nfr == 0)
                    return;   /* EAGAIN: nothing more */
                break;
            }
            more = zmq_msg_more(f);
            if (nfr < APP_MAX_FRAMES)
                nfr++;
        }
        /* [routing id][envelope...][""][request], or [routing id][request]. */
        if (nfr >= 2) {
            s_pending_t *p = s_pending(a);
            for (int i = 0; i < nfr - 1; i++)
                s_head_frame(p, zmq_msg_data(&fr[i]), zmq_msg_size(&fr[i]));
            bx_buf_t b;
            bx_buf_init(&b);
            s_request(a, zmq_msg_data(&fr[nfr - 1]), zmq_msg_size(&fr[nfr - 1]), &b, now);
            p->json = bx_buf_steal(&b, &p->len);
        }
        for (int i = 0; i < nfr; i++)
            zmq_msg_close(&fr[i]);
    }
}

void bx_app_flush(bx_app_t *a)
{
    for (uint32_t i = 0; i < a->nout; i++) {
        s_pending_t *p = &a->out[i];
        int is_event = p->is_event;
        void *s = is_event ? a->pub : a->router;
        size_t off = 0;
        int ok = s != NULL;
        for (uint32_t f = 0; ok && f < p->nhead; f++) {
            uint32_t l;
            memcpy(&l, p->head.data + off, sizeof l);
            off += sizeof l;
            ok = zmq_send(s, p->head.data + off, l, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0;
            off += l;
        }
        if (ok)
            ok = zmq_send(s, p->json, p->len, ZMQ_DONTWAIT) >= 0;
        if (!ok && is_event)
            a->dropped_events++;
        else if (!ok)
            bx_warn(TAG, "a reply to a backend could not be sent: %s", zmq_strerror(errno));
        bx_buf_free(&p->head);
        free(p->json);
    }
    a->nout = 0;
}

/* Binds sock to endpoint, giving an ipc:// file its mode. */
static int s_bind(void *sock, const char *endpoint, int mode, char *err, size_t errlen)
{
    if (bx_ipc_dir(endpoint) != 0 || zmq_bind(sock, endpoint) != 0) {
        bx_errf(err, errlen, "cannot bind %s: %s", endpoint, zmq_strerror(errno));
        return -1;
    }
    if (strncmp(endpoint, "ipc://", 6) == 0 && chmod(endpoint + 6, (mode_t)mode) != 0) {
        bx_errf(err, errlen, "cannot set the mode of %s: %s", endpoint + 6, strerror(errno));
        return -1;
    }
    return 0;
}

bx_app_t *bx_app_new(void *zctx, bx_engine_t *e, const bx_app_cfg_t *cfg, char *err,
                     size_t errlen)
{
    bx_app_t *a = bx_calloc(1, sizeof *a);
    int one = 1, zero = 0, hwm = EVENTS_HWM;
    a->engine = e;
    a->max_request = cfg->max_request;
    if (cfg->app_endpoint && *cfg->app_endpoint) {
        a->router = zmq_socket(zctx, ZMQ_ROUTER);
        if (!a->router ||
            zmq_setsockopt(a->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one) != 0 ||
            zmq_setsockopt(a->router, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
            s_bind(a->router, cfg->app_endpoint, cfg->mode, err, errlen) != 0)
            goto error;
    }
    if (cfg->events_endpoint && *cfg->events_endpoint) {
        a->pub = zmq_socket(zctx, ZMQ_PUB);
        if (!a->pub || zmq_setsockopt(a->pub, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
            zmq_setsockopt(a->pub, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
            s_bind(a->pub, cfg->events_endpoint, cfg->mode, err, errlen) != 0)
            goto error;
        bx_engine_on_event(e, s_event, a);
    }
    return a;
error:
    if (!err || !*err)
        bx_errf(err, errlen, "zmq socket: %s", zmq_strerror(errno));
    bx_app_destroy(&a);
    return NULL;
}

void *bx_app_socket(bx_app_t *a)
{
    return a ? a->router : NULL;
}

void bx_app_destroy(bx_app_t **pa)
{
    if (!pa || !*pa)
        return;
    bx_app_t *a = *pa;
    if (a->pub)
        bx_engine_on_event(a->engine, NULL, NULL);
    for (uint32_t i = 0; i < a->nout; i++) {
        bx_buf_free(&a->out[i].head);
        free(a->out[i].json);
    }
    free(a->out);
    if (a->router)
        zmq_close(a->router);
    if (a->pub)
        zmq_close(a->pub);
    free(a);
    *pa = NULL;
}
