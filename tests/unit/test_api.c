/* test_api.c - what backends get from the engine (docs/backend.md): the
 * events, publish, deliver (a remote call's answer), kick, and the
 * questions about sessions and subscribers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "engine_int.h"
#include "enginekit.h"
#include "log.h"
#include "tap.h"
#include "token.h"

/* ---- recording events ---- */

typedef struct {
    char kind[32], client[64], channel[64], reason[32], address[64], id[32], data[128];
    int ack;
} ev_t;

static ev_t g_ev[64];
static int g_nev;

static void on_event(void *ud, const bx_event_t *ev)
{
    (void)ud;
    ev_t *x = &g_ev[g_nev++ % 64];
    memset(x, 0, sizeof *x);
    snprintf(x->kind, sizeof x->kind, "%s", ev->kind);
    snprintf(x->client, sizeof x->client, "%s", ev->client_id ? ev->client_id : "");
    snprintf(x->channel, sizeof x->channel, "%s", ev->channel ? ev->channel : "");
    snprintf(x->reason, sizeof x->reason, "%s", ev->reason ? ev->reason : "");
    snprintf(x->address, sizeof x->address, "%s", ev->address ? ev->address : "");
    snprintf(x->id, sizeof x->id, "%s", ev->id ? ev->id : "");
    snprintf(x->data, sizeof x->data, "%s",
             ev->data ? json_object_to_json_string_ext(ev->data, JSON_C_TO_STRING_PLAIN) : "");
    x->ack = ev->ack;
}

static ev_t *last_ev(void)
{
    return g_nev ? &g_ev[(g_nev - 1) % 64] : NULL;
}

static void setup(bx_engine_cfg_t *cfg)
{
    fresh(cfg);
    bx_engine_on_event(g_e, on_event, NULL);
    g_nev = 0;
}

static const char *data_json(const char *ch, int i)
{
    json_object *m = elem(ch, i);
    return m ? json_object_to_json_string_ext(field(m, "data"), JSON_C_TO_STRING_PLAIN) : NULL;
}

/* ---- the cases ---- */

static void t_events(void)
{
    bx_engine_cfg_t cfg;
    bx_engine_cfg_defaults(&cfg);
    setup(&cfg);
    char a[64], buf[512];
    handshake("ba", a);
    is_str(last_ev()->kind, "session.created", "handshake: session.created");
    is_str(last_ev()->client, a, "with its clientId");
    is_str(last_ev()->address, "127.0.0.1", "and the client's address");
    mconnect("ba", a, NULL);
    subscribe("ba", a, "[\"/chat/**\",\"/service/x\"]");
    is_str(last_ev()->kind, "subscribe", "subscribe event");
    is_str(last_ev()->channel, "/chat/**", "for the channel (a service name is no subscription)");
    int n = g_nev;
    subscribe("ba", a, "\"/chat/**\"");
    is_int(g_nev, n, "subscribing again changes nothing: no event");

    snprintf(buf, sizeof buf, "[{\"id\":\"41\",\"channel\":\"/service/echo\",\"clientId\":\"%s\","
             "\"data\":{\"q\":1},\"ext\":{\"e\":2}}]", a);
    req(LP, "ba", buf);
    ok(is_true(elem("/service/echo", 0), "successful"), "a service publish succeeds");
    is_str(last_ev()->kind, "service", "and is an event");
    is_str(last_ev()->id, "41", "with the message id");
    is_str(last_ev()->data, "{\"q\":1}", "and its data");
    is_str(last_ev()->client, a, "and who sent it");

    snprintf(buf, sizeof buf, "[{\"id\":\"9\",\"channel\":\"/meta/unsubscribe\",\"clientId\":\"%s\","
             "\"subscription\":\"/chat/**\"}]", a);
    req(LP, "ba", buf);
    is_str(last_ev()->kind, "unsubscribe", "unsubscribe event");

    snprintf(buf, sizeof buf, "[{\"id\":\"9\",\"channel\":\"/meta/disconnect\",\"clientId\":\"%s\"}]",
             a);
    req(LP, "ba", buf);
    is_str(last_ev()->kind, "session.removed", "disconnect: session.removed");
    is_str(last_ev()->reason, "disconnect", "reason disconnect");

    handshake("bb", a);
    g_now += cfg.interval_ms + cfg.max_interval_ms + 1000;
    tick();
    is_str(last_ev()->reason, "expired", "expiry: reason expired");
}

static void t_publish_and_deliver(void)
{
    bx_engine_cfg_t cfg;
    bx_engine_cfg_defaults(&cfg);
    cfg.history = "/news/** 10";
    setup(&cfg);
    char a[64], b[64];
    handshake("ba", a);
    mconnect("ba", a, NULL);
    subscribe("ba", a, "[\"/news/*\",\"/news/**\"]");
    handshake("bb", b);
    mconnect("bb", b, NULL);
    subscribe("bb", b, "\"/news/eu\"");

    size_t reached = 0;
    uint64_t seq = 0;
    json_object *d = json_tokener_parse("{\"h\":\"x\"}");
    is_int(bx_engine_publish(g_e, "/news/eu", d, NULL, &reached, &seq), BX_API_OK,
           "publish to a channel");
    is_int((long long)reached, 2, "reaches both sessions, a once despite two patterns");
    is_int((long long)seq, 1, "numbered in the history");
    is_int(bx_engine_publish(g_e, "/news/*", d, NULL, NULL, NULL), BX_API_INVALID_CHANNEL,
           "a pattern is no channel to publish to");
    is_int(bx_engine_publish(g_e, "/meta/x", d, NULL, NULL, NULL), BX_API_CHANNEL_DENIED,
           "/meta refused");
    is_int(bx_engine_publish(g_e, "/service/x", d, NULL, NULL, NULL),
           BX_API_CHANNEL_DENIED, "/service refused: deliver is for one client");
    bx_engine_flush(g_e, g_now);
    mconnect("ba", a, NULL);
    is_str(data_json("/news/eu", 0), "{\"h\":\"x\"}", "the subscriber gets it");

    /* A remote call's answer: id and successful in the delivery. */
    is_int(bx_engine_deliver(g_e, b, "/service/echo", d, "41", 1, NULL), BX_API_OK,
           "deliver to one client");
    is_int(bx_engine_deliver(g_e, "nobody", "/service/echo", d, NULL, -1, NULL),
           BX_API_UNKNOWN_CLIENT, "deliver to an unknown client");
    bx_engine_flush(g_e, g_now);
    reset_sent();
    mconnect("bb", b, NULL);
    json_object *m = elem("/service/echo", 0);
    is_str(sfield(m, "id"), "41", "the delivery carries the request's id");
    ok(is_true(m, "successful"), "and successful");
    mconnect("ba", a, ",\"advice\":{\"timeout\":0}");
    ok(elem("/service/echo", 0) == NULL, "nobody else gets it");

    /* A held connect hears of a backend's publish at the next flush. */
    uint64_t held = mconnect("bb", b, NULL);
    reset_sent();
    bx_engine_publish(g_e, "/news/eu", d, NULL, NULL, NULL);
    bx_engine_flush(g_e, g_now);
    ok(last() && last()->to.reqid == held, "a backend's publish wakes a held connect");
    json_object_put(d);
}

static void name_count(void *ud, const char *name)
{
    (void)name;
    (*(int *)ud)++;
}

static void info_copy(void *ud, const bx_session_info_t *si)
{
    *(bx_session_info_t *)ud = *si;
}

static void t_queries_and_kick(void)
{
    bx_engine_cfg_t cfg;
    bx_engine_cfg_defaults(&cfg);
    setup(&cfg);
    char a[64], b[64];
    handshake("ba", a);
    mconnect("ba", a, NULL);
    subscribe("ba", a, "[\"/x/**\",\"/x/y\"]");
    handshake("bb", b);
    mconnect("bb", b, NULL);
    subscribe("bb", b, "\"/x/*\"");

    int n = 0;
    size_t count = 0;
    is_int(bx_engine_subscribers(g_e, "/x/y", name_count, &n, &count), BX_API_OK,
           "subscribers of /x/y");
    is_int(n, 2, "both sessions, each once");
    is_int((long long)count, 2, "count 2");
    n = 0;
    bx_engine_subscribers(g_e, "/x/y/z", name_count, &n, &count);
    is_int(n, 1, "/x/y/z: only the /x/** subscriber");
    is_int(bx_engine_subscribers(g_e, "/x/*", name_count, &n, &count), BX_API_INVALID_CHANNEL,
           "subscribers of a pattern: refused");

    bx_session_info_t one;
    is_int((long long)bx_engine_sessions(g_e, 1, info_copy, &one), 2,
           "sessions: the count is all, whatever the limit");
    bx_session_info_t si;
    memset(&si, 0, sizeof si);
    is_int(bx_engine_session(g_e, a, info_copy, name_count, &si), BX_API_OK, "session a");
    is_int(si.subscriptions, 2, "two subscriptions");
    is_int(bx_engine_session(g_e, "zzz", info_copy, NULL, &si), BX_API_UNKNOWN_CLIENT,
           "unknown session");
    n = 0;
    is_int(bx_engine_session(g_e, a, NULL, name_count, &n), BX_API_OK,
           "session: subscriptions only, no figures");
    is_int(n, 2, "its two subscriptions");

    /* Kick: the held connect ends with reconnect none. */
    uint64_t held = mconnect("bb", b, NULL);
    reset_sent();
    is_int(bx_engine_kick(g_e, b, g_now), BX_API_OK, "kick b");
    is_str(last_ev()->reason, "kicked", "session.removed, reason kicked");
    bx_engine_flush(g_e, g_now);
    ok(last() && last()->to.reqid == held, "its held connect is answered");
    json_object *adv = field(elem("/meta/connect", 0), "advice");
    is_str(sfield(adv, "reconnect"), "none", "with reconnect none");
    is_int(bx_engine_kick(g_e, b, g_now), BX_API_UNKNOWN_CLIENT, "kicking it again: unknown");
}

/* ---- security (docs/security.md) ---- */

static const char SECRET[] = "0123456789abcdef0123";

static const char *hs_token(const char *browser, const char *token, char *out)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "[{\"id\":\"1\",\"channel\":\"/meta/handshake\",\"version\":\"1.0\","
             "\"supportedConnectionTypes\":[\"long-polling\"]%s%s%s}]",
             token ? ",\"ext\":{\"token\":\"" : "", token ? token : "", token ? "\"}" : "");
    req(LP, browser, buf);
    const char *cid = sfield(elem("/meta/handshake", 0), "clientId");
    snprintf(out, 64, "%s", cid ? cid : "");
    return out;
}

static const char *mint(const char *sub, int64_t exp, char *out)
{
    if (bx_token_mint(SECRET, sizeof SECRET - 1, sub, exp, out, BX_TOKEN_MINT_MAX) < 0)
        out[0] = '\0';
    return out;
}

static void t_auth(void)
{
    bx_engine_cfg_t cfg;
    bx_engine_cfg_defaults(&cfg);
    cfg.auth = BX_AUTH_REQUIRED;
    cfg.auth_secret = SECRET;
    cfg.auth_secret_len = sizeof SECRET - 1;
    setup(&cfg);
    char a[64], tok[BX_TOKEN_MINT_MAX];
    int64_t far = 4102444800LL;   /* 2100 */
    hs_token("b1", mint("alice", far, tok), a);
    ok(strlen(a) > 0, "required: a valid token gets a session");
    hs_token("b1", NULL, a);
    json_object *h = elem("/meta/handshake", 0);
    is_str(sfield(h, "error"), "403::handshake_denied", "required: no token, denied");
    is_str(sfield(field(h, "advice"), "reconnect"), "none", "with advice reconnect none");
    is_str(last_ev()->kind, "refused", "a refused event");
    is_str(last_ev()->reason, "403::handshake_denied", "naming the error");
    hs_token("b1", mint("alice", 1000, tok), a);
    is_str(sfield(elem("/meta/handshake", 0), "error"), "403::handshake_denied",
           "an expired token is denied");
    mint("alice", far, tok);
    tok[strlen(tok) - 2] ^= 1;
    hs_token("b1", tok, a);
    is_str(sfield(elem("/meta/handshake", 0), "error"), "403::handshake_denied",
           "a tampered token is denied");
    char nul[BX_TOKEN_MINT_MAX + 16];
    snprintf(nul, sizeof nul, "%s\\u0000zz", mint("alice", far, tok));
    hs_token("b1", nul, a);
    is_str(sfield(elem("/meta/handshake", 0), "error"), "403::handshake_denied",
           "a valid token with an escaped NUL and more after it is denied");

    cfg.auth = BX_AUTH_OPTIONAL;
    setup(&cfg);
    hs_token("b1", NULL, a);
    ok(strlen(a) > 0, "optional: no token is an anonymous session");
    hs_token("b1", "v1.bogus.bogus", a);
    is_str(sfield(elem("/meta/handshake", 0), "error"), "403::handshake_denied",
           "optional: a bad token is still denied");
}

static void t_rules(void)
{
    bx_engine_cfg_t cfg;
    bx_engine_cfg_defaults(&cfg);
    cfg.auth = BX_AUTH_OPTIONAL;
    cfg.auth_secret = SECRET;
    cfg.auth_secret_len = sizeof SECRET - 1;
    cfg.rules = "/user/{id}/** subscribe=subject publish=nobody;"
                " /chat/** subscribe=anyone publish=authenticated create=authenticated";
    cfg.rules_closed = 1;
    setup(&cfg);
    char al[64], an[64], tok[BX_TOKEN_MINT_MAX];
    hs_token("ba", mint("alice", 4102444800LL, tok), al);
    mconnect("ba", al, NULL);
    hs_token("bn", NULL, an);
    mconnect("bn", an, NULL);

    subscribe("ba", al, "\"/user/alice/inbox\"");
    ok(is_true(elem("/meta/subscribe", 0), "successful"), "alice: her inbox");
    subscribe("ba", al, "\"/user/bob/inbox\"");
    is_str(sfield(elem("/meta/subscribe", 0), "error"),
           "403:denied_by_security_policy:subscribe_denied", "alice: not bob's");
    subscribe("bn", an, "\"/chat/room\"");
    is_str(sfield(elem("/meta/subscribe", 0), "error"),
           "403:denied_by_security_policy:create_denied",
           "anonymous: may not create /chat/room");
    subscribe("ba", al, "\"/chat/room\"");
    ok(is_true(elem("/meta/subscribe", 0), "successful"), "alice creates it");
    subscribe("bn", an, "\"/chat/room\"");
    ok(is_true(elem("/meta/subscribe", 0), "successful"), "then anonymous may subscribe");
    publish(LP, "bn", an, "/chat/room", "1");
    is_str(sfield(elem("/chat/room", 0), "error"), "403:denied_by_security_policy:publish_denied",
           "anonymous may not publish to /chat/room");
    publish(LP, "ba", al, "/chat/room", "2");
    ok(is_true(elem("/chat/room", 1), "successful"), "alice may (after her own delivery)");
    publish(LP, "ba", al, "/user/alice/inbox", "3");
    is_str(sfield(elem("/user/alice/inbox", 0), "error"),
           "403:denied_by_security_policy:publish_denied", "publish=nobody: not even alice");
    subscribe("ba", al, "\"/other\"");
    is_str(sfield(elem("/meta/subscribe", 0), "error"),
           "403:denied_by_security_policy:subscribe_denied", "closed: a channel no rule names");
    json_object *five = json_object_new_int(5);
    is_int(bx_engine_publish(g_e, "/user/alice/inbox", five, NULL, NULL, NULL), BX_API_OK,
           "a backend publishes past the rules");
    json_object_put(five);
    bx_engine_stats_t st;
    bx_engine_stats(g_e, &st);
    is_int((long long)st.refused[BX_REFUSED_SUBSCRIBE], 2, "two subscribe refusals counted");
    is_int((long long)st.refused[BX_REFUSED_CREATE], 1, "one create refusal");
    is_int((long long)st.refused[BX_REFUSED_PUBLISH], 2, "two publish refusals");
}

static void t_limits(void)
{
    bx_engine_cfg_t cfg;
    bx_engine_cfg_defaults(&cfg);
    cfg.max_message_size = 200;
    cfg.max_sessions_per_address = 2;
    cfg.publish_rate = 3;
    setup(&cfg);
    char a[64], b[64], c[64], big[400];
    handshake("ba", a);
    handshake("bb", b);
    handshake("bc", c);
    is_str(sfield(elem("/meta/handshake", 0), "error"), "403::too_many_sessions",
           "a third session from one address is refused");
    is_str(sfield(field(elem("/meta/handshake", 0), "advice"), "reconnect"), "handshake",
           "with advice to handshake again later");
    char buf[256];
    snprintf(buf, sizeof buf, "[{\"id\":\"9\",\"channel\":\"/meta/disconnect\",\"clientId\":\"%s\"}]",
             b);
    req(LP, "bb", buf);
    handshake("bc", c);
    ok(strlen(c) > 0, "after a disconnect there is room again");

    memset(big, 'x', sizeof big - 3);
    big[0] = '"';
    big[sizeof big - 3] = '"';
    big[sizeof big - 2] = '\0';
    publish(LP, "ba", a, "/m", big);
    is_str(sfield(elem("/m", 0), "error"), "413::message_too_large", "a message over the limit");
    int okc = 0, refused = 0;
    for (int i = 0; i < 6; i++) {
        publish(LP, "ba", a, "/m", "1");
        const char *err = sfield(elem("/m", 0), "error");
        okc += err == NULL;
        refused += err && strcmp(err, "429::publish_rate_exceeded") == 0;
    }
    is_int(okc, 3, "publish-rate 3: a burst gets three through");
    is_int(refused, 3, "and three refused");
    g_now += 1000;
    publish(LP, "ba", a, "/m", "1");
    ok(sfield(elem("/m", 0), "error") == NULL, "a second later it passes again");
}

/* Counts the handshake replies of the last response: successes, and
 * failures with error err. */
static void count_handshakes(int *okc, int *errc, const char *err)
{
    *okc = *errc = 0;
    for (int i = 0; elem("/meta/handshake", i); i++) {
        json_object *m = elem("/meta/handshake", i);
        if (is_true(m, "successful"))
            (*okc)++;
        else if (sfield(m, "error") && strcmp(sfield(m, "error"), err) == 0)
            (*errc)++;
    }
}

static void t_handshake_limits(void)
{
    bx_engine_cfg_t cfg;
    bx_engine_cfg_defaults(&cfg);
    is_int((long long)cfg.max_handshakes_per_request, 1, "default: one handshake per request");
    cfg.handshake_rate = 2;
    cfg.handshake_burst = 5;
    cfg.max_sessions_per_address = 50;
    setup(&cfg);
    g_addr = "192.0.2.1";
    bx_buf_t b;
    bx_buf_init(&b);
    bx_buf_putc(&b, '[');
    for (int i = 0; i < 1000; i++)
        bx_buf_printf(&b, "%s{\"id\":\"%d\",\"channel\":\"/meta/handshake\",\"version\":"
                      "\"1.0\",\"supportedConnectionTypes\":[\"long-polling\"]}",
                      i ? "," : "", i);
    bx_buf_putc(&b, ']');
    req(LP, "", b.data);
    bx_buf_free(&b);
    int okc, errc;
    count_handshakes(&okc, &errc, "400::too_many_handshakes");
    is_int(okc, 1, "1,000 handshakes in one request: the first gets a session");
    is_int(errc, 999, "the other 999 are refused with 400::too_many_handshakes");
    json_object *m = elem("/meta/handshake", 999);
    is_str(sfield(m, "id"), "999", "each refusal names its message");
    bx_engine_stats_t st;
    bx_engine_stats(g_e, &st);
    is_int((long long)st.refused[BX_REFUSED_HANDSHAKES], 999, "counted by reason");
    is_int((long long)st.sessions, 1, "one session made");

    char cid[64];
    for (int i = 0; i < 4; i++)
        handshake("", cid);
    ok(strlen(cid) > 0, "the burst (5) allows four more at once");
    handshake("", cid);
    m = elem("/meta/handshake", 0);
    is_str(sfield(m, "error"), "429::handshake_rate_exceeded", "the sixth is over the rate");
    is_str(sfield(field(m, "advice"), "reconnect"), "handshake", "with advice to try again");
    g_addr = "192.0.2.2";
    handshake("", cid);
    ok(strlen(cid) > 0, "another address is not affected");
    g_addr = "192.0.2.1";
    g_now += 1000;
    handshake("", cid);
    ok(strlen(cid) > 0, "a second later: two more tokens, one...");
    handshake("", cid);
    ok(strlen(cid) > 0, "... two");
    handshake("", cid);
    is_str(sfield(elem("/meta/handshake", 0), "error"), "429::handshake_rate_exceeded",
           "and the third is refused again");
    g_now += 1000;
    tick();
    is_int((long long)bx_admit_addresses(g_e), 1,
           "a refilled bucket is forgotten, the busy one kept");
    g_now += 5000;
    tick();
    is_int((long long)bx_admit_addresses(g_e), 0, "full buckets are forgotten");

    /* handshake-rate = 0: no limit. */
    cfg.handshake_rate = 0;
    cfg.max_handshakes_per_request = 0;
    setup(&cfg);
    for (int i = 0; i < 20; i++)
        handshake("", cid);
    ok(strlen(cid) > 0, "no rate: twenty handshakes pass");
    g_addr = "127.0.0.1";
}

static void t_unconnected_expiry(void)
{
    bx_engine_cfg_t cfg;
    bx_engine_cfg_defaults(&cfg);
    cfg.unconnected_expiry_ms = 1000;
    setup(&cfg);
    char a[64], b[64], buf[256];
    handshake("ba", a);
    handshake("bb", b);
    mconnect("bb", b, NULL);
    g_now += 800;
    subscribe("ba", a, "\"/u\"");
    ok(is_true(elem("/meta/subscribe", 0), "successful"), "an unconnected session may subscribe");
    g_now += 800;
    tick();
    snprintf(buf, sizeof buf, "[{\"channel\":\"/v\",\"clientId\":\"%s\",\"data\":1}]", a);
    req(LP, "ba", buf);
    ok(is_true(elem("/v", 0), "successful"), "a message keeps it alive for 1 s more");
    g_now += 1100;
    tick();
    req(LP, "ba", buf);
    is_str(sfield(elem("/v", 0), "error"), "402::session_unknown",
           "never connected: gone 1 s after its last message");
    g_now += 5000;
    tick();
    snprintf(buf, sizeof buf, "[{\"channel\":\"/v\",\"clientId\":\"%s\",\"data\":1}]", b);
    req(LP, "bb", buf);
    ok(is_true(elem("/v", 0), "successful"), "a connected one lives interval + max-interval");
    g_now += 10001;
    tick();
    req(LP, "bb", buf);
    is_str(sfield(elem("/v", 0), "error"), "402::session_unknown", "and then expires");
}

static void t_stats_channel(void)
{
    bx_engine_cfg_t cfg;
    bx_engine_cfg_defaults(&cfg);
    cfg.stats_channel = "/bayeux/stats";
    cfg.stats_interval_ms = 1000;
    setup(&cfg);
    char a[64];
    handshake("ba", a);
    mconnect("ba", a, NULL);
    subscribe("ba", a, "\"/bayeux/stats\"");
    tick();
    uint64_t held = mconnect("ba", a, NULL);
    reset_sent();
    g_now += 1000;
    tick();
    ok(last() && last()->to.reqid == held, "the stats channel wakes the subscriber");
    json_object *d = field(elem("/bayeux/stats", 0), "data");
    is_int(d ? json_object_get_int64(field(d, "sessions")) : -1, 1, "with the session count");
    ok(field(d, "refused") != NULL, "and the refusals");
    ok(field(d, "queued") && field(d, "queue_max"), "and the queue depths");
}

int main(void)
{
    bx_log_level = BX_LOG_WARN;
    t_events();
    t_publish_and_deliver();
    t_queries_and_kick();
    t_auth();
    t_rules();
    t_limits();
    t_handshake_limits();
    t_unconnected_expiry();
    t_stats_channel();
    reset_sent();
    bx_engine_destroy(&g_e);
    done_testing();
    return exit_status();
}
