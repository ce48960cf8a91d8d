/* main.c - bayeux-fcgi: options, the listen socket, worker processes.
 *
 * Listen modes: --listen unix:/path | tcp:host:port, or, without --listen, the
 * listening socket a web server or spawn-fcgi left on fd 0. With --workers N
 * the socket is opened once and N processes share it; the parent only
 * supervises (restarts a worker that dies, forwards SIGTERM and SIGHUP).
 */
#include "config.h"   /* common/config.h; PACKAGE_VERSION comes from configure (-D) */

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netdb.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/bayeux.h"
#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "fcgi/responder.h"

#define TAG "main"
#define MAX_WORKERS 256

static char *o_listen = NULL;
/* 0666: nginx, lighttpd and Apache workers run as another user (www-data)
 * than the one that starts us; the socket's directory is what restricts
 * access (see docs/responder.md). */
static char *o_listen_mode = "0666";
static int64_t o_backlog = 1024;
static int64_t o_workers = 1;
static char *o_dispatcher = BX_DEFAULT_DISPATCHER;
static int64_t o_max_body = BX_DEFAULT_MAX_BODY;
static int64_t o_max_messages = BX_DEFAULT_MAX_MESSAGES;
static int64_t o_max_depth = BX_DEFAULT_MAX_DEPTH;
static int64_t o_request_timeout = BX_DEFAULT_REQUEST_TIMEOUT_MS;
static char *o_cors = "";
static char *o_samesite = "lax";
static char *o_cookie_path = "/";
static char *o_log = "-";
static char *o_log_level = "info";

/* The unix socket we created, removed again when we stop (not by workers). */
static char *s_created_path;

static const bx_option_t s_opts[] = {
    { "listen", BX_OPT_STR, &o_listen, 0, 0,
      "unix:/path or tcp:host:port; default: the listening socket on fd 0" },
    { "listen-mode", BX_OPT_STR, &o_listen_mode, 0, 0,
      "permissions of a unix socket we create (octal)" },
    { "listen-backlog", BX_OPT_INT, &o_backlog, 1, 65535, "listen(2) backlog" },
    { "workers", BX_OPT_INT, &o_workers, 1, MAX_WORKERS,
      "processes sharing the listen socket" },
    { "dispatcher", BX_OPT_STR, &o_dispatcher, 0, 0, "ZeroMQ endpoint of bayeuxd" },
    { "max-body", BX_OPT_SIZE, &o_max_body, 64, 64 << 20,
      "largest request body or message parameter (413 above)" },
    { "max-messages", BX_OPT_INT, &o_max_messages, 1, 1000000,
      "most messages in one batch (400 above)" },
    { "max-depth", BX_OPT_INT, &o_max_depth, 2, 1000, "deepest JSON nesting (400 above)" },
    { "request-timeout", BX_OPT_MS, &o_request_timeout, 1000, 3600000,
      "answer 504 when the dispatcher has not replied by then" },
    { "cors-origins", BX_OPT_STR, &o_cors, 0, 0,
      "origins whose pages may call us (comma list); \"\": same origin only; "
      "\"*\": any site (docs/security.md)" },
    { "cookie-samesite", BX_OPT_STR, &o_samesite, 0, 0,
      "SameSite of BAYEUX_BROWSER: lax, strict or none" },
    { "cookie-path", BX_OPT_STR, &o_cookie_path, 0, 0, "Path of BAYEUX_BROWSER" },
    { "log", BX_OPT_STR, &o_log, 0, 0, "\"-\" (stderr), \"syslog\" or a file" },
    { "log-level", BX_OPT_STR, &o_log_level, 0, 0, "error, warn, info or debug" },
    { NULL, 0, NULL, 0, 0, NULL }
};

/* Keys of the shared config file that belong to bayeuxd: accepted, ignored. */
static const char *const s_foreign[] = {
    "timeout", "interval", "max-interval", "sweep-period", "browser-binding",
    "duplicate-connect-status", "max-queue", "max-queue-bytes", "max-reply-bytes",
    "queue-memory", "queue-overflow", "ack", "history",
    "timestamp", "database", "synchronous", "app-endpoint", "events-endpoint", "app-mode",
    "auth", "auth-secret", "auth-secret-file", "channel-default", "channel-rules",
    "max-message-size", "max-sessions-per-address", "max-handshakes-per-request",
    "handshake-rate", "handshake-burst", "unconnected-expiry", "publish-rate", "stats-channel",
    "stats-interval", "pidfile", NULL
};

static void s_usage(FILE *out)
{
    fprintf(out, "Usage: bayeux-fcgi [--config FILE] [--key=value ...]\n"
                 "FastCGI responder of bayeux-fcgi: checks Bayeux requests and "
                 "forwards them to bayeuxd.\n\nOptions:\n"
                 "  --config=FILE, -c FILE  read options from FILE first\n"
                 "  --check-config  check the configuration and exit\n"
                 "  --help, --version\n");
    bx_config_print_help(out, s_opts);
}

/* Checks the options that config.c cannot check by type. */
static int s_check_options(bx_http_config_t *http, int *mode, int *level)
{
    char *end = NULL;
    long m = strtol(o_listen_mode ? o_listen_mode : "", &end, 8);

    if (!o_listen_mode || !*o_listen_mode || *end || m < 0 || m > 0777) {
        fprintf(stderr, "bayeux-fcgi: listen-mode: not an octal mode\n");
        return -1;
    }
    *mode = (int)m;
    *level = bx_log_parse_level(o_log_level ? o_log_level : "");
    if (*level < 0) {
        fprintf(stderr, "bayeux-fcgi: log-level: expected error, warn, info or debug\n");
        return -1;
    }
    bx_http_config_init(http);
    http->limits.max_body = (size_t)o_max_body;
    http->limits.max_messages = (int)o_max_messages;
    http->limits.max_depth = (int)o_max_depth;
    http->cors_origins = o_cors ? o_cors : "";
    if (o_samesite && strcasecmp(o_samesite, "lax") == 0)
        http->samesite = BX_SAMESITE_LAX;
    else if (o_samesite && strcasecmp(o_samesite, "strict") == 0)
        http->samesite = BX_SAMESITE_STRICT;
    else if (o_samesite && strcasecmp(o_samesite, "none") == 0)
        http->samesite = BX_SAMESITE_NONE;
    else {
        fprintf(stderr, "bayeux-fcgi: cookie-samesite: expected lax, strict or none\n");
        return -1;
    }
    /* The path goes into a header: visible ASCII, no ';' or ','. */
    if (!o_cookie_path || o_cookie_path[0] != '/'
        || strcspn(o_cookie_path, ";, \t\r\n") != strlen(o_cookie_path)) {
        fprintf(stderr, "bayeux-fcgi: cookie-path: must start with '/' and hold no "
                        "';', ',' or white space\n");
        return -1;
    }
    http->cookie_path = o_cookie_path;
    if (!o_dispatcher || !*o_dispatcher) {
        fprintf(stderr, "bayeux-fcgi: dispatcher: endpoint required\n");
        return -1;
    }
    return 0;
}

static int s_run_worker(const bx_responder_opts_t *ro)
{
    bx_responder_t *r = bx_responder_new(ro);
    int rc;
    if (!r)
        return 1;
    rc = bx_responder_run(r);
    bx_responder_destroy(&r);
    return rc == 0 ? 0 : 1;
}

/* ------------------------------------------------------------ listening */

/* True if fd is a listening stream socket (a web server or spawn-fcgi
 * started us with the socket on fd 0). */
static int s_listen_is_socket(int fd)
{
    int val = 0;
    socklen_t len = sizeof val;
    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &val, &len) == 0 && val;
}

static int s_listen_unix(const char *path, int mode, int backlog, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    struct stat st;
    int fd = -1;

    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "unix socket path too long: %s", path);
        return -1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto error;
    if (lstat(path, &st) == 0) {
        /* Unlink only a stale socket: one nobody listens on any more. */
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "%s exists and is not a socket", path);
            close(fd);
            return -1;
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
        if (probe >= 0)
            close(probe);
        if (live) {
            snprintf(err, errlen, "%s: another process is listening on it "
                                  "(use --workers to share one socket)", path);
            close(fd);
            return -1;
        }
        unlink(path);
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || chmod(path, (mode_t)mode) < 0
        || listen(fd, backlog) < 0)
        goto error;
    bx_info(TAG, "listening on unix:%s (mode %04o)", path, mode);
    s_created_path = bx_strdup(path);
    return fd;
error:
    snprintf(err, errlen, "unix:%s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

static int s_listen_tcp(const char *spec, int backlog, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    struct addrinfo hints, *ai = NULL;
    int fd = -1, one = 1, rc;
    size_t hlen;

    if (!colon || colon == spec || !colon[1]) {
        snprintf(err, errlen, "tcp:%s: expected tcp:host:port", spec);
        return -1;
    }
    hlen = (size_t)(colon - spec);
    if (spec[0] == '[' && hlen >= 2 && spec[hlen - 1] == ']') {   /* [::1]:9000 */
        spec++;
        hlen -= 2;
    }
    if (hlen >= sizeof host) {
        snprintf(err, errlen, "tcp: host name too long");
        return -1;
    }
    memcpy(host, spec, hlen);
    host[hlen] = '\0';
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host, colon + 1, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "tcp:%s:%s: %s", host, colon + 1, gai_strerror(rc));
        return -1;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0
        || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, backlog) < 0) {
        snprintf(err, errlen, "tcp:%s:%s: %s", host, colon + 1, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char h[NI_MAXHOST], p[NI_MAXSERV];
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0
        && getnameinfo((struct sockaddr *)&ss, sl, h, sizeof h, p, sizeof p,
                       NI_NUMERICHOST | NI_NUMERICSERV) == 0)
        bx_info(TAG, "listening on tcp:%s:%s", h, p);
    return fd;
}

/* Opens "unix:/path" (a stale socket is unlinked, chmod to mode) or
 * "tcp:host:port" (port 0 picks one, logged). Returns a non-blocking,
 * close-on-exec listening fd, or -1 with a message in err. */
static int s_listen_open(const char *spec, int mode, int backlog, char *err, size_t errlen)
{
    if (strncmp(spec, "unix:", 5) == 0)
        return s_listen_unix(spec + 5, mode, backlog, err, errlen);
    if (strncmp(spec, "tcp:", 4) == 0)
        return s_listen_tcp(spec + 4, backlog, err, errlen);
    snprintf(err, errlen, "listen: '%s': expected unix:/path or tcp:host:port", spec);
    return -1;
}

/* ------------------------------------------------------------ supervisor */

typedef struct {
    pid_t pid;          /* 0: not running */
    int64_t started;    /* bx_now_ms() at fork */
    int64_t restart_at; /* when a crashed worker may be started again */
} s_worker_t;

static pid_t s_spawn(const bx_responder_opts_t *ro, const sigset_t *parent_mask)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* Child: die with the parent, get the ordinary signal mask back (the
     * responder blocks its own signals for its signalfd). */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(0);
    sigprocmask(SIG_SETMASK, parent_mask, NULL);
    _exit(s_run_worker(ro));
}

static int s_supervise(const bx_responder_opts_t *ro, int n)
{
    s_worker_t w[MAX_WORKERS];
    sigset_t set, old;
    int stopping = 0, alive = 0;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, &old);
    memset(w, 0, sizeof w);
    for (int i = 0; i < n; i++)
        w[i].restart_at = 1;

    for (;;) {
        int64_t now = bx_now_ms();
        for (int i = 0; i < n && !stopping; i++) {
            if (w[i].pid == 0 && w[i].restart_at && w[i].restart_at <= now) {
                w[i].pid = s_spawn(ro, &old);
                if (w[i].pid < 0) {
                    bx_error(TAG, "fork: %s", strerror(errno));
                    w[i].pid = 0;
                    w[i].restart_at = now + 1000;
                    continue;
                }
                w[i].started = now;
                w[i].restart_at = 0;
                alive++;
                bx_info(TAG, "worker %d started (pid %ld)", i, (long)w[i].pid);
            }
        }
        if (stopping && alive == 0)
            break;

        struct timespec ts = { 0, 200 * 1000000L };
        siginfo_t si;
        int sig = sigtimedwait(&set, &si, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            if (!stopping)
                bx_info(TAG, "signal %d: stopping %d workers", sig, alive);
            stopping = 1;
            for (int i = 0; i < n; i++)
                if (w[i].pid > 0)
                    kill(w[i].pid, SIGTERM);
        } else if (sig == SIGHUP) {
            bx_log_reopen();
            for (int i = 0; i < n; i++)
                if (w[i].pid > 0)
                    kill(w[i].pid, SIGHUP);
        }
        /* Reap on every turn: SIGCHLD is not queued once per child. */
        for (;;) {
            int status;
            pid_t pid = waitpid(-1, &status, WNOHANG);
            if (pid <= 0)
                break;
            for (int i = 0; i < n; i++) {
                if (w[i].pid != pid)
                    continue;
                w[i].pid = 0;
                alive--;
                now = bx_now_ms();
                if (!stopping) {
                    /* A worker that dies at once would die again: wait a
                     * second before the next try instead of spinning. */
                    w[i].restart_at = now - w[i].started < 1000 ? now + 1000 : now;
                    bx_warn(TAG, "worker %d (pid %ld) %s %d; restarting", i, (long)pid,
                            WIFSIGNALED(status) ? "killed by signal" : "exited with",
                            WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
                }
            }
        }
    }
    bx_info(TAG, "all workers stopped");
    return 0;
}

/* ------------------------------------------------------------ main */

int main(int argc, char **argv)
{
    char err[512];
    bx_responder_opts_t ro;
    int mode = 0666, level = BX_LOG_INFO, rc, check_only = 0;
    long nofile;

    check_only = bx_config_take_flag(&argc, argv, "--check-config");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            s_usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("bayeux-fcgi %s\n", PACKAGE_VERSION);
            return 0;
        }
    }
    if (bx_config_parse_args(s_opts, s_foreign, argc, argv, err, sizeof err) < 0) {
        fprintf(stderr, "bayeux-fcgi: %s (try --help)\n", err);
        return 2;
    }
    memset(&ro, 0, sizeof ro);
    if (s_check_options(&ro.http, &mode, &level) < 0)
        return 2;
    if (check_only) {
        printf("bayeux-fcgi: configuration ok\n");
        bx_config_free(s_opts);
        return 0;
    }
    bx_log_level = level;
    if (bx_log_open("bayeux-fcgi", o_log) < 0)
        fprintf(stderr, "bayeux-fcgi: cannot open log '%s', using stderr\n", o_log);

    nofile = bx_raise_nofile();
    if (nofile < 0)
        bx_warn(TAG, "RLIMIT_NOFILE: %s", strerror(errno));
    else
        bx_info(TAG, "up to %ld descriptors (about as many waiting requests)", nofile);

    if (o_listen && *o_listen) {
        ro.listen_fd = s_listen_open(o_listen, mode, (int)o_backlog, err, sizeof err);
        if (ro.listen_fd < 0) {
            bx_error(TAG, "%s", err);
            return 1;
        }
    } else if (s_listen_is_socket(0)) {
        ro.listen_fd = 0;   /* FCGI_LISTENSOCK_FILENO: web server or spawn-fcgi */
    } else {
        bx_error(TAG, "no --listen given and fd 0 is not a listening socket: start "
                      "with --listen unix:/path or tcp:host:port, or from a web "
                      "server or spawn-fcgi");
        return 2;
    }
    ro.dispatcher = o_dispatcher;
    ro.request_timeout_ms = o_request_timeout;
    bx_info(TAG, "bayeux-fcgi %s: dispatcher %s, %" PRId64 " worker(s)", PACKAGE_VERSION,
            o_dispatcher, o_workers);

    if (o_workers <= 1)
        rc = s_run_worker(&ro);
    else
        rc = s_supervise(&ro, (int)o_workers);
    if (s_created_path) {
        unlink(s_created_path);
        free(s_created_path);
    }
    bx_config_free(s_opts);
    return rc;
}
