/* fuzz_http.c - the responder's HTTP rules (fcgi/http.h) with everything an
 * HTTP client controls: method, Content-Type, Content-Length, query string,
 * Cookie, Origin, the preflight headers and the body.
 *
 * Input, one field per line:
 *   line 0   settings, one character each (absent: default): CORS origins,
 *            SameSite, max body, max messages, max depth (value % choices)
 *   lines 1-9  REQUEST_METHOD, CONTENT_TYPE, CONTENT_LENGTH, QUERY_STRING,
 *            HTTP_COOKIE, HTTP_ORIGIN, HTTPS, HTTP_ACCESS_CONTROL_REQUEST_METHOD,
 *            HTTP_ACCESS_CONTROL_REQUEST_HEADERS; a line "!" or a missing
 *            line means the web server did not send it; byte 0x01 stands
 *            for a newline inside a value
 *   the rest   the request body
 *
 * The request goes through bx_http_begin / bx_http_take_body as the
 * responder drives them, then every response the responder can write is
 * built and checked: a well-formed CGI head (visible ASCII only, so no
 * header can be injected), a Content-Length that is right, CORS headers only
 * for an allowed Origin and never "*" with credentials, a cookie that is a
 * valid browser id, JSONP as the comment, a valid callback, "(", ");". What
 * is forwarded must pass bx_batch_parse with the same limits (the
 * dispatcher checks it again). The building blocks are compared with
 * reference implementations written from http.h.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fcgi/http.h"
#include "fuzz.h"

#define NFIELDS 9

/* ---- references ---- */

static int s_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Form decoding into out (n bytes at most); returns the length or -1. */
static long s_ref_decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%') {
            if (n - i < 3 || s_hexval((unsigned char)s[i + 1]) < 0 ||
                s_hexval((unsigned char)s[i + 2]) < 0)
                return -1;
            out[o++] = (char)(s_hexval((unsigned char)s[i + 1]) * 16 +
                              s_hexval((unsigned char)s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    return (long)o;
}

/* bx_http_form_get's contract: count of `name`, first value, -1 if any
 * name or value of the text is malformed. */
static int s_ref_form_count(const char *s, size_t n, const char *name, char *first,
                            long *first_len)
{
    char *key = malloc(n + 1), *val = malloc(n + 1);
    int count = 0;
    size_t pos = 0;
    if (!key || !val)
        abort();
    *first_len = -1;
    while (pos < n) {
        const char *amp = memchr(s + pos, '&', n - pos);
        size_t end = amp ? (size_t)(amp - s) : n;
        const char *eq = memchr(s + pos, '=', end - pos);
        size_t kend = eq ? (size_t)(eq - s) : end;
        size_t vstart = eq ? kend + 1 : end;
        long kl = s_ref_decode(s + pos, kend - pos, key);
        long vl = s_ref_decode(s + vstart, end - vstart, val);
        if (kl < 0 || vl < 0) {
            count = -1;
            break;
        }
        if ((size_t)kl == strlen(name) && memcmp(key, name, (size_t)kl) == 0 &&
            count++ == 0) {
            memcpy(first, val, (size_t)vl);
            *first_len = vl;
        }
        pos = end + 1;
    }
    free(key);
    free(val);
    return count;
}

static bx_content_type_t s_ref_ctype(const char *ct)
{
    static const struct {
        const char *t;
        bx_content_type_t k;
    } types[] = { { "application/json", BX_CT_JSON }, { "text/json", BX_CT_JSON },
                  { "application/x-www-form-urlencoded", BX_CT_FORM } };
    if (!ct)
        return BX_CT_NONE;
    ct += strspn(ct, " \t");
    if (!*ct)
        return BX_CT_NONE;
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        size_t n = strlen(types[i].t);
        if (strncasecmp(ct, types[i].t, n) == 0 && strchr("; \t", ct[n]))
            return types[i].k;   /* strchr finds the NUL too: end of text */
    }
    return BX_CT_OTHER;
}

static int s_browser_ok(const char *s, size_t n)
{
    if (n != BX_BROWSER_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z')))
            return 0;
    return 1;
}

/* ---- response checks ---- */

typedef struct {
    int status;
    const char *acao;      /* Access-Control-Allow-Origin value, in the copy */
    int credentials;
    const char *cookie;    /* Set-Cookie value */
    const char *ctype;
    const char *body;
    size_t body_len;
    char *copy;            /* owned: the head, NUL-separated lines */
} s_resp_t;

static void s_parse_response(const bx_buf_t *out, s_resp_t *r)
{
    memset(r, 0, sizeof *r);
    CHECK(out->data && out->len > 0);
    const char *end = memmem(out->data, out->len, "\r\n\r\n", 4);
    CHECK(end != NULL);
    size_t head = (size_t)(end - out->data);
    r->body = end + 4;
    r->body_len = out->len - head - 4;
    r->copy = malloc(head + 1);
    if (!r->copy)
        abort();
    memcpy(r->copy, out->data, head);
    r->copy[head] = '\0';

    long clen = -1;
    int nclen = 0;
    char *line = r->copy;
    for (int first = 1; line; first = 0) {
        char *crlf = strstr(line, "\r\n");
        if (crlf)
            *crlf = '\0';
        /* Visible ASCII and spaces only: nothing that ends or splits a
         * header line can have come from the request. */
        for (const char *p = line; *p; p++)
            CHECK((unsigned char)*p >= 0x20 && (unsigned char)*p <= 0x7e);
        char *colon = strstr(line, ": ");
        CHECK(colon != NULL && colon > line);
        *colon = '\0';
        const char *v = colon + 2;
        if (first) {
            CHECK(strcmp(line, "Status") == 0);
            r->status = atoi(v);
            CHECK(r->status >= 100 && r->status <= 599);
        } else if (strcmp(line, "Content-Length") == 0) {
            clen = atol(v);
            nclen++;
        } else if (strcmp(line, "Access-Control-Allow-Origin") == 0) {
            CHECK(r->acao == NULL);
            r->acao = v;
        } else if (strcmp(line, "Access-Control-Allow-Credentials") == 0) {
            r->credentials = 1;
        } else if (strcmp(line, "Set-Cookie") == 0) {
            r->cookie = v;
        } else if (strcmp(line, "Content-Type") == 0) {
            r->ctype = v;
        }
        line = crlf ? crlf + 2 : NULL;
    }
    CHECK(nclen == 1 && clen == (long)r->body_len);
    CHECK(r->ctype != NULL);
}

static void s_check_cors(const s_resp_t *resp, const bx_http_config_t *cfg,
                         const bx_http_params_t *p, int preflight)
{
    if (!resp->acao)
        return;
    CHECK(cfg->cors_origins && cfg->cors_origins[0]);
    if (strcmp(resp->acao, "*") == 0 && !(p->origin && strcmp(p->origin, "*") == 0)) {
        /* Only for a preflight without Origin, and never with credentials.
         * (A literal "Origin: *", which no browser sends, is reflected like
         * any other origin; browsers would refuse that answer, so no harm.) */
        CHECK(preflight && !p->origin && !resp->credentials);
        return;
    }
    CHECK(p->origin && strcmp(resp->acao, p->origin) == 0);
    CHECK(bx_http_origin_allowed(cfg->cors_origins, p->origin));
    CHECK(resp->credentials);
}

static void s_check_cookie(const s_resp_t *resp, const char *browser, size_t blen)
{
    if (!resp->cookie) {
        CHECK(!s_browser_ok(browser, blen));
        return;
    }
    CHECK(strncmp(resp->cookie, "BAYEUX_BROWSER=", 15) == 0);
    const char *v = resp->cookie + 15;
    size_t n = strcspn(v, ";");
    CHECK(n == blen && memcmp(v, browser, n) == 0 && s_browser_ok(v, n));
}

/* The reply a dispatcher could send for a forwarded request. */
static void s_check_replies(const bx_http_config_t *cfg, const bx_http_params_t *p,
                            const bx_http_req_t *r, const char *browser)
{
    bx_buf_t out;
    s_resp_t resp;
    size_t blen = strlen(browser);

    bx_buf_init(&out);
    bx_http_write_reply(&out, cfg, r, 200, browser, blen, r->json, r->json_len);
    s_parse_response(&out, &resp);
    CHECK(resp.status == 200);
    s_check_cors(&resp, cfg, p, 0);
    s_check_cookie(&resp, browser, blen);
    if (r->transport == BX_TRANSPORT_CALLBACK_POLLING) {
        CHECK(strncmp(resp.ctype, "text/javascript", 15) == 0);
        size_t cl = strlen(r->callback);
        CHECK(bx_jsonp_callback_valid(r->callback, cl));
        CHECK(resp.body_len >= 4 + cl + 3);
        CHECK(memcmp(resp.body, "/**/", 4) == 0);
        CHECK(memcmp(resp.body + 4, r->callback, cl) == 0 && resp.body[4 + cl] == '(');
        CHECK(memcmp(resp.body + resp.body_len - 2, ");", 2) == 0);
        CHECK(!memmem(resp.body, resp.body_len, "\xe2\x80\xa8", 3) &&
              !memmem(resp.body, resp.body_len, "\xe2\x80\xa9", 3));
    } else {
        CHECK(strncmp(resp.ctype, "application/json", 16) == 0);
        CHECK(resp.body_len == r->json_len && memcmp(resp.body, r->json, r->json_len) == 0);
    }
    free(resp.copy);

    /* A dispatcher error: the body is text, any bytes. */
    bx_buf_reset(&out);
    bx_http_write_reply(&out, cfg, r, 400, browser, blen, r->json, r->json_len);
    s_parse_response(&out, &resp);
    CHECK(resp.status == 400 && resp.cookie == NULL);
    s_check_cors(&resp, cfg, p, 0);
    free(resp.copy);

    bx_buf_reset(&out);
    bx_http_write_error(&out, cfg, r, 503, NULL);
    s_parse_response(&out, &resp);
    CHECK(resp.status == 503);
    free(resp.copy);
    bx_buf_free(&out);
}

static void s_check_immediate(const bx_http_config_t *cfg, const bx_http_params_t *p,
                              const bx_http_req_t *r)
{
    bx_buf_t out;
    s_resp_t resp;
    bx_buf_init(&out);
    bx_http_write_immediate(&out, cfg, r);
    s_parse_response(&out, &resp);
    CHECK(resp.status == r->status);
    CHECK(resp.cookie == NULL);
    s_check_cors(&resp, cfg, p, r->preflight);
    free(resp.copy);
    bx_buf_free(&out);
}

/* ---- the building blocks on the raw fields ---- */

static void s_check_blocks(const bx_http_config_t *cfg, const bx_http_params_t *p,
                           const char *body, size_t blen)
{
    const char *qs = p->query_string ? p->query_string : "";
    size_t n = strlen(qs);
    char *ref = malloc(n + blen + 1);
    bx_buf_t out;
    if (!ref)
        abort();

    bx_buf_init(&out);
    long rl = s_ref_decode(qs, n, ref);
    int rc = bx_http_urldecode(qs, n, &out);
    CHECK((rc == 0) == (rl >= 0));
    if (rc == 0)
        CHECK(out.len == (size_t)rl && memcmp(out.data, ref, out.len) == 0);

    /* The same rules on the body (not NUL-terminated, may hold NULs). */
    static const char *const names[] = { "message", "jsonp", "" };
    for (int k = 0; k < 3; k++) {
        long first_len;
        int want = s_ref_form_count(body, blen, names[k], ref, &first_len);
        bx_buf_reset(&out);
        int got = bx_http_form_get(body, blen, names[k], &out);
        CHECK(got == want);
        if (got > 0)
            CHECK(out.len == (size_t)first_len && memcmp(out.data, ref, out.len) == 0);
        CHECK(bx_http_form_get(body, blen, names[k], NULL) == want);
    }
    bx_buf_free(&out);
    free(ref);

    CHECK(bx_http_content_type(p->content_type) == s_ref_ctype(p->content_type));

    char browser[BX_BROWSER_LEN + 1];
    memset(browser, 'x', sizeof browser);
    int found = bx_http_cookie_browser(p->cookie, browser);
    CHECK(found == 0 || found == 1);
    CHECK(memchr(browser, '\0', sizeof browser) != NULL);
    if (found) {
        char want[BX_BROWSER_LEN + 20];
        snprintf(want, sizeof want, "BAYEUX_BROWSER=%s", browser);
        CHECK(s_browser_ok(browser, strlen(browser)) && strstr(p->cookie, want));
    } else {
        CHECK(browser[0] == '\0');
    }

    if (p->origin && bx_http_origin_allowed(cfg->cors_origins, p->origin)) {
        size_t ol = strlen(p->origin);
        CHECK(ol >= 1 && ol <= BX_HTTP_ORIGIN_MAX);
        for (size_t i = 0; i < ol; i++)
            CHECK(p->origin[i] > 0x20 && p->origin[i] < 0x7f);
    }
}

/* ---- input ---- */

static char *s_field(const uint8_t **p, const uint8_t *end, int *present)
{
    const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t n = nl ? (size_t)(nl - *p) : (size_t)(end - *p);
    *present = *p < end || nl != NULL;
    char *s = malloc(n + 1);
    if (!s)
        abort();
    for (size_t i = 0; i < n; i++)
        s[i] = (*p)[i] == 0x01 ? '\n' : (char)(*p)[i];
    s[n] = '\0';   /* an embedded NUL ends the value, as in a CGI param */
    *p = nl ? nl + 1 : end;
    if (!*present || strcmp(s, "!") == 0) {
        free(s);
        *present = 0;
        return NULL;
    }
    return s;
}

static void s_config(bx_http_config_t *cfg, const char *line)
{
    static const char *const origins[] = {
        "*", "", NULL, "https://a.example, http://b.example:8080", " * ,x", "http://x"
    };
    static const size_t bodies[] = { BX_DEFAULT_MAX_BODY, 16, 64, 200 };
    static const int counts[] = { BX_DEFAULT_MAX_MESSAGES, 1, 2 };
    static const int depths[] = { BX_DEFAULT_MAX_DEPTH, 2, 3 };
    size_t n = line ? strlen(line) : 0;
    const unsigned char *u = (const unsigned char *)line;

    bx_http_config_init(cfg);
    if (n > 0)
        cfg->cors_origins = origins[u[0] % 6];
    if (n > 1)
        cfg->samesite = (bx_samesite_t)(u[1] % 3);
    if (n > 2)
        cfg->limits.max_body = bodies[u[2] % 4];
    if (n > 3)
        cfg->limits.max_messages = counts[u[3] % 3];
    if (n > 4)
        cfg->limits.max_depth = depths[u[4] % 3];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    char *f[NFIELDS];
    int present;
    bx_http_config_t cfg;
    bx_http_params_t prm;
    bx_http_req_t r;

    char *settings = s_field(&p, end, &present);
    s_config(&cfg, settings);
    for (int i = 0; i < NFIELDS; i++)
        f[i] = s_field(&p, end, &present);
    size_t blen = (size_t)(end - p);
    char *body = malloc(blen ? blen : 1);   /* exactly the body, no NUL */
    if (!body)
        abort();
    memcpy(body, p, blen);

    prm = (bx_http_params_t){ f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8] };
    s_check_blocks(&cfg, &prm, body, blen);

    bx_http_req_init(&r);
    bx_http_action_t act = bx_http_begin(&cfg, &prm, &r);
    const char *method = prm.method ? prm.method : "";

    CHECK(r.browser[0] == '\0' || s_browser_ok(r.browser, strlen(r.browser)));
    CHECK(!r.origin || (cfg.cors_origins && strcmp(r.origin, prm.origin) == 0));
    if (act == BX_HTTP_READ_BODY) {
        CHECK(strcmp(method, "POST") == 0);
        CHECK(r.body_max <= cfg.limits.max_body);
        /* As the responder reads: at most body_max bytes, and one past it
         * means "more than allowed". */
        size_t got = blen > r.body_max ? r.body_max + 1 : blen;
        if (bx_http_take_body(&cfg, &prm, &r, body, got) == 0) {
            act = BX_HTTP_FORWARD;
            CHECK(got <= r.body_max);
        } else {
            act = BX_HTTP_RESPOND;
            CHECK(r.status == 400 || r.status == 413);
            CHECK(r.error != NULL && r.json == NULL);
            CHECK(got <= r.body_max || r.status == 413);
        }
    }
    if (act == BX_HTTP_FORWARD) {
        CHECK(strcmp(method, "POST") == 0 || strcmp(method, "GET") == 0);
        CHECK(r.json != NULL && r.json_len > 0 && strlen(r.json) == r.json_len);
        bx_batch_err_t err;
        json_object *batch = bx_batch_parse(r.json, r.json_len, &cfg.limits, &err);
        CHECK(batch != NULL);
        json_object_put(batch);
        if (strcmp(method, "GET") == 0) {
            CHECK(r.transport == BX_TRANSPORT_CALLBACK_POLLING);
            CHECK(r.callback && bx_jsonp_callback_valid(r.callback, strlen(r.callback)));
        } else {
            CHECK(r.transport == BX_TRANSPORT_LONG_POLLING && !r.callback);
        }
        s_check_replies(&cfg, &prm, &r, prm.cookie ? prm.cookie : "");
        s_check_replies(&cfg, &prm, &r, r.browser);
    } else {
        CHECK(act == BX_HTTP_RESPOND);
        if (strcmp(method, "OPTIONS") == 0) {
            CHECK(r.preflight && r.status == 200);
        } else {
            CHECK(!r.preflight && r.error != NULL && r.json == NULL);
            CHECK(r.status == 400 || r.status == 405 || r.status == 413 || r.status == 414);
            CHECK((r.status == 405) == (strcmp(method, "POST") && strcmp(method, "GET")));
        }
        s_check_immediate(&cfg, &prm, &r);
    }
    bx_http_req_clear(&r);
    bx_http_req_clear(&r);

    free(body);
    free(settings);
    for (int i = 0; i < NFIELDS; i++)
        free(f[i]);
    return 0;
}
