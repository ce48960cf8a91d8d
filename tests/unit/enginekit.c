/* enginekit.c - see enginekit.h. */
#include "enginekit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a recording transport ---- */

sent_t g_sent[64];
int g_nsent;
int g_fail_reqid = -1;

int rec_send(void *ud, const bx_origin_t *to, int status, const char *browser,
             const char *body, size_t len)
{
    (void)ud;
    if ((int)to->reqid == g_fail_reqid)
        return -1;
    sent_t *s = &g_sent[g_nsent % 64];
    if (g_nsent++ >= 64)
        json_object_put(s->body);   /* the ring wrapped: the oldest goes */
    s->to = *to;
    s->status = status;
    snprintf(s->browser, sizeof s->browser, "%s", browser ? browser : "");
    s->body = len ? json_tokener_parse(body) : NULL;
    return 0;
}

void reset_sent(void)
{
    for (int i = 0; i < g_nsent && i < 64; i++)
        json_object_put(g_sent[i].body);
    g_nsent = 0;
}

sent_t *last(void)
{
    return g_nsent ? &g_sent[(g_nsent - 1) % 64] : NULL;
}

bx_engine_t *g_e;
const char *g_addr = "127.0.0.1";
int64_t g_now = 1000000;
uint64_t g_reqid = 1;

/* Sends one request (JSON text) from peer 0 with a cookie; returns its reqid. */
uint64_t req(int transport, const char *browser, const char *json)
{
    bx_origin_t o = { 0, g_reqid++ };
    json_object *b = json_tokener_parse(json);
    if (!b || !json_object_is_type(b, json_type_array)) {
        fprintf(stderr, "bad test json: %s\n", json);
        exit(2);
    }
    bx_engine_request(g_e, &o, transport, browser, g_addr, b, g_now);
    bx_engine_flush(g_e, g_now);
    json_object_put(b);
    return o.reqid;
}

/* Runs the engine's timers and sends what they answered. */
void tick(void)
{
    bx_engine_tick(g_e, g_now);
    bx_engine_flush(g_e, g_now);
}

json_object *field(json_object *o, const char *k)
{
    json_object *v = NULL;
    return o && json_object_object_get_ex(o, k, &v) ? v : NULL;
}

const char *sfield(json_object *o, const char *k)
{
    json_object *v = field(o, k);
    return v ? json_object_get_string(v) : NULL;
}

/* The element of the last reply whose channel is ch (the n-th such). */
json_object *elem(const char *ch, int n)
{
    sent_t *s = last();
    if (!s || !s->body)
        return NULL;
    for (size_t i = 0; i < json_object_array_length(s->body); i++) {
        json_object *m = json_object_array_get_idx(s->body, i);
        const char *c = sfield(m, "channel");
        if (c && strcmp(c, ch) == 0 && n-- == 0)
            return m;
    }
    return NULL;
}

int count_elems(void)
{
    sent_t *s = last();
    return s && s->body ? (int)json_object_array_length(s->body) : -1;
}

int is_true(json_object *m, const char *k)
{
    json_object *v = field(m, k);
    return v && json_object_get_boolean(v);
}

/* Handshakes with the given cookie; returns the clientId (buffer). */
const char *handshake(const char *browser, char *out)
{
    req(LP, browser, "[{\"id\":\"1\",\"channel\":\"/meta/handshake\",\"version\":\"1.0\","
                     "\"supportedConnectionTypes\":[\"long-polling\"]}]");
    snprintf(out, 64, "%s", sfield(elem("/meta/handshake", 0), "clientId"));
    return out;
}

uint64_t mconnect(const char *browser, const char *cid, const char *extra)
{
    char buf[512];
    snprintf(buf, sizeof buf, "[{\"id\":\"c\",\"channel\":\"/meta/connect\",\"clientId\":\"%s\","
             "\"connectionType\":\"long-polling\"%s}]", cid, extra ? extra : "");
    return req(LP, browser, buf);
}

void subscribe(const char *browser, const char *cid, const char *sub)
{
    char buf[512];
    snprintf(buf, sizeof buf, "[{\"id\":\"s\",\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\","
             "\"subscription\":%s}]", cid, sub);
    req(LP, browser, buf);
}

void publish(int transport, const char *browser, const char *cid, const char *ch,
             const char *data)
{
    char buf[512];
    snprintf(buf, sizeof buf, "[{\"id\":\"p\",\"channel\":\"%s\",\"clientId\":\"%s\","
             "\"data\":%s,\"ext\":{\"k\":1}}]", ch, cid, data);
    req(transport, browser, buf);
}

void fresh(bx_engine_cfg_t *cfg)
{
    reset_sent();
    bx_engine_destroy(&g_e);
    g_e = bx_engine_new(cfg, rec_send, NULL);
    g_fail_reqid = -1;
}


/* ---- with a database ---- */

bx_store_t *g_st;

void fresh_store(bx_engine_cfg_t *cfg)
{
    bx_store_close(&g_st);
    bx_store_cfg_t sc = { .path = ":memory:", .busy_timeout_ms = 1000 };
    char err[256];
    g_st = bx_store_open(&sc, err, sizeof err);
    if (!g_st) {
        fprintf(stderr, "store: %s\n", err);
        exit(2);
    }
    fresh(cfg);
    bx_engine_load(g_e, g_st, g_now);
    bx_engine_flush(g_e, g_now);
}

int reload_store(bx_engine_cfg_t *cfg)
{
    fresh(cfg);
    int rc = bx_engine_load(g_e, g_st, g_now);
    bx_engine_flush(g_e, g_now);
    return rc;
}

int64_t ext_int(json_object *m, const char *k)
{
    json_object *v = field(field(m, "ext"), k);
    return v ? json_object_get_int64(v) : -1;
}

const char *data_at(const char *ch, int i)
{
    json_object *m = elem(ch, i);
    return m ? json_object_get_string(field(m, "data")) : NULL;
}

const char *ack_handshake(const char *browser, char *out)
{
    req(LP, browser, "[{\"id\":\"1\",\"channel\":\"/meta/handshake\",\"version\":\"1.0\","
                     "\"supportedConnectionTypes\":[\"long-polling\"],\"ext\":{\"ack\":true}}]");
    snprintf(out, 64, "%s", sfield(elem("/meta/handshake", 0), "clientId"));
    return out;
}

uint64_t ack_connect(const char *browser, const char *cid, long long ack)
{
    char extra[64];
    snprintf(extra, sizeof extra, ",\"ext\":{\"ack\":%lld}", ack);
    return mconnect(browser, cid, extra);
}
