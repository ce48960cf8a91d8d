/* util.h - allocation wrappers, growable buffers, random ids, clocks.
 *
 * Out of memory aborts here, in one place, so callers never test malloc.
 */
#ifndef BX_UTIL_H
#define BX_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

/* Allocation: never return NULL; abort with a message on exhaustion. */
void *bx_malloc(size_t n);
void *bx_calloc(size_t count, size_t size);
void *bx_realloc(void *p, size_t n);
char *bx_strdup(const char *s);
char *bx_strndup(const char *s, size_t n);

/* Growable byte buffer. Always NUL-terminated after the first append so
 * data can be used as a C string; len excludes the terminator.
 * The struct is public so it can live inside other structs. */
typedef struct {
    char *data;   /* owned; NULL until the first append */
    size_t len;   /* bytes used, excluding the NUL terminator */
    size_t cap;   /* bytes allocated */
} bx_buf_t;

void bx_buf_init(bx_buf_t *b);
void bx_buf_reserve(bx_buf_t *b, size_t extra);
void bx_buf_append(bx_buf_t *b, const void *p, size_t n);
void bx_buf_puts(bx_buf_t *b, const char *s);
void bx_buf_putc(bx_buf_t *b, char c);
/* Creates the directories above the file path (mkdir -p of its dirname),
 * new ones with mode. Returns 0, or -1 with a message in err. */
int bx_mkdirs_for(const char *path, unsigned mode, char *err, size_t errlen);

/* Formats an error message into err (errlen bytes); does nothing if err is
 * NULL or errlen 0. For functions that report "-1 with a message in err". */
void bx_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

void bx_buf_printf(bx_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal, quotes included, escaping as RFC 8259
 * requires (and U+2028/U+2029 so the result is safe inside JSONP). */
void bx_buf_put_json_string(bx_buf_t *b, const char *s, size_t n);
/* Forgets the contents but keeps the allocation. */
void bx_buf_reset(bx_buf_t *b);
/* Frees the allocation; the buffer is empty and reusable afterwards. */
void bx_buf_free(bx_buf_t *b);
/* Hands the data over to the caller (who frees it) and empties the buffer.
 * Never NULL: an empty buffer yields "". */
char *bx_buf_steal(bx_buf_t *b, size_t *len);

/* Fills buf with len bytes from the kernel CSPRNG (getrandom). Returns 0, or
 * -1 if the kernel refused (the caller must not fall back to a weak source). */
int bx_random_bytes(void *buf, size_t len);

/* Writes a random identifier of exactly nchars characters from [0-9a-z] plus a
 * NUL into out (out holds nchars + 1 bytes). Each character carries log2(36)
 * bits: 26 characters carry 134 bits. Returns 0 or -1 (see bx_random_bytes). */
int bx_random_id(char *out, size_t nchars);

/* A token bucket: rate tokens a second, at most burst kept. Zeroed, it is
 * full at its first use. */
typedef struct {
    double tokens;      /* tokens left at `at` */
    int64_t at;         /* when they were counted (ms) */
    int started;        /* used before */
} bx_bucket_t;

/* Refills b for the time since its last use and takes one token. Returns 1
 * if there was one, 0 if the bucket is empty (nothing taken). */
int bx_bucket_take(bx_bucket_t *b, double rate, double burst, int64_t now_ms);

/* True if b is full again at now_ms: forgetting it changes nothing. */
int bx_bucket_full(const bx_bucket_t *b, double rate, double burst, int64_t now_ms);

/* Milliseconds on CLOCK_MONOTONIC (for timeouts) and CLOCK_REALTIME (for
 * timestamps shown to people or clients); microseconds on CLOCK_MONOTONIC
 * (for measuring). */
int64_t bx_now_ms(void);
int64_t bx_now_us(void);
/* Microseconds of CPU the calling thread has used. */
int64_t bx_cpu_us(void);
int64_t bx_wall_ms(void);

/* Parses a decimal integer in [min, max] from the whole of s. Returns 0 and
 * stores it in *out, or -1 (nothing stored) on junk, overflow or range. */
int bx_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);

/* Parses a size such as "65536", "64k", "1M" (binary units) into bytes.
 * Returns 0 or -1 like bx_parse_int64. */
int bx_parse_size(const char *s, int64_t max, int64_t *out);

/* Puts fd in non-blocking (on != 0) or blocking mode; sets FD_CLOEXEC.
 * Returns 0 or -1 with errno set. */
int bx_fd_nonblock(int fd, int on);

/* Raises RLIMIT_NOFILE's soft limit to the hard limit. Returns the new soft
 * limit, or -1 with errno set. */
long bx_raise_nofile(void);

#endif
