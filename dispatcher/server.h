/* server.h - bayeuxd's event loop: the ZeroMQ ROUTER the responders talk to,
 * signals, and the engine's timers. Single-threaded; it never blocks on a
 * responder (every send is ZMQ_DONTWAIT on a ROUTER_MANDATORY socket).
 */
#ifndef BX_SERVER_H
#define BX_SERVER_H

#include <stdint.h>

#include "options.h"
#include "store.h"

typedef struct bx_server bx_server_t;

/* Opens and loads the database (taking its lock), checks that no other
 * process serves the endpoints, and binds them (creating the directory of
 * an ipc:// path). Returns NULL with the reason logged and the exit status
 * that goes with it in *status (guard.h: BX_EXIT_IN_USE, BX_EXIT_DISK_FULL,
 * BX_EXIT_DB_LOST, else BX_EXIT_FAIL). */
bx_server_t *bx_server_new(const bx_dopts_t *o, int *status);

/* Runs until SIGTERM or SIGINT; then answers every held connect so no HTTP
 * request is left hanging, and returns BX_EXIT_OK. When the database cannot
 * go on (a failed commit; files deleted or unwritable, looked at every
 * commit and every second) it stops at once, sending nothing that depends on
 * what was not stored, and returns the fault's exit status (guard.h);
 * BX_EXIT_FAIL on a fatal socket error. */
int bx_server_run(bx_server_t *srv);

void bx_server_destroy(bx_server_t **ps);

/* The slow-commit warning's memory: one warning per slow commit, at most one
 * every 10 s (the others are counted into the next one). */
typedef struct {
    uint64_t seen;            /* commits counted at the last look */
    int64_t logged_at;        /* when the last warning was logged, 0: never */
    uint64_t unlogged;        /* slow commits not yet reported */
} bx_slowlog_t;

/* Called after each loop iteration with the store's figures: returns how
 * many slow commits (over 100 ms) to report now, 0 for none. */
uint64_t bx_slowlog_check(bx_slowlog_t *w, const bx_store_stats_t *ss, int64_t now);

#endif
