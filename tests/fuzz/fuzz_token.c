/* fuzz_token.c - bx_token_verify, the one parser a client reaches before it
 * has a session (the handshake's ext.token).
 *
 * Input: byte 0 picks how the rest is used: even, the rest is the token as
 * a client sends it; odd, the rest is a payload that is signed with the
 * secret first, so the fuzzer reaches the JSON and field checks behind the
 * signature. Checked: no crash or sanitizer report; the result is one of the
 * documented codes; a token that verifies has a subject that is a valid
 * channel segment and an exp after "now", and minting that subject and exp
 * again gives a token that verifies to the same.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "fuzz.h"
#include "log.h"
#include "sha256.h"
#include "token.h"

static const char SECRET[] = "fuzzing-secret-0123456789";
static const int64_t NOW = 1763793600;   /* 2025-11-22 */

/* base64url without padding */
static size_t s_b64url(const uint8_t *in, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = a[(v >> 18) & 63];
        out[o++] = a[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = a[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = a[v & 63];
    }
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bx_log_level = BX_LOG_ERROR;
    if (size < 1 || size > 4096)
        return 0;
    char *tok = malloc(2 * size + 128);
    CHECK(tok != NULL);
    if (data[0] & 1) {
        /* "v1." payload "." HMAC: a signed payload of the fuzzer's. */
        size_t n = 3;
        memcpy(tok, "v1.", 3);
        n += s_b64url(data + 1, size - 1, tok + n);
        uint8_t mac[32];
        bx_hmac_sha256(SECRET, sizeof SECRET - 1, tok, n, mac);
        tok[n++] = '.';
        n += s_b64url(mac, sizeof mac, tok + n);
        tok[n] = '\0';
    } else {
        memcpy(tok, data + 1, size - 1);
        tok[size - 1] = '\0';
    }
    char sub[BX_TOKEN_SUBJECT_MAX + 1];
    int64_t exp = 0;
    int rc = bx_token_verify(SECRET, sizeof SECRET - 1, tok, NOW, sub, sizeof sub, &exp);
    CHECK(rc == BX_TOKEN_OK || rc == BX_TOKEN_MALFORMED || rc == BX_TOKEN_BAD_SIGNATURE ||
          rc == BX_TOKEN_EXPIRED || rc == BX_TOKEN_NOT_YET_VALID || rc == BX_TOKEN_BAD_SUBJECT);
    CHECK(bx_token_strerror(rc) != NULL);
    if (rc == BX_TOKEN_OK) {
        CHECK(exp > NOW);
        CHECK(bx_token_subject_ok(sub, strlen(sub)));
        /* As a channel segment, it makes a valid channel name. */
        char ch[BX_TOKEN_SUBJECT_MAX + 8];
        snprintf(ch, sizeof ch, "/user/%s", sub);
        CHECK(bx_channel_parse(ch, strlen(ch)) == BX_CHAN_NAME);
        char again[BX_TOKEN_MINT_MAX], sub2[BX_TOKEN_SUBJECT_MAX + 1];
        int64_t exp2 = 0;
        CHECK(bx_token_mint(SECRET, sizeof SECRET - 1, sub, exp, again, sizeof again) ==
              BX_TOKEN_OK);
        CHECK(bx_token_verify(SECRET, sizeof SECRET - 1, again, NOW, sub2, sizeof sub2,
                              &exp2) == BX_TOKEN_OK);
        CHECK(strcmp(sub, sub2) == 0 && exp == exp2);
    }
    free(tok);
    return 0;
}
