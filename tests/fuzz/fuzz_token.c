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
        n += bx_b64url_encode(data + 1, size - 1, tok + n);
        uint8_t mac[32];
        bx_hmac_sha256(SECRET, sizeof SECRET - 1, tok, n, mac);
        tok[n++] = '.';
        n += bx_b64url_encode(mac, sizeof mac, tok + n);
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
