/* responder.c - the event loop of bayeux-fcgi (see responder.h).
 *
 * Life of a request:
 *   accept4 (non-blocking listen socket, several processes may share it;
 *      the new socket is non-blocking too)
 *   -> its bytes are read as they come (EPOLLIN), never waiting: a web
 *      server that streams a slow client's body (Apache's mod_proxy_fcgi
 *      does) costs a buffer, not the loop. Records are framed here; once
 *      the PARAMS stream has ended, libfcgi parses BEGIN_REQUEST and PARAMS
 *      from a memory file (FCGX_Accept_r with ipcFd preset, listen_sock -1:
 *      it never accepts or waits), and FCGX_Free(req, 0) gives its buffers
 *      back at once; the body (STDIN records) is kept up to what
 *      bx_http_begin allows, and counted beyond. Within READ_TIMEOUT_MS and
 *      READ_BUDGET bytes for all requests being received.
 *   -> bx_http_begin / bx_http_take_body decide: answer now, or forward
 *   -> REQUEST frame to bayeuxd; the socket joins epoll with EPOLLRDHUP
 *   -> REPLY: FastCGI STDOUT + END_REQUEST records written here without
 *      waiting; what the socket does not take at once is kept and written
 *      as it drains (EPOLLOUT), within a deadline and a memory budget, so a
 *      web server slow to read (a client that does not read) never stalls
 *      the loop; then close (close also takes the socket out of epoll: it
 *      is never dup'ed).
 *      Client gone (web server closed the connection): CANCEL, close.
 *      Deadline: 504 + CANCEL. Dispatcher disconnected or SIGTERM: 503.
 * We always close after the response (never FCGI_KEEP_CONN).
 */
#include <errno.h>
#include <fcgiapp.h>
#include <fastcgi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "common/log.h"
#include "common/util.h"
#include "common/wire.h"
#include "fcgi/responder.h"

#define TAG "fcgi"

/* epoll data: kind in the high 32 bits, fd in the low 32 bits. */
enum { EV_REQ = 0, EV_LISTEN, EV_ZMQ, EV_MONITOR, EV_SIGNAL, EV_TIMER };
#define EV_DATA(kind, fd) (((uint64_t)(kind) << 32) | (uint32_t)(fd))

#define ACCEPT_BURST 256        /* accepts per wakeup, then let others run */
#define ZMQ_BURST 1024          /* replies per loop turn, likewise */
#define EMFILE_PAUSE_MS 100     /* out of descriptors: stop accepting this long */
#define DISCARD_MAX (64 << 20)  /* stdin bytes we read to throw away at most */
#define FCGI_CHUNK 65528        /* STDOUT record payload (<= 65535, 8-aligned) */
#define WRITE_TIMEOUT_MS 30000  /* a response not written by then is dropped */
#define READ_TIMEOUT_MS 30000   /* a request not received by then is dropped */
#define READ_BUDGET (64 << 20)  /* bytes held by requests being received */
#define PARAMS_MAX (64 << 10)   /* BEGIN_REQUEST and PARAMS records, at most */
#define WRITE_BUDGET (64 << 20) /* bytes of responses waiting for their socket */

/* The parameters a request's handling needs, copied out of libfcgi. */
enum { P_METHOD, P_CONTENT_TYPE, P_CONTENT_LENGTH, P_QUERY_STRING, P_COOKIE, P_ORIGIN,
       P_HTTPS, P_ACR_METHOD, P_ACR_HEADERS, P_REMOTE_ADDR, P_COUNT };
static const char *const s_param_names[P_COUNT] = {
    "REQUEST_METHOD", "CONTENT_TYPE", "CONTENT_LENGTH", "QUERY_STRING", "HTTP_COOKIE",
    "HTTP_ORIGIN", "HTTPS", "HTTP_ACCESS_CONTROL_REQUEST_METHOD",
    "HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "REMOTE_ADDR",
};

/* A request being received, waiting for bayeuxd, or a response waiting for
 * its socket.
 * reqid = counter << 32 | fd: the fd finds the slot, the counter tells a
 * late reply for an earlier request on a reused fd from the one now there. */
typedef struct s_req {
    uint64_t reqid;
    int fd;                     /* FastCGI connection, owned */
    uint16_t fcgi_id;           /* FastCGI requestId for the records */
    int64_t deadline;           /* waiting: when we answer 504; writing: when
                                   the rest of the response is given up */
    struct s_req *prev, *next;  /* its list, in deadline order */
    struct s_list *on;          /* the list it is on, or NULL */
    int in_epoll;               /* fd registered with epoll */
    bx_buf_t out;               /* writing: the records not yet written */
    size_t off;                 /* how much of out was written */
    bx_buf_t in;                /* reading: bytes received, not yet taken */
    size_t scan;                /* reading: records of in already framed */
    int params_done;            /* reading: PARAMS ended, params taken */
    int act;                    /* reading: bx_http_begin's decision */
    char *param[P_COUNT];       /* reading: owned copies, NULL if absent */
    bx_buf_t body;              /* reading: up to http.body_max + 1 bytes */
    size_t body_total;          /* reading: STDIN bytes seen */
    bx_http_req_t http;         /* what the response needs (origin, callback) */
} s_req_t;

/* Requests in deadline order: every deadline of a list is now + the same
 * time, so appending keeps the order and the head expires first. */
typedef struct s_list {
    s_req_t *head, *tail;
    size_t n;
} s_list_t;

struct bx_responder {
    bx_responder_opts_t o;      /* copy; strings lent by the caller */
    int epfd, sigfd, timerfd;   /* owned */
    int listen_fd;              /* lent; -1 once we stopped accepting */
    int accept_paused;          /* listen fd out of epoll after EMFILE */
    int64_t accept_resume;      /* when to put it back */
    int64_t emfile_logged;      /* last EMFILE log, once a second */
    int64_t timer_armed;        /* deadline the timerfd is set to, 0 = none */
    void *zctx, *dealer, *mon;  /* owned ZeroMQ context and sockets */
    int zmq_pending;            /* the DEALER may hold unread replies: read
                                   them before epoll_wait sleeps */
    s_req_t **by_fd;            /* slot per descriptor, NULL when free */
    size_t nfd;
    s_list_t reading;           /* requests being received */
    size_t read_bytes;          /* bytes they hold */
    s_list_t waiting;           /* requests waiting for bayeuxd */
    s_list_t writing;           /* responses waiting for their socket */
    size_t write_bytes;         /* bytes they still hold */
    uint32_t counter;           /* high half of the next reqid */
    FCGX_Request freq;          /* reused for every accept: freed after reading */
    int params_fd;              /* memory file libfcgi reads params from, or
                                   -1 until one is needed (s_take_params) */
    int stop;                   /* SIGTERM/SIGINT seen */
    uint64_t n_forwarded, n_cancelled, n_timeouts, n_write_dropped, n_read_dropped;
};

/* ------------------------------------------------------------ FastCGI out */

/* Writes what the socket takes now of out from *off. Returns 1 when all of
 * it is written, 0 when the socket is full, -1 on an error (the peer is
 * gone). Never waits. */
static int s_write_some(int fd, const bx_buf_t *out, size_t *off)
{
    while (*off < out->len) {
        ssize_t w = send(fd, out->data + *off, out->len - *off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        }
        *off += (size_t)w;
    }
    return 1;
}

static void s_fcgi_header(unsigned char *h, int type, uint16_t id, size_t len)
{
    h[0] = FCGI_VERSION_1;
    h[1] = (unsigned char)type;
    h[2] = (unsigned char)(id >> 8);
    h[3] = (unsigned char)id;
    h[4] = (unsigned char)(len >> 8);
    h[5] = (unsigned char)len;
    h[6] = 0;   /* padding */
    h[7] = 0;
}

/* Frames resp (a CGI response) into out as STDOUT records, the empty STDOUT
 * record that ends the stream and END_REQUEST. */
static void s_fcgi_frame(bx_buf_t *out, uint16_t id, const bx_buf_t *resp)
{
    unsigned char h[FCGI_HEADER_LEN];
    size_t off = 0;

    bx_buf_reserve(out, resp->len + resp->len / FCGI_CHUNK * 8 + 40);
    while (off < resp->len) {
        size_t n = resp->len - off < FCGI_CHUNK ? resp->len - off : FCGI_CHUNK;
        s_fcgi_header(h, FCGI_STDOUT, id, n);
        bx_buf_append(out, h, sizeof h);
        bx_buf_append(out, resp->data + off, n);
        off += n;
    }
    s_fcgi_header(h, FCGI_STDOUT, id, 0);
    bx_buf_append(out, h, sizeof h);
    s_fcgi_header(h, FCGI_END_REQUEST, id, 8);
    bx_buf_append(out, h, sizeof h);
    /* FCGI_EndRequestBody: appStatus 0, FCGI_REQUEST_COMPLETE, reserved. */
    bx_buf_append(out, "\0\0\0\0\0\0\0\0", 8);
}

/* ------------------------------------------------------------ bookkeeping */

static void s_slot_set(bx_responder_t *r, int fd, s_req_t *q)
{
    if ((size_t)fd >= r->nfd) {
        size_t n = r->nfd ? r->nfd : 1024;
        while (n <= (size_t)fd)
            n *= 2;
        r->by_fd = bx_realloc(r->by_fd, n * sizeof *r->by_fd);
        memset(r->by_fd + r->nfd, 0, (n - r->nfd) * sizeof *r->by_fd);
        r->nfd = n;
    }
    r->by_fd[fd] = q;
}

static s_req_t *s_find(bx_responder_t *r, uint64_t reqid)
{
    uint32_t fd = (uint32_t)reqid;
    if (fd >= r->nfd || !r->by_fd[fd] || r->by_fd[fd]->reqid != reqid)
        return NULL;
    return r->by_fd[fd];
}

static void s_list_add(s_list_t *l, s_req_t *q)
{
    q->prev = l->tail;
    q->next = NULL;
    if (l->tail)
        l->tail->next = q;
    else
        l->head = q;
    l->tail = q;
    l->n++;
    q->on = l;
}

static void s_list_del(s_req_t *q)
{
    s_list_t *l = q->on;
    if (!l)
        return;
    if (q->prev)
        q->prev->next = q->next;
    else
        l->head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        l->tail = q->prev;
    l->n--;
    q->on = NULL;
    q->prev = q->next = NULL;
}

/* Takes q out of every index, closes its fd and frees it. Closing is enough
 * to leave epoll: the socket is never dup'ed and workers fork before they
 * accept, so the close drops the last reference. */
static void s_req_free(bx_responder_t *r, s_req_t *q)
{
    s_list_del(q);
    if ((size_t)q->fd < r->nfd && r->by_fd[q->fd] == q)
        r->by_fd[q->fd] = NULL;
    r->write_bytes -= q->out.len - q->off;
    r->read_bytes -= q->in.len + q->body.len;
    close(q->fd);
    bx_buf_free(&q->out);
    bx_buf_free(&q->in);
    bx_buf_free(&q->body);
    for (int i = 0; i < P_COUNT; i++)
        free(q->param[i]);
    bx_http_req_clear(&q->http);
    free(q);
}

static void s_timer_update(bx_responder_t *r);

/* Answers q with resp and frees it once written: at once when its socket
 * takes it all (nearly always: a response fits the socket buffer), else the
 * rest waits on the writing list for EPOLLOUT. Past WRITE_BUDGET bytes
 * waiting in all, the oldest waiting responses are given up first: no
 * number of clients that do not read can make the process grow without
 * bound. */
static void s_respond(bx_responder_t *r, s_req_t *q, const bx_buf_t *resp)
{
    s_list_del(q);
    s_fcgi_frame(&q->out, q->fcgi_id, resp);
    q->off = 0;
    int rc = s_write_some(q->fd, &q->out, &q->off);
    if (rc != 0) {
        if (rc < 0)
            bx_debug(TAG, "fd %d: response not written: %s", q->fd, strerror(errno));
        q->off = q->out.len;
        s_req_free(r, q);
        return;
    }
    size_t left = q->out.len - q->off;
    while (r->writing.head && r->write_bytes + left > WRITE_BUDGET) {
        bx_warn(TAG, "responses waiting for slow readers hold over %d bytes: the oldest "
                "is dropped", WRITE_BUDGET);
        r->n_write_dropped++;
        s_req_free(r, r->writing.head);
    }
    r->write_bytes += left;
    q->deadline = bx_now_ms() + WRITE_TIMEOUT_MS;
    s_list_add(&r->writing, q);
    s_slot_set(r, q->fd, q);
    struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = EV_DATA(EV_REQ, q->fd) };
    if (epoll_ctl(r->epfd, q->in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, q->fd, &ev) < 0) {
        bx_error(TAG, "epoll_ctl(%d): %s", q->fd, strerror(errno));
        s_req_free(r, q);
        return;
    }
    q->in_epoll = 1;
    s_timer_update(r);
}

/* Its socket drained: writes more of q's response. */
static void s_on_writable(bx_responder_t *r, s_req_t *q)
{
    size_t before = q->off;
    int rc = s_write_some(q->fd, &q->out, &q->off);
    r->write_bytes -= q->off - before;
    if (rc == 0)
        return;
    if (rc < 0) {
        bx_debug(TAG, "fd %d: response not written: %s", q->fd, strerror(errno));
        r->n_write_dropped++;
    }
    s_req_free(r, q);
}

/* Sends one message to the dispatcher without waiting; 0 or -1 (errno).
 * Any zmq_send may process ZeroMQ's pending commands, and with them the
 * signal ZMQ_FD stood for, leaving replies that will not wake epoll: so
 * after a send the loop reads the DEALER before it sleeps. */
static int s_send(bx_responder_t *r, const bx_wire_hdr_t *h,
                  const bx_wire_part_t *parts, int nparts)
{
    r->zmq_pending = 1;
    return bx_wire_send(r->dealer, NULL, 0, h, parts, nparts, ZMQ_DONTWAIT);
}

static void s_send_cancel(bx_responder_t *r, uint64_t reqid)
{
    bx_wire_hdr_t h = { .type = BX_WIRE_CANCEL, .reqid = reqid };
    if (s_send(r, &h, NULL, 0) < 0)
        bx_debug(TAG, "cancel %llu not sent: %s", (unsigned long long)reqid,
                 zmq_strerror(errno));
}

/* Answers q with a plain error. */
static void s_req_fail(bx_responder_t *r, s_req_t *q, int status, const char *text)
{
    bx_buf_t resp;
    bx_buf_init(&resp);
    bx_http_write_error(&resp, &r->o.http, &q->http, status, text);
    s_respond(r, q, &resp);
    bx_buf_free(&resp);
}

static void s_fail_all(bx_responder_t *r, int status, const char *text)
{
    size_t n = r->waiting.n;
    while (r->waiting.head)
        s_req_fail(r, r->waiting.head, status, text);
    if (n)
        bx_info(TAG, "answered %zu waiting requests with %d (%s)", n, status, text);
}

/* ------------------------------------------------------------ timer */

/* Arms the timerfd for the earliest of the oldest deadlines and the end of
 * an accept pause. All deadlines of a list are now + the same time, so each
 * list is already in deadline order and its head is the next to expire. Call it
 * when something was added that may be due sooner (a request, a pause).
 * The timer is only ever moved earlier: when the head is answered the timer
 * is left to fire early, and s_on_timer, finding nothing due, arms it for
 * the new head. One spare wakeup per request-timeout instead of one
 * timerfd_settime per request. */
static void s_timer_update(bx_responder_t *r)
{
    int64_t next = r->waiting.head ? r->waiting.head->deadline : 0;
    if (r->writing.head && (next == 0 || r->writing.head->deadline < next))
        next = r->writing.head->deadline;
    if (r->reading.head && (next == 0 || r->reading.head->deadline < next))
        next = r->reading.head->deadline;
    if (r->accept_paused && (next == 0 || r->accept_resume < next))
        next = r->accept_resume;
    if (next == 0 || (r->timer_armed != 0 && r->timer_armed <= next))
        return;
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    its.it_value.tv_sec = next / 1000;
    its.it_value.tv_nsec = (next % 1000) * 1000000L;
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
        its.it_value.tv_nsec = 1;
    /* bx_now_ms is CLOCK_MONOTONIC, like the timerfd. */
    if (timerfd_settime(r->timerfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
        bx_error(TAG, "timerfd_settime: %s", strerror(errno));
    r->timer_armed = next;
}

static void s_listen_watch(bx_responder_t *r, int on)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = EV_DATA(EV_LISTEN, 0) };
    if (r->listen_fd < 0)
        return;
    if (epoll_ctl(r->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, r->listen_fd,
                  on ? &ev : NULL) < 0)
        bx_error(TAG, "epoll_ctl(listen): %s", strerror(errno));
}

static void s_on_timer(bx_responder_t *r)
{
    uint64_t ticks;
    int64_t now = bx_now_ms();

    if (read(r->timerfd, &ticks, sizeof ticks) < 0 && errno != EAGAIN)
        bx_error(TAG, "read(timerfd): %s", strerror(errno));
    r->timer_armed = 0;
    while (r->reading.head && r->reading.head->deadline <= now) {
        bx_debug(TAG, "fd %d: request not received in %d ms, dropped", r->reading.head->fd,
                 READ_TIMEOUT_MS);
        r->n_read_dropped++;
        s_req_free(r, r->reading.head);
    }
    while (r->writing.head && r->writing.head->deadline <= now) {
        bx_debug(TAG, "fd %d: response not taken in %d ms, dropped", r->writing.head->fd,
                 WRITE_TIMEOUT_MS);
        r->n_write_dropped++;
        s_req_free(r, r->writing.head);
    }
    while (r->waiting.head && r->waiting.head->deadline <= now) {
        s_req_t *q = r->waiting.head;
        /* No reply in time: the dispatcher is stuck or lost the request. */
        bx_warn(TAG, "request %llu: no reply from the dispatcher in %lld ms",
                (unsigned long long)q->reqid, (long long)r->o.request_timeout_ms);
        s_send_cancel(r, q->reqid);
        r->n_timeouts++;
        s_req_fail(r, q, 504, "dispatcher timeout");
    }
    if (r->accept_paused && r->accept_resume <= now && !r->stop) {
        r->accept_paused = 0;
        s_listen_watch(r, 1);
    }
    s_timer_update(r);
}

/* ------------------------------------------------------------ ZeroMQ */

static void s_send_hello(bx_responder_t *r)
{
    char text[32];
    bx_wire_hdr_t h = { .type = BX_WIRE_HELLO };
    bx_wire_part_t part = { text, 0 };
    part.len = (size_t)snprintf(text, sizeof text, "pid=%ld", (long)getpid());
    if (s_send(r, &h, &part, 1) < 0)
        bx_warn(TAG, "hello not sent: %s", zmq_strerror(errno));
}

/* Tells the dispatcher's stats of a request refused here (400, 413...). */
static void s_send_note(bx_responder_t *r, int status)
{
    bx_wire_hdr_t h = { .type = BX_WIRE_NOTE, .status = (uint32_t)status };
    s_send(r, &h, NULL, 0);   /* best effort */
}

static void s_on_reply(bx_responder_t *r, const bx_wire_msg_t *m)
{
    s_req_t *q;
    bx_buf_t resp;

    if (m->hdr.type != BX_WIRE_REPLY || m->nparts != BX_WIRE_REPLY_FRAMES) {
        bx_warn(TAG, "unexpected message type %u from the dispatcher", m->hdr.type);
        return;
    }
    q = s_find(r, m->hdr.reqid);
    if (q && q->on != &r->waiting)
        q = NULL;   /* answered already (504, 503), still being written */
    if (!q) {
        /* Cancelled or timed out: the client is gone, nothing to do. */
        bx_debug(TAG, "reply for finished request %llu dropped",
                 (unsigned long long)m->hdr.reqid);
        return;
    }
    bx_buf_init(&resp);
    if (m->hdr.status < 100 || m->hdr.status > 599) {
        bx_warn(TAG, "request %llu: dispatcher sent status %u",
                (unsigned long long)q->reqid, m->hdr.status);
        bx_http_write_error(&resp, &r->o.http, &q->http, 502, "bad dispatcher reply");
    } else {
        bx_http_write_reply(&resp, &r->o.http, &q->http, (int)m->hdr.status,
                            m->part[0], m->part_len[0], m->part[1], m->part_len[1]);
    }
    s_respond(r, q, &resp);
    bx_buf_free(&resp);
}

/* Reads replies until the DEALER has none, or a burst is done (then
 * zmq_pending stays set: the loop looks at other events and comes back).
 * ZMQ_FD is edge-triggered in effect: it signals ZeroMQ's command queue,
 * which any zmq_send or zmq_recv may empty while replies stay unread. So
 * the loop calls this before it sleeps whenever ZMQ_FD fired or something
 * was sent (zmq_pending), once per turn, not once per message. A
 * zmq_msg_recv that ends in EAGAIN has processed those commands itself, so
 * after it the next reply signals ZMQ_FD again; reading until EAGAIN spares
 * the poll() that every ZMQ_EVENTS query costs. */
static void s_zmq_drain(bx_responder_t *r)
{
    for (int n = 0; n < ZMQ_BURST; n++) {
        bx_wire_msg_t m;
        int rc = bx_wire_recv(r->dealer, 0, &m);
        if (rc == 1) {
            r->zmq_pending = 0;
            return;
        }
        if (rc < 0 && errno == EPROTO) {
            bx_warn(TAG, "malformed message from the dispatcher dropped");
            continue;
        }
        if (rc < 0) {
            /* EINTR: come back; anything else will not go away. */
            if (errno != EINTR) {
                bx_error(TAG, "zmq_msg_recv: %s", zmq_strerror(errno));
                r->zmq_pending = 0;
            }
            return;
        }
        s_on_reply(r, &m);
        bx_wire_msg_close(&m);
    }
}

static void s_on_monitor(bx_responder_t *r)
{
    for (;;) {
        zmq_msg_t ev, addr;
        uint16_t event;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, r->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            break;
        }
        memcpy(&event, zmq_msg_size(&ev) >= 2 ? zmq_msg_data(&ev) : "\0\0", 2);
        zmq_msg_close(&ev);
        /* Second frame: the endpoint; arrives with the first. */
        zmq_msg_init(&addr);
        zmq_msg_recv(&addr, r->mon, ZMQ_DONTWAIT);
        zmq_msg_close(&addr);
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            /* Connected (again): tell the dispatcher who we are. */
            bx_info(TAG, "connected to the dispatcher at %s", r->o.dispatcher);
            s_send_hello(r);
        } else if (event == ZMQ_EVENT_DISCONNECTED) {
            /* The dispatcher died with our requests: nothing will answer
             * them. 503 now; the clients retry and re-handshake. */
            bx_warn(TAG, "dispatcher at %s disconnected", r->o.dispatcher);
            s_fail_all(r, 503, "dispatcher unavailable");
        }
    }
}

/* ------------------------------------------------------------ requests */

/* Parks q: sends the REQUEST frame, then waits for REPLY or an abort. */
static void s_forward(bx_responder_t *r, s_req_t *q, const char *remote)
{
    bx_wire_hdr_t h = { .type = BX_WIRE_REQUEST, .transport = (uint8_t)q->http.transport,
                        .reqid = q->reqid };
    bx_wire_part_t parts[3] = {
        { q->http.browser, strlen(q->http.browser) },
        { remote, strlen(remote) },
        { q->http.json, q->http.json_len },
    };
    /* ZMQ_IMMEDIATE: EAGAIN when no dispatcher is connected. */
    if (s_send(r, &h, parts, 3) < 0) {
        bx_buf_t resp;
        bx_debug(TAG, "request not forwarded: %s", zmq_strerror(errno));
        bx_buf_init(&resp);
        bx_http_write_error(&resp, &r->o.http, &q->http, 503, "dispatcher unavailable");
        s_respond(r, q, &resp);
        bx_buf_free(&resp);
        return;
    }
    /* The batch is with the dispatcher now; keep only what the reply needs. */
    free(q->http.json);
    q->http.json = NULL;
    q->http.json_len = 0;
    q->deadline = bx_now_ms() + r->o.request_timeout_ms;
    s_list_add(&r->waiting, q);
    r->n_forwarded++;
    s_timer_update(r);
}

/* q is received: what it held for that is given back (a parked request
 * keeps only its bx_http_req_t). */
static void s_read_done(bx_responder_t *r, s_req_t *q)
{
    s_list_del(q);
    r->read_bytes -= q->in.len + q->body.len;
    bx_buf_free(&q->in);
    bx_buf_free(&q->body);
    for (int i = 0; i < P_COUNT; i++) {
        free(q->param[i]);
        q->param[i] = NULL;
    }
}

/* The params of q as bx_http_begin takes them. */
static void s_params_view(const s_req_t *q, bx_http_params_t *p)
{
    memset(p, 0, sizeof *p);
    p->method = q->param[P_METHOD];
    p->content_type = q->param[P_CONTENT_TYPE];
    p->content_length = q->param[P_CONTENT_LENGTH];
    p->query_string = q->param[P_QUERY_STRING];
    p->cookie = q->param[P_COOKIE];
    p->origin = q->param[P_ORIGIN];
    p->https = q->param[P_HTTPS];
    p->acr_method = q->param[P_ACR_METHOD];
    p->acr_headers = q->param[P_ACR_HEADERS];
}

/* The first len bytes of q->in are BEGIN_REQUEST and the PARAMS stream to
 * its end: libfcgi reads them from a memory file, we copy out the params
 * we need and decide what the request is. Returns 0, or -1 if libfcgi
 * could not read them. */
static int s_take_params(bx_responder_t *r, s_req_t *q, size_t len)
{
    FCGX_Request *fr = &r->freq;
    /* One memory file for all requests: rewritten, cut to size and read
     * from the start each time. */
    if (r->params_fd < 0 &&
        (r->params_fd = memfd_create("bx-fcgi-params", MFD_CLOEXEC)) < 0) {
        bx_error(TAG, "memfd_create: %s", strerror(errno));
        return -1;
    }
    int mfd = r->params_fd;
    size_t off = 0;
    while (off < len) {
        ssize_t w = pwrite(mfd, q->in.data + off, len - off, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            bx_error(TAG, "memfd write: %s", strerror(errno));
            return -1;
        }
        off += (size_t)w;
    }
    if (ftruncate(mfd, (off_t)len) < 0 || lseek(mfd, 0, SEEK_SET) < 0) {
        bx_error(TAG, "memfd: %s", strerror(errno));
        return -1;
    }
    /* listen_sock -1: libfcgi never accepts. With keepConnection set and no
     * streams yet, the FCGX_Finish_r at the top of FCGX_Accept_r closes
     * nothing; ipcFd >= 0 makes it read BEGIN_REQUEST and PARAMS from it.
     * On failure it closes that fd itself. */
    FCGX_InitRequest(fr, -1, 0);
    fr->ipcFd = mfd;
    fr->keepConnection = 1;
    if (FCGX_Accept_r(fr) < 0) {
        bx_debug(TAG, "fd %d: FastCGI params not read", q->fd);
        r->params_fd = -1;   /* libfcgi closed it */
        return -1;
    }
    for (int i = 0; i < P_COUNT; i++) {
        const char *v = FCGX_GetParam(s_param_names[i], fr->envp);
        q->param[i] = v ? bx_strdup(v) : NULL;
    }
    q->fcgi_id = (uint16_t)fr->requestId;
    FCGX_Free(fr, 0);
    bx_http_params_t p;
    s_params_view(q, &p);
    q->act = bx_http_begin(&r->o.http, &p, &q->http);
    return 0;
}

/* Frames the records of q->in: returns 1 when the request is complete (the
 * STDIN stream ended), 0 when more must come, -1 when it is not a request
 * we can take (bad framing, an abort, oversized params or body). */
static int s_take_records(bx_responder_t *r, s_req_t *q)
{
    for (;;) {
        const unsigned char *h = (const unsigned char *)q->in.data + q->scan;
        size_t have = q->in.len - q->scan;
        if (have < FCGI_HEADER_LEN)
            break;
        if (h[0] != FCGI_VERSION_1)
            return -1;
        size_t clen = (size_t)h[4] << 8 | h[5], rlen = FCGI_HEADER_LEN + clen + h[6];
        if (have < rlen)
            break;
        int type = h[1];
        if (type == FCGI_ABORT_REQUEST)
            return -1;
        if (!q->params_done) {
            q->scan += rlen;
            if (type == FCGI_PARAMS && clen == 0) {
                /* Everything before is libfcgi's to parse; then gone. */
                if (s_take_params(r, q, q->scan) < 0)
                    return -1;
                q->params_done = 1;
                memmove(q->in.data, q->in.data + q->scan, q->in.len - q->scan);
                r->read_bytes -= q->scan;
                q->in.len -= q->scan;
                q->scan = 0;
            }
            continue;
        }
        if (type == FCGI_STDIN) {
            if (clen == 0)
                return 1;
            /* Kept up to what bx_http_begin allows (one byte more says it
             * was larger), counted beyond: the whole body is read in every
             * case, since closing a socket with unread data makes the web
             * server see a reset instead of our answer. */
            size_t keep = q->act == BX_HTTP_READ_BODY ? q->http.body_max + 1 : 0;
            if (q->body.len < keep) {
                size_t n = keep - q->body.len < clen ? keep - q->body.len : clen;
                bx_buf_append(&q->body, h + FCGI_HEADER_LEN, n);
                r->read_bytes += n;
            }
            q->body_total += clen;
            if (q->body_total > DISCARD_MAX)
                return -1;
        }
        q->scan += rlen;
    }
    if (!q->params_done) {
        if (q->in.len > PARAMS_MAX)
            return -1;
    } else if (q->scan > 0) {
        memmove(q->in.data, q->in.data + q->scan, q->in.len - q->scan);
        r->read_bytes -= q->scan;
        q->in.len -= q->scan;
        q->scan = 0;
    }
    return 0;
}

/* q is received: answer it now, or forward it to bayeuxd. */
static void s_serve(bx_responder_t *r, s_req_t *q)
{
    bx_http_params_t p;
    bx_buf_t resp;
    s_params_view(q, &p);
    if (q->act == BX_HTTP_READ_BODY)
        q->act = bx_http_take_body(&r->o.http, &p, &q->http, q->body.data ? q->body.data : "",
                                   q->body.len) == 0 ? BX_HTTP_FORWARD : BX_HTTP_RESPOND;
    char remote[64];
    snprintf(remote, sizeof remote, "%s", q->param[P_REMOTE_ADDR] ? q->param[P_REMOTE_ADDR] : "");
    s_read_done(r, q);
    if (q->act == BX_HTTP_FORWARD) {
        q->reqid = ((uint64_t)++r->counter << 32) | (uint32_t)q->fd;
        s_forward(r, q, remote);
        return;
    }
    bx_buf_init(&resp);
    bx_http_write_immediate(&resp, &r->o.http, &q->http);
    if (q->http.status >= 400)
        s_send_note(r, q->http.status);
    s_respond(r, q, &resp);
    bx_buf_free(&resp);
}

/* Bytes arrived for a request being received. */
static void s_on_readable(bx_responder_t *r, s_req_t *q)
{
    char buf[16384];
    for (;;) {
        ssize_t n = recv(q->fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            bx_debug(TAG, "fd %d: connection closed before the request was complete", q->fd);
            s_req_free(r, q);
            return;
        }
        bx_buf_append(&q->in, buf, (size_t)n);
        r->read_bytes += (size_t)n;
        int rc = s_take_records(r, q);
        if (rc < 0) {
            bx_debug(TAG, "fd %d: not a FastCGI request we take; closed", q->fd);
            s_req_free(r, q);
            return;
        }
        if (rc == 1) {
            s_serve(r, q);
            return;
        }
    }
    /* Many slow senders together: the oldest go first. */
    while (r->read_bytes > READ_BUDGET && r->reading.head) {
        bx_warn(TAG, "requests being received hold over %d bytes: the oldest is dropped",
                READ_BUDGET);
        r->n_read_dropped++;
        s_req_free(r, r->reading.head);
    }
}

/* A new connection from the web server: its request is read as it comes. */
static void s_accepted(bx_responder_t *r, int fd)
{
    s_req_t *q = bx_calloc(1, sizeof *q);
    q->fd = fd;
    bx_http_req_init(&q->http);
    struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP,
                              .data.u64 = EV_DATA(EV_REQ, fd) };
    if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        bx_error(TAG, "epoll_ctl(add %d): %s", fd, strerror(errno));
        bx_http_req_clear(&q->http);
        free(q);
        close(fd);
        return;
    }
    q->in_epoll = 1;
    q->deadline = bx_now_ms() + READ_TIMEOUT_MS;
    s_list_add(&r->reading, q);
    s_slot_set(r, fd, q);
    s_timer_update(r);
    /* The web server sends at once what it has: usually the whole request. */
    s_on_readable(r, q);
}

static void s_on_listen(bx_responder_t *r)
{
    for (int i = 0; i < ACCEPT_BURST && r->listen_fd >= 0; i++) {
        int fd = accept4(r->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            s_accepted(r, fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EMFILE || errno == ENFILE) {
            /* Out of descriptors: the pending connection stays in the
             * backlog; do not spin on it, look again in a moment. */
            int64_t now = bx_now_ms();
            if (now - r->emfile_logged >= 1000) {
                bx_warn(TAG, "accept: %s (%zu requests waiting); pausing accepts",
                        strerror(errno), r->waiting.n);
                r->emfile_logged = now;
            }
            s_listen_watch(r, 0);
            r->accept_paused = 1;
            r->accept_resume = now + EMFILE_PAUSE_MS;
            s_timer_update(r);
            return;
        }
        /* EAGAIN: another process sharing the socket won the race. */
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            bx_error(TAG, "accept: %s", strerror(errno));
        return;
    }
}

/* Activity on a parked request's socket: the web server closed or
 * half-closed it (the client went away: no web server sends
 * FCGI_ABORT_REQUEST), or sent FCGI_ABORT_REQUEST. */
static void s_on_request_event(bx_responder_t *r, int fd, uint32_t events)
{
    s_req_t *q = (size_t)fd < r->nfd ? r->by_fd[fd] : NULL;
    unsigned char buf[512];
    ssize_t n;
    int gone = 0;

    if (!q)
        return;
    if (q->on == &r->writing) {
        s_on_writable(r, q);
        return;
    }
    if (q->on == &r->reading) {
        s_on_readable(r, q);
        return;
    }
    /* Always look at the socket itself: an event can be stale when its fd
     * was closed and reused by a new request earlier in the same batch, and
     * then the new socket simply has nothing to read (EAGAIN). */
    n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        gone = 1;
    } else if (n == 0) {
        /* EOF, full close or half-close alike: FastCGI ends a request with
         * its records, so a web server never half-closes to say "request
         * complete". A half-close after the request is lighttpd's
         * tcp-fin-propagate passing on the client's FIN: the client left. */
        gone = 1;
    } else if (n >= FCGI_HEADER_LEN && buf[1] == FCGI_ABORT_REQUEST) {
        gone = 1;
    } else {
        bx_debug(TAG, "request %llu: %zd unexpected bytes ignored",
                 (unsigned long long)q->reqid, n);
    }
    if (!gone)
        return;
    bx_debug(TAG, "request %llu: client went away, cancelled",
             (unsigned long long)q->reqid);
    s_send_cancel(r, q->reqid);
    r->n_cancelled++;
    s_req_free(r, q);
}

static void s_on_signal(bx_responder_t *r)
{
    struct signalfd_siginfo si;
    while (read(r->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGHUP) {
            bx_info(TAG, "SIGHUP: reopening the log");
            bx_log_reopen();
        } else {
            bx_info(TAG, "signal %u: stopping", si.ssi_signo);
            r->stop = 1;
        }
    }
}

/* ------------------------------------------------------------ the loop */

/* At the stop: the responses still being written get a moment, never more
 * than BX_FCGI_IO_TIMEOUT_MS, then are given up. They wait in an epoll of
 * their own: the loop's holds descriptors that stay readable now that
 * nobody reads them (the timer, signals, requests being received). */
static void s_finish_writes(bx_responder_t *r)
{
    struct epoll_event evs[64];
    int64_t end = bx_now_ms() + BX_FCGI_IO_TIMEOUT_MS;
    int ep = r->writing.head ? epoll_create1(EPOLL_CLOEXEC) : -1;
    for (s_req_t *q = r->writing.head; ep >= 0 && q; q = q->next) {
        struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = EV_DATA(EV_REQ, q->fd) };
        epoll_ctl(ep, EPOLL_CTL_ADD, q->fd, &ev);
    }
    while (ep >= 0 && r->writing.head) {
        int64_t left = end - bx_now_ms();
        if (left <= 0)
            break;
        int n = epoll_wait(ep, evs, 64, (int)left);
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n; i++) {
            int fd = (int)(uint32_t)evs[i].data.u64;
            s_req_t *q = (size_t)fd < r->nfd ? r->by_fd[fd] : NULL;
            if (q && q->on == &r->writing)
                s_on_writable(r, q);
        }
    }
    if (ep >= 0)
        close(ep);
    while (r->writing.head) {
        r->n_write_dropped++;
        s_req_free(r, r->writing.head);
    }
}

int bx_responder_run(bx_responder_t *r)
{
    struct epoll_event evs[256];

    /* Edge semantics: events that came before we first looked would never
     * wake epoll. */
    s_on_monitor(r);
    r->zmq_pending = 1;
    while (!r->stop) {
        /* Before sleeping: the replies a send or ZMQ_FD left (s_zmq_drain).
         * A burst that ended early leaves zmq_pending set: do not sleep. */
        if (r->zmq_pending)
            s_zmq_drain(r);
        int n = epoll_wait(r->epfd, evs, 256, r->zmq_pending ? 0 : -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            bx_error(TAG, "epoll_wait: %s", strerror(errno));
            return -1;
        }
        for (int i = 0; i < n && !r->stop; i++) {
            int fd = (int)(uint32_t)evs[i].data.u64;
            switch ((int)(evs[i].data.u64 >> 32)) {
            case EV_REQ: s_on_request_event(r, fd, evs[i].events); break;
            case EV_LISTEN: s_on_listen(r); break;
            case EV_ZMQ: r->zmq_pending = 1; break;
            case EV_MONITOR: s_on_monitor(r); break;
            case EV_SIGNAL: s_on_signal(r); break;
            case EV_TIMER: s_on_timer(r); break;
            default: break;
            }
        }
    }
    /* Stop accepting (other processes on the socket go on), and leave no
     * request hanging: 503 tells the clients to come back. */
    if (!r->accept_paused)
        s_listen_watch(r, 0);
    r->listen_fd = -1;
    for (s_req_t *q = r->waiting.head; q; q = q->next)
        s_send_cancel(r, q->reqid);
    s_fail_all(r, 503, "server shutting down");
    s_finish_writes(r);
    bx_info(TAG, "stopped: %llu forwarded, %llu cancelled by clients, %llu timed out, "
            "%llu responses not taken", (unsigned long long)r->n_forwarded,
            (unsigned long long)r->n_cancelled, (unsigned long long)r->n_timeouts,
            (unsigned long long)r->n_write_dropped);
    return 0;
}

size_t bx_responder_waiting(const bx_responder_t *r)
{
    return r->waiting.n;
}

static int s_epoll_add(bx_responder_t *r, int fd, int kind)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = EV_DATA(kind, fd) };
    if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        bx_error(TAG, "epoll_ctl(add %d): %s", fd, strerror(errno));
        return -1;
    }
    return 0;
}

static int s_zmq_setup(bx_responder_t *r)
{
    int one = 1, zero = 0, hwm = 100000, fd;
    size_t fdlen = sizeof fd;
    char mon_ep[64];

    r->zctx = zmq_ctx_new();
    r->dealer = r->zctx ? zmq_socket(r->zctx, ZMQ_DEALER) : NULL;
    if (!r->dealer)
        goto error;
    /* IMMEDIATE: a send fails at once (EAGAIN) while no dispatcher is
     * connected, so the client gets 503 instead of a queued request. */
    /* A restarted dispatcher is found within 10 ms (ZeroMQ's default is
     * 100 ms, each a round of 503s), backing off to 1 s while it is away. */
    int ivl = 10, ivl_max = 1000;
    if (zmq_setsockopt(r->dealer, ZMQ_IMMEDIATE, &one, sizeof one) < 0
        || zmq_setsockopt(r->dealer, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl) < 0
        || zmq_setsockopt(r->dealer, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max) < 0
        || zmq_setsockopt(r->dealer, ZMQ_LINGER, &zero, sizeof zero) < 0
        || zmq_setsockopt(r->dealer, ZMQ_SNDHWM, &hwm, sizeof hwm) < 0
        || zmq_setsockopt(r->dealer, ZMQ_RCVHWM, &hwm, sizeof hwm) < 0)
        goto error;
    /* The monitor tells us when the dispatcher comes (HELLO) and goes (503
     * for everything waiting). One context per process: the name is free. */
    snprintf(mon_ep, sizeof mon_ep, "inproc://bx-fcgi-monitor-%ld", (long)getpid());
    if (zmq_socket_monitor(r->dealer, mon_ep,
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED) < 0)
        goto error;
    r->mon = zmq_socket(r->zctx, ZMQ_PAIR);
    if (!r->mon || zmq_connect(r->mon, mon_ep) < 0)
        goto error;
    if (zmq_connect(r->dealer, r->o.dispatcher) < 0) {
        bx_error(TAG, "dispatcher endpoint '%s': %s", r->o.dispatcher, zmq_strerror(errno));
        return -1;
    }
    if (zmq_getsockopt(r->dealer, ZMQ_FD, &fd, &fdlen) < 0 || s_epoll_add(r, fd, EV_ZMQ) < 0)
        goto error;
    fdlen = sizeof fd;
    if (zmq_getsockopt(r->mon, ZMQ_FD, &fd, &fdlen) < 0 || s_epoll_add(r, fd, EV_MONITOR) < 0)
        goto error;
    return 0;
error:
    bx_error(TAG, "ZeroMQ setup: %s", zmq_strerror(errno));
    return -1;
}

bx_responder_t *bx_responder_new(const bx_responder_opts_t *opts)
{
    bx_responder_t *r = bx_calloc(1, sizeof *r);
    sigset_t set;

    r->o = *opts;
    r->epfd = r->sigfd = r->timerfd = r->params_fd = -1;
    r->listen_fd = opts->listen_fd;
    /* libfcgi must never wait 2 s for a peer (OS_Close, the AF_UNIX accept
     * keeper): a single loop cannot afford it. We never let it close or
     * accept, this is the second line of defence. */
    setenv("LIBFCGI_OS_CLOSE_POLL_TIMEOUT", "0", 1);
    setenv("LIBFCGI_IS_AF_UNIX_KEEPER_POLL_TIMEOUT", "0", 1);
    if (FCGX_Init() != 0) {
        bx_error(TAG, "FCGX_Init failed");
        goto error;
    }
    /* After FCGX_Init: OS_LibInit installs SIGTERM/SIGUSR1 handlers that
     * only set a flag. Blocked signals go to the signalfd instead. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0
        || (r->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
        bx_error(TAG, "signalfd: %s", strerror(errno));
        goto error;
    }
    signal(SIGPIPE, SIG_IGN);
    r->epfd = epoll_create1(EPOLL_CLOEXEC);
    r->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (r->epfd < 0 || r->timerfd < 0) {
        bx_error(TAG, "epoll/timerfd: %s", strerror(errno));
        goto error;
    }
    if (bx_fd_nonblock(r->listen_fd, 1) < 0) {
        bx_error(TAG, "listen socket %d: %s", r->listen_fd, strerror(errno));
        goto error;
    }
    if (s_epoll_add(r, r->sigfd, EV_SIGNAL) < 0 || s_epoll_add(r, r->timerfd, EV_TIMER) < 0)
        goto error;
    s_listen_watch(r, 1);
    if (s_zmq_setup(r) < 0)
        goto error;
    s_slot_set(r, 0, NULL);
    return r;
error:
    bx_responder_destroy(&r);
    return NULL;
}

void bx_responder_destroy(bx_responder_t **pr)
{
    bx_responder_t *r = pr ? *pr : NULL;
    if (!r)
        return;
    if (r->waiting.head && r->dealer)
        s_fail_all(r, 503, "server shutting down");
    while (r->writing.head)
        s_req_free(r, r->writing.head);
    while (r->reading.head)
        s_req_free(r, r->reading.head);
    if (r->mon)
        zmq_close(r->mon);
    if (r->dealer) {
        /* A moment for the last CANCEL frames to leave; never hang. */
        int linger = 200;
        zmq_setsockopt(r->dealer, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(r->dealer);
    }
    if (r->zctx)
        zmq_ctx_term(r->zctx);
    if (r->epfd >= 0)
        close(r->epfd);
    if (r->sigfd >= 0)
        close(r->sigfd);
    if (r->timerfd >= 0)
        close(r->timerfd);
    if (r->params_fd >= 0)
        close(r->params_fd);
    free(r->by_fd);
    free(r);
    *pr = NULL;
}
