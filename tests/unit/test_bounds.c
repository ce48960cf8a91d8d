/* test_bounds.c - what one client can make bayeuxd hold, in bytes: the
 * per-session bound (max_queue_bytes), the size of one reply
 * (max_reply_bytes, ack batches sized to match, across lost replies and a
 * restart), the budget of all queues (queue_memory, largest first, shared
 * messages counted once), no reply for a request whose client left, and a
 * request whose work is split over turns (slice_work). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "enginekit.h"
#include "log.h"
#include "msg.h"
#include "store.h"
#include "tap.h"

/* Publishes "<i>" padded with dots to 200 characters on ch. */
static void publish_n(const char *browser, const char *cid, const char *ch, int i)
{
    char d[256];
    int n = snprintf(d, sizeof d, "\"%d", i);
    memset(d + n, '.', 200 - (size_t)n);
    d[200] = '"';
    d[201] = '\0';
    publish(CP, browser, cid, ch, d);
}

/* The number a delivery's data starts with. */
static int num_at(const char *ch, int i)
{
    const char *d = data_at(ch, i);
    return d ? atoi(d) : -1;
}

static bx_engine_stats_t stats(void)
{
    bx_engine_stats_t st;
    bx_engine_stats(g_e, &st);
    return st;
}

/* What one publish_n message takes in a queue (its json and the entry),
 * and in a reply (its json). */
static uint64_t g_msglen, g_json;

static void measure_msglen(void)
{
    bx_engine_cfg_t cfg;
    bx_engine_cfg_defaults(&cfg);
    fresh(&cfg);
    char a[64], p[64];
    handshake("b", a);
    mconnect("b", a, NULL);
    handshake("bp", p);
    subscribe("b", a, "\"/m\"");
    publish_n("bp", p, "/m", 1);
    bx_engine_stats_t st = stats();
    g_msglen = st.queue_max_bytes;
    g_json = g_msglen - sizeof(bx_qent_t);
    ok(g_json > 200 && g_json < 400, "one message takes %llu bytes in a queue",
       (unsigned long long)g_msglen);
    is_int((long long)st.queued_bytes,
           (long long)(g_json + sizeof(bx_msg_t) + 1 + 4 * sizeof(bx_qent_t)),
           "in memory: the message with its header, and the queue's ring of 4");
}

/* A subscriber a on ch and a publisher p, both connected, in a fresh engine
 * (with a database when store); then p publishes messages 0..npub-1 on ch. */
static void pair(bx_engine_cfg_t *cfg, int store, int ack, char *a, char *p, const char *ch,
                 int npub)
{
    char sub[64];
    if (store)
        fresh_store(cfg);
    else
        fresh(cfg);
    if (ack) {
        ack_handshake("b", a);
        ack_connect("b", a, 0);
    } else {
        handshake("b", a);
        mconnect("b", a, NULL);
    }
    handshake("bp", p);
    mconnect("bp", p, NULL);
    snprintf(sub, sizeof sub, "\"%s\"", ch);
    subscribe("b", a, sub);
    for (int i = 0; i < npub; i++)
        publish_n("bp", p, ch, i);
}

static void t_queue_bytes(void)
{
    bx_engine_cfg_t cfg;
    bx_engine_cfg_defaults(&cfg);
    cfg.max_queue_bytes = (int64_t)(3 * g_msglen + g_msglen / 2);
    char a[64], p[64];
    pair(&cfg, 0, 0, a, p, "/q", 5);
    bx_engine_stats_t st = stats();
    is_int((long long)st.queue_max_bytes, (long long)(3 * g_msglen), "3.5 messages' bytes hold 3");
    is_int((long long)st.dropped, 2, "the 2 oldest were dropped, counted");
    mconnect("b", a, NULL);
    is_int(count_elems(), 4, "the connect carries 3 messages");
    is_int(num_at("/q", 0), 2, "from the third published");

    /* One message larger than the bound still gets through alone. */
    cfg.max_queue_bytes = 100;
    pair(&cfg, 0, 0, a, p, "/q", 0);
    publish_n("bp", p, "/q", 7);
    publish_n("bp", p, "/q", 8);
    mconnect("b", a, NULL);
    is_int(count_elems(), 2, "a bound smaller than one message keeps the newest");
    is_int(num_at("/q", 0), 8, "which is the last published");

    /* end-session: the session goes, its client handshakes again. */
    cfg.max_queue_bytes = (int64_t)(2 * g_msglen);
    cfg.overflow_end = 1;
    pair(&cfg, 0, 0, a, p, "/q", 3);
    mconnect("b", a, NULL);
    is_str(sfield(elem("/meta/connect", 0), "error"), "402::session_unknown",
           "end-session: over its bytes, the session is ended");
    is_int((long long)stats().overflowed, 1, "and counted");
}

static void t_queue_bytes_ack(void)
{
    bx_engine_cfg_t cfg;
    bx_engine_cfg_defaults(&cfg);
    cfg.max_queue_bytes = (int64_t)(3 * g_msglen);
    char a[64], p[64];
    pair(&cfg, 1, 1, a, p, "/q", 6);
    ok(bx_store_check(g_st, stderr) == 0, "ack: the dropped messages' rows are gone too");
    ok(reload_store(&cfg) == 0, "restart");
    ack_connect("b", a, 0);
    is_int(count_elems(), 4, "after a restart the ack session has its 3 newest");
    is_int(num_at("/q", 0), 3, "3, 4, 5");
}

/* Connects (acknowledging *ack) until nothing more comes; checks that the
 * messages 0..n-1 arrive once each, in order, in replies of at most cap
 * bytes of messages. Returns the replies it took. */
static int drain(const char *a, int ack_session, long long *ack, int n, uint64_t cap,
                 const char *what)
{
    int next = 0, replies = 0, bad_size = 0, bad_order = 0;
    for (int guard = 0; guard < 100; guard++) {
        reset_sent();
        if (ack_session)
            ack_connect("b", a, *ack);
        else
            mconnect("b", a, NULL);
        if (g_nsent == 0)
            break;     /* held: nothing left */
        int k = count_elems() - 1;
        if (k <= 0)
            break;
        replies++;
        if ((uint64_t)k * g_json > cap && k > 1)
            bad_size++;
        for (int i = 0; i < k; i++)
            if (num_at("/q", i) != next++)
                bad_order++;
        if (ack_session)
            *ack = ext_int(elem("/meta/connect", 0), "ack");
    }
    is_int(next, n, "%s: all %d delivered", what, n);
    is_int(bad_order, 0, "%s: once each, in order", what);
    is_int(bad_size, 0, "%s: no reply over max-reply-bytes", what);
    return replies;
}

static void t_reply_cap(void)
{
    bx_engine_cfg_t cfg;
    bx_engine_cfg_defaults(&cfg);
    uint64_t cap = 3 * g_json + 10;
    cfg.max_reply_bytes = (int64_t)cap;
    char a[64], p[64];
    long long ack = 0;

    pair(&cfg, 0, 0, a, p, "/q", 10);
    is_int(drain(a, 0, &ack, 10, cap, "no ack"), 4, "no ack: 10 messages in 4 replies");
    is_int((long long)stats().queued_bytes, 0, "an emptied queue gives its ring of 16 back");

    /* A message larger than the cap goes alone. */
    cfg.max_reply_bytes = 50;
    pair(&cfg, 0, 0, a, p, "/q", 3);
    mconnect("b", a, NULL);
    is_int(count_elems(), 2, "a message over the cap goes alone");

    /* Ack: batches are closed at the cap as messages are queued, so every
     * reply carries whole batches; the number names exactly those. */
    cfg.max_reply_bytes = (int64_t)cap;
    pair(&cfg, 1, 1, a, p, "/q", 10);
    ack = 0;
    ok(drain(a, 1, &ack, 10, cap, "ack") >= 4, "ack: 10 messages in 4 replies or more");
    ok(bx_store_check(g_st, stderr) == 0, "ack: the database is consistent");
    is_int((long long)stats().acked, 10, "ack: all 10 acknowledged");
}

static void t_reply_cap_ack_lost_and_restart(void)
{
    bx_engine_cfg_t cfg;
    bx_engine_cfg_defaults(&cfg);
    uint64_t cap = 3 * g_json + 10;
    cfg.max_reply_bytes = (int64_t)cap;
    char a[64], p[64];
    pair(&cfg, 1, 1, a, p, "/q", 10);

    /* The first reply is lost: the client acknowledges 0 again. */
    ack_connect("b", a, 0);
    int first = count_elems() - 1;
    long long n1 = ext_int(elem("/meta/connect", 0), "ack");
    ok(first > 0 && first < 10, "a first reply of %d messages, batch %lld", first, n1);
    ack_connect("b", a, 0);
    is_int(count_elems() - 1, first, "lost reply: the same messages again");
    is_int(num_at("/q", 0), 0, "from the first");

    /* Acknowledged; the next reply arrives, and bayeuxd restarts before
     * the client acknowledges it: its number still names those messages. */
    long long ack = ext_int(elem("/meta/connect", 0), "ack");
    ack_connect("b", a, ack);
    int second = count_elems() - 1;
    long long n2 = ext_int(elem("/meta/connect", 0), "ack");
    is_int(num_at("/q", 0), first, "the next reply starts after them");
    ok(reload_store(&cfg) == 0, "restart with that reply unacknowledged");
    ack_connect("b", a, n2);
    is_int(num_at("/q", 0), first + second, "its acknowledgement after the restart drops "
           "exactly its messages");
    int got = first + second;
    for (int guard = 0; guard < 20; guard++) {
        int k = count_elems() - 1;
        if (k <= 0 || num_at("/q", 0) != got)
            break;
        got += k;
        ack = ext_int(elem("/meta/connect", 0), "ack");
        reset_sent();
        ack_connect("b", a, ack);
    }
    is_int(got, 10, "everything, once, in order, across the restart");
    is_int(g_nsent, 0, "then the connect is held");
    ok(bx_store_check(g_st, stderr) == 0, "the database is consistent");
}

/* A fresh engine with a connected publisher p and n connected sessions
 * s[i] (cookie "b<i>"), each subscribed to fmt, its "%d" replaced by i. */
static void sessions(bx_engine_cfg_t *cfg, char *p, char s[][64], int n, const char *fmt)
{
    fresh(cfg);
    handshake("bp", p);
    mconnect("bp", p, NULL);
    for (int i = 0; i < n; i++) {
        char b[16], sub[64];
        snprintf(b, sizeof b, "b%d", i);
        handshake(b, s[i]);
        mconnect(b, s[i], NULL);
        const char *at = strstr(fmt, "%d");
        if (at)
            snprintf(sub, sizeof sub, "%.*s%d%s", (int)(at - fmt), fmt, i, at + 2);
        else
            snprintf(sub, sizeof sub, "%s", fmt);
        subscribe(b, s[i], sub);
    }
}

static void t_queue_memory(void)
{
    bx_engine_cfg_t cfg;
    bx_engine_cfg_defaults(&cfg);
    cfg.max_queue_bytes = 0;
    cfg.queue_memory = (int64_t)(40 * g_msglen);
    char s[8][64], p[64];
    sessions(&cfg, p, s, 8, "[\"/all\",\"/own/%d\"]");
    /* One message to all 8 queues is held once. */
    publish_n("bp", p, "/all", 0);
    bx_engine_stats_t st = stats();
    /* "/all" is two bytes longer than "/m". */
    is_int((long long)st.queued_bytes,
           (long long)(g_json + 2 + sizeof(bx_msg_t) + 1 + 8 * 4 * sizeof(bx_qent_t)),
           "a shared message is counted once, beside the 8 queues' rings");
    is_int((long long)st.queued_msgs, 1, "one message held");

    /* One queue grows past the budget: it alone is cut, the others keep
     * theirs. */
    for (int i = 0; i < 3; i++)
        publish_n("bp", p, "/own/1", 100 + i);
    for (int i = 0; i < 60; i++)
        publish_n("bp", p, "/own/0", i);
    st = stats();
    ok(st.queued_bytes <= (uint64_t)cfg.queue_memory, "queued bytes stay within the budget "
       "(%llu <= %lld)", (unsigned long long)st.queued_bytes, (long long)cfg.queue_memory);
    ok(st.evicted > 0, "messages were evicted (%llu)", (unsigned long long)st.evicted);
    mconnect("b1", s[1], NULL);
    is_int(count_elems(), 5, "a small queue is untouched: its 4 messages");
    mconnect("b2", s[2], NULL);
    is_int(count_elems(), 2, "another keeps the shared one");
    mconnect("b0", s[0], NULL);
    int k = count_elems() - 1;
    ok(k > 0 && k < 61, "the largest queue was cut (%d left)", k);
    is_int(json_object_get_int(field(json_object_array_get_idx(last()->body, k - 1), "data")),
           59, "keeping its newest");

    /* end-session: the largest session is ended instead. */
    cfg.overflow_end = 1;
    sessions(&cfg, p, s, 2, "\"/own/%d\"");
    publish_n("bp", p, "/own/1", 1);
    for (int i = 0; i < 45; i++)
        publish_n("bp", p, "/own/0", i);
    mconnect("b0", s[0], NULL);
    is_str(sfield(elem("/meta/connect", 0), "error"), "402::session_unknown",
           "end-session: the largest session was ended");
    mconnect("b1", s[1], NULL);
    is_int(count_elems(), 2, "the other keeps its message");
}

static void t_cancel_answered(void)
{
    bx_engine_cfg_t cfg;
    bx_engine_cfg_defaults(&cfg);
    char a[64], p[64];
    pair(&cfg, 0, 0, a, p, "/q", 2);
    reset_sent();
    /* The connect is answered at once, but its client is gone before the
     * answer leaves (one loop turn of bayeuxd). */
    char buf[256];
    snprintf(buf, sizeof buf, "[{\"channel\":\"/meta/connect\",\"clientId\":\"%s\","
             "\"connectionType\":\"long-polling\"}]", a);
    json_object *batch = json_tokener_parse(buf);
    bx_origin_t o = { 0, g_reqid++ };
    bx_engine_request(g_e, &o, LP, "b", "127.0.0.1", batch, g_now);
    bx_engine_cancel(g_e, &o, g_now);
    bx_engine_flush(g_e, g_now);
    json_object_put(batch);
    is_int(g_nsent, 0, "no reply is sent to a request whose client left");
    is_int((long long)stats().delivered, 0, "nothing counted as delivered");
    mconnect("b", a, NULL);
    is_int(count_elems(), 3, "the next connect gets both messages");
    is_int(num_at("/q", 0), 0, "in order");
}

/* One request of n publishes on ch, each {"i":k}; returns its origin. */
static bx_origin_t big_request(const char *browser, const char *cid, const char *ch, int n)
{
    bx_buf_t b;
    bx_buf_init(&b);
    bx_buf_putc(&b, '[');
    for (int i = 0; i < n; i++)
        bx_buf_printf(&b, "%s{\"id\":\"%d\",\"channel\":\"%s\",\"clientId\":\"%s\","
                      "\"data\":\"%d\"}", i ? "," : "", i, ch, cid, i);
    bx_buf_putc(&b, ']');
    json_object *batch = json_tokener_parse(b.data);
    bx_buf_free(&b);
    bx_origin_t o = { 0, g_reqid++ };
    bx_engine_request(g_e, &o, CP, browser, "127.0.0.1", batch, g_now);
    json_object_put(batch);
    return o;
}

/* The reply sent to o, or NULL. */
static sent_t *reply_to(bx_origin_t o)
{
    for (int i = 0; i < g_nsent && i < 64; i++)
        if (g_sent[i].to.reqid == o.reqid)
            return &g_sent[i];
    return NULL;
}

static void t_sliced_request(void)
{
    bx_engine_cfg_t cfg;
    bx_engine_cfg_defaults(&cfg);
    cfg.slice_work = 60;    /* 20 publishes to 3 subscribers: 220 units */
    char s[3][64], p[64];
    sessions(&cfg, p, s, 3, "\"/q\"");
    uint64_t held = mconnect("b0", s[0], NULL);
    reset_sent();
    bx_origin_t o = big_request("bp", p, "/q", 20);
    ok(bx_engine_busy(g_e), "a request over the turn's work is left pending");
    bx_engine_flush(g_e, g_now);
    ok(reply_to(o) == NULL, "it is not answered yet");
    sent_t *w = g_nsent > 0 ? &g_sent[0] : NULL;
    ok(w && w->to.reqid == held, "but the turn's commit answers a held connect with what "
       "it published so far");
    int first = w && w->body ? (int)json_object_array_length(w->body) - 1 : 0;
    ok(first > 0 && first < 20, "part of it (%d)", first);
    int turns = 1;
    while (bx_engine_busy(g_e) && turns < 100) {
        bx_engine_resume(g_e, g_now);
        bx_engine_flush(g_e, g_now);
        turns++;
    }
    ok(turns > 2, "its work went over %d turns", turns);
    sent_t *r = reply_to(o);
    int good = 0;
    for (int i = 0; r && r->body && i < (int)json_object_array_length(r->body); i++) {
        json_object *m = json_object_array_get_idx(r->body, i);
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        good += is_true(m, "successful") && strcmp(sfield(m, "id"), id) == 0;
    }
    is_int(good, 20, "then it is answered: 20 publishes, successful, in order");
    mconnect("b0", s[0], NULL);
    int rest = count_elems() - 1;
    is_int(first + rest, 20, "the subscriber gets all 20");
    is_int(num_at("/q", 0), first, "in order");
    mconnect("b1", s[1], NULL);
    is_int(count_elems() - 1, 20, "another gets all 20 in one reply");

    /* A request that arrives while one is pending waits for it. */
    reset_sent();
    o = big_request("bp", p, "/q", 10);
    ok(bx_engine_busy(g_e), "pending again");
    publish(CP, "bp", p, "/q", "\"after\"");
    ok(!bx_engine_busy(g_e), "a new request finishes the pending one first");
    ok(reply_to(o) != NULL, "which is answered");
    mconnect("b2", s[2], NULL);
    is_str(data_at("/q", 30), "after", "and its publish comes after the pending ones");

    /* The pending request's client goes away: no answer, work done. */
    mconnect("b1", s[1], NULL);
    reset_sent();
    o = big_request("bp", p, "/q", 10);
    bx_engine_cancel(g_e, &o, g_now);
    while (bx_engine_busy(g_e)) {
        bx_engine_flush(g_e, g_now);
        bx_engine_resume(g_e, g_now);
    }
    bx_engine_flush(g_e, g_now);
    ok(reply_to(o) == NULL, "a pending request whose client left is not answered");
    mconnect("b1", s[1], NULL);
    is_int(count_elems() - 1, 10, "its publishes were all made");
}

int main(void)
{
    bx_log_level = BX_LOG_ERROR;
    measure_msglen();
    t_queue_bytes();
    t_queue_bytes_ack();
    t_reply_cap();
    t_reply_cap_ack_lost_and_restart();
    t_queue_memory();
    t_cancel_answered();
    t_sliced_request();
    reset_sent();
    bx_engine_destroy(&g_e);
    bx_store_close(&g_st);
    done_testing();
    return exit_status();
}
