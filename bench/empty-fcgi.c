/* empty-fcgi - the floor of the FastCGI transport, for bench/compare.
 *
 * The plainest libfcgi responder there is: N processes share one listening
 * socket, and each runs the classic blocking FCGX_Accept_r loop: read the
 * params and the whole body, write a small canned Bayeux reply, finish.
 * No state, no JSON parsing, no dispatcher. Whatever rate nginx and this
 * program reach together is the most any FastCGI application can answer
 * through the same nginx on the same machine; bench/compare sets the
 * publish rate of bayeux-fcgi against it.
 *
 * The reply depends only on the path, so that bayeux-bench's publishers get
 * what they expect: .../handshake -> a successful handshake, .../connect ->
 * a successful connect (returned at once, never held), anything else -> a
 * successful publish reply.
 *
 *   empty-fcgi --listen unix:/path.sock|tcp:127.0.0.1:PORT [--workers N]
 */
#include <errno.h>
#include <fcgiapp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char s_head[] = "Status: 200 OK\r\n"
                             "Content-Type: application/json;charset=UTF-8\r\n"
                             "Cache-Control: no-cache, no-store\r\n";

static const char s_handshake[] =
    "[{\"channel\":\"/meta/handshake\",\"version\":\"1.0\","
    "\"supportedConnectionTypes\":[\"long-polling\"],"
    "\"clientId\":\"0123456789abcdefghijklmn\",\"successful\":true,"
    "\"advice\":{\"reconnect\":\"retry\",\"interval\":0,\"timeout\":20000}}]";
static const char s_connect[] =
    "[{\"channel\":\"/meta/connect\",\"successful\":true,"
    "\"advice\":{\"reconnect\":\"retry\",\"interval\":0,\"timeout\":20000}}]";
static const char s_publish[] = "[{\"channel\":\"/bench/0\",\"successful\":true}]";

static volatile sig_atomic_t s_stop;

static void s_on_term(int sig)
{
    (void)sig;
    s_stop = 1;
}

static int s_usage(void)
{
    fprintf(stderr, "usage: empty-fcgi --listen unix:PATH|tcp:HOST:PORT [--workers N]\n");
    return 2;
}

static int s_ends_with(const char *s, const char *tail)
{
    size_t n = s ? strlen(s) : 0, m = strlen(tail);
    return n >= m && strcmp(s + n - m, tail) == 0;
}

static void s_worker(int sock)
{
    FCGX_Request req;
    char buf[16384], head[256];

    if (FCGX_InitRequest(&req, sock, 0) != 0)
        _exit(1);
    while (!s_stop && FCGX_Accept_r(&req) >= 0) {
        const char *uri = FCGX_GetParam("SCRIPT_NAME", req.envp);
        const char *body;
        size_t len;

        /* Read the body to its end, as an application must. */
        while (FCGX_GetStr(buf, sizeof buf, req.in) > 0)
            ;
        if (s_ends_with(uri, "/handshake"))
            body = s_handshake, len = sizeof s_handshake - 1;
        else if (s_ends_with(uri, "/connect"))
            body = s_connect, len = sizeof s_connect - 1;
        else
            body = s_publish, len = sizeof s_publish - 1;
        /* libfcgi's own printf knows no %zu: format here. */
        int hn = snprintf(head, sizeof head, "%sContent-Length: %zu\r\n\r\n", s_head, len);
        FCGX_PutStr(head, hn, req.out);
        FCGX_PutStr(body, (int)len, req.out);
        FCGX_Finish_r(&req);
    }
    _exit(0);
}

int main(int argc, char **argv)
{
    const char *listen = NULL;
    int workers = 1, sock;
    pid_t *kids;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            listen = argv[++i];
        else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc)
            workers = atoi(argv[++i]);
        else
            return s_usage();
    }
    if (!listen || workers < 1 || workers > 64)
        return s_usage();
    if (FCGX_Init() != 0) {
        fprintf(stderr, "empty-fcgi: FCGX_Init failed\n");
        return 1;
    }
    if (strncmp(listen, "unix:", 5) == 0) {
        unlink(listen + 5);
        sock = FCGX_OpenSocket(listen + 5, 1024);
        if (sock >= 0)
            chmod(listen + 5, 0666);
    } else if (strncmp(listen, "tcp:", 4) == 0) {
        sock = FCGX_OpenSocket(listen + 4, 1024);
    } else {
        fprintf(stderr, "empty-fcgi: --listen takes unix:PATH or tcp:HOST:PORT\n");
        return 2;
    }
    if (sock < 0) {
        fprintf(stderr, "empty-fcgi: cannot listen on %s: %s\n", listen, strerror(errno));
        return 1;
    }

    kids = calloc((size_t)workers, sizeof *kids);
    if (!kids)
        return 1;
    for (int i = 0; i < workers; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            signal(SIGTERM, SIG_DFL);
            s_worker(sock);
        }
        if (kids[i] < 0) {
            fprintf(stderr, "empty-fcgi: fork: %s\n", strerror(errno));
            workers = i;
            break;
        }
    }
    /* The parent waits; SIGTERM or SIGINT stops the workers and it. */
    struct sigaction sa = { .sa_handler = s_on_term };
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    while (!s_stop) {
        pid_t p = wait(NULL);
        if (p < 0 && errno == ECHILD)
            break;
    }
    for (int i = 0; i < workers; i++)
        kill(kids[i], SIGTERM);
    while (wait(NULL) > 0 || errno == EINTR)
        ;
    if (strncmp(listen, "unix:", 5) == 0)
        unlink(listen + 5);
    free(kids);
    return 0;
}
