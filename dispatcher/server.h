/* server.h - bayeuxd's event loop: the ZeroMQ ROUTER the responders talk to,
 * signals, and the engine's timers. Single-threaded; it never blocks on a
 * responder (every send is ZMQ_DONTWAIT on a ROUTER_MANDATORY socket).
 */
#ifndef BX_SERVER_H
#define BX_SERVER_H

#include "options.h"

typedef struct bx_server bx_server_t;

/* Binds the endpoint (creating the directory of an ipc:// path). Returns
 * NULL with the reason logged. */
bx_server_t *bx_server_new(const bx_dopts_t *o);

/* Runs until SIGTERM or SIGINT; then answers every held connect so no HTTP
 * request is left hanging, and returns 0. -1 on a fatal socket error. */
int bx_server_run(bx_server_t *srv);

void bx_server_destroy(bx_server_t **ps);

#endif
