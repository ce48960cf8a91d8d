/* store.h - the SQLite database of bayeuxd: the one module that owns the
 * sqlite3 handle (schema: sql/schema.sql, guarantees: docs/persistence.md).
 *
 * Writes are group-committed: the first write after a commit opens a
 * transaction, every later write joins it, and bx_store_commit() ends it. The
 * server commits once per event-loop iteration, before any reply of that
 * iteration leaves, so nothing is acknowledged to a client before it is in
 * the database. Every statement is prepared once, with bound parameters.
 *
 * The store does not decide anything: the engine tells it what changed. Each
 * write returns 0, or -1 after logging the SQLite error; a failed write or
 * commit leaves the transaction to be rolled back by bx_store_commit(), which
 * then returns -1: the caller must not send the replies that depended on it.
 */
#ifndef BX_STORE_H
#define BX_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "guard.h"

#define BX_STORE_SCHEMA_VERSION 2

typedef struct bx_store bx_store_t;

typedef struct {
    const char *path;        /* database file, or ":memory:" */
    int sync_full;           /* 1: PRAGMA synchronous=FULL, 0: NORMAL */
    int busy_timeout_ms;     /* another process holding a lock (backup) */
    int check_only;          /* for --check-db: change nothing (no directory,
                                schema, migration, WAL mode or checkpoint), so
                                a crashed database stays as the crash left it */
    bx_fault_t *fault;       /* if not NULL: why bx_store_open failed */
} bx_store_cfg_t;

/* Opens or creates the database, takes its lock for as long as it stays
 * open (exclusive locking mode: no other process can open it meanwhile; a
 * database another process holds is refused at once, BX_FAULT_IN_USE, with
 * that process named in err), sets WAL mode, creates the schema in an
 * empty database or migrates an older one, and prepares the statements.
 * Creates the file's directory if missing. A database with a newer
 * user_version than this program knows is refused. With check_only, the
 * database is opened as it is, read-only (bx_store_check reports a schema
 * version it does not expect), and without taking the lock for longer than
 * the check. A file that cannot be written (BX_FAULT_UNWRITABLE) or a
 * filesystem with less than 1 MiB free (BX_FAULT_FULL) is refused. Returns NULL with a
 * message in err on failure. */
bx_store_t *bx_store_open(const bx_store_cfg_t *cfg, char *err, size_t errlen);
void bx_store_close(bx_store_t **pst);

/* ---- writes (join the open transaction) ---- */

int bx_store_session_put(bx_store_t *st, const char *id, const char *browser, int ack,
                         uint64_t batch, int64_t created);
int bx_store_session_batch(bx_store_t *st, const char *id, uint64_t batch);
/* The subject an authenticated session's token named. */
int bx_store_session_subject(bx_store_t *st, const char *id, const char *subject);
/* Deletes the session, its subscriptions and its queued rows (the engine
 * deletes messages that no longer have a reference with bx_store_msg_del). */
int bx_store_session_del(bx_store_t *st, const char *id);

int bx_store_sub_add(bx_store_t *st, const char *id, const char *channel);
int bx_store_sub_del(bx_store_t *st, const char *id, const char *channel);

int bx_store_msg_put(bx_store_t *st, uint64_t msgid, const char *json, size_t len,
                     int64_t time);
int bx_store_msg_del(bx_store_t *st, uint64_t msgid);

int bx_store_queued_add(bx_store_t *st, const char *id, uint64_t msgid, uint64_t batch);
int bx_store_queued_del(bx_store_t *st, const char *id, uint64_t msgid);
/* Deletes the session's queued rows with batch <= batch (an ack). */
int bx_store_queued_ack(bx_store_t *st, const char *id, uint64_t batch);

/* Sets a history channel's last sequence number (insert or update). */
int bx_store_channel_seq(bx_store_t *st, const char *channel, uint64_t seq);
int bx_store_history_add(bx_store_t *st, const char *channel, uint64_t seq, uint64_t msgid,
                         int64_t time);
/* Deletes the channel's history rows with seq <= seq. */
int bx_store_history_trim(bx_store_t *st, const char *channel, uint64_t seq);

/* Ends the open transaction, if any: COMMIT, or ROLLBACK if a write in it
 * failed. Returns 0 when everything written since the last commit is in the
 * database, -1 otherwise: a failure, or a commit into files that were
 * deleted meanwhile (bx_store_fault says which). */
int bx_store_commit(bx_store_t *st);

/* Why the database cannot go on (BX_FAULT_NONE while it can), from the first
 * failed statement or watch; why (may be NULL) gets the details, valid while
 * st lives. Once set, it stays, and every later commit fails. */
bx_fault_t bx_store_fault(const bx_store_t *st, const char **why);

/* For a timer, every second or so: checks that the database's files are
 * still there under their names and writable (guard.h, bx_dbfiles_check),
 * so a fault is noticed while nothing is written. Returns bx_store_fault. */
bx_fault_t bx_store_watch(bx_store_t *st);

/* ---- reading everything back at start ---- */

/* Row callbacks; a callback returning non-zero stops the load with an error.
 * Strings are valid only during the call. Order: every message (by id),
 * then sessions, subscriptions, queued rows (by session, then msg), channels,
 * then history rows (by channel, then seq). */
typedef struct {
    void *ud;
    int (*message)(void *ud, uint64_t id, const char *json, size_t len, int64_t time);
    int (*session)(void *ud, const char *id, const char *browser, int ack, uint64_t batch,
                   int64_t created);
    int (*subscription)(void *ud, const char *id, const char *channel);
    int (*queued)(void *ud, const char *id, uint64_t msgid, uint64_t batch);
    int (*channel)(void *ud, const char *name, uint64_t seq);
    int (*history)(void *ud, const char *channel, uint64_t seq, uint64_t msgid, int64_t time);
    /* After its session row, for a session with a subject. */
    int (*subject)(void *ud, const char *id, const char *subject);
} bx_store_loader_t;

/* Returns 0, or -1 (SQLite error or a callback's refusal, logged). */
int bx_store_load(bx_store_t *st, const bx_store_loader_t *l);

/* Writes a consistent copy of the database, as of its last commit (the open
 * transaction is committed first), into a new file at path: the way to
 * back up or check a database while bayeuxd holds it. Blocks until done
 * (about 10 ms per 10 MB here). Refuses a path that exists. Returns 0, or
 * -1 with the reason in err. */
int bx_store_backup(bx_store_t *st, const char *path, char *err, size_t errlen);

/* ---- checks and figures ---- */

/* "bayeuxd --check-db": PRAGMA integrity_check, the schema version, and the
 * references between tables (queued and history rows whose message or
 * session is missing, messages nothing references). Prints a line per
 * problem and a summary with the row counts to out (NULL: prints nothing).
 * Returns 0 if clean. */
int bx_store_check(bx_store_t *st, FILE *out);

typedef struct {
    uint64_t commits;        /* transactions committed */
    uint64_t writes;         /* statements executed in them */
    uint64_t failures;       /* failed writes or commits */
    int64_t commit_us_last;  /* duration of the last commit */
    int64_t commit_us_max;   /* and the longest one */
} bx_store_stats_t;

void bx_store_stats(const bx_store_t *st, bx_store_stats_t *out);

#endif
