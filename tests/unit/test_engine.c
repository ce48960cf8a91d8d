/* test_engine.c - the Bayeux rules of the dispatcher engine, driven with an
 * injected clock and a send callback that records every reply. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "enginekit.h"
#include "tap.h"
#include "util.h"
#include "wire.h"

/* ---- the cases ---- */

static void t_handshake_and_first_connect(void)
{
    char a[64];
    handshake("", a);
    json_object *h = elem("/meta/handshake", 0);
    ok(is_true(h, "successful"), "handshake successful");
    is_int((long long)strlen(a), BX_CLIENTID_LEN, "clientId has %d characters", BX_CLIENTID_LEN);
    is_str(sfield(h, "id"), "1", "handshake echoes id");
    is_str(sfield(h, "version"), "1.0", "version 1.0");
    is_str(json_object_to_json_string(field(h, "supportedConnectionTypes")),
           "[ \"long-polling\", \"callback-polling\" ]", "only the transports served");
    is_str(json_object_to_json_string_ext(field(h, "advice"), JSON_C_TO_STRING_PLAIN),
           "{\"reconnect\":\"retry\",\"interval\":0,\"timeout\":20000}", "full advice");
    is_int((long long)strlen(last()->browser), BX_BROWSER_LEN, "a browser cookie is set");

    char br[64];
    snprintf(br, sizeof br, "%s", last()->browser);
    mconnect(br, a, ",\"advice\":{\"timeout\":0}");
    ok(is_true(elem("/meta/connect", 0), "successful"), "first connect answered at once");
    ok(field(elem("/meta/connect", 0), "advice") != NULL, "first connect carries advice");

    /* A handshake that sends the cookie keeps it: nothing to set. */
    handshake(br, a);
    is_str(last()->browser, "", "no cookie set when the request had one");
}

static void t_hold_timeout_and_wake(void)
{
    char a[64], b[64];
    handshake("bra", a);
    mconnect("bra", a, NULL);
    subscribe("bra", a, "\"/chat/room\"");
    reset_sent();
    uint64_t held = mconnect("bra", a, NULL);
    is_int(g_nsent, 0, "second connect is held");
    g_now += 19999;
    tick();
    is_int(g_nsent, 0, "still held just before the timeout");
    g_now += 1;
    tick();
    is_int(g_nsent, 1, "answered at the timeout");
    ok(last()->to.reqid == held, "the held request is the one answered");
    ok(is_true(elem("/meta/connect", 0), "successful"), "timeout reply is successful");
    ok(field(elem("/meta/connect", 0), "advice") == NULL, "no advice when nothing changed");

    /* b arrives after the hold: a session idle that long would have expired. */
    handshake("brb", b);
    mconnect("brb", b, NULL);
    held = mconnect("bra", a, NULL);
    reset_sent();
    publish(LP, "brb", b, "/chat/room", "{\"t\":\"hi\"}");
    is_int(g_nsent, 2, "publish answered and held connect woken");
    sent_t *w = &g_sent[1];
    ok(w->to.reqid == held, "the wake-up goes to the held connect");
    json_object *d = json_object_array_get_idx(w->body, 0);
    is_str(sfield(d, "channel"), "/chat/room", "delivery first, on its channel");
    is_str(json_object_to_json_string_ext(field(d, "data"), JSON_C_TO_STRING_PLAIN),
           "{\"t\":\"hi\"}", "delivery carries the data");
    ok(field(d, "clientId") == NULL && field(d, "id") == NULL, "no clientId, no id on delivery");
    ok(field(d, "ext") != NULL, "publisher's ext is kept");
    is_str(sfield(json_object_array_get_idx(w->body, 1), "channel"), "/meta/connect",
           "connect reply after the delivery");
}

static void t_client_timeout_and_batched_connect(void)
{
    char a[64];
    handshake("x1", a);
    mconnect("x1", a, NULL);
    reset_sent();
    mconnect("x1", a, ",\"advice\":{\"timeout\":0}");
    is_int(g_nsent, 1, "advice.timeout 0 returns at once");
    ok(field(elem("/meta/connect", 0), "advice") != NULL, "client advice makes advice re-sent");
    char buf[512];
    snprintf(buf, sizeof buf,
             "[{\"id\":\"c\",\"channel\":\"/meta/connect\",\"clientId\":\"%s\"},"
             "{\"id\":\"s\",\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\","
             "\"subscription\":\"/a\"}]", a, a);
    reset_sent();
    req(LP, "x1", buf);
    is_int(g_nsent, 1, "connect batched with a subscribe returns at once");
    is_int(count_elems(), 2, "two replies");
    reset_sent();
    mconnect("x1", a, ",\"advice\":{\"timeout\":500}");
    is_int(g_nsent, 0, "client timeout 500 holds");
    g_now += 500;
    tick();
    is_int(g_nsent, 1, "released after the client's 500 ms");
}

static void t_duplicate_connect(void)
{
    char a[64];
    handshake("d1", a);
    mconnect("d1", a, NULL);
    reset_sent();
    uint64_t first = mconnect("d1", a, NULL);
    uint64_t second = mconnect("d1", a, NULL);
    is_int(g_nsent, 1, "second connect releases the first at once");
    ok(g_sent[0].to.reqid == first, "the first one is released");
    is_int(g_sent[0].status, 500, "with CometD's HTTP 500");
    ok(g_sent[0].body == NULL, "and no body");
    g_now += 20000;
    tick();
    ok(last()->to.reqid == second && last()->status == 200, "the second is held normally");
}

static void t_unknown_and_binding(void)
{
    char a[64];
    reset_sent();
    mconnect("z", "nosuchclientnosuchclient00", NULL);
    json_object *c = elem("/meta/connect", 0);
    ok(!is_true(c, "successful"), "unknown clientId fails");
    is_str(sfield(c, "error"), "402::session_unknown", "402::session_unknown");
    is_str(sfield(field(c, "advice"), "reconnect"), "handshake", "advice: handshake");
    ok(field(field(c, "advice"), "timeout") && field(field(c, "advice"), "interval"),
       "advice is full");
    handshake("owner", a);
    mconnect("thief", a, NULL);
    is_str(sfield(elem("/meta/connect", 0), "error"), "402::session_unknown",
           "another browser's cookie is refused");
    mconnect("", a, NULL);
    is_str(sfield(elem("/meta/connect", 0), "error"), "402::session_unknown",
           "no cookie is refused");
    mconnect("owner", a, NULL);
    ok(is_true(elem("/meta/connect", 0), "successful"), "the owner's cookie works");
}

static void t_binding_off(void)
{
    bx_engine_cfg_t cfg;
    bx_engine_cfg_defaults(&cfg);
    cfg.browser_binding = 0;
    fresh(&cfg);
    char a[64];
    handshake("", a);
    mconnect("", a, NULL);
    ok(is_true(elem("/meta/connect", 0), "successful"), "binding off: no cookie accepted");
}

static void t_disconnect(void)
{
    char a[64];
    handshake("q", a);
    mconnect("q", a, NULL);
    reset_sent();
    uint64_t held = mconnect("q", a, NULL);
    char buf[256];
    snprintf(buf, sizeof buf, "[{\"id\":\"9\",\"channel\":\"/meta/disconnect\","
             "\"clientId\":\"%s\"}]", a);
    req(LP, "q", buf);
    is_int(g_nsent, 2, "disconnect answers the held connect and itself");
    ok(g_sent[0].to.reqid == held, "held connect answered first");
    json_object *hc = json_object_array_get_idx(g_sent[0].body, 0);
    is_str(sfield(field(hc, "advice"), "reconnect"), "none", "with reconnect none");
    ok(is_true(elem("/meta/disconnect", 0), "successful"), "disconnect successful");
    mconnect("q", a, NULL);
    is_str(sfield(elem("/meta/connect", 0), "error"), "402::session_unknown",
           "session is gone");
}

static void t_fanout_once_and_wildcards(void)
{
    char a[64], p[64];
    handshake("w", a);
    mconnect("w", a, NULL);
    handshake("wp", p);
    mconnect("wp", p, NULL);
    subscribe("w", a, "[\"/a/b\",\"/a/*\",\"/a/**\",\"/**\"]");
    ok(is_true(elem("/meta/subscribe", 0), "successful"), "array subscribe");
    is_str(json_object_to_json_string_ext(field(elem("/meta/subscribe", 0), "subscription"),
                                          JSON_C_TO_STRING_PLAIN |
                                          JSON_C_TO_STRING_NOSLASHESCAPE),
           "[\"/a/b\",\"/a/*\",\"/a/**\",\"/**\"]", "subscription copied verbatim");
    publish(LP, "wp", p, "/a/b", "1");
    mconnect("w", a, NULL);
    is_int(count_elems(), 2, "one delivery despite four matching subscriptions");
    publish(LP, "wp", p, "/a/b/c", "2");
    publish(LP, "wp", p, "/x", "3");
    mconnect("w", a, NULL);
    is_int(count_elems(), 3, "/a/b/c via /a/** and /x via /**");

    subscribe("w", a, "\"/**\"");
    ok(is_true(elem("/meta/subscribe", 0), "successful"), "re-subscribe is idempotent");
    char buf[256];
    snprintf(buf, sizeof buf, "[{\"id\":\"u\",\"channel\":\"/meta/unsubscribe\","
             "\"clientId\":\"%s\",\"subscription\":[\"/**\",\"/a/**\",\"/a/*\",\"/a/b\"]}]", a);
    req(LP, "w", buf);
    ok(is_true(elem("/meta/unsubscribe", 0), "successful"), "array unsubscribe");
    publish(LP, "wp", p, "/a/b", "4");
    mconnect("w", a, ",\"advice\":{\"timeout\":0}");
    is_int(count_elems(), 1, "nothing after unsubscribing");
    bx_engine_stats_t st;
    bx_engine_stats(g_e, &st);
    is_int((long long)st.channels, 0, "channels without subscribers are gone");
}

static void t_errors(void)
{
    char a[64];
    handshake("e", a);
    mconnect("e", a, NULL);
    struct { const char *sub; const char *err; } subs[] = {
        { "\"/meta/connect\"", "403::subscribe_denied" },
        { "\"/meta/*\"", "403::subscribe_denied" },
        { "\"/**/foo\"", "405::subscription_invalid" },
        { "\"/foo/*/bar\"", "405::subscription_invalid" },
        { "\"nochannel\"", "405::subscription_invalid" },
        { "\"/foo//bar\"", "405::subscription_invalid" },
        { "42", "403::subscription_invalid" },
        { "[]", "403::subscription_missing" },
    };
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        subscribe("e", a, subs[i].sub);
        json_object *r = elem("/meta/subscribe", 0);
        ok(!is_true(r, "successful"), "subscribe %s fails", subs[i].sub);
        is_str(sfield(r, "error"), subs[i].err, "subscribe %s: %s", subs[i].sub, subs[i].err);
    }
    char buf[256];
    snprintf(buf, sizeof buf, "[{\"id\":\"s\",\"channel\":\"/meta/subscribe\","
             "\"clientId\":\"%s\"}]", a);
    req(LP, "e", buf);
    is_str(sfield(elem("/meta/subscribe", 0), "error"), "403::subscription_missing",
           "missing subscription");

    struct { const char *ch; const char *data; const char *err; } pubs[] = {
        { "/meta/foo", "1", "403::publish_denied" },
        { "/foo/*", "1", "405::channel_invalid" },
        { "/foo/**", "1", "405::channel_invalid" },
        { "/foo//bar", "1", "405::channel_invalid" },
    };
    for (size_t i = 0; i < sizeof pubs / sizeof pubs[0]; i++) {
        publish(LP, "e", a, pubs[i].ch, pubs[i].data);
        json_object *r = json_object_array_get_idx(last()->body, 0);
        is_str(sfield(r, "error"), pubs[i].err, "publish to %s: %s", pubs[i].ch, pubs[i].err);
    }
    snprintf(buf, sizeof buf, "[{\"id\":\"p\",\"channel\":\"/x\",\"clientId\":\"%s\"}]", a);
    req(LP, "e", buf);
    is_str(sfield(elem("/x", 0), "error"), "400::data_missing", "missing data");
    snprintf(buf, sizeof buf, "[{\"id\":\"p\",\"clientId\":\"%s\",\"data\":1}]", a);
    req(LP, "e", buf);
    is_str(sfield(json_object_array_get_idx(last()->body, 0), "error"), "400::channel_missing",
           "missing channel");
    snprintf(buf, sizeof buf, "[{\"id\":\"a b\",\"channel\":\"/x\",\"clientId\":\"%s\","
             "\"data\":1}]", a);
    req(LP, "e", buf);
    json_object *r = elem("/x", 0);
    is_str(sfield(r, "error"), "405::message_id_invalid", "invalid message id");
    ok(field(r, "id") == NULL, "an invalid id is not echoed");
    snprintf(buf, sizeof buf, "[{\"id\":7,\"channel\":\"/x\",\"clientId\":\"%s\","
             "\"data\":1}]", a);
    req(LP, "e", buf);
    is_str(sfield(elem("/x", 0), "id"), "7", "a numeric id is echoed as a string");
    req(LP, "e", "[{\"id\":\"p\",\"channel\":\"/x\",\"data\":1}]");
    is_str(sfield(elem("/x", 0), "error"), "402::session_unknown", "publish needs a session");
}

static void t_service_and_piggyback(void)
{
    char a[64], w[64];
    handshake("s", a);
    mconnect("s", a, NULL);
    handshake("sw", w);
    mconnect("sw", w, NULL);
    subscribe("sw", w, "\"/**\"");
    subscribe("s", a, "\"/service/echo\"");
    ok(is_true(elem("/meta/subscribe", 0), "successful"), "subscribing to /service is a no-op");
    subscribe("s", a, "\"/chat\"");
    reset_sent();
    publish(LP, "s", a, "/service/echo", "1");
    is_int(g_nsent, 1, "service publish answered");
    ok(is_true(elem("/service/echo", 0), "successful"), "successfully");
    mconnect("sw", w, ",\"advice\":{\"timeout\":0}");
    is_int(count_elems(), 1, "a /** subscriber gets no service message");

    reset_sent();
    publish(LP, "s", a, "/chat", "\"own\"");
    is_int(count_elems(), 2, "long-polling: own message piggybacks on the publish reply");
    ok(field(json_object_array_get_idx(last()->body, 0), "data") != NULL, "delivery first");

    publish(CP, "s", a, "/chat", "\"own2\"");
    is_int(count_elems(), 1, "callback-polling: only the publish reply");
    mconnect("s", a, NULL);
    is_int(count_elems(), 2, "callback-polling: the message comes with the connect");
}

static void t_expiry_and_cancel(void)
{
    char a[64], p[64];
    handshake("x", a);
    mconnect("x", a, NULL);
    handshake("xp", p);
    mconnect("xp", p, NULL);
    subscribe("x", a, "\"/t\"");
    /* Cancel: the held connect's client went away. */
    reset_sent();
    uint64_t held = mconnect("x", a, NULL);
    bx_origin_t o = { 0, held };
    bx_engine_cancel(g_e, &o, g_now);
    bx_engine_flush(g_e, g_now);
    publish(LP, "xp", p, "/t", "\"after-abort\"");
    is_int(g_nsent, 1, "nothing is sent into the cancelled request");
    mconnect("x", a, NULL);
    is_int(count_elems(), 2, "the next connect gets the message at once");

    /* Expiry: interval + max-interval without a connect. */
    g_now += 9999;
    tick();
    mconnect("xp", p, ",\"advice\":{\"timeout\":0}");
    ok(is_true(elem("/meta/connect", 0), "successful"), "alive until max-interval");
    g_now += 10002;
    tick();
    mconnect("x", a, NULL);
    is_str(sfield(elem("/meta/connect", 0), "error"), "402::session_unknown",
           "expired after interval + max-interval");
    bx_engine_stats_t st;
    bx_engine_stats(g_e, &st);
    ok(st.expired >= 1, "expiry counted");
}

static void t_held_never_expires(void)
{
    char a[64];
    handshake("h", a);
    mconnect("h", a, NULL);
    mconnect("h", a, NULL);   /* held */
    for (int i = 0; i < 3; i++) {
        g_now += 19000;
        tick();
        mconnect("h", a, NULL);   /* answered by timeout, re-held */
    }
    g_now += 15000;
    tick();
    reset_sent();
    mconnect("h", a, ",\"advice\":{\"timeout\":0}");
    ok(is_true(elem("/meta/connect", 0), "successful"), "a session that keeps polling lives");
}

static void t_send_failure_keeps_messages(void)
{
    char a[64], p[64];
    handshake("f", a);
    mconnect("f", a, NULL);
    handshake("fp", p);
    mconnect("fp", p, NULL);
    subscribe("f", a, "\"/k\"");
    uint64_t held = mconnect("f", a, NULL);
    g_fail_reqid = (int)held;
    publish(LP, "fp", p, "/k", "\"kept\"");
    g_fail_reqid = -1;
    mconnect("f", a, NULL);
    is_int(count_elems(), 2, "a reply the responder could not take is sent again");
}

static void t_queue_bound_and_release_all(void)
{
    bx_engine_cfg_t cfg;
    bx_engine_cfg_defaults(&cfg);
    cfg.max_queue = 3;
    fresh(&cfg);
    char a[64], p[64];
    handshake("b", a);
    mconnect("b", a, NULL);
    handshake("bp", p);
    mconnect("bp", p, NULL);
    subscribe("b", a, "\"/q\"");
    for (int i = 0; i < 5; i++) {
        char d[16];
        snprintf(d, sizeof d, "%d", i);
        publish(CP, "bp", p, "/q", d);
    }
    mconnect("b", a, NULL);
    is_int(count_elems(), 4, "max-queue 3 keeps three messages");
    is_int(json_object_get_int(field(json_object_array_get_idx(last()->body, 0), "data")), 2,
           "the oldest were dropped");
    bx_engine_stats_t st;
    bx_engine_stats(g_e, &st);
    is_int((long long)st.dropped, 2, "drops counted");

    reset_sent();
    mconnect("b", a, NULL);
    bx_engine_stats(g_e, &st);
    is_int((long long)st.parked, 1, "one held connect");
    bx_engine_release_all(g_e, g_now);
    bx_engine_flush(g_e, g_now);
    is_int(g_nsent, 1, "release_all answers it");
    bx_engine_stats(g_e, &st);
    is_int((long long)st.parked, 0, "nothing held after release_all");
}

int main(void)
{
    bx_engine_cfg_t cfg;
    bx_engine_cfg_defaults(&cfg);
    g_e = bx_engine_new(&cfg, rec_send, NULL);

    t_handshake_and_first_connect();
    t_hold_timeout_and_wake();
    t_client_timeout_and_batched_connect();
    t_duplicate_connect();
    t_unknown_and_binding();
    t_disconnect();
    t_fanout_once_and_wildcards();
    t_errors();
    t_service_and_piggyback();
    t_expiry_and_cancel();
    t_held_never_expires();
    t_send_failure_keeps_messages();
    t_binding_off();
    t_queue_bound_and_release_all();

    reset_sent();
    bx_engine_destroy(&g_e);
    done_testing();
    return exit_status();
}
