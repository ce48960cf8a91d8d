/* bayeux.h - Bayeux request bodies: parsing with limits, message field checks.
 *
 * Both programs use these: the responder to answer bad input with 400/413
 * before it costs the dispatcher anything, the dispatcher because it never
 * trusts what arrives on a socket.
 */
#ifndef BX_BAYEUX_H
#define BX_BAYEUX_H

#include <stddef.h>
#include <json-c/json.h>

#define BX_DEFAULT_MAX_BODY     (256 * 1024)  /* bytes of JSON in one request */
#define BX_DEFAULT_MAX_MESSAGES 1000          /* messages in one batch */
#define BX_DEFAULT_MAX_DEPTH    32            /* JSON nesting depth */
#define BX_ID_MAX               64            /* longest message id accepted */
#define BX_BROWSER_LEN          26            /* BAYEUX_BROWSER values bayeuxd issues */

typedef struct {
    size_t max_body;     /* request body / message parameter size, bytes */
    int max_messages;    /* messages per batch */
    int max_depth;       /* JSON nesting depth, the batch array counting as 1 */
} bx_limits_t;

typedef enum {
    BX_BATCH_OK = 0,
    BX_BATCH_TOO_LARGE,     /* over max_body: HTTP 413 */
    BX_BATCH_BAD_UTF8,      /* not valid UTF-8 */
    BX_BATCH_BAD_JSON,      /* not JSON, or trailing garbage */
    BX_BATCH_TOO_DEEP,      /* nested deeper than max_depth */
    BX_BATCH_NOT_MESSAGES,  /* neither an object nor an array of objects */
    BX_BATCH_EMPTY,         /* empty array, or empty body */
    BX_BATCH_TOO_MANY,      /* more than max_messages */
    BX_BATCH_BAD_NUMBER,    /* a number spelled like bx_batch_parse's stand-ins */
    BX_BATCH_NUL_KEY        /* an object key with an escaped NUL (json-c would
                               cut it short) */
} bx_batch_err_t;

/* Sets the defaults above. */
void bx_limits_init(bx_limits_t *lim);

/* Parses a request body. A single object is accepted and wrapped in a
 * one-element array (both CometD and Faye accept it). Returns a new array of
 * objects owned by the caller (json_object_put), or NULL with *err set.
 * Checks in this order: size, empty/whitespace-only, UTF-8 (strict: no
 * overlongs, surrogates or code points above U+10FFFF), JSON (RFC 8259 as
 * json-c's strict mode reads it; a raw NUL byte or trailing non-whitespace is
 * BAD_JSON), depth, shape, count.
 * Depth counts arrays and objects only: the batch array is 1, a message
 * object 2, an object in its "data" 3. A lone object body is treated as if
 * wrapped, so it may nest max_depth - 1 deep, exactly as inside an array.
 * Every number keeps the text it was written with when serialized again:
 * integers beyond 64 bits and "-0" become json_type_double objects carrying
 * their text (json-c would clamp them), the others are as json-c reads them
 * (it keeps the text of fractions and exponents: 0.1, 1e400, -0.0). */
json_object *bx_batch_parse(const char *text, size_t len, const bx_limits_t *lim,
                            bx_batch_err_t *err);

/* Text for an error, e.g. "malformed JSON", for HTTP error bodies and logs. */
const char *bx_batch_strerror(bx_batch_err_t err);

/* 413 for BX_BATCH_TOO_LARGE, 400 for every other error, 200 for OK. */
int bx_batch_http_status(bx_batch_err_t err);

/* Reads the optional "id" of a message into out (at least BX_ID_MAX + 1 bytes).
 * A string must match [A-Za-z0-9]+ (CometD's validator) and be at most
 * BX_ID_MAX long; an integer is written in decimal (CometD stringifies
 * numeric ids). Absent: out = "" and returns 0. Returns 0, or -1 when the id
 * is present but invalid (reply 405::message_id_invalid). */
int bx_message_id(json_object *msg, char *out, size_t outlen);

/* Returns the message's string field, or NULL if absent, not a string or
 * holding a NUL ("\u0000"): an identifier with one is never valid. The
 * pointer is lent by json-c and lives as long as msg. */
const char *bx_message_str(json_object *msg, const char *field);

/* v's text if v is a string without a NUL inside, else NULL (lent). */
const char *bx_json_cstr(json_object *v);

/* True if s (n bytes) is a browser id bayeuxd could have issued: exactly
 * BX_BROWSER_LEN characters of [0-9a-z] (bx_random_id). The one check of
 * the BAYEUX_BROWSER cookie, in the responder and in bayeuxd: a value the
 * client made up is ignored, and the handshake issues a fresh one. */
int bx_browser_valid(const char *s, size_t n);

/* True if s (len bytes) is a valid JSONP callback name: 1 to 64 characters,
 * JavaScript identifiers joined by '.', each [A-Za-z_$][A-Za-z0-9_$]*.
 * This is the intersection of CometD's charset and Faye's grammar, and it
 * rejects anything that could close the call, such as "alert(1)//". */
int bx_jsonp_callback_valid(const char *s, size_t len);

#endif
