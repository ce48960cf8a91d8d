/* store.c - the SQLite database of bayeuxd: opening, schema creation and
 * migration, group-committed writes, loading at start, --check-db (store.h).
 *
 * Every statement the hot path runs is prepared once at open, from the
 * s_sql table, and takes its values as bound parameters. The only SQL built
 * at run time is "PRAGMA user_version = N" during a migration (N is ours; a
 * pragma takes no parameters).
 */
#include "store.h"

#include <assert.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "guard.h"
#include "log.h"
#include "util.h"

#define TAG "store"

/* Below this much free space a start is refused (BX_FAULT_FULL): loading
 * would succeed and the first writes fail, restart after restart. */
#define S_MIN_FREE_BYTES (1024 * 1024)

/* Used when the configuration leaves busy_timeout_ms at 0. */
#define S_BUSY_DEFAULT_MS 5000

/* sql/schema.sql, compiled in by make (<builddir>/sql/schema.c). */
extern const char bx_schema_sql[];

/* ------------------------------------------------------------ migrations */

/* A database at user_version v is brought to v + 1 by the entry whose .to is
 * v + 1; every step needed runs in one transaction, and the store sets
 * user_version after each step itself. A new schema version means three
 * edits: sql/schema.sql creates the new schema (it is what an empty database
 * gets) and sets the new user_version, BX_STORE_SCHEMA_VERSION is bumped, and
 * an entry such as { 2, "ALTER TABLE session ADD COLUMN ...;" } goes here. */
typedef struct {
    int to;             /* the user_version this step produces; 0 ends the list */
    const char *sql;    /* statements for sqlite3_exec */
} s_migration_t;

static const s_migration_t s_migrations[] = {
    /* 2: sessions remember the subject of their handshake token. */
    { 2, "ALTER TABLE session ADD COLUMN subject TEXT NOT NULL DEFAULT '';" },
    { 0, NULL }
};

/* ------------------------------------------------------------ statements */

enum {
    S_BEGIN, S_BEGIN_READ, S_COMMIT, S_ROLLBACK,
    S_SESSION_PUT, S_SESSION_BATCH, S_SESSION_SUBJECT, S_SESSION_DEL, S_SESSION_SUBS_DEL, S_SESSION_QUEUED_DEL,
    S_SUB_ADD, S_SUB_DEL,
    S_MSG_PUT, S_MSG_DEL,
    S_QUEUED_ADD, S_QUEUED_DEL, S_QUEUED_ACK,
    S_CHANNEL_SEQ, S_HISTORY_ADD, S_HISTORY_TRIM,
    S_LOAD_MESSAGE, S_LOAD_SESSION, S_LOAD_SUB, S_LOAD_QUEUED, S_LOAD_CHANNEL, S_LOAD_HISTORY,
    S_COUNT
};

static const struct {
    const char *name;   /* for log lines */
    const char *sql;
} s_sql[S_COUNT] = {
    /* IMMEDIATE: take the write lock at the start, so a reader holding the
     * database (a backup) makes BEGIN wait, never a later write fail. */
    [S_BEGIN] = { "begin", "BEGIN IMMEDIATE" },
    [S_BEGIN_READ] = { "begin read", "BEGIN" },
    [S_COMMIT] = { "commit", "COMMIT" },
    [S_ROLLBACK] = { "rollback", "ROLLBACK" },
    /* put: a session written again (new binding, ack negotiated) replaces its row. */
    [S_SESSION_PUT] = { "session put",
        "INSERT INTO session (id, browser, ack, batch, created) VALUES (?1, ?2, ?3, ?4, ?5)"
        " ON CONFLICT (id) DO UPDATE SET browser = excluded.browser, ack = excluded.ack,"
        " batch = excluded.batch, created = excluded.created" },
    [S_SESSION_BATCH] = { "session batch", "UPDATE session SET batch = ?2 WHERE id = ?1" },
    [S_SESSION_SUBJECT] = { "session subject",
        "UPDATE session SET subject = ?2 WHERE id = ?1" },
    [S_SESSION_DEL] = { "session del", "DELETE FROM session WHERE id = ?1" },
    [S_SESSION_SUBS_DEL] = { "session del (subscriptions)",
        "DELETE FROM subscription WHERE session = ?1" },
    [S_SESSION_QUEUED_DEL] = { "session del (queued)", "DELETE FROM queued WHERE session = ?1" },
    /* Bayeux: subscribing twice to a channel is not an error; the set keeps one row. */
    [S_SUB_ADD] = { "subscription add",
        "INSERT OR IGNORE INTO subscription (session, channel) VALUES (?1, ?2)" },
    [S_SUB_DEL] = { "subscription del",
        "DELETE FROM subscription WHERE session = ?1 AND channel = ?2" },
    /* Message, queued and history rows are plain inserts: a duplicate is an
     * engine bug, and failing the transaction shows it. */
    [S_MSG_PUT] = { "message put", "INSERT INTO message (id, json, time) VALUES (?1, ?2, ?3)" },
    [S_MSG_DEL] = { "message del", "DELETE FROM message WHERE id = ?1" },
    [S_QUEUED_ADD] = { "queued add",
        "INSERT INTO queued (session, msg, batch) VALUES (?1, ?2, ?3)" },
    [S_QUEUED_DEL] = { "queued del", "DELETE FROM queued WHERE session = ?1 AND msg = ?2" },
    [S_QUEUED_ACK] = { "queued ack", "DELETE FROM queued WHERE session = ?1 AND batch <= ?2" },
    [S_CHANNEL_SEQ] = { "channel seq",
        "INSERT INTO channel (name, seq) VALUES (?1, ?2)"
        " ON CONFLICT (name) DO UPDATE SET seq = excluded.seq" },
    [S_HISTORY_ADD] = { "history add",
        "INSERT INTO history (channel, seq, msg, time) VALUES (?1, ?2, ?3, ?4)" },
    [S_HISTORY_TRIM] = { "history trim",
        "DELETE FROM history WHERE channel = ?1 AND seq <= ?2" },
    /* The orders store.h promises; each follows a primary key, so no sort. */
    [S_LOAD_MESSAGE] = { "load messages", "SELECT id, json, time FROM message ORDER BY id" },
    [S_LOAD_SESSION] = { "load sessions",
        "SELECT id, browser, ack, batch, created, subject FROM session ORDER BY id" },
    [S_LOAD_SUB] = { "load subscriptions",
        "SELECT session, channel FROM subscription ORDER BY session, channel" },
    [S_LOAD_QUEUED] = { "load queued",
        "SELECT session, msg, batch FROM queued ORDER BY session, batch, msg" },
    [S_LOAD_CHANNEL] = { "load channels", "SELECT name, seq FROM channel ORDER BY name" },
    [S_LOAD_HISTORY] = { "load history",
        "SELECT channel, seq, msg, time FROM history ORDER BY channel, seq" },
};

struct bx_store {
    sqlite3 *db;                    /* the connection; only this module touches it */
    sqlite3_stmt *stmt[S_COUNT];    /* prepared at open, finalized at close */
    int txn;                        /* a write ran since the last commit */
    int failed;                     /* ... and one failed: commit rolls back */
    uint64_t txn_writes;            /* statements executed in the open transaction */
    bx_store_stats_t stats;
    bx_dbfiles_t files;             /* the database's files, watched (guard.h) */
    bx_fault_t fault;               /* why the database cannot go on; sticky */
    char why[512];                  /* ... in words, for the log */
};

/* ------------------------------------------------------------ helpers */

/* Records the first fault: what a failed statement says about the files. */
static void s_fault(bx_store_t *st, bx_fault_t fault, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A fault of the files: nothing can be committed any more. BX_FAULT_OTHER
 * (a refused statement) ends its transaction only. */
static int s_fatal(const bx_store_t *st)
{
    return st->fault != BX_FAULT_NONE && st->fault != BX_FAULT_OTHER;
}

static void s_fault(bx_store_t *st, bx_fault_t fault, const char *fmt, ...)
{
    if (s_fatal(st))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->why, sizeof st->why, fmt, ap);
    va_end(ap);
    st->fault = fault;
}

/* After a failed statement `what`: classifies SQLite's error and the errno
 * of the system call under it. */
static void s_fault_sql(bx_store_t *st, const char *what)
{
    int rc = sqlite3_extended_errcode(st->db), sys = sqlite3_system_errno(st->db);
    bx_fault_t f;
    switch (rc & 0xff) {
    case SQLITE_FULL: f = BX_FAULT_FULL; break;
    case SQLITE_READONLY: f = BX_FAULT_UNWRITABLE; break;
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN: f = sys ? bx_fault_from_errno(sys) : BX_FAULT_IO; break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: f = BX_FAULT_IO; break;
    default: f = BX_FAULT_OTHER; break;
    }
    /* SQLite does not always keep the errno of a failed write (an immutable
     * file's EPERM shows as a bare I/O error): the files may say more. */
    char files[256];
    if (f == BX_FAULT_IO && !sys) {
        bx_fault_t ff = bx_dbfiles_check(&st->files, files, sizeof files);
        if (ff != BX_FAULT_NONE) {
            s_fault(st, ff, "%s: %s (%s)", what, sqlite3_errmsg(st->db), files);
            return;
        }
    }
    if (sys)
        s_fault(st, f, "%s: %s (%s)", what, sqlite3_errmsg(st->db), strerror(sys));
    else
        s_fault(st, f, "%s: %s", what, sqlite3_errmsg(st->db));
}


static int64_t s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* SQLite integers are signed 64-bit: unsigned values go through them bit for
 * bit (the conversion wraps in GCC and Clang) and come back unchanged. */
static int s_bind_u64(sqlite3_stmt *s, int i, uint64_t v)
{
    return sqlite3_bind_int64(s, i, (sqlite3_int64)v);
}

static uint64_t s_col_u64(sqlite3_stmt *s, int i)
{
    return (uint64_t)sqlite3_column_int64(s, i);
}

/* Never NULL: the schema has no NULL text, and "" is safer than a crash if
 * another program wrote one. */
static const char *s_col_text(sqlite3_stmt *s, int i)
{
    const char *t = (const char *)sqlite3_column_text(s, i);
    return t ? t : "";
}

/* Runs SQL without parameters (pragmas, the schema); fills err on failure. */
static int s_exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        bx_errf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* The integer in the first column of the first row of sql (a pragma, a count). */
static int s_query_int(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(s, 0);
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(s);
    return rc == SQLITE_OK ? 0 : -1;
}

/* ------------------------------------------------------------ opening */

/* The first statement that reads the file takes SQLite's lock on it: with no
 * wait, so that a database another process holds is refused at once
 * (BX_FAULT_IN_USE) instead of after the busy timeout. */
static int s_first_read(bx_store_t *st, const char *sql, char *err, size_t errlen)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const char *mode = s_col_text(s, 0);
        if (strncmp(sql, "PRAGMA journal_mode", 19) == 0 && strcmp(mode, "wal") != 0)
            bx_warn(TAG, "%s: journal mode is %s, not wal", st->files.path[0], mode);
        sqlite3_finalize(s);
        return 0;
    }
    if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) {
        st->fault = BX_FAULT_IN_USE;
        bx_errf(err, errlen, "in use by another process");
    } else {
        s_fault_sql(st, "cannot read it");
        bx_errf(err, errlen, "%s", st->why);
    }
    sqlite3_finalize(s);
    return -1;
}

static int s_configure(bx_store_t *st, const bx_store_cfg_t *cfg, char *err, size_t errlen)
{
    const char *file = sqlite3_db_filename(st->db, "main");
    int on_disk = file && *file;

    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, 0);
    if (cfg->check_only) {
        /* The last connection to close would fold the WAL into the file:
         * not for a look at a crashed database. */
        sqlite3_db_config(st->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
        if (s_exec(st->db, "PRAGMA query_only = 1", err, errlen) != 0 ||
            s_first_read(st, "SELECT count(*) FROM sqlite_master", err, errlen) != 0)
            return -1;
    } else if (on_disk) {
        /* Exclusive locking, set before the first access: bayeuxd takes the
         * database's lock at open and keeps it, so a second bayeuxd cannot
         * load the same rows and serve them twice; and the WAL index lives
         * in this process's heap, not in a -shm file mapped into memory,
         * whose pages fault with SIGBUS when the file stops being writable.
         * mmap_size 0 keeps the database file itself out of memory maps for
         * the same reason. The cost: nothing else can read the database
         * while bayeuxd runs (docs/persistence.md). */
        if (sqlite3_db_readonly(st->db, "main") == 1) {
            st->fault = BX_FAULT_UNWRITABLE;
            bx_errf(err, errlen, "cannot be opened for writing (permissions, an immutable "
                    "file or a read-only filesystem)");
            return -1;
        }
        if (s_exec(st->db, "PRAGMA locking_mode = EXCLUSIVE", err, errlen) != 0 ||
            s_exec(st->db, "PRAGMA mmap_size = 0", err, errlen) != 0)
            return -1;
        /* WAL: a commit is one append plus, in FULL mode, one fsync. */
        if (s_first_read(st, "PRAGMA journal_mode = WAL", err, errlen) != 0)
            return -1;
        int64_t avail = bx_guard_free_space(file);
        if (avail >= 0 && avail < S_MIN_FREE_BYTES) {
            st->fault = BX_FAULT_FULL;
            bx_errf(err, errlen, "its filesystem is full (%lld bytes free, at least %d "
                    "needed to start)", (long long)avail, S_MIN_FREE_BYTES);
            return -1;
        }
    }
    sqlite3_busy_timeout(st->db, cfg->busy_timeout_ms > 0 ? cfg->busy_timeout_ms
                                                          : S_BUSY_DEFAULT_MS);
    if (cfg->check_only)
        return 0;
    if (s_exec(st->db, cfg->sync_full ? "PRAGMA synchronous = FULL"
                                      : "PRAGMA synchronous = NORMAL", err, errlen) != 0)
        return -1;
    /* References are kept by the engine and verified by --check-db. */
    return s_exec(st->db, "PRAGMA foreign_keys = OFF", err, errlen);
}

static const s_migration_t *s_migration_to(int version)
{
    for (const s_migration_t *m = s_migrations; m->to != 0; m++)
        if (m->to == version)
            return m;
    return NULL;
}

static int s_migrate(bx_store_t *st, int from, char *err, size_t errlen)
{
    for (int v = from + 1; v <= BX_STORE_SCHEMA_VERSION; v++) {
        const s_migration_t *m = s_migration_to(v);
        char pragma[64];
        if (!m) {
            bx_errf(err, errlen, "no migration from database schema %d to %d", v - 1, v);
            return -1;
        }
        if (s_exec(st->db, m->sql, err, errlen) != 0)
            return -1;
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", v);
        if (s_exec(st->db, pragma, err, errlen) != 0)
            return -1;
    }
    bx_info(TAG, "migrated the database from schema %d to %d", from, BX_STORE_SCHEMA_VERSION);
    return 0;
}

/* Creates the schema in an empty database, migrates an older one, refuses a
 * newer or foreign one. Decides and acts in one write transaction, so two
 * processes opening a new file cannot both create the schema. */
static int s_schema(bx_store_t *st, char *err, size_t errlen)
{
    int64_t version = 0, objects = 0;

    if (s_exec(st->db, "BEGIN IMMEDIATE", err, errlen) != 0)
        return -1;
    if (s_query_int(st->db, "PRAGMA user_version", &version) != 0
        || s_query_int(st->db, "SELECT count(*) FROM sqlite_master", &objects) != 0) {
        bx_errf(err, errlen, "cannot read the database: %s", sqlite3_errmsg(st->db));
        goto error;
    }
    if (version == BX_STORE_SCHEMA_VERSION) {
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);   /* nothing written */
        return 0;
    }
    if (version > BX_STORE_SCHEMA_VERSION) {
        bx_errf(err, errlen, "database schema %lld is newer than this bayeuxd (%d)",
              (long long)version, BX_STORE_SCHEMA_VERSION);
        goto error;
    }
    if (version < 0 || (version == 0 && objects > 0)) {
        bx_errf(err, errlen, "not a bayeuxd database (schema version %lld, %lld objects)",
              (long long)version, (long long)objects);
        goto error;
    }
    if (version == 0) {
        if (s_exec(st->db, bx_schema_sql, err, errlen) != 0)
            goto error;
        /* Catches a schema.sql and a store.h that disagree. */
        if (s_query_int(st->db, "PRAGMA user_version", &version) != 0
            || version != BX_STORE_SCHEMA_VERSION) {
            bx_errf(err, errlen, "sql/schema.sql sets schema %lld, expected %d",
                  (long long)version, BX_STORE_SCHEMA_VERSION);
            goto error;
        }
        bx_info(TAG, "created database schema %d", BX_STORE_SCHEMA_VERSION);
    } else if (s_migrate(st, (int)version, err, errlen) != 0) {
        goto error;
    }
    return s_exec(st->db, "COMMIT", err, errlen);

error:
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

static int s_prepare(bx_store_t *st, char *err, size_t errlen)
{
    for (int i = 0; i < S_COUNT; i++) {
        if (sqlite3_prepare_v3(st->db, s_sql[i].sql, -1, SQLITE_PREPARE_PERSISTENT,
                               &st->stmt[i], NULL) != SQLITE_OK) {
            bx_errf(err, errlen, "cannot prepare %s: %s", s_sql[i].name, sqlite3_errmsg(st->db));
            return -1;
        }
    }
    return 0;
}

bx_store_t *bx_store_open(const bx_store_cfg_t *cfg, char *err, size_t errlen)
{
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    bx_store_t *st;

    bx_errf(err, errlen, "%s", "");
    if (!cfg || !cfg->path || !*cfg->path) {
        bx_errf(err, errlen, "no database path");
        return NULL;
    }
    if (!cfg->check_only && strcmp(cfg->path, ":memory:") != 0 &&
        bx_mkdirs_for(cfg->path, 0750, err, errlen) != 0)
        return NULL;

    st = bx_calloc(1, sizeof *st);
    bx_dbfiles_init(&st->files, cfg->check_only ? NULL : cfg->path);
    int rc = sqlite3_open_v2(cfg->path, &st->db, flags, NULL);
    if (rc != SQLITE_OK) {
        int sys = st->db ? sqlite3_system_errno(st->db) : 0;
        bx_errf(err, errlen, "%s: %s%s%s", cfg->path,
                st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc), sys ? ": " : "",
                sys ? strerror(sys) : "");
        if (sys)
            st->fault = bx_fault_from_errno(sys);
        goto error;
    }
    if (s_configure(st, cfg, err, errlen) != 0
        || (!cfg->check_only && s_schema(st, err, errlen) != 0)
        || s_prepare(st, err, errlen) != 0)
        goto error;
    return st;

error:
    if (st->fault == BX_FAULT_NONE)
        st->fault = BX_FAULT_OTHER;
    if (cfg->fault)
        *cfg->fault = st->fault;
    int in_use = st->fault == BX_FAULT_IN_USE;
    bx_store_close(&st);
    if (in_use) {
        /* Closed first: this process's own descriptors on the file are gone,
         * so the lock found is the other process's. */
        char who[128];
        bx_guard_lock_holder(cfg->path, who, sizeof who);
        bx_errf(err, errlen, "in use by another process (%s): %s", *who ? who : "pid unknown",
                bx_fault_advice(BX_FAULT_IN_USE));
    }
    return NULL;
}

static void s_rollback(bx_store_t *st)
{
    /* Some errors (disk full, I/O) have already rolled the transaction back. */
    if (sqlite3_get_autocommit(st->db))
        return;
    sqlite3_stmt *s = st->stmt[S_ROLLBACK];
    if (sqlite3_step(s) != SQLITE_DONE)
        bx_error(TAG, "rollback: %s", sqlite3_errmsg(st->db));
    sqlite3_reset(s);
}

void bx_store_close(bx_store_t **pst)
{
    if (!pst || !*pst)
        return;
    bx_store_t *st = *pst;
    *pst = NULL;
    if (st->db) {
        if (st->txn) {
            bx_warn(TAG, "closing with %llu uncommitted write(s): rolled back",
                    (unsigned long long)st->txn_writes);
            s_rollback(st);
        }
        for (int i = 0; i < S_COUNT; i++)
            sqlite3_finalize(st->stmt[i]);
        if (sqlite3_close(st->db) != SQLITE_OK)
            bx_error(TAG, "close: %s", sqlite3_errmsg(st->db));
    }
    /* After SQLite let go of its files and locks. */
    bx_dbfiles_close(&st->files);
    free(st);
}

/* ------------------------------------------------------------ writes */

/* Runs the write statement `which`, whose parameters are bound (bind_rc: the
 * first binding error, or SQLITE_OK), inside the group transaction, opening
 * it first if needed. After a failure the transaction is doomed: later writes
 * are not run (SQLite may have rolled back already, and they would then
 * commit one by one) and return -1 until bx_store_commit() ends it. */
static int s_write(bx_store_t *st, int which, int bind_rc)
{
    sqlite3_stmt *s = st->stmt[which];
    int rc = bind_rc;

    if (st->failed)
        goto done;
    if (!st->txn) {
        st->txn = 1;
        sqlite3_stmt *b = st->stmt[S_BEGIN];
        rc = sqlite3_step(b);
        sqlite3_reset(b);
        if (rc != SQLITE_DONE) {
            bx_error(TAG, "begin: %s", sqlite3_errmsg(st->db));
            s_fault_sql(st, "begin");
            st->failed = 1;
            st->stats.failures++;
            goto done;
        }
    }
    if (bind_rc != SQLITE_OK) {
        bx_error(TAG, "%s: cannot bind: %s", s_sql[which].name, sqlite3_errstr(bind_rc));
        rc = bind_rc;
    } else {
        rc = sqlite3_step(s);
        if (rc == SQLITE_DONE) {
            st->txn_writes++;
        } else {
            bx_error(TAG, "%s: %s", s_sql[which].name, sqlite3_errmsg(st->db));
            s_fault_sql(st, s_sql[which].name);
        }
    }
    if (rc != SQLITE_DONE) {
        st->failed = 1;
        st->stats.failures++;
    }

done:
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);   /* no pointer to the caller's strings stays behind */
    return st->failed ? -1 : 0;
}

/* Binds a C string (NULL binds NULL, which NOT NULL columns refuse). */
static int s_bind_str(sqlite3_stmt *s, int i, const char *v)
{
    return sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

/* Binds the text parameter ?1 and the integer ?2, the shape of most writes. */
static int s_write_str_u64(bx_store_t *st, int which, const char *str, uint64_t v)
{
    sqlite3_stmt *s = st->stmt[which];
    int rc = s_bind_str(s, 1, str);
    if (rc == SQLITE_OK)
        rc = s_bind_u64(s, 2, v);
    return s_write(st, which, rc);
}

int bx_store_session_put(bx_store_t *st, const char *id, const char *browser, int ack,
                         uint64_t batch, int64_t created)
{
    assert(st);
    sqlite3_stmt *s = st->stmt[S_SESSION_PUT];
    int rc = s_bind_str(s, 1, id);
    if (rc == SQLITE_OK)
        rc = s_bind_str(s, 2, browser);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(s, 3, ack ? 1 : 0);
    if (rc == SQLITE_OK)
        rc = s_bind_u64(s, 4, batch);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(s, 5, created);
    return s_write(st, S_SESSION_PUT, rc);
}

int bx_store_session_batch(bx_store_t *st, const char *id, uint64_t batch)
{
    assert(st);
    return s_write_str_u64(st, S_SESSION_BATCH, id, batch);
}

int bx_store_session_subject(bx_store_t *st, const char *id, const char *subject)
{
    assert(st);
    sqlite3_stmt *s = st->stmt[S_SESSION_SUBJECT];
    int rc = s_bind_str(s, 1, id);
    if (rc == SQLITE_OK)
        rc = s_bind_str(s, 2, subject);
    return s_write(st, S_SESSION_SUBJECT, rc);
}

int bx_store_session_del(bx_store_t *st, const char *id)
{
    assert(st);
    static const int which[] = { S_SESSION_QUEUED_DEL, S_SESSION_SUBS_DEL, S_SESSION_DEL };
    int ret = 0;
    for (size_t i = 0; i < sizeof which / sizeof which[0]; i++)
        if (s_write(st, which[i], s_bind_str(st->stmt[which[i]], 1, id)) != 0)
            ret = -1;
    return ret;
}

int bx_store_sub_add(bx_store_t *st, const char *id, const char *channel)
{
    assert(st);
    sqlite3_stmt *s = st->stmt[S_SUB_ADD];
    int rc = s_bind_str(s, 1, id);
    if (rc == SQLITE_OK)
        rc = s_bind_str(s, 2, channel);
    return s_write(st, S_SUB_ADD, rc);
}

int bx_store_sub_del(bx_store_t *st, const char *id, const char *channel)
{
    assert(st);
    sqlite3_stmt *s = st->stmt[S_SUB_DEL];
    int rc = s_bind_str(s, 1, id);
    if (rc == SQLITE_OK)
        rc = s_bind_str(s, 2, channel);
    return s_write(st, S_SUB_DEL, rc);
}

int bx_store_msg_put(bx_store_t *st, uint64_t msgid, const char *json, size_t len,
                     int64_t time)
{
    assert(st);
    sqlite3_stmt *s = st->stmt[S_MSG_PUT];
    int rc = s_bind_u64(s, 1, msgid);
    if (rc == SQLITE_OK)
        rc = json ? sqlite3_bind_text64(s, 2, json, len, SQLITE_STATIC, SQLITE_UTF8)
                  : sqlite3_bind_null(s, 2);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(s, 3, time);
    return s_write(st, S_MSG_PUT, rc);
}

int bx_store_msg_del(bx_store_t *st, uint64_t msgid)
{
    assert(st);
    return s_write(st, S_MSG_DEL, s_bind_u64(st->stmt[S_MSG_DEL], 1, msgid));
}

int bx_store_queued_add(bx_store_t *st, const char *id, uint64_t msgid, uint64_t batch)
{
    assert(st);
    sqlite3_stmt *s = st->stmt[S_QUEUED_ADD];
    int rc = s_bind_str(s, 1, id);
    if (rc == SQLITE_OK)
        rc = s_bind_u64(s, 2, msgid);
    if (rc == SQLITE_OK)
        rc = s_bind_u64(s, 3, batch);
    return s_write(st, S_QUEUED_ADD, rc);
}

int bx_store_queued_del(bx_store_t *st, const char *id, uint64_t msgid)
{
    assert(st);
    return s_write_str_u64(st, S_QUEUED_DEL, id, msgid);
}

int bx_store_queued_ack(bx_store_t *st, const char *id, uint64_t batch)
{
    assert(st);
    return s_write_str_u64(st, S_QUEUED_ACK, id, batch);
}

int bx_store_channel_seq(bx_store_t *st, const char *channel, uint64_t seq)
{
    assert(st);
    return s_write_str_u64(st, S_CHANNEL_SEQ, channel, seq);
}

int bx_store_history_add(bx_store_t *st, const char *channel, uint64_t seq, uint64_t msgid,
                         int64_t time)
{
    assert(st);
    sqlite3_stmt *s = st->stmt[S_HISTORY_ADD];
    int rc = s_bind_str(s, 1, channel);
    if (rc == SQLITE_OK)
        rc = s_bind_u64(s, 2, seq);
    if (rc == SQLITE_OK)
        rc = s_bind_u64(s, 3, msgid);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(s, 4, time);
    return s_write(st, S_HISTORY_ADD, rc);
}

int bx_store_history_trim(bx_store_t *st, const char *channel, uint64_t seq)
{
    assert(st);
    return s_write_str_u64(st, S_HISTORY_TRIM, channel, seq);
}

int bx_store_commit(bx_store_t *st)
{
    assert(st);
    int ret = 0;

    /* After a fault of the files nothing can be committed any more, even
     * an empty transaction: the caller must stop. */
    if (s_fatal(st)) {
        if (st->txn)
            s_rollback(st);
        st->txn = st->failed = 0;
        st->txn_writes = 0;
        return -1;
    }
    if (!st->txn)
        return 0;
    if (st->failed) {
        bx_warn(TAG, "transaction of %llu write(s) rolled back after a failed write",
                (unsigned long long)st->txn_writes);
        s_rollback(st);
        ret = -1;
    } else {
        sqlite3_stmt *s = st->stmt[S_COMMIT];
        int64_t t0 = s_now_us();
        int rc = sqlite3_step(s);
        int64_t us = s_now_us() - t0;
        sqlite3_reset(s);
        if (rc == SQLITE_DONE) {
            st->stats.commits++;
            st->stats.writes += st->txn_writes;
            st->stats.commit_us_last = us;
            if (us > st->stats.commit_us_max)
                st->stats.commit_us_max = us;
            /* Committed into a file nobody can open again is not stored:
             * the replies that wait for this commit must not leave. */
            char why[sizeof st->why];
            st->fault = BX_FAULT_NONE;
            bx_fault_t f = bx_dbfiles_deleted(&st->files, why, sizeof why);
            if (f != BX_FAULT_NONE) {
                s_fault(st, f, "%s", why);
                ret = -1;
            }
        } else {
            bx_error(TAG, "commit of %llu write(s): %s", (unsigned long long)st->txn_writes,
                     sqlite3_errmsg(st->db));
            s_fault_sql(st, "commit");
            st->stats.failures++;
            s_rollback(st);
            ret = -1;
        }
    }
    st->txn = 0;
    st->failed = 0;
    st->txn_writes = 0;
    return ret;
}

/* ------------------------------------------------------------ loading */

/* Hands one row of the load query `which` to its callback; non-zero stops. */
static int s_load_row(sqlite3_stmt *s, int which, const bx_store_loader_t *l)
{
    const char *t;
    switch (which) {
    case S_LOAD_MESSAGE:
        /* column_text before column_bytes: the length is of the text form. */
        t = s_col_text(s, 1);
        return l->message(l->ud, s_col_u64(s, 0), t, (size_t)sqlite3_column_bytes(s, 1),
                          sqlite3_column_int64(s, 2));
    case S_LOAD_SESSION: {
        int rc = l->session(l->ud, s_col_text(s, 0), s_col_text(s, 1),
                            sqlite3_column_int(s, 2) != 0, s_col_u64(s, 3),
                            sqlite3_column_int64(s, 4));
        const char *subject = s_col_text(s, 5);
        if (rc == 0 && *subject && l->subject)
            rc = l->subject(l->ud, s_col_text(s, 0), subject);
        return rc;
    }
    case S_LOAD_SUB:
        return l->subscription(l->ud, s_col_text(s, 0), s_col_text(s, 1));
    case S_LOAD_QUEUED:
        return l->queued(l->ud, s_col_text(s, 0), s_col_u64(s, 1), s_col_u64(s, 2));
    case S_LOAD_CHANNEL:
        return l->channel(l->ud, s_col_text(s, 0), s_col_u64(s, 1));
    case S_LOAD_HISTORY:
        return l->history(l->ud, s_col_text(s, 0), s_col_u64(s, 1), s_col_u64(s, 2),
                          sqlite3_column_int64(s, 3));
    default:
        assert(!"not a load statement");
        return -1;
    }
}

static int s_load_rows(bx_store_t *st, int which, const bx_store_loader_t *l)
{
    sqlite3_stmt *s = st->stmt[which];
    int rc, ret = 0;

    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (s_load_row(s, which, l) != 0) {
            bx_error(TAG, "%s: a row was refused", s_sql[which].name);
            ret = -1;
            break;
        }
    }
    if (ret == 0 && rc != SQLITE_DONE) {
        bx_error(TAG, "%s: %s", s_sql[which].name, sqlite3_errmsg(st->db));
        ret = -1;
    }
    sqlite3_reset(s);
    return ret;
}

int bx_store_load(bx_store_t *st, const bx_store_loader_t *l)
{
    assert(st && l);
    const struct {
        int which;
        int present;
    } steps[] = {
        { S_LOAD_MESSAGE, l->message != NULL },
        { S_LOAD_SESSION, l->session != NULL },
        { S_LOAD_SUB, l->subscription != NULL },
        { S_LOAD_QUEUED, l->queued != NULL },
        { S_LOAD_CHANNEL, l->channel != NULL },
        { S_LOAD_HISTORY, l->history != NULL },
    };
    int ret = 0;

    if (bx_store_commit(st) != 0)
        return -1;
    /* One read transaction: every table as of the same moment. */
    sqlite3_stmt *b = st->stmt[S_BEGIN_READ];
    int rc = sqlite3_step(b);
    sqlite3_reset(b);
    if (rc != SQLITE_DONE) {
        bx_error(TAG, "load: begin: %s", sqlite3_errmsg(st->db));
        return -1;
    }
    for (size_t i = 0; ret == 0 && i < sizeof steps / sizeof steps[0]; i++)
        if (steps[i].present)
            ret = s_load_rows(st, steps[i].which, l);
    /* Nothing was written: ending the read transaction cannot lose anything. */
    s_rollback(st);
    return ret;
}

/* ------------------------------------------------------------ checking */

static const struct {
    const char *sql;    /* counts the offending rows */
    const char *what;   /* "problem: <count> <what>" */
} s_checks[] = {
    /* NOT IN over an uncorrelated subquery: one temporary index, not a scan per row. */
    { "SELECT count(*) FROM queued WHERE session NOT IN (SELECT id FROM session)",
      "queued row(s) reference missing sessions" },
    { "SELECT count(*) FROM queued WHERE msg NOT IN (SELECT id FROM message)",
      "queued row(s) reference missing messages" },
    { "SELECT count(*) FROM history WHERE msg NOT IN (SELECT id FROM message)",
      "history row(s) reference missing messages" },
    { "SELECT count(*) FROM history WHERE channel NOT IN (SELECT name FROM channel)",
      "history row(s) belong to channels without a channel row" },
    { "SELECT count(*) FROM subscription WHERE session NOT IN (SELECT id FROM session)",
      "subscription row(s) reference missing sessions" },
    { "SELECT count(*) FROM message WHERE id NOT IN (SELECT msg FROM queued)"
      " AND id NOT IN (SELECT msg FROM history)",
      "message row(s) referenced by no queued or history row" },
    { "SELECT count(*) FROM channel AS c"
      " WHERE seq < (SELECT max(h.seq) FROM history AS h WHERE h.channel = c.name)",
      "channel row(s) with a seq lower than their history's last seq" },
};

/* The tables in the order of the summary line. */
static const char *const s_count_sql[] = {
    "SELECT count(*) FROM session", "SELECT count(*) FROM subscription",
    "SELECT count(*) FROM message", "SELECT count(*) FROM queued",
    "SELECT count(*) FROM channel", "SELECT count(*) FROM history",
};

/* Prints each line of PRAGMA integrity_check that is not "ok"; returns how many. */
static int s_check_integrity(bx_store_t *st, FILE *out)
{
    sqlite3_stmt *s = NULL;
    int rc, problems = 0;

    rc = sqlite3_prepare_v2(st->db, "PRAGMA integrity_check", -1, &s, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *line = s_col_text(s, 0);
        if (strcmp(line, "ok") != 0) {
            fprintf(out, "problem: integrity_check: %s\n", line);
            problems++;
        }
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK && rc != SQLITE_DONE) {
        fprintf(out, "problem: integrity_check failed: %s\n", sqlite3_errmsg(st->db));
        problems++;
    }
    sqlite3_finalize(s);
    return problems;
}

static int s_check(bx_store_t *st, FILE *out);

int bx_store_check(bx_store_t *st, FILE *out)
{
    assert(st);
    FILE *null = NULL;
    if (!out && !(out = null = fopen("/dev/null", "w")))
        return -1;
    int rc = s_check(st, out);
    if (null)
        fclose(null);
    return rc;
}

static int s_check(bx_store_t *st, FILE *out)
{
    int64_t version = -1, counts[6] = { 0 };
    int problems = 0;

    if (bx_store_commit(st) != 0) {
        fprintf(out, "problem: the open transaction could not be committed\n");
        problems++;
    }
    /* One read transaction, so the figures agree with each other. */
    if (s_exec(st->db, "BEGIN", NULL, 0) != 0) {
        fprintf(out, "problem: cannot read the database: %s\n", sqlite3_errmsg(st->db));
        fprintf(out, "bayeuxd: database has 1 problem(s)\n");
        return 1;
    }
    problems += s_check_integrity(st, out);

    if (s_query_int(st->db, "PRAGMA user_version", &version) != 0) {
        fprintf(out, "problem: cannot read the schema version: %s\n", sqlite3_errmsg(st->db));
        problems++;
    } else if (version != BX_STORE_SCHEMA_VERSION) {
        fprintf(out, "problem: schema version is %lld, expected %d\n", (long long)version,
                BX_STORE_SCHEMA_VERSION);
        problems++;
    }

    for (size_t i = 0; i < sizeof s_checks / sizeof s_checks[0]; i++) {
        int64_t n = 0;
        if (s_query_int(st->db, s_checks[i].sql, &n) != 0) {
            fprintf(out, "problem: cannot check %s: %s\n", s_checks[i].what,
                    sqlite3_errmsg(st->db));
            problems++;
        } else if (n > 0) {
            fprintf(out, "problem: %lld %s\n", (long long)n, s_checks[i].what);
            problems++;
        }
    }

    for (size_t i = 0; i < sizeof s_count_sql / sizeof s_count_sql[0]; i++) {
        if (s_query_int(st->db, s_count_sql[i], &counts[i]) != 0) {
            fprintf(out, "problem: cannot count rows (%s): %s\n", s_count_sql[i],
                    sqlite3_errmsg(st->db));
            problems++;
        }
    }
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);

    if (problems) {
        fprintf(out, "bayeuxd: database has %d problem(s)\n", problems);
        return 1;
    }
    fprintf(out, "bayeuxd: database ok: schema %lld, %lld sessions, %lld subscriptions, "
            "%lld messages, %lld queued, %lld channels, %lld history\n", (long long)version,
            (long long)counts[0], (long long)counts[1], (long long)counts[2],
            (long long)counts[3], (long long)counts[4], (long long)counts[5]);
    return 0;
}

int bx_store_backup(bx_store_t *st, const char *path, char *err, size_t errlen)
{
    assert(st && path);
    sqlite3 *dst = NULL;
    struct stat sb;
    int rc;

    /* A new file only: never over a database, this one least of all. */
    if (stat(path, &sb) == 0 || errno != ENOENT) {
        bx_errf(err, errlen, "%s: %s", path, errno == ENOENT || stat(path, &sb) == 0
                ? "exists already: name a new file" : strerror(errno));
        return -1;
    }
    /* The copy holds what is committed: the open transaction goes first,
     * unless a write of it failed: that rollback is the turn's flush's to
     * make and report, before any of its replies leave. */
    if (st->txn && st->failed) {
        bx_errf(err, errlen, "a write failed in this turn; try again");
        return -1;
    }
    if (bx_store_commit(st) != 0) {
        bx_errf(err, errlen, "the open transaction could not be committed");
        return -1;
    }
    rc = sqlite3_open_v2(path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_backup *b = sqlite3_backup_init(dst, "main", st->db, "main");
        if (b) {
            rc = sqlite3_backup_step(b, -1);
            if (rc == SQLITE_DONE)
                rc = SQLITE_OK;
            sqlite3_backup_finish(b);
        } else {
            rc = sqlite3_errcode(dst);
        }
    }
    if (rc != SQLITE_OK)
        bx_errf(err, errlen, "%s: %s", path, dst ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
    sqlite3_close(dst);
    if (rc != SQLITE_OK)
        unlink(path);
    return rc == SQLITE_OK ? 0 : -1;
}

bx_fault_t bx_store_fault(const bx_store_t *st, const char **why)
{
    assert(st);
    if (why)
        *why = st->fault != BX_FAULT_NONE ? st->why : "";
    return st->fault;
}

bx_fault_t bx_store_watch(bx_store_t *st)
{
    assert(st);
    if (!s_fatal(st)) {
        char why[sizeof st->why];
        bx_fault_t f = bx_dbfiles_check(&st->files, why, sizeof why);
        if (f != BX_FAULT_NONE)
            s_fault(st, f, "%s", why);
    }
    return st->fault;
}

void bx_store_stats(const bx_store_t *st, bx_store_stats_t *out)
{
    assert(out);
    if (st)
        *out = st->stats;
    else
        memset(out, 0, sizeof *out);
}
