/* test_persist.c - the engine's extensions and its database: the ack
 * extension (CometD AckExtension's wire), restart from the store, timesync,
 * timestamp, history and replay, and the max-queue policies. A restart is an
 * engine destroyed and a new one loaded from the same ":memory:" store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "enginekit.h"
#include "log.h"
#include "store.h"
#include "tap.h"

static int64_t g_wall = 1709632800000LL;   /* Tue, 05 Mar 2024 10:00:00 GMT */
static int64_t s_wall(void)
{
    return g_wall;
}

static void cfg_init(bx_engine_cfg_t *cfg)
{
    bx_engine_cfg_defaults(cfg);
    cfg->wall_ms = s_wall;
}

/* bayeuxd killed and started again: the memory is gone, the store stays. */
static void restart(bx_engine_cfg_t *cfg)
{
    ok(reload_store(cfg) == 0, "restart: the store loads");
}

/* A fresh engine and store with an ack subscriber a (cookie "br",
 * connected, subscribed to sub) and a publisher p (cookie "bp"). */
static void ack_pair(bx_engine_cfg_t *cfg, char *a, char *p, const char *sub)
{
    fresh_store(cfg);
    ack_handshake("br", a);
    handshake("bp", p);
    ack_connect("br", a, 0);
    subscribe("br", a, sub);
}

/* ---- ack ---- */

static void t_ack_negotiation(void)
{
    bx_engine_cfg_t cfg;
    cfg_init(&cfg);
    fresh_store(&cfg);
    char a[64], b[64];
    ack_handshake("br", a);
    json_object *h = elem("/meta/handshake", 0);
    ok(is_true(field(h, "ext"), "ack"), "handshake with ext.ack true: reply ext.ack true");
    handshake("br", b);
    ok(field(elem("/meta/handshake", 0), "ext") == NULL, "no ack asked: no ext in the reply");

    cfg.ack = 0;
    fresh_store(&cfg);
    ack_handshake("br", a);
    ok(field(elem("/meta/handshake", 0), "ext") == NULL, "ack off: not offered");
}

static void t_ack_batches(void)
{
    bx_engine_cfg_t cfg;
    cfg_init(&cfg);
    fresh_store(&cfg);
    char a[64], p[64];
    ack_handshake("br", a);
    handshake("bp", p);
    ack_connect("br", a, 0);
    is_int(ext_int(elem("/meta/connect", 0), "ack"), 0, "first connect: batch 0, nothing sent");
    subscribe("br", a, "\"/chat\"");

    publish(LP, "bp", p, "/chat", "\"m1\"");
    /* An ack session's messages travel only in connect replies. */
    publish(LP, "br", a, "/elsewhere", "\"x\"");
    is_int(count_elems(), 1, "no delivery piggybacked on an ack session's publish reply");

    ack_connect("br", a, 0);
    is_int(g_nsent > 0 ? count_elems() : -1, 2, "connect with a message waiting returns at once");
    is_str(data_at("/chat", 0), "m1", "it carries m1");
    is_int(ext_int(elem("/meta/connect", 0), "ack"), 1, "in batch 1");

    /* The reply was lost: the client acks what it had (0) again. */
    reset_sent();
    ack_connect("br", a, 0);
    is_int(g_nsent, 1, "lost reply: the connect is not held (CometD #595)");
    is_str(data_at("/chat", 0), "m1", "m1 is sent again");
    is_int(ext_int(elem("/meta/connect", 0), "ack"), 2, "in batch 2");

    /* Acknowledged: gone; the next connect is held. */
    reset_sent();
    uint64_t held = ack_connect("br", a, 2);
    is_int(g_nsent, 0, "everything acknowledged: the connect is held");
    publish(LP, "bp", p, "/chat", "\"m2\"");
    publish(LP, "bp", p, "/chat", "\"m3\"");
    sent_t *s = &g_sent[1];   /* [0] is the publish reply */
    ok(s->to.reqid == held, "a publish wakes the held connect");
    json_object *body = s->body;
    is_int(body ? (long long)json_object_array_length(body) : -1, 2,
           "m2 and the connect reply");

    /* #511: the reply of the held connect (m2, batch 3) is lost and m3 came
     * after it; a new connect with ack 2 gets m2 and m3, in order. */
    reset_sent();
    ack_connect("br", a, 2);
    is_str(data_at("/chat", 0), "m2", "lost batch: m2 again");
    is_str(data_at("/chat", 1), "m3", "then m3");
    is_int(count_elems(), 3, "nothing else");
    int64_t b4 = ext_int(elem("/meta/connect", 0), "ack");
    ok(b4 > 3, "a new batch number (%lld)", (long long)b4);

    /* A second connect while one is held loses nothing either. */
    reset_sent();
    ack_connect("br", a, b4);
    is_int(g_nsent, 0, "held again");
    ack_connect("br", a, b4);
    is_int(g_sent[0].status, 500, "the older held connect is released with HTTP 500");
    ok(g_sent[0].body == NULL, "and no messages");

    bx_engine_stats_t st;
    bx_engine_stats(g_e, &st);
    is_int((long long)st.acked, 3, "three messages acknowledged");
    ok(bx_store_check(g_st, stderr) == 0, "the database is consistent");
}

static void t_ack_send_failure(void)
{
    bx_engine_cfg_t cfg;
    cfg_init(&cfg);
    char a[64], p[64];
    ack_pair(&cfg, a, p, "\"/chat\"");
    uint64_t held = ack_connect("br", a, 0);
    g_fail_reqid = (int)held;
    publish(LP, "bp", p, "/chat", "\"lost\"");
    g_fail_reqid = -1;
    reset_sent();
    ack_connect("br", a, 0);
    is_str(data_at("/chat", 0), "lost", "a reply the responder never took is sent again");
}

/* ---- restart ---- */

static void t_restart(void)
{
    bx_engine_cfg_t cfg;
    cfg_init(&cfg);
    fresh_store(&cfg);
    char a[64], p[64], d[64];
    ack_handshake("br", a);
    handshake("bp", p);
    handshake("bd", d);
    ack_connect("br", a, 0);
    subscribe("br", a, "[\"/chat/**\",\"/news\"]");
    publish(LP, "bp", p, "/chat/x", "\"r1\"");
    ack_connect("br", a, 0);
    int64_t before = ext_int(elem("/meta/connect", 0), "ack");
    publish(LP, "bp", p, "/chat/y", "\"r2\"");
    req(LP, "bd", "[{\"id\":\"9\",\"channel\":\"/meta/disconnect\",\"clientId\":\"\"}]");
    char buf[256];
    snprintf(buf, sizeof buf, "[{\"id\":\"9\",\"channel\":\"/meta/disconnect\",\"clientId\":\"%s\"}]",
             d);
    req(LP, "bd", buf);

    restart(&cfg);
    bx_engine_stats_t st;
    bx_engine_stats(g_e, &st);
    is_int((long long)st.sessions, 2, "two sessions come back; the disconnected one does not");

    reset_sent();
    ack_connect("br", a, 0);
    is_str(sfield(elem("/meta/connect", 0), "successful") ? "y" : "n", "y",
           "the same clientId connects without a handshake");
    ok(is_true(elem("/meta/connect", 0), "successful"), "successfully");
    is_str(data_at("/chat/x", 0), "r1", "unacknowledged r1 comes again");
    is_str(data_at("/chat/y", 0), "r2", "then r2");
    int64_t after = ext_int(elem("/meta/connect", 0), "ack");
    ok(after > before, "batch numbers go on (%lld > %lld)", (long long)after, (long long)before);

    reset_sent();
    ack_connect("bx", a, after);
    is_str(sfield(elem("/meta/connect", 0), "error"), "402::session_unknown",
           "the browser binding survives too");
    ack_connect("br", a, after);
    is_int(g_nsent, 1, "acknowledged");
    reset_sent();
    publish(LP, "bp", p, "/news", "\"r3\"");
    is_str(data_at("/news", 0), "r3", "subscriptions survive: /news reaches the held connect");

    snprintf(buf, sizeof buf, "[{\"id\":\"9\",\"channel\":\"/meta/connect\",\"clientId\":\"%s\","
             "\"connectionType\":\"long-polling\"}]", d);
    req(LP, "bd", buf);
    is_str(sfield(elem("/meta/connect", 0), "error"), "402::session_unknown",
           "the disconnected session stays gone");

    /* Expiry purges the database. */
    g_now += cfg.max_interval_ms + cfg.interval_ms + cfg.timeout_ms + 5000;
    tick();
    tick();
    restart(&cfg);
    bx_engine_stats(g_e, &st);
    is_int((long long)st.sessions, 0, "expired sessions are gone from the database");
    ok(bx_store_check(g_st, stderr) == 0, "and it is consistent, without orphan messages");
}

/* ---- timesync and timestamp ---- */

static void t_timesync(void)
{
    bx_engine_cfg_t cfg;
    cfg_init(&cfg);
    fresh_store(&cfg);
    char a[64];
    req(LP, "br", "[{\"id\":\"1\",\"channel\":\"/meta/handshake\",\"version\":\"1.0\","
                  "\"supportedConnectionTypes\":[\"long-polling\"],"
                  "\"ext\":{\"timesync\":{\"tc\":1709632799990,\"l\":0,\"o\":0}}}]");
    json_object *h = elem("/meta/handshake", 0);
    snprintf(a, sizeof a, "%s", sfield(h, "clientId"));
    json_object *ts = field(field(h, "ext"), "timesync");
    ok(ts != NULL, "handshake reply carries ext.timesync");
    is_int(json_object_get_int64(field(ts, "tc")), 1709632799990LL, "tc echoed");
    is_int(json_object_get_int64(field(ts, "ts")), g_wall, "ts: server time of arrival");
    is_int(json_object_get_int64(field(ts, "p")), 0, "p: no time spent");
    is_int(json_object_get_int64(field(ts, "a")), -10, "a = tc + o + l - ts");

    /* A held connect: p is the time it was held. */
    char buf[512];
    snprintf(buf, sizeof buf, "[{\"id\":\"2\",\"channel\":\"/meta/connect\",\"clientId\":\"%s\","
             "\"connectionType\":\"long-polling\","
             "\"ext\":{\"timesync\":{\"tc\":1709632800000,\"l\":3,\"o\":100}}}]", a);
    req(LP, "br", buf);
    req(LP, "br", buf);   /* the first connect returns at once; this one is held */
    reset_sent();
    g_now += cfg.timeout_ms;
    g_wall += cfg.timeout_ms;
    tick();
    ts = field(field(elem("/meta/connect", 0), "ext"), "timesync");
    ok(ts != NULL, "held connect reply carries ext.timesync");
    is_int(json_object_get_int64(field(ts, "p")), cfg.timeout_ms, "p = the time held");

    /* Accurate enough (|a| < 25 with l != 0): not answered. */
    snprintf(buf, sizeof buf, "[{\"id\":\"3\",\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\","
             "\"subscription\":\"/x\",\"ext\":{\"timesync\":{\"tc\":%lld,\"l\":5,\"o\":0}}}]", a,
             (long long)g_wall - 10);
    req(LP, "br", buf);
    ok(field(elem("/meta/subscribe", 0), "ext") == NULL, "accurate client: no timesync");

    /* Old style (no l): tc, ts, p without a. */
    snprintf(buf, sizeof buf, "[{\"id\":\"4\",\"channel\":\"/meta/unsubscribe\",\"clientId\":\"%s\","
             "\"subscription\":\"/x\",\"ext\":{\"timesync\":{\"tc\":5}}}]", a);
    req(LP, "br", buf);
    ts = field(field(elem("/meta/unsubscribe", 0), "ext"), "timesync");
    ok(ts && field(ts, "ts") && !field(ts, "a"), "old-style timesync: no a");
}

static void t_timestamp(void)
{
    bx_engine_cfg_t cfg;
    cfg_init(&cfg);
    cfg.timestamp = 1;
    fresh_store(&cfg);
    g_wall = 1709632800000LL;
    char a[64];
    handshake("br", a);
    mconnect("br", a, NULL);
    subscribe("br", a, "\"/t\"");
    req(LP, "br", "[]");
    char buf[512];
    snprintf(buf, sizeof buf, "[{\"id\":\"5\",\"channel\":\"/t\",\"clientId\":\"%s\",\"data\":1,"
             "\"timestamp\":\"forged\"}]", a);
    req(LP, "br", buf);
    is_str(sfield(elem("/t", 0), "timestamp"), "Tue, 05 Mar 2024 10:00:00 GMT",
           "deliveries carry the server's RFC 1123 timestamp");
}

/* ---- history and replay ---- */

static void t_history(void)
{
    bx_engine_cfg_t cfg;
    cfg_init(&cfg);
    cfg.history = "/chat/** 3, /news/* 0 10s";
    fresh_store(&cfg);
    char p[64], a[64], buf[512];
    handshake("bp", p);
    mconnect("bp", p, NULL);
    for (int i = 1; i <= 5; i++) {
        char d[16];
        snprintf(d, sizeof d, "\"h%d\"", i);
        publish(LP, "bp", p, "/chat/a", d);
    }
    handshake("ba", a);
    mconnect("ba", a, NULL);
    snprintf(buf, sizeof buf, "[{\"id\":\"6\",\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\","
             "\"subscription\":\"/chat/*\",\"ext\":{\"replay\":0}}]", a);
    req(LP, "ba", buf);
    is_int(count_elems(), 4, "replay 0 with 3 kept: three messages and the reply");
    is_str(data_at("/chat/a", 0), "h3", "the oldest kept first");
    is_int(ext_int(elem("/chat/a", 0), "seq"), 3, "with ext.seq 3");
    is_int(json_object_get_int64(field(elem("/chat/a", 0), "ext") ?
                                 field(field(elem("/chat/a", 0), "ext"), "k") : NULL), 1,
           "the publisher's ext is kept beside seq");
    is_str(data_at("/chat/a", 2), "h5", "the newest last");
    json_object *rp = field(field(field(elem("/meta/subscribe", 0), "ext"), "replay"), "/chat/a");
    is_int(rp ? json_object_get_int64(field(rp, "last")) : -1, 5, "reply: last seq 5");
    is_int(rp ? json_object_get_int64(field(rp, "missed")) : -1, 2, "reply: 2 missed");

    char b[64];
    handshake("bb", b);
    mconnect("bb", b, NULL);
    snprintf(buf, sizeof buf, "[{\"id\":\"7\",\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\","
             "\"subscription\":\"/chat/a\",\"ext\":{\"replay\":{\"/chat/a\":4}}}]", b);
    req(LP, "bb", buf);
    is_int(count_elems(), 2, "replay from 4: only seq 5");
    is_str(data_at("/chat/a", 0), "h5", "h5");
    /* Re-subscribing with replay does not queue twice what is queued. */
    publish(CP, "bp", p, "/chat/a", "\"h6\"");
    snprintf(buf, sizeof buf, "[{\"id\":\"7\",\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\","
             "\"subscription\":\"/chat/a\",\"ext\":{\"replay\":5}}]", b);
    req(CP, "bb", buf);
    mconnect("bb", b, NULL);
    is_int(count_elems(), 2, "h6 once, though it was queued and replayed");

    restart(&cfg);
    char c[64];
    handshake("bc", c);
    mconnect("bc", c, NULL);
    snprintf(buf, sizeof buf, "[{\"id\":\"8\",\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\","
             "\"subscription\":\"/chat/a\",\"ext\":{\"replay\":4}}]", c);
    req(LP, "bc", buf);
    is_str(data_at("/chat/a", 0), "h5", "after a restart the history replays: h5");
    is_str(data_at("/chat/a", 1), "h6", "h6");
    publish(LP, "bp", p, "/chat/a", "\"h7\"");
    mconnect("bc", c, NULL);
    is_int(ext_int(elem("/chat/a", 0), "seq"), 7, "numbers go on after a restart: 7");

    /* Age: the news channels keep 10 s. */
    publish(LP, "bp", p, "/news/n", "\"old\"");
    g_wall += 11000;
    g_now += 2000;
    publish(LP, "bp", p, "/news/n", "\"new\"");
    tick();
    snprintf(buf, sizeof buf, "[{\"id\":\"9\",\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\","
             "\"subscription\":\"/news/n\",\"ext\":{\"replay\":0}}]", c);
    req(LP, "bc", buf);
    is_str(data_at("/news/n", 0), "new", "messages older than MAX-AGE are trimmed");
    is_int(count_elems(), 2, "only the new one");
    ok(bx_store_check(g_st, stderr) == 0, "the database is consistent");

    char err[256];
    ok(bx_engine_history_check("/chat/** 100 1h, /news/* 20", err, sizeof err) == 0,
       "a valid history spec");
    ok(bx_engine_history_check("/chat/** lots", err, sizeof err) != 0, "count must be a number");
    ok(bx_engine_history_check("/meta/** 5", err, sizeof err) != 0, "no history under /meta");
    ok(bx_engine_history_check("/x 5 1y", err, sizeof err) != 0, "unknown age unit");
    ok(bx_engine_history_check("/x 0", err, sizeof err) != 0, "neither count nor age");
}

/* ---- max-queue ---- */

static void t_overflow(void)
{
    bx_engine_cfg_t cfg;
    cfg_init(&cfg);
    cfg.max_queue = 2;
    char a[64], p[64];
    ack_pair(&cfg, a, p, "\"/q\"");
    publish(LP, "bp", p, "/q", "\"q1\"");
    publish(LP, "bp", p, "/q", "\"q2\"");
    publish(LP, "bp", p, "/q", "\"q3\"");
    restart(&cfg);
    ack_connect("br", a, 0);
    is_int(count_elems(), 3, "drop-oldest: two kept");
    is_str(data_at("/q", 0), "q2", "the oldest went");
    ok(bx_store_check(g_st, stderr) == 0, "its row went too");

    cfg.overflow_end = 1;
    ack_pair(&cfg, a, p, "\"/q\"");
    uint64_t held = ack_connect("br", a, 0);
    (void)held;
    publish(LP, "bp", p, "/q", "\"q1\"");   /* answers the held connect */
    publish(LP, "bp", p, "/q", "\"q2\"");
    reset_sent();
    publish(LP, "bp", p, "/q", "\"q3\"");   /* unacknowledged q1 q2 + q3: over */
    bx_engine_stats_t st;
    bx_engine_stats(g_e, &st);
    is_int((long long)st.overflowed, 1, "end-session: the session is ended");
    ack_connect("br", a, 0);
    is_str(sfield(elem("/meta/connect", 0), "error"), "402::session_unknown",
           "its next connect must handshake again");
    ok(bx_store_check(g_st, stderr) == 0, "and its rows are gone");
}

int main(void)
{
    bx_log_level = BX_LOG_WARN;
    t_ack_negotiation();
    t_ack_batches();
    t_ack_send_failure();
    t_restart();
    t_timesync();
    t_timestamp();
    t_history();
    t_overflow();

    reset_sent();
    bx_engine_destroy(&g_e);
    bx_store_close(&g_st);
    done_testing();
    return exit_status();
}
