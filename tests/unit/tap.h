/* tap.h - a tiny header-only TAP producer for the C unit tests.
 *
 *   plan(n);                   or call done_testing() at the end instead
 *   ok(cond, "name %d", i);
 *   is_int(got, want, "name");
 *   is_str(got, want, "name"); NULL-safe
 *   diag("note %s", x);        a "# ..." line
 *   return exit_status();      0 if every test passed (and the plan held)
 *
 * Everything goes to stdout (the TAP stream); diagnostics are lines starting
 * with '#', so automake's tap-driver.sh shows them. All state is static, one
 * copy per test program.
 */
#ifndef BX_TAP_H
#define BX_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_run_;       /* tests run so far */
static int tap_failed_;    /* tests that failed */
static int tap_planned_ = -1;

static inline void plan(int n)
{
    tap_planned_ = n;
    printf("1..%d\n", n);
    fflush(stdout);
}

static inline void done_testing(void)
{
    if (tap_planned_ < 0) {
        tap_planned_ = tap_run_;
        printf("1..%d\n", tap_run_);
        fflush(stdout);
    }
}

static inline void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void diag(const char *fmt, ...)
{
    va_list ap;
    fputs("# ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

static inline int tap_vok_(int cond, const char *fmt, va_list ap)
{
    tap_run_++;
    if (!cond)
        tap_failed_++;
    printf("%sok %d - ", cond ? "" : "not ", tap_run_);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    return cond;
}

static inline int ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int ok(int cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = tap_vok_(cond, fmt, ap);
    va_end(ap);
    return r;
}

static inline int is_int(long long got, long long want, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline int is_int(long long got, long long want, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = tap_vok_(got == want, fmt, ap);
    va_end(ap);
    if (!r) {
        diag("     got: %lld", got);
        diag("expected: %lld", want);
    }
    return r;
}

static inline int is_str(const char *got, const char *want, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline int is_str(const char *got, const char *want, const char *fmt, ...)
{
    int same = (got == NULL || want == NULL) ? got == want : strcmp(got, want) == 0;
    va_list ap;
    va_start(ap, fmt);
    int r = tap_vok_(same, fmt, ap);
    va_end(ap);
    if (!r) {
        diag("     got: %s%s%s", got ? "'" : "", got ? got : "NULL", got ? "'" : "");
        diag("expected: %s%s%s", want ? "'" : "", want ? want : "NULL", want ? "'" : "");
    }
    return r;
}

/* 0 if every test passed and as many ran as planned, else 1. */
static inline int exit_status(void)
{
    if (tap_planned_ >= 0 && tap_planned_ != tap_run_) {
        diag("planned %d tests but ran %d", tap_planned_, tap_run_);
        return 1;
    }
    return tap_failed_ ? 1 : 0;
}

#endif
