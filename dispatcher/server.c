/* server.c - see server.h. */
#include "server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "app.h"
#include "bayeux.h"
#include "guard.h"
#include "log.h"
#include "map.h"
#include "util.h"
#include "wire.h"

#define TAG "server"
#define BATCH_RECV 1024   /* messages handled before timers get a turn */
#define SLICE_US 5000     /* or this long: then the commit, replies, timers */
#define SLOW_COMMIT_US 100000   /* a group commit this long is worth a warning */
#define SLOW_COMMIT_EVERY_MS 10000   /* at most one such warning this often */
#define WATCH_EVERY_MS 1000   /* the database's files are looked at this often */
#define PEER_SCAN_MAX 8   /* up to this many responders, found without the index */

/* A responder, known by its ZeroMQ routing id. */
typedef struct {
    unsigned char id[256];
    size_t idlen;
} s_peer_t;

struct bx_server {
    void *ctx;
    void *router;
    int sigfd;
    bx_engine_t *engine;
    bx_store_t *store;
    bx_app_t *app;
    bx_limits_t limits;
    bx_map_t *peer_index;      /* routing id -> peer number + 1 */
    s_peer_t *peers;           /* owned array */
    uint32_t npeers, cappeers;
    char *endpoint;
    uint64_t bad_frames;
    bx_slowlog_t slowlog;      /* slow commits seen and logged */
    char *database;            /* the database's path, for log lines */
    int64_t next_watch;        /* when the database's files are looked at next */
};

uint64_t bx_slowlog_check(bx_slowlog_t *w, const bx_store_stats_t *ss, int64_t now)
{
    /* Only a commit made since the last look counts: the figures of the
     * last one stay as they are while nothing is written. */
    if (ss->commits == w->seen)
        return 0;
    w->seen = ss->commits;
    if (ss->commit_us_last < SLOW_COMMIT_US)
        return 0;
    w->unlogged++;
    if (w->logged_at != 0 && now - w->logged_at < SLOW_COMMIT_EVERY_MS)
        return 0;
    uint64_t n = w->unlogged;
    w->unlogged = 0;
    w->logged_at = now;
    return n;
}

/* A slow disk shows: every responder waits for the group commit. */
static void s_watch_commit(bx_server_t *srv, int64_t now)
{
    bx_store_stats_t ss;
    bx_store_stats(srv->store, &ss);
    uint64_t n = bx_slowlog_check(&srv->slowlog, &ss, now);
    if (n == 1)
        bx_warn(TAG, "a group commit took %lld ms (longest so far %lld ms): replies wait "
                "for the disk", (long long)ss.commit_us_last / 1000,
                (long long)ss.commit_us_max / 1000);
    else if (n > 1)
        bx_warn(TAG, "%llu group commits took over %d ms in the last %d s, the last %lld ms "
                "(longest so far %lld ms): replies wait for the disk", (unsigned long long)n,
                SLOW_COMMIT_US / 1000, SLOW_COMMIT_EVERY_MS / 1000,
                (long long)ss.commit_us_last / 1000, (long long)ss.commit_us_max / 1000);
}

/* The database cannot go on: says why and what to do; returns the exit
 * status that goes with it. */
static int s_database_fault(bx_server_t *srv)
{
    const char *why;
    bx_fault_t f = bx_store_fault(srv->store, &why);
    int status = bx_fault_exit_status(f);
    bx_error(TAG, "database %s: %s: stopping, without answering what it does not hold; %s "
             "(exit status %d)", srv->database, *why ? why : "a write failed",
             bx_fault_advice(f), status);
    return status;
}

/* Engine output: one REPLY to the responder that sent the request. */
static int s_send(void *ud, const bx_origin_t *to, int status, const char *browser,
                  const char *body, size_t len)
{
    bx_server_t *srv = ud;
    if (to->peer >= srv->npeers)
        return -1;
    const s_peer_t *p = &srv->peers[to->peer];
    bx_wire_hdr_t h = { BX_WIRE_VERSION, BX_WIRE_REPLY, 0, 0, (uint32_t)status, to->reqid };
    bx_wire_part_t parts[2] = {
        { browser ? browser : "", browser ? strlen(browser) : 0 },
        { body, len }
    };
    if (bx_wire_send(srv->router, p->id, p->idlen, &h, parts, 2, ZMQ_DONTWAIT) != 0) {
        /* EHOSTUNREACH: the responder is gone (ROUTER_MANDATORY). EAGAIN: its
         * pipe is full. Either way the engine keeps the messages queued. */
        bx_warn(TAG, "reply %llu not sent: %s", (unsigned long long)to->reqid,
                zmq_strerror(errno));
        return -1;
    }
    return 0;
}

static uint32_t s_peer(bx_server_t *srv, const void *id, size_t idlen)
{
    /* A few responders is the usual case: comparing their ids costs less
     * than hashing the id for the index, on every request. */
    if (srv->npeers <= PEER_SCAN_MAX && idlen <= sizeof srv->peers[0].id) {
        for (uint32_t i = 0; i < srv->npeers; i++) {
            const s_peer_t *p = &srv->peers[i];
            if (p->idlen == idlen && memcmp(p->id, id, idlen) == 0)
                return i;
        }
    }
    uintptr_t v = (uintptr_t)bx_map_get(srv->peer_index, id, idlen);
    if (v)
        return (uint32_t)(v - 1);
    if (srv->npeers == srv->cappeers) {
        srv->cappeers = srv->cappeers ? srv->cappeers * 2 : 8;
        srv->peers = bx_realloc(srv->peers, srv->cappeers * sizeof *srv->peers);
    }
    s_peer_t *p = &srv->peers[srv->npeers];
    p->idlen = idlen < sizeof p->id ? idlen : sizeof p->id;
    memcpy(p->id, id, p->idlen);
    bx_map_put(srv->peer_index, id, idlen, (void *)(uintptr_t)(srv->npeers + 1));
    return srv->npeers++;
}

/* The cookie is the client's: keep it only if we could have issued it
 * (the responder checked too; no socket is trusted). */
static void s_browser(const char *p, size_t len, char out[BX_BROWSER_LEN + 1])
{
    out[0] = '\0';
    if (!bx_browser_valid(p, len))
        return;
    memcpy(out, p, len);
    out[len] = '\0';
}

static void s_request(bx_server_t *srv, const bx_wire_msg_t *m, int64_t now)
{
    bx_origin_t o = { s_peer(srv, m->identity, m->idlen), m->hdr.reqid };
    char browser[BX_BROWSER_LEN + 1];
    bx_batch_err_t err;

    s_browser(m->part[0], m->part_len[0], browser);
    /* The responder checked the body already; a dispatcher still trusts no
     * socket, so a bad one is answered, never acted upon. */
    json_object *batch = bx_batch_parse(m->part[2], m->part_len[2], &srv->limits, &err);
    if (!batch) {
        const char *why = bx_batch_strerror(err);
        bx_warn(TAG, "request %llu rejected: %s", (unsigned long long)o.reqid, why);
        s_send(srv, &o, bx_batch_http_status(err), NULL, why, strlen(why));
        return;
    }
    char addr[48];
    size_t alen = m->part_len[1] < sizeof addr - 1 ? m->part_len[1] : sizeof addr - 1;
    memcpy(addr, m->part[1], alen);
    addr[alen] = '\0';
    if (strlen(addr) != alen)
        addr[0] = '\0';    /* a NUL inside: not an address */
    bx_engine_request(srv->engine, &o, m->hdr.transport, browser, addr, batch, now);
    json_object_put(batch);
}

static void s_handle(bx_server_t *srv, const bx_wire_msg_t *m, int64_t now)
{
    switch (m->hdr.type) {
    case BX_WIRE_REQUEST:
        s_request(srv, m, now);
        break;
    case BX_WIRE_CANCEL: {
        bx_origin_t o = { s_peer(srv, m->identity, m->idlen), m->hdr.reqid };
        bx_engine_cancel(srv->engine, &o, now);
        break;
    }
    case BX_WIRE_HELLO:
        bx_info(TAG, "responder connected (%.*s)", (int)m->part_len[0], m->part[0]);
        s_peer(srv, m->identity, m->idlen);
        break;
    case BX_WIRE_NOTE:
        bx_engine_note_http(srv->engine, (int)m->hdr.status);
        break;
    default:
        srv->bad_frames++;
        bx_warn(TAG, "unexpected message type %u from a responder", m->hdr.type);
        break;
    }
}

/* Refuses the endpoints another process serves: ZeroMQ would unlink an
 * ipc:// socket file and bind its own, stealing it from its owner. */
static int s_endpoints_free(const bx_dopts_t *o)
{
    const char *eps[3] = { o->dispatcher, o->app_endpoint, o->events_endpoint };
    char err[512];
    for (int i = 0; i < 3; i++) {
        if (eps[i] && *eps[i] && bx_guard_endpoint(eps[i], err, sizeof err) != 0) {
            bx_error(TAG, "%s", err);
            return -1;
        }
    }
    return 0;
}

bx_server_t *bx_server_new(const bx_dopts_t *o, int *status)
{
    bx_server_t *srv = bx_calloc(1, sizeof *srv);
    bx_engine_cfg_t cfg;
    int one = 1, hwm = 100000, linger = 2000;
    sigset_t mask;
    bx_fault_t fault = BX_FAULT_NONE;

    *status = BX_EXIT_FAIL;
    srv->sigfd = -1;
    srv->endpoint = bx_strdup(o->dispatcher);
    srv->database = bx_strdup(o->database);
    bx_limits_init(&srv->limits);
    srv->limits.max_body = (size_t)o->max_body;
    srv->limits.max_messages = (int)o->max_messages;
    srv->limits.max_depth = (int)o->max_depth;
    srv->peer_index = bx_map_new();

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0 ||
        (srv->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
        bx_error(TAG, "signalfd: %s", strerror(errno));
        goto error;
    }
    signal(SIGPIPE, SIG_IGN);

    bx_dopts_engine_cfg(o, &cfg);
    srv->engine = bx_engine_new(&cfg, s_send, srv);
    if (!srv->engine)
        goto error;

    /* The database first: its lock is what keeps a second bayeuxd from
     * serving the same sessions, so it is taken before any endpoint is
     * bound. Then everything is loaded before the first request: a
     * restarted bayeuxd answers its clients' next connects with the
     * sessions they had. */
    bx_store_cfg_t scfg = { .path = o->database,
                             .sync_full = strcmp(o->synchronous, "full") == 0,
                             .busy_timeout_ms = 5000, .fault = &fault };
    char err[512];
    int64_t t0 = bx_now_ms();
    srv->store = bx_store_open(&scfg, err, sizeof err);
    if (!srv->store) {
        *status = bx_fault_exit_status(fault);
        if (fault == BX_FAULT_NONE || fault == BX_FAULT_OTHER || fault == BX_FAULT_IN_USE)
            bx_error(TAG, "database %s: %s", o->database, err);
        else
            bx_error(TAG, "database %s: %s; %s (exit status %d)", o->database, err,
                     bx_fault_advice(fault), *status);
        goto error;
    }
    if (bx_engine_load(srv->engine, srv->store, bx_now_ms()) != 0 ||
        bx_engine_flush(srv->engine, bx_now_ms()) != 0) {
        if (bx_store_fault(srv->store, NULL) != BX_FAULT_NONE &&
            bx_store_fault(srv->store, NULL) != BX_FAULT_OTHER)
            *status = s_database_fault(srv);
        else
            bx_error(TAG, "database %s cannot be read; see bayeuxd --check-db", o->database);
        goto error;
    }
    bx_info(TAG, "database %s (synchronous %s) ready in %lld ms", o->database, o->synchronous,
            (long long)(bx_now_ms() - t0));

    if (s_endpoints_free(o) != 0) {
        *status = BX_EXIT_IN_USE;
        goto error;
    }
    if (bx_ipc_dir(o->dispatcher) != 0)
        goto error;
    srv->ctx = zmq_ctx_new();
    srv->router = zmq_socket(srv->ctx, ZMQ_ROUTER);
    if (!srv->router ||
        zmq_setsockopt(srv->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one) != 0 ||
        zmq_setsockopt(srv->router, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(srv->router, ZMQ_RCVHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(srv->router, ZMQ_LINGER, &linger, sizeof linger) != 0) {
        bx_error(TAG, "zmq socket: %s", zmq_strerror(errno));
        goto error;
    }
    if (zmq_bind(srv->router, o->dispatcher) != 0) {
        if (errno == EADDRINUSE)
            *status = BX_EXIT_IN_USE;
        bx_error(TAG, "cannot bind %s: %s%s", o->dispatcher, zmq_strerror(errno),
                 errno == EADDRINUSE ? ": another process listens there; one bayeuxd per "
                 "endpoint" : "");
        goto error;
    }

    bx_app_cfg_t acfg = { o->app_endpoint, o->events_endpoint, (int)strtol(o->app_mode, NULL, 8),
                          (size_t)o->max_body };
    srv->app = bx_app_new(srv->ctx, srv->engine, &acfg, err, sizeof err);
    if (!srv->app) {
        bx_error(TAG, "backends: %s", err);
        goto error;
    }
    if (*o->app_endpoint || *o->events_endpoint)
        bx_info(TAG, "backends: app endpoint %s, events %s", *o->app_endpoint ?
                o->app_endpoint : "(off)", *o->events_endpoint ? o->events_endpoint : "(off)");
    bx_info(TAG, "listening on %s (timeout %lld ms, max-interval %lld ms)", o->dispatcher,
            (long long)cfg.timeout_ms, (long long)cfg.max_interval_ms);
    *status = BX_EXIT_OK;
    return srv;
error:
    bx_server_destroy(&srv);
    return NULL;
}

/* Returns 1 to stop. */
static int s_signals(bx_server_t *srv)
{
    struct signalfd_siginfo si;
    int stop = 0;
    while (read(srv->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGHUP) {
            bx_info(TAG, "SIGHUP: reopening the log");
            bx_log_reopen();
        } else {
            bx_info(TAG, "signal %u: shutting down", si.ssi_signo);
            stop = 1;
        }
    }
    return stop;
}

int bx_server_run(bx_server_t *srv)
{
    int64_t now = bx_now_ms();
    int64_t next = bx_engine_tick(srv->engine, now);
    srv->next_watch = now + WATCH_EVERY_MS;
    zmq_pollitem_t items[3] = {
        { srv->router, 0, ZMQ_POLLIN, 0 },
        { NULL, srv->sigfd, ZMQ_POLLIN, 0 },
        { bx_app_socket(srv->app), 0, ZMQ_POLLIN, 0 },
    };
    int nitems = items[2].socket ? 3 : 2;
    for (;;) {
        int64_t until = next < srv->next_watch ? next : srv->next_watch;
        long wait = until > now && !bx_engine_busy(srv->engine) ? (long)(until - now) : 0;
        if (zmq_poll(items, nitems, wait) < 0) {
            if (errno == EINTR)
                continue;
            bx_error(TAG, "zmq_poll: %s", zmq_strerror(errno));
            return BX_EXIT_FAIL;
        }
        if (items[1].revents && s_signals(srv))
            break;
        now = bx_now_ms();
        int64_t t0 = bx_now_us(), c0 = bx_cpu_us();
        /* A request whose work was split goes on first; nothing new is read
         * until it is done, so requests keep their order. The turn that
         * finishes it reads nothing new either: its timers (the sweep,
         * which waits while a request is pending) and the app endpoint
         * get a turn with nothing pending, however busy the responders. */
        int resumed = bx_engine_busy(srv->engine);
        bx_engine_resume(srv->engine, now);
        int busy = bx_engine_busy(srv->engine);
        for (int i = 0; i < BATCH_RECV && !busy && !resumed; i++) {
            /* A turn that has taken its slice ends here: whatever else is
             * waiting is read after the commit, and its replies, and the
             * timers, so a flood of requests delays no reply long. */
            if (i > 0 && bx_now_us() - t0 >= SLICE_US)
                break;
            bx_wire_msg_t m;
            int rc = bx_wire_recv(srv->router, 1, &m);
            if (rc == 1)
                break;
            if (rc < 0) {
                if (errno == ETERM)
                    return BX_EXIT_FAIL;
                srv->bad_frames++;
                bx_warn(TAG, "malformed message from a responder dropped");
                continue;
            }
            s_handle(srv, &m, now);
            bx_wire_msg_close(&m);
            busy = bx_engine_busy(srv->engine);
        }
        if (!busy)
            bx_app_handle(srv->app, now);
        now = bx_now_ms();
        next = bx_engine_tick(srv->engine, now);
        /* Group commit: one transaction for everything this iteration did,
         * then its replies. If the database refuses, nothing is answered
         * that it does not hold: stop, and let the restart reload it. */
        if (bx_engine_flush(srv->engine, now) != 0)
            return s_database_fault(srv);
        bx_app_flush(srv->app);
        bx_engine_note_turn(srv->engine, bx_now_us() - t0, bx_cpu_us() - c0);
        s_watch_commit(srv, now);
        /* Between commits too: a database deleted or made read-only while
         * idle is reported now, not at the next publish. */
        if (now >= srv->next_watch) {
            srv->next_watch = now + WATCH_EVERY_MS;
            if (bx_store_watch(srv->store) != BX_FAULT_NONE)
                return s_database_fault(srv);
        }
    }
    bx_engine_release_all(srv->engine, bx_now_ms());
    if (bx_engine_flush(srv->engine, bx_now_ms()) != 0)
        return s_database_fault(srv);
    bx_app_flush(srv->app);
    bx_store_stats_t ss;
    bx_store_stats(srv->store, &ss);
    bx_info(TAG, "database: %llu commits of %llu writes, %llu failures, longest commit %lld ms",
            (unsigned long long)ss.commits, (unsigned long long)ss.writes,
            (unsigned long long)ss.failures, (long long)ss.commit_us_max / 1000);
    return BX_EXIT_OK;
}

void bx_server_destroy(bx_server_t **ps)
{
    if (!ps || !*ps)
        return;
    bx_server_t *srv = *ps;
    bx_app_destroy(&srv->app);
    bx_engine_destroy(&srv->engine);
    bx_store_close(&srv->store);
    if (srv->router)
        zmq_close(srv->router);
    if (srv->ctx)
        zmq_ctx_term(srv->ctx);
    if (srv->sigfd >= 0)
        close(srv->sigfd);
    bx_map_destroy(&srv->peer_index);
    free(srv->peers);
    free(srv->endpoint);
    free(srv->database);
    free(srv);
    *ps = NULL;
}
