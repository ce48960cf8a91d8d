/* test_util.c - buffers, JSON string escaping, random ids, number parsing. */
#include "util.h"
#include "log.h"
#include "tap.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static void test_buf(void)
{
    bx_buf_t b;
    bx_buf_init(&b);
    ok(b.data == NULL && b.len == 0, "new buffer is empty and unallocated");
    bx_buf_puts(&b, "hello");
    bx_buf_putc(&b, ' ');
    bx_buf_append(&b, "worldXXX", 5);
    is_str(b.data, "hello world", "append, puts, putc");
    is_int((long long)b.len, 11, "len excludes the terminator");
    bx_buf_printf(&b, " %d-%s", 42, "x");
    is_str(b.data, "hello world 42-x", "printf appends");

    /* A printf longer than any internal scratch space. */
    char big[1000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    bx_buf_reset(&b);
    is_str(b.data, "", "reset empties but keeps a terminated string");
    bx_buf_printf(&b, "<%s>", big);
    is_int((long long)b.len, 1001, "long printf length");
    ok(b.data[0] == '<' && b.data[1000] == '>' && b.data[1001] == '\0', "long printf content");

    size_t len = 0;
    char *s = bx_buf_steal(&b, &len);
    is_int((long long)len, 1001, "steal returns the length");
    ok(b.data == NULL && b.len == 0, "steal empties the buffer");
    free(s);
    s = bx_buf_steal(&b, &len);
    is_str(s, "", "steal of an empty buffer yields \"\"");
    is_int((long long)len, 0, "steal of an empty buffer: length 0");
    free(s);

    for (int i = 0; i < 10000; i++)
        bx_buf_putc(&b, (char)('0' + i % 10));
    ok(b.len == 10000 && b.data[9999] == '9' && b.data[10000] == '\0', "growth");
    bx_buf_free(&b);
    ok(b.data == NULL && b.len == 0 && b.cap == 0, "free leaves an empty buffer");
    bx_buf_free(&b);
}

static const struct {
    const char *in;
    size_t len;
    const char *want;
} json_cases[] = {
    { "", 0, "\"\"" },
    { "plain", 5, "\"plain\"" },
    { "a\"b\\c", 5, "\"a\\\"b\\\\c\"" },
    { "\n\r\t\b\f", 5, "\"\\n\\r\\t\\b\\f\"" },
    { "\x01\x1f", 2, "\"\\u0001\\u001f\"" },
    { "a\0b", 3, "\"a\\u0000b\"" },
    { "/</script>", 10, "\"/</script>\"" },
    { "\xc3\xa9t\xc3\xa9", 5, "\"\xc3\xa9t\xc3\xa9\"" },
    { "x\xe2\x80\xa8y\xe2\x80\xa9z", 9, "\"x\\u2028y\\u2029z\"" },
    { "\xe2\x80\xaa", 3, "\"\xe2\x80\xaa\"" },
    { "\xe2\x80", 2, "\"\xe2\x80\"" },
    { "\xf0\x9f\x98\x80", 4, "\"\xf0\x9f\x98\x80\"" },
    { "\x7f", 1, "\"\x7f\"" },
};

static void test_json_string(void)
{
    for (size_t i = 0; i < sizeof json_cases / sizeof json_cases[0]; i++) {
        bx_buf_t b;
        bx_buf_init(&b);
        bx_buf_puts(&b, "");
        bx_buf_put_json_string(&b, json_cases[i].in, json_cases[i].len);
        is_str(b.data, json_cases[i].want, "json string case %zu", i);
        bx_buf_free(&b);
    }
}

static int s_charset_ok(const char *s)
{
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z')))
            return 0;
    return 1;
}

static void test_random(void)
{
    unsigned char a[64], b[64];
    is_int(bx_random_bytes(a, sizeof a), 0, "random_bytes");
    is_int(bx_random_bytes(b, sizeof b), 0, "random_bytes again");
    ok(memcmp(a, b, sizeof a) != 0, "two draws differ");
    is_int(bx_random_bytes(a, 0), 0, "zero bytes is fine");

    char id[200];
    memset(id, 'X', sizeof id);
    is_int(bx_random_id(id, 26), 0, "random_id");
    is_int((long long)strlen(id), 26, "random_id length");
    ok(s_charset_ok(id), "random_id charset: %s", id);
    is_int(bx_random_id(id, 0), 0, "random_id of 0 chars");
    is_str(id, "", "random_id of 0 chars is empty");

    /* Every character of the alphabet turns up and none dominates: 36,000
     * characters, 1000 expected each; a modulo bias (256 % 36 = 4) would put
     * the first four at about 1110. */
    int count[36] = { 0 };
    int all_ok = 1;
    for (int k = 0; k < 180; k++) {
        if (bx_random_id(id, 199) < 0 || strlen(id) != 199 || !s_charset_ok(id))
            all_ok = 0;
        for (const char *p = id; *p; p++)
            count[*p <= '9' ? *p - '0' : *p - 'a' + 10]++;
    }
    ok(all_ok, "180 ids of 199 characters");
    int min = count[0], max = count[0];
    for (int i = 1; i < 36; i++) {
        if (count[i] < min)
            min = count[i];
        if (count[i] > max)
            max = count[i];
    }
    /* With n = 35,820 and p = 1/36 the sd is ~31: 850..1150 is > 4.5 sd. */
    ok(min > 840 && max < 1160, "random_id distribution min %d max %d", min, max);

    char a1[27], a2[27];
    bx_random_id(a1, 26);
    bx_random_id(a2, 26);
    ok(strcmp(a1, a2) != 0, "two ids differ");
}

static void test_clocks(void)
{
    int64_t m1 = bx_now_ms();
    int64_t w = bx_wall_ms();
    usleep(20000);
    int64_t m2 = bx_now_ms();
    ok(m2 - m1 >= 15 && m2 - m1 < 5000, "monotonic clock advances (%lld ms)",
       (long long)(m2 - m1));
    ok(w > 1600000000000LL, "wall clock is epoch milliseconds");
}

static const struct {
    const char *s;
    int64_t min, max;
    int rc;
    int64_t want;
} int_cases[] = {
    { "0", 0, 10, 0, 0 },
    { "10", 0, 10, 0, 10 },
    { "11", 0, 10, -1, 0 },
    { "-1", 0, 10, -1, 0 },
    { "-5", -10, 10, 0, -5 },
    { "", 0, 10, -1, 0 },
    { " 5", 0, 10, -1, 0 },
    { "5 ", 0, 10, -1, 0 },
    { "+5", 0, 10, -1, 0 },
    { "5x", 0, 10, -1, 0 },
    { "0x10", 0, 100, -1, 0 },
    { "9223372036854775807", 0, INT64_MAX, 0, INT64_MAX },
    { "9223372036854775808", 0, INT64_MAX, -1, 0 },
    { "-9223372036854775808", INT64_MIN, 0, 0, INT64_MIN },
};

static const struct {
    const char *s;
    int64_t max;
    int rc;
    int64_t want;
} size_cases[] = {
    { "65536", INT64_MAX, 0, 65536 },
    { "64k", INT64_MAX, 0, 65536 },
    { "64K", INT64_MAX, 0, 65536 },
    { "1m", INT64_MAX, 0, 1048576 },
    { "1M", INT64_MAX, 0, 1048576 },
    { "2g", INT64_MAX, 0, 2147483648LL },
    { "2G", INT64_MAX, 0, 2147483648LL },
    { "0", INT64_MAX, 0, 0 },
    { "1M", 1000, -1, 0 },
    { "k", INT64_MAX, -1, 0 },
    { "", INT64_MAX, -1, 0 },
    { "-1k", INT64_MAX, -1, 0 },
    { "1kb", INT64_MAX, -1, 0 },
    { "1.5M", INT64_MAX, -1, 0 },
    { "9999999999999999G", INT64_MAX, -1, 0 },
};

static void test_parse(void)
{
    for (size_t i = 0; i < sizeof int_cases / sizeof int_cases[0]; i++) {
        int64_t v = 12345;
        int rc = bx_parse_int64(int_cases[i].s, int_cases[i].min, int_cases[i].max, &v);
        is_int(rc, int_cases[i].rc, "parse_int64 '%s' rc", int_cases[i].s);
        is_int(v, int_cases[i].rc == 0 ? int_cases[i].want : 12345,
               "parse_int64 '%s' value", int_cases[i].s);
    }
    for (size_t i = 0; i < sizeof size_cases / sizeof size_cases[0]; i++) {
        int64_t v = 12345;
        int rc = bx_parse_size(size_cases[i].s, size_cases[i].max, &v);
        is_int(rc, size_cases[i].rc, "parse_size '%s' rc", size_cases[i].s);
        is_int(v, size_cases[i].rc == 0 ? size_cases[i].want : 12345,
               "parse_size '%s' value", size_cases[i].s);
    }
}

static void test_fd_and_limits(void)
{
    int p[2];
    ok(pipe(p) == 0, "pipe");
    is_int(bx_fd_nonblock(p[0], 1), 0, "nonblock on");
    ok(fcntl(p[0], F_GETFL) & O_NONBLOCK, "O_NONBLOCK set");
    ok(fcntl(p[0], F_GETFD) & FD_CLOEXEC, "FD_CLOEXEC set");
    is_int(bx_fd_nonblock(p[0], 0), 0, "nonblock off");
    ok(!(fcntl(p[0], F_GETFL) & O_NONBLOCK), "O_NONBLOCK cleared");
    close(p[0]);
    close(p[1]);
    is_int(bx_fd_nonblock(p[0], 1), -1, "closed fd fails");

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    long n = bx_raise_nofile();
    struct rlimit after;
    getrlimit(RLIMIT_NOFILE, &after);
    ok(n > 0 && after.rlim_cur == after.rlim_max, "raise_nofile: soft = hard (%ld)", n);
}

static void test_log(void)
{
    is_int(bx_log_parse_level("error"), BX_LOG_ERROR, "level error");
    is_int(bx_log_parse_level("warn"), BX_LOG_WARN, "level warn");
    is_int(bx_log_parse_level("INFO"), BX_LOG_INFO, "level INFO");
    is_int(bx_log_parse_level("debug"), BX_LOG_DEBUG, "level debug");
    is_int(bx_log_parse_level("loud"), -1, "level junk");
    is_int(bx_log_level, BX_LOG_INFO, "default level is info");

    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char path[512];
    snprintf(path, sizeof path, "%s/bx-log-XXXXXX", tmp);
    int fd = mkstemp(path);
    ok(fd >= 0, "temp log file");
    close(fd);
    is_int(bx_log_open("testd", path), 0, "log to a file");
    bx_info("tag", "hello %d", 7);
    bx_debug("tag", "not shown at info");
    bx_error("tag", "broken");
    /* Rotation: move the file away, reopen, write again. */
    char rotated[600];
    snprintf(rotated, sizeof rotated, "%s.1", path);
    ok(rename(path, rotated) == 0, "rotate");
    is_int(bx_log_reopen(), 0, "reopen");
    bx_warn("tag", "after rotate");
    is_int(bx_log_open("testd", NULL), 0, "back to stderr");

    char buf[2048] = "";
    FILE *f = fopen(rotated, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
    ok(strstr(buf, "testd[") && strstr(buf, "] INFO tag: hello 7\n"), "info line");
    ok(strstr(buf, "Z testd[") != NULL && buf[4] == '-' && buf[10] == 'T', "timestamp");
    ok(strstr(buf, "not shown") == NULL, "debug filtered at info");
    ok(strstr(buf, "ERROR tag: broken (test_util.c:") != NULL, "error line has file:line");
    f = fopen(path, "r");
    n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
    ok(strstr(buf, "WARN tag: after rotate\n") != NULL, "reopened file gets new lines");
    unlink(path);
    unlink(rotated);
    is_int(bx_log_open("testd", "/nonexistent-dir/x.log"), -1, "unwritable log path");
}

static void test_bucket(void)
{
    bx_bucket_t b = { 0, 0, 0 };
    int took = 0;
    for (int i = 0; i < 10; i++)
        took += bx_bucket_take(&b, 2, 3, 1000);
    is_int(took, 3, "a fresh bucket gives its burst at once");
    ok(!bx_bucket_full(&b, 2, 3, 1000), "and is not full then");
    is_int(bx_bucket_take(&b, 2, 3, 1499), 0, "0.998 tokens later: still none");
    is_int(bx_bucket_take(&b, 2, 3, 1500), 1, "half a second at 2/s: one");
    ok(bx_bucket_full(&b, 2, 3, 3000), "full again after burst / rate");
    took = 0;
    for (int i = 0; i < 10; i++)
        took += bx_bucket_take(&b, 2, 3, 100000);
    is_int(took, 3, "never more than the burst, however long it rested");
}

int main(void)
{
    test_bucket();
    test_buf();
    test_json_string();
    test_random();
    test_clocks();
    test_parse();
    test_fd_and_limits();
    test_log();
    done_testing();
    return exit_status();
}
