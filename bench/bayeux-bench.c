/* bayeux-bench - a load generator for Bayeux long-polling servers.
 *
 * One thread, one epoll set, non-blocking sockets and a small HTTP/1.1
 * client of its own (keep-alive; Content-Length, chunked and read-to-EOF
 * bodies). N subscribers and P publishers each own ONE keep-alive
 * connection and use it sequentially:
 *   subscriber: handshake, connect (returns at once), subscribe to
 *               /bench/<i % C>, then a /meta/connect long-poll loop;
 *   publisher:  handshake, connect, then one publish per request, paced by
 *               a token schedule for the aggregate rate R (0 = next one as
 *               soon as the reply is in), a connect with timeout 0 every
 *               few seconds so the session is not swept.
 * Every published data object carries its send time (CLOCK_MONOTONIC, ns;
 * same machine, so it is comparable across processes), the publisher and a
 * per (publisher, channel) sequence number, which gives publish-to-deliver
 * latency, duplicates and gaps. lost = expected - received after a drain,
 * where expected counts, for each successful publish, the subscribers that
 * were subscribed to its channel when the reply came.
 *
 * Deliveries are located with a byte scanner (no JSON tree per message, so
 * the generator stays far cheaper than the server it drives); replies
 * (objects with "successful") are parsed with json-c.
 *
 * Loopback only: the URL must name a 127.0.0.0/8 address.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#define NS_PER_S        1000000000LL
#define NS_PER_MS       1000000LL
#define TICK_NS         (100 * NS_PER_MS)   /* housekeeping period */
#define RETRY_NS        (1 * NS_PER_S)      /* back-off after an error */
#define KEEPALIVE_NS    (5 * NS_PER_S)      /* publisher session keep-alive */
#define REQ_TIMEOUT_NS  (90 * NS_PER_S)     /* no answer at all: give up */
#define PACE_SLACK_NS   (1 * NS_PER_S)      /* publisher backlog kept at most */
#define IN_MAX          (64u << 20)         /* largest response accepted */
#define HDR_MAX         16384u              /* largest response head accepted */
#define IN_KEEP         65536u              /* larger buffers freed when idle */
#define MAX_EVENTS      512
#define HIST_MAX_US     60000000LL          /* histogram range 1 us .. 60 s */
#define HIST_BUCKETS    2048

/* ------------------------------------------------------------------ types */

typedef struct {
    char *data;     /* owned; NUL-terminated after len for the scanners */
    size_t len;
    size_t cap;
} buf_t;

/* Log-linear histogram: exact below 128 us, then 64 sub-buckets per power
 * of two (under 1.6 % error), like HdrHistogram with 2 significant digits. */
typedef struct {
    uint64_t count[HIST_BUCKETS];
    uint64_t total;
    uint64_t max;
    double sum;
} hist_t;

typedef enum { ROLE_SUB, ROLE_PUB } role_t;
typedef enum { PH_HANDSHAKE, PH_CONNECT0, PH_SUBSCRIBE, PH_LOOP } phase_t;
typedef enum {
    REQ_NONE, REQ_HANDSHAKE, REQ_CONNECT0, REQ_SUBSCRIBE, REQ_CONNECT,
    REQ_PUBLISH, REQ_KEEPALIVE
} req_t;
typedef enum { NET_CLOSED, NET_CONNECTING, NET_OPEN } net_t;

typedef enum {
    E_CONNECT, E_RESET, E_EOF, E_TIMEOUT, E_HTTP, E_BAD_RESPONSE, E_TOO_LARGE,
    E_NO_REPLY, E_HANDSHAKE, E_CONNECT_FAILED, E_SUBSCRIBE, E_PUBLISH,
    E_FOREIGN, E_COUNT
} err_t;

static const char *const s_err_names[E_COUNT] = {
    "tcp_connect", "reset", "eof", "timeout", "http_status", "bad_response",
    "too_large", "no_reply", "handshake_failed", "connect_failed",
    "subscribe_failed", "publish_failed", "foreign_delivery"
};

typedef struct {
    int fd;
    int index;              /* subscribers 0..N-1, publishers 0..P-1 */
    uint32_t slot;          /* epoll tag: index, publishers after the subscribers */
    uint32_t gen;           /* epoll tag: bumped per socket, so stale events of a
                               closed socket are told from the new one's */
    int fails;              /* consecutive failed requests */
    role_t role;
    phase_t phase;
    net_t net;
    req_t req;              /* request in flight, REQ_NONE when idle */
    bool want_out;          /* EPOLLOUT registered */
    bool reused;            /* socket already carried a full exchange */
    bool retried;           /* the request in flight was resent once */
    bool ready;             /* reached PH_LOOP at least once */
    int channel;            /* subscriber: its channel */
    int src;                /* source address index */
    uint32_t msg_id;        /* Bayeux "id" counter */
    int64_t ack;            /* last ext.ack batch (with --ack) */
    char client_id[128];
    char cookie[128];       /* BAYEUX_BROWSER value, sent back */
    buf_t out;              /* request being sent */
    size_t out_off;
    buf_t in;               /* response being read */
    /* response parser state */
    size_t hdr_len;         /* 0 until the head is complete */
    int status;
    long long clen;         /* -1: none */
    bool chunked, chunk_end, close_after;
    size_t body_len;        /* decoded body bytes at in.data + hdr_len */
    size_t raw_pos;         /* chunked: next undecoded byte */
    int64_t sent_ns;        /* request start */
    int64_t retry_at;       /* no new request before this */
    int64_t interval;       /* advice.interval (ns), kept until advised again */
    int64_t last_connect;   /* publisher: last connect sent */
    int64_t due;            /* publisher: next publish time */
    uint32_t *seen;         /* subscriber: last sequence per publisher */
    uint32_t *seq;          /* publisher: last sequence per channel */
    uint64_t pub_count;     /* publisher: messages built */
} client_t;

typedef enum { G_RAMP, G_WARMUP, G_MEASURE, G_DRAIN, G_DONE } gphase_t;

typedef struct {
    /* options */
    struct sockaddr_in server;
    char host[64];          /* Host header: address:port */
    char base[256];
    struct in_addr src[64];
    int nsrc;
    int subscribers, channels, publishers, size;
    double rate, duration, warmup, drain, ramp_rate;
    bool json_only, idle, ack;
    /* run state */
    int ep;
    gphase_t phase;
    int64_t start, phase_start, measure_start, measure_end, next_report;
    client_t *subs, *pubs;
    int opened_subs;
    int ready_subs;
    int *active;            /* per channel: subscribers in PH_LOOP */
    struct rusage ru_measure0, ru_measure1;
    /* figures */
    uint64_t err[E_COUNT];
    uint64_t http_status[600];
    uint64_t rehandshakes, tcp_opens, retries, pace_slips;
    uint64_t published, expected, received, duplicates, gaps, delivered_total;
    uint64_t m_published, m_delivered, m_requests;  /* inside the window */
    uint64_t sec_published, sec_delivered, sec_requests;
    hist_t lat, sec_lat;
    uint64_t *timeline;     /* deliveries per measured second */
    int timeline_len;
    int parked_at_end, loop_at_end;
    buf_t scratch;
    json_tokener *tok;
} bench_t;

static bench_t B;
static volatile sig_atomic_t s_interrupted;

/* ------------------------------------------------------------ utilities */

static void s_die(const char *what)
{
    fprintf(stderr, "bayeux-bench: %s\n", what);
    exit(2);
}

static void *s_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q)
        abort();            /* out of memory: nothing sensible to do */
    return q;
}

static int64_t s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

/* Makes room for extra bytes plus a terminating NUL. */
static void s_buf_reserve(buf_t *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->data = s_xrealloc(b->data, cap);
    b->cap = cap;
}

static void s_buf_append(buf_t *b, const void *p, size_t n)
{
    s_buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

__attribute__((format(printf, 2, 3)))
static void s_buf_printf(buf_t *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();            /* only our own formats come here */
    if ((size_t)n < sizeof tmp) {
        s_buf_append(b, tmp, (size_t)n);
        return;
    }
    s_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static void s_buf_free(buf_t *b)
{
    free(b->data);
    *b = (buf_t){ 0 };
}

/* ------------------------------------------------------------ histogram */

static int s_hist_index(uint64_t v)
{
    if (v < 128)
        return (int)v;
    int shift = 63 - __builtin_clzll(v) - 6;     /* v >> shift in 64..127 */
    return 128 + (shift - 1) * 64 + (int)((v >> shift) - 64);
}

/* The highest value that falls into bucket i. */
static uint64_t s_hist_value(int i)
{
    if (i < 128)
        return (uint64_t)i;
    int shift = (i - 128) / 64 + 1;
    uint64_t sub = (uint64_t)((i - 128) % 64 + 64);
    return ((sub + 1) << shift) - 1;
}

static void s_hist_add(hist_t *h, int64_t us)
{
    uint64_t v = us < 0 ? 0 : (uint64_t)us;
    if (v > HIST_MAX_US)
        v = HIST_MAX_US;
    h->count[s_hist_index(v)]++;
    h->total++;
    h->sum += (double)v;
    if (v > h->max)
        h->max = v;
}

/* Value at quantile q (0..1), 0 for an empty histogram. */
static uint64_t s_hist_quantile(const hist_t *h, double q)
{
    if (h->total == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)h->total), seen = 0;
    if ((double)want < q * (double)h->total || want == 0)
        want++;             /* ceil() without libm */
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= want) {
            uint64_t v = s_hist_value(i);
            return v < h->max ? v : h->max;
        }
    }
    return h->max;
}

/* -------------------------------------------------------------- options */

static void s_usage(FILE *f)
{
    fputs("usage: bayeux-bench [options]\n"
          "  --url URL             http://127.0.0.1:8080/cometd (loopback only)\n"
          "  --subscribers N       long-polling subscribers (100)\n"
          "  --channels C          channels /bench/0 .. /bench/C-1 (1)\n"
          "  --publishers P        publishers (1)\n"
          "  --rate R              aggregate publishes per second, 0 = as fast\n"
          "                        as replies allow (100)\n"
          "  --size BYTES          data object size (100)\n"
          "  --duration S          measured seconds (10)\n"
          "  --warmup S            seconds published but not measured (2)\n"
          "  --drain S             seconds to wait for deliveries after (3)\n"
          "  --ramp N              new connections per second (2000)\n"
          "  --source-ips A,B,...  loopback source addresses (127.0.0.1)\n"
          "  --idle                subscribers only: hold long-polls, count them\n"
          "  --ack                 ask for the ack extension, send ext.ack\n"
          "  --json-only           print only the JSON line\n", f);
}

/* http://A.B.C.D:PORT/path, loopback addresses only. */
static int s_parse_url(const char *url)
{
    char host[INET_ADDRSTRLEN + 16];
    unsigned port = 80;
    const char *p = url, *slash, *colon;
    if (strncmp(p, "http://", 7) != 0)
        return -1;
    p += 7;
    slash = strchr(p, '/');
    if (!slash)
        slash = p + strlen(p);
    colon = memchr(p, ':', (size_t)(slash - p));
    size_t hl = (size_t)((colon ? colon : slash) - p);
    if (hl == 0 || hl >= sizeof host)
        return -1;
    memcpy(host, p, hl);
    host[hl] = '\0';
    if (colon && (sscanf(colon + 1, "%u", &port) != 1 || port == 0 || port > 65535))
        return -1;
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    B.server.sin_family = AF_INET;
    B.server.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &B.server.sin_addr) != 1)
        return -1;
    if ((ntohl(B.server.sin_addr.s_addr) >> 24) != 127)
        s_die("only loopback servers (127.0.0.0/8) may be driven");
    snprintf(B.host, sizeof B.host, "%s:%u", host, port);
    snprintf(B.base, sizeof B.base, "%s", *slash ? slash : "/");
    size_t bl = strlen(B.base);
    if (bl > 1 && B.base[bl - 1] == '/')
        B.base[bl - 1] = '\0';
    return 0;
}

static int s_parse_ips(const char *list)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", list);
    B.nsrc = 0;
    for (char *save = NULL, *t = strtok_r(tmp, ",", &save); t;
         t = strtok_r(NULL, ",", &save)) {
        if (B.nsrc == (int)(sizeof B.src / sizeof B.src[0]))
            return -1;
        if (inet_pton(AF_INET, t, &B.src[B.nsrc]) != 1)
            return -1;
        if ((ntohl(B.src[B.nsrc].s_addr) >> 24) != 127)
            s_die("source addresses must be loopback (127.0.0.0/8)");
        B.nsrc++;
    }
    return B.nsrc > 0 ? 0 : -1;
}

static double s_arg_num(const char *arg, double lo, double hi)
{
    char *end;
    double v = strtod(arg, &end);
    if (*arg == '\0' || *end != '\0' || !(v >= lo && v <= hi)) {
        fprintf(stderr, "bayeux-bench: bad number '%s'\n", arg);
        exit(2);
    }
    return v;
}

static void s_parse_args(int argc, char **argv)
{
    static const struct option opts[] = {
        { "url", 1, 0, 'u' }, { "subscribers", 1, 0, 'n' },
        { "channels", 1, 0, 'c' }, { "publishers", 1, 0, 'p' },
        { "rate", 1, 0, 'r' }, { "size", 1, 0, 's' },
        { "duration", 1, 0, 'd' }, { "warmup", 1, 0, 'w' },
        { "drain", 1, 0, 'D' }, { "ramp", 1, 0, 'R' },
        { "source-ips", 1, 0, 'S' }, { "idle", 0, 0, 'i' },
        { "ack", 0, 0, 'a' }, { "json-only", 0, 0, 'j' },
        { "help", 0, 0, 'h' }, { 0, 0, 0, 0 }
    };
    const char *url = "http://127.0.0.1:8080/cometd";
    B.subscribers = 100, B.channels = 1, B.publishers = 1, B.size = 100;
    B.rate = 100, B.duration = 10, B.warmup = 2, B.drain = 3, B.ramp_rate = 2000;
    B.nsrc = 1;
    B.src[0].s_addr = htonl(INADDR_LOOPBACK);
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'u': url = optarg; break;
        case 'n': B.subscribers = (int)s_arg_num(optarg, 0, 1000000); break;
        case 'c': B.channels = (int)s_arg_num(optarg, 1, 100000); break;
        case 'p': B.publishers = (int)s_arg_num(optarg, 0, 10000); break;
        case 'r': B.rate = s_arg_num(optarg, 0, 1e9); break;
        case 's': B.size = (int)s_arg_num(optarg, 0, 1 << 24); break;
        case 'd': B.duration = s_arg_num(optarg, 0.1, 1e6); break;
        case 'w': B.warmup = s_arg_num(optarg, 0, 1e6); break;
        case 'D': B.drain = s_arg_num(optarg, 0, 1e6); break;
        case 'R': B.ramp_rate = s_arg_num(optarg, 1, 1e7); break;
        case 'S':
            if (s_parse_ips(optarg) < 0)
                s_die("bad --source-ips");
            break;
        case 'i': B.idle = true; break;
        case 'a': B.ack = true; break;
        case 'j': B.json_only = true; break;
        case 'h': s_usage(stdout); exit(0);
        default: s_usage(stderr); exit(2);
        }
    }
    if (optind != argc || s_parse_url(url) < 0) {
        s_usage(stderr);
        exit(2);
    }
    if (B.idle)
        B.publishers = 0, B.rate = 0;
}

/* -------------------------------------------------------------- figures */

static void s_error(err_t e)
{
    B.err[e]++;
}

static bool s_measuring(void)
{
    return B.phase == G_MEASURE;
}

/* ------------------------------------------------------------ transport */

static uint64_t s_tag(const client_t *c)
{
    return (uint64_t)c->gen << 32 | c->slot;
}

static void s_epoll_set(client_t *c, bool want_out)
{
    if (c->want_out == want_out)
        return;
    struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.u64 = s_tag(c) };
    if (want_out)
        ev.events |= EPOLLOUT;
    if (epoll_ctl(B.ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->want_out = want_out;
}

static void s_close(client_t *c)
{
    if (c->fd >= 0)
        close(c->fd);       /* also removes it from the epoll set */
    c->fd = -1;
    c->net = NET_CLOSED;
    c->reused = false;
    c->want_out = false;
}

static void s_parser_reset(client_t *c)
{
    c->in.len = 0;
    c->hdr_len = 0;
    c->status = 0;
    c->clen = -1;
    c->chunked = c->chunk_end = c->close_after = false;
    c->body_len = c->raw_pos = 0;
    if (c->in.cap > IN_KEEP)
        s_buf_free(&c->in);
}

/* Opens the client's socket, bound to its loopback source address so that
 * 10,000+ sockets do not exhaust one address's ephemeral ports. */
static int s_open(client_t *c)
{
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto error;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (B.nsrc > 1 || B.src[0].s_addr != htonl(INADDR_LOOPBACK)) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr = B.src[c->src] };
        /* The port is chosen at connect() with the full 4-tuple in view. */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
            goto error;
    }
    if (connect(fd, (struct sockaddr *)&B.server, sizeof B.server) < 0 &&
        errno != EINPROGRESS)
        goto error;
    c->gen++;
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.u64 = s_tag(c)
    };
    if (epoll_ctl(B.ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        goto error;
    c->fd = fd;
    c->net = NET_CONNECTING;
    c->want_out = true;
    c->reused = false;
    B.tcp_opens++;
    return 0;
error:
    if (fd >= 0)
        close(fd);
    s_error(E_CONNECT);
    return -1;
}

/* Sends what is left of the request; 0 while fine, -1 when the socket died. */
static int s_flush(client_t *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off,
                         MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            return -1;
        }
        c->out_off += (size_t)n;
    }
    s_epoll_set(c, c->out_off < c->out.len);
    return 0;
}

/* ---------------------------------------------------------- HTTP parser */

static bool s_header_is(const char *line, size_t len, const char *name)
{
    size_t n = strlen(name);
    return len > n && strncasecmp(line, name, n) == 0 && line[n] == ':';
}

static void s_header_value(const char **v, size_t *vl, const char *line, size_t len)
{
    const char *colon = memchr(line, ':', len);
    const char *p = colon + 1, *end = line + len;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    *v = p;
    *vl = (size_t)(end - p);
}

static void s_take_cookie(client_t *c, const char *v, size_t vl)
{
    static const char name[] = "BAYEUX_BROWSER=";
    if (vl < sizeof name - 1 || strncmp(v, name, sizeof name - 1) != 0)
        return;
    v += sizeof name - 1;
    vl -= sizeof name - 1;
    size_t n = 0;
    while (n < vl && v[n] != ';' && n + 1 < sizeof c->cookie)
        n++;
    memcpy(c->cookie, v, n);
    c->cookie[n] = '\0';
}

/* Parses the status line and headers once the blank line is in. */
static int s_http_head(client_t *c)
{
    char *end = memmem(c->in.data, c->in.len, "\r\n\r\n", 4);
    if (!end)
        return c->in.len > HDR_MAX ? -1 : 0;
    c->hdr_len = (size_t)(end - c->in.data) + 4;
    if (strncmp(c->in.data, "HTTP/1.", 7) != 0 || c->in.len < 12)
        return -1;
    c->status = atoi(c->in.data + 9);
    if (c->status < 100 || c->status > 599)
        return -1;
    c->close_after = c->in.data[7] == '0';   /* HTTP/1.0: no keep-alive */
    char *line = (char *)memmem(c->in.data, c->hdr_len, "\r\n", 2) + 2;
    while (line < end) {
        char *eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
        size_t len = (size_t)(eol - line);
        const char *v;
        size_t vl;
        if (memchr(line, ':', len)) {
            s_header_value(&v, &vl, line, len);
            if (s_header_is(line, len, "content-length"))
                c->clen = atoll(v);
            else if (s_header_is(line, len, "transfer-encoding"))
                c->chunked = memmem(v, vl, "chunked", 7) != NULL;
            else if (s_header_is(line, len, "connection"))
                c->close_after = strncasecmp(v, "close", 5) == 0;
            else if (s_header_is(line, len, "set-cookie"))
                s_take_cookie(c, v, vl);
        }
        line = eol + 2;
    }
    if (c->chunked)
        c->clen = -1;
    c->raw_pos = c->hdr_len;
    return c->clen < -1 ? -1 : 1;
}

/* Decodes chunked transfer coding in place (the body only moves left);
 * 1 when the last chunk and trailers are in, 0 for more, -1 on garbage. */
static int s_http_dechunk(client_t *c)
{
    char *d = c->in.data;
    for (;;) {
        char *p = d + c->raw_pos;
        size_t avail = c->in.len - c->raw_pos;
        char *eol = memmem(p, avail, "\r\n", 2);
        if (!eol)
            return avail > 1024 ? -1 : 0;
        size_t line = (size_t)(eol - p);
        if (c->chunk_end) {                 /* trailers, up to a blank line */
            c->raw_pos += line + 2;
            if (line == 0)
                return 1;
            continue;
        }
        char *hex_end;
        unsigned long long size = strtoull(p, &hex_end, 16);
        if (hex_end == p || size > IN_MAX)
            return -1;
        if (size == 0) {
            c->chunk_end = true;
            c->raw_pos += line + 2;
            continue;
        }
        if (avail < line + 2 + size + 2)
            return 0;
        if (memcmp(p + line + 2 + size, "\r\n", 2) != 0)
            return -1;
        memmove(d + c->hdr_len + c->body_len, p + line + 2, size);
        c->body_len += size;
        c->raw_pos += line + 2 + size + 2;
    }
}

/* 1 when a whole response is in, 0 for more, -1 when it is malformed. */
static int s_http_parse(client_t *c, bool eof)
{
    if (c->hdr_len == 0) {
        int rc = s_http_head(c);
        if (rc <= 0)
            return rc;
    }
    if (c->chunked) {
        int rc = s_http_dechunk(c);
        if (rc == 1 && c->raw_pos != c->in.len)
            return -1;              /* we never pipeline: extra bytes are wrong */
        return rc;
    }
    size_t have = c->in.len - c->hdr_len;
    if (c->clen >= 0) {
        if (have < (size_t)c->clen)
            return 0;
        c->body_len = (size_t)c->clen;
        return have == (size_t)c->clen ? 1 : -1;
    }
    if (c->status == 204 || c->status == 304) {
        c->body_len = 0;
        return 1;
    }
    c->close_after = true;          /* body delimited by the end of the stream */
    c->body_len = have;
    return eof ? 1 : 0;
}

/* --------------------------------------------------------- Bayeux client */

static void s_kick(client_t *c, int64_t now);
static void s_response(client_t *c, int64_t now);

static void s_start_request(client_t *c, req_t req, const char *suffix,
                            const buf_t *body, int64_t now)
{
    c->out.len = 0;
    c->out_off = 0;
    s_buf_printf(&c->out, "POST %s%s HTTP/1.1\r\nHost: %s\r\n"
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                 B.base, suffix, B.host, body->len);
    if (c->cookie[0])
        s_buf_printf(&c->out, "Cookie: BAYEUX_BROWSER=%s\r\n", c->cookie);
    s_buf_append(&c->out, "\r\n", 2);
    s_buf_append(&c->out, body->data, body->len);
    c->req = req;
    c->sent_ns = now;
    c->retried = false;
    s_parser_reset(c);
    if (c->net == NET_CLOSED && s_open(c) < 0) {
        c->req = REQ_NONE;
        c->retry_at = now + RETRY_NS;
        return;
    }
    if (c->net == NET_OPEN && s_flush(c) < 0) {
        /* A kept-alive socket the server had already closed: one more go. */
        s_close(c);
        c->retried = true;
        B.retries++;
        if (s_open(c) < 0) {
            c->req = REQ_NONE;
            c->retry_at = now + RETRY_NS;
        }
    }
}

static void s_send_handshake(client_t *c, int64_t now)
{
    buf_t *b = &B.scratch;
    b->len = 0;
    c->client_id[0] = '\0';
    c->ack = 0;
    s_buf_printf(b, "[{\"id\":\"%" PRIu32 "\",\"channel\":\"/meta/handshake\","
                 "\"version\":\"1.0\",\"minimumVersion\":\"1.0\","
                 "\"supportedConnectionTypes\":[\"long-polling\"]%s}]",
                 ++c->msg_id, B.ack ? ",\"ext\":{\"ack\":true}" : "");
    s_start_request(c, REQ_HANDSHAKE, "/handshake", b, now);
}

/* Bayeux: advice {timeout:0} asks for an immediate answer (first connect
 * after a handshake, and the publishers' keep-alive). */
static void s_send_connect(client_t *c, req_t req, int64_t now)
{
    buf_t *b = &B.scratch;
    b->len = 0;
    s_buf_printf(b, "[{\"id\":\"%" PRIu32 "\",\"channel\":\"/meta/connect\","
                 "\"clientId\":\"%s\",\"connectionType\":\"long-polling\"",
                 ++c->msg_id, c->client_id);
    if (req != REQ_CONNECT)
        s_buf_printf(b, ",\"advice\":{\"timeout\":0}");
    if (B.ack)
        s_buf_printf(b, ",\"ext\":{\"ack\":%" PRId64 "}", c->ack);
    s_buf_append(b, "}]", 2);
    if (c->role == ROLE_PUB)
        c->last_connect = now;
    s_start_request(c, req, "/connect", b, now);
}

static void s_send_subscribe(client_t *c, int64_t now)
{
    buf_t *b = &B.scratch;
    b->len = 0;
    s_buf_printf(b, "[{\"id\":\"%" PRIu32 "\",\"channel\":\"/meta/subscribe\","
                 "\"clientId\":\"%s\",\"subscription\":\"/bench/%d\"}]",
                 ++c->msg_id, c->client_id, c->channel);
    s_start_request(c, REQ_SUBSCRIBE, "/", b, now);
}

/* One message to the next channel in turn; the data object is padded with
 * "p" so that it is --size bytes long. */
static void s_send_publish(client_t *c, int64_t now)
{
    buf_t *b = &B.scratch;
    int ch = (int)((c->index + c->pub_count++) % (uint64_t)B.channels);
    uint32_t n = ++c->seq[ch];
    b->len = 0;
    s_buf_printf(b, "[{\"id\":\"%" PRIu32 "\",\"channel\":\"/bench/%d\","
                 "\"clientId\":\"%s\",\"data\":",
                 ++c->msg_id, ch, c->client_id);
    size_t data_at = b->len;
    s_buf_printf(b, "{\"t\":%" PRId64 ",\"s\":%d,\"n\":%" PRIu32 ",\"p\":\"",
                 s_now(), c->index, n);
    size_t used = b->len - data_at + 2;
    size_t pad = (size_t)B.size > used ? (size_t)B.size - used : 0;
    s_buf_reserve(b, pad);
    memset(b->data + b->len, 'x', pad);
    b->len += pad;
    s_buf_append(b, "\"}}]", 4);
    s_start_request(c, REQ_PUBLISH, "/", b, now);
}

static bool s_publishing(void)
{
    return B.phase == G_WARMUP || B.phase == G_MEASURE;
}

/* Starts the client's next request if it is idle and due. */
static void s_kick(client_t *c, int64_t now)
{
    if (c->req != REQ_NONE || now < c->retry_at || B.phase == G_DONE)
        return;
    switch (c->phase) {
    case PH_HANDSHAKE: s_send_handshake(c, now); return;
    case PH_CONNECT0: s_send_connect(c, REQ_CONNECT0, now); return;
    case PH_SUBSCRIBE: s_send_subscribe(c, now); return;
    case PH_LOOP: break;
    }
    if (c->role == ROLE_SUB) {
        s_send_connect(c, REQ_CONNECT, now);
        return;
    }
    if (now - c->last_connect >= KEEPALIVE_NS) {
        s_send_connect(c, REQ_KEEPALIVE, now);
        return;
    }
    if (!s_publishing() || now < c->due)
        return;
    if (B.rate > 0) {
        /* Token schedule: a slow reply is caught up, but by 1 s at most. */
        int64_t period = (int64_t)((double)B.publishers * NS_PER_S / B.rate);
        if (now - c->due > PACE_SLACK_NS) {
            c->due = now;
            B.pace_slips++;
        }
        c->due += period;
    }
    s_send_publish(c, now);
}

static void s_leave_loop(client_t *c)
{
    if (c->role == ROLE_SUB && c->phase == PH_LOOP)
        B.active[c->channel]--;
}

static void s_rehandshake(client_t *c)
{
    s_leave_loop(c);
    c->phase = PH_HANDSHAKE;
    B.rehandshakes++;
}

/* A request failed: the same step again a little later. A TCP failure
 * leaves the session alone (the server says 402 if it expired), but after
 * three answers in a row that were no Bayeux answer (HTTP errors, no reply)
 * the session is presumed gone and is made again. */
static void s_request_failed(client_t *c, err_t e, int64_t now)
{
    bool answered = e == E_HTTP || e == E_NO_REPLY;
    s_error(e);
    c->req = REQ_NONE;
    c->retry_at = now + RETRY_NS;
    if (answered && ++c->fails >= 3 && c->phase != PH_HANDSHAKE) {
        c->fails = 0;
        s_rehandshake(c);
    }
}

/* ------------------------------------------------------ Bayeux responses */

/* Reads the integer after "key" : within [p, end); false when absent. */
static bool s_scan_int(const char *p, const char *end, const char *key, int64_t *out)
{
    size_t kl = strlen(key);
    const char *k = memmem(p, (size_t)(end - p), key, kl);
    if (!k)
        return false;
    p = k + kl;
    while (p < end && (*p == ' ' || *p == ':' || *p == '\t'))
        p++;
    bool neg = p < end && *p == '-';
    p += neg;
    if (p >= end || *p < '0' || *p > '9')
        return false;
    int64_t v = 0;
    while (p < end && *p >= '0' && *p <= '9')
        v = v * 10 + (*p++ - '0');
    *out = neg ? -v : v;
    return true;
}

/* A delivery: latency from the data's send time, and duplicates and gaps
 * from its per (publisher, channel) sequence number. */
static void s_delivery(client_t *c, const char *p, const char *end, int64_t now)
{
    const char *data = memmem(p, (size_t)(end - p), "\"data\"", 6);
    int64_t t, s, n;
    if (c->role != ROLE_SUB || !data || !s_scan_int(data, end, "\"t\"", &t) ||
        !s_scan_int(data, end, "\"s\"", &s) || !s_scan_int(data, end, "\"n\"", &n) ||
        s < 0 || s >= B.publishers || n <= 0 || n > UINT32_MAX) {
        s_error(E_FOREIGN);
        return;
    }
    uint32_t *last = &c->seen[s];
    if ((uint32_t)n <= *last) {
        B.duplicates++;
        return;
    }
    if ((uint32_t)n > *last + 1)
        B.gaps += (uint32_t)n - *last - 1;
    *last = (uint32_t)n;
    B.received++;
    B.delivered_total++;
    B.sec_delivered++;
    if (t >= B.measure_start && B.measure_start > 0 && t < B.measure_end) {
        int64_t us = (now - t) / 1000;
        s_hist_add(&B.lat, us);
        B.m_delivered++;
    }
    s_hist_add(&B.sec_lat, (now - t) / 1000);
}

static const char *s_get_str(json_object *o, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* Bayeux: advice.reconnect "handshake" or a 401/402 error means the
 * session is gone: handshake again (counted). */
static bool s_needs_handshake(json_object *reply)
{
    json_object *advice;
    const char *err = s_get_str(reply, "error");
    if (json_object_object_get_ex(reply, "advice", &advice)) {
        const char *rc = s_get_str(advice, "reconnect");
        if (rc && (strcmp(rc, "handshake") == 0 || strcmp(rc, "none") == 0))
            return true;
    }
    return err && (strncmp(err, "401:", 4) == 0 || strncmp(err, "402:", 4) == 0);
}

/* The pause before the next connect: the last advice.interval received.
 * Like the CometD and Faye clients, advice is kept until a reply brings
 * new advice (servers send it on the first reply and when it changes). */
static int64_t s_advice_interval(client_t *c, json_object *reply)
{
    json_object *advice, *v;
    if (json_object_object_get_ex(reply, "advice", &advice) &&
        json_object_object_get_ex(advice, "interval", &v) &&
        json_object_is_type(v, json_type_int))
        c->interval = json_object_get_int64(v) * NS_PER_MS;
    return c->interval;
}

static void s_reply_ok(client_t *c, json_object *reply, int64_t now)
{
    const char *id;
    json_object *ext, *ack;
    c->fails = 0;
    switch (c->req) {
    case REQ_HANDSHAKE:
        id = s_get_str(reply, "clientId");
        if (!id || strlen(id) >= sizeof c->client_id) {
            s_request_failed(c, E_HANDSHAKE, now);
            return;
        }
        strcpy(c->client_id, id);
        c->phase = PH_CONNECT0;
        break;
    case REQ_CONNECT0:
    case REQ_CONNECT:
        if (B.ack && json_object_object_get_ex(reply, "ext", &ext) &&
            json_object_object_get_ex(ext, "ack", &ack) &&
            json_object_is_type(ack, json_type_int))
            c->ack = json_object_get_int64(ack);
        c->retry_at = now + s_advice_interval(c, reply);
        if (c->phase == PH_CONNECT0)
            c->phase = c->role == ROLE_SUB ? PH_SUBSCRIBE : PH_LOOP;
        break;
    case REQ_SUBSCRIBE:
        c->phase = PH_LOOP;
        B.active[c->channel]++;
        if (!c->ready) {
            c->ready = true;
            B.ready_subs++;
        }
        break;
    case REQ_PUBLISH:
        B.published++;
        B.sec_published++;
        if (s_measuring())
            B.m_published++;
        B.expected += (uint64_t)B.active[(c->index + c->pub_count - 1) % (uint64_t)B.channels];
        break;
    case REQ_KEEPALIVE:
    case REQ_NONE:
        break;
    }
}

static void s_reply_failed(client_t *c, json_object *reply, int64_t now)
{
    req_t req = c->req;
    static const err_t kinds[] = {
        [REQ_HANDSHAKE] = E_HANDSHAKE, [REQ_CONNECT0] = E_CONNECT_FAILED,
        [REQ_CONNECT] = E_CONNECT_FAILED, [REQ_KEEPALIVE] = E_CONNECT_FAILED,
        [REQ_SUBSCRIBE] = E_SUBSCRIBE, [REQ_PUBLISH] = E_PUBLISH,
    };
    if (req != REQ_HANDSHAKE && s_needs_handshake(reply)) {
        s_rehandshake(c);
        return;
    }
    c->req = REQ_NONE;
    s_request_failed(c, kinds[req], now);
}

/* The reply to our request: the object whose channel is the one we sent to
 * (a publish reply carries the data channel). Returns true when handled. */
static bool s_reply(client_t *c, const char *p, size_t len, int64_t now)
{
    json_tokener_reset(B.tok);
    json_object *o = json_tokener_parse_ex(B.tok, p, (int)len);
    if (!o)
        return false;
    const char *ch = s_get_str(o, "channel");
    json_object *ok;
    bool mine = ch && ((c->req == REQ_PUBLISH) ? strncmp(ch, "/meta/", 6) != 0
                       : strncmp(ch, "/meta/", 6) == 0);
    if (mine) {
        if (json_object_object_get_ex(o, "successful", &ok) && json_object_get_boolean(ok))
            s_reply_ok(c, o, now);
        else
            s_reply_failed(c, o, now);
    }
    json_object_put(o);
    return mine;
}

/* Walks the top-level objects of a JSON array (or one object) without
 * building a tree: deliveries are scanned, replies parsed. */
static bool s_body(client_t *c, const char *p, size_t len, int64_t now)
{
    const char *end = p + len, *start = NULL;
    int depth = 0, base = -1;
    bool in_str = false, esc = false, replied = false;
    for (; p < end; p++) {
        char ch = *p;
        if (in_str) {
            if (esc)
                esc = false;
            else if (ch == '\\')
                esc = true;
            else if (ch == '"')
                in_str = false;
            continue;
        }
        if (ch == '"') {
            in_str = true;
        } else if (ch == '[' || ch == '{') {
            if (base < 0)
                base = ch == '[' ? 1 : 0;
            if (ch == '{' && depth == base)
                start = p;
            depth++;
        } else if (ch == ']' || ch == '}') {
            depth--;
            if (ch == '}' && depth == base && start) {
                size_t n = (size_t)(p + 1 - start);
                if (memmem(start, n, "\"successful\"", 12))
                    replied |= s_reply(c, start, n, now);
                else
                    s_delivery(c, start, p + 1, now);
                start = NULL;
            }
        }
    }
    return replied;
}

static void s_response(client_t *c, int64_t now)
{
    B.sec_requests++;
    if (s_measuring())
        B.m_requests++;
    B.http_status[c->status]++;
    c->retry_at = 0;
    if (c->status != 200) {
        s_request_failed(c, E_HTTP, now);
    } else {
        if (!s_body(c, c->in.data + c->hdr_len, c->body_len, now))
            s_request_failed(c, E_NO_REPLY, now);
    }
    c->req = REQ_NONE;
    c->reused = true;
    if (c->close_after)
        s_close(c);
    s_parser_reset(c);
    s_kick(c, now);
}

/* ---------------------------------------------------------- socket events */

/* The connection broke with a request in flight. A kept-alive socket that
 * the server closed before answering gets the request again once. */
static void s_broken(client_t *c, err_t e, int64_t now)
{
    bool fresh = c->reused && c->in.len == 0 && !c->retried;
    s_close(c);
    if (c->req == REQ_NONE)
        return;
    if (fresh) {
        c->retried = true;
        c->out_off = 0;
        B.retries++;
        if (s_open(c) == 0)
            return;
    }
    s_parser_reset(c);
    s_request_failed(c, e, now);
}

static void s_readable(client_t *c, int64_t now)
{
    for (;;) {
        if (c->in.cap - c->in.len < 4096) {
            if (c->in.len >= IN_MAX) {
                s_broken(c, E_TOO_LARGE, now);
                return;
            }
            s_buf_reserve(&c->in, c->in.cap ? c->in.cap : 4096);
        }
        ssize_t n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len - 1, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0 && c->req == REQ_NONE) {
            s_close(c);             /* idle keep-alive closed by the server */
            return;
        }
        if (n < 0) {
            s_broken(c, E_RESET, now);
            return;
        }
        if (n == 0 && c->in.len == 0) {
            s_broken(c, E_EOF, now);
            return;
        }
        c->in.len += (size_t)n;
        c->in.data[c->in.len] = '\0';
        int rc = s_http_parse(c, n == 0);
        if (rc < 0) {
            s_broken(c, E_BAD_RESPONSE, now);
            return;
        }
        if (rc == 1) {
            s_response(c, now);
            return;
        }
        if (n == 0) {
            s_broken(c, E_EOF, now);
            return;
        }
    }
}

static void s_event(client_t *c, uint32_t ev, int64_t now)
{
    if (c->net == NET_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err != 0 || (ev & (EPOLLERR | EPOLLHUP))) {
            s_close(c);
            s_parser_reset(c);
            s_request_failed(c, E_CONNECT, now);
            return;
        }
        c->net = NET_OPEN;
    }
    if ((ev & EPOLLOUT) && c->req != REQ_NONE && c->out_off < c->out.len &&
        s_flush(c) < 0) {
        s_broken(c, E_RESET, now);
        return;
    }
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
        s_readable(c, now);
}

/* Routes an event to its client, unless it belongs to a socket since closed. */
static void s_dispatch(uint64_t tag, uint32_t ev, int64_t now)
{
    uint32_t slot = (uint32_t)tag;
    client_t *c = slot < (uint32_t)B.subscribers ? &B.subs[slot]
                                                : &B.pubs[slot - (uint32_t)B.subscribers];
    if (c->fd >= 0 && c->gen == (uint32_t)(tag >> 32))
        s_event(c, ev, now);
}

/* -------------------------------------------------------------- schedule */

static void s_client_init(client_t *c, role_t role, int index)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->role = role;
    c->index = index;
    c->slot = (uint32_t)(role == ROLE_SUB ? index : B.subscribers + index);
    c->clen = -1;
    c->channel = index % B.channels;
    c->src = index % B.nsrc;
    if (role == ROLE_SUB && B.publishers > 0)
        c->seen = calloc((size_t)B.publishers, sizeof *c->seen);
    if (role == ROLE_PUB)
        c->seq = calloc((size_t)B.channels, sizeof *c->seq);
    if ((role == ROLE_SUB && B.publishers > 0 && !c->seen) || (role == ROLE_PUB && !c->seq))
        abort();
}

static void s_set_phase(gphase_t ph, int64_t now)
{
    B.phase = ph;
    B.phase_start = now;
    if (ph == G_WARMUP) {
        /* Paced: publisher i starts i/R seconds in, so that together they
         * make one even stream at R instead of P publishes at once every
         * P/R seconds (bursts that would measure queueing, not the server). */
        double gap = B.rate > 0 ? (double)NS_PER_S / B.rate : 0;
        for (int i = 0; i < B.publishers; i++) {
            B.pubs[i].src = (B.subscribers + i) % B.nsrc;
            B.pubs[i].due = now + (int64_t)(gap * i);
            s_kick(&B.pubs[i], now);
        }
    }
    if (ph == G_MEASURE) {
        B.measure_start = now;
        B.measure_end = now + (int64_t)(B.duration * NS_PER_S);
        getrusage(RUSAGE_SELF, &B.ru_measure0);
    }
    if (ph == G_DRAIN || (ph == G_DONE && B.idle)) {
        getrusage(RUSAGE_SELF, &B.ru_measure1);
        for (int i = 0; i < B.subscribers; i++) {
            B.loop_at_end += B.subs[i].phase == PH_LOOP;
            B.parked_at_end += B.subs[i].req == REQ_CONNECT;
        }
    }
}

static bool s_publish_in_flight(void)
{
    for (int i = 0; i < B.publishers; i++)
        if (B.pubs[i].req == REQ_PUBLISH)
            return true;
    return false;
}

/* Moves the run along: ramp-up, warm-up, measure, drain, done. */
static void s_advance(int64_t now)
{
    double in_phase = (double)(now - B.phase_start) / NS_PER_S;
    double ramp_limit = B.subscribers / B.ramp_rate + 30;
    switch (B.phase) {
    case G_RAMP:
        if (B.ready_subs == B.subscribers || in_phase > ramp_limit) {
            if (B.ready_subs < B.subscribers)
                fprintf(stderr, "bayeux-bench: only %d of %d subscribers ready\n",
                        B.ready_subs, B.subscribers);
            s_set_phase(B.idle ? G_MEASURE : G_WARMUP, now);
        }
        break;
    case G_WARMUP:
        if (in_phase >= B.warmup)
            s_set_phase(G_MEASURE, now);
        break;
    case G_MEASURE:
        if (in_phase >= B.duration)
            s_set_phase(B.idle ? G_DONE : G_DRAIN, now);
        break;
    case G_DRAIN:
        if (in_phase >= B.drain || (B.received >= B.expected && !s_publish_in_flight()))
            s_set_phase(G_DONE, now);
        break;
    case G_DONE:
        break;
    }
}

static void s_tick(int64_t now)
{
    /* Ramp-up: a bounded connection rate keeps the listen backlog sane. */
    double since = (double)(now - B.start) / NS_PER_S;
    double want = since * B.ramp_rate + 1;
    int allowed = want < B.subscribers ? (int)want : B.subscribers;
    while (B.opened_subs < allowed)
        s_kick(&B.subs[B.opened_subs++], now);
    for (int i = 0; i < B.opened_subs + B.publishers; i++) {
        client_t *c = i < B.opened_subs ? &B.subs[i] : &B.pubs[i - B.opened_subs];
        if (c->req != REQ_NONE && now - c->sent_ns > REQ_TIMEOUT_NS) {
            s_close(c);
            s_parser_reset(c);
            s_request_failed(c, E_TIMEOUT, now);
        } else if (c->req == REQ_NONE && (c->role == ROLE_SUB || B.phase != G_RAMP)) {
            s_kick(c, now);
        }
    }
    s_advance(now);
}

/* Earliest publisher due time, for the epoll timeout. */
static int64_t s_next_wake(int64_t next_tick)
{
    int64_t w = next_tick;
    if (!s_publishing())
        return w;
    for (int i = 0; i < B.publishers; i++) {
        client_t *c = &B.pubs[i];
        int64_t t = c->due > c->retry_at ? c->due : c->retry_at;
        if (c->req == REQ_NONE && c->phase == PH_LOOP && t < w)
            w = t;
    }
    return w;
}

/* ------------------------------------------------------------- reporting */

static const char *s_phase_name(void)
{
    static const char *const names[] = { "ramp", "warmup", "measure", "drain", "done" };
    return names[B.phase];
}

static uint64_t s_errors_total(void)
{
    uint64_t n = 0;
    for (int i = 0; i < E_COUNT; i++)
        n += B.err[i];
    return n;
}

static void s_per_second(int64_t now)
{
    if (B.phase == G_MEASURE) {
        B.timeline = s_xrealloc(B.timeline, sizeof *B.timeline * (size_t)(B.timeline_len + 1));
        B.timeline[B.timeline_len++] = B.sec_delivered;
    }
    if (!B.json_only) {
        int parked = 0;
        for (int i = 0; i < B.opened_subs; i++)
            parked += B.subs[i].req == REQ_CONNECT;
        printf("%6.1f %-7s delivered/s %8" PRIu64 "  published/s %7" PRIu64
               "  requests/s %7" PRIu64 "  p99 %7" PRIu64 " us (all %7" PRIu64
               ")  ready %d parked %d errors %" PRIu64 "\n",
               (double)(now - B.start) / NS_PER_S, s_phase_name(), B.sec_delivered,
               B.sec_published, B.sec_requests, s_hist_quantile(&B.sec_lat, 0.99),
               s_hist_quantile(&B.lat, 0.99), B.ready_subs, parked, s_errors_total());
        fflush(stdout);
    }
    B.sec_delivered = B.sec_published = B.sec_requests = 0;
    memset(&B.sec_lat, 0, sizeof B.sec_lat);
}

static double s_tv(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void s_summary(double cpu_u, double cpu_s, double m_cpu)
{
    const hist_t *h = &B.lat;
    printf("\nbayeux-bench http://%s%s: %d subscribers on %d channels, %d publishers "
           "at %g msg/s, %d B, %g s measured\n", B.host, B.base, B.subscribers,
           B.channels, B.publishers, B.rate, B.size, B.duration);
    printf("  delivered        %12" PRIu64 "  %12.0f msg/s\n", B.m_delivered,
           (double)B.m_delivered / B.duration);
    printf("  published        %12" PRIu64 "  %12.0f msg/s\n", B.m_published,
           (double)B.m_published / B.duration);
    printf("  HTTP requests    %12" PRIu64 "  %12.0f req/s\n", B.m_requests,
           (double)B.m_requests / B.duration);
    printf("  latency us       p50 %" PRIu64 "  p90 %" PRIu64 "  p99 %" PRIu64
           "  p99.9 %" PRIu64 "  max %" PRIu64 "  mean %.0f\n",
           s_hist_quantile(h, 0.5), s_hist_quantile(h, 0.9), s_hist_quantile(h, 0.99),
           s_hist_quantile(h, 0.999), h->max, h->total ? h->sum / (double)h->total : 0);
    printf("  whole run        published %" PRIu64 "  expected %" PRIu64 "  received %"
           PRIu64 "  lost %" PRId64 "  duplicates %" PRIu64 "  gaps %" PRIu64 "\n",
           B.published, B.expected, B.received, (int64_t)(B.expected - B.received),
           B.duplicates, B.gaps);
    printf("  sessions         ready %d  in loop at end %d  parked at end %d  "
           "re-handshakes %" PRIu64 "  tcp opens %" PRIu64 "  retries %" PRIu64 "\n",
           B.ready_subs, B.loop_at_end, B.parked_at_end, B.rehandshakes, B.tcp_opens,
           B.retries);
    printf("  errors          ");
    for (int i = 0; i < E_COUNT; i++)
        if (B.err[i])
            printf(" %s %" PRIu64, s_err_names[i], B.err[i]);
    for (int i = 0; i < 600; i++)
        if (B.http_status[i] && i != 200)
            printf(" http_%d %" PRIu64, i, B.http_status[i]);
    printf("%s\n", s_errors_total() ? "" : " none");
    printf("  generator cpu    user %.2f s  sys %.2f s  (measured window %.2f s = %.0f%% "
           "of one core)\n\n", cpu_u, cpu_s, m_cpu, 100 * m_cpu / B.duration);
}

static void s_json(double cpu_u, double cpu_s, double m_cpu)
{
    const hist_t *h = &B.lat;
    printf("{\"bench\":\"bayeux-bench\",\"url\":\"http://%s%s\",\"subscribers\":%d,"
           "\"channels\":%d,\"publishers\":%d,\"rate\":%g,\"size\":%d,\"duration_s\":%g,"
           "\"warmup_s\":%g,\"drain_s\":%g,\"idle\":%s,\"ack\":%s,\"source_ips\":%d,",
           B.host, B.base, B.subscribers, B.channels, B.publishers, B.rate, B.size,
           B.duration, B.warmup, B.drain, B.idle ? "true" : "false",
           B.ack ? "true" : "false", B.nsrc);
    printf("\"delivered\":%" PRIu64 ",\"delivered_per_s\":%.1f,\"published\":%" PRIu64
           ",\"published_per_s\":%.1f,\"requests\":%" PRIu64 ",\"requests_per_s\":%.1f,",
           B.m_delivered, (double)B.m_delivered / B.duration, B.m_published,
           (double)B.m_published / B.duration, B.m_requests,
           (double)B.m_requests / B.duration);
    printf("\"latency_us\":{\"p50\":%" PRIu64 ",\"p90\":%" PRIu64 ",\"p99\":%" PRIu64
           ",\"p999\":%" PRIu64 ",\"max\":%" PRIu64 ",\"mean\":%.1f,\"count\":%" PRIu64 "},",
           s_hist_quantile(h, 0.5), s_hist_quantile(h, 0.9), s_hist_quantile(h, 0.99),
           s_hist_quantile(h, 0.999), h->max, h->total ? h->sum / (double)h->total : 0,
           h->total);
    printf("\"total_published\":%" PRIu64 ",\"expected\":%" PRIu64 ",\"received\":%" PRIu64
           ",\"lost\":%" PRId64 ",\"duplicates\":%" PRIu64 ",\"gaps\":%" PRIu64 ",",
           B.published, B.expected, B.received, (int64_t)(B.expected - B.received),
           B.duplicates, B.gaps);
    printf("\"ready\":%d,\"in_loop_at_end\":%d,\"parked_at_end\":%d,\"rehandshakes\":%"
           PRIu64 ",\"tcp_opens\":%" PRIu64 ",\"retries\":%" PRIu64 ",\"pace_slips\":%"
           PRIu64 ",\"errors\":{", B.ready_subs, B.loop_at_end, B.parked_at_end,
           B.rehandshakes, B.tcp_opens, B.retries, B.pace_slips);
    const char *sep = "";
    for (int i = 0; i < E_COUNT; i++, sep = ",")
        printf("%s\"%s\":%" PRIu64, sep, s_err_names[i], B.err[i]);
    printf("},\"http_status\":{");
    sep = "";
    for (int i = 0; i < 600; i++)
        if (B.http_status[i]) {
            printf("%s\"%d\":%" PRIu64, sep, i, B.http_status[i]);
            sep = ",";
        }
    printf("},\"timeline\":[");
    for (int i = 0; i < B.timeline_len; i++)
        printf("%s%" PRIu64, i ? "," : "", B.timeline[i]);
    printf("],\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,\"cpu_measure_s\":%.3f}\n",
           cpu_u, cpu_s, m_cpu);
}

static void s_report(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    if (B.ru_measure1.ru_utime.tv_sec == 0 && B.ru_measure1.ru_utime.tv_usec == 0)
        B.ru_measure1 = ru;         /* interrupted before the window closed */
    double m_cpu = s_tv(B.ru_measure1.ru_utime) + s_tv(B.ru_measure1.ru_stime) -
                   s_tv(B.ru_measure0.ru_utime) - s_tv(B.ru_measure0.ru_stime);
    if (B.measure_start == 0)
        m_cpu = 0;
    if (!B.json_only)
        s_summary(s_tv(ru.ru_utime), s_tv(ru.ru_stime), m_cpu);
    s_json(s_tv(ru.ru_utime), s_tv(ru.ru_stime), m_cpu);
    fflush(stdout);
}

/* ------------------------------------------------------------------ main */

static void s_on_signal(int sig)
{
    (void)sig;
    s_interrupted = 1;
}

static void s_setup(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if ((rlim_t)(B.subscribers + B.publishers + 16) > rl.rlim_cur)
            fprintf(stderr, "bayeux-bench: warning: %d clients but only %llu descriptors\n",
                    B.subscribers + B.publishers, (unsigned long long)rl.rlim_cur);
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = { .sa_handler = s_on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    B.ep = epoll_create1(EPOLL_CLOEXEC);
    if (B.ep < 0)
        s_die("epoll_create1 failed");
    B.tok = json_tokener_new();
    B.active = calloc((size_t)B.channels, sizeof *B.active);
    B.subs = calloc((size_t)B.subscribers + 1, sizeof *B.subs);
    B.pubs = calloc((size_t)B.publishers + 1, sizeof *B.pubs);
    if (!B.tok || !B.active || !B.subs || !B.pubs)
        abort();
    for (int i = 0; i < B.subscribers; i++)
        s_client_init(&B.subs[i], ROLE_SUB, i);
    for (int i = 0; i < B.publishers; i++)
        s_client_init(&B.pubs[i], ROLE_PUB, i);
}

/* epoll_pwait2 (Linux 5.11) for sub-millisecond publish pacing; kernels and
 * tools without it (ENOSYS) get epoll_wait with the timeout rounded up. */
static int s_wait(struct epoll_event *evs, int64_t wait_ns)
{
    static bool no_pwait2;
    if (wait_ns < 0)
        wait_ns = 0;
    if (!no_pwait2) {
        struct timespec ts = { wait_ns / NS_PER_S, wait_ns % NS_PER_S };
        int n = epoll_pwait2(B.ep, evs, MAX_EVENTS, &ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        no_pwait2 = true;
    }
    return epoll_wait(B.ep, evs, MAX_EVENTS, (int)((wait_ns + NS_PER_MS - 1) / NS_PER_MS));
}

static void s_loop(void)
{
    struct epoll_event evs[MAX_EVENTS];
    int64_t now = s_now(), next_tick = now, next_second = now + NS_PER_S;
    B.start = B.phase_start = now;
    while (B.phase != G_DONE && !s_interrupted) {
        int n = s_wait(evs, s_next_wake(next_tick) - now);
        if (n < 0 && errno != EINTR)
            s_die("epoll_wait failed");
        now = s_now();
        for (int i = 0; i < n; i++)
            s_dispatch(evs[i].data.u64, evs[i].events, now);
        for (int i = 0; s_publishing() && i < B.publishers; i++)
            if (B.pubs[i].req == REQ_NONE)
                s_kick(&B.pubs[i], now);
        if (now >= next_tick) {
            s_tick(now);
            next_tick = now + TICK_NS;
        }
        if (now >= next_second) {
            s_per_second(now);
            next_second += NS_PER_S;
        }
    }
    if (B.phase != G_DONE && B.measure_end == 0)
        B.measure_end = now;
}

int main(int argc, char **argv)
{
    s_parse_args(argc, argv);
    s_setup();
    if (!B.json_only)
        printf("bayeux-bench: %d subscribers, %d channels, %d publishers, rate %g, "
               "size %d, duration %g s, warm-up %g s, drain %g s%s\n", B.subscribers,
               B.channels, B.publishers, B.rate, B.size, B.duration, B.warmup, B.drain,
               B.idle ? ", idle" : "");
    s_loop();
    s_report();
    for (int i = 0; i < B.subscribers; i++) {
        s_close(&B.subs[i]);
        s_buf_free(&B.subs[i].in);
        s_buf_free(&B.subs[i].out);
        free(B.subs[i].seen);
    }
    for (int i = 0; i < B.publishers; i++) {
        s_close(&B.pubs[i]);
        s_buf_free(&B.pubs[i].in);
        s_buf_free(&B.pubs[i].out);
        free(B.pubs[i].seq);
    }
    json_tokener_free(B.tok);
    free(B.active);
    free(B.subs);
    free(B.pubs);
    free(B.timeline);
    s_buf_free(&B.scratch);
    close(B.ep);
    return s_interrupted ? 130 : 0;
}
