/* main.c - bayeuxd: the Bayeux dispatcher daemon. */

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guard.h"
#include "log.h"
#include "options.h"
#include "server.h"
#include "store.h"

static void s_usage(FILE *out, const bx_option_t *opts)
{
    fprintf(out,
            "Usage: bayeuxd [--config FILE] [--KEY=VALUE ...]\n"
            "The Bayeux dispatcher: sessions, channels and queues for the bayeux-fcgi\n"
            "responders. Every KEY may also be set in the config file as \"KEY = VALUE\".\n"
            "--check-config checks the configuration and exits.\n"
            "--check-db checks the database (integrity, references) and exits:\n"
            "  0 clean, 1 problems found, 2 cannot open, 3 in use by a running bayeuxd.\n"
            "Exit status of bayeuxd: 0 stopped by a signal, 1 failed (a restart helps),\n"
            "2 usage or configuration, 3 the database or an endpoint is in use by\n"
            "another process, 4 the database's disk is full, 5 the database was\n"
            "deleted, became unwritable or failed to read or write (docs/deploy.md).\n\n");
    bx_config_print_help(out, opts);
}

int main(int argc, char **argv)
{
    bx_dopts_t o;
    const bx_option_t *opts = bx_dopts_init(&o);
    char err[512];
    int rc = 1, check_only = 0, check_db = 0;
    /* Queue rings, large messages and replies of 64 KiB or more get pages
     * of their own, given back when freed: glibc would otherwise raise its
     * threshold after the first such free and serve them from the heap,
     * where a queue cut by queue-memory leaves holes that keep the process
     * at twice the budget (bench/abuse --attack batch: 138 MB, 95 MB with
     * this). */
    mallopt(M_MMAP_THRESHOLD, 64 << 10);

    check_only = bx_config_take_flag(&argc, argv, "--check-config");
    check_db = bx_config_take_flag(&argc, argv, "--check-db");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            s_usage(stdout, opts);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("bayeuxd %s\n", PACKAGE_VERSION);
            return 0;
        }
    }
    if (bx_config_parse_args(opts, bx_dopts_foreign, argc, argv, err, sizeof err) != 0) {
        fprintf(stderr, "bayeuxd: %s\n", err);
        return 2;
    }
    int level = bx_log_parse_level(o.log_level);
    if (level < 0) {
        fprintf(stderr, "bayeuxd: log-level: expected error, warn, info or debug\n");
        return 2;
    }
    if (bx_dopts_check(&o, err, sizeof err) != 0) {
        fprintf(stderr, "bayeuxd: %s\n", err);
        rc = 2;
        goto out;
    }
    if (check_only) {
        printf("bayeuxd: configuration ok\n");
        rc = 0;
        goto out;
    }
    if (check_db) {
        /* Opening creates or migrates; a check of a missing file would
         * create it, so say so instead. */
        if (strcmp(o.database, ":memory:") != 0 && access(o.database, R_OK) != 0) {
            fprintf(stderr, "bayeuxd: database %s: %s\n", o.database, strerror(errno));
            rc = 2;
            goto out;
        }
        bx_fault_t fault = BX_FAULT_NONE;
        bx_store_cfg_t scfg = { .path = o.database, .busy_timeout_ms = 5000, .check_only = 1,
                                .fault = &fault };
        bx_store_t *st = bx_store_open(&scfg, err, sizeof err);
        if (!st) {
            fprintf(stderr, "bayeuxd: database %s: %s\n", o.database, err);
            if (fault == BX_FAULT_IN_USE)
                fprintf(stderr, "bayeuxd: a running bayeuxd keeps its database to itself: "
                        "stop it to check the database, or check a copy made with "
                        "\"bayeuxctl backup FILE\"\n");
            rc = fault == BX_FAULT_IN_USE ? 3 : 2;
            goto out;
        }
        rc = bx_store_check(st, stdout) == 0 ? 0 : 1;
        bx_store_close(&st);
        goto out;
    }
    bx_log_level = level;
    if (bx_log_open("bayeuxd", o.log) != 0)
        fprintf(stderr, "bayeuxd: cannot open log %s, using stderr\n", o.log);

    bx_server_t *srv = bx_server_new(&o, &rc);
    if (!srv)
        goto out;
    if (o.pidfile && *o.pidfile) {
        FILE *f = fopen(o.pidfile, "w");
        if (!f) {
            bx_error("main", "cannot write pidfile %s: %s", o.pidfile, strerror(errno));
            bx_server_destroy(&srv);
            rc = BX_EXIT_FAIL;
            goto out;
        }
        fprintf(f, "%ld\n", (long)getpid());
        fclose(f);
    }
    rc = bx_server_run(srv);
    bx_server_destroy(&srv);
    if (o.pidfile && *o.pidfile)
        unlink(o.pidfile);
    bx_info("main", "stopped");
out:
    bx_config_free(opts);
    return rc;
}
