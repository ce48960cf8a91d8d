/* http.h - the HTTP rules of the responder, as pure functions.
 *
 * Everything here works on plain strings (the FastCGI params and the request
 * body) and writes CGI-style responses ("Status:" line, headers, body) into a
 * bx_buf_t, so tests/unit/test_http.c can table-test every rule without a web
 * server. responder.c only moves bytes between libfcgi, ZeroMQ and these.
 */
#ifndef BX_HTTP_H
#define BX_HTTP_H

#include <stddef.h>
#include "common/bayeux.h"
#include "common/util.h"
#include "common/wire.h"

#define BX_HTTP_CALLBACK_MAX 64          /* bx_jsonp_callback_valid's limit */
#define BX_HTTP_ORIGIN_MAX 255           /* longer Origin headers are ignored */
#define BX_HTTP_DEFAULT_CALLBACK "jsonpcallback"  /* Bayeux spec default (Faye) */
#define BX_HTTP_DEFAULT_ALLOW_HEADERS \
    "Accept, Authorization, Content-Type, Pragma, X-Requested-With"

typedef enum {
    BX_SAMESITE_LAX = 0,
    BX_SAMESITE_STRICT,
    BX_SAMESITE_NONE
} bx_samesite_t;

/* Settings that shape every response. The strings are lent (they live in the
 * option table for the life of the process). */
typedef struct {
    bx_limits_t limits;        /* body size, batch length, JSON depth */
    const char *cors_origins;  /* "a,b" exact list; "*" reflect any Origin;
                                * "" or NULL (default): never send CORS
                                * headers, same-origin pages only */
    bx_samesite_t samesite;    /* SameSite attribute of BAYEUX_BROWSER */
    const char *cookie_path;   /* Path attribute of BAYEUX_BROWSER */
} bx_http_config_t;

/* The FastCGI params the rules look at; NULL means the web server did not
 * send it. All lent by the caller. */
typedef struct {
    const char *method;        /* REQUEST_METHOD */
    const char *content_type;  /* CONTENT_TYPE */
    const char *content_length;/* CONTENT_LENGTH */
    const char *query_string;  /* QUERY_STRING */
    const char *cookie;        /* HTTP_COOKIE */
    const char *origin;        /* HTTP_ORIGIN */
    const char *https;         /* HTTPS ("on" behind TLS) */
    const char *acr_method;    /* HTTP_ACCESS_CONTROL_REQUEST_METHOD */
    const char *acr_headers;   /* HTTP_ACCESS_CONTROL_REQUEST_HEADERS */
} bx_http_params_t;

/* What bx_http_begin decided. */
typedef enum {
    BX_HTTP_RESPOND = 0,   /* answer now with bx_http_write_immediate */
    BX_HTTP_READ_BODY,     /* read up to body_max bytes, then bx_http_take_body */
    BX_HTTP_FORWARD        /* json holds a checked batch: send it on */
} bx_http_action_t;

/* One request as the rules see it. Small on purpose: the responder keeps it
 * for the whole time a long poll is parked. */
typedef struct {
    int status;            /* BX_HTTP_RESPOND: HTTP status to answer */
    const char *error;     /* static text for an error body, or NULL */
    int transport;         /* BX_TRANSPORT_LONG_POLLING / _CALLBACK_POLLING */
    int https;             /* the request came over TLS (HTTPS=on) */
    int preflight;         /* an OPTIONS request: answer with CORS preflight */
    int cors_wildcard;     /* preflight without Origin: allow "*" */
    size_t body_max;       /* BX_HTTP_READ_BODY: read at most this many bytes */
    char browser[BX_BROWSER_LEN + 1]; /* BAYEUX_BROWSER cookie, "" if none */
    char *callback;        /* owned; JSONP callback name (callback-polling) */
    char *origin;          /* owned; Origin to reflect (allowed), or NULL */
    char *allow_headers;   /* owned; preflight: headers to allow, or NULL */
    char *json;            /* owned; the batch text to forward, or NULL */
    size_t json_len;
} bx_http_req_t;

void bx_http_config_init(bx_http_config_t *cfg);

void bx_http_req_init(bx_http_req_t *r);
/* Frees what r owns; r can be reused after bx_http_req_init. */
void bx_http_req_clear(bx_http_req_t *r);

/* First look at a request, before any body is read: method, CORS origin,
 * cookie, query string (GET / callback-polling), Content-Length (413 without
 * reading). Fills r. */
bx_http_action_t bx_http_begin(const bx_http_config_t *cfg,
                               const bx_http_params_t *p, bx_http_req_t *r);

/* A POST body (len bytes; len > r->body_max means the body was larger than
 * allowed). Picks JSON or the form `message` parameter by content type and
 * checks the batch. Returns 0 with r->json set (BX_HTTP_FORWARD), or -1 with
 * r->status and r->error set (BX_HTTP_RESPOND). */
int bx_http_take_body(const bx_http_config_t *cfg, const bx_http_params_t *p,
                      bx_http_req_t *r, const char *body, size_t len);

/* The response for BX_HTTP_RESPOND: preflight, 405, 4xx with a text body. */
void bx_http_write_immediate(bx_buf_t *out, const bx_http_config_t *cfg,
                             const bx_http_req_t *r);

/* The response to a forwarded request from the dispatcher's reply: status
 * 200 gives JSON (long-polling) or a JSONP call (callback-polling); any other
 * status gives text/plain with body (or the status text if body is empty).
 * browser (blen bytes) is the id to set as BAYEUX_BROWSER; an empty or
 * invalid id sets no cookie. */
void bx_http_write_reply(bx_buf_t *out, const bx_http_config_t *cfg,
                         const bx_http_req_t *r, int status,
                         const char *browser, size_t blen,
                         const char *body, size_t len);

/* A plain error for a request the responder gives up on (503, 504...). */
void bx_http_write_error(bx_buf_t *out, const bx_http_config_t *cfg,
                         const bx_http_req_t *r, int status, const char *text);

/* ---- building blocks, exported for the unit tests ---- */

typedef enum {
    BX_CT_NONE = 0,   /* no Content-Type */
    BX_CT_JSON,       /* application/json or text/json, any parameters */
    BX_CT_FORM,       /* application/x-www-form-urlencoded */
    BX_CT_OTHER
} bx_content_type_t;

bx_content_type_t bx_http_content_type(const char *ct);

/* Decodes application/x-www-form-urlencoded text: '+' is a space, %XX a
 * byte. Appends to out. Returns 0, or -1 on a malformed escape ('%' not
 * followed by two hex digits). */
int bx_http_urldecode(const char *s, size_t n, bx_buf_t *out);

/* Looks up parameter name in form text (names are decoded before they are
 * compared). Returns how many times it occurs (0, 1, 2...) with the first
 * value decoded into value (when value != NULL and it occurs), or -1 if any
 * parameter of the text is malformed. */
int bx_http_form_get(const char *s, size_t n, const char *name, bx_buf_t *value);

/* Finds a valid BAYEUX_BROWSER cookie in a Cookie header. Returns 1 with the
 * value in out (BX_BROWSER_LEN + 1 bytes), or 0 with out = "". */
int bx_http_cookie_browser(const char *cookie, char *out);


/* True if origin may be reflected in CORS headers under list (see
 * bx_http_config_t.cors_origins). Also rejects origins that are empty, too
 * long or hold characters that do not belong in a header. */
int bx_http_origin_allowed(const char *list, const char *origin);

/* Appends an empty JavaScript comment, cb, "(", json and ");" with U+2028
 * and U+2029 escaped. The comment prefix (as Faye sends it) keeps the first
 * bytes of the body out of the caller's control, against content sniffing. */
void bx_http_jsonp_wrap(bx_buf_t *out, const char *cb, const char *json,
                        size_t len);

/* "OK", "Bad Request"... ("Unknown" for codes not listed). */
const char *bx_http_status_text(int status);

#endif
