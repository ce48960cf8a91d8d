/* fuzz_engine.c - the dispatcher engine driven by random programs.
 *
 * Input: byte 0 and 1 choose the configuration (timeouts, queue limit,
 * browser binding, duplicate-connect status, failing sends, sessions per
 * address); the rest is a
 * program, one operation per opcode byte:
 *   0  a batch of 1-4 messages built from the next bytes: channel, clientId
 *      (mostly ones earlier handshakes returned), id, and per channel
 *      advice, subscription or data, each sometimes wrong or of a wrong type
 *   1  a raw batch: a length byte and that much JSON text, put through
 *      bx_batch_parse like the dispatcher does (dropped if refused); with
 *      bit 3 of the opcode set, "$" and a digit d in the text stand for
 *      the clientId of the d-th session (modulo their number), "$*" and a
 *      byte k for k KiB of "x", so a program can name real sessions and
 *      carry messages of up to 255 KiB
 *   2  time passes (0 ms to 1000 s) and bx_engine_tick runs
 *   3  bx_engine_cancel of a held connect, or of a request that is not held
 *   4-7  shortcuts: handshake, connect, subscribe, publish
 * Every request comes from one of two responders, with one of a few
 * BAYEUX_BROWSER cookies (none, fixed ones, ones the engine set).
 *
 * Checked after every operation: no crash or sanitizer report; every reply
 * goes to a request that is waiting for one (none twice, none after a
 * cancel); a request is either answered during its bx_engine_request or
 * held, and the held ones are exactly stats.parked (<= stats.sessions); no
 * connect is held past its timeout after a tick; every 200 body passes
 * bx_batch_parse (valid UTF-8 JSON array of objects) and holds deliveries
 * first (no clientId or id in them), then one reply per message of the
 * batch, in order, echoing its channel and valid id; non-200 replies only
 * release a superseded connect; sessions = handshakes - disconnects -
 * expired; a clientId is only ever accepted after its handshake and before
 * its disconnect, and with browser binding only with its own cookie; a
 * delivery carries the channel and data (as JSON values) of a message some
 * client published; a message whose channel, or a subscribe whose
 * subscription, holds a NUL never succeeds; the sessions of the one
 * address requests come from stay within max_sessions_per_address.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "bayeux.h"
#include "channel.h"
#include "engine.h"
#include "log.h"
#include "store.h"
#include "util.h"
#include "wire.h"
#include "fuzz.h"

#define MAX_OPS 64
#define MAX_REQS (MAX_OPS + 1)
#define MAX_CLIENTS 16
#define MAX_BROWSERS 8
#define MAX_MSGS 8
#define MAX_PUBLISHED 256

/* ---- deterministic randomness ----
 * The engine draws clientIds and browser ids from getrandom(). Defining it
 * here takes the place of the C library's for this program only, so an
 * input always replays the same way (libFuzzer needs that too). */
static uint64_t g_rand_state;

ssize_t getrandom(void *buf, size_t len, unsigned int flags)
{
    unsigned char *p = buf;
    (void)flags;
    for (size_t i = 0; i < len; i++) {
        g_rand_state = g_rand_state * 6364136223846793005ULL + 1442695040888963407ULL;
        p[i] = (unsigned char)(g_rand_state >> 33);
    }
    return (ssize_t)len;
}

/* ---- the model ---- */

enum { R_UNUSED = 0, R_CURRENT, R_PARKED, R_ANSWERED, R_CANCELLED };

typedef struct {
    int state;
    uint32_t peer;
    int64_t since;          /* when it was parked */
} s_reqstate_t;

typedef struct {
    char id[BX_CLIENTID_LEN + 1];
    char browser[BX_BROWSER_LEN + 1];
    int dead;               /* disconnected successfully */
} s_client_t;

/* What one message of the current batch must get back. */
typedef struct {
    int has_channel;
    char channel[2048];     /* as echoed: the C string of the channel */
    int has_id;
    char id[BX_ID_MAX + 1];
    int kind;               /* 'H'andshake, 'D'isconnect, other 0 */
    int client;             /* index in g.clients of its clientId, or -1 */
    int unknown_client;     /* a clientId string no handshake returned */
    int nul;                /* its channel or a subscription holds a NUL */
} s_expect_t;

/* A message a client sent with data on a channel that is not /meta: what
 * any delivery must be one of. */
typedef struct {
    char *channel;
    json_object *data;
} s_published_t;

static struct {
    bx_engine_cfg_t cfg;
    bx_engine_t *e;
    int64_t now;
    s_reqstate_t req[MAX_REQS];
    uint64_t nreq;
    s_client_t clients[MAX_CLIENTS];
    int nclients;
    char browsers[MAX_BROWSERS][BX_BROWSER_LEN + 1];  /* cookies the engine set */
    int nbrowsers;
    size_t parked;          /* requests in R_PARKED */
    uint64_t handshakes, disconnects;
    uint64_t handshakes_base;   /* the same two when the engine last */
    uint64_t disconnects_base;  /* started (restarts forget addresses) */
    int fail_sends;         /* sends may fail (responder gone) */
    bx_store_t *store;      /* ack, history and restarts are on */
    uint64_t expired_base;  /* expired and overflowed sessions of engines */
    uint64_t overflow_base; /* that a restart replaced */
    int restarts;
    uint32_t fail_counter;
    /* the request being handled */
    uint64_t cur;
    const char *cur_browser;
    s_expect_t expect[MAX_MSGS];
    size_t nexpect;
    int cur_answered;
    s_published_t published[MAX_PUBLISHED];
    size_t npublished;
    int published_overflow; /* more than MAX_PUBLISHED: no delivery check */
} g;

static const uint8_t *g_in, *g_end;
static int g_verbose;       /* BX_FUZZ_VERBOSE=1: print the conversation */

static uint8_t s_byte(void)
{
    return g_in < g_end ? *g_in++ : 0;
}

static const char *s_str(json_object *o, const char *k)
{
    json_object *v;
    if (!o || !json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static int s_has(json_object *o, const char *k)
{
    return json_object_object_get_ex(o, k, NULL);
}

static int s_successful(json_object *o)
{
    json_object *v;
    CHECK(json_object_object_get_ex(o, "successful", &v) &&
          json_object_is_type(v, json_type_boolean));
    return json_object_get_boolean(v);
}

static int s_find_client(const char *id)
{
    for (int i = 0; i < g.nclients; i++)
        if (strcmp(g.clients[i].id, id) == 0)
            return i;
    return -1;
}

/* A successful handshake reply: remember the session and its browser. */
static void s_learn_handshake(json_object *reply, const char *set_browser)
{
    const char *cid = s_str(reply, "clientId");
    CHECK(cid && strlen(cid) == BX_CLIENTID_LEN);
    for (const char *p = cid; *p; p++)
        CHECK((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z'));
    CHECK(s_find_client(cid) < 0);
    /* The cookie is set when, and only when, the request had none. */
    const char *br = g.cur_browser[0] ? g.cur_browser : set_browser;
    CHECK(br && (g.cur_browser[0] ? set_browser == NULL : 1));
    g.handshakes++;
    if (g.nclients == MAX_CLIENTS)
        return;
    s_client_t *c = &g.clients[g.nclients++];
    snprintf(c->id, sizeof c->id, "%s", cid);
    snprintf(c->browser, sizeof c->browser, "%s", br);
    c->dead = 0;
}

/* One reply element for message k of the current batch. */
static void s_check_reply(json_object *reply, const s_expect_t *x, const char *set_browser)
{
    const char *ch = s_str(reply, "channel");
    if (x->has_channel)
        CHECK(ch && strcmp(ch, x->channel) == 0);
    else
        CHECK(json_object_object_get_ex(reply, "channel", NULL) && !ch);
    const char *id = s_str(reply, "id");
    if (x->has_id)
        CHECK(id && strcmp(id, x->id) == 0);
    else
        CHECK(!s_has(reply, "id"));
    int ok = s_successful(reply);
    if (!ok) {
        CHECK(s_str(reply, "error") != NULL);
        return;
    }
    /* "/chat/a\u0000x" is not "/chat/a": a name cut at a NUL is refused. */
    CHECK(!x->nul);
    if (x->kind == 'H') {
        s_learn_handshake(reply, set_browser);
        return;
    }
    /* Anything else that succeeds needed a live session of this browser. */
    CHECK(!x->unknown_client);
    CHECK(x->client >= 0);
    const s_client_t *c = &g.clients[x->client];
    CHECK(!c->dead);
    if (g.cfg.browser_binding)
        CHECK(strcmp(c->browser, g.cur_browser) == 0);
    if (x->kind == 'D') {
        g.clients[x->client].dead = 1;
        g.disconnects++;
    }
}

/* A 200 body: a valid batch, deliveries first, then replies. Returns the
 * parsed array (caller puts it). */
static json_object *s_check_body(const char *body, size_t len)
{
    bx_limits_t big;
    bx_batch_err_t err;
    bx_limits_init(&big);
    big.max_body = 64u << 20;
    big.max_messages = -1;
    big.max_depth = 64;
    json_object *arr = bx_batch_parse(body, len, &big, &err);
    if (!arr) {
        fprintf(stderr, "fuzz_engine: reply is not a batch (%s): %.*s\n",
                bx_batch_strerror(err), (int)len, body);
        abort();
    }
    size_t n = json_object_array_length(arr);
    int replies = 0;
    for (size_t i = 0; i < n; i++) {
        json_object *m = json_object_array_get_idx(arr, i);
        if (s_has(m, "data")) {
            /* A delivery: before every reply, never naming its publisher. */
            CHECK(replies == 0);
            CHECK(!s_has(m, "clientId") && !s_has(m, "id"));
            json_object *ch;
            CHECK(json_object_object_get_ex(m, "channel", &ch) &&
                  json_object_is_type(ch, json_type_string));
            const char *name = json_object_get_string(ch);
            size_t nlen = (size_t)json_object_get_string_len(ch);
            CHECK(strlen(name) == nlen && bx_channel_parse(name, nlen) == BX_CHAN_NAME);
            /* Exactly what was published: the same channel, the same data
             * (as JSON values: json-c writes numbers its own way). */
            json_object *data;
            json_object_object_get_ex(m, "data", &data);
            int found = g.published_overflow;
            for (size_t k = 0; k < g.npublished && !found; k++)
                found = strcmp(g.published[k].channel, name) == 0 &&
                        json_object_equal(g.published[k].data, data);
            if (!found) {
                fprintf(stderr, "fuzz_engine: delivery of data nobody published: %s\n",
                        json_object_to_json_string(m));
                abort();
            }
        } else {
            replies++;
        }
    }
    return arr;
}

static int s_send(void *ud, const bx_origin_t *to, int status, const char *browser,
                  const char *body, size_t len)
{
    (void)ud;
    if (g_verbose)
        fprintf(stderr, "<- %u/%llu %d %s %.*s\n", to->peer, (unsigned long long)to->reqid,
                status, browser ? browser : "-", (int)len, body);
    CHECK(to->reqid >= 1 && to->reqid <= g.nreq);
    s_reqstate_t *q = &g.req[to->reqid];
    CHECK(q->peer == to->peer);
    /* Exactly one reply per request, and none after a cancel. */
    CHECK(q->state == R_CURRENT || q->state == R_PARKED);
    if (q->state == R_PARKED)
        g.parked--;
    else
        g.cur_answered = 1;
    q->state = R_ANSWERED;

    if (status != 200) {
        /* Only a held connect superseded by a newer one, with no body. */
        CHECK(status == g.cfg.duplicate_connect_status);
        CHECK(to->reqid != g.cur && len == 0 && browser == NULL);
    } else {
        json_object *arr = s_check_body(body, len);
        size_t n = json_object_array_length(arr);
        size_t first_reply = 0;
        while (first_reply < n && s_has(json_object_array_get_idx(arr, first_reply), "data"))
            first_reply++;
        if (to->reqid == g.cur) {
            CHECK(n - first_reply == g.nexpect);
            for (size_t k = 0; k < g.nexpect; k++)
                s_check_reply(json_object_array_get_idx(arr, first_reply + k),
                              &g.expect[k], browser);
            if (browser) {
                CHECK(strlen(browser) == BX_BROWSER_LEN && !g.cur_browser[0]);
                if (g.nbrowsers < MAX_BROWSERS)
                    snprintf(g.browsers[g.nbrowsers++], BX_BROWSER_LEN + 1, "%s", browser);
            }
        } else {
            /* A held connect: its one reply, successful, last. */
            CHECK(n - first_reply == 1 && browser == NULL);
            json_object *r = json_object_array_get_idx(arr, n - 1);
            const char *ch = s_str(r, "channel");
            CHECK(ch && strcmp(ch, "/meta/connect") == 0 && s_successful(r));
        }
        json_object_put(arr);
    }
    /* A responder that went away: the engine must keep the messages. */
    if (g.fail_sends && (++g.fail_counter % 5) == 0)
        return -1;
    return 0;
}

static void s_check_stats(void)
{
    bx_engine_stats_t st;
    bx_engine_stats(g.e, &st);
    CHECK(st.parked == g.parked);
    CHECK(st.parked <= st.sessions);
    CHECK(st.sessions + g.disconnects + st.expired + g.expired_base + st.overflowed +
          g.overflow_base == g.handshakes);
    /* Every request comes from one address: sessions made since the start,
     * less all that ended since (a bound from below of those of the
     * address), never exceed its limit, however many handshakes a batch
     * holds. */
    if (g.cfg.max_sessions_per_address > 0)
        CHECK(g.handshakes - g.handshakes_base <=
              (uint64_t)g.cfg.max_sessions_per_address + (g.disconnects - g.disconnects_base) +
              st.expired + st.overflowed);
}

/* ---- requests ---- */

static const char *s_pick_browser(uint8_t b)
{
    static const char *const fixed[] = { "", "aaaa", "bbbb", "0",
        "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz" };
    if ((b & 7) < 5 || g.nbrowsers == 0)
        return fixed[(b & 7) % 5];
    return g.browsers[(b >> 3) % g.nbrowsers];
}

/* A string value with a NUL inside. */
static int s_has_nul(json_object *v)
{
    return json_object_is_type(v, json_type_string) &&
           strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v);
}

/* Notes what message k must get back, read from the batch itself. */
static void s_expect(json_object *msg, size_t k)
{
    s_expect_t *x = &g.expect[k];
    /* The reply echoes the channel as a C string, up to a NUL in it. */
    json_object *cv = NULL;
    json_object_object_get_ex(msg, "channel", &cv);
    const char *ch = json_object_is_type(cv, json_type_string) ? json_object_get_string(cv)
                                                               : NULL;
    memset(x, 0, sizeof *x);
    x->client = -1;
    x->has_id = bx_message_id(msg, x->id, sizeof x->id) == 0 && x->id[0];
    x->has_channel = ch != NULL;
    if (ch)
        snprintf(x->channel, sizeof x->channel, "%s", ch);
    if (ch && strcmp(ch, "/meta/handshake") == 0)
        x->kind = 'H';
    else if (ch && strcmp(ch, "/meta/disconnect") == 0)
        x->kind = 'D';
    const char *cid = bx_message_str(msg, "clientId");
    if (cid) {
        x->client = s_find_client(cid);
        x->unknown_client = x->client < 0;
    }
    json_object *v;
    if (json_object_object_get_ex(msg, "channel", &v))
        x->nul |= s_has_nul(v);
    if (ch && strncmp(ch, "/meta/", 6) == 0) {
        if (json_object_object_get_ex(msg, "subscription", &v)) {
            if (json_object_is_type(v, json_type_array)) {
                for (size_t i = 0; i < json_object_array_length(v); i++)
                    x->nul |= s_has_nul(json_object_array_get_idx(v, i));
            } else {
                x->nul |= s_has_nul(v);
            }
        }
    } else if (ch && !x->nul && json_object_object_get_ex(msg, "data", &v)) {
        if (g.npublished == MAX_PUBLISHED) {
            g.published_overflow = 1;
            return;
        }
        s_published_t *p = &g.published[g.npublished++];
        p->channel = strdup(ch);
        if (!p->channel)
            abort();
        p->data = json_object_get(v);
    }
}

static void s_request(json_object *batch, int transport, uint32_t peer, const char *browser)
{
    size_t n = json_object_array_length(batch);
    if (g.nreq + 1 >= MAX_REQS || n > MAX_MSGS)
        return;
    uint64_t id = ++g.nreq;
    g.req[id].state = R_CURRENT;
    g.req[id].peer = peer;
    g.cur = id;
    g.cur_browser = browser;
    g.cur_answered = 0;
    g.nexpect = n;
    for (size_t k = 0; k < n; k++)
        s_expect(json_object_array_get_idx(batch, k), k);

    bx_origin_t o = { peer, id };
    bx_engine_request(g.e, &o, transport, browser, "127.0.0.1", batch, g.now);
    bx_engine_flush(g.e, g.now);

    if (!g.cur_answered) {
        /* Held: only ever a lone /meta/connect. */
        CHECK(g.req[id].state == R_CURRENT);
        CHECK(n == 1 && g.expect[0].has_channel &&
              strcmp(g.expect[0].channel, "/meta/connect") == 0);
        g.req[id].state = R_PARKED;
        g.req[id].since = g.now;
        g.parked++;
    }
    g.cur = 0;
    s_check_stats();
}

/* Parses text as the dispatcher does and hands it to the engine. */
static void s_request_text(const char *text, size_t len, uint8_t how)
{
    bx_limits_t lim;
    bx_batch_err_t err;
    bx_limits_init(&lim);
    lim.max_messages = MAX_MSGS;
    json_object *batch = bx_batch_parse(text, len, &lim, &err);
    if (g_verbose)
        fprintf(stderr, "-> %u/%llu [%s] %s%.*s\n", (how >> 1) & 1,
                (unsigned long long)g.nreq + 1, s_pick_browser(how >> 2),
                batch ? "" : "(refused) ", (int)len, text);
    if (!batch)
        return;
    int transport = how & 1 ? BX_TRANSPORT_CALLBACK_POLLING : BX_TRANSPORT_LONG_POLLING;
    s_request(batch, transport, (how >> 1) & 1, s_pick_browser(how >> 2));
    json_object_put(batch);
}

static void s_put_client(bx_buf_t *b, uint8_t sel)
{
    char tmp[BX_CLIENTID_LEN + 1];
    if ((sel & 15) < 10 && g.nclients > 0) {
        bx_buf_printf(b, ",\"clientId\":\"%s\"", g.clients[sel % g.nclients].id);
        return;
    }
    switch (sel & 15) {
    case 10:
        return;   /* absent */
    case 11:
        for (int i = 0; i < BX_CLIENTID_LEN; i++)
            tmp[i] = "0123456789abcdefghijklmnopqrstuvwxyz"[(sel * 7 + i * 13) % 36];
        tmp[BX_CLIENTID_LEN] = '\0';
        bx_buf_printf(b, ",\"clientId\":\"%s\"", tmp);
        return;
    case 12:
        bx_buf_puts(b, ",\"clientId\":12345");
        return;
    case 13:
        if (g.nclients > 0) {   /* a known one, one character off */
            snprintf(tmp, sizeof tmp, "%s", g.clients[sel % g.nclients].id);
            tmp[BX_CLIENTID_LEN - 1] = tmp[BX_CLIENTID_LEN - 1] == 'a' ? 'b' : 'a';
            bx_buf_printf(b, ",\"clientId\":\"%s\"", tmp);
            return;
        }
        /* fall through */
    default:
        bx_buf_puts(b, ",\"clientId\":\"\"");
        return;
    }
}

static void s_put_id(bx_buf_t *b, uint8_t sel)
{
    static const char *const ids[] = {
        "", ",\"id\":\"1\"", ",\"id\":7", ",\"id\":-1", ",\"id\":\"a b\"",
        ",\"id\":\"0123456789012345678901234567890123456789012345678901234567890123X\"",
        ",\"id\":null", ",\"id\":1.5", ",\"id\":\"\"", ",\"id\":[1]",
    };
    if (sel < 10)
        bx_buf_puts(b, ids[sel]);
    else
        bx_buf_printf(b, ",\"id\":\"m%u\"", sel);
}

static const char *const g_subs[] = {
    "\"/chat/a\"", "\"/chat/*\"", "\"/chat/**\"", "\"/**\"", "[\"/chat/a\",\"/x/y/**\"]",
    "[]", "\"/meta/*\"", "\"/service/x\"", "5", "[\"/ok\",7]", "\"bad\"", "null",
    "\"/meta\"", "\"/chat/b/*\"", "\"/x/**\"", "\"/chat/a\\u0000x\"",
};

static const char *const g_advice[] = {
    "", ",\"advice\":{\"timeout\":0}", ",\"advice\":{\"timeout\":-5}",
    ",\"advice\":{\"timeout\":1e30}", ",\"advice\":\"x\"", ",\"advice\":{\"timeout\":\"5\"}",
    ",\"advice\":{\"timeout\":50}", ",\"advice\":{\"timeout\":1.5,\"interval\":0}",
};

static const char *const g_data[] = {
    "", ",\"data\":1", ",\"data\":{\"t\":\"x\\u2028y\",\"u\":\"\\ud83d\\ude00\"}",
    ",\"data\":null", ",\"data\":[[[[[[{}]]]]]]", ",\"data\":\"\\u0000\",\"ext\":{\"k\":1}",
    ",\"data\":{\"text\":\"hi\"},\"successful\":true", ",\"data\":-0.5e-7",
};

static const char *const g_hs_ext[] = {
    "", ",\"ext\":{\"ack\":true}", ",\"ext\":{\"ack\":true,\"timesync\":{\"tc\":1,\"l\":0,\"o\":0}}",
    ",\"ext\":{\"ack\":1}", ",\"ext\":5", ",\"ext\":{\"timesync\":{\"tc\":\"x\"}}",
    ",\"ext\":{\"ack\":true}", ",\"ext\":{\"ack\":false}",
};

static const char *const g_sub_ext[] = {
    "", ",\"ext\":{\"replay\":0}", ",\"ext\":{\"replay\":2}",
    ",\"ext\":{\"replay\":{\"/chat/a\":1,\"/chat/b/c\":0}}", ",\"ext\":{\"replay\":\"x\"}",
    ",\"ext\":{\"replay\":-3}", ",\"ext\":{\"replay\":1e40}", ",\"ext\":{\"replay\":null}",
};

static const char *const g_channels[] = {
    "/meta/handshake", "/meta/connect", "/meta/subscribe", "/meta/unsubscribe",
    "/meta/disconnect", "/chat/a", "/chat/b/c", "/service/x", "/meta/foo", "bad",
    "/a/*", NULL, "/meta", "/chat/a\\u0000x", "/x/y/z/w", "/chat/a",
};

/* Appends one structured message; returns its channel selector. */
static int s_put_message(bx_buf_t *b, int chsel)
{
    uint8_t client = s_byte(), id = s_byte(), extra = s_byte();
    if (chsel < 0)
        chsel = s_byte() & 15;
    bx_buf_putc(b, '{');
    if (g_channels[chsel])
        bx_buf_printf(b, "\"channel\":\"%s\"", g_channels[chsel]);
    else
        bx_buf_puts(b, "\"channel\":123");
    if (chsel != 0)
        s_put_client(b, client);
    s_put_id(b, id);
    switch (chsel) {
    case 0:
        bx_buf_puts(b, ",\"version\":\"1.0\",\"supportedConnectionTypes\":[\"long-polling\"]");
        bx_buf_puts(b, g_hs_ext[(extra >> 3) & 7]);
        break;
    case 1:
        bx_buf_puts(b, ",\"connectionType\":\"long-polling\"");
        bx_buf_puts(b, g_advice[extra & 7]);
        if (extra & 8)
            bx_buf_printf(b, ",\"ext\":{\"ack\":%u,\"timesync\":{\"tc\":%u,\"l\":%u,\"o\":0}}",
                          extra >> 5, extra * 1000u, extra & 16 ? 0u : 3u);
        else if (extra & 16)
            bx_buf_puts(b, ",\"ext\":{\"ack\":\"x\"}");
        break;
    case 2:
    case 3:
        if ((extra & 31) < 16)
            bx_buf_printf(b, ",\"subscription\":%s", g_subs[extra & 15]);
        bx_buf_puts(b, g_sub_ext[extra >> 5]);
        break;
    default:
        bx_buf_puts(b, g_data[extra & 7]);
        break;
    }
    bx_buf_putc(b, '}');
    return chsel;
}

static void s_op_batch(int chsel)
{
    uint8_t how = s_byte();
    int n = chsel >= 0 ? 1 : 1 + (s_byte() & 3);
    bx_buf_t b;
    bx_buf_init(&b);
    bx_buf_putc(&b, '[');
    for (int i = 0; i < n; i++) {
        if (i)
            bx_buf_putc(&b, ',');
        s_put_message(&b, chsel);
    }
    bx_buf_putc(&b, ']');
    s_request_text(b.data, b.len, how);
    bx_buf_free(&b);
}

/* Raw text with "$d" for a session's clientId and "$*k" for k KiB. */
static void s_expand(bx_buf_t *b, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] != '$' || i + 1 == len) {
            bx_buf_putc(b, (char)p[i]);
        } else if (p[i + 1] >= '0' && p[i + 1] <= '9') {
            if (g.nclients > 0)
                bx_buf_puts(b, g.clients[(p[i + 1] - '0') % g.nclients].id);
            i++;
        } else if (p[i + 1] == '*' && i + 2 < len) {
            size_t n = (size_t)p[i + 2] * 1024;
            bx_buf_reserve(b, n);
            memset(b->data + b->len, 'x', n);
            b->len += n;
            b->data[b->len] = '\0';
            i += 2;
        } else {
            bx_buf_putc(b, '$');
        }
    }
}

static void s_op_raw(int expand)
{
    uint8_t how = s_byte();
    size_t len = s_byte();
    if (len > (size_t)(g_end - g_in))
        len = (size_t)(g_end - g_in);
    bx_buf_t b;
    bx_buf_init(&b);
    if (expand)
        s_expand(&b, g_in, len);
    else
        bx_buf_append(&b, g_in, len);
    g_in += len;
    s_request_text(b.data ? b.data : "", b.len, how);
    bx_buf_free(&b);
}

static void s_op_tick(void)
{
    static const int64_t steps[] = { 0, 1, 10, 49, 50, 99, 100, 500, 997, 1000, 5000,
                                     10000, 10001, 20000, 20001, 1000000 };
    g.now += steps[s_byte() & 15];
    if (g_verbose)
        fprintf(stderr, "-- tick %lld\n", (long long)g.now);
    int64_t next = bx_engine_tick(g.e, g.now);
    bx_engine_flush(g.e, g.now);
    CHECK(next > g.now || g.cfg.sweep_period_ms == 0);
    /* Nothing stays held past its timeout (the client may ask for less). */
    for (uint64_t i = 1; i <= g.nreq; i++)
        if (g.req[i].state == R_PARKED)
            CHECK(g.req[i].since + g.cfg.timeout_ms > g.now);
    s_check_stats();
}

static void s_op_cancel(void)
{
    uint8_t sel = s_byte();
    bx_origin_t o = { sel & 1, 0 };
    uint64_t target = 0;
    if (sel & 2) {
        /* The n-th held connect, if any. */
        size_t n = g.parked ? (sel >> 2) % g.parked : 0;
        for (uint64_t i = 1; i <= g.nreq && g.parked; i++) {
            if (g.req[i].state == R_PARKED && n-- == 0) {
                target = i;
                break;
            }
        }
    } else {
        target = (uint64_t)(sel >> 2) % (g.nreq + 2);   /* maybe not issued */
    }
    if (target >= 1 && target <= g.nreq)
        o.peer = g.req[target].peer ^ (sel & 0x80 ? 1u : 0u);
    o.reqid = target;
    bx_engine_cancel(g.e, &o, g.now);
    bx_engine_flush(g.e, g.now);
    if (target >= 1 && target <= g.nreq && g.req[target].state == R_PARKED &&
        g.req[target].peer == o.peer) {
        g.req[target].state = R_CANCELLED;
        g.parked--;
    }
    s_check_stats();
}

static void s_setup(uint8_t a, uint8_t b)
{
    static const int64_t timeouts[] = { 20000, 100, 0, 5000 };
    static const int64_t queues[] = { 10000, 1, 2, 0 };
    static const int64_t intervals[] = { 0, 1000 };
    static const int64_t max_intervals[] = { 10000, 50, 1000, 0 };
    static const int64_t sweeps[] = { 997, 1, 100, 5000 };
    memset(&g, 0, sizeof g);
    bx_engine_cfg_defaults(&g.cfg);
    g.cfg.timeout_ms = timeouts[a & 3];
    g.cfg.max_queue = queues[(a >> 2) & 3];
    g.cfg.browser_binding = !(a & 16);
    g.cfg.interval_ms = intervals[(a >> 5) & 1];
    g.fail_sends = (a >> 6) & 1;
    /* A handful: enough for one batch of handshakes to use them all up. */
    if (a & 128)
        g.cfg.max_sessions_per_address = 4;
    g.cfg.max_interval_ms = max_intervals[b & 3];
    g.cfg.sweep_period_ms = sweeps[(b >> 2) & 3];
    g.cfg.duplicate_connect_status = b & 16 ? 408 : 500;
    g.cfg.timestamp = (b >> 7) & 1;
    g.cfg.overflow_end = (b >> 7) & 1;
    g.now = 1000000;
    if (b & 64) {
        /* The database, ack and histories: a restart is one more operation. */
        bx_store_cfg_t sc = { .path = ":memory:", .busy_timeout_ms = 1000 };
        char err[256];
        g.cfg.history = "/chat/** 3, /x/** 0 10s";
        g.store = bx_store_open(&sc, err, sizeof err);
        CHECK(g.store != NULL);
    }
    g.e = bx_engine_new(&g.cfg, s_send, NULL);
    if (g.store) {
        CHECK(bx_engine_load(g.e, g.store, g.now) == 0);
        CHECK(bx_engine_flush(g.e, g.now) == 0);
    }
}

/* bayeuxd killed and started again: held connects are gone unanswered (the
 * responders answer them 503), everything else comes back from the store. */
static void s_op_restart(void)
{
    bx_engine_stats_t before, after;
    bx_engine_stats(g.e, &before);
    CHECK(bx_store_check(g.store, NULL) == 0);
    bx_engine_destroy(&g.e);
    for (uint64_t i = 1; i <= g.nreq; i++)
        if (g.req[i].state == R_PARKED)
            g.req[i].state = R_CANCELLED;
    g.parked = 0;
    g.expired_base += before.expired;
    g.overflow_base += before.overflowed;
    g.restarts++;
    g.handshakes_base = g.handshakes;
    g.disconnects_base = g.disconnects;
    g.e = bx_engine_new(&g.cfg, s_send, NULL);
    CHECK(bx_engine_load(g.e, g.store, g.now) == 0);
    CHECK(bx_engine_flush(g.e, g.now) == 0);
    bx_engine_stats(g.e, &after);
    CHECK(after.sessions == before.sessions);
    CHECK(after.histories <= before.histories);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bx_log_level = BX_LOG_ERROR;
    g_verbose = getenv("BX_FUZZ_VERBOSE") != NULL;
    g_rand_state = 0x5eed;
    g_in = data;
    g_end = data + size;
    uint8_t a = s_byte(), b = s_byte();
    s_setup(a, b);
    int release = b & 32;

    for (int ops = 0; g_in < g_end && ops < MAX_OPS; ops++) {
        uint8_t op = s_byte();
        switch (op & 7) {
        case 0: s_op_batch(-1); break;
        case 1: s_op_raw(op & 8); break;
        case 2: s_op_tick(); break;
        case 3:
            if (g.store && (op & 0xf8) == 0xf8)
                s_op_restart();
            else
                s_op_cancel();
            break;
        case 4: s_op_batch(0); break;                        /* handshake */
        case 5: s_op_batch(1); break;                        /* connect */
        case 6: s_op_batch(op & 8 ? 3 : 2); break;           /* (un)subscribe */
        default: s_op_batch(op & 8 ? 15 : 5 + (op >> 4) % 3); break;   /* publish */
        }
    }
    if (release) {
        /* Shutdown: every held connect is answered. */
        bx_engine_release_all(g.e, g.now);
        bx_engine_flush(g.e, g.now);
        CHECK(g.parked == 0);
        s_check_stats();
    }
    bx_engine_destroy(&g.e);
    CHECK(g.e == NULL);
    for (size_t k = 0; k < g.npublished; k++) {
        free(g.published[k].channel);
        json_object_put(g.published[k].data);
    }
    if (g.store) {
        CHECK(bx_store_check(g.store, NULL) == 0);
        bx_store_close(&g.store);
    }
    return 0;
}
