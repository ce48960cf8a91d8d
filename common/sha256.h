/* sha256.h - SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), plus two
 * helpers for handling secrets: a constant-time comparison and a wipe.
 *
 * Ours because the project links no crypto library (no OpenSSL); used by the
 * handshake tokens (token.h). Streaming: init, any number of updates of any
 * size, final. The context structs are public so they can live on the stack;
 * their fields are private to sha256.c. final wipes the context, so a context
 * is used once; init it again to reuse it.
 */
#ifndef BX_SHA256_H
#define BX_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define BX_SHA256_LEN   32   /* digest size in bytes */
#define BX_SHA256_BLOCK 64   /* block size in bytes (the HMAC key block) */

typedef struct {
    uint32_t h[8];                  /* chaining state H0..H7 */
    uint64_t nbytes;                /* message bytes hashed so far */
    uint8_t buf[BX_SHA256_BLOCK];   /* a partial block waiting for more input */
    size_t buflen;                  /* bytes used in buf, always < BX_SHA256_BLOCK */
} bx_sha256_t;

void bx_sha256_init(bx_sha256_t *c);
void bx_sha256_update(bx_sha256_t *c, const void *data, size_t len);
/* Writes the digest to out and wipes c. */
void bx_sha256_final(bx_sha256_t *c, uint8_t out[BX_SHA256_LEN]);
/* One shot: out = SHA-256(data). */
void bx_sha256(const void *data, size_t len, uint8_t out[BX_SHA256_LEN]);

typedef struct {
    bx_sha256_t inner;   /* H((K ^ ipad) || ...), fed by update */
    bx_sha256_t outer;   /* H((K ^ opad) || ...), waits for the inner digest */
} bx_hmac_sha256_t;

/* RFC 2104: a key longer than the block is hashed first; any length works,
 * including 0 (an empty key is legal HMAC but worthless as a secret). */
void bx_hmac_sha256_init(bx_hmac_sha256_t *c, const void *key, size_t keylen);
void bx_hmac_sha256_update(bx_hmac_sha256_t *c, const void *data, size_t len);
/* Writes the full 32-byte MAC to out and wipes c. */
void bx_hmac_sha256_final(bx_hmac_sha256_t *c, uint8_t out[BX_SHA256_LEN]);
/* One shot: out = HMAC-SHA256(key, data). */
void bx_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                    uint8_t out[BX_SHA256_LEN]);

/* Returns 1 if the n bytes at a and b are equal, else 0, in a time that
 * depends on n only (never on where the first difference is), so comparing a
 * received MAC with the expected one leaks nothing about the expected one. */
int bx_ct_equal(const void *a, const void *b, size_t n);

/* Zeroes n bytes at p in a way the compiler may not drop as a dead store;
 * for keys and key-derived state that must not linger on the stack. */
void bx_wipe(void *p, size_t n);

#endif
