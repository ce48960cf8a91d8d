/* fuzz_batch.c - request bodies: bx_batch_parse, bx_message_id,
 * bx_jsonp_callback_valid.
 *
 * Input: a request body. If its first byte is a control character other
 * than white space, that byte picks tighter limits and is not part of the
 * body (bits 0-1: max_depth 1..4; bits 2-3: max_messages 1, 2, 3, 1000;
 * bit 4: max_body one byte short of the body), so seeds stay plain JSON.
 *
 * Checked: the error is the first rule broken, in the documented order
 * (size, empty, UTF-8 against an RFC 3629 table, JSON, depth, shape,
 * count); a batch that passes is an array of 1..max_messages objects no
 * deeper than max_depth, and json-c's re-serialization of it passes again
 * and compares equal (what the dispatcher forwards to other clients is
 * valid JSON); a lone object and the same object in [ ] agree; message ids
 * and callback names match reference implementations.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bayeux.h"
#include "fuzz.h"

static int s_ws(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* RFC 3629 §4, the UTF8-octets rule, transcribed range by range. */
static int s_ref_utf8(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        uint8_t lo = 0x80, hi = 0xBF;
        size_t tail;
        if (c <= 0x7F) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            tail = 1;
        } else if (c == 0xE0) {
            tail = 2, lo = 0xA0;
        } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
            tail = 2;
        } else if (c == 0xED) {
            tail = 2, hi = 0x9F;
        } else if (c == 0xF0) {
            tail = 3, lo = 0x90;
        } else if (c >= 0xF1 && c <= 0xF3) {
            tail = 3;
        } else if (c == 0xF4) {
            tail = 3, hi = 0x8F;
        } else {
            return 0;
        }
        if (n - i - 1 < tail)
            return 0;
        if (p[i + 1] < lo || p[i + 1] > hi)
            return 0;
        for (size_t k = 2; k <= tail; k++)
            if (p[i + k] < 0x80 || p[i + k] > 0xBF)
                return 0;
        i += tail + 1;
    }
    return 1;
}

/* Containers on the deepest path (a scalar counts 0). */
static int s_depth(json_object *o)
{
    int max = 0;
    if (json_object_is_type(o, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(o); i++) {
            int d = s_depth(json_object_array_get_idx(o, i));
            if (d > max)
                max = d;
        }
        return max + 1;
    }
    if (json_object_is_type(o, json_type_object)) {
        json_object_object_foreach(o, k, v) {
            (void)k;
            int d = s_depth(v);
            if (d > max)
                max = d;
        }
        return max + 1;
    }
    return 0;
}

static int s_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* bx_message_id against what bayeux.h promises. */
static void s_check_id(json_object *msg, size_t outlen)
{
    char out[BX_ID_MAX + 8];
    json_object *id = NULL;
    int present = json_object_object_get_ex(msg, "id", &id) && id != NULL;

    memset(out, 'X', sizeof out);
    int rc = bx_message_id(msg, out, outlen);
    CHECK(rc == 0 || rc == -1);
    CHECK(memchr(out, '\0', outlen) != NULL);
    if (rc < 0) {
        CHECK(out[0] == '\0');
        CHECK(present);
        return;
    }
    if (!present) {
        CHECK(out[0] == '\0');
        return;
    }
    size_t n = strlen(out);
    CHECK(n >= 1 && n <= BX_ID_MAX && n < outlen);
    if (json_object_is_type(id, json_type_string)) {
        CHECK((size_t)json_object_get_string_len(id) == n);
        CHECK(memcmp(json_object_get_string(id), out, n) == 0);
        for (size_t i = 0; i < n; i++)
            CHECK(s_alnum(out[i]));
    } else {
        CHECK(json_object_is_type(id, json_type_int));
        CHECK(out[0] != '-' && (out[0] != '0' || n == 1));
        for (size_t i = 0; i < n; i++)
            CHECK(out[i] >= '0' && out[i] <= '9');
    }
}

/* bx_jsonp_callback_valid, written again from its header comment. */
static int s_ref_callback(const uint8_t *s, size_t n)
{
    if (n == 0 || n > 64)
        return 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.')
            continue;
        if (i == start)
            return 0;   /* empty identifier */
        for (size_t k = start; k < i; k++) {
            uint8_t c = s[k];
            int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                     c == '$' || (k > start && c >= '0' && c <= '9');
            if (!ok)
                return 0;
        }
        start = i + 1;
    }
    return 1;
}

static void s_check_callbacks(const uint8_t *data, size_t size)
{
    CHECK(!!bx_jsonp_callback_valid((const char *)data, size) == s_ref_callback(data, size));
    /* Pieces between separators are the likelier names. */
    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i < size && data[i] != '&' && data[i] != '=' && data[i] != '"')
            continue;
        size_t n = i - start;
        int got = bx_jsonp_callback_valid((const char *)data + start, n);
        CHECK(!!got == s_ref_callback(data + start, n));
        if (got) {
            /* Nothing that can end the call or start a comment. */
            CHECK(!memchr(data + start, '(', n) && !memchr(data + start, '/', n));
        }
        start = i + 1;
    }
}

/* A batch that passed: shape, limits, and the round trip through json-c. */
/* Every number of v is written out as it was published: its text, as the
 * dispatcher will send it, stands in the body. (json-c alone would clamp
 * an integer beyond 64 bits to 18446744073709551615, which no body holds.) */
static void s_numbers_verbatim(json_object *v, const char *body, size_t len)
{
    if (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)) {
        const char *t = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
        CHECK(memmem(body, len, t, strlen(t)) != NULL);
    } else if (json_object_is_type(v, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(v); i++)
            s_numbers_verbatim(json_object_array_get_idx(v, i), body, len);
    } else if (json_object_is_type(v, json_type_object)) {
        json_object_object_foreach(v, key, val) {
            (void)key;
            s_numbers_verbatim(val, body, len);
        }
    }
}

static void s_check_ok(json_object *root, const char *body, size_t len,
                       const bx_limits_t *lim, size_t idlen)
{
    CHECK(json_object_is_type(root, json_type_array));
    size_t n = json_object_array_length(root);
    CHECK(n >= 1);
    CHECK(lim->max_messages < 0 || n <= (size_t)lim->max_messages);
    CHECK(s_depth(root) <= lim->max_depth);
    CHECK(s_ref_utf8((const uint8_t *)body, len));
    CHECK(memchr(body, '\0', len) == NULL);
    s_numbers_verbatim(root, body, len);
    for (size_t i = 0; i < n; i++) {
        json_object *m = json_object_array_get_idx(root, i);
        CHECK(json_object_is_type(m, json_type_object));
        s_check_id(m, idlen);
        json_object *ch;
        const char *s = bx_message_str(m, "channel");
        if (json_object_object_get_ex(m, "channel", &ch) &&
            json_object_is_type(ch, json_type_string) &&
            strlen(json_object_get_string(ch)) == (size_t)json_object_get_string_len(ch))
            CHECK(s == json_object_get_string(ch));
        else   /* absent, no string, or a NUL inside: no identifier */
            CHECK(s == NULL);
    }

    /* What the dispatcher sends on is json-c's serialization of these
     * values: it must be valid under the same rules and mean the same. */
    const char *out = json_object_to_json_string_ext(
        root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    bx_limits_t big = *lim;
    bx_batch_err_t err;
    big.max_body = 64u << 20;
    big.max_messages = -1;
    json_object *again = bx_batch_parse(out, strlen(out), &big, &err);
    if (!again) {
        fprintf(stderr, "fuzz_batch: re-serialized batch rejected (%s): %s\n",
                bx_batch_strerror(err), out);
        abort();
    }
    CHECK(json_object_equal(root, again));
    json_object_put(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int depths[] = { 1, 2, 3, 4 };
    static const int counts[] = { 1, 2, 3, 1000 };
    bx_limits_t lim;
    size_t idlen = BX_ID_MAX + 1;

    bx_limits_init(&lim);
    if (size > 0 && data[0] < 0x20 && !s_ws(data[0])) {
        uint8_t k = data[0];
        lim.max_depth = depths[k & 3];
        lim.max_messages = counts[(k >> 2) & 3];
        if (k & 16)
            lim.max_body = size > 1 ? size - 2 : 0;
        idlen = 1 + (size_t)(k & 7) * 3;   /* short buffers for bx_message_id */
        data++;
        size--;
    }
    s_check_callbacks(data, size);

    /* A copy of exactly size bytes, not NUL-terminated. */
    char *body = malloc(size ? size : 1);
    if (!body)
        abort();
    memcpy(body, data, size);

    bx_batch_err_t err = (bx_batch_err_t)-1;
    json_object *root = bx_batch_parse(body, size, &lim, &err);
    CHECK(bx_batch_strerror(err) != NULL);
    CHECK(bx_batch_http_status(err) == (err == BX_BATCH_OK ? 200
                                        : err == BX_BATCH_TOO_LARGE ? 413 : 400));
    CHECK((root != NULL) == (err == BX_BATCH_OK));
    json_object *again = bx_batch_parse(body, size, &lim, NULL);   /* err may be NULL */
    CHECK((again != NULL) == (root != NULL));
    json_object_put(again);

    /* The documented order of the checks. */
    size_t i = 0;
    while (i < size && s_ws(data[i]))
        i++;
    if (size > lim.max_body)
        CHECK(err == BX_BATCH_TOO_LARGE);
    else if (i == size)
        CHECK(err == BX_BATCH_EMPTY);
    else if (!s_ref_utf8(data, size))
        CHECK(err == BX_BATCH_BAD_UTF8);
    else
        CHECK(err != BX_BATCH_TOO_LARGE && err != BX_BATCH_BAD_UTF8);

    if (root) {
        s_check_ok(root, body, size, &lim, idlen);
        /* A lone message is read as if it came in an array. */
        if (data[i] == '{') {
            char *wrapped = malloc(size + 2);
            bx_limits_t wl = lim;
            if (!wrapped)
                abort();
            wrapped[0] = '[';
            memcpy(wrapped + 1, body, size);
            wrapped[size + 1] = ']';
            wl.max_body = size + 2;
            json_object *w = bx_batch_parse(wrapped, size + 2, &wl, &err);
            CHECK(w != NULL && json_object_equal(w, root));
            json_object_put(w);
            free(wrapped);
        }
        json_object_put(root);
    }
    free(body);
    return 0;
}
