/* app.h - bayeuxd's two sockets for the application behind the server
 * (docs/backend.md): the app endpoint (ROUTER: publish, deliver, disconnect,
 * questions) and the event stream (PUB: sessions, subscriptions, service
 * messages). Replies and events leave after the engine's flush, so a backend
 * never hears of something the database does not hold.
 */
#ifndef BX_APP_H
#define BX_APP_H

#include <stdint.h>

#include "engine.h"

typedef struct bx_app bx_app_t;

typedef struct {
    const char *app_endpoint;      /* "" or NULL: no app endpoint */
    const char *events_endpoint;   /* "" or NULL: no event stream */
    int mode;                      /* file mode of ipc:// sockets */
    size_t max_request;            /* largest request accepted, bytes */
} bx_app_cfg_t;

/* Binds the sockets in zctx and hooks the engine's events. NULL with a
 * message in err on failure. */
bx_app_t *bx_app_new(void *zctx, bx_engine_t *e, const bx_app_cfg_t *cfg, char *err,
                     size_t errlen);
void bx_app_destroy(bx_app_t **pa);

/* The ROUTER to poll for ZMQ_POLLIN, or NULL when there is none. */
void *bx_app_socket(bx_app_t *a);

/* Handles the requests waiting (at most a batch); replies wait for
 * bx_app_flush. */
void bx_app_handle(bx_app_t *a, int64_t now);

/* Sends the replies and events collected since the last call: after
 * bx_engine_flush. Never blocks. */
void bx_app_flush(bx_app_t *a);

/* Creates the directory of an ipc:// endpoint; 0, or -1 with the reason
 * logged. Other transports: nothing to do. */
int bx_ipc_dir(const char *endpoint);

#endif
