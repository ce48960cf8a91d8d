/* token.h - handshake tokens: a subject and an expiry signed with HMAC-SHA256.
 *
 * An application that has authenticated a user mints a token with a secret it
 * shares with bayeuxd; the browser sends it in the handshake's ext; bayeuxd
 * verifies it and binds the subject to the session, so channel templates such
 * as /user/{id} can name it. The format is meant to be minted in a few lines
 * of any language with a standard library (docs/security.md has Python and
 * PHP):
 *
 *   token   = "v1." payload "." sig
 *   payload = base64url(JSON object)       e.g. {"sub":"alice","exp":1767225600}
 *   sig     = base64url(HMAC-SHA256(secret, "v1." payload))
 *
 * - base64url is RFC 4648 §5 (A-Z a-z 0-9 - _) without "=" padding; the
 *   decoder is strict: padding, other characters, a length of 1 mod 4 and
 *   non-zero unused trailing bits are all rejected, so every token has exactly
 *   one spelling. sig is therefore always 43 characters.
 * - The MAC covers the payload's base64url text exactly as sent, so minters
 *   may serialise the JSON any way they like (key order, spacing).
 * - "sub" (required): a string of 1..BX_TOKEN_SUBJECT_MAX bytes, each from the
 *   channel segment set [A-Za-z0-9-_!~()$@.] (channel.h), so it can be put in
 *   a channel name as it is.
 * - "exp" (required): an integer, Unix seconds; the token is valid while
 *   now < exp and expired from exp on (no leeway: it is the minter's deadline).
 * - "iat" (optional): an integer, Unix seconds; a token whose iat is more than
 *   BX_TOKEN_LEEWAY seconds in the future is not yet valid (clock skew between
 *   the minting host and bayeuxd is tolerated up to the leeway).
 * - Times are integers in [0, BX_TOKEN_TIME_MAX]; floats, strings and
 *   negative numbers are malformed, and so is an "iat" that is present but not
 *   such an integer (null included). Other fields are ignored (nesting up to
 *   16 levels); with a duplicated key the last one counts (json-c and
 *   Python's json agree). The payload must be a JSON object (RFC 8259, strict:
 *   no trailing commas, no NUL bytes, no raw control characters in strings,
 *   only whitespace after it).
 * - Nothing in the payload is parsed before the MAC has been checked.
 */
#ifndef BX_TOKEN_H
#define BX_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define BX_TOKEN_MAX          2048            /* longest token accepted, in bytes */
#define BX_TOKEN_SUBJECT_MAX  128             /* longest subject, in bytes */
#define BX_TOKEN_LEEWAY       60              /* seconds an iat may lie in the future */
#define BX_TOKEN_TIME_MAX     253402300799LL  /* 9999-12-31T23:59:59Z */
/* An out buffer this big always holds a token bx_token_mint makes, with its NUL. */
#define BX_TOKEN_MINT_MAX     320

typedef enum {
    BX_TOKEN_OK = 0,
    BX_TOKEN_EINVAL = -1,          /* caller's mistake: NULL, empty secret, out too small */
    BX_TOKEN_MALFORMED = -2,       /* not the format above (checked before the MAC for
                                    * the outer shape, after it for the payload) */
    BX_TOKEN_BAD_SIGNATURE = -3,   /* MAC mismatch: tampered, or another secret */
    BX_TOKEN_EXPIRED = -4,         /* now >= exp */
    BX_TOKEN_NOT_YET_VALID = -5,   /* iat > now + BX_TOKEN_LEEWAY */
    BX_TOKEN_BAD_SUBJECT = -6      /* sub empty, too long, or not a channel segment */
} bx_token_err_t;

/* Writes a token for subject, expiring at exp (Unix seconds), as a NUL-
 * terminated string into out (outlen bytes; BX_TOKEN_MINT_MAX always
 * suffices). The payload is {"sub":subject,"exp":exp}. Returns BX_TOKEN_OK,
 * BX_TOKEN_BAD_SUBJECT if subject could not be verified later, or
 * BX_TOKEN_EINVAL (empty secret, exp out of range, out too small); on error
 * out holds "" if outlen > 0. */
int bx_token_mint(const void *secret, size_t secretlen, const char *subject, int64_t exp,
                  char *out, size_t outlen);

/* Verifies the NUL-terminated token at now_s (Unix seconds) against secret.
 * On BX_TOKEN_OK copies the subject, NUL-terminated, into subject_out (which
 * must hold BX_TOKEN_SUBJECT_MAX + 1 bytes; may be NULL with subject_outlen 0)
 * and stores exp in *exp_out (may be NULL). On any error stores nothing but
 * "" in subject_out. Returns a bx_token_err_t; the checks run in this order:
 * shape and length (MALFORMED), MAC (BAD_SIGNATURE), payload (MALFORMED),
 * subject (BAD_SUBJECT), exp (EXPIRED), iat (NOT_YET_VALID). The MAC is
 * compared in constant time. */
int bx_token_verify(const void *secret, size_t secretlen, const char *token, int64_t now_s,
                    char *subject_out, size_t subject_outlen, int64_t *exp_out);

/* A short English description of a bx_token_err_t, for logs; never NULL. */
const char *bx_token_strerror(int err);

/* Writes the unpadded base64url of data (n bytes) to out, which must hold
 * (n + 2) / 3 * 4 bytes; no NUL. Returns the characters written. */
size_t bx_b64url_encode(const void *data, size_t n, char *out);

/* The shared key from the config: inline (auth-secret) or a file
 * (auth-secret-file, whose trailing CR and LF bytes are not part of it); at
 * most one of them may be non-empty. Writes it into buf (buflen bytes) and
 * its length into *len (0 when neither is given). Returns 0, or -1 with a
 * message in err. */
int bx_token_secret_load(const char *inline_secret, const char *file, char *buf,
                         size_t buflen, size_t *len, char *err, size_t errlen);

/* True if s (len bytes) is a valid token subject (see above). */
int bx_token_subject_ok(const char *s, size_t len);

#endif
