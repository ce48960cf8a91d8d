/* test_http.c - the responder's HTTP rules, table-driven, no server. */
#include <stdlib.h>
#include <string.h>

#include "fcgi/http.h"
#include "tests/unit/tap.h"

/* ------------------------------------------------------------ requests */

typedef struct {
    const char *name;
    const char *method, *ctype, *clen, *qs, *body;
    int status;              /* 0: forwarded */
    const char *error;       /* substring of the error text, or NULL */
    int transport;           /* when forwarded */
    const char *json;        /* when forwarded: exact batch text */
    const char *callback;    /* when forwarded by GET */
} req_case_t;

#define MSG_ENC "%5B%7B%22channel%22%3A%22%2Fmeta%2Fconnect%22%7D%5D"
#define MSG_DEC "[{\"channel\":\"/meta/connect\"}]"

static const req_case_t s_reqs[] = {
    { "POST application/json", "POST", "application/json", NULL, NULL, MSG_DEC,
      0, NULL, BX_TRANSPORT_LONG_POLLING, MSG_DEC, NULL },
    { "POST json with charset", "POST", "application/json; charset=UTF-8", NULL, NULL,
      MSG_DEC, 0, NULL, BX_TRANSPORT_LONG_POLLING, MSG_DEC, NULL },
    { "POST text/json", "POST", "TEXT/JSON", NULL, NULL, MSG_DEC,
      0, NULL, BX_TRANSPORT_LONG_POLLING, MSG_DEC, NULL },
    { "POST single object", "POST", "application/json", NULL, NULL,
      "{\"channel\":\"/meta/handshake\"}", 0, NULL, BX_TRANSPORT_LONG_POLLING,
      "{\"channel\":\"/meta/handshake\"}", NULL },
    { "POST form message=", "POST", "application/x-www-form-urlencoded", NULL, NULL,
      "message=" MSG_ENC, 0, NULL, BX_TRANSPORT_LONG_POLLING, MSG_DEC, NULL },
    { "POST no content type, form (Faye CORS)", "POST", NULL, NULL, NULL,
      "x=1&message=%5B%7B%22data%22%3A%22a+b%22%7D%5D", 0, NULL,
      BX_TRANSPORT_LONG_POLLING, "[{\"data\":\"a b\"}]", NULL },
    { "POST no content type, JSON body", "POST", NULL, NULL, NULL, "  \n" MSG_DEC,
      0, NULL, BX_TRANSPORT_LONG_POLLING, "  \n" MSG_DEC, NULL },
    { "POST text/plain, JSON body", "POST", "text/plain", NULL, NULL, MSG_DEC,
      0, NULL, BX_TRANSPORT_LONG_POLLING, MSG_DEC, NULL },
    { "POST form without message", "POST", "application/x-www-form-urlencoded", NULL,
      NULL, "a=b", 400, "missing message", 0, NULL, NULL },
    { "POST form with two messages", "POST", "application/x-www-form-urlencoded", NULL,
      NULL, "message=" MSG_ENC "&message=" MSG_ENC, 400, "multiple message", 0, NULL, NULL },
    { "POST form bad escape %ZZ", "POST", NULL, NULL, NULL, "message=%ZZ",
      400, "malformed form", 0, NULL, NULL },
    { "POST form truncated escape", "POST", NULL, NULL, NULL, "message=%5",
      400, "malformed form", 0, NULL, NULL },
    { "malformed JSON", "POST", "application/json", NULL, NULL, "[{\"channel\":",
      400, NULL, 0, NULL, NULL },
    { "trailing garbage", "POST", "application/json", NULL, NULL, "[{}] x",
      400, NULL, 0, NULL, NULL },
    { "empty array", "POST", "application/json", NULL, NULL, "[]", 400, NULL, 0, NULL, NULL },
    { "empty body", "POST", "application/json", "0", NULL, "", 400, NULL, 0, NULL, NULL },
    { "string body", "POST", "application/json", NULL, NULL, "\"hello\"",
      400, NULL, 0, NULL, NULL },
    { "number body", "POST", "application/json", NULL, NULL, "42", 400, NULL, 0, NULL, NULL },
    { "array of numbers", "POST", "application/json", NULL, NULL, "[1,2]",
      400, NULL, 0, NULL, NULL },
    { "too many messages (limit 3)", "POST", "application/json", NULL, NULL,
      "[{},{},{},{}]", 400, NULL, 0, NULL, NULL },
    { "too deep (limit 4)", "POST", "application/json", NULL, NULL,
      "[{\"a\":{\"b\":{\"c\":{\"d\":1}}}}]", 400, NULL, 0, NULL, NULL },
    { "invalid UTF-8", "POST", "application/json", NULL, NULL,
      "[{\"data\":\"\xc3\x28\"}]", 400, NULL, 0, NULL, NULL },
    { "Content-Length over the limit", "POST", "application/json", "1025", NULL, "",
      413, NULL, 0, NULL, NULL },
    { "body over the limit, no Content-Length", "POST", "application/json", NULL, NULL,
      "BIG", 413, NULL, 0, NULL, NULL },
    { "bad Content-Length", "POST", "application/json", "12abc", NULL, "",
      400, "Content-Length", 0, NULL, NULL },
    { "negative Content-Length", "POST", "application/json", "-1", NULL, "",
      400, "Content-Length", 0, NULL, NULL },
    { "GET jsonp + message", "GET", NULL, NULL, "jsonp=_cometd_jsonp_2&message=" MSG_ENC,
      NULL, 0, NULL, BX_TRANSPORT_CALLBACK_POLLING, MSG_DEC, "_cometd_jsonp_2" },
    { "GET dotted callback", "GET", NULL, NULL, "message=" MSG_ENC "&jsonp=a.b_c.$d",
      NULL, 0, NULL, BX_TRANSPORT_CALLBACK_POLLING, MSG_DEC, "a.b_c.$d" },
    { "GET message without jsonp: default callback", "GET", NULL, NULL, "message=" MSG_ENC,
      NULL, 0, NULL, BX_TRANSPORT_CALLBACK_POLLING, MSG_DEC, "jsonpcallback" },
    { "GET callback alert(1)//", "GET", NULL, NULL,
      "jsonp=alert(1)%2F%2F&message=" MSG_ENC, NULL, 400, "invalid jsonp", 0, NULL, NULL },
    { "GET callback with space", "GET", NULL, NULL, "jsonp=a+b&message=" MSG_ENC,
      NULL, 400, "invalid jsonp", 0, NULL, NULL },
    { "GET empty callback", "GET", NULL, NULL, "jsonp=&message=" MSG_ENC,
      NULL, 400, "invalid jsonp", 0, NULL, NULL },
    { "GET two callbacks", "GET", NULL, NULL, "jsonp=a&jsonp=b&message=" MSG_ENC,
      NULL, 400, "multiple jsonp", 0, NULL, NULL },
    { "GET without message", "GET", NULL, NULL, "jsonp=cb", NULL,
      400, "missing message", 0, NULL, NULL },
    { "GET without query string", "GET", NULL, NULL, NULL, NULL,
      400, "missing message", 0, NULL, NULL },
    { "GET bad JSON", "GET", NULL, NULL, "message=%5B", NULL, 400, NULL, 0, NULL, NULL },
    { "GET query string over the limit", "GET", NULL, NULL, "LONGQS", NULL,
      414, NULL, 0, NULL, NULL },
    { "PUT", "PUT", "application/json", NULL, NULL, MSG_DEC, 405, "method", 0, NULL, NULL },
    { "DELETE", "DELETE", NULL, NULL, NULL, NULL, 405, NULL, 0, NULL, NULL },
    { "HEAD", "HEAD", NULL, NULL, NULL, NULL, 405, NULL, 0, NULL, NULL },
    { "lower-case post", "post", NULL, NULL, NULL, MSG_DEC, 405, NULL, 0, NULL, NULL },
    { "no method", NULL, NULL, NULL, NULL, NULL, 405, NULL, 0, NULL, NULL },
    { "OPTIONS", "OPTIONS", NULL, NULL, NULL, NULL, 200, NULL, 0, NULL, NULL },
};

static void s_test_config(bx_http_config_t *cfg)
{
    bx_http_config_init(cfg);
    cfg->limits.max_body = 1024;
    cfg->limits.max_messages = 3;
    cfg->limits.max_depth = 4;
}

/* Runs one request through the rules; returns 0 if forwarded, else the
 * status to answer. */
static int s_run(const bx_http_config_t *cfg, const bx_http_params_t *p,
                 const char *body, size_t blen, bx_http_req_t *r)
{
    bx_http_action_t act;
    bx_http_req_init(r);
    act = bx_http_begin(cfg, p, r);
    if (act == BX_HTTP_READ_BODY) {
        if (bx_http_take_body(cfg, p, r, body ? body : "", blen) == 0)
            return 0;
        return r->status;
    }
    return act == BX_HTTP_FORWARD ? 0 : r->status;
}

static void s_requests(void)
{
    bx_http_config_t cfg;
    char big[2000], longqs[1100];

    s_test_config(&cfg);
    memset(big, ' ', sizeof big - 3);
    memcpy(big + sizeof big - 3, "[]", 3);
    memset(longqs, 'a', sizeof longqs - 1);
    memcpy(longqs, "message=", 8);
    longqs[sizeof longqs - 1] = '\0';

    for (size_t i = 0; i < sizeof s_reqs / sizeof s_reqs[0]; i++) {
        const req_case_t *c = &s_reqs[i];
        bx_http_params_t p;
        bx_http_req_t r;
        const char *body = c->body;
        int st;

        memset(&p, 0, sizeof p);
        p.method = c->method;
        p.content_type = c->ctype;
        p.content_length = c->clen;
        p.query_string = c->qs && strcmp(c->qs, "LONGQS") == 0 ? longqs : c->qs;
        if (body && strcmp(body, "BIG") == 0)
            body = big;
        st = s_run(&cfg, &p, body, body ? strlen(body) : 0, &r);
        is_int(st, c->status, "%s", c->name);
        if (c->error)
            ok(r.error && strstr(r.error, c->error), "%s: error '%s'", c->name,
               r.error ? r.error : "(null)");
        if (c->status == 0) {
            is_int(r.transport, c->transport, "%s: transport", c->name);
            is_str(r.json, c->json, "%s: batch text", c->name);
            if (c->callback)
                is_str(r.callback, c->callback, "%s: callback", c->name);
        } else if (c->status != 200) {
            ok(r.error != NULL && r.json == NULL, "%s: error text, nothing to forward", c->name);
        }
        bx_http_req_clear(&r);
    }
}

/* ------------------------------------------------------------ building blocks */

/* A test name on one TAP line: CR and LF shown as \r and \n. */
static const char *s_esc(const char *in)
{
    static char out[4][256];
    static int turn;
    char *o = out[turn++ % 4];
    size_t n = 0;
    for (const char *p = in ? in : "(none)"; *p && n + 3 < sizeof out[0]; p++) {
        if (*p == '\r' || *p == '\n') {
            o[n++] = '\\';
            o[n++] = *p == '\r' ? 'r' : 'n';
        } else {
            o[n++] = *p;
        }
    }
    o[n] = '\0';
    return o;
}

static void s_content_types(void)
{
    static const struct { const char *ct; bx_content_type_t want; } t[] = {
        { NULL, BX_CT_NONE }, { "", BX_CT_NONE }, { "  ", BX_CT_NONE },
        { "application/json", BX_CT_JSON }, { "Application/JSON", BX_CT_JSON },
        { "application/json;charset=UTF-8", BX_CT_JSON },
        { "application/json ; charset=utf-8", BX_CT_JSON }, { "text/json", BX_CT_JSON },
        { "application/jsonp", BX_CT_OTHER }, { "application/json-patch+json", BX_CT_OTHER },
        { "application/x-www-form-urlencoded", BX_CT_FORM },
        { "application/x-www-form-urlencoded; charset=UTF-8", BX_CT_FORM },
        { "text/plain", BX_CT_OTHER }, { "multipart/form-data; boundary=x", BX_CT_OTHER },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        is_int(bx_http_content_type(t[i].ct), t[i].want, "content type '%s'",
               t[i].ct ? t[i].ct : "(none)");
}

static void s_urldecode(void)
{
    static const struct { const char *in; const char *want; } t[] = {
        { "", "" }, { "abc", "abc" }, { "a+b", "a b" }, { "%41%62c", "Abc" },
        { "%2b%2B", "++" }, { "100%25", "100%" }, { "%e2%82%ac", "\xe2\x82\xac" },
        { "%", NULL }, { "%4", NULL }, { "%zz", NULL }, { "%4g", NULL }, { "a%", NULL },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        bx_buf_t b;
        bx_buf_init(&b);
        int rc = bx_http_urldecode(t[i].in, strlen(t[i].in), &b);
        if (t[i].want)
            ok(rc == 0 && b.len == strlen(t[i].want) && memcmp(b.data, t[i].want, b.len) == 0,
               "urldecode '%s'", t[i].in);
        else
            is_int(rc, -1, "urldecode '%s' is malformed", t[i].in);
        bx_buf_free(&b);
    }
}

static void s_form(void)
{
    static const struct { const char *in; int count; const char *value; } t[] = {
        { "", 0, NULL }, { "a=1&b=2", 0, NULL }, { "message=x", 1, "x" },
        { "a=1&message=x%26y&b", 1, "x&y" }, { "message", 1, "" }, { "message=", 1, "" },
        { "messag%65=v", 1, "v" }, { "message=1&message=2", 2, "1" },
        { "messages=1&xmessage=2", 0, NULL }, { "&&message=z&&", 1, "z" },
        { "a=%ZZ&message=1", -1, NULL }, { "message=1&b=%", -1, NULL },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        bx_buf_t v;
        bx_buf_init(&v);
        int n = bx_http_form_get(t[i].in, strlen(t[i].in), "message", &v);
        is_int(n, t[i].count, "form '%s': count", t[i].in);
        if (t[i].value)
            is_str(v.data ? v.data : "", t[i].value, "form '%s': value", t[i].in);
        bx_buf_free(&v);
    }
}

/* A browser id as bayeuxd issues them. */
#define KID "k3y9k3y9k3y9k3y9k3y9k3y9k3"
#define IA "abcdefghijklmnopqrstuvwxy0"
#define IB "0123456789abcdefghijklmnop"
#define IC "zyxwvutsrqponmlkjihgfedcba"

static void s_cookies(void)
{
    static const struct { const char *in; const char *want; } t[] = {
        { NULL, "" }, { "", "" }, { "BAYEUX_BROWSER=" IA, IA },
        { "a=b; BAYEUX_BROWSER=" IB "; c=d", IB }, { "a=b;BAYEUX_BROWSER=" IC, IC },
        { "BAYEUX_BROWSER=ABCDEFGHIJKLMNOPQRSTUVWXYZ", "" }, { "BAYEUX_BROWSER=", "" },
        { "BAYEUX_BROWSER=\"" IA "\"", "" }, { "BAYEUX_BROWSER=a b", "" },
        { "BAYEUX_BROWSER=bad!; BAYEUX_BROWSER=" IB, IB },
        { "XBAYEUX_BROWSER=" IA "; bayeux_browser=" IA, "" },
        { "BAYEUX_BROWSER=" IA "; BAYEUX_BROWSER=" IB, IA },
        /* Only what bayeuxd issues: 26 of [0-9a-z], no shorter, no longer. */
        { "BAYEUX_BROWSER=a", "" }, { "BAYEUX_BROWSER=abc123", "" },
        { "BAYEUX_BROWSER=abcdefghijklmnopqrstuvwxy", "" }, { "BAYEUX_BROWSER=" IA "0", "" },
        { "BAYEUX_BROWSER=short; BAYEUX_BROWSER=" IC, IC },
        { "BAYEUX_BROWSER=0123456789012345678901234567890123456789012345678901234567890123",
          "" },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char out[BX_BROWSER_LEN + 1];
        int found = bx_http_cookie_browser(t[i].in, out);
        is_str(out, t[i].want, "cookie '%s'", t[i].in ? t[i].in : "(none)");
        is_int(found, t[i].want[0] != '\0', "cookie '%s': found", t[i].in ? t[i].in : "(none)");
    }
}

static void s_origins(void)
{
    static const struct { const char *list, *origin; int want; } t[] = {
        { "*", "http://a.com", 1 }, { "*", "null", 1 }, { "*", NULL, 0 }, { "*", "", 0 },
        { "", "http://a.com", 0 }, { NULL, "http://a.com", 0 },
        { "http://a.com, https://b.com", "https://b.com", 1 },
        { "http://a.com,https://b.com", "HTTPS://B.COM", 1 },
        { "http://a.com, https://b.com", "http://c.com", 0 },
        { "http://a.com", "http://a.com.evil.org", 0 },
        { "http://a.com, *", "http://x.org", 1 },
        { "*", "http://a.com\r\nSet-Cookie: x=1", 0 }, { "*", "http://a b", 0 },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        is_int(bx_http_origin_allowed(t[i].list, t[i].origin), t[i].want,
               "origin '%s' under '%s'", s_esc(t[i].origin), s_esc(t[i].list));
}

static void s_jsonp(void)
{
    static const struct { const char *cb, *json, *want; } t[] = {
        { "cb", "[1]", "/**/cb([1]);" },
        { "_cometd_jsonp_2", "[]", "/**/_cometd_jsonp_2([]);" },
        { "f", "[\"a\xe2\x80\xa8z\xe2\x80\xa9\"]", "/**/f([\"a\\u2028z\\u2029\"]);" },
        { "f", "[\"\xe2\x82\xac\"]", "/**/f([\"\xe2\x82\xac\"]);" },
    };
    static const struct { const char *cb; int want; } v[] = {
        { "cb", 1 }, { "a.b.c", 1 }, { "$x_1", 1 }, { "alert(1)//", 0 }, { "a b", 0 },
        { "1abc", 0 }, { "a..b", 0 }, { ".a", 0 }, { "a.", 0 }, { "", 0 },
        { "a</script>", 0 },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        bx_buf_t b;
        bx_buf_init(&b);
        bx_http_jsonp_wrap(&b, t[i].cb, t[i].json, strlen(t[i].json));
        is_str(b.data, t[i].want, "jsonp body %zu", i);
        bx_buf_free(&b);
    }
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        is_int(bx_jsonp_callback_valid(v[i].cb, strlen(v[i].cb)), v[i].want,
               "callback '%s'", v[i].cb);
}

/* ------------------------------------------------------------ responses */

static int s_has(const bx_buf_t *b, const char *s)
{
    return b->data && strstr(b->data, s) != NULL;
}

/* The body after the blank line, and its Content-Length agrees. */
static int s_body_is(const bx_buf_t *b, const char *want)
{
    const char *sep = b->data ? strstr(b->data, "\r\n\r\n") : NULL;
    const char *cl = b->data ? strstr(b->data, "Content-Length: ") : NULL;
    if (!sep || !cl || cl > sep)
        return 0;
    return strcmp(sep + 4, want) == 0 && (size_t)atol(cl + 16) == strlen(want);
}

static void s_responses(void)
{
    bx_http_config_t cfg;
    bx_http_req_t r;
    bx_buf_t b;
    const char *json = "[{\"successful\":true}]";

    bx_http_config_init(&cfg);
    bx_http_req_init(&r);
    bx_buf_init(&b);
    bx_http_write_reply(&b, &cfg, &r, 200, "", 0, json, strlen(json));
    ok(strncmp(b.data, "Status: 200 OK\r\n", 16) == 0, "reply: status line first");
    ok(s_has(&b, "Content-Type: application/json;charset=UTF-8\r\n"), "reply: JSON type");
    ok(s_has(&b, "Cache-Control: no-cache, no-store\r\n"), "reply: no-cache");
    ok(s_has(&b, "X-Accel-Buffering: no\r\n"), "reply: X-Accel-Buffering");
    ok(s_has(&b, "X-Content-Type-Options: nosniff\r\n"), "reply: nosniff");
    ok(!s_has(&b, "Access-Control"), "reply: no CORS headers without Origin");
    ok(!s_has(&b, "Set-Cookie"), "reply: no cookie without browser id");
    ok(s_body_is(&b, json), "reply: body and Content-Length");

    bx_buf_reset(&b);
    r.origin = bx_strdup("http://a.com");
    bx_http_write_reply(&b, &cfg, &r, 200, KID, 26, json, strlen(json));
    ok(s_has(&b, "Access-Control-Allow-Origin: http://a.com\r\n"
                 "Access-Control-Allow-Credentials: true\r\nVary: Origin\r\n"),
       "reply: CORS headers for an allowed Origin");
    ok(s_has(&b, "Set-Cookie: BAYEUX_BROWSER=" KID "; Path=/; HttpOnly; SameSite=Lax\r\n"),
       "reply: cookie, SameSite=Lax by default");

    bx_buf_reset(&b);
    bx_http_write_reply(&b, &cfg, &r, 200, "BAD!", 4, json, strlen(json));
    ok(!s_has(&b, "Set-Cookie"), "reply: invalid browser id sets no cookie");

    cfg.samesite = BX_SAMESITE_NONE;
    cfg.cookie_path = "/app";
    bx_buf_reset(&b);
    bx_http_write_reply(&b, &cfg, &r, 200, KID, 26, json, strlen(json));
    ok(s_has(&b, "; Path=/app; HttpOnly; SameSite=None\r\n"), "reply: SameSite=None, no TLS");
    r.https = 1;
    bx_buf_reset(&b);
    bx_http_write_reply(&b, &cfg, &r, 200, KID, 26, json, strlen(json));
    ok(s_has(&b, "SameSite=None; Secure\r\n"), "reply: SameSite=None gets Secure over TLS");
    cfg.samesite = BX_SAMESITE_STRICT;
    bx_buf_reset(&b);
    bx_http_write_reply(&b, &cfg, &r, 200, KID, 26, json, strlen(json));
    ok(s_has(&b, "SameSite=Strict\r\n") && !s_has(&b, "Secure"), "reply: SameSite=Strict");
    bx_http_config_init(&cfg);

    bx_buf_reset(&b);
    r.transport = BX_TRANSPORT_CALLBACK_POLLING;
    r.callback = bx_strdup("_cometd_jsonp_7");
    bx_http_write_reply(&b, &cfg, &r, 200, "", 0, json, strlen(json));
    ok(s_has(&b, "Content-Type: text/javascript;charset=UTF-8\r\n"), "jsonp: type");
    ok(s_body_is(&b, "/**/_cometd_jsonp_7([{\"successful\":true}]);"), "jsonp: body");

    bx_buf_reset(&b);
    bx_http_write_reply(&b, &cfg, &r, 500, "", 0, "", 0);
    ok(strncmp(b.data, "Status: 500 Internal Server Error\r\n", 35) == 0,
       "dispatcher 500: status line");
    ok(s_has(&b, "Content-Type: text/plain;charset=UTF-8\r\n"), "dispatcher 500: text/plain");
    ok(s_body_is(&b, "Internal Server Error\n"), "dispatcher 500: default body");
    bx_buf_reset(&b);
    bx_http_write_reply(&b, &cfg, &r, 409, "", 0, "superseded", 10);
    ok(s_has(&b, "Status: 409 Unknown\r\n") && s_body_is(&b, "superseded\n"),
       "dispatcher status with its own text");

    bx_buf_reset(&b);
    bx_http_write_error(&b, &cfg, &r, 503, "dispatcher unavailable");
    ok(s_has(&b, "Status: 503 Service Unavailable\r\n")
       && s_body_is(&b, "dispatcher unavailable\n")
       && s_has(&b, "Access-Control-Allow-Origin: http://a.com\r\n"),
       "503 keeps the CORS headers (the browser can read the failure)");
    bx_http_req_clear(&r);
    bx_buf_free(&b);
}

/* Preflight and immediate errors, through bx_http_begin. */
static void s_immediate(void)
{
    static const struct {
        const char *name, *list, *method, *origin, *acrh;
        const char *has[4], *hasnt[2];
    } t[] = {
        { "preflight, allowed origin", "*", "OPTIONS", "http://a.com", "content-type",
          { "Status: 200 OK\r\n", "Access-Control-Allow-Origin: http://a.com\r\n",
            "Access-Control-Allow-Credentials: true\r\n",
            "Access-Control-Allow-Headers: content-type\r\n" }, { NULL, NULL } },
        { "preflight, methods and max-age", "*", "OPTIONS", "http://a.com", NULL,
          { "Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n",
            "Access-Control-Max-Age: 86400\r\n", "Access-Control-Allow-Headers: Accept, "
            "Authorization, Content-Type, Pragma, X-Requested-With\r\n", NULL },
          { NULL, NULL } },
        { "preflight, no Origin", "*", "OPTIONS", NULL, NULL,
          { "Access-Control-Allow-Origin: *\r\n", "Access-Control-Allow-Methods", NULL, NULL },
          { "Allow-Credentials", NULL } },
        { "preflight, refused origin", "http://a.com", "OPTIONS", "http://evil.org", NULL,
          { "Status: 200 OK\r\n", NULL, NULL, NULL },
          { "Access-Control-Allow-Origin", "Access-Control-Allow-Methods" } },
        { "preflight, CORS disabled", "", "OPTIONS", "http://a.com", NULL,
          { "Status: 200 OK\r\n", NULL, NULL, NULL }, { "Access-Control", NULL } },
        { "preflight, bad request headers fall back", "*", "OPTIONS", "http://a.com",
          "x\r\nSet-Cookie: a=b", { "Access-Control-Allow-Headers: Accept,", NULL, NULL, NULL },
          { "Set-Cookie", NULL } },
        { "405 names the methods", "*", "PUT", "http://a.com", NULL,
          { "Status: 405 Method Not Allowed\r\n", "Allow: GET, POST, OPTIONS\r\n",
            "Access-Control-Allow-Origin: http://a.com\r\n", NULL }, { NULL, NULL } },
        { "400 for GET without message", "*", "GET", NULL, NULL,
          { "Status: 400 Bad Request\r\n", "missing message parameter\n",
            "Cache-Control: no-cache, no-store\r\n", NULL }, { "Allow:", NULL } },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        bx_http_config_t cfg;
        bx_http_params_t p;
        bx_http_req_t r;
        bx_buf_t b;

        bx_http_config_init(&cfg);
        cfg.cors_origins = t[i].list;
        memset(&p, 0, sizeof p);
        p.method = t[i].method;
        p.origin = t[i].origin;
        p.acr_headers = t[i].acrh;
        bx_http_req_init(&r);
        bx_buf_init(&b);
        is_int(bx_http_begin(&cfg, &p, &r), BX_HTTP_RESPOND, "%s: answered at once", t[i].name);
        bx_http_write_immediate(&b, &cfg, &r);
        for (int k = 0; k < 4 && t[i].has[k]; k++)
            ok(s_has(&b, t[i].has[k]), "%s: has '%s'", t[i].name, s_esc(t[i].has[k]));
        for (int k = 0; k < 2 && t[i].hasnt[k]; k++)
            ok(!s_has(&b, t[i].hasnt[k]), "%s: lacks '%s'", t[i].name, s_esc(t[i].hasnt[k]));
        bx_buf_free(&b);
        bx_http_req_clear(&r);
    }
}

/* CORS origin and cookie are picked up by bx_http_begin for any method. */
static void s_begin_context(void)
{
    bx_http_config_t cfg;
    bx_http_params_t p;
    bx_http_req_t r;

    bx_http_config_init(&cfg);
    memset(&p, 0, sizeof p);
    p.method = "POST";
    p.origin = "http://a.com";
    p.cookie = "x=1; BAYEUX_BROWSER=" IB;
    p.https = "on";
    bx_http_req_init(&r);
    bx_http_begin(&cfg, &p, &r);
    ok(r.origin == NULL, "default: no origin is reflected (same-origin pages only)");
    bx_http_req_clear(&r);
    bx_buf_t out;
    bx_buf_init(&out);
    p.method = "OPTIONS";
    bx_http_req_init(&r);
    bx_http_begin(&cfg, &p, &r);
    bx_http_write_immediate(&out, &cfg, &r);
    ok(!strstr(out.data, "Access-Control"), "default: a preflight from a.com gets no CORS");
    bx_http_req_clear(&r);
    bx_buf_free(&out);
    p.method = "POST";

    cfg.cors_origins = "https://b.com, http://a.com";
    bx_http_req_init(&r);
    is_int(bx_http_begin(&cfg, &p, &r), BX_HTTP_READ_BODY, "POST: read the body");
    is_str(r.origin, "http://a.com", "POST: a configured origin is kept for the reply");
    is_str(r.browser, IB, "POST: browser id from the cookie");
    is_int(r.https, 1, "POST: HTTPS=on seen");
    bx_http_req_clear(&r);

    cfg.cors_origins = "";
    bx_http_req_init(&r);
    bx_http_begin(&cfg, &p, &r);
    ok(r.origin == NULL, "CORS disabled: origin not reflected");
    bx_http_req_clear(&r);
}

int main(void)
{
    s_requests();
    s_content_types();
    s_urldecode();
    s_form();
    s_cookies();
    s_origins();
    s_jsonp();
    s_responses();
    s_immediate();
    s_begin_context();
    done_testing();
    return exit_status();
}
