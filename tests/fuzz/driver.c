/* driver.c - runs a fuzz target without libFuzzer, for "make check".
 *
 * Linked with one tests/fuzz/fuzz_*.c, which defines LLVMFuzzerTestOneInput.
 * It feeds the target every seed file, then BX_FUZZ_ITERATIONS (default
 * 20000) inputs made from the seeds by a fixed-seed PRNG with simple
 * mutations, so a run is repeatable and finds regressions in seconds; the
 * open-ended search is tests/fuzz/run-libfuzzer.sh (docs/fuzzing.md).
 *
 *   fuzz_batch [FILE|DIR]...   seeds; without arguments the seeds are read
 *                              from $BX_FUZZ_CORPUS/<target>, else from
 *                              $top_srcdir/tests/fuzz/corpus/<target>
 *                              (<target> is the program name minus "fuzz_")
 *   BX_FUZZ_ITERATIONS=N       mutated inputs to run after the seeds
 *   BX_FUZZ_SEED=N             another PRNG seed (default fixed)
 *
 * Output is TAP: "1..1" and "ok 1 - fuzz_batch: N inputs". A target reports
 * a failure by crashing (abort, sanitizer): the input that did it is written
 * to ./crash-<program>-<iteration> so it can be replayed as an argument.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"

/* Sanitizer runtimes call this on a report before they exit; absent (NULL)
 * in a build without sanitizers. */
extern void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

#define FUZZ_MAX_INPUT 4096     /* longest generated input, bytes */
#define MAX_SEEDS 4096

typedef struct {
    uint8_t *data;         /* owned */
    size_t len;
} seed_t;

static seed_t g_seeds[MAX_SEEDS];
static size_t g_nseeds;
static uint64_t g_rng;

/* The input being run, for the crash handler. */
static const uint8_t *g_cur;
static size_t g_cur_len;
static char g_crash_path[256];

/* Tokens the targets care about: JSON syntax, Bayeux fields and channels,
 * form and cookie syntax, UTF-8 edge cases, numbers at type limits. */
static const char *const g_dict[] = {
    "{", "}", "[", "]", ",", ":", "\"", "\\", "\\u0000", "\\ud800", "\\udc00",
    "\\u2028", "null", "true", "false", "0", "-1", "1.5", "1e400", "-0",
    "9223372036854775807", "18446744073709551616", "-9223372036854775809",
    "\"channel\":", "\"clientId\":", "\"id\":", "\"data\":", "\"advice\":",
    "\"timeout\":", "\"subscription\":", "\"ext\":", "\"successful\":",
    "\"connectionType\":\"long-polling\"", "\"version\":\"1.0\"",
    "\"/meta/handshake\"", "\"/meta/connect\"", "\"/meta/subscribe\"",
    "\"/meta/unsubscribe\"", "\"/meta/disconnect\"", "\"/chat/a\"",
    "\"/service/x\"", "\"/**\"", "\"/a/*\"", "/meta/", "/service/", "/*", "/**",
    "//", "/a", "*", "&", "=", "%", "%2", "%00", "%zz", "+", "message=",
    "jsonp=", ";", "; ", "BAYEUX_BROWSER=", "\r\n", "\n", "\t", " ",
    "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x80\xa8", "\xef\xbb\xbf",
    "\xff", "\x80",
};

static uint64_t s_rand(void)
{
    /* splitmix64: fast, and the whole run follows from one seed. */
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static size_t s_below(size_t n)
{
    return n ? (size_t)(s_rand() % n) : 0;
}

static void s_on_crash(void)
{
    /* Async-signal-safe only: open, write, close. */
    if (!g_cur || !g_crash_path[0])
        return;
    int fd = open(g_crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return;
    size_t off = 0;
    while (off < g_cur_len) {
        ssize_t n = write(fd, g_cur + off, g_cur_len - off);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    close(fd);
    static const char msg[] = "fuzz driver: input that failed written to ";
    ssize_t rc = write(2, msg, sizeof msg - 1);
    rc = write(2, g_crash_path, strlen(g_crash_path));
    rc = write(2, "\n", 1);
    (void)rc;
}

static void s_signal(int sig)
{
    s_on_crash();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void s_add_seed(const uint8_t *data, size_t len)
{
    if (g_nseeds == MAX_SEEDS)
        return;
    seed_t *s = &g_seeds[g_nseeds++];
    s->data = malloc(len ? len : 1);
    if (!s->data)
        abort();
    memcpy(s->data, data, len);
    s->len = len;
}

static int s_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t buf[FUZZ_MAX_INPUT];
    size_t n;

    if (!f)
        return -1;
    n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    s_add_seed(buf, n);
    return 0;
}

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads every regular file of dir, in name order so runs repeat. */
static int s_read_dir(const char *dir)
{
    DIR *d = opendir(dir);
    char *names[MAX_SEEDS];
    size_t n = 0;
    struct dirent *de;

    if (!d)
        return -1;
    while ((de = readdir(d)) != NULL && n < MAX_SEEDS) {
        if (de->d_name[0] == '.')
            continue;
        names[n] = strdup(de->d_name);
        if (!names[n])
            abort();
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, s_cmp_str);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            s_read_file(path);
        free(names[i]);
    }
    return 0;
}

static int s_read_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return -1;
    return S_ISDIR(st.st_mode) ? s_read_dir(path) : s_read_file(path);
}

/* ---- mutations on buf[0..*len), capacity FUZZ_MAX_INPUT ---- */

static void s_insert(uint8_t *buf, size_t *len, size_t pos, const uint8_t *p, size_t n)
{
    if (*len + n > FUZZ_MAX_INPUT)
        n = FUZZ_MAX_INPUT - *len;
    if (n == 0)
        return;
    memmove(buf + pos + n, buf + pos, *len - pos);
    memcpy(buf + pos, p, n);
    *len += n;
}

static void s_mutate_once(uint8_t *buf, size_t *len)
{
    static const uint8_t interesting[] = { 0, 0x01, 0x7f, 0x80, 0xff, '"', '\\', '/',
                                           '\n', '0', '9', '[', '{' };
    size_t pos = s_below(*len + 1);
    uint8_t tmp[16];

    switch (s_below(9)) {
    case 0:   /* flip a bit */
        if (*len)
            buf[s_below(*len)] ^= (uint8_t)(1u << s_below(8));
        break;
    case 1:   /* an interesting byte */
        if (*len)
            buf[s_below(*len)] = interesting[s_below(sizeof interesting)];
        break;
    case 2: { /* a few random bytes */
        size_t n = 1 + s_below(8);
        for (size_t i = 0; i < n; i++)
            tmp[i] = (uint8_t)s_rand();
        s_insert(buf, len, pos, tmp, n);
        break;
    }
    case 3: { /* delete a range */
        if (!*len)
            break;
        size_t start = s_below(*len);
        size_t n = 1 + s_below(*len - start < 32 ? *len - start : 32);
        memmove(buf + start, buf + start + n, *len - start - n);
        *len -= n;
        break;
    }
    case 4: { /* duplicate a range elsewhere */
        if (!*len)
            break;
        size_t start = s_below(*len);
        size_t n = 1 + s_below(*len - start < 64 ? *len - start : 64);
        uint8_t chunk[64];
        memcpy(chunk, buf + start, n);
        s_insert(buf, len, pos, chunk, n);
        break;
    }
    case 5: { /* splice in part of another seed */
        if (!g_nseeds)
            break;
        const seed_t *o = &g_seeds[s_below(g_nseeds)];
        if (!o->len)
            break;
        size_t start = s_below(o->len);
        size_t n = 1 + s_below(o->len - start);
        if (s_below(2)) {
            *len = pos;   /* replace the tail */
            s_insert(buf, len, pos, o->data + start, n);
        } else {
            s_insert(buf, len, pos, o->data + start, n);
        }
        break;
    }
    case 6:
    case 7: { /* a dictionary token */
        const char *t = g_dict[s_below(sizeof g_dict / sizeof *g_dict)];
        s_insert(buf, len, pos, (const uint8_t *)t, strlen(t));
        break;
    }
    default:  /* truncate */
        *len = pos;
        break;
    }
}

static size_t s_make_input(uint8_t *buf)
{
    size_t len = 0;
    if (g_nseeds && s_below(16)) {
        const seed_t *s = &g_seeds[s_below(g_nseeds)];
        len = s->len;
        memcpy(buf, s->data, len);
    }
    /* Mostly few mutations, sometimes many: small steps stay near the
     * valid inputs the seeds describe, big ones reach odd corners. */
    size_t n = 1 + s_below(4);
    if (!s_below(8))
        n += s_below(32);
    for (size_t i = 0; i < n; i++)
        s_mutate_once(buf, &len);
    return len;
}

/* Runs one input from an allocation of exactly its size, so a sanitizer
 * catches a read past the end. */
static void s_run(const uint8_t *data, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        abort();
    memcpy(copy, data, len);
    g_cur = copy;
    g_cur_len = len;
    LLVMFuzzerTestOneInput(copy, len);
    g_cur = NULL;
    free(copy);
}

static const char *s_target_name(const char *argv0)
{
    const char *base = strrchr(argv0, '/');
    base = base ? base + 1 : argv0;
    if (strncmp(base, "lt-", 3) == 0)
        base += 3;
    return base;
}

static void s_default_corpus(const char *prog)
{
    const char *target = strncmp(prog, "fuzz_", 5) == 0 ? prog + 5 : prog;
    const char *root = getenv("BX_FUZZ_CORPUS");
    const char *src = getenv("top_srcdir");
    char path[4096];

    if (root && *root)
        snprintf(path, sizeof path, "%s/%s", root, target);
    else if (src && *src)
        snprintf(path, sizeof path, "%s/tests/fuzz/corpus/%s", src, target);
    else
        snprintf(path, sizeof path, "tests/fuzz/corpus/%s", target);
    if (s_read_dir(path) < 0)
        printf("# no seed corpus at %s: random inputs only\n", path);
}

int main(int argc, char **argv)
{
    const char *prog = s_target_name(argv[0]);
    const char *it = getenv("BX_FUZZ_ITERATIONS");
    const char *seed = getenv("BX_FUZZ_SEED");
    long iterations = it && *it ? strtol(it, NULL, 10) : 20000;
    static uint8_t buf[FUZZ_MAX_INPUT];
    struct timespec t0, t1;
    size_t runs = 0;

    g_rng = seed && *seed ? strtoull(seed, NULL, 0) : 0x62617965757846ULL;
    signal(SIGABRT, s_signal);
    signal(SIGSEGV, s_signal);
    signal(SIGBUS, s_signal);
    signal(SIGFPE, s_signal);
    signal(SIGILL, s_signal);
    if (__sanitizer_set_death_callback)
        __sanitizer_set_death_callback(s_on_crash);

    printf("1..1\n");
    fflush(stdout);
    for (int i = 1; i < argc; i++) {
        if (s_read_path(argv[i]) < 0) {
            printf("not ok 1 - %s: cannot read %s: %s\n", prog, argv[i], strerror(errno));
            return 1;
        }
    }
    if (argc < 2)
        s_default_corpus(prog);

    clock_gettime(CLOCK_MONOTONIC, &t0);
    snprintf(g_crash_path, sizeof g_crash_path, "crash-%s-seed", prog);
    for (size_t i = 0; i < g_nseeds; i++, runs++)
        s_run(g_seeds[i].data, g_seeds[i].len);
    for (long i = 0; i < iterations; i++, runs++) {
        size_t len = s_make_input(buf);
        snprintf(g_crash_path, sizeof g_crash_path, "crash-%s-%ld", prog, i);
        s_run(buf, len);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);

    printf("# %zu seeds, %ld mutated inputs in %.2f s\n", g_nseeds, iterations,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    printf("ok 1 - %s: %zu inputs\n", prog, runs);
    for (size_t i = 0; i < g_nseeds; i++)
        free(g_seeds[i].data);
    return 0;
}
