/* responder.h - the event loop of bayeux-fcgi.
 *
 * One process, one epoll loop, no threads: the listen socket, the ZeroMQ
 * DEALER to bayeuxd, a signalfd, a timerfd for deadlines and the FastCGI
 * connection of every request waiting for the dispatcher. libfcgi reads each
 * request (params and body) right after accept; the responder then frees
 * libfcgi's buffers and keeps a small record per parked request, and writes
 * the FastCGI response records itself when the dispatcher answers.
 */
#ifndef BX_RESPONDER_H
#define BX_RESPONDER_H

#include <stdint.h>
#include "fcgi/http.h"

#define BX_DEFAULT_DISPATCHER "ipc:///tmp/bayeux-fcgi/dispatcher.sock"
#define BX_DEFAULT_REQUEST_TIMEOUT_MS 70000  /* above the longest connect hold */
#define BX_FCGI_IO_TIMEOUT_MS 2000           /* reading a request, writing a reply */

typedef struct {
    bx_http_config_t http;      /* HTTP rules; strings lent for the life of r */
    const char *dispatcher;     /* ZeroMQ endpoint the DEALER connects to */
    int64_t request_timeout_ms; /* answer 504 when the dispatcher is silent */
    int listen_fd;              /* listening socket (unix or tcp), not owned */
} bx_responder_opts_t;

typedef struct bx_responder bx_responder_t;

/* Sets up libfcgi (FCGX_Init), the signalfd (SIGTERM, SIGINT, SIGHUP
 * blocked), epoll, the timerfd and a new ZeroMQ context with its DEALER.
 * Call after fork. Returns NULL (logged) on failure. */
bx_responder_t *bx_responder_new(const bx_responder_opts_t *opts);

/* Runs until SIGTERM or SIGINT; then stops accepting, answers every waiting
 * request with 503 and returns 0. Returns -1 on a fatal loop error. */
int bx_responder_run(bx_responder_t *r);

/* Closes everything (requests still held are answered 503). NULL-safe. */
void bx_responder_destroy(bx_responder_t **pr);

/* Requests currently waiting for the dispatcher (for tests and logs). */
size_t bx_responder_waiting(const bx_responder_t *r);

#endif
