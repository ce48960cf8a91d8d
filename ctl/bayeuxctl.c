/* bayeuxctl.c - bayeuxd's app endpoint and event stream from the shell.
 *
 * One command, one request on a REQ socket, one reply printed as it came
 * (docs/backend.md, "bayeuxctl"); or "events": a SUB socket printed one
 * event a line until SIGINT or SIGTERM. Exit status: 0 done, 1 refused by
 * bayeuxd, 2 usage or invalid JSON (nothing sent), 3 no reply in time.
 *
 * Endpoints come from --app / --events, else from the shared config file
 * (app-endpoint, events-endpoint), else the defaults. The config file is
 * read with common/config.c: the keys of bayeuxd and bayeux-fcgi are
 * foreign (accepted, ignored), so a typo is an error here too. "timeout" in
 * that file is bayeuxd's advice timeout, not ours: --timeout is a flag only.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <zmq.h>

#include "common/bayeux.h"
#include "common/channel.h"
#include "common/config.h"
#include "common/log.h"
#include "common/sha256.h"
#include "common/token.h"
#include "common/util.h"

#define TAG "ctl"

#ifndef PACKAGE_VERSION   /* from configure (-D) */
#define PACKAGE_VERSION "unknown"
#endif
/* The shared config file, read when it exists and no --config is given;
 * the Makefile passes $(sysconfdir)/bayeux-fcgi. */
#ifndef BX_CONFDIR
#define BX_CONFDIR "/etc/bayeux-fcgi"
#endif
#define S_DEFAULT_CONFIG BX_CONFDIR "/bayeux.conf"
#define S_DEFAULT_APP "ipc:///tmp/bayeux-fcgi/app.sock"
#define S_DEFAULT_EVENTS "ipc:///tmp/bayeux-fcgi/events.sock"
#define S_DEFAULT_TIMEOUT_MS 5000
/* Deepest and largest DATA we check here (bayeuxd's max-depth and max-body
 * can be no more); bayeuxd applies its own limits. */
#define S_DATA_MAX_DEPTH 1000
#define S_DATA_MAX_BYTES (64 << 20)

/* Exit statuses: the contract of docs/backend.md. */
enum {
    S_EXIT_DONE = 0,
    S_EXIT_REFUSED = 1,   /* bayeuxd answered ok:false (or nonsense) */
    S_EXIT_USAGE = 2,     /* bad arguments, config or DATA: nothing was sent */
    S_EXIT_TIMEOUT = 3    /* no reply within --timeout */
};

/* What the command line and the config file decided. */
typedef struct {
    char *app;              /* app endpoint; owned by s_file_opts (bx_config_free) */
    char *events;           /* event stream endpoint; likewise */
    char *secret;           /* auth-secret, for "token"; likewise */
    char *secret_file;      /* auth-secret-file; likewise */
    const char *flag_app;   /* --app value (argv), NULL if not given */
    const char *flag_events; /* --events value (argv), NULL if not given */
    const char *config;     /* --config value (argv), NULL: the default file */
    int64_t timeout_ms;     /* --timeout: how long to wait for a reply */
    int quiet;              /* --quiet: print no reply */
    char **args;            /* the command word and its arguments (argv) */
    int nargs;
} s_ctl_t;

static s_ctl_t s_ctl;

/* The keys bayeuxctl reads from the shared file. */
static const bx_option_t s_file_opts[] = {
    { "app-endpoint", BX_OPT_STR, &s_ctl.app, 0, 0, "bayeuxd's app endpoint (ROUTER)" },
    { "events-endpoint", BX_OPT_STR, &s_ctl.events, 0, 0, "bayeuxd's event stream (PUB)" },
    { "auth-secret", BX_OPT_STR, &s_ctl.secret, 0, 0, "the key tokens are signed with" },
    { "auth-secret-file", BX_OPT_STR, &s_ctl.secret_file, 0, 0, "or a file holding it" },
    { NULL, 0, NULL, 0, 0, NULL }
};

/* Every other key of bayeuxd and bayeux-fcgi: accepted and ignored.
 * Keep in step with dispatcher/options.c and fcgi/main.c (the backend tests
 * feed bayeuxctl every key both programs' --help lists). */
static const char *const s_foreign[] = {
    /* both */
    "dispatcher", "log", "log-level", "max-body", "max-messages", "max-depth",
    /* bayeuxd */
    "timeout", "interval", "max-interval", "sweep-period", "browser-binding",
    "duplicate-connect-status", "max-queue", "max-queue-bytes", "max-reply-bytes",
    "queue-memory", "queue-overflow", "ack", "history",
    "timestamp", "database", "synchronous", "pidfile", "app-mode",
    /* bayeuxd, security (auth-secret and auth-secret-file are ours too) */
    "auth", "channel-rules", "channel-default",
    "max-message-size", "max-sessions-per-address", "publish-rate", "stats-channel",
    "stats-interval", "max-handshakes-per-request", "handshake-rate", "handshake-burst",
    "unconnected-expiry",
    /* bayeux-fcgi */
    "listen", "listen-mode", "listen-backlog", "workers", "request-timeout",
    "cors-origins", "cookie-samesite", "cookie-path",
    NULL
};

/* --timeout goes through config.c's duration parser ("5000", "5s", "500ms"). */
static const bx_option_t s_timeout_opt[] = {
    { "timeout", BX_OPT_MS, &s_ctl.timeout_ms, 1, 86400000, NULL },
    { NULL, 0, NULL, 0, 0, NULL }
};

static volatile sig_atomic_t s_stop;

static void s_usage(FILE *out)
{
    fprintf(out,
"Usage: bayeuxctl [OPTIONS] COMMAND [ARGS]\n"
"Talks to bayeuxd's app endpoint (commands) or its event stream (events).\n"
"\n"
"Commands:\n"
"  publish CHANNEL [DATA|-]         to every subscriber of CHANNEL (or of a pattern\n"
"                                   matching it); /service/** is refused\n"
"  deliver CLIENTID CHANNEL [DATA|-]  to that one session, whatever it subscribed to\n"
"  disconnect CLIENTID              end a session (its client is told not to reconnect)\n"
"  sessions                         list the sessions\n"
"  session CLIENTID                 one session: its subscriptions, queue, state\n"
"  subscribers CHANNEL              the sessions a publish to CHANNEL would reach\n"
"  stats                            bayeuxd's counters\n"
"  backup FILE                      bayeuxd writes a copy of its database, as of its\n"
"                                   last commit, into the new file FILE (the way to\n"
"                                   back up or --check-db a database in use)\n"
"  events [TOPIC]                   print events as they happen, one a line:\n"
"                                   \"TOPIC JSON\"; TOPIC is a prefix (session.,\n"
"                                   subscribe, service:/service/echo; none: all);\n"
"                                   runs until SIGINT or SIGTERM, then exits 0\n"
"  token SUBJECT [SECONDS]          mint a handshake token for SUBJECT, valid that\n"
"                                   long (default 3600), with the config's\n"
"                                   auth-secret or auth-secret-file (docs/security.md)\n"
"\n"
"DATA is JSON text (quote it for the shell: '{\"text\":\"hi\"}'), or - to read it\n"
"from stdin; without DATA the message's data is null. CHANNEL is a plain name\n"
"such as /chat/room (no wildcards).\n"
"\n"
"Options (anywhere on the line; -- ends them):\n"
"  --app ENDPOINT        the app endpoint (config key app-endpoint;\n"
"                        default " S_DEFAULT_APP ")\n"
"  --events ENDPOINT     the event stream (config key events-endpoint;\n"
"                        default " S_DEFAULT_EVENTS ")\n"
"  --config FILE, -c FILE  the shared key = value file of bayeuxd and\n"
"                        bayeux-fcgi (default " S_DEFAULT_CONFIG ",\n"
"                        if it exists; --config /dev/null reads none)\n"
"  --timeout MS          wait this long for bayeuxd's reply (default %d;\n"
"                        also 5s, 500ms)\n"
"  --quiet, -q           print no reply (errors still go to stderr)\n"
"  --help, -h            this text\n"
"  --version             the version\n"
"\n"
"Output: the reply, one JSON object on one line, e.g.\n"
"  {\"v\":1,\"op\":\"publish\",\"ok\":true,\"reached\":2}\n"
"\n"
"Exit status:\n"
"  0  done\n"
"  1  refused by bayeuxd: \"bayeuxctl: ERROR: MESSAGE\" on stderr, e.g.\n"
"     unknown_client, invalid_channel, channel_denied, too_large\n"
"  2  usage error, bad config, or DATA that is not JSON: nothing was sent\n"
"  3  no reply within --timeout (bayeuxd not running, or another endpoint)\n"
"\n"
"Examples:\n"
"  bayeuxctl publish /chat/room '{\"user\":\"bot\",\"text\":\"hi\"}'\n"
"  tail -n1 news.json | bayeuxctl publish /news -\n"
"  bayeuxctl deliver 3kq8... /service/notice '\"your export is ready\"'\n"
"  bayeuxctl events session. | while read -r topic json; do ...; done\n"
"See docs/backend.md for the format of every request, reply and event.\n",
            S_DEFAULT_TIMEOUT_MS);
}

static int s_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "bayeuxctl: MESSAGE (try --help)" and returns S_EXIT_USAGE. */
static int s_usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("bayeuxctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (try --help)\n", stderr);
    return S_EXIT_USAGE;
}

/* ------------------------------------------------------------ arguments */

/* If argv[*i] is the long option name ("--name" or "--name=value") that
 * takes a value, stores the value (the next argument for "--name VALUE") and
 * advances *i. Returns 1 if it matched, 0 if not, -1 if the value is missing. */
static int s_take_value(int argc, char **argv, int *i, const char *name, const char **value)
{
    const char *a = argv[*i] + 2;
    size_t n = strlen(name);

    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *value = a + n + 1;
        return 1;
    }
    if (a[n] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *value = argv[++*i];
    return 1;
}

/* Reads the options (anywhere on the line) into s_ctl and leaves the
 * command and its arguments in s_ctl.args. Returns -1 after --help or
 * --version (printed; exit 0), S_EXIT_USAGE on an error (printed), or 0. */
static int s_parse_args(int argc, char **argv)
{
    static const struct { const char *name; int which; } valued[] = {
        { "app", 'a' }, { "app-endpoint", 'a' }, { "events", 'e' },
        { "events-endpoint", 'e' }, { "config", 'c' }, { "timeout", 't' },
    };
    char err[256];
    int options_done = 0;

    s_ctl.args = bx_calloc((size_t)argc + 1, sizeof *s_ctl.args);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *value = NULL;
        int which = 0;

        /* "-" (stdin) and "-1" (a JSON number) are arguments, not options. */
        if (options_done || a[0] != '-' || strcmp(a, "-") == 0 ||
            (a[1] >= '0' && a[1] <= '9')) {
            s_ctl.args[s_ctl.nargs++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options_done = 1;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            s_usage(stdout);
            return -1;
        } else if (strcmp(a, "--version") == 0) {
            printf("bayeuxctl %s\n", PACKAGE_VERSION);
            return -1;
        } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            s_ctl.quiet = 1;
        } else if (strcmp(a, "-c") == 0) {
            if (i + 1 >= argc)
                return s_usage_error("-c: missing file name");
            s_ctl.config = argv[++i];
        } else if (a[1] == '-') {
            for (size_t k = 0; k < sizeof valued / sizeof valued[0] && !which; k++) {
                int m = s_take_value(argc, argv, &i, valued[k].name, &value);
                if (m < 0)
                    return s_usage_error("%s: missing value", a);
                if (m > 0)
                    which = valued[k].which;
            }
            switch (which) {
            case 'a': s_ctl.flag_app = value; break;
            case 'e': s_ctl.flag_events = value; break;
            case 'c': s_ctl.config = value; break;
            case 't':
                if (bx_config_set(s_timeout_opt, NULL, "timeout", value, err, sizeof err) < 0)
                    return s_usage_error("--%s", err);
                break;
            default:
                return s_usage_error("unknown option %s", a);
            }
        } else {
            return s_usage_error("unknown option %s", a);
        }
    }
    return 0;
}

/* Decides the endpoints: flags, else the config file, else the defaults.
 * The default file is read only when the flag for the endpoint the command
 * uses (events: the event stream, else the app endpoint) is not given, and
 * is skipped with a warning if it exists but cannot be read (a user outside
 * bayeuxd's group may still name a tcp:// endpoint).
 * Returns 0, or S_EXIT_USAGE (printed). */
static int s_load_config(int events)
{
    char err[512];
    const char *path = s_ctl.config;
    const char *flag = events ? s_ctl.flag_events : s_ctl.flag_app;

    s_ctl.app = (char *)S_DEFAULT_APP;
    s_ctl.events = (char *)S_DEFAULT_EVENTS;
    if (!path && !flag) {
        if (access(S_DEFAULT_CONFIG, F_OK) == 0) {
            path = S_DEFAULT_CONFIG;
            if (access(path, R_OK) != 0) {
                fprintf(stderr, "bayeuxctl: %s: %s; using the defaults\n", path,
                        strerror(errno));
                path = NULL;
            }
        }
    }
    if (path) {
        if (!*path)
            return s_usage_error("--config: missing file name");
        if (bx_config_load_file(s_file_opts, s_foreign, path, err, sizeof err) < 0) {
            fprintf(stderr, "bayeuxctl: %s\n", err);
            return S_EXIT_USAGE;
        }
    }
    /* Through config.c, so that it owns every string it holds. */
    if (s_ctl.flag_app)
        bx_config_set(s_file_opts, NULL, "app-endpoint", s_ctl.flag_app, err, sizeof err);
    if (s_ctl.flag_events)
        bx_config_set(s_file_opts, NULL, "events-endpoint", s_ctl.flag_events, err,
                      sizeof err);
    return 0;
}

/* ------------------------------------------------------------ requests */

/* Reads all of stdin into b. Returns 0, or -1 (printed). */
static int s_read_stdin(bx_buf_t *b)
{
    char chunk[65536];
    size_t n;

    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
        bx_buf_append(b, chunk, n);
    if (ferror(stdin)) {
        fprintf(stderr, "bayeuxctl: reading stdin: %s\n", strerror(errno));
        return -1;
    }
    bx_buf_puts(b, "");   /* NUL-terminated even when empty */
    return 0;
}

/* True if text (len bytes, NUL-terminated) is exactly one JSON value
 * (RFC 8259, UTF-8) with white space around it at most. Two checks:
 * json-c finds where the one value ends (it would accept more than RFC 8259,
 * e.g. NaN or 'single quotes'), then common/bayeux.c's strict checker reads
 * it as the data of a one-message batch: [{"data":TEXT}]. The first check
 * is what keeps TEXT from closing that wrapper (1},{"x":2). */
static int s_json_valid(const char *text, size_t len, char *why, size_t whylen)
{
    json_tokener *tok = json_tokener_new_ex(S_DATA_MAX_DEPTH);
    json_object *v, *batch;
    bx_buf_t wrapped;
    bx_limits_t lim;
    bx_batch_err_t berr;

    if (len > S_DATA_MAX_BYTES) {
        bx_errf(why, whylen, "larger than any max-body (64M)");
        json_tokener_free(tok);
        return 0;
    }
    if (strlen(text) != len) {
        bx_errf(why, whylen, "not JSON (a NUL byte)");
        json_tokener_free(tok);
        return 0;
    }
    /* len + 1: the NUL ends a number or literal at the very end. */
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    v = json_tokener_parse_ex(tok, text, (int)len + 1);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_object_put(v);
    json_tokener_free(tok);
    if (jerr != json_tokener_success) {
        bx_errf(why, whylen, "not JSON (%s)", json_tokener_error_desc(jerr));
        return 0;
    }
    for (; end < len; end++) {
        if (!strchr(" \t\r\n", text[end])) {
            bx_errf(why, whylen, "not JSON (more than one value)");
            return 0;
        }
    }
    bx_buf_init(&wrapped);
    bx_buf_puts(&wrapped, "[{\"data\":");
    bx_buf_append(&wrapped, text, len);
    bx_buf_puts(&wrapped, "}]");
    bx_limits_init(&lim);
    lim.max_body = wrapped.len;
    lim.max_depth = S_DATA_MAX_DEPTH + 2;
    batch = bx_batch_parse(wrapped.data, wrapped.len, &lim, &berr);
    bx_buf_free(&wrapped);
    if (!batch || json_object_array_length(batch) != 1) {
        bx_errf(why, whylen, "not JSON (%s)",
                batch ? "more than one value" : bx_batch_strerror(berr));
        json_object_put(batch);
        return 0;
    }
    json_object_put(batch);
    return 1;
}

/* Appends ,"data":DATA to the request: DATA is argv text, "-" for stdin,
 * NULL for none (null). The text is checked, then sent as it was written.
 * Returns 0, or S_EXIT_USAGE (printed). */
static int s_put_data(bx_buf_t *req, const char *arg)
{
    bx_buf_t in;
    const char *text = arg;
    size_t len;
    char why[160];
    int rc = 0;

    bx_buf_init(&in);
    if (!arg) {
        text = "null";
    } else if (strcmp(arg, "-") == 0) {
        if (s_read_stdin(&in) < 0) {
            rc = S_EXIT_USAGE;
            goto out;
        }
        text = in.data;
    }
    len = arg && strcmp(arg, "-") == 0 ? in.len : strlen(text);
    if (!s_json_valid(text, len, why, sizeof why)) {
        fprintf(stderr, "bayeuxctl: DATA is %s; nothing sent\n", why);
        rc = S_EXIT_USAGE;
        goto out;
    }
    bx_buf_puts(req, ",\"data\":");
    bx_buf_append(req, text, len);
out:
    bx_buf_free(&in);
    return rc;
}

/* Appends ,"NAME":"VALUE" (VALUE as a JSON string). */
static void s_put_str(bx_buf_t *req, const char *name, const char *value)
{
    bx_buf_printf(req, ",\"%s\":", name);
    bx_buf_put_json_string(req, value, strlen(value));
}

/* Checks that s is a plain channel name (no wildcard). Which channels a
 * command may use (/meta/..., /service/...) is bayeuxd's to say: it answers
 * channel_denied. Returns 0, or S_EXIT_USAGE (printed). */
static int s_check_channel(const char *s)
{
    bx_chan_kind_t k = bx_channel_parse(s, strlen(s));
    if (strlen(s) > BX_CHANNEL_MAX || k == BX_CHAN_INVALID)
        return s_usage_error("'%s' is not a channel name (such as /chat/room)", s);
    if (k != BX_CHAN_NAME)
        return s_usage_error("'%s' is a pattern: give a channel name (such as /chat/room)", s);
    return 0;
}

/* ------------------------------------------------------------ sockets */

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

/* SIGINT and SIGTERM set s_stop and interrupt blocking ZeroMQ calls (no
 * SA_RESTART; libzmq's own threads block signals). */
static void s_catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* A socket of type with linger 0 (nothing waits at exit for a peer that is
 * not there), connected to endpoint. Returns it, or NULL (printed; an
 * endpoint zmq cannot parse is a usage error, the caller exits 2). */
static void *s_connect(void *ctx, int type, const char *endpoint, const char *what)
{
    int linger = 0;
    void *sock;

    if (!endpoint || !*endpoint) {
        fprintf(stderr, "bayeuxctl: %s is empty (that socket is off in bayeuxd's config)\n",
                what);
        return NULL;
    }
    sock = zmq_socket(ctx, type);
    if (!sock) {
        bx_error(TAG, "zmq_socket: %s", zmq_strerror(errno));
        return NULL;
    }
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(sock, endpoint) != 0) {
        fprintf(stderr, "bayeuxctl: %s %s: %s\n", what, endpoint, zmq_strerror(errno));
        zmq_close(sock);
        return NULL;
    }
    return sock;
}

/* Waits until sock is ready for events (ZMQ_POLLIN/ZMQ_POLLOUT) or the
 * deadline (bx_now_ms) passes. Returns 1 ready, 0 timed out or stopped by a
 * signal, -1 on an error (logged). */
static int s_wait(void *sock, short events, int64_t deadline)
{
    for (;;) {
        zmq_pollitem_t item = { sock, 0, events, 0 };
        int64_t left = deadline - bx_now_ms();
        if (left <= 0 || s_stop)
            return 0;
        int n = zmq_poll(&item, 1, (long)left);
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR) {
            bx_error(TAG, "zmq_poll: %s", zmq_strerror(errno));
            return -1;
        }
    }
}

/* Reads a reply: prints it (unless --quiet) when ok is true, the error to
 * stderr otherwise. Returns the exit status. */
static int s_handle_reply(const char *text, size_t len)
{
    json_tokener *tok = json_tokener_new();
    json_object *reply = json_tokener_parse_ex(tok, text, (int)len);
    json_object *ok, *f;
    int rc = S_EXIT_REFUSED;

    json_tokener_free(tok);
    if (!json_object_is_type(reply, json_type_object) ||
        !json_object_object_get_ex(reply, "ok", &ok) ||
        !json_object_is_type(ok, json_type_boolean)) {
        fprintf(stderr, "bayeuxctl: not a reply of bayeuxd's app endpoint: %.*s\n",
                (int)(len > 200 ? 200 : len), text);
        goto out;
    }
    if (json_object_get_boolean(ok)) {
        if (!s_ctl.quiet) {
            fwrite(text, 1, len, stdout);
            fputc('\n', stdout);
        }
        rc = fflush(stdout) == 0 ? S_EXIT_DONE : S_EXIT_REFUSED;
        goto out;
    }
    const char *code = json_object_object_get_ex(reply, "error", &f) ?
        json_object_get_string(f) : "refused";
    const char *msg = json_object_object_get_ex(reply, "message", &f) ?
        json_object_get_string(f) : NULL;
    fprintf(stderr, "bayeuxctl: %s%s%s\n", code, msg ? ": " : "", msg ? msg : "");
out:
    json_object_put(reply);
    return rc;
}

/* Sends one request on a REQ socket and handles its reply. */
static int s_request(const char *json, size_t len)
{
    int64_t deadline = bx_now_ms() + s_ctl.timeout_ms;
    void *ctx = zmq_ctx_new();
    void *req = s_connect(ctx, ZMQ_REQ, s_ctl.app, "app endpoint");
    zmq_msg_t msg;
    int rc = S_EXIT_TIMEOUT, w;

    if (!req) {
        zmq_ctx_term(ctx);
        return S_EXIT_USAGE;
    }
    zmq_msg_init(&msg);
    /* ZMQ_DONTWAIT and a poll: a REQ with no peer yet must not block past
     * the deadline. */
    while (zmq_send(req, json, len, ZMQ_DONTWAIT) < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            bx_error(TAG, "zmq_send: %s", zmq_strerror(errno));
            rc = S_EXIT_REFUSED;
            goto out;
        }
        if ((w = s_wait(req, ZMQ_POLLOUT, deadline)) <= 0)
            goto timeout;
    }
    for (;;) {
        if ((w = s_wait(req, ZMQ_POLLIN, deadline)) <= 0)
            goto timeout;
        if (zmq_msg_recv(&msg, req, ZMQ_DONTWAIT) >= 0)
            break;
        if (errno != EAGAIN && errno != EINTR) {
            bx_error(TAG, "zmq_msg_recv: %s", zmq_strerror(errno));
            rc = S_EXIT_REFUSED;
            goto out;
        }
    }
    rc = s_handle_reply(zmq_msg_data(&msg), zmq_msg_size(&msg));
    goto out;

timeout:
    if (w == 0)
        fprintf(stderr, "bayeuxctl: no reply from %s within %" PRId64 " ms "
                "(is bayeuxd running with this app-endpoint?)\n", s_ctl.app,
                s_ctl.timeout_ms);
    rc = w < 0 ? S_EXIT_REFUSED : S_EXIT_TIMEOUT;
out:
    zmq_msg_close(&msg);
    zmq_close(req);
    zmq_ctx_term(ctx);
    return rc;
}

/* Prints one event as "TOPIC JSON". bayeuxd writes JSON on one line; a
 * frame with a line break is rewritten so one event stays one line.
 * *last_seq tracks bayeuxd's "seq" to report events the PUB socket dropped
 * (only without a topic filter: a filter leaves gaps on purpose). */
static int s_print_event(const char *topic, size_t tlen, const char *json, size_t jlen,
                         int64_t *last_seq, int all)
{
    json_tokener *tok = json_tokener_new();
    json_object *ev = json_tokener_parse_ex(tok, json, (int)jlen);
    json_object *f;
    const char *text = json;
    size_t len = jlen;

    json_tokener_free(tok);
    if (ev && (memchr(json, '\n', jlen) || memchr(json, '\r', jlen))) {
        text = json_object_to_json_string_ext(ev, JSON_C_TO_STRING_PLAIN |
                                                  JSON_C_TO_STRING_NOSLASHESCAPE);
        len = strlen(text);
    }
    if (all && ev && json_object_object_get_ex(ev, "seq", &f)) {
        int64_t seq = json_object_get_int64(f);
        if (*last_seq > 0 && seq > *last_seq + 1)
            fprintf(stderr, "bayeuxctl: %" PRId64 " event(s) missed before seq %" PRId64
                    " (this reader was too slow)\n", seq - *last_seq - 1, seq);
        *last_seq = seq;
    }
    fwrite(topic, 1, tlen, stdout);
    fputc(' ', stdout);
    fwrite(text, 1, len, stdout);
    fputc('\n', stdout);
    json_object_put(ev);
    return fflush(stdout);
}

/* "events [TOPIC]": prints events until SIGINT or SIGTERM (exit 0). */
static int s_events(char **args, int nargs)
{
    const char *topic = nargs > 0 ? args[0] : "";
    void *ctx = zmq_ctx_new();
    void *sub = s_connect(ctx, ZMQ_SUB, s_ctl.events, "event stream");
    zmq_msg_t frames[2];
    int64_t last_seq = 0;
    int rc = S_EXIT_DONE;

    if (!sub) {
        zmq_ctx_term(ctx);
        return S_EXIT_USAGE;
    }
    s_catch_signals();
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, topic, strlen(topic));
    zmq_msg_init(&frames[0]);
    zmq_msg_init(&frames[1]);
    while (!s_stop) {
        /* An event is two frames, topic then JSON; anything else is
         * skipped whole. */
        int n = 0, more = 1;
        while (more) {
            zmq_msg_t *m = &frames[n < 2 ? n : 1];
            if (zmq_msg_recv(m, sub, 0) < 0) {
                if (errno == EINTR && s_stop)
                    goto out;
                if (errno == EINTR)
                    continue;
                bx_error(TAG, "zmq_msg_recv: %s", zmq_strerror(errno));
                rc = S_EXIT_REFUSED;
                goto out;
            }
            n++;
            more = zmq_msg_more(m);
        }
        if (n != 2) {
            fprintf(stderr, "bayeuxctl: skipped an event of %d frame(s) (expected 2)\n", n);
            continue;
        }
        if (s_print_event(zmq_msg_data(&frames[0]), zmq_msg_size(&frames[0]),
                          zmq_msg_data(&frames[1]), zmq_msg_size(&frames[1]),
                          &last_seq, !*topic) != 0) {
            rc = S_EXIT_REFUSED;   /* stdout is gone (a closed pipe) */
            goto out;
        }
    }
out:
    zmq_msg_close(&frames[0]);
    zmq_msg_close(&frames[1]);
    zmq_close(sub);
    zmq_ctx_term(ctx);
    return rc;
}

/* "token SUBJECT [SECONDS]": what an application does for a user it has
 * logged in, from the shell (docs/security.md). No socket. */
static int s_token(char **args, int nargs)
{
    char secret[512], err[256], tok[BX_TOKEN_MINT_MAX];
    size_t len;
    long long ttl = 3600;
    if (nargs > 1) {
        char *end;
        errno = 0;
        ttl = strtoll(args[1], &end, 10);
        if (errno || *end || ttl <= 0 || ttl > 100LL * 365 * 86400)
            return s_usage_error("SECONDS: a number of seconds, not '%s'", args[1]);
    }
    if (!bx_token_subject_ok(args[0], strlen(args[0])))
        return s_usage_error("SUBJECT: 1 to %d of A-Z a-z 0-9 - _ ! ~ ( ) $ @ . (a channel "
                             "segment), not '%s'", BX_TOKEN_SUBJECT_MAX, args[0]);
    if (bx_token_secret_load(s_ctl.secret, s_ctl.secret_file, secret, sizeof secret, &len, err,
                             sizeof err) != 0)
        return s_usage_error("%s", err);
    if (len < 16)
        return s_usage_error("no auth-secret or auth-secret-file of 16 bytes or more in the "
                             "config (--config FILE)");
    int rc = bx_token_mint(secret, len, args[0], (int64_t)(bx_wall_ms() / 1000) + ttl, tok,
                           sizeof tok);
    bx_wipe(secret, sizeof secret);
    if (rc < 0)
        return s_usage_error("cannot mint: %s", bx_token_strerror(rc));
    printf("%s\n", tok);
    return S_EXIT_DONE;
}

/* ------------------------------------------------------------ commands */

/* A request's fields come from the command's arguments as args spells
 * them: 'I' a clientId, 'C' a channel name, 'd' DATA (optional: null), 'P'
 * a file for bayeuxd to write (made absolute: bayeuxd has its own working
 * directory). A
 * command with run does something other than one request; its args only
 * count its arguments (lower case: optional). */
typedef struct {
    const char *name;     /* the command word, and the request's "op" */
    const char *args;     /* one letter an argument, as above */
    const char *usage;    /* the arguments, for the usage message */
    int (*run)(char **args, int nargs);   /* NULL: one request */
} s_cmd_t;

static const s_cmd_t s_cmds[] = {
    { "publish", "Cd", "CHANNEL [DATA|-]", NULL },
    { "deliver", "ICd", "CLIENTID CHANNEL [DATA|-]", NULL },
    { "disconnect", "I", "CLIENTID", NULL },
    { "sessions", "", "", NULL },
    { "session", "I", "CLIENTID", NULL },
    { "subscribers", "C", "CHANNEL", NULL },
    { "stats", "", "", NULL },
    { "backup", "P", "FILE", NULL },
    { "events", "t", "[TOPIC]", s_events },
    { "token", "Ss", "SUBJECT [SECONDS]", s_token },
    { NULL, NULL, NULL, NULL }
};

/* Writes the request of cmd, from its arguments (counted), into req.
 * Returns 0, or S_EXIT_USAGE (printed). */
static int s_build(const s_cmd_t *cmd, char **a, int n, bx_buf_t *req)
{
    bx_buf_printf(req, "{\"v\":1,\"op\":\"%s\"", cmd->name);
    for (int i = 0; cmd->args[i]; i++) {
        const char *v = i < n ? a[i] : NULL;
        if (cmd->args[i] == 'I') {
            if (!*v)
                return s_usage_error("empty CLIENTID");
            s_put_str(req, "clientId", v);
        } else if (cmd->args[i] == 'C') {
            if (s_check_channel(v))
                return S_EXIT_USAGE;
            s_put_str(req, "channel", v);
        } else if (cmd->args[i] == 'P') {
            char cwd[4096];
            if (!*v)
                return s_usage_error("empty FILE");
            if (v[0] == '/' || !getcwd(cwd, sizeof cwd)) {
                s_put_str(req, "path", v);
            } else {
                bx_buf_t abs;
                bx_buf_init(&abs);
                bx_buf_printf(&abs, "%s/%s", cwd, v);
                s_put_str(req, "path", abs.data);
                bx_buf_free(&abs);
            }
        } else if (cmd->args[i] == 'd' && s_put_data(req, v) != 0) {
            return S_EXIT_USAGE;
        }
    }
    bx_buf_putc(req, '}');
    return 0;
}

/* Runs the command in s_ctl.args. Returns the exit status. */
static int s_run(void)
{
    const s_cmd_t *cmd = s_cmds;
    char **a = s_ctl.args + 1;
    int n = s_ctl.nargs - 1, required = 0, rc;
    bx_buf_t req;

    while (cmd->name && strcmp(cmd->name, s_ctl.args[0]) != 0)
        cmd++;
    if (!cmd->name)
        return s_usage_error("unknown command '%s'", s_ctl.args[0]);
    for (const char *p = cmd->args; *p; p++)
        required += *p >= 'A' && *p <= 'Z';
    if (n < required || n > (int)strlen(cmd->args))
        return s_usage_error("usage: bayeuxctl %s%s%s", cmd->name, *cmd->usage ? " " : "",
                             cmd->usage);
    if ((rc = s_load_config(cmd->run == s_events)) != 0)
        return rc;
    if (cmd->run)
        return cmd->run(a, n);
    bx_buf_init(&req);
    rc = s_build(cmd, a, n, &req);
    if (rc == 0)
        rc = s_request(req.data, req.len);
    bx_buf_free(&req);
    return rc;
}

/* ------------------------------------------------------------ main */

int main(int argc, char **argv)
{
    int rc;

    bx_log_open("bayeuxctl", "-");
    bx_log_level = BX_LOG_WARN;
    s_ctl.timeout_ms = S_DEFAULT_TIMEOUT_MS;
    rc = s_parse_args(argc, argv);
    if (rc < 0) {
        rc = S_EXIT_DONE;   /* --help or --version */
    } else if (rc == 0) {
        if (s_ctl.nargs == 0) {
            s_usage(stderr);
            rc = S_EXIT_USAGE;
        } else {
            rc = s_run();
        }
    }
    bx_config_free(s_file_opts);
    free(s_ctl.args);
    return rc;
}
