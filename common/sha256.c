/* sha256.c - SHA-256 (FIPS 180-4 §6.2), HMAC-SHA256 (RFC 2104), constant-time
 * comparison and wiping. Portable C: bytes are assembled big-endian by hand,
 * so the host's endianness and alignment do not matter. */
#include "sha256.h"

#include <string.h>

/* FIPS 180-4 §4.2.2: the first 32 bits of the fractional parts of the cube
 * roots of the first 64 primes. */
static const uint32_t s_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2
};

static uint32_t s_rotr(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

/* FIPS 180-4 §6.2.2: one 64-byte block into the chaining state. */
static void s_block(uint32_t h[8], const uint8_t *p)
{
    uint32_t w[64];
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 |
               (uint32_t)p[4 * t + 2] << 8 | (uint32_t)p[4 * t + 3];
    for (int t = 16; t < 64; t++) {
        uint32_t s0 = s_rotr(w[t - 15], 7) ^ s_rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = s_rotr(w[t - 2], 17) ^ s_rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }

    uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
    uint32_t e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int t = 0; t < 64; t++) {
        uint32_t S1 = s_rotr(e, 6) ^ s_rotr(e, 11) ^ s_rotr(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = hh + S1 + ch + s_k[t] + w[t];
        uint32_t S0 = s_rotr(a, 2) ^ s_rotr(a, 13) ^ s_rotr(a, 22);
        uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = S0 + maj;
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
    /* The schedule is derived from the message, which may be a key block. */
    bx_wipe(w, sizeof w);
}

void bx_sha256_init(bx_sha256_t *c)
{
    /* FIPS 180-4 §5.3.3: fractional parts of the square roots of the first 8 primes. */
    static const uint32_t h0[8] = {
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
    };
    memcpy(c->h, h0, sizeof h0);
    c->nbytes = 0;
    c->buflen = 0;
}

void bx_sha256_update(bx_sha256_t *c, const void *data, size_t len)
{
    const uint8_t *p = data;

    c->nbytes += len;
    if (c->buflen > 0) {
        size_t take = BX_SHA256_BLOCK - c->buflen;
        if (take > len)
            take = len;
        memcpy(c->buf + c->buflen, p, take);
        c->buflen += take;
        p += take;
        len -= take;
        if (c->buflen < BX_SHA256_BLOCK)
            return;
        s_block(c->h, c->buf);
        c->buflen = 0;
    }
    for (; len >= BX_SHA256_BLOCK; p += BX_SHA256_BLOCK, len -= BX_SHA256_BLOCK)
        s_block(c->h, p);
    if (len > 0) {
        memcpy(c->buf, p, len);
        c->buflen = len;
    }
}

void bx_sha256_final(bx_sha256_t *c, uint8_t out[BX_SHA256_LEN])
{
    /* FIPS 180-4 §5.1.1: a 1 bit, zeros to 56 mod 64 bytes, the bit length
     * as a 64-bit big-endian number. */
    uint64_t bits = c->nbytes * 8;
    uint8_t pad[BX_SHA256_BLOCK + 8] = { 0x80 };
    size_t padlen = (c->buflen < 56 ? 56 : 120) - c->buflen;
    for (int i = 0; i < 8; i++)
        pad[padlen + i] = (uint8_t)(bits >> (56 - 8 * i));
    bx_sha256_update(c, pad, padlen + 8);

    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
    bx_wipe(c, sizeof *c);
}

void bx_sha256(const void *data, size_t len, uint8_t out[BX_SHA256_LEN])
{
    bx_sha256_t c;
    bx_sha256_init(&c);
    bx_sha256_update(&c, data, len);
    bx_sha256_final(&c, out);
}

void bx_hmac_sha256_init(bx_hmac_sha256_t *c, const void *key, size_t keylen)
{
    /* RFC 2104 §2: K is the key zero-padded to the block, or H(key) if longer. */
    uint8_t k[BX_SHA256_BLOCK] = { 0 };
    uint8_t pad[BX_SHA256_BLOCK];

    if (keylen > BX_SHA256_BLOCK)
        bx_sha256(key, keylen, k);
    else if (keylen > 0)
        memcpy(k, key, keylen);

    for (int i = 0; i < BX_SHA256_BLOCK; i++)
        pad[i] = k[i] ^ 0x36;
    bx_sha256_init(&c->inner);
    bx_sha256_update(&c->inner, pad, sizeof pad);
    for (int i = 0; i < BX_SHA256_BLOCK; i++)
        pad[i] = k[i] ^ 0x5c;
    bx_sha256_init(&c->outer);
    bx_sha256_update(&c->outer, pad, sizeof pad);

    bx_wipe(k, sizeof k);
    bx_wipe(pad, sizeof pad);
}

void bx_hmac_sha256_update(bx_hmac_sha256_t *c, const void *data, size_t len)
{
    bx_sha256_update(&c->inner, data, len);
}

void bx_hmac_sha256_final(bx_hmac_sha256_t *c, uint8_t out[BX_SHA256_LEN])
{
    uint8_t ih[BX_SHA256_LEN];
    bx_sha256_final(&c->inner, ih);
    bx_sha256_update(&c->outer, ih, sizeof ih);
    bx_sha256_final(&c->outer, out);
    bx_wipe(ih, sizeof ih);
}

void bx_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                    uint8_t out[BX_SHA256_LEN])
{
    bx_hmac_sha256_t c;
    bx_hmac_sha256_init(&c, key, keylen);
    bx_hmac_sha256_update(&c, data, len);
    bx_hmac_sha256_final(&c, out);
}

int bx_ct_equal(const void *a, const void *b, size_t n)
{
    /* Accumulate every difference; no branch depends on the data. The
     * volatile reads keep the compiler from turning this into memcmp. */
    const volatile uint8_t *x = a;
    const volatile uint8_t *y = b;
    uint8_t d = 0;
    for (size_t i = 0; i < n; i++)
        d |= x[i] ^ y[i];
    return d == 0;
}

void bx_wipe(void *p, size_t n)
{
    /* Stores through a volatile pointer are observable behaviour, so they are
     * not removed even when p is about to go out of scope. */
    volatile uint8_t *v = p;
    while (n--)
        *v++ = 0;
}
