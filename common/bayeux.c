/* bayeux.c - request body parsing with limits, message field checks. */
#include "bayeux.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void bx_limits_init(bx_limits_t *lim)
{
    lim->max_body = BX_DEFAULT_MAX_BODY;
    lim->max_messages = BX_DEFAULT_MAX_MESSAGES;
    lim->max_depth = BX_DEFAULT_MAX_DEPTH;
}

static int s_is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above
 * U+10FFFF. json-c would pass such bytes through into strings that other
 * programs (and the browser) may read differently. */
static int s_utf8_valid(const unsigned char *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1; cp = c & 0x1F; min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2; cp = c & 0x0F; min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3; cp = c & 0x07; min = 0x10000;
        } else {
            return 0;   /* continuation byte, C0/C1 overlong lead, F5..FF */
        }
        if (len - i <= n)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n + 1;
    }
    return 1;
}

/* ---------------------------------------------------------------- RFC 8259
 * json-c's strict mode still accepts 'single quotes', NaN, Infinity and "1.",
 * and keeps a number's original text when it re-serializes it, so such input
 * would reach other clients as invalid JSON. This checker enforces the RFC
 * grammar exactly (and the depth limit) before json-c builds anything. It
 * uses no recursion: one byte per open container. */

static int s_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int s_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* p[*i] is '"'. Moves *i past the closing quote; *nul (may be NULL) is set
 * if the string holds an escaped NUL. Returns 0 or -1. */
static int s_scan_string(const unsigned char *p, size_t len, size_t *i, int *nul)
{
    size_t k = *i + 1;
    while (k < len) {
        unsigned char c = p[k];
        if (c == '"') {
            *i = k + 1;
            return 0;
        }
        if (c < 0x20)
            return -1;   /* raw control characters, NUL included */
        if (c != '\\') {
            k++;
            continue;
        }
        if (k + 1 >= len)
            return -1;
        c = p[k + 1];
        if (c == 'u') {
            if (k + 5 >= len || !s_hex(p[k + 2]) || !s_hex(p[k + 3]) ||
                !s_hex(p[k + 4]) || !s_hex(p[k + 5]))
                return -1;
            if (nul && memcmp(p + k + 2, "0000", 4) == 0)
                *nul = 1;
            k += 6;
        } else if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' ||
                   c == 'n' || c == 'r' || c == 't') {
            k += 2;
        } else {
            return -1;
        }
    }
    return -1;
}

/* ---------------------------------------------------------------- numbers
 * json-c keeps the text of a number with a fraction or an exponent and
 * writes it back as it came, but reads an integer into 64 bits: beyond them
 * it clamps (123456789012345678901234567890 becomes 18446744073709551615)
 * and "-0" becomes "0". Those integers, and only those, are "inexact": the
 * checker notes where they are, and they are handed to json-c as numbers it
 * keeps the text of (see s_parse_exact), so every number is delivered as it
 * was published. */

/* Marks the stand-ins s_parse_exact puts in place of inexact integers: no
 * one writes a number like this, and one that does is refused. */
#define S_MARK "0.0e-000000000"
#define S_MARK_LEN (sizeof S_MARK - 1)

/* Where the inexact integers of a text are. */
typedef struct {
    size_t *at;       /* offsets; owned */
    size_t *len;      /* lengths; owned */
    size_t n, cap;
    int marked;       /* a number of the text starts like a stand-in */
} s_inexact_t;

/* 1 if the integer literal p[0..n) does not fit json-c's 64 bits exactly:
 * "-0", below INT64_MIN or above UINT64_MAX. */
static int s_int_inexact(const unsigned char *p, size_t n)
{
    static const char max_neg[] = "9223372036854775808";
    static const char max_pos[] = "18446744073709551615";
    int neg = p[0] == '-';
    const char *lim = neg ? max_neg : max_pos;
    size_t dl = n - (size_t)neg, ll = strlen(lim);
    if (neg && dl == 1 && p[1] == '0')
        return 1;
    if (dl != ll)
        return dl > ll;
    return memcmp(p + neg, lim, ll) > 0;
}

static void s_inexact_add(s_inexact_t *x, size_t at, size_t len)
{
    if (x->n == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 8;
        x->at = bx_realloc(x->at, x->cap * sizeof *x->at);
        x->len = bx_realloc(x->len, x->cap * sizeof *x->len);
    }
    x->at[x->n] = at;
    x->len[x->n++] = len;
}

/* number = [ "-" ] ( "0" / [1-9] *DIGIT ) [ "." 1*DIGIT ] [ e [ + / - ] 1*DIGIT ]
 * An inexact integer is noted in x. */
static int s_scan_number(const unsigned char *p, size_t len, size_t *i, s_inexact_t *x)
{
    size_t k = *i;
    if (len - k >= S_MARK_LEN && memcmp(p + k, S_MARK, S_MARK_LEN) == 0)
        x->marked = 1;
    if (k < len && p[k] == '-')
        k++;
    if (k < len && p[k] == '0') {
        k++;
    } else if (k < len && s_digit(p[k])) {
        while (k < len && s_digit(p[k]))
            k++;
    } else {
        return -1;
    }
    if ((k >= len || (p[k] != '.' && p[k] != 'e' && p[k] != 'E')) &&
        s_int_inexact(p + *i, k - *i))
        s_inexact_add(x, *i, k - *i);
    if (k < len && p[k] == '.') {
        k++;
        if (k >= len || !s_digit(p[k]))
            return -1;
        while (k < len && s_digit(p[k]))
            k++;
    }
    if (k < len && (p[k] == 'e' || p[k] == 'E')) {
        k++;
        if (k < len && (p[k] == '+' || p[k] == '-'))
            k++;
        if (k >= len || !s_digit(p[k]))
            return -1;
        while (k < len && s_digit(p[k]))
            k++;
    }
    *i = k;
    return 0;
}

static int s_scan_literal(const unsigned char *p, size_t len, size_t *i)
{
    static const char *const lits[] = { "true", "false", "null" };
    for (int n = 0; n < 3; n++) {
        size_t l = strlen(lits[n]);
        if (len - *i >= l && memcmp(p + *i, lits[n], l) == 0) {
            *i += l;
            return 0;
        }
    }
    return -1;
}

/* Checks that p[0..len) is exactly one JSON value, arrays and objects nested
 * at most max_depth deep, and notes its inexact integers in x. Returns
 * BX_BATCH_OK, _BAD_JSON, _TOO_DEEP or _NUL_KEY. */
static bx_batch_err_t s_check_json(const unsigned char *p, size_t len, int max_depth,
                                   s_inexact_t *x)
{
    enum { VALUE, VALUE_OR_CLOSE, KEY, KEY_OR_CLOSE, AFTER } st = VALUE;
    /* No text nests deeper than it is long. */
    size_t cap = (size_t)max_depth < len ? (size_t)max_depth : len;
    unsigned char *stack = bx_malloc(cap + 1);
    bx_batch_err_t rc = BX_BATCH_BAD_JSON;
    int depth = 0;
    size_t i = 0;

    for (;;) {
        while (i < len && s_is_ws(p[i]))
            i++;
        if (i == len)
            break;
        unsigned char c = p[i];
        if (st == VALUE || st == VALUE_OR_CLOSE) {
            if (st == VALUE_OR_CLOSE && c == ']') {
                depth--;
                i++;
            } else if (c == '[' || c == '{') {
                if (depth >= max_depth) {
                    rc = BX_BATCH_TOO_DEEP;
                    goto out;
                }
                stack[depth++] = c;
                i++;
                st = c == '[' ? VALUE_OR_CLOSE : KEY_OR_CLOSE;
                continue;
            } else if (c == '"') {
                if (s_scan_string(p, len, &i, NULL) < 0)
                    goto out;
            } else if (c == '-' || s_digit(c)) {
                if (s_scan_number(p, len, &i, x) < 0)
                    goto out;
            } else if (s_scan_literal(p, len, &i) < 0) {
                goto out;
            }
            st = AFTER;
        } else if (st == KEY || st == KEY_OR_CLOSE) {
            if (st == KEY_OR_CLOSE && c == '}') {
                depth--;
                i++;
                st = AFTER;
                continue;
            }
            /* json-c cuts a key at an escaped NUL ("a\u0000b" becomes "a",
             * and may then replace another member "a"): what would be
             * delivered is not what was published. */
            int nul = 0;
            if (c != '"' || s_scan_string(p, len, &i, &nul) < 0)
                goto out;
            if (nul) {
                rc = BX_BATCH_NUL_KEY;
                goto out;
            }
            while (i < len && s_is_ws(p[i]))
                i++;
            if (i == len || p[i] != ':')
                goto out;
            i++;
            st = VALUE;
        } else {   /* AFTER a value */
            if (depth == 0)
                goto out;   /* trailing garbage */
            unsigned char top = stack[depth - 1];
            if (c == ',') {
                i++;
                st = top == '{' ? KEY : VALUE;
            } else if (c == (top == '{' ? '}' : ']')) {
                depth--;
                i++;
            } else {
                goto out;
            }
        }
    }
    if (st == AFTER && depth == 0)
        rc = BX_BATCH_OK;
out:
    free(stack);
    return rc;
}

/* One tokener, made again only when the depth limit changes: creating and
 * freeing one per request was about 6% of bayeuxd's instructions per
 * request (callgrind). The programs are single-threaded; the tokener stays
 * reachable until exit. */
static json_tokener *s_tok;
static int s_tok_depth;

static json_tokener *s_tokener(int depth)
{
    if (s_tok && s_tok_depth == depth) {
        json_tokener_reset(s_tok);
        return s_tok;
    }
    if (s_tok)
        json_tokener_free(s_tok);
    s_tok = json_tokener_new_ex(depth);
    s_tok_depth = depth;
    if (s_tok)
        json_tokener_set_flags(s_tok, JSON_TOKENER_STRICT);
    return s_tok;
}

/* Builds the value that s_check_json accepted (an array or an object).
 * json-c counts every value, scalars included, so its depth budget is one
 * more than the container limit; the checks after it are a backstop. */
static json_object *s_parse(const char *text, size_t len, int containers,
                            bx_batch_err_t *err)
{
    json_tokener *tok = s_tokener(containers + 1);
    json_object *obj = NULL;

    if (!tok) {
        *err = BX_BATCH_TOO_DEEP;   /* only fails for a nonsensical depth */
        return NULL;
    }
    obj = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    if (!obj) {
        *err = jerr == json_tokener_error_depth ? BX_BATCH_TOO_DEEP : BX_BATCH_BAD_JSON;
        goto error;
    }
    /* Anything after the value but whitespace is garbage. */
    for (size_t i = json_tokener_get_parse_end(tok); i < len; i++) {
        if (!s_is_ws((unsigned char)text[i])) {
            *err = BX_BATCH_BAD_JSON;
            goto error;
        }
    }
    return obj;

error:
    json_object_put(obj);
    return NULL;
}

/* If v (a child of a parsed stand-in text) is a stand-in, the number it
 * stands for, with its text as written; else NULL. */
static json_object *s_standin(json_object *v, const char *text, const s_inexact_t *x)
{
    if (!json_object_is_type(v, json_type_double))
        return NULL;
    const char *s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
    if (strncmp(s, S_MARK, S_MARK_LEN) != 0)
        return NULL;
    unsigned long k = strtoul(s + S_MARK_LEN, NULL, 10);
    if (k >= x->n)
        return NULL;
    char *orig = bx_malloc(x->len[k] + 1);
    memcpy(orig, text + x->at[k], x->len[k]);
    orig[x->len[k]] = '\0';
    /* A number json-c writes back as this text; its double value is the
     * nearest one (what a JavaScript client reads too). */
    json_object *n = json_object_new_double_s(strtod(orig, NULL), orig);
    free(orig);
    return n;
}

/* Puts the numbers back in place of their stand-ins under c. Depth is
 * bounded by the checker's limit. */
static void s_restore(json_object *c, const char *text, const s_inexact_t *x)
{
    if (json_object_is_type(c, json_type_array)) {
        size_t n = json_object_array_length(c);
        for (size_t i = 0; i < n; i++) {
            json_object *v = json_object_array_get_idx(c, i);
            json_object *num = s_standin(v, text, x);
            if (num)
                json_object_array_put_idx(c, i, num);
            else
                s_restore(v, text, x);
        }
    } else if (json_object_is_type(c, json_type_object)) {
        json_object_object_foreach(c, key, v) {
            json_object *num = s_standin(v, text, x);
            /* Replacing the value of a key keeps the entry in place. */
            if (num)
                json_object_object_add(c, key, num);
            else
                s_restore(v, text, x);
        }
    }
}

/* Parses text with its inexact integers (x) kept as written: json-c reads
 * each as a stand-in number whose text it keeps, and s_restore swaps the
 * original text in. */
static json_object *s_parse_exact(const char *text, size_t len, int containers,
                                  const s_inexact_t *x, bx_batch_err_t *err)
{
    if (x->n == 0)
        return s_parse(text, len, containers, err);
    bx_buf_t b;
    bx_buf_init(&b);
    size_t from = 0;
    for (size_t k = 0; k < x->n; k++) {
        bx_buf_append(&b, text + from, x->at[k] - from);
        bx_buf_printf(&b, S_MARK "%zu", k);
        from = x->at[k] + x->len[k];
    }
    bx_buf_append(&b, text + from, len - from);
    json_object *top = b.len > INT_MAX ? NULL : s_parse(b.data, b.len, containers, err);
    if (b.len > INT_MAX)
        *err = BX_BATCH_TOO_LARGE;
    bx_buf_free(&b);
    if (top)
        s_restore(top, text, x);
    return top;
}

json_object *bx_batch_parse(const char *text, size_t len, const bx_limits_t *lim,
                            bx_batch_err_t *err)
{
    bx_batch_err_t dummy;
    json_object *root = NULL;
    size_t i = 0;

    if (!err)
        err = &dummy;
    *err = BX_BATCH_OK;
    if (len > lim->max_body || len > INT_MAX) {
        *err = BX_BATCH_TOO_LARGE;
        return NULL;
    }
    while (i < len && s_is_ws((unsigned char)text[i]))
        i++;
    if (i == len) {
        *err = BX_BATCH_EMPTY;
        return NULL;
    }
    if (!s_utf8_valid((const unsigned char *)text, len)) {
        *err = BX_BATCH_BAD_UTF8;
        return NULL;
    }
    /* A lone message gets the depth budget it would have inside the batch
     * array, which counts as one level. */
    int is_object = text[i] == '{';
    int containers = is_object ? lim->max_depth - 1 : lim->max_depth;
    if (containers < 1) {
        *err = BX_BATCH_TOO_DEEP;
        return NULL;
    }
    s_inexact_t x = { NULL, NULL, 0, 0, 0 };
    *err = s_check_json((const unsigned char *)text, len, containers, &x);
    if (*err == BX_BATCH_OK && x.marked)
        *err = BX_BATCH_BAD_NUMBER;
    if (*err == BX_BATCH_OK && text[i] != '[' && !is_object)
        *err = BX_BATCH_NOT_MESSAGES;   /* valid JSON, but a scalar */
    json_object *top = *err == BX_BATCH_OK ? s_parse_exact(text, len, containers, &x, err)
                                           : NULL;
    free(x.at);
    free(x.len);
    if (!top)
        return NULL;
    if (is_object) {
        root = json_object_new_array();
        json_object_array_add(root, top);
        return root;
    }
    root = top;
    size_t n = json_object_array_length(root);
    if (n == 0) {
        *err = BX_BATCH_EMPTY;
        goto error;
    }
    if (lim->max_messages >= 0 && n > (size_t)lim->max_messages) {
        *err = BX_BATCH_TOO_MANY;
        goto error;
    }
    for (size_t k = 0; k < n; k++) {
        if (!json_object_is_type(json_object_array_get_idx(root, k), json_type_object)) {
            *err = BX_BATCH_NOT_MESSAGES;
            goto error;
        }
    }
    return root;

error:
    json_object_put(root);
    return NULL;
}

const char *bx_batch_strerror(bx_batch_err_t err)
{
    switch (err) {
    case BX_BATCH_OK: return "ok";
    case BX_BATCH_TOO_LARGE: return "request body too large";
    case BX_BATCH_BAD_UTF8: return "invalid UTF-8";
    case BX_BATCH_BAD_JSON: return "malformed JSON";
    case BX_BATCH_TOO_DEEP: return "JSON nested too deep";
    case BX_BATCH_NOT_MESSAGES: return "not a Bayeux message or array of messages";
    case BX_BATCH_EMPTY: return "no messages";
    case BX_BATCH_TOO_MANY: return "too many messages in one batch";
    case BX_BATCH_BAD_NUMBER: return "unsupported number";
    case BX_BATCH_NUL_KEY: return "an object key holds an escaped NUL";
    }
    return "unknown error";
}

int bx_batch_http_status(bx_batch_err_t err)
{
    if (err == BX_BATCH_OK)
        return 200;
    return err == BX_BATCH_TOO_LARGE ? 413 : 400;
}

int bx_message_id(json_object *msg, char *out, size_t outlen)
{
    json_object *id = NULL;

    if (!out || outlen == 0)
        return -1;
    out[0] = '\0';
    /* "id": null is treated as absent: JSON encoders emit it for unset ids. */
    if (!msg || !json_object_object_get_ex(msg, "id", &id) || id == NULL)
        return 0;

    if (json_object_is_type(id, json_type_string)) {
        /* CometD's validator: [A-Za-z0-9]+ (Faye's base-36 counters fit). */
        const char *s = json_object_get_string(id);
        size_t len = (size_t)json_object_get_string_len(id);
        if (len == 0 || len > BX_ID_MAX || len >= outlen)
            return -1;
        for (size_t i = 0; i < len; i++) {
            char c = s[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9')))
                return -1;   /* also stops at an embedded "\u0000" */
        }
        memcpy(out, s, len);
        out[len] = '\0';
        return 0;
    }
    if (json_object_is_type(id, json_type_int)) {
        /* CometD stringifies numeric ids; a negative one has a '-' that the
         * string validator would refuse, so refuse it here as well. */
        if (json_object_get_int64(id) < 0)
            return -1;
        /* json-c keeps integers above INT64_MAX as uint64. */
        uint64_t v = json_object_get_uint64(id);
        int n = snprintf(out, outlen, "%" PRIu64, v);
        if (n < 0 || (size_t)n >= outlen) {
            out[0] = '\0';
            return -1;
        }
        return 0;
    }
    return -1;   /* double, bool, object, array */
}

const char *bx_message_str(json_object *msg, const char *field)
{
    json_object *v;
    if (!msg || !json_object_object_get_ex(msg, field, &v) ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    return bx_json_cstr(v);
}

const char *bx_json_cstr(json_object *v)
{
    if (!json_object_is_type(v, json_type_string))
        return NULL;
    const char *s = json_object_get_string(v);
    /* A "\u0000" would cut the C string short: "<id>\u0000zz" read as <id>. */
    if (strlen(s) != (size_t)json_object_get_string_len(v))
        return NULL;
    return s;
}

int bx_browser_valid(const char *s, size_t n)
{
    if (!s || n != BX_BROWSER_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z')))
            return 0;
    return 1;
}

static int s_ident_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$';
}

int bx_jsonp_callback_valid(const char *s, size_t len)
{
    if (!s || len == 0 || len > 64)
        return 0;
    int at_start = 1;   /* next char begins an identifier */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (at_start) {
            if (!s_ident_start(c))
                return 0;
            at_start = 0;
        } else if (c == '.') {
            at_start = 1;
        } else if (!s_ident_start(c) && !(c >= '0' && c <= '9')) {
            return 0;
        }
    }
    return !at_start;   /* a trailing '.' leaves an empty identifier */
}
