/* util.c - allocation wrappers, growable buffers, random ids, clocks. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

/* Out of memory is not recoverable in either program: say so and stop. */
static void s_oom(size_t n)
{
    fprintf(stderr, "bayeux: out of memory (%zu bytes)\n", n);
    abort();
}

void *bx_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        s_oom(n);
    return p;
}

void *bx_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        s_oom(count * size);
    return p;
}

void *bx_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        s_oom(n);
    return q;
}

char *bx_strdup(const char *s)
{
    return bx_strndup(s, strlen(s));
}

char *bx_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = bx_malloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

/* ------------------------------------------------------------ buffers */

void bx_buf_init(bx_buf_t *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void bx_buf_reserve(bx_buf_t *b, size_t extra)
{
    /* +1 keeps room for the terminator. */
    if (extra > SIZE_MAX - b->len - 1)
        s_oom(SIZE_MAX);
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    b->data = bx_realloc(b->data, cap);
    b->cap = cap;
}

void bx_buf_append(bx_buf_t *b, const void *p, size_t n)
{
    bx_buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void bx_buf_puts(bx_buf_t *b, const char *s)
{
    bx_buf_append(b, s, strlen(s));
}

void bx_buf_putc(bx_buf_t *b, char c)
{
    /* The common case, room for c and the terminator, without a call. */
    if (b->len + 2 > b->cap)
        bx_buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void bx_buf_printf(bx_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        va_end(ap);
        return;
    }
    if ((size_t)n < sizeof tmp) {
        bx_buf_append(b, tmp, (size_t)n);
    } else {
        bx_buf_reserve(b, (size_t)n);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        b->len += (size_t)n;
    }
    va_end(ap);
}

void bx_buf_put_json_string(bx_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t run = 0;   /* start of the pending run of bytes copied as-is */

    bx_buf_reserve(b, n + 2);
    bx_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        const char *esc = NULL;
        char ubuf[7];
        size_t skip = 1;

        if (c == '"') {
            esc = "\\\"";
        } else if (c == '\\') {
            esc = "\\\\";
        } else if (c < 0x20) {
            switch (c) {
            case '\b': esc = "\\b"; break;
            case '\f': esc = "\\f"; break;
            case '\n': esc = "\\n"; break;
            case '\r': esc = "\\r"; break;
            case '\t': esc = "\\t"; break;
            default:
                memcpy(ubuf, "\\u00", 4);
                ubuf[4] = hex[c >> 4];
                ubuf[5] = hex[c & 15];
                ubuf[6] = '\0';
                esc = ubuf;
            }
        } else if (c == 0xE2 && i + 2 < n && p[i + 1] == 0x80 &&
                   (p[i + 2] == 0xA8 || p[i + 2] == 0xA9)) {
            /* U+2028/U+2029 are valid JSON but end a JavaScript line in
             * older engines: escaping them makes JSONP bodies safe. */
            esc = p[i + 2] == 0xA8 ? "\\u2028" : "\\u2029";
            skip = 3;
        }
        if (esc) {
            bx_buf_append(b, s + run, i - run);
            bx_buf_puts(b, esc);
            i += skip - 1;
            run = i + 1;
        }
    }
    bx_buf_append(b, s + run, n - run);
    bx_buf_putc(b, '"');
}

void bx_buf_reset(bx_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void bx_buf_free(bx_buf_t *b)
{
    free(b->data);
    bx_buf_init(b);
}

char *bx_buf_steal(bx_buf_t *b, size_t *len)
{
    char *p = b->data ? b->data : bx_strdup("");
    if (len)
        *len = b->len;
    bx_buf_init(b);
    return p;
}

/* ------------------------------------------------------------ random */

int bx_random_bytes(void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int bx_random_id(char *out, size_t nchars)
{
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    unsigned char pool[64];
    size_t have = 0, used = 0, i = 0;

    while (i < nchars) {
        if (used == have) {
            if (bx_random_bytes(pool, sizeof pool) < 0)
                return -1;
            have = sizeof pool;
            used = 0;
        }
        unsigned char r = pool[used++];
        /* 252 = 7 * 36: bytes at or above it would bias the first digits. */
        if (r >= 252)
            continue;
        out[i++] = alphabet[r % 36];
    }
    out[nchars] = '\0';
    return 0;
}

/* ------------------------------------------------------------ clocks */

static int64_t s_clock_us(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t bx_now_ms(void)
{
    return s_clock_us(CLOCK_MONOTONIC) / 1000;
}

int64_t bx_now_us(void)
{
    return s_clock_us(CLOCK_MONOTONIC);
}

int64_t bx_cpu_us(void)
{
    return s_clock_us(CLOCK_THREAD_CPUTIME_ID);
}

int64_t bx_wall_ms(void)
{
    return s_clock_us(CLOCK_REALTIME) / 1000;
}

/* ------------------------------------------------------------ parsing */

int bx_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!s || !*s)
        return -1;
    /* strtoll skips leading space and accepts "+": the whole string must be
     * the number, so refuse those up front. */
    if (!(*s == '-' || (*s >= '0' && *s <= '9')))
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0')
        return -1;
    if (v < min || v > max)
        return -1;
    *out = (int64_t)v;
    return 0;
}

int bx_parse_size(const char *s, int64_t max, int64_t *out)
{
    if (!s || !*s)
        return -1;
    size_t len = strlen(s);
    int shift = 0;
    switch (s[len - 1]) {
    case 'k': case 'K': shift = 10; break;
    case 'm': case 'M': shift = 20; break;
    case 'g': case 'G': shift = 30; break;
    default: break;
    }
    if (shift)
        len--;
    if (len == 0 || len > 30)
        return -1;
    char num[32];
    memcpy(num, s, len);
    num[len] = '\0';
    if (num[0] == '-')
        return -1;
    int64_t v;
    if (bx_parse_int64(num, 0, INT64_MAX, &v) < 0)
        return -1;
    if (v > (INT64_MAX >> shift))
        return -1;
    v <<= shift;
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

/* ------------------------------------------------------------ fds */

int bx_fd_nonblock(int fd, int on)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -1;
    fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
    if (fcntl(fd, F_SETFL, fl) < 0)
        return -1;
    int fdfl = fcntl(fd, F_GETFD);
    if (fdfl < 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0)
        return -1;
    return 0;
}

long bx_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    if (rl.rlim_cur != rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            return -1;
    }
    return rl.rlim_cur == RLIM_INFINITY ? (long)INT32_MAX : (long)rl.rlim_cur;
}

void bx_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int bx_mkdirs_for(const char *path, unsigned mode, char *err, size_t errlen)
{
    char *dir = bx_strdup(path);
    char *slash = strrchr(dir, '/');
    int ret = 0;

    if (slash && slash != dir) {
        *slash = '\0';
        for (char *p = dir + 1;; p++) {
            if (*p != '/' && *p != '\0')
                continue;
            char c = *p;
            *p = '\0';
            if (mkdir(dir, (mode_t)mode) != 0 && errno != EEXIST) {
                bx_errf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
                ret = -1;
                break;
            }
            *p = c;
            if (c == '\0')
                break;
        }
    }
    free(dir);
    return ret;
}

/* ------------------------------------------------------------ token bucket */

static double s_bucket_level(const bx_bucket_t *b, double rate, double burst, int64_t now)
{
    if (!b->started)
        return burst;
    double t = b->tokens + (double)(now - b->at) * rate / 1000.0;
    return t > burst ? burst : t;
}

int bx_bucket_take(bx_bucket_t *b, double rate, double burst, int64_t now_ms)
{
    b->tokens = s_bucket_level(b, rate, burst, now_ms);
    b->at = now_ms;
    b->started = 1;
    if (b->tokens < 1.0)
        return 0;
    b->tokens -= 1.0;
    return 1;
}

int bx_bucket_full(const bx_bucket_t *b, double rate, double burst, int64_t now_ms)
{
    return s_bucket_level(b, rate, burst, now_ms) >= burst;
}
