/* token.c - minting and verifying handshake tokens (format in token.h). */
#include "token.h"

#include "channel.h"
#include "sha256.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define SIG_CHARS 43   /* base64url of a 32-byte MAC, unpadded */
#define JSON_DEPTH 16  /* json-c nesting budget for the payload (unknown fields may nest) */

static const char s_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Unpadded base64url length of n bytes. */
static size_t s_b64_len(size_t n)
{
    return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

size_t bx_b64url_encode(const void *data, size_t n, char *out)
{
    const uint8_t *in = data;
    char *start = out;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = acc << 8 | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            *out++ = s_b64[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        *out++ = s_b64[(acc << (6 - bits)) & 63];
    return (size_t)(out - start);
}

static int s_b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;   /* '=', '+', '/', '.', whitespace, anything else */
}

/* Strict RFC 4648 §5 decoding without padding: only the 64 characters, a
 * length that is not 1 mod 4, and zero unused bits in the last character
 * (so the encoding is canonical and a token cannot be respelled). Decodes in
 * (n bytes) into out (cap bytes). Returns the decoded length, or -1. */
static long s_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
    if (n % 4 == 1 || n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0) > cap)
        return -1;
    uint32_t acc = 0;   /* the bits not yet written, fewer than 8 */
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = s_b64_value((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return acc == 0 ? (long)o : -1;
}

int bx_token_subject_ok(const char *s, size_t len)
{
    /* A subject is one channel segment: prefix "/" and let the channel
     * grammar (one definition of the character set) decide. A '/' would make
     * two segments, and "*" or "**" would make a wildcard, not a NAME. */
    char chan[BX_TOKEN_SUBJECT_MAX + 2];
    if (!s || len == 0 || len > BX_TOKEN_SUBJECT_MAX || memchr(s, '/', len))
        return 0;
    chan[0] = '/';
    memcpy(chan + 1, s, len);
    return bx_channel_parse(chan, len + 1) == BX_CHAN_NAME;
}

int bx_token_mint(const void *secret, size_t secretlen, const char *subject, int64_t exp,
                  char *out, size_t outlen)
{
    char json[BX_TOKEN_SUBJECT_MAX + 64];
    uint8_t mac[BX_SHA256_LEN];

    if (out && outlen > 0)
        out[0] = '\0';
    if (!secret || secretlen == 0 || !subject || !out)
        return BX_TOKEN_EINVAL;
    if (!bx_token_subject_ok(subject, strlen(subject)))
        return BX_TOKEN_BAD_SUBJECT;
    if (exp < 0 || exp > BX_TOKEN_TIME_MAX)
        return BX_TOKEN_EINVAL;

    /* The subject is from the segment set, so it needs no JSON escaping. */
    int jlen = snprintf(json, sizeof json, "{\"sub\":\"%s\",\"exp\":%lld}", subject,
                        (long long)exp);
    size_t plen = s_b64_len((size_t)jlen);
    if (3 + plen + 1 + SIG_CHARS + 1 > outlen)
        return BX_TOKEN_EINVAL;

    memcpy(out, "v1.", 3);
    bx_b64url_encode((const uint8_t *)json, (size_t)jlen, out + 3);
    bx_hmac_sha256(secret, secretlen, out, 3 + plen, mac);
    out[3 + plen] = '.';
    bx_b64url_encode(mac, sizeof mac, out + 3 + plen + 1);
    out[3 + plen + 1 + SIG_CHARS] = '\0';
    bx_wipe(mac, sizeof mac);
    return BX_TOKEN_OK;
}

/* Reads the optional time field key of obj into *out: 1 if present and valid,
 * 0 if absent, -1 if not an integer in [0, BX_TOKEN_TIME_MAX]. json-c types
 * 1.0 and 1e3 as doubles and numbers past INT64_MAX read back as INT64_MAX,
 * so both fail here. */
static int s_time_field(json_object *obj, const char *key, int64_t *out)
{
    json_object *v;
    if (!json_object_object_get_ex(obj, key, &v))
        return 0;
    if (!json_object_is_type(v, json_type_int))
        return -1;
    int64_t t = json_object_get_int64(v);
    if (t < 0 || t > BX_TOKEN_TIME_MAX)
        return -1;
    *out = t;
    return 1;
}

/* RFC 8259 §7 forbids raw control characters inside strings, which json-c
 * accepts even in strict mode, and a NUL byte anywhere would end the text
 * early for some parsers: refuse both so every minter's parser agrees. */
static int s_json_bytes_ok(const uint8_t *json, size_t n)
{
    int in_string = 0, escaped = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = json[i];
        if (c == '\0')
            return 0;
        if (!in_string)
            in_string = c == '"';
        else if (escaped)
            escaped = 0;
        else if (c == '\\')
            escaped = 1;
        else if (c == '"')
            in_string = 0;
        else if (c < 0x20)
            return 0;
    }
    return 1;
}

/* Checks the authenticated payload (n bytes of JSON) at now_s. On OK, sets
 * *sub to the subject string (lent by *root, which the caller puts) and *exp. */
static int s_check_payload(const uint8_t *json, size_t n, int64_t now_s,
                           json_object **root, const char **sub, int64_t *exp)
{
    int64_t iat = 0;
    json_object *v;

    if (!s_json_bytes_ok(json, n))
        return BX_TOKEN_MALFORMED;
    json_tokener *tok = json_tokener_new_ex(JSON_DEPTH);
    if (!tok)
        return BX_TOKEN_MALFORMED;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    *root = json_tokener_parse_ex(tok, (const char *)json, (int)n);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (!*root || !json_object_is_type(*root, json_type_object))
        return BX_TOKEN_MALFORMED;
    for (; end < n; end++) {   /* JSON allows whitespace after the value, nothing else */
        uint8_t c = json[end];
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
            return BX_TOKEN_MALFORMED;
    }

    if (!json_object_object_get_ex(*root, "sub", &v) || !json_object_is_type(v, json_type_string))
        return BX_TOKEN_MALFORMED;
    int has_exp = s_time_field(*root, "exp", exp);
    int has_iat = s_time_field(*root, "iat", &iat);
    if (has_exp != 1 || has_iat < 0)
        return BX_TOKEN_MALFORMED;

    *sub = json_object_get_string(v);
    if (!bx_token_subject_ok(*sub, (size_t)json_object_get_string_len(v)))
        return BX_TOKEN_BAD_SUBJECT;
    if (now_s >= *exp)
        return BX_TOKEN_EXPIRED;
    /* iat - leeway cannot overflow (iat >= 0); now_s + leeway could. */
    if (has_iat && iat - BX_TOKEN_LEEWAY > now_s)
        return BX_TOKEN_NOT_YET_VALID;
    return BX_TOKEN_OK;
}

int bx_token_verify(const void *secret, size_t secretlen, const char *token, int64_t now_s,
                    char *subject_out, size_t subject_outlen, int64_t *exp_out)
{
    uint8_t got[BX_SHA256_LEN];
    uint8_t want[BX_SHA256_LEN];
    uint8_t json[BX_TOKEN_MAX];   /* base64url only shrinks, so a token's payload fits */
    json_object *root = NULL;
    const char *sub = NULL;
    int64_t exp = 0;
    int rc;

    if (subject_out && subject_outlen > 0)
        subject_out[0] = '\0';
    if (!secret || secretlen == 0 || !token ||
        (subject_out && subject_outlen < BX_TOKEN_SUBJECT_MAX + 1))
        return BX_TOKEN_EINVAL;

    /* Outer shape: "v1." payload "." sig, within the length limit. */
    size_t len = strnlen(token, BX_TOKEN_MAX + 1);
    if (len > BX_TOKEN_MAX || len < 3 || memcmp(token, "v1.", 3) != 0)
        return BX_TOKEN_MALFORMED;
    const char *payload = token + 3;
    const char *dot = memchr(payload, '.', len - 3);
    if (!dot)
        return BX_TOKEN_MALFORMED;
    size_t plen = (size_t)(dot - payload);
    size_t slen = len - 3 - plen - 1;
    if (plen == 0 || slen != SIG_CHARS)
        return BX_TOKEN_MALFORMED;
    if (s_b64_decode(dot + 1, slen, got, sizeof got) != BX_SHA256_LEN)
        return BX_TOKEN_MALFORMED;
    long n = s_b64_decode(payload, plen, json, sizeof json);
    if (n <= 0)
        return BX_TOKEN_MALFORMED;

    /* The MAC covers "v1." payload, the exact bytes received. */
    bx_hmac_sha256(secret, secretlen, token, 3 + plen, want);
    int same = bx_ct_equal(got, want, sizeof want);
    bx_wipe(want, sizeof want);
    if (!same)
        return BX_TOKEN_BAD_SIGNATURE;

    rc = s_check_payload(json, (size_t)n, now_s, &root, &sub, &exp);
    if (rc == BX_TOKEN_OK) {
        if (subject_out)
            memcpy(subject_out, sub, strlen(sub) + 1);   /* <= SUBJECT_MAX, checked */
        if (exp_out)
            *exp_out = exp;
    }
    json_object_put(root);
    return rc;
}

const char *bx_token_strerror(int err)
{
    switch (err) {
    case BX_TOKEN_OK:
        return "ok";
    case BX_TOKEN_EINVAL:
        return "invalid argument";
    case BX_TOKEN_MALFORMED:
        return "malformed token";
    case BX_TOKEN_BAD_SIGNATURE:
        return "bad token signature";
    case BX_TOKEN_EXPIRED:
        return "token expired";
    case BX_TOKEN_NOT_YET_VALID:
        return "token not yet valid (iat in the future)";
    case BX_TOKEN_BAD_SUBJECT:
        return "invalid token subject";
    default:
        return "unknown token error";
    }
}

int bx_token_secret_load(const char *inline_secret, const char *file, char *buf,
                         size_t buflen, size_t *len, char *err, size_t errlen)
{
    *len = 0;
    if (inline_secret && *inline_secret && file && *file) {
        bx_errf(err, errlen, "auth-secret and auth-secret-file: give one of them");
        return -1;
    }
    if (file && *file) {
        FILE *f = fopen(file, "r");
        if (!f) {
            bx_errf(err, errlen, "auth-secret-file: %s: %s", file, strerror(errno));
            return -1;
        }
        *len = fread(buf, 1, buflen, f);
        fclose(f);
        if (*len == buflen) {
            bx_errf(err, errlen, "auth-secret-file: %s: longer than %zu bytes", file,
                    buflen - 1);
            return -1;
        }
        while (*len > 0 && (buf[*len - 1] == '\n' || buf[*len - 1] == '\r'))
            (*len)--;
    } else if (inline_secret) {
        *len = strlen(inline_secret);
        if (*len >= buflen) {
            bx_errf(err, errlen, "auth-secret: longer than %zu bytes", buflen - 1);
            return -1;
        }
        memcpy(buf, inline_secret, *len);
    }
    return 0;
}
