/* http.c - the HTTP rules of the responder (see http.h). No I/O here. */
#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <strings.h>

#include "fcgi/http.h"

void bx_http_config_init(bx_http_config_t *cfg)
{
    bx_limits_init(&cfg->limits);
    /* Same-origin pages need no CORS headers; another site's page may read
     * replies made with the visitor's cookie only where the operator said
     * so (docs/security.md, "Cross-origin pages"). */
    cfg->cors_origins = "";
    cfg->samesite = BX_SAMESITE_LAX;
    cfg->cookie_path = "/";
}

void bx_http_req_init(bx_http_req_t *r)
{
    memset(r, 0, sizeof(*r));
    r->transport = BX_TRANSPORT_LONG_POLLING;
}

void bx_http_req_clear(bx_http_req_t *r)
{
    free(r->callback);
    free(r->origin);
    free(r->allow_headers);
    free(r->json);
    r->callback = r->origin = r->allow_headers = r->json = NULL;
    r->json_len = 0;
}

const char *bx_http_status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

/* ------------------------------------------------------------ parsing */

/* Case-insensitive match of a media type at the start of ct, followed by the
 * end, parameters (';') or white space: "application/json; charset=UTF-8". */
static int s_media_is(const char *ct, const char *type)
{
    size_t n = strlen(type);
    if (strncasecmp(ct, type, n) != 0)
        return 0;
    return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t';
}

bx_content_type_t bx_http_content_type(const char *ct)
{
    if (!ct)
        return BX_CT_NONE;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (*ct == '\0')
        return BX_CT_NONE;
    if (s_media_is(ct, "application/json") || s_media_is(ct, "text/json"))
        return BX_CT_JSON;
    if (s_media_is(ct, "application/x-www-form-urlencoded"))
        return BX_CT_FORM;
    return BX_CT_OTHER;
}

static int s_hex(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Form decoding into out (out may be NULL to only check the escapes). */
static int s_decode(const char *s, size_t n, bx_buf_t *out)
{
    size_t i = 0, start = 0;
    while (i < n) {
        if (s[i] != '%' && s[i] != '+') {
            i++;
            continue;
        }
        if (out && i > start)
            bx_buf_append(out, s + start, i - start);
        if (s[i] == '+') {
            if (out)
                bx_buf_putc(out, ' ');
            i++;
        } else {
            int hi = i + 1 < n ? s_hex((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? s_hex((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            if (out)
                bx_buf_putc(out, (char)(hi * 16 + lo));
            i += 3;
        }
        start = i;
    }
    if (out) {
        if (n > start)
            bx_buf_append(out, s + start, n - start);
        else
            bx_buf_append(out, "", 0);   /* makes out->data a valid "" */
    }
    return 0;
}

int bx_http_urldecode(const char *s, size_t n, bx_buf_t *out)
{
    return s_decode(s, n, out);
}

int bx_http_form_get(const char *s, size_t n, const char *name, bx_buf_t *value)
{
    size_t name_len = strlen(name);
    bx_buf_t key;
    int count = 0;
    size_t pos = 0;

    bx_buf_init(&key);
    while (pos < n) {
        const char *amp = memchr(s + pos, '&', n - pos);
        size_t end = amp ? (size_t)(amp - s) : n;
        const char *eq = memchr(s + pos, '=', end - pos);
        size_t kend = eq ? (size_t)(eq - s) : end;
        size_t vstart = eq ? kend + 1 : end;

        bx_buf_reset(&key);
        if (s_decode(s + pos, kend - pos, &key) < 0)
            goto error;
        if (key.len == name_len && memcmp(key.data, name, name_len) == 0) {
            count++;
            if (count == 1 && value) {
                bx_buf_reset(value);
                if (s_decode(s + vstart, end - vstart, value) < 0)
                    goto error;
            } else if (s_decode(s + vstart, end - vstart, NULL) < 0) {
                goto error;
            }
        } else if (s_decode(s + vstart, end - vstart, NULL) < 0) {
            goto error;
        }
        pos = end + 1;
    }
    bx_buf_free(&key);
    return count;
error:
    bx_buf_free(&key);
    return -1;
}

int bx_http_cookie_browser(const char *cookie, char *out)
{
    static const char name[] = "BAYEUX_BROWSER";
    const char *p = cookie;

    out[0] = '\0';
    if (!p)
        return 0;
    /* RFC 6265 §5.4: "name=value" pairs separated by "; ". Several cookies
     * of the same name can come (different paths): the first valid wins. */
    while (*p) {
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq;

        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        eq = memchr(p, '=', len);
        if (eq && (size_t)(eq - p) == sizeof(name) - 1
            && memcmp(p, name, sizeof(name) - 1) == 0) {
            size_t vlen = len - (size_t)(eq + 1 - p);
            if (bx_browser_valid(eq + 1, vlen)) {
                memcpy(out, eq + 1, vlen);
                out[vlen] = '\0';
                return 1;
            }
        }
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

/* Visible ASCII only: nothing that could end a header line or split it. */
static int s_header_safe(const char *s, size_t max, int allow_space)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' && allow_space)
            continue;
        if (c < 0x21 || c > 0x7e)
            return 0;
    }
    return 1;
}

int bx_http_origin_allowed(const char *list, const char *origin)
{
    if (!list || !origin || !s_header_safe(origin, BX_HTTP_ORIGIN_MAX, 0))
        return 0;
    size_t olen = strlen(origin);
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == 1 && *p == '*')
            return 1;
        /* Origins are serialized in lower case by browsers; be lenient. */
        if (len == olen && strncasecmp(p, origin, len) == 0)
            return 1;
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

/* A token list such as "Content-Type, X-Requested-With" (RFC 9110 tchar). */
static int s_token_list(const char *s)
{
    if (!s_header_safe(s, 1024, 1))
        return 0;
    for (const char *p = s; *p; p++) {
        if (!isalnum((unsigned char)*p) && !strchr("!#$%&'*+.^_`|~-, ", *p))
            return 0;
    }
    return 1;
}

static int s_cors_enabled(const bx_http_config_t *cfg)
{
    return cfg->cors_origins && cfg->cors_origins[0] != '\0';
}

/* ------------------------------------------------------------ decisions */

static bx_http_action_t s_fail(bx_http_req_t *r, int status, const char *error)
{
    r->status = status;
    r->error = error;
    return BX_HTTP_RESPOND;
}

/* Checks the batch text and takes it over (text is a buffer we own). */
static int s_accept_batch(const bx_http_config_t *cfg, bx_http_req_t *r,
                          bx_buf_t *text)
{
    bx_batch_err_t err = BX_BATCH_OK;
    json_object *batch = bx_batch_parse(text->data ? text->data : "", text->len,
                                        &cfg->limits, &err);
    if (!batch) {
        bx_buf_free(text);
        s_fail(r, bx_batch_http_status(err), bx_batch_strerror(err));
        return -1;
    }
    json_object_put(batch);
    r->json = bx_buf_steal(text, &r->json_len);
    return 0;
}

/* Form text (query string or body): the `message` parameter, checked. */
static int s_take_message(const bx_http_config_t *cfg, bx_http_req_t *r,
                          const char *s, size_t n)
{
    bx_buf_t msg;
    int count;

    bx_buf_init(&msg);
    count = bx_http_form_get(s, n, "message", &msg);
    if (count != 1) {
        bx_buf_free(&msg);
        if (count < 0)
            s_fail(r, 400, "malformed form encoding");
        else if (count == 0)
            s_fail(r, 400, "missing message parameter");
        else
            s_fail(r, 400, "multiple message parameters");
        return -1;
    }
    return s_accept_batch(cfg, r, &msg);
}

/* callback-polling: GET ?jsonp=cb&message=[...] (jsonp optional). */
static bx_http_action_t s_begin_get(const bx_http_config_t *cfg,
                                    const bx_http_params_t *p, bx_http_req_t *r)
{
    const char *qs = p->query_string ? p->query_string : "";
    size_t n = strlen(qs);
    bx_buf_t cb;
    int count;

    r->transport = BX_TRANSPORT_CALLBACK_POLLING;
    /* The whole batch is in the URL: over the body limit it is the URI
     * that is too long (414), not a body (413). */
    if (n > cfg->limits.max_body)
        return s_fail(r, 414, "query string too long");
    bx_buf_init(&cb);
    count = bx_http_form_get(qs, n, "jsonp", &cb);
    if (count < 0) {
        bx_buf_free(&cb);
        return s_fail(r, 400, "malformed form encoding");
    }
    if (count > 1) {
        bx_buf_free(&cb);
        return s_fail(r, 400, "multiple jsonp parameters");
    }
    if (count == 0) {
        /* Bayeux spec: the default callback is "jsonpcallback" (Faye). */
        bx_buf_free(&cb);
        r->callback = bx_strdup(BX_HTTP_DEFAULT_CALLBACK);
    } else if (!bx_jsonp_callback_valid(cb.data, cb.len)) {
        bx_buf_free(&cb);
        return s_fail(r, 400, "invalid jsonp callback");
    } else {
        r->callback = bx_buf_steal(&cb, NULL);
    }
    if (s_take_message(cfg, r, qs, n) < 0)
        return BX_HTTP_RESPOND;
    return BX_HTTP_FORWARD;
}

static bx_http_action_t s_begin_post(const bx_http_config_t *cfg,
                                     const bx_http_params_t *p, bx_http_req_t *r)
{
    r->transport = BX_TRANSPORT_LONG_POLLING;
    r->body_max = cfg->limits.max_body;
    if (p->content_length && p->content_length[0] != '\0') {
        int64_t cl;
        if (bx_parse_int64(p->content_length, 0, INT64_MAX, &cl) < 0)
            return s_fail(r, 400, "invalid Content-Length");
        /* Over the limit: 413 before a byte of the body is read. */
        if ((uint64_t)cl > cfg->limits.max_body)
            return s_fail(r, 413, bx_batch_strerror(BX_BATCH_TOO_LARGE));
        r->body_max = (size_t)cl;
    }
    return BX_HTTP_READ_BODY;
}

bx_http_action_t bx_http_begin(const bx_http_config_t *cfg,
                               const bx_http_params_t *p, bx_http_req_t *r)
{
    const char *method = p->method ? p->method : "";

    r->https = p->https && strcasecmp(p->https, "on") == 0;
    bx_http_cookie_browser(p->cookie, r->browser);
    if (s_cors_enabled(cfg) && bx_http_origin_allowed(cfg->cors_origins, p->origin))
        r->origin = bx_strdup(p->origin);

    if (strcmp(method, "POST") == 0)
        return s_begin_post(cfg, p, r);
    if (strcmp(method, "GET") == 0)
        return s_begin_get(cfg, p, r);
    if (strcmp(method, "OPTIONS") == 0) {
        /* CORS preflight: both clients send credentials, so the answer
         * must name the origin, never "*", when there is one. */
        r->preflight = 1;
        /* No Origin at all (a tool, not a browser): a wildcard is harmless
         * because it comes without credentials. A refused origin gets no
         * CORS headers and the browser blocks the request. */
        r->cors_wildcard = s_cors_enabled(cfg) && !p->origin;
        if (p->acr_headers && s_token_list(p->acr_headers))
            r->allow_headers = bx_strdup(p->acr_headers);
        return s_fail(r, 200, NULL);
    }
    return s_fail(r, 405, "method not allowed");
}

int bx_http_take_body(const bx_http_config_t *cfg, const bx_http_params_t *p,
                      bx_http_req_t *r, const char *body, size_t len)
{
    bx_buf_t text;
    size_t i = 0;

    if (len > r->body_max || len > cfg->limits.max_body) {
        s_fail(r, 413, bx_batch_strerror(BX_BATCH_TOO_LARGE));
        return -1;
    }
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r'
                       || body[i] == '\n'))
        i++;
    /* JSON by content type; otherwise a form with `message` (Faye's
     * cross-origin transport posts message=... with no content type),
     * unless the body plainly is JSON: a form never starts with '[' or '{'. */
    if (bx_http_content_type(p->content_type) == BX_CT_JSON
        || (i < len && (body[i] == '[' || body[i] == '{'))) {
        bx_buf_init(&text);
        bx_buf_append(&text, body, len);
        return s_accept_batch(cfg, r, &text);
    }
    return s_take_message(cfg, r, body, len);
}

/* ------------------------------------------------------------ responses */

static void s_head(bx_buf_t *out, const bx_http_req_t *r, int status,
                   const char *ctype)
{
    bx_buf_printf(out, "Status: %d %s\r\n", status, bx_http_status_text(status));
    if (ctype)
        bx_buf_printf(out, "Content-Type: %s\r\n", ctype);
    /* Never cached; nginx must pass a long-poll answer on at once. */
    bx_buf_puts(out, "Cache-Control: no-cache, no-store\r\n"
                     "X-Accel-Buffering: no\r\n"
                     "X-Content-Type-Options: nosniff\r\n");
    if (r && r->origin) {
        bx_buf_printf(out, "Access-Control-Allow-Origin: %s\r\n"
                           "Access-Control-Allow-Credentials: true\r\n"
                           "Vary: Origin\r\n", r->origin);
    }
}

static void s_body(bx_buf_t *out, const char *body, size_t len)
{
    bx_buf_printf(out, "Content-Length: %zu\r\n\r\n", len);
    bx_buf_append(out, body, len);
}

static void s_text(bx_buf_t *out, const bx_http_req_t *r, int status,
                   const char *text)
{
    bx_buf_t body;
    bx_buf_init(&body);
    bx_buf_printf(&body, "%s\n", text && *text ? text : bx_http_status_text(status));
    s_head(out, r, status, "text/plain;charset=UTF-8");
    if (status == 405)
        bx_buf_puts(out, "Allow: GET, POST, OPTIONS\r\n");
    s_body(out, body.data, body.len);
    bx_buf_free(&body);
}

void bx_http_write_immediate(bx_buf_t *out, const bx_http_config_t *cfg,
                             const bx_http_req_t *r)
{
    (void)cfg;
    if (!r->preflight) {
        s_text(out, r, r->status ? r->status : 500, r->error);
        return;
    }
    s_head(out, r, 200, "text/plain;charset=UTF-8");
    if (r->cors_wildcard)
        bx_buf_puts(out, "Access-Control-Allow-Origin: *\r\n");
    if (r->origin || r->cors_wildcard) {
        bx_buf_printf(out, "Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n"
                           "Access-Control-Allow-Headers: %s\r\n"
                           "Access-Control-Max-Age: 86400\r\n",
                      r->allow_headers ? r->allow_headers
                                       : BX_HTTP_DEFAULT_ALLOW_HEADERS);
    }
    s_body(out, "", 0);
}

void bx_http_jsonp_wrap(bx_buf_t *out, const char *cb, const char *json,
                        size_t len)
{
    size_t start = 0;
    bx_buf_puts(out, "/**/");
    bx_buf_puts(out, cb);
    bx_buf_putc(out, '(');
    /* U+2028/U+2029 are legal in JSON strings but ended a JavaScript string
     * literal before ES2019; inside valid JSON they can only be in strings,
     * so the escape keeps the value. */
    for (size_t i = 0; i + 2 < len; i++) {
        if ((unsigned char)json[i] == 0xe2 && (unsigned char)json[i + 1] == 0x80
            && ((unsigned char)json[i + 2] == 0xa8
                || (unsigned char)json[i + 2] == 0xa9)) {
            bx_buf_append(out, json + start, i - start);
            bx_buf_puts(out, (unsigned char)json[i + 2] == 0xa8 ? "\\u2028"
                                                               : "\\u2029");
            i += 2;
            start = i + 1;
        }
    }
    bx_buf_append(out, json + start, len - start);
    bx_buf_puts(out, ");");
}

static void s_cookie(bx_buf_t *out, const bx_http_config_t *cfg,
                     const bx_http_req_t *r, const char *id, size_t n)
{
    const char *ss = cfg->samesite == BX_SAMESITE_NONE ? "None"
                   : cfg->samesite == BX_SAMESITE_STRICT ? "Strict" : "Lax";
    bx_buf_puts(out, "Set-Cookie: BAYEUX_BROWSER=");
    bx_buf_append(out, id, n);
    bx_buf_printf(out, "; Path=%s; HttpOnly; SameSite=%s",
                  cfg->cookie_path ? cfg->cookie_path : "/", ss);
    /* Browsers drop SameSite=None without Secure, which only TLS allows. */
    if (cfg->samesite == BX_SAMESITE_NONE && r->https)
        bx_buf_puts(out, "; Secure");
    bx_buf_puts(out, "\r\n");
}

void bx_http_write_reply(bx_buf_t *out, const bx_http_config_t *cfg,
                         const bx_http_req_t *r, int status,
                         const char *browser, size_t blen,
                         const char *body, size_t len)
{
    if (status != 200) {
        bx_buf_t text;
        bx_buf_init(&text);
        bx_buf_append(&text, body ? body : "", body ? len : 0);
        s_text(out, r, status, text.data);
        bx_buf_free(&text);
        return;
    }
    if (r->transport == BX_TRANSPORT_CALLBACK_POLLING) {
        bx_buf_t js;
        bx_buf_init(&js);
        bx_http_jsonp_wrap(&js, r->callback ? r->callback : BX_HTTP_DEFAULT_CALLBACK,
                           body ? body : "", body ? len : 0);
        s_head(out, r, 200, "text/javascript;charset=UTF-8");
        if (bx_browser_valid(browser, blen))
            s_cookie(out, cfg, r, browser, blen);
        s_body(out, js.data, js.len);
        bx_buf_free(&js);
        return;
    }
    s_head(out, r, 200, "application/json;charset=UTF-8");
    if (bx_browser_valid(browser, blen))
        s_cookie(out, cfg, r, browser, blen);
    s_body(out, body ? body : "", body ? len : 0);
}

void bx_http_write_error(bx_buf_t *out, const bx_http_config_t *cfg,
                         const bx_http_req_t *r, int status, const char *text)
{
    (void)cfg;
    s_text(out, r, status, text);
}
