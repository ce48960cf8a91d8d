/* test_config.c - config file and command-line options. */
#include "config.h"
#include "tap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int64_t o_workers;
static int64_t o_max_body;
static int64_t o_timeout;
static char *o_listen;
static char *o_db;
static int o_ack;

static const bx_option_t opts[] = {
    { "workers", BX_OPT_INT, &o_workers, 1, 64, "worker count" },
    { "max-body", BX_OPT_SIZE, &o_max_body, 1024, 16 << 20, "largest body" },
    { "timeout", BX_OPT_MS, &o_timeout, 0, 600000, "long-poll timeout" },
    { "listen", BX_OPT_STR, &o_listen, 0, 0, "where to listen" },
    { "db", BX_OPT_STR, &o_db, 0, 0, "database path" },
    { "ack", BX_OPT_BOOL, &o_ack, 0, 0, "ack extension" },
    { NULL, 0, NULL, 0, 0, NULL }
};

static const char *const foreign[] = { "responders", "fcgi-socket", NULL };

static const char s_default_listen[] = "unix:/run/default.sock";

static void s_defaults(void)
{
    bx_config_free(opts);
    o_workers = 4;
    o_max_body = 65536;
    o_timeout = 20000;
    o_listen = (char *)s_default_listen;   /* static: never freed */
    o_db = NULL;
    o_ack = 0;
}

static const struct {
    const char *key, *value;
    int rc;
    const char *err_has;   /* substring of the error, or NULL */
} set_cases[] = {
    { "workers", "8", 0, NULL },
    { "workers", " 8 ", 0, NULL },
    { "workers", "\"8\"", 0, NULL },
    { "workers", "0", -1, "workers" },
    { "workers", "65", -1, "out of range" },
    { "workers", "eight", -1, "workers" },
    { "workers", "", -1, "workers" },
    { "max-body", "64k", 0, NULL },
    { "max-body", "1M", 0, NULL },
    { "max-body", "1023", -1, "max-body" },
    { "max-body", "17M", -1, "out of range" },
    { "max-body", "1T", -1, "max-body" },
    { "timeout", "500", 0, NULL },
    { "timeout", "500ms", 0, NULL },
    { "timeout", "20s", 0, NULL },
    { "timeout", "2m", 0, NULL },
    { "timeout", "11m", -1, "out of range" },
    { "timeout", "-1", -1, "timeout" },
    { "timeout", "5h", -1, "timeout" },
    { "timeout", "s", -1, "timeout" },
    { "ack", "on", 0, NULL },
    { "ack", "OFF", 0, NULL },
    { "ack", "yes", 0, NULL },
    { "ack", "no", 0, NULL },
    { "ack", "true", 0, NULL },
    { "ack", "false", 0, NULL },
    { "ack", "1", 0, NULL },
    { "ack", "0", 0, NULL },
    { "ack", "maybe", -1, "ack" },
    { "listen", "tcp:127.0.0.1:9000", 0, NULL },
    { "responders", "whatever", 0, NULL },
    { "bogus", "1", -1, "unknown option 'bogus'" },
    { "workers", NULL, -1, "workers" },
};

static void test_set(void)
{
    s_defaults();
    for (size_t i = 0; i < sizeof set_cases / sizeof set_cases[0]; i++) {
        char err[256] = "";
        int rc = bx_config_set(opts, foreign, set_cases[i].key, set_cases[i].value,
                               err, sizeof err);
        is_int(rc, set_cases[i].rc, "set %s = %s", set_cases[i].key,
               set_cases[i].value ? set_cases[i].value : "(null)");
        if (set_cases[i].err_has)
            ok(strstr(err, set_cases[i].err_has) != NULL, "error '%s' mentions '%s'", err,
               set_cases[i].err_has);
    }

    /* Values land where they should. */
    char err[256];
    s_defaults();
    bx_config_set(opts, foreign, "workers", "\"12\"", err, sizeof err);
    is_int(o_workers, 12, "quoted int");
    bx_config_set(opts, foreign, "workers", "99", err, sizeof err);
    is_int(o_workers, 12, "a refused value leaves the old one");
    bx_config_set(opts, foreign, "max-body", "64k", err, sizeof err);
    is_int(o_max_body, 65536, "64k");
    bx_config_set(opts, foreign, "timeout", "20s", err, sizeof err);
    is_int(o_timeout, 20000, "20s");
    bx_config_set(opts, foreign, "timeout", "2m", err, sizeof err);
    is_int(o_timeout, 120000, "2m");
    bx_config_set(opts, foreign, "timeout", "250ms", err, sizeof err);
    is_int(o_timeout, 250, "250ms");
    bx_config_set(opts, foreign, "ack", "yes", err, sizeof err);
    is_int(o_ack, 1, "yes");

    /* Strings: the static default is replaced, never freed; our copies are
     * freed when replaced (ASan and valgrind check both). */
    is_str(o_listen, s_default_listen, "static default in place");
    bx_config_set(opts, foreign, "listen", "  \"unix:/tmp/a b.sock\"  ", err, sizeof err);
    is_str(o_listen, "unix:/tmp/a b.sock", "string trimmed and unquoted");
    bx_config_set(opts, foreign, "listen", "tcp:127.0.0.1:1", err, sizeof err);
    is_str(o_listen, "tcp:127.0.0.1:1", "string replaced");
    bx_config_set(opts, foreign, "db", "", err, sizeof err);
    is_str(o_db, "", "empty string value");
    bx_config_set(opts, foreign, "db", "\"\"", err, sizeof err);
    is_str(o_db, "", "quoted empty string value");
    bx_config_free(opts);
    ok(o_listen == NULL && o_db == NULL, "free sets strings to NULL");
    bx_config_free(opts);

    s_defaults();
    bx_config_free(opts);
    ok(o_listen == NULL, "free with only a static default does not free it");
}

static char s_dir[256];

static char *s_write_file(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_file(void)
{
    char err[512];
    s_defaults();
    char *path = s_write_file("good.conf",
        "# a deployment\n"
        "\n"
        "workers = 6\n"
        "  max-body=1M   # trailing comment\n"
        "timeout = 30s\n"
        "listen = \"unix:/run/x#1.sock\"\n"
        "responders = 4\n"
        "fcgi-socket = /run/fcgi.sock\n"
        "ack = on\n"
        "\t\n"
        "db = /var/lib/bayeux/db.sqlite");
    is_int(bx_config_load_file(opts, foreign, path, err, sizeof err), 0, "load good file");
    is_int(o_workers, 6, "file: workers");
    is_int(o_max_body, 1 << 20, "file: max-body");
    is_int(o_timeout, 30000, "file: timeout");
    is_str(o_listen, "unix:/run/x#1.sock", "file: '#' inside quotes kept");
    is_int(o_ack, 1, "file: ack");
    is_str(o_db, "/var/lib/bayeux/db.sqlite", "file: last line without newline");

    path = s_write_file("unknown.conf", "workers = 2\n\nbogus = 1\n");
    is_int(bx_config_load_file(opts, foreign, path, err, sizeof err), -1, "unknown key");
    ok(strstr(err, "unknown.conf:3:") && strstr(err, "bogus"), "error names line and key: %s",
       err);

    path = s_write_file("range.conf", "# c\nworkers = 100\n");
    is_int(bx_config_load_file(opts, foreign, path, err, sizeof err), -1, "range error");
    ok(strstr(err, "range.conf:2:") && strstr(err, "workers"), "range error: %s", err);

    path = s_write_file("noeq.conf", "workers 3\n");
    is_int(bx_config_load_file(opts, foreign, path, err, sizeof err), -1, "missing '='");
    ok(strstr(err, "noeq.conf:1:") != NULL, "missing '=' error: %s", err);

    path = s_write_file("nokey.conf", " = 3\n");
    is_int(bx_config_load_file(opts, foreign, path, err, sizeof err), -1, "missing key");

    char missing[512];
    snprintf(missing, sizeof missing, "%s/does-not-exist.conf", s_dir);
    is_int(bx_config_load_file(opts, foreign, missing, err, sizeof err), -1, "missing file");
    ok(strstr(err, "does-not-exist.conf") != NULL, "missing file error: %s", err);
    bx_config_free(opts);
}

static int s_args(char *err, size_t errlen, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, errlen);
    argv[argc++] = "prog";
    for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 31;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    return bx_config_parse_args(opts, foreign, argc, argv, err, errlen);
}

static void test_args(void)
{
    char err[512];
    char *conf = s_write_file("args.conf",
        "workers = 6\ntimeout = 30s\nlisten = unix:/from/file\nack = on\n");
    char confpath[512];
    snprintf(confpath, sizeof confpath, "%s", conf);

    /* Flags before and after --config both win over the file. */
    s_defaults();
    is_int(s_args(err, sizeof err, "--workers=9", "--config", confpath, "--timeout", "5s",
                  NULL), 0, "flags around --config");
    is_int(o_workers, 9, "flag before --config overrides the file");
    is_int(o_timeout, 5000, "flag after --config overrides the file");
    is_str(o_listen, "unix:/from/file", "file value kept when no flag");
    is_int(o_ack, 1, "file bool kept");

    s_defaults();
    is_int(s_args(err, sizeof err, "--ack=off", "-c", confpath, NULL), 0, "-c FILE");
    is_int(o_ack, 0, "--ack=off overrides the file");
    is_int(o_workers, 6, "-c loaded the file");

    s_defaults();
    is_int(s_args(err, sizeof err, "--config=", NULL), -1, "--config= without a name");
    s_defaults();
    char opt[600];
    snprintf(opt, sizeof opt, "--config=%s", confpath);
    is_int(s_args(err, sizeof err, opt, "--ack", NULL), 0, "--config=FILE, bare bool");
    is_int(o_workers, 6, "--config=FILE loaded");
    is_int(o_ack, 1, "bare --ack is true");

    s_defaults();
    is_int(s_args(err, sizeof err, "--ack", "--workers", "3", NULL), 0, "bare bool then int");
    ok(o_ack == 1 && o_workers == 3, "values");
    s_defaults();
    is_int(s_args(err, sizeof err, "--ack", "no", NULL), 0, "--ack no");
    is_int(o_ack, 0, "--ack no is false");

    s_defaults();
    is_int(s_args(err, sizeof err, "--responders", "4", "--fcgi-socket=/x", "--workers", "2",
                  NULL), 0, "foreign flags ignored");
    is_int(o_workers, 2, "after foreign flags");

    s_defaults();
    is_int(s_args(err, sizeof err, "--bogus=1", NULL), -1, "unknown flag");
    ok(strstr(err, "bogus") != NULL, "unknown flag error: %s", err);
    is_int(s_args(err, sizeof err, "stray", NULL), -1, "positional argument");
    ok(strstr(err, "stray") != NULL, "positional error: %s", err);
    is_int(s_args(err, sizeof err, "--workers", NULL), -1, "value missing at the end");
    is_int(s_args(err, sizeof err, "--workers=0", NULL), -1, "flag out of range");
    ok(strstr(err, "workers") != NULL, "flag range error: %s", err);
    is_int(s_args(err, sizeof err, "--config", NULL), -1, "--config without a file");

    char missing[512];
    snprintf(missing, sizeof missing, "%s/missing.conf", s_dir);
    is_int(s_args(err, sizeof err, "--config", missing, NULL), -1, "--config missing file");
    ok(strstr(err, "missing.conf") != NULL, "missing config error: %s", err);

    s_defaults();
    is_int(s_args(err, sizeof err, NULL), 0, "no arguments");
    is_int(o_workers, 4, "defaults untouched");

    /* Help shows every option with its current value. */
    s_defaults();
    char *help = NULL;
    size_t hlen = 0;
    FILE *f = open_memstream(&help, &hlen);
    bx_config_print_help(f, opts);
    fclose(f);
    ok(strstr(help, "--workers=VALUE") && strstr(help, "worker count") &&
       strstr(help, "(default: 4)"), "help for an int");
    ok(strstr(help, "--timeout=VALUE") && strstr(help, "20000ms"), "help for a duration");
    ok(strstr(help, s_default_listen) != NULL, "help shows the string default");
    ok(strstr(help, "--ack=VALUE") && strstr(help, "(default: false)"), "help for a bool");
    free(help);
    bx_config_free(opts);
}

static void test_take_flag(void)
{
    char a0[] = "prog", a1[] = "--check-config", a2[] = "--timeout=5s", a3[] = "--check-config";
    char *argv[] = { a0, a1, a2, a3, NULL };
    int argc = 4;
    ok(bx_config_take_flag(&argc, argv, "--check-config") == 1, "take_flag finds the flag");
    is_int(argc, 2, "take_flag removes every occurrence");
    is_str(argv[1], "--timeout=5s", "take_flag keeps the other arguments in order");
    ok(argv[2] == NULL, "take_flag keeps argv NULL-terminated");
    ok(bx_config_take_flag(&argc, argv, "--check-config") == 0, "take_flag: absent flag");
    is_int(argc, 2, "take_flag: nothing removed when absent");
}

int main(void)
{
    const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(s_dir, sizeof s_dir, "%s/bx-config-XXXXXX", tmp);
    if (!mkdtemp(s_dir)) {
        printf("1..0 # SKIP cannot create a temp dir\n");
        return 0;   /* automake's TAP driver counts exit 77 as an error */
    }
    test_set();
    test_file();
    test_args();
    test_take_flag();

    const char *names[] = { "good.conf", "unknown.conf", "range.conf", "noeq.conf",
                            "nokey.conf", "args.conf" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", s_dir, names[i]);
        unlink(p);
    }
    rmdir(s_dir);
    done_testing();
    return exit_status();
}
