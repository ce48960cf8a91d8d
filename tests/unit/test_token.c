/* test_token.c - SHA-256, HMAC-SHA256 and handshake tokens (common/sha256.h,
 * common/token.h): published test vectors, streaming, the token format's
 * every error path, tokens minted by the Python and PHP snippets of
 * docs/security.md, and a fixed-seed mutation loop. */
#include "sha256.h"
#include "token.h"
#include "tap.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The secret every token test uses unless it says otherwise; the Python and
 * PHP fixtures below were minted with it. */
static const char SECRET[] = "bayeux-fcgi unit test secret, not for production";
#define SECRETLEN (sizeof SECRET - 1)

static void s_hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
    out[2 * n] = '\0';
}

/* SHA-256 of (data, n) as lowercase hex. */
static const char *s_sha_hex(const void *data, size_t n)
{
    static char hex[2 * BX_SHA256_LEN + 1];
    uint8_t d[BX_SHA256_LEN];
    bx_sha256(data, n, d);
    s_hex(d, sizeof d, hex);
    return hex;
}

static const char *s_hmac_hex(const void *key, size_t kl, const void *data, size_t n)
{
    static char hex[2 * BX_SHA256_LEN + 1];
    uint8_t d[BX_SHA256_LEN];
    bx_hmac_sha256(key, kl, data, n, d);
    s_hex(d, sizeof d, hex);
    return hex;
}

/* A deterministic generator, so every run tests the same inputs. */
static uint32_t s_rng = 12345;
static uint32_t s_rand(void)
{
    s_rng = s_rng * 1103515245u + 12345u;
    return s_rng >> 8;
}

/* ------------------------------------------------------------ SHA-256 */

static void test_sha256_vectors(void)
{
    /* FIPS 180-4 examples (NIST CSRC "SHA256.pdf", FIPS 180-2 appendix B). */
    is_str(s_sha_hex("", 0),
           "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
           "SHA-256 of the empty string");
    is_str(s_sha_hex("abc", 3),
           "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
           "SHA-256 \"abc\" (one block)");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    is_str(s_sha_hex(m448, strlen(m448)),
           "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
           "SHA-256 of the 448-bit message (two blocks)");
    const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
                       "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    is_str(s_sha_hex(m896, strlen(m896)),
           "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",
           "SHA-256 of the 896-bit message");

    const char *million = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    is_str(s_sha_hex(a, 1000000), million, "SHA-256 of one million 'a', one shot");
    bx_sha256_t c;
    uint8_t d[BX_SHA256_LEN];
    char hex[2 * BX_SHA256_LEN + 1];
    bx_sha256_init(&c);
    for (int i = 0; i < 1000; i++)
        bx_sha256_update(&c, a, 1000);
    bx_sha256_final(&c, d);
    s_hex(d, sizeof d, hex);
    is_str(hex, million, "SHA-256 of one million 'a', 1000 updates of 1000");

    /* Padding boundaries: 55 bytes is the most that pads into one block,
     * 56..63 need a second block; digests from Python's hashlib. */
    static const struct { size_t n; const char *hex; } edge[] = {
        { 55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318" },
        { 56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a" },
        { 57, "f13b2d724659eb3bf47f2dd6af1accc87b81f09f59f2b75e5c0bed6589dfe8c6" },
        { 63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34" },
        { 64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb" },
        { 65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0" },
        { 119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb" },
        { 120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c" },
    };
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++)
        is_str(s_sha_hex(a, edge[i].n), edge[i].hex, "SHA-256 of %zu 'a' (padding edge)",
               edge[i].n);
    free(a);
}

static void test_sha256_streaming(void)
{
    uint8_t data[3000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)s_rand();

    uint8_t whole[BX_SHA256_LEN], mac_whole[BX_SHA256_LEN];
    bx_sha256(data, sizeof data, whole);
    bx_hmac_sha256("key", 3, data, sizeof data, mac_whole);

    static const size_t chunks[] = { 1, 3, 7, 13, 55, 63, 64, 65, 127, 1000 };
    int sha_ok = 1, mac_ok = 1;
    for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
        bx_sha256_t c;
        bx_hmac_sha256_t h;
        uint8_t d[BX_SHA256_LEN], m[BX_SHA256_LEN];
        bx_sha256_init(&c);
        bx_hmac_sha256_init(&h, "key", 3);
        for (size_t off = 0; off < sizeof data; off += chunks[k]) {
            size_t n = sizeof data - off < chunks[k] ? sizeof data - off : chunks[k];
            bx_sha256_update(&c, data + off, n);
            bx_hmac_sha256_update(&h, data + off, n);
        }
        bx_sha256_final(&c, d);
        bx_hmac_sha256_final(&h, m);
        if (memcmp(d, whole, sizeof d) != 0) {
            diag("SHA-256 differs with chunks of %zu", chunks[k]);
            sha_ok = 0;
        }
        if (memcmp(m, mac_whole, sizeof m) != 0) {
            diag("HMAC differs with chunks of %zu", chunks[k]);
            mac_ok = 0;
        }
    }
    ok(sha_ok, "SHA-256 streamed in chunks of 1, 3, 7, 13, 55, 63, 64, 65, 127, 1000 = one shot");
    ok(mac_ok, "HMAC-SHA256 streamed in the same chunks = one shot");

    /* Irregular chunks, zero-length updates included. */
    bx_sha256_t c;
    uint8_t d[BX_SHA256_LEN];
    bx_sha256_init(&c);
    size_t off = 0;
    while (off < sizeof data) {
        size_t n = s_rand() % 150;
        if (n > sizeof data - off)
            n = sizeof data - off;
        bx_sha256_update(&c, data + off, n);
        off += n;
    }
    bx_sha256_final(&c, d);
    ok(memcmp(d, whole, sizeof d) == 0, "SHA-256 streamed in random chunks (0..149) = one shot");

    /* final wipes, init makes the context reusable. */
    bx_sha256_init(&c);
    bx_sha256_update(&c, "abc", 3);
    bx_sha256_final(&c, d);
    uint8_t zero[sizeof c];
    memset(zero, 0, sizeof zero);
    ok(memcmp(&c, zero, sizeof c) == 0, "final wipes the context");
    bx_sha256_init(&c);
    bx_sha256_update(&c, "abc", 3);
    bx_sha256_final(&c, d);
    char hex[2 * BX_SHA256_LEN + 1];
    s_hex(d, sizeof d, hex);
    is_str(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
           "a context is reusable after init");
}

/* ------------------------------------------------------------ HMAC */

static void test_hmac_rfc4231(void)
{
    uint8_t k20b[20], k20a[20], k20c[20], k25[25], k131[131], d50d[50], d50c[50];
    memset(k20b, 0x0b, sizeof k20b);
    memset(k20a, 0xaa, sizeof k20a);
    memset(k20c, 0x0c, sizeof k20c);
    for (int i = 0; i < 25; i++)
        k25[i] = (uint8_t)(i + 1);
    memset(k131, 0xaa, sizeof k131);
    memset(d50d, 0xdd, sizeof d50d);
    memset(d50c, 0xcd, sizeof d50c);

    is_str(s_hmac_hex(k20b, 20, "Hi There", 8),
           "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
           "RFC 4231 case 1");
    is_str(s_hmac_hex("Jefe", 4, "what do ya want for nothing?", 28),
           "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
           "RFC 4231 case 2 (key shorter than the output)");
    is_str(s_hmac_hex(k20a, 20, d50d, 50),
           "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
           "RFC 4231 case 3 (50 bytes of 0xdd)");
    is_str(s_hmac_hex(k25, 25, d50c, 50),
           "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
           "RFC 4231 case 4 (25-byte key 0x01..0x19)");
    /* Case 5 publishes only the first 128 bits. */
    char case5[2 * BX_SHA256_LEN + 1];
    snprintf(case5, sizeof case5, "%s", s_hmac_hex(k20c, 20, "Test With Truncation", 20));
    case5[32] = '\0';
    is_str(case5, "a3b6167473100ee06e0c796c2955552b", "RFC 4231 case 5 (truncated to 128 bits)");
    const char *d6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    is_str(s_hmac_hex(k131, 131, d6, strlen(d6)),
           "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
           "RFC 4231 case 6 (131-byte key is hashed first)");
    const char *d7 = "This is a test using a larger than block-size key and a larger than "
                     "block-size data. The key needs to be hashed before being used by the "
                     "HMAC algorithm.";
    is_str(s_hmac_hex(k131, 131, d7, strlen(d7)),
           "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
           "RFC 4231 case 7 (long key, long data)");

    /* Key length edges around the block size; values from Python's hmac. */
    uint8_t key[65];
    for (int i = 0; i < 65; i++)
        key[i] = (uint8_t)i;
    const char *fox = "The quick brown fox jumps over the lazy dog";
    is_str(s_hmac_hex(key, 0, fox, strlen(fox)),
           "fb011e6154a19b9a4c767373c305275a5a69e8b68b0b4c9200c383dced19a416",
           "HMAC with an empty key");
    is_str(s_hmac_hex(key, 64, fox, strlen(fox)),
           "4903b1fc9f41bc1abe3ff7119c4e523b91288b11c03dab1e975816150df38144",
           "HMAC with a 64-byte key (exactly one block, not hashed)");
    is_str(s_hmac_hex(key, 65, fox, strlen(fox)),
           "8e94e45cd66c660f34f8600065afcf80fe2ef70df6c16b95101753a6e1aab94a",
           "HMAC with a 65-byte key (one past the block, hashed)");
    /* RFC 2104 pads a short key with zeros, so trailing zero bytes do not
     * change it: one reason the secret must be random bytes, not a C string. */
    char mac1[2 * BX_SHA256_LEN + 1];
    snprintf(mac1, sizeof mac1, "%s", s_hmac_hex("k\0", 2, fox, strlen(fox)));
    is_str(mac1, s_hmac_hex("k", 1, fox, strlen(fox)),
           "HMAC: keys differing only in trailing zero bytes are the same key");
}

static void test_ct_equal(void)
{
    uint8_t a[32], b[32];
    memset(a, 0x5a, sizeof a);
    memcpy(b, a, sizeof b);
    is_int(bx_ct_equal(a, b, sizeof a), 1, "ct_equal: equal buffers");
    b[0] ^= 1;
    is_int(bx_ct_equal(a, b, sizeof a), 0, "ct_equal: first byte differs");
    b[0] ^= 1;
    b[31] ^= 0x80;
    is_int(bx_ct_equal(a, b, sizeof a), 0, "ct_equal: last byte's top bit differs");
    is_int(bx_ct_equal(a, b, 31), 1, "ct_equal: compares only n bytes");
    is_int(bx_ct_equal(a, b, 0), 1, "ct_equal: zero bytes are equal");

    uint8_t w[16];
    memset(w, 0xff, sizeof w);
    bx_wipe(w, sizeof w);
    uint8_t z[16] = { 0 };
    ok(memcmp(w, z, sizeof w) == 0, "wipe zeroes");
}

/* ------------------------------------------------------------ token helpers */

/* The test's own base64url, independent of token.c's. */
static void s_b64url(const uint8_t *in, size_t n, char *out)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = al[v >> 18 & 63];
        out[o++] = al[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = al[v >> 6 & 63];
        if (i + 2 < n)
            out[o++] = al[v & 63];
    }
    out[o] = '\0';
}

/* Signs an arbitrary payload (n bytes, need not be JSON) with key the way the
 * format says, so the payload checks behind the MAC can be reached.
 * Returns a static buffer. */
static const char *s_sign_n(const char *key, const char *json, size_t n)
{
    static char tok[4 * BX_TOKEN_MAX];
    uint8_t mac[BX_SHA256_LEN];
    memcpy(tok, "v1.", 3);
    s_b64url((const uint8_t *)json, n, tok + 3);
    size_t hl = strlen(tok);
    bx_hmac_sha256(key, strlen(key), tok, hl, mac);
    tok[hl] = '.';
    s_b64url(mac, sizeof mac, tok + hl + 1);
    return tok;
}

static const char *s_sign(const char *json)
{
    return s_sign_n(SECRET, json, strlen(json));
}

/* Verifies with the test secret at now; stores the subject in a static buffer. */
static char s_sub[BX_TOKEN_SUBJECT_MAX + 1];
static int64_t s_exp;
static int s_verify(const char *tok, int64_t now)
{
    s_exp = -1;
    return bx_token_verify(SECRET, SECRETLEN, tok, now, s_sub, sizeof s_sub, &s_exp);
}

/* ------------------------------------------------------------ token tests */

static void test_mint_roundtrip(void)
{
    char tok[BX_TOKEN_MINT_MAX];
    is_int(bx_token_mint(SECRET, SECRETLEN, "alice", 2000000000, tok, sizeof tok), BX_TOKEN_OK,
           "mint alice");
    /* Byte for byte what Python's json.dumps(..., separators=(",", ":")) and
     * hmac give for the same payload: the C and script minters agree. */
    is_str(tok, "v1.eyJzdWIiOiJhbGljZSIsImV4cCI6MjAwMDAwMDAwMH0."
                "FntF3Ta8cr0TF69i78CYlX8Pck4DYct6R_q0dsITk1M",
           "minted token equals the Python-computed one");
    is_int(s_verify(tok, 1900000000), BX_TOKEN_OK, "round trip verifies");
    is_str(s_sub, "alice", "round trip: subject");
    is_int(s_exp, 2000000000, "round trip: exp");
    is_int(bx_token_verify(SECRET, SECRETLEN, tok, 1900000000, NULL, 0, NULL), BX_TOKEN_OK,
           "subject_out and exp_out may be NULL");

    const char *odd = "a-b_c!d~e(f)g$h@i.j0Z";
    is_int(bx_token_mint(SECRET, SECRETLEN, odd, 5000, tok, sizeof tok), BX_TOKEN_OK,
           "mint with every punctuation character of a segment");
    is_int(s_verify(tok, 4999), BX_TOKEN_OK, "punctuation subject verifies");
    is_str(s_sub, odd, "punctuation subject comes back unchanged");

    char sub128[BX_TOKEN_SUBJECT_MAX + 2];
    memset(sub128, 'x', BX_TOKEN_SUBJECT_MAX);
    sub128[BX_TOKEN_SUBJECT_MAX] = '\0';
    is_int(bx_token_mint(SECRET, SECRETLEN, sub128, BX_TOKEN_TIME_MAX, tok, sizeof tok),
           BX_TOKEN_OK, "128-byte subject, largest exp: fits BX_TOKEN_MINT_MAX");
    is_int(s_verify(tok, 0), BX_TOKEN_OK, "128-byte subject verifies");
    is_int((long long)strlen(s_sub), 128, "128-byte subject comes back whole");
    is_int(s_exp, BX_TOKEN_TIME_MAX, "largest exp comes back");

    /* Any key length works, including keys longer than a block. */
    char longkey[200];
    memset(longkey, 'k', sizeof longkey);
    is_int(bx_token_mint(longkey, sizeof longkey, "bob", 10, tok, sizeof tok), BX_TOKEN_OK,
           "mint with a 200-byte secret");
    is_int(bx_token_verify(longkey, sizeof longkey, tok, 9, NULL, 0, NULL), BX_TOKEN_OK,
           "verify with a 200-byte secret");
    /* The secret is bytes, not a C string: NULs inside it count. */
    is_int(bx_token_mint("\0\1\0", 3, "bob", 10, tok, sizeof tok), BX_TOKEN_OK,
           "mint with a binary secret");
    is_int(bx_token_verify("\0\1\0", 3, tok, 9, NULL, 0, NULL), BX_TOKEN_OK,
           "verify with the binary secret");
    is_int(bx_token_verify("\0\2\0", 3, tok, 9, NULL, 0, NULL), BX_TOKEN_BAD_SIGNATURE,
           "a binary secret differing in a middle byte does not verify");
}

static void test_mint_errors(void)
{
    char tok[BX_TOKEN_MINT_MAX];
    char sub129[BX_TOKEN_SUBJECT_MAX + 2];
    memset(sub129, 'x', BX_TOKEN_SUBJECT_MAX + 1);
    sub129[BX_TOKEN_SUBJECT_MAX + 1] = '\0';

    is_int(bx_token_mint(SECRET, 0, "alice", 10, tok, sizeof tok), BX_TOKEN_EINVAL,
           "mint: empty secret refused");
    is_int(bx_token_mint(NULL, 5, "alice", 10, tok, sizeof tok), BX_TOKEN_EINVAL,
           "mint: NULL secret refused");
    is_int(bx_token_mint(SECRET, SECRETLEN, NULL, 10, tok, sizeof tok), BX_TOKEN_EINVAL,
           "mint: NULL subject refused");
    is_int(bx_token_mint(SECRET, SECRETLEN, "alice", 10, NULL, 0), BX_TOKEN_EINVAL,
           "mint: NULL out refused");
    is_int(bx_token_mint(SECRET, SECRETLEN, "alice", -1, tok, sizeof tok), BX_TOKEN_EINVAL,
           "mint: negative exp refused");
    is_int(bx_token_mint(SECRET, SECRETLEN, "alice", BX_TOKEN_TIME_MAX + 1, tok, sizeof tok),
           BX_TOKEN_EINVAL, "mint: exp past year 9999 refused");

    static const char *bad[] = { "", "a/b", "*", "a b", "caf\xc3\xa9", "a\"b", "a\\b", "a\n" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        strcpy(tok, "junk");
        int rc = bx_token_mint(SECRET, SECRETLEN, bad[i], 10, tok, sizeof tok);
        ok(rc == BX_TOKEN_BAD_SUBJECT && tok[0] == '\0', "mint: subject #%zu refused, out \"\"",
           i);
    }
    is_int(bx_token_mint(SECRET, SECRETLEN, sub129, 10, tok, sizeof tok), BX_TOKEN_BAD_SUBJECT,
           "mint: 129-byte subject refused");

    /* "v1." + 32 payload chars ({"sub":"alice","exp":10} is 24 bytes)
     * + "." + 43 + NUL = 80 bytes exactly. */
    is_int(bx_token_mint(SECRET, SECRETLEN, "alice", 10, tok, 80), BX_TOKEN_OK,
           "mint: an out buffer of exactly the size needed");
    is_int((long long)strlen(tok), 79, "mint: the token fills it");
    is_int(bx_token_mint(SECRET, SECRETLEN, "alice", 10, tok, 79), BX_TOKEN_EINVAL,
           "mint: one byte short refused");
    is_str(tok, "", "mint: out is \"\" after a refusal");
}

static void test_verify_args(void)
{
    char tok[BX_TOKEN_MINT_MAX];
    char small[BX_TOKEN_SUBJECT_MAX];
    bx_token_mint(SECRET, SECRETLEN, "alice", 100, tok, sizeof tok);

    is_int(bx_token_verify(SECRET, SECRETLEN, NULL, 0, NULL, 0, NULL), BX_TOKEN_EINVAL,
           "verify: NULL token");
    is_int(bx_token_verify(SECRET, 0, tok, 0, NULL, 0, NULL), BX_TOKEN_EINVAL,
           "verify: empty secret");
    is_int(bx_token_verify(NULL, 3, tok, 0, NULL, 0, NULL), BX_TOKEN_EINVAL,
           "verify: NULL secret");
    strcpy(small, "junk");
    is_int(bx_token_verify(SECRET, SECRETLEN, tok, 0, small, sizeof small, NULL),
           BX_TOKEN_EINVAL, "verify: subject buffer of 128 bytes is too small");
    is_str(small, "", "verify: subject buffer emptied on error");
}

static void test_expiry(void)
{
    char tok[BX_TOKEN_MINT_MAX];
    bx_token_mint(SECRET, SECRETLEN, "alice", 1000, tok, sizeof tok);
    is_int(s_verify(tok, 999), BX_TOKEN_OK, "exp: one second before exp is valid");
    is_int(s_verify(tok, 1000), BX_TOKEN_EXPIRED, "exp: at exp it has expired");
    is_str(s_sub, "", "exp: no subject handed out when expired");
    is_int(s_exp, -1, "exp: exp_out untouched on error");
    is_int(s_verify(tok, 1001), BX_TOKEN_EXPIRED, "exp: after exp it has expired");
    is_int(s_verify(tok, -5), BX_TOKEN_OK, "exp: a now before the epoch is still before exp");
    is_int(s_verify(tok, INT64_MAX), BX_TOKEN_EXPIRED, "exp: now = INT64_MAX");

    bx_token_mint(SECRET, SECRETLEN, "alice", 0, tok, sizeof tok);
    is_int(s_verify(tok, 0), BX_TOKEN_EXPIRED, "exp 0 is expired at 0");
    is_int(s_verify(s_sign("{\"sub\":\"a\",\"exp\":0,\"iat\":0}"), -1), BX_TOKEN_OK,
           "exp 0 with iat 0 is valid at -1");

    /* iat: up to BX_TOKEN_LEEWAY seconds in the future is tolerated. */
    const char *iat = s_sign("{\"sub\":\"a\",\"iat\":1000,\"exp\":5000}");
    is_int(s_verify(iat, 1000), BX_TOKEN_OK, "iat: now = iat");
    is_int(s_verify(iat, 4000), BX_TOKEN_OK, "iat: now after iat");
    is_int(s_verify(iat, 1000 - BX_TOKEN_LEEWAY), BX_TOKEN_OK, "iat: now = iat - leeway");
    is_int(s_verify(iat, 1000 - BX_TOKEN_LEEWAY - 1), BX_TOKEN_NOT_YET_VALID,
           "iat: now = iat - leeway - 1 is not yet valid");
    is_int(s_verify(iat, INT64_MIN), BX_TOKEN_NOT_YET_VALID, "iat: now = INT64_MIN");
    is_int(s_verify(iat, 5000), BX_TOKEN_EXPIRED, "iat: expiry still applies");
    /* Expiry is reported before iat when both fail. */
    is_int(s_verify(s_sign("{\"sub\":\"a\",\"iat\":9000,\"exp\":5000}"), 6000), BX_TOKEN_EXPIRED,
           "iat after exp, now past exp: expired");
}

static void test_payload(void)
{
    static const struct {
        const char *json;
        int want;
        const char *name;
    } t[] = {
        { "{\"sub\":\"a\",\"exp\":2000}", BX_TOKEN_OK, "minimal payload" },
        { " {\"exp\":2000,\"sub\":\"a\"}\r\n\t ", BX_TOKEN_OK, "key order, outer whitespace" },
        { "{\"sub\":\"a\",\"exp\":2000,\"role\":\"x\",\"n\":{\"m\":[1,2,{}]}}", BX_TOKEN_OK,
          "unknown fields, nested, ignored" },
        { "{\"sub\":\"evil\",\"sub\":\"a\",\"exp\":2000}", BX_TOKEN_OK,
          "duplicate key: the last one counts" },
        { "{\"sub\":\"a\",\"exp\":2000,\"iat\":-0}", BX_TOKEN_OK, "iat -0 is 0" },
        { "{\"sub\":\"..\",\"exp\":2000}", BX_TOKEN_OK, "\"..\" is a valid segment" },
        { "{\"sub\":\"\\u0061\",\"exp\":2000}", BX_TOKEN_OK, "escaped ASCII in the subject" },
        { "hello", BX_TOKEN_MALFORMED, "not JSON" },
        { "[\"a\",2000]", BX_TOKEN_MALFORMED, "an array" },
        { "\"a\"", BX_TOKEN_MALFORMED, "a string" },
        { "{}", BX_TOKEN_MALFORMED, "empty object" },
        { "{\"exp\":2000}", BX_TOKEN_MALFORMED, "sub missing" },
        { "{\"sub\":7,\"exp\":2000}", BX_TOKEN_MALFORMED, "sub a number" },
        { "{\"sub\":null,\"exp\":2000}", BX_TOKEN_MALFORMED, "sub null" },
        { "{\"sub\":[\"a\"],\"exp\":2000}", BX_TOKEN_MALFORMED, "sub an array" },
        { "{\"sub\":\"a\"}", BX_TOKEN_MALFORMED, "exp missing" },
        { "{\"sub\":\"a\",\"exp\":\"2000\"}", BX_TOKEN_MALFORMED, "exp a string" },
        { "{\"sub\":\"a\",\"exp\":2000.0}", BX_TOKEN_MALFORMED, "exp a float" },
        { "{\"sub\":\"a\",\"exp\":2e3}", BX_TOKEN_MALFORMED, "exp with an exponent" },
        { "{\"sub\":\"a\",\"exp\":-1}", BX_TOKEN_MALFORMED, "exp negative" },
        { "{\"sub\":\"a\",\"exp\":true}", BX_TOKEN_MALFORMED, "exp a boolean" },
        { "{\"sub\":\"a\",\"exp\":253402300800}", BX_TOKEN_MALFORMED, "exp past year 9999" },
        { "{\"sub\":\"a\",\"exp\":99999999999999999999}", BX_TOKEN_MALFORMED,
          "exp past 2^64" },
        { "{\"sub\":\"a\",\"exp\":18446744073709551615}", BX_TOKEN_MALFORMED,
          "exp 2^64-1 (json-c's uint64)" },
        { "{\"sub\":\"a\",\"exp\":2000,\"iat\":null}", BX_TOKEN_MALFORMED, "iat null" },
        { "{\"sub\":\"a\",\"exp\":2000,\"iat\":\"1\"}", BX_TOKEN_MALFORMED, "iat a string" },
        { "{\"sub\":\"a\",\"exp\":2000,\"iat\":1.5}", BX_TOKEN_MALFORMED, "iat a float" },
        { "{\"sub\":\"a\",\"exp\":2000}x", BX_TOKEN_MALFORMED, "garbage after the object" },
        { "{\"sub\":\"a\",\"exp\":2000}{}", BX_TOKEN_MALFORMED, "two objects" },
        { "{\"sub\":\"a\",\"exp\":2000,}", BX_TOKEN_MALFORMED, "trailing comma" },
        { "{'sub':'a','exp':2000}", BX_TOKEN_MALFORMED, "single quotes" },
        { "{\"sub\":\"a\",\"exp\":2000", BX_TOKEN_MALFORMED, "unterminated object" },
        { "{\"sub\":\"a\",\"exp\":0x7d0}", BX_TOKEN_MALFORMED, "hex number" },
        { "{\"sub\":\"a\",\"exp\":02000}", BX_TOKEN_MALFORMED, "leading zero" },
        { "{\"sub\":\"\",\"exp\":2000}", BX_TOKEN_BAD_SUBJECT, "empty subject" },
        { "{\"sub\":\"a/b\",\"exp\":2000}", BX_TOKEN_BAD_SUBJECT, "subject with /" },
        { "{\"sub\":\"*\",\"exp\":2000}", BX_TOKEN_BAD_SUBJECT, "subject *" },
        { "{\"sub\":\"**\",\"exp\":2000}", BX_TOKEN_BAD_SUBJECT, "subject **" },
        { "{\"sub\":\"a b\",\"exp\":2000}", BX_TOKEN_BAD_SUBJECT, "subject with a space" },
        { "{\"sub\":\"caf\\u00e9\",\"exp\":2000}", BX_TOKEN_BAD_SUBJECT, "non-ASCII subject" },
        { "{\"sub\":\"a\\u0000b\",\"exp\":2000}", BX_TOKEN_BAD_SUBJECT, "subject with \\u0000" },
        { "{\"sub\":\"a%2Fb\",\"exp\":2000}", BX_TOKEN_BAD_SUBJECT, "subject with %" },
        { "{\"sub\":\"a,b\",\"exp\":2000}", BX_TOKEN_BAD_SUBJECT, "subject with ," },
        /* A bad subject is reported even when the token has expired too. */
        { "{\"sub\":\"a b\",\"exp\":1}", BX_TOKEN_BAD_SUBJECT, "bad subject before expiry" },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        is_int(s_verify(s_sign(t[i].json), 1000), t[i].want, "payload: %s", t[i].name);
    is_str(s_sub, "", "no subject handed out on a payload error");

    /* A raw NUL byte in the JSON (not \u0000) is refused before json-c sees it. */
    is_int(s_verify(s_sign_n(SECRET, "{\"sub\":\"a\",\"exp\":2000}\0", 23), 1000),
           BX_TOKEN_MALFORMED, "payload: NUL byte after the object");
    is_int(s_verify(s_sign_n(SECRET, "{\"sub\":\"a\0b\",\"exp\":2000}", 24), 1000),
           BX_TOKEN_MALFORMED, "payload: raw NUL byte inside the subject");
    is_int(s_verify(s_sign("{\"sub\":\"a\tb\",\"exp\":2000}"), 1000), BX_TOKEN_MALFORMED,
           "payload: raw control character inside a string");
    is_int(s_verify(s_sign("{\"x\":\"q\\\"\tz\",\"sub\":\"a\",\"exp\":2000}"), 1000),
           BX_TOKEN_MALFORMED, "payload: raw tab after an escaped quote is still in the string");
    is_int(s_verify(s_sign("{\"x\":\"q\\\\\",\"sub\":\"a\",\"exp\":2000}"), 1000),
           BX_TOKEN_OK, "payload: an escaped backslash ends before the closing quote");
    is_int(s_verify(s_sign("{\t\"sub\":\"a\",\n\"x\":\"\\t\",\"exp\":2000}"), 1000),
           BX_TOKEN_OK, "payload: tabs and newlines between tokens, \\t escaped in a string");

    char sub[BX_TOKEN_SUBJECT_MAX + 2], json[400];
    memset(sub, 'y', sizeof sub);
    sub[BX_TOKEN_SUBJECT_MAX] = '\0';
    snprintf(json, sizeof json, "{\"sub\":\"%s\",\"exp\":2000}", sub);
    is_int(s_verify(s_sign(json), 1000), BX_TOKEN_OK, "payload: 128-byte subject");
    sub[BX_TOKEN_SUBJECT_MAX] = 'y';
    sub[BX_TOKEN_SUBJECT_MAX + 1] = '\0';
    snprintf(json, sizeof json, "{\"sub\":\"%s\",\"exp\":2000}", sub);
    is_int(s_verify(s_sign(json), 1000), BX_TOKEN_BAD_SUBJECT, "payload: 129-byte subject");

    /* Nesting: unknown fields may nest, within json-c's depth budget. */
    char deep[200];
    int d = 0;
    d += sprintf(deep + d, "{\"sub\":\"a\",\"exp\":2000,\"x\":");
    for (int i = 0; i < 40; i++)
        deep[d++] = '[';
    for (int i = 0; i < 40; i++)
        deep[d++] = ']';
    strcpy(deep + d, "}");
    is_int(s_verify(s_sign(deep), 1000), BX_TOKEN_MALFORMED, "payload: nesting too deep");
}

static void test_shape(void)
{
    char good[BX_TOKEN_MINT_MAX], t[BX_TOKEN_MINT_MAX + 8];
    bx_token_mint(SECRET, SECRETLEN, "alice", 2000, good, sizeof good);
    size_t len = strlen(good);
    const char *dot = strrchr(good, '.');
    size_t sigpos = (size_t)(dot - good) + 1;
    is_int((long long)(len - sigpos), 43, "shape: signature is 43 characters");

    static const char *bad[] = {
        "", "v1", "v1.", "v1..", "v2.eyJ9.AAAA", "V1.eyJ9.AAAA", "v1.eyJzdWIiOiJhIn0",
        "v1..AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "v1.eyJ9.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.",
        " v1.eyJ9.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        is_int(s_verify(bad[i], 1000), BX_TOKEN_MALFORMED, "shape: \"%s\"", bad[i]);

    /* Signature length and alphabet. */
    snprintf(t, sizeof t, "%.*s", (int)len - 1, good);
    is_int(s_verify(t, 1000), BX_TOKEN_MALFORMED, "shape: signature of 42 characters");
    snprintf(t, sizeof t, "%sA", good);
    is_int(s_verify(t, 1000), BX_TOKEN_MALFORMED, "shape: signature of 44 characters");
    snprintf(t, sizeof t, "%s=", good);
    is_int(s_verify(t, 1000), BX_TOKEN_MALFORMED, "shape: '=' padding after the signature");
    snprintf(t, sizeof t, "%s\n", good);
    is_int(s_verify(t, 1000), BX_TOKEN_MALFORMED, "shape: trailing newline");
    static const char subst[] = { '+', '/', '=', ' ', '.', '\x80', '\t' };
    for (size_t i = 0; i < sizeof subst; i++) {
        strcpy(t, good);
        t[sigpos + 5] = subst[i];
        is_int(s_verify(t, 1000), BX_TOKEN_MALFORMED, "shape: 0x%02x in the signature",
               (unsigned char)subst[i]);
    }
    /* The 43rd character carries 4 bits and 2 unused ones, which must be 0:
     * "...M" and "...N" would decode alike, so only one is accepted. */
    strcpy(t, good);
    char *last = &t[len - 1];
    const char *al = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int v = (int)(strchr(al, *last) - al);
    ok((v & 3) == 0, "shape: the minted signature is canonical");
    *last = al[v | 1];
    is_int(s_verify(t, 1000), BX_TOKEN_MALFORMED,
           "shape: non-canonical last signature character refused, not just a bad MAC");
    strcpy(t, good);
    t[sigpos] = t[sigpos] == 'A' ? 'B' : 'A';
    is_int(s_verify(t, 1000), BX_TOKEN_BAD_SIGNATURE, "signature: one character changed");

    /* Payload alphabet and padding. */
    strcpy(t, good);
    t[3] = '+';
    is_int(s_verify(t, 1000), BX_TOKEN_MALFORMED, "shape: '+' in the payload");
    snprintf(t, sizeof t, "v1.%.*s=%s", (int)(sigpos - 4), good + 3, good + sigpos - 1);
    is_int(s_verify(t, 1000), BX_TOKEN_MALFORMED, "shape: '=' padding after the payload");
    /* {"sub":"a","exp":2000} is 22 bytes: 30 characters, the last with 4 unused bits. */
    const char *p22 = s_sign("{\"sub\":\"a\",\"exp\":2000}");
    is_int(s_verify(p22, 1000), BX_TOKEN_OK, "a payload ending in a partial group verifies");
    strcpy(t, p22);
    char *plast = strchr(t + 3, '.') - 1;
    v = (int)(strchr(al, *plast) - al);
    *plast = al[v | 1];
    is_int(s_verify(t, 1000), BX_TOKEN_MALFORMED, "shape: non-canonical payload end refused");
    /* 30 characters less one is 29 = 1 mod 4, which no byte count encodes to. */
    strcpy(t, p22);
    memmove(t + 3, t + 4, strlen(t + 4) + 1);
    is_int(s_verify(t, 1000), BX_TOKEN_MALFORMED, "shape: payload length 1 mod 4");
}

static void test_length_limit(void)
{
    /* base64url never has a length of 1 mod 4, so the longest token is
     * 2047 bytes: "v1." + 2000 + "." + 43 (a 1500-byte payload). */
    char json[1600];
    int head = snprintf(json, sizeof json, "{\"sub\":\"a\",\"exp\":2000,\"pad\":\"");
    memset(json + head, 'p', 1500 - (size_t)head - 2);
    strcpy(json + 1498, "\"}");
    const char *t = s_sign(json);
    is_int((long long)strlen(t), 2047, "length: the 1500-byte payload makes 2047 bytes");
    is_int(s_verify(t, 1000), BX_TOKEN_OK, "length: a 2047-byte token verifies");

    char json2[1600];
    memcpy(json2, json, 1498);
    strcpy(json2 + 1498, "p\"}");
    t = s_sign(json2);
    is_int((long long)strlen(t), 2049, "length: one byte more makes 2049 bytes");
    is_int(s_verify(t, 1000), BX_TOKEN_MALFORMED, "length: a correctly signed 2049 refused");

    char *huge = malloc(100001);
    memset(huge, 'A', 100000);
    memcpy(huge, "v1.", 3);
    huge[100000] = '\0';
    is_int(s_verify(huge, 1000), BX_TOKEN_MALFORMED, "length: 100000 bytes refused");
    free(huge);
}

static void test_tamper(void)
{
    char good[BX_TOKEN_MINT_MAX], t[BX_TOKEN_MINT_MAX];
    bx_token_mint(SECRET, SECRETLEN, "alice", 2000, good, sizeof good);

    is_int(bx_token_verify("other secret", 12, good, 1000, NULL, 0, NULL),
           BX_TOKEN_BAD_SIGNATURE, "tamper: wrong secret");
    is_int(bx_token_verify(SECRET, SECRETLEN - 1, good, 1000, NULL, 0, NULL),
           BX_TOKEN_BAD_SIGNATURE, "tamper: secret one byte short");
    char longer[sizeof SECRET + 1];
    memcpy(longer, SECRET, SECRETLEN);
    longer[SECRETLEN] = 'x';
    is_int(bx_token_verify(longer, SECRETLEN + 1, good, 1000, NULL, 0, NULL),
           BX_TOKEN_BAD_SIGNATURE, "tamper: secret one byte longer");

    /* Every character of the payload replaced by every other base64url
     * character: never valid (bad MAC, or non-canonical at the end). */
    const char *al = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t pend = (size_t)(strchr(good + 3, '.') - good);
    int all_refused = 1, tries = 0;
    for (size_t i = 3; i < pend; i++) {
        for (const char *c = al; *c; c++) {
            if (*c == good[i])
                continue;
            strcpy(t, good);
            t[i] = *c;
            tries++;
            int rc = s_verify(t, 1000);
            if (rc != BX_TOKEN_BAD_SIGNATURE && rc != BX_TOKEN_MALFORMED) {
                diag("payload change at %zu to %c gave %d", i, *c, rc);
                all_refused = 0;
            }
        }
    }
    ok(all_refused, "tamper: all %d one-character payload changes refused", tries);

    /* A payload of one token with the signature of another. */
    char other[BX_TOKEN_MINT_MAX];
    bx_token_mint(SECRET, SECRETLEN, "mallory", 2000, other, sizeof other);
    const char *osig = strrchr(other, '.');
    snprintf(t, sizeof t, "%.*s%s", (int)pend, good, osig);
    is_int(s_verify(t, 1000), BX_TOKEN_BAD_SIGNATURE, "tamper: signature transplanted");
    /* Raising exp in the payload without the secret. */
    char forged[BX_TOKEN_MINT_MAX];
    bx_token_mint("guess", 5, "alice", 4000000000, forged, sizeof forged);
    snprintf(t, sizeof t, "%.*s%s", (int)(strrchr(forged, '.') - forged), forged,
             strrchr(good, '.'));
    is_int(s_verify(t, 1000), BX_TOKEN_BAD_SIGNATURE, "tamper: exp raised, old signature");
}

/* Minted by the snippets in docs/security.md (see the draft), with
 * secret SECRET, now = 1700000000, ttl = 4102444800 - 1700000000:
 *   python3: mint_token(SECRET, "alice", ttl, now), and "user-42.eu@example.com"
 *   php:     mint_token(SECRET, "bob", ttl, now)
 * Python's json.dumps puts spaces after ':' and ','; PHP's json_encode none. */
static void test_script_tokens(void)
{
    const char *py = "v1.eyJzdWIiOiAiYWxpY2UiLCAiaWF0IjogMTcwMDAwMDAwMCwgImV4cCI6IDQxMDI0ND"
                     "Q4MDB9.DBspYf3H0ftmeUllLF0C1VdbkCdsoxJT_ovDWVJ21P0";
    is_int(s_verify(py, 1700000000), BX_TOKEN_OK, "python token verifies at iat");
    is_str(s_sub, "alice", "python token: subject");
    is_int(s_exp, 4102444800LL, "python token: exp");
    is_int(s_verify(py, 4102444799LL), BX_TOKEN_OK, "python token: valid a second before exp");
    is_int(s_verify(py, 4102444800LL), BX_TOKEN_EXPIRED, "python token: expired at exp");
    is_int(s_verify(py, 1700000000 - 60), BX_TOKEN_OK, "python token: iat within the leeway");
    is_int(s_verify(py, 1700000000 - 61), BX_TOKEN_NOT_YET_VALID,
           "python token: iat beyond the leeway");

    const char *py2 = "v1.eyJzdWIiOiAidXNlci00Mi5ldUBleGFtcGxlLmNvbSIsICJpYXQiOiAxNzAwMDAwMD"
                      "AwLCAiZXhwIjogNDEwMjQ0NDgwMH0.zrenE4YuG0FaXLE2GLtHH-ujmAY53FPlseBvqugIiho";
    is_int(s_verify(py2, 1800000000), BX_TOKEN_OK, "python token with '-', '.', '@' verifies");
    is_str(s_sub, "user-42.eu@example.com", "python token 2: subject");

    const char *php = "v1.eyJzdWIiOiJib2IiLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6NDEwMjQ0NDgwMH0."
                      "cCoDOHP8hQuaL211WKLr07C78cQ3-tRMzeAvFIzLjYQ";
    is_int(s_verify(php, 1800000000), BX_TOKEN_OK, "php token verifies");
    is_str(s_sub, "bob", "php token: subject");
    is_int(bx_token_verify("other", 5, php, 1800000000, NULL, 0, NULL), BX_TOKEN_BAD_SIGNATURE,
           "php token with another secret");
}

static void test_subject_and_strerror(void)
{
    ok(bx_token_subject_ok("alice", 5), "subject_ok: alice");
    ok(!bx_token_subject_ok("alice", 0), "subject_ok: length 0");
    ok(!bx_token_subject_ok(NULL, 3), "subject_ok: NULL");
    ok(bx_token_subject_ok("ab/c", 2), "subject_ok: honours len");
    ok(!bx_token_subject_ok("ab/c", 4), "subject_ok: '/'");

    int codes[] = { BX_TOKEN_OK, BX_TOKEN_EINVAL, BX_TOKEN_MALFORMED, BX_TOKEN_BAD_SIGNATURE,
                    BX_TOKEN_EXPIRED, BX_TOKEN_NOT_YET_VALID, BX_TOKEN_BAD_SUBJECT };
    int n = sizeof codes / sizeof codes[0], distinct = 1;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            if (codes[i] == codes[j] ||
                strcmp(bx_token_strerror(codes[i]), bx_token_strerror(codes[j])) == 0)
                distinct = 0;
    ok(distinct, "every error has its own code and message");
    is_str(bx_token_strerror(BX_TOKEN_EXPIRED), "token expired", "strerror(EXPIRED)");
    is_str(bx_token_strerror(42), "unknown token error", "strerror of an unknown code");
}

/* ------------------------------------------------------------ fuzz */

static int s_known(int rc)
{
    return rc <= BX_TOKEN_OK && rc >= BX_TOKEN_BAD_SUBJECT;
}

/* Random edits of a valid token: none may verify or crash (ASan and
 * valgrind watch the reads), each must give a known code. */
static void test_fuzz_token(void)
{
    char good[BX_TOKEN_MINT_MAX], t[2 * BX_TOKEN_MINT_MAX];
    bx_token_mint(SECRET, SECRETLEN, "alice", 2000, good, sizeof good);
    size_t glen = strlen(good);
    int verified = 0, unknown = 0, runs = 0;

    for (int iter = 0; iter < 20000; iter++) {
        memcpy(t, good, glen + 1);
        size_t len = glen;
        int edits = 1 + (int)(s_rand() % 4);
        for (int e = 0; e < edits && len > 0; e++) {
            size_t at = s_rand() % len;
            switch (s_rand() % 6) {
            case 0:   /* flip a bit (may make a NUL: the token just ends there) */
                t[at] ^= (char)(1 << (s_rand() % 8));
                break;
            case 1:   /* replace with any byte but NUL */
                t[at] = (char)(1 + s_rand() % 255);
                break;
            case 2:   /* delete */
                memmove(t + at, t + at + 1, len - at);
                len--;
                break;
            case 3:   /* insert */
                if (len + 2 < sizeof t) {
                    memmove(t + at + 1, t + at, len - at + 1);
                    t[at] = "A_-.=v1"[s_rand() % 7];
                    len++;
                }
                break;
            case 4:   /* truncate */
                t[at] = '\0';
                len = at;
                break;
            default: /* duplicate a range */
                {
                    size_t n = s_rand() % 20;
                    if (at + n <= len && len + n + 1 < sizeof t) {
                        memmove(t + at + n, t + at, len - at + 1);
                        len += n;
                    }
                }
                break;
            }
        }
        if (strcmp(t, good) == 0)
            continue;
        runs++;
        int rc = s_verify(t, 1000);
        verified += rc == BX_TOKEN_OK;
        unknown += !s_known(rc);
    }
    is_int(verified, 0, "fuzz: none of %d mutated tokens verifies", runs);
    is_int(unknown, 0, "fuzz: every mutated token gets a known error code");

    /* Random strings behind the right prefix. */
    verified = unknown = 0;
    for (int iter = 0; iter < 5000; iter++) {
        size_t n = 3 + s_rand() % 120;
        memcpy(t, "v1.", 3);
        for (size_t i = 3; i < n; i++)
            t[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
                [s_rand() % 65];
        t[n] = '\0';
        int rc = s_verify(t, 1000);
        verified += rc == BX_TOKEN_OK;
        unknown += !s_known(rc);
    }
    is_int(verified, 0, "fuzz: no random v1. string verifies");
    is_int(unknown, 0, "fuzz: random strings get known codes");
}

/* Random edits of a payload that is then signed, to drive json-c and the
 * field checks behind the MAC: known codes only, and whatever verifies must
 * carry a valid subject and an unexpired exp. */
static void test_fuzz_payload(void)
{
    const char *seed = "{\"sub\":\"alice\",\"exp\":2000,\"iat\":500,\"x\":[1,\"\\u00e9\"]}";
    size_t slen = strlen(seed);
    char j[256];
    int bad = 0, oks = 0;
    for (int iter = 0; iter < 5000; iter++) {
        memcpy(j, seed, slen + 1);
        size_t len = slen;
        int edits = 1 + (int)(s_rand() % 3);
        for (int e = 0; e < edits; e++) {
            size_t at = s_rand() % len;
            if (s_rand() % 2)
                j[at] = "{}[]\":,0123456789.-eE \\u/*tfn"[s_rand() % 30];
            else
                j[at] = (char)s_rand();
        }
        int rc = s_verify(s_sign_n(SECRET, j, len), 1000);
        if (!s_known(rc) || rc == BX_TOKEN_BAD_SIGNATURE || rc == BX_TOKEN_EINVAL)
            bad++;
        if (rc == BX_TOKEN_OK) {
            oks++;
            if (!bx_token_subject_ok(s_sub, strlen(s_sub)) || s_exp <= 1000)
                bad++;
        }
    }
    is_int(bad, 0, "fuzz: signed mutated payloads (%d still valid) behave", oks);
}

int main(void)
{
    test_sha256_vectors();
    test_sha256_streaming();
    test_hmac_rfc4231();
    test_ct_equal();
    test_mint_roundtrip();
    test_mint_errors();
    test_verify_args();
    test_expiry();
    test_payload();
    test_shape();
    test_length_limit();
    test_tamper();
    test_script_tokens();
    test_subject_and_strerror();
    test_fuzz_token();
    test_fuzz_payload();
    done_testing();
    return exit_status();
}
