/* test_store.c - the SQLite store against ":memory:" and a file in a temp
 * directory: schema creation, every write read back through bx_store_load in
 * the promised order, group commit and rollback, refusal of newer schemas,
 * --check-db on clean and damaged databases, and a load of 100,000
 * messages. Damage is planted through the API or with raw SQL on a second
 * connection. */
#include <dirent.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "server.h"
#include "store.h"
#include "tap.h"
#include "util.h"

static char s_dir[64];   /* the temp directory, removed at the end */

/* ------------------------------------------------------------ helpers */

/* Records every row the loader hands over, one line each. */
typedef struct {
    bx_buf_t b;
    int rows;
    int refuse_at;       /* the row number (from 1) whose callback refuses; 0 never */
} rec_t;

static int rec_row(rec_t *r)
{
    r->rows++;
    return r->refuse_at != 0 && r->rows == r->refuse_at;
}

static int rec_message(void *ud, uint64_t id, const char *json, size_t len, int64_t time)
{
    rec_t *r = ud;
    bx_buf_printf(&r->b, "M %llu %zu %.*s %lld\n", (unsigned long long)id, len, (int)len,
                  json, (long long)time);
    return rec_row(r);
}

static int rec_session(void *ud, const char *id, const char *browser, int ack, uint64_t batch,
                       int64_t created)
{
    rec_t *r = ud;
    bx_buf_printf(&r->b, "S %s %s %d %llu %lld\n", id, browser, ack,
                  (unsigned long long)batch, (long long)created);
    return rec_row(r);
}

static int rec_subscription(void *ud, const char *id, const char *channel)
{
    rec_t *r = ud;
    bx_buf_printf(&r->b, "U %s %s\n", id, channel);
    return rec_row(r);
}

static int rec_queued(void *ud, const char *id, uint64_t msgid, uint64_t batch)
{
    rec_t *r = ud;
    bx_buf_printf(&r->b, "Q %s %llu %llu\n", id, (unsigned long long)msgid,
                  (unsigned long long)batch);
    return rec_row(r);
}

static int rec_channel(void *ud, const char *name, uint64_t seq)
{
    rec_t *r = ud;
    bx_buf_printf(&r->b, "C %s %llu\n", name, (unsigned long long)seq);
    return rec_row(r);
}

static int rec_history(void *ud, const char *channel, uint64_t seq, uint64_t msgid,
                       int64_t time)
{
    rec_t *r = ud;
    bx_buf_printf(&r->b, "H %s %llu %llu %lld\n", channel, (unsigned long long)seq,
                  (unsigned long long)msgid, (long long)time);
    return rec_row(r);
}

static bx_store_loader_t rec_loader(rec_t *r)
{
    bx_store_loader_t l = { r, rec_message, rec_session, rec_subscription, rec_queued,
                            rec_channel, rec_history, NULL };
    return l;
}

/* Everything in the store as text ("" if empty, "LOAD FAILED" on error). */
static char *dump_with(bx_store_t *st, const bx_store_loader_t *l, rec_t *r)
{
    if (bx_store_load(st, l) != 0) {
        bx_buf_free(&r->b);
        return bx_strdup("LOAD FAILED");
    }
    return bx_buf_steal(&r->b, NULL);
}

static char *dump(bx_store_t *st)
{
    rec_t r = { 0 };
    bx_store_loader_t l = rec_loader(&r);
    return dump_with(st, &l, &r);
}

/* Only the queued rows: the other callbacks are NULL and must be skipped. */
static char *dump_queued(bx_store_t *st)
{
    rec_t r = { 0 };
    bx_store_loader_t l = { &r, NULL, NULL, NULL, rec_queued, NULL, NULL, NULL };
    return dump_with(st, &l, &r);
}

static char *dump_history(bx_store_t *st)
{
    rec_t r = { 0 };
    bx_store_loader_t l = { &r, NULL, NULL, NULL, NULL, rec_channel, rec_history, NULL };
    return dump_with(st, &l, &r);
}

static bx_store_t *open_store(const char *path, char *err, size_t errlen)
{
    bx_store_cfg_t cfg = { .path = path, .busy_timeout_ms = 1000 };
    return bx_store_open(&cfg, err, errlen);
}

/* bx_store_check's output and return value. */
static char *check(bx_store_t *st, int *rc)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    *rc = bx_store_check(st, f);
    fclose(f);
    return text;
}

/* A second, raw connection to a database file. */
static int raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    char *msg = NULL;
    int rc = sqlite3_open(path, &db);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(db, 1000);
        rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    }
    if (rc != SQLITE_OK)
        diag("raw sql failed: %s", msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    sqlite3_close(db);
    return rc;
}

/* The first column of the first row of sql, as text, in out. */
static void raw_text(const char *path, const char *sql, char *out, size_t outlen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    snprintf(out, outlen, "ERROR");
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK
        && sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK
        && sqlite3_step(s) == SQLITE_ROW)
        snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    sqlite3_close(db);
}

static char *tmp_path(const char *name)
{
    bx_buf_t b;
    bx_buf_init(&b);
    bx_buf_printf(&b, "%s/%s", s_dir, name);
    return bx_buf_steal(&b, NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* rm -r for the temp directory (two levels are all the tests create). */
static void rm_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            bx_buf_t b;
            bx_buf_init(&b);
            bx_buf_printf(&b, "%s/%s", path, e->d_name);
            rm_tree(b.data);
            bx_buf_free(&b);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* ------------------------------------------------------------ round trip */

static const char s_expected[] =
    "M 1 7 {\"a\":1} 1001\n"
    "M 2 0  -5\n"
    "M 3 18 {\"t\":\"q\\\"uote \xc3\xa9\"} 1003\n"
    "S s1 b1 0 0 2000\n"
    "S s2 b2 1 7 1000\n"
    "S s9 b9 1 18446744073709551615 -1\n"
    "U s1 /b\n"
    "U s1 /chat/**\n"
    "U s2 /chat/a\n"
    "Q s1 2 0\n"
    "Q s2 1 5\n"
    "Q s2 3 6\n"
    "C /chat/a 3\n"
    "C /chat/b 4\n"
    "H /chat/a 1 1 11\n"
    "H /chat/a 2 2 12\n"
    "H /chat/b 3 1 13\n"
    "H /chat/b 4 3 14\n";

/* Writes s_expected's rows in an order unlike the load order. */
static int write_sample(bx_store_t *st)
{
    static const char m3[] = "{\"t\":\"q\\\"uote \xc3\xa9\"}";
    int bad = 0;
    bad += bx_store_msg_put(st, 3, m3, strlen(m3), 1003) != 0;
    bad += bx_store_msg_put(st, 1, "{\"a\":1}TRAILING", 7, 1001) != 0;   /* len, not strlen */
    bad += bx_store_msg_put(st, 2, "", 0, -5) != 0;
    bad += bx_store_session_put(st, "s2", "b2", 1, 5, 1000) != 0;
    bad += bx_store_session_put(st, "s9", "old", 0, 0, 0) != 0;
    bad += bx_store_session_put(st, "s9", "b9", 7, UINT64_MAX, -1) != 0;   /* put replaces */
    bad += bx_store_session_put(st, "s1", "b1", 0, 0, 2000) != 0;
    bad += bx_store_session_batch(st, "s2", 7) != 0;
    bad += bx_store_sub_add(st, "s2", "/chat/a") != 0;
    bad += bx_store_sub_add(st, "s1", "/chat/**") != 0;
    bad += bx_store_sub_add(st, "s1", "/b") != 0;
    bad += bx_store_sub_add(st, "s1", "/b") != 0;   /* Bayeux: subscribing twice is fine */
    bad += bx_store_queued_add(st, "s2", 3, 6) != 0;
    bad += bx_store_queued_add(st, "s2", 1, 5) != 0;
    bad += bx_store_queued_add(st, "s1", 2, 0) != 0;
    bad += bx_store_channel_seq(st, "/chat/b", 4) != 0;
    bad += bx_store_channel_seq(st, "/chat/a", 2) != 0;
    bad += bx_store_channel_seq(st, "/chat/a", 3) != 0;   /* upsert */
    bad += bx_store_history_add(st, "/chat/b", 4, 3, 14) != 0;
    bad += bx_store_history_add(st, "/chat/a", 2, 2, 12) != 0;
    bad += bx_store_history_add(st, "/chat/b", 3, 1, 13) != 0;
    bad += bx_store_history_add(st, "/chat/a", 1, 1, 11) != 0;
    return bad;
}

static void t_roundtrip(const char *path, const char *label)
{
    char err[256];
    bx_store_t *st = open_store(path, err, sizeof err);
    char *got;
    int rc;

    ok(st != NULL, "%s: opens", label);
    if (!st) {
        diag("%s", err);
        return;
    }
    got = check(st, &rc);
    is_str(got, "bayeuxd: database ok: schema 2, 0 sessions, 0 subscriptions, 0 messages, "
                "0 queued, 0 channels, 0 history\n", "%s: new database checks clean", label);
    free(got);

    is_int(write_sample(st), 0, "%s: every write returns 0", label);
    is_int(bx_store_commit(st), 0, "%s: commit", label);
    got = dump(st);
    is_str(got, s_expected, "%s: load gives back every row, in order, with its values", label);
    free(got);

    got = check(st, &rc);
    is_int(rc, 0, "%s: the sample is consistent", label);
    is_str(got, "bayeuxd: database ok: schema 2, 3 sessions, 3 subscriptions, 3 messages, "
                "3 queued, 2 channels, 4 history\n", "%s: check counts every table", label);
    free(got);

    /* queued_ack deletes batch <= N of that session only. */
    int bad = 0;
    for (uint64_t b = 1; b <= 4; b++)
        bad += bx_store_queued_add(st, "s1", 10 + b, b) != 0;
    bad += bx_store_queued_ack(st, "s1", 2) != 0;
    bad += bx_store_commit(st) != 0;
    got = dump_queued(st);
    is_str(got, "Q s1 13 3\nQ s1 14 4\nQ s2 1 5\nQ s2 3 6\n",
           "%s: queued_ack removes exactly the session's batches <= 2 (0 too)", label);
    free(got);
    bad += bx_store_queued_ack(st, "s1", 3) != 0;
    bad += bx_store_queued_del(st, "s2", 3) != 0;
    bad += bx_store_queued_del(st, "s2", 99) != 0;   /* no such row: not an error */
    bad += bx_store_commit(st) != 0;
    got = dump_queued(st);
    is_str(got, "Q s1 14 4\nQ s2 1 5\n", "%s: queued_ack 3 and queued_del", label);
    free(got);
    is_int(bad, 0, "%s: queue writes return 0", label);

    /* history_trim deletes seq <= N of that channel only; channel rows stay. */
    bad = bx_store_history_trim(st, "/chat/b", 3) != 0;
    bad += bx_store_commit(st) != 0;
    got = dump_history(st);
    is_str(got, "C /chat/a 3\nC /chat/b 4\nH /chat/a 1 1 11\nH /chat/a 2 2 12\nH /chat/b 4 3 14\n",
           "%s: history_trim removes seq <= 3 of /chat/b only", label);
    free(got);
    bad += bx_store_history_trim(st, "/chat/a", 2) != 0;
    bad += bx_store_channel_seq(st, "/chat/a", 9) != 0;
    bad += bx_store_commit(st) != 0;
    got = dump_history(st);
    is_str(got, "C /chat/a 9\nC /chat/b 4\nH /chat/b 4 3 14\n",
           "%s: trimming a whole history keeps the channel's seq", label);
    free(got);
    is_int(bad, 0, "%s: history writes return 0", label);

    /* session_del takes the subscriptions and queued rows along, nothing else. */
    bad = bx_store_session_del(st, "s2") != 0;
    bad += bx_store_sub_del(st, "s1", "/b") != 0;
    bad += bx_store_msg_del(st, 2) != 0;
    bad += bx_store_commit(st) != 0;
    is_int(bad, 0, "%s: deletes return 0", label);
    got = dump(st);
    is_str(got,
           "M 1 7 {\"a\":1} 1001\n"
           "M 3 18 {\"t\":\"q\\\"uote \xc3\xa9\"} 1003\n"
           "S s1 b1 0 0 2000\n"
           "S s9 b9 1 18446744073709551615 -1\n"
           "U s1 /chat/**\n"
           "Q s1 14 4\n"
           "C /chat/a 9\nC /chat/b 4\n"
           "H /chat/b 4 3 14\n",
           "%s: session_del removed s2 with its subscription and queued row", label);
    free(got);

    bx_store_close(&st);
    ok(st == NULL, "%s: close clears the pointer", label);
}

/* ------------------------------------------------------------ files */

static void t_file(void)
{
    char *path = tmp_path("new/deeper/bayeuxd.db");
    char *dir = tmp_path("new/deeper");
    char err[256], text[64];
    struct stat sb = { 0 };

    bx_store_t *st = open_store(path, err, sizeof err);
    ok(st != NULL, "file: opens in a directory that does not exist yet");
    ok(stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode), "file: the directory was created");
    is_int(sb.st_mode & 0777, 0750, "file: with mode 0750");
    /* Exclusive locking: the store keeps the database to itself, and its
     * WAL index in memory, not in a mapped -shm file. */
    raw_text(path, "PRAGMA user_version", text, sizeof text);
    is_str(text, "ERROR", "file: another connection cannot read it while it is open");
    char *shm = tmp_path("new/deeper/bayeuxd.db-shm");
    ok(stat(shm, &sb) != 0, "file: no -shm file");
    free(shm);

    /* Group commit: what was committed survives close, the rest does not. */
    int bad = bx_store_session_put(st, "kept", "b", 0, 0, 1) != 0;
    bad += bx_store_msg_put(st, 1, "{}", 2, 2) != 0;
    bad += bx_store_queued_add(st, "kept", 1, 0) != 0;
    bad += bx_store_commit(st) != 0;
    bad += bx_store_session_put(st, "lost", "b", 0, 0, 3) != 0;
    bad += bx_store_msg_put(st, 2, "{}", 2, 4) != 0;
    bad += bx_store_session_del(st, "kept") != 0;
    is_int(bad, 0, "file: writes return 0");
    bx_store_close(&st);
    raw_text(path, "PRAGMA user_version", text, sizeof text);
    is_str(text, "2", "file: user_version is 2");
    raw_text(path, "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master"
                   " WHERE type = 'table' ORDER BY name)", text, sizeof text);
    is_str(text, "channel,history,message,queued,session,subscription",
           "file: the six tables exist");
    raw_text(path, "PRAGMA journal_mode", text, sizeof text);
    is_str(text, "wal", "file: journal_mode is wal");
    raw_text(path, "SELECT group_concat(id) FROM session", text, sizeof text);
    is_str(text, "kept", "file: after close, another connection sees only committed rows");

    st = open_store(path, err, sizeof err);
    ok(st != NULL, "file: reopens");
    if (st) {
        char *got = dump(st);
        is_str(got, "M 1 2 {} 2\nS kept b 0 0 1\nQ kept 1 0\n",
               "file: after reopen, committed writes are there and uncommitted ones are not");
        free(got);
        bx_store_close(&st);
    }

    /* The same file must still be refused once its schema is from the future. */
    ok(raw_exec(path, "PRAGMA user_version = 99") == SQLITE_OK, "file: user_version set to 99");
    err[0] = '\0';
    st = open_store(path, err, sizeof err);
    ok(st == NULL, "file: a newer schema is refused");
    is_str(err, "database schema 99 is newer than this bayeuxd (2)", "file: and says why");
    bx_store_close(&st);
    raw_text(path, "SELECT count(*) FROM session", text, sizeof text);
    is_str(text, "1", "file: the refused database was left alone");
    free(path);
    free(dir);
}

static void t_refusals(void)
{
    char err[256];
    char *foreign = tmp_path("foreign.db");
    char *junk = tmp_path("junk.db");
    char *blocked = tmp_path("junk.db/sub/x.db");
    bx_store_t *st;

    ok(raw_exec(foreign, "CREATE TABLE t (x)") == SQLITE_OK, "refuse: foreign database made");
    st = open_store(foreign, err, sizeof err);
    ok(st == NULL && strstr(err, "not a bayeuxd database") != NULL,
       "refuse: tables with user_version 0 are not ours (%s)", err);
    bx_store_close(&st);

    FILE *f = fopen(junk, "w");
    if (f) {
        for (int i = 0; i < 200; i++)
            fputs("this is not an SQLite database at all. ", f);
        fclose(f);
    }
    err[0] = '\0';
    st = open_store(junk, err, sizeof err);
    ok(st == NULL && err[0] != '\0', "refuse: a file that is not a database (%s)", err);
    bx_store_close(&st);

    err[0] = '\0';
    st = open_store(blocked, err, sizeof err);
    ok(st == NULL && strstr(err, "cannot create") != NULL,
       "refuse: a directory that cannot be created (%s)", err);

    bx_store_cfg_t nopath = { .path = NULL };
    st = bx_store_open(&nopath, err, sizeof err);
    ok(st == NULL && err[0] != '\0', "refuse: no path (%s)", err);
    st = bx_store_open(NULL, NULL, 0);
    ok(st == NULL, "refuse: no configuration, no error buffer");
    bx_store_close(&st);
    bx_store_close(NULL);
    ok(1, "close tolerates NULL and a NULL store");
    free(foreign);
    free(junk);
    free(blocked);
}

/* ------------------------------------------------------------ transactions */

static void t_failure_and_stats(void)
{
    char err[256];
    bx_store_t *st = open_store(":memory:", err, sizeof err);
    bx_store_stats_t s;
    char *got;
    int rc;

    bx_store_stats(st, &s);
    ok(s.commits == 0 && s.writes == 0 && s.failures == 0, "stats: zero at start");
    is_int(bx_store_commit(st), 0, "stats: committing nothing succeeds");
    bx_store_stats(st, &s);
    is_int((long long)s.commits, 0, "stats: and is not counted");

    int bad = bx_store_msg_put(st, 1, "{}", 2, 1) != 0;
    bad += bx_store_session_put(st, "a", "b", 0, 0, 1) != 0;
    bad += bx_store_sub_add(st, "a", "/x") != 0;
    is_int(bad, 0, "stats: three writes");
    is_int(bx_store_commit(st), 0, "stats: first commit");
    bx_store_stats(st, &s);
    is_int((long long)s.commits, 1, "stats: one commit");
    is_int((long long)s.writes, 3, "stats: three writes");
    ok(s.commit_us_last >= 0 && s.commit_us_max >= s.commit_us_last,
       "stats: commit durations (%lld, max %lld us)", (long long)s.commit_us_last,
       (long long)s.commit_us_max);

    /* session_del is three statements. */
    is_int(bx_store_session_del(st, "a"), 0, "stats: session_del");
    is_int(bx_store_commit(st), 0, "stats: second commit");
    bx_store_stats(st, &s);
    is_int((long long)s.commits, 2, "stats: two commits");
    is_int((long long)s.writes, 6, "stats: session_del counted its three statements");

    /* A duplicate message id fails the write, dooms the transaction, and the
     * commit rolls back everything written in it. */
    is_int(bx_store_session_put(st, "doomed", "b", 0, 0, 1), 0, "fail: a good write first");
    is_int(bx_store_msg_put(st, 1, "{\"dup\":1}", 9, 1), -1, "fail: a duplicate id is refused");
    is_int(bx_store_sub_add(st, "doomed", "/y"), -1, "fail: later writes are refused too");
    is_int(bx_store_commit(st), -1, "fail: commit reports the failure");
    bx_store_stats(st, &s);
    is_int((long long)s.failures, 1, "fail: one failure counted");
    is_int((long long)s.commits, 2, "fail: no commit counted");
    got = dump(st);
    is_str(got, "M 1 2 {} 1\n", "fail: the whole transaction was rolled back");
    free(got);

    is_int(bx_store_session_put(st, "after", "b", 0, 0, 1), 0, "fail: the next write works");
    is_int(bx_store_commit(st), 0, "fail: and commits");
    got = dump(st);
    is_str(got, "M 1 2 {} 1\nS after b 0 0 1\n", "fail: the store is usable again");
    free(got);

    is_int(bx_store_session_put(st, "nobrowser", NULL, 0, 0, 1), -1,
           "fail: NULL in a NOT NULL column is refused");
    is_int(bx_store_commit(st), -1, "fail: and rolled back");

    /* Load commits a transaction that is still open. */
    bx_store_msg_put(st, 5, "{}", 2, 5);
    got = dump(st);
    ok(strstr(got, "M 5 2 {} 5\n") != NULL, "load: sees writes of the open transaction");
    free(got);
    bx_store_stats(st, &s);
    is_int((long long)s.commits, 4, "load: committed them first");

    /* A callback's refusal stops the load. */
    rec_t r = { .refuse_at = 2 };
    bx_store_loader_t l = rec_loader(&r);
    is_int(bx_store_load(st, &l), -1, "load: a refusing callback fails the load");
    is_int(r.rows, 2, "load: and no row is handed over after it");
    bx_buf_free(&r.b);
    rc = bx_store_session_put(st, "x", "b", 0, 0, 1);
    rc |= bx_store_commit(st);
    is_int(rc, 0, "load: the read transaction was ended after the refusal");

    bx_store_stats(NULL, &s);
    ok(s.commits == 0 && s.writes == 0, "stats: of no store are zero");
    bx_store_close(&st);
}

/* ------------------------------------------------------------ the store's own connection */

/* An auto-extension runs for every connection SQLite opens: it lends the test
 * the store's handle, to read its settings and to make a write fail in a way
 * that makes SQLite itself roll the transaction back (an interrupt). */
static int s_capture;            /* capture the next connection opened */
static sqlite3 *s_captured;
static int s_interrupt;          /* the progress handler interrupts every statement */

static int capture_hook(sqlite3 *db, char **errmsg, const struct sqlite3_api_routines *api)
{
    if (s_capture)
        s_captured = db;
    return SQLITE_OK;
}

static int interrupt_progress(void *ud)
{
    return s_interrupt;
}

static long long conn_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s = NULL;
    long long v = -1;
    if (db && sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK
        && sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

static bx_store_t *open_captured(const char *path, int sync_full)
{
    char err[256];
    bx_store_cfg_t cfg = { .path = path, .sync_full = sync_full, .busy_timeout_ms = 1234 };
    s_captured = NULL;
    s_capture = 1;
    bx_store_t *st = bx_store_open(&cfg, err, sizeof err);
    s_capture = 0;
    return st;
}

static void t_connection(void)
{
    char *path = tmp_path("conn.db");
    bx_store_t *st;
    char *got;

    sqlite3_auto_extension((void (*)(void))capture_hook);
    st = open_captured(path, 1);
    ok(st != NULL && s_captured != NULL, "conn: the store's connection is visible to the test");
    is_int(conn_int(s_captured, "PRAGMA synchronous"), 2, "conn: synchronous = FULL");
    is_int(conn_int(s_captured, "PRAGMA foreign_keys"), 0, "conn: foreign_keys off");
    is_int(conn_int(s_captured, "PRAGMA busy_timeout"), 1234, "conn: busy_timeout as configured");
    bx_store_close(&st);
    st = open_captured(path, 0);
    is_int(conn_int(s_captured, "PRAGMA synchronous"), 1, "conn: synchronous = NORMAL");

    /* SQLite rolls back the whole transaction on an interrupt: the writes
     * after it must not run, or they would commit one by one. */
    sqlite3_progress_handler(s_captured, 1, interrupt_progress, NULL);
    is_int(bx_store_session_put(st, "a", "b", 0, 0, 1), 0, "conn: a write");
    s_interrupt = 1;
    is_int(bx_store_session_put(st, "b", "b", 0, 0, 1), -1, "conn: an interrupted write fails");
    s_interrupt = 0;
    ok(sqlite3_get_autocommit(s_captured), "conn: SQLite rolled the transaction back itself");
    is_int(bx_store_session_put(st, "c", "b", 0, 0, 1), -1, "conn: the next write is refused");
    ok(sqlite3_get_autocommit(s_captured), "conn: and did not run outside a transaction");
    {
        /* A backup now would commit, and leave the turn's commit nothing to
         * fail on: its replies would go out for writes rolled back. */
        char err[256], *copy = tmp_path("after-failure.db");
        is_int(bx_store_backup(st, copy, err, sizeof err), -1,
               "conn: no backup after a failed write in the transaction");
        ok(access(copy, F_OK) != 0, "conn: and no file made");
        free(copy);
    }
    is_int(bx_store_commit(st), -1, "conn: commit fails");
    got = dump(st);
    is_str(got, "", "conn: nothing of the transaction is in the database");
    free(got);
    is_int(bx_store_session_put(st, "d", "b", 0, 0, 1), 0, "conn: writes work again");
    is_int(bx_store_commit(st), 0, "conn: and commit");
    got = dump(st);
    is_str(got, "S d b 0 0 1\n", "conn: the new transaction is in");
    free(got);
    bx_store_close(&st);
    sqlite3_reset_auto_extension();
    free(path);
}

/* ------------------------------------------------------------ check */

static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
            return 1;
    return 0;
}

/* Plants each kind of inconsistency, one after the other, through the API. */
static void t_check_api(void)
{
    char err[256], summary[64];
    bx_store_t *st = open_store(":memory:", err, sizeof err);
    int rc;
    char *got;

    bx_store_session_put(st, "s1", "b", 0, 0, 1);
    bx_store_sub_add(st, "s1", "/a");
    bx_store_msg_put(st, 1, "{}", 2, 1);
    bx_store_msg_put(st, 2, "{}", 2, 1);
    bx_store_queued_add(st, "s1", 1, 0);
    bx_store_channel_seq(st, "/h", 2);
    bx_store_history_add(st, "/h", 2, 2, 1);
    bx_store_commit(st);
    got = check(st, &rc);
    is_int(rc, 0, "check: a consistent database returns 0");
    is_str(got, "bayeuxd: database ok: schema 2, 1 sessions, 1 subscriptions, 2 messages, "
                "1 queued, 1 channels, 1 history\n", "check: the summary line");
    free(got);

    static const struct {
        const char *line;
    } want[] = {
        { "problem: 1 queued row(s) reference missing sessions" },
        { "problem: 2 queued row(s) reference missing messages" },
        { "problem: 1 history row(s) reference missing messages" },
        { "problem: 1 history row(s) belong to channels without a channel row" },
        { "problem: 1 subscription row(s) reference missing sessions" },
        { "problem: 1 message row(s) referenced by no queued or history row" },
        { "problem: 1 channel row(s) with a seq lower than their history's last seq" },
    };
    for (int k = 0; k < 7; k++) {
        switch (k) {
        case 0: bx_store_queued_add(st, "ghost", 1, 0); break;
        case 1: bx_store_queued_add(st, "s1", 50, 0); bx_store_queued_add(st, "s1", 51, 0); break;
        case 2: bx_store_channel_seq(st, "/h", 3); bx_store_history_add(st, "/h", 3, 60, 1); break;
        case 3: bx_store_msg_put(st, 70, "{}", 2, 1); bx_store_history_add(st, "/none", 1, 70, 1);
                break;
        case 4: bx_store_sub_add(st, "ghost2", "/x"); break;
        case 5: bx_store_msg_put(st, 80, "{}", 2, 1); break;
        case 6: bx_store_channel_seq(st, "/low", 1); bx_store_msg_put(st, 90, "{}", 2, 1);
                bx_store_history_add(st, "/low", 5, 90, 1); break;
        }
        got = check(st, &rc);   /* commits the planted rows first */
        snprintf(summary, sizeof summary, "bayeuxd: database has %d problem(s)", k + 1);
        ok(rc == 1 && has_line(got, want[k].line) && has_line(got, summary),
           "check: finds '%s' (%d problems in all)", want[k].line + 9, k + 1);
        if (!has_line(got, want[k].line) || !has_line(got, summary))
            diag("output:\n%s", got);
        free(got);
    }
    bx_store_close(&st);
}

/* Damage done by another program, seen by an open store. */
static void t_check_raw(void)
{
    char *path = tmp_path("check.db");
    char err[256];
    bx_store_t *st = open_store(path, err, sizeof err);
    int rc;
    char *got;

    bx_store_session_put(st, "s1", "b", 1, 1, 1);
    bx_store_sub_add(st, "s1", "/a");
    bx_store_msg_put(st, 1, "{}", 2, 1);
    bx_store_queued_add(st, "s1", 1, 0);
    bx_store_commit(st);
    got = check(st, &rc);
    is_int(rc, 0, "check raw: clean before");
    free(got);

    /* Behind the store's back: it must be closed for that (exclusive
     * locking), and the check reopens it as --check-db does. */
    bx_store_close(&st);
    bx_store_cfg_t cc = { .path = path, .busy_timeout_ms = 1000, .check_only = 1 };
    raw_exec(path, "DELETE FROM session WHERE id = 's1'");
    st = bx_store_open(&cc, err, sizeof err);
    got = check(st, &rc);
    ok(rc == 1 && has_line(got, "problem: 1 queued row(s) reference missing sessions")
       && has_line(got, "problem: 1 subscription row(s) reference missing sessions")
       && has_line(got, "bayeuxd: database has 2 problem(s)"),
       "check raw: a session deleted behind the store's back leaves two problems");
    free(got);
    bx_store_close(&st);
    raw_exec(path, "INSERT INTO session VALUES ('s1', 'b', 1, 1, 1, '')");

    raw_exec(path, "PRAGMA user_version = 5");
    st = bx_store_open(&cc, err, sizeof err);
    got = check(st, &rc);
    ok(rc == 1 && has_line(got, "problem: schema version is 5, expected 2"),
       "check raw: a changed user_version is reported");
    free(got);
    bx_store_close(&st);
    raw_exec(path, "PRAGMA user_version = 2");
    st = bx_store_open(&cc, err, sizeof err);
    got = check(st, &rc);
    is_int(rc, 0, "check raw: clean again after repair");
    free(got);
    bx_store_close(&st);

    /* An index whose definition no longer matches its contents. */
    raw_exec(path, "CREATE TABLE extra (a, b); CREATE INDEX extra_a ON extra (a);"
                   "INSERT INTO extra VALUES (1, 'x'), (2, 'y');"
                   "PRAGMA writable_schema = ON;"
                   "UPDATE sqlite_master SET sql = 'CREATE INDEX extra_a ON extra (b)'"
                   " WHERE name = 'extra_a';"
                   "PRAGMA writable_schema = OFF;");
    st = open_store(path, err, sizeof err);
    ok(st != NULL, "check raw: reopens a damaged file");
    if (st) {
        got = check(st, &rc);
        ok(rc == 1 && strstr(got, "problem: integrity_check: ") != NULL
           && strstr(got, "missing from index extra_a") != NULL,
           "check raw: integrity_check lines are reported");
        ok(has_line(got, "bayeuxd: database has 2 problem(s)"),
           "check raw: one problem per integrity_check line");
        if (rc != 1)
            diag("output:\n%s", got);
        free(got);
        bx_store_close(&st);
    }
    free(path);
}

/* ------------------------------------------------------------ volume */

typedef struct {
    uint64_t messages, sessions, queued;
    uint64_t last_msg;
    int out_of_order;
} count_t;

static int cnt_message(void *ud, uint64_t id, const char *json, size_t len, int64_t time)
{
    count_t *c = ud;
    c->out_of_order += id <= c->last_msg;
    c->last_msg = id;
    c->messages++;
    return 0;
}

static int cnt_session(void *ud, const char *id, const char *browser, int ack, uint64_t batch,
                       int64_t created)
{
    ((count_t *)ud)->sessions++;
    return 0;
}

static int cnt_queued(void *ud, const char *id, uint64_t msgid, uint64_t batch)
{
    ((count_t *)ud)->queued++;
    return 0;
}

static void t_volume(void)
{
    char *path = tmp_path("volume.db");
    char err[256], id[32];
    static const char json[] =
        "{\"channel\":\"/chat/room\",\"data\":{\"user\":\"someone\",\"text\":\"hello there\"},"
        "\"id\":\"12345\"}";
    bx_store_t *st = open_store(path, err, sizeof err);
    int bad = 0;

    /* Written in a scattered id order, so the load must sort. */
    for (uint64_t i = 0; i < 100000; i++)
        bad += bx_store_msg_put(st, (i * 7919) % 100000 + 1, json, sizeof json - 1,
                                (int64_t)i) != 0;
    for (int i = 0; i < 10000; i++) {
        snprintf(id, sizeof id, "session%05d", i);
        bad += bx_store_session_put(st, id, "browser", 1, 1, i) != 0;
        for (int j = 0; j < 10; j++)
            bad += bx_store_queued_add(st, id, (uint64_t)(i * 10 + j + 1), 1) != 0;
    }
    bad += bx_store_commit(st) != 0;
    is_int(bad, 0, "volume: 100,000 messages, 10,000 sessions, 100,000 queued rows written");
    bx_store_close(&st);

    st = open_store(path, err, sizeof err);
    count_t c = { 0 };
    bx_store_loader_t l = { &c, cnt_message, cnt_session, NULL, cnt_queued, NULL, NULL, NULL };
    double t0 = now_s();
    int rc = bx_store_load(st, &l);
    double dt = now_s() - t0;
    is_int(rc, 0, "volume: load succeeds");
    ok(c.messages == 100000 && c.sessions == 10000 && c.queued == 100000,
       "volume: every row loaded");
    is_int(c.out_of_order, 0, "volume: messages come by increasing id");
    /* A figure, not a verdict: timing is measured by bench/, not asserted. */
    diag("100,000 messages and 10,000 sessions loaded in %.3f s", dt);
    bx_store_close(&st);
    free(path);
}

/* --check-db opens a database as it is: a crashed one keeps its WAL (the
 * restart must recover it, not the check), and nothing is created. */
static void t_check_only(void)
{
    char *path = tmp_path("crashed.db");
    char *wal = tmp_path("crashed.db-wal");
    char err[256];
    struct stat sb;
    bx_store_t *st = open_store(path, err, sizeof err);
    int bad = bx_store_session_put(st, "s1", "b", 1, 1, 1) != 0;
    bad += bx_store_commit(st) != 0;
    is_int(bad, 0, "check-only: a committed session");
    ok(stat(wal, &sb) == 0, "check-only: the writer's WAL exists");

    bx_store_cfg_t cc = { .path = path, .busy_timeout_ms = 1000, .check_only = 1 };
    /* Beside a running writer, in another process (as --check-db runs): in
     * use, refused at once, naming the writer. */
    for (int check_only = 1; check_only >= 0; check_only--) {
        pid_t child = fork();
        if (child == 0) {
            bx_fault_t fault = BX_FAULT_NONE;
            bx_store_cfg_t c2 = { .path = path, .busy_timeout_ms = 3000,
                                  .check_only = check_only, .fault = &fault };
            char want[64];
            int64_t t0 = (int64_t)time(NULL);
            bx_store_t *other = bx_store_open(&c2, err, sizeof err);
            snprintf(want, sizeof want, "(pid %ld, ", (long)getppid());
            if (!other && fault == BX_FAULT_IN_USE && strstr(err, want) &&
                (int64_t)time(NULL) - t0 < 2)
                _exit(0);
            fprintf(stderr, "# %s\n", err);
            _exit(1);
        }
        int cs = -1;
        waitpid(child, &cs, 0);
        ok(WIFEXITED(cs) && WEXITSTATUS(cs) == 0, "%s: refused at once beside the writer, "
           "naming its pid", check_only ? "check-only" : "second writer");
    }
    bx_store_close(&st);   /* a clean close folds the WAL in */
    bx_store_t *ro = bx_store_open(&cc, err, sizeof err);
    ok(ro != NULL, "check-only: opens once the writer is gone (%s)", err);
    int rc = -1;
    char *out = ro ? check(ro, &rc) : NULL;
    is_int(rc, 0, "check-only: the check passes");
    ok(out && strstr(out, "1 sessions") != NULL, "check-only: it sees the session");
    free(out);
    ok(ro && bx_store_session_put(ro, "s2", "b", 0, 1, 1) != 0, "check-only: writes refused");
    bx_store_close(&ro);
    /* A writer killed after a commit leaves its WAL; the check, then the
     * last connection, must leave it too. */
    pid_t pid = fork();
    if (pid == 0) {
        bx_store_t *w = open_store(path, err, sizeof err);
        int b = !w || bx_store_session_put(w, "s3", "b", 0, 1, 1) != 0 ||
                bx_store_commit(w) != 0;
        _exit(b);   /* no close: as kill -9 would */
    }
    int status = -1;
    waitpid(pid, &status, 0);
    ok(WIFEXITED(status) && WEXITSTATUS(status) == 0 && stat(wal, &sb) == 0 &&
       sb.st_size > 0, "check-only: a killed writer left its WAL");
    ro = bx_store_open(&cc, err, sizeof err);
    rc = -1;
    out = ro ? check(ro, &rc) : NULL;
    ok(rc == 0 && out && strstr(out, "2 sessions"), "check-only: it reads the WAL's rows");
    free(out);
    bx_store_close(&ro);
    ok(stat(wal, &sb) == 0 && sb.st_size > 0,
       "check-only: closing the check leaves the WAL as it was");

    char *none = tmp_path("nowhere/none.db");
    bx_store_cfg_t cn = { .path = none, .busy_timeout_ms = 1000, .check_only = 1 };
    ro = bx_store_open(&cn, err, sizeof err);
    ok(ro == NULL && stat(none, &sb) != 0, "check-only: a missing file is not created");
    bx_store_close(&ro);
    free(none);
    free(path);
    free(wal);
}

/* A database made by schema 1 (the first bayeuxd with a store) opens as
 * schema 2, its rows kept, sessions without a subject. */
static void t_migration(void)
{
    char *path = tmp_path("v1.db");
    char err[256], text[64];
    ok(raw_exec(path, "CREATE TABLE session (id TEXT PRIMARY KEY, browser TEXT NOT NULL,"
                      " ack INTEGER NOT NULL, batch INTEGER NOT NULL, created INTEGER NOT NULL)"
                      " WITHOUT ROWID;"
                      "CREATE TABLE subscription (session TEXT NOT NULL, channel TEXT NOT NULL,"
                      " PRIMARY KEY (session, channel)) WITHOUT ROWID;"
                      "CREATE TABLE message (id INTEGER PRIMARY KEY, json TEXT NOT NULL,"
                      " time INTEGER NOT NULL);"
                      "CREATE TABLE queued (session TEXT NOT NULL, msg INTEGER NOT NULL,"
                      " batch INTEGER NOT NULL, PRIMARY KEY (session, msg)) WITHOUT ROWID;"
                      "CREATE TABLE channel (name TEXT PRIMARY KEY, seq INTEGER NOT NULL)"
                      " WITHOUT ROWID;"
                      "CREATE TABLE history (channel TEXT NOT NULL, seq INTEGER NOT NULL,"
                      " msg INTEGER NOT NULL, time INTEGER NOT NULL, PRIMARY KEY (channel, seq))"
                      " WITHOUT ROWID;"
                      "INSERT INTO session VALUES ('old', 'b', 1, 7, 5);"
                      "PRAGMA user_version = 1;") == SQLITE_OK, "migration: a schema 1 database");
    bx_store_t *st = open_store(path, err, sizeof err);
    ok(st != NULL, "migration: it opens (%s)", err);
    bx_store_close(&st);
    raw_text(path, "PRAGMA user_version", text, sizeof text);
    is_str(text, "2", "migration: now schema 2");
    raw_text(path, "SELECT id || ',' || batch || ',' || subject || '.' FROM session", text,
             sizeof text);
    is_str(text, "old,7,.", "migration: the row is kept, with an empty subject");
    st = open_store(path, err, sizeof err);
    int bad = st ? bx_store_session_subject(st, "old", "alice") != 0 : 1;
    bad += st ? bx_store_commit(st) != 0 : 1;
    bx_store_close(&st);
    raw_text(path, "SELECT subject FROM session WHERE id = 'old'", text, sizeof text);
    ok(bad == 0 && strcmp(text, "alice") == 0, "migration: the new column is written");
    free(path);
}

/* Files deleted under a running store: the next commit fails (its replies
 * must not leave), and so does the watch while nothing is written. */
static void t_deleted(void)
{
    char err[256];
    for (int idle = 0; idle <= 1; idle++) {
        char *path = tmp_path(idle ? "gone-idle.db" : "gone.db");
        char *wal = tmp_path(idle ? "gone-idle.db-wal" : "gone.db-wal");
        bx_store_t *st = open_store(path, err, sizeof err);
        int bad = !st || bx_store_session_put(st, "s1", "b", 1, 1, 1) != 0 ||
                  bx_store_commit(st) != 0;
        is_int(bad, 0, "deleted: a first commit");
        is_int(st ? (int)bx_store_watch(st) : -1, BX_FAULT_NONE, "deleted: the watch is quiet");
        unlink(path);
        unlink(wal);
        const char *why = NULL;
        if (idle) {
            is_int(st ? (int)bx_store_watch(st) : -1, BX_FAULT_DELETED,
                   "deleted: noticed by the watch while idle");
        } else {
            is_int(st ? bx_store_session_put(st, "s2", "b", 1, 1, 1) : -1, 0,
                   "deleted: a write into the unlinked file still runs");
            is_int(st ? bx_store_commit(st) : 0, -1, "deleted: but its commit fails");
        }
        is_int(st ? (int)bx_store_fault(st, &why) : -1, BX_FAULT_DELETED,
               "deleted: the fault (%s)", why ? why : "");
        is_int(st ? bx_store_commit(st) : 0, -1, "deleted: and stays");
        bx_store_close(&st);
        free(path);
        free(wal);
    }
    /* Another file moved in under the name. */
    char *path = tmp_path("swapped.db"), *other = tmp_path("other.db");
    bx_store_t *st = open_store(path, err, sizeof err);
    bx_store_session_put(st, "s1", "b", 1, 1, 1);
    bx_store_commit(st);
    FILE *f = fopen(other, "w");
    if (f)
        fclose(f);
    rename(other, path);
    is_int(st ? (int)bx_store_watch(st) : -1, BX_FAULT_DELETED,
           "deleted: a file moved in over it");
    bx_store_close(&st);
    free(path);
    free(other);
}

/* mmap_size 0 and exclusive locking on the store's own connection. */
static void t_no_mmap(void)
{
    char *path = tmp_path("mmap.db");
    /* The hook must be there for this open: a handle left from an earlier
     * test would be a closed one. */
    sqlite3_auto_extension((void (*)(void))capture_hook);
    bx_store_t *st = open_captured(path, 0);
    sqlite3_reset_auto_extension();
    ok(st != NULL && s_captured != NULL, "mmap: the store's connection is visible");
    is_int(conn_int(s_captured, "PRAGMA mmap_size"), 0, "mmap: mmap_size is 0");
    sqlite3_stmt *s = NULL;
    const char *mode = "";
    if (s_captured && sqlite3_prepare_v2(s_captured, "PRAGMA locking_mode", -1, &s, NULL) ==
        SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        mode = (const char *)sqlite3_column_text(s, 0);
    is_str(mode, "exclusive", "mmap: locking_mode is exclusive");
    sqlite3_finalize(s);
    bx_store_close(&st);
    s_captured = NULL;
    free(path);
}

/* The slow-commit warning: once per slow commit, never while idle. */
static void t_slowlog(void)
{
    bx_slowlog_t w = { 0 };
    bx_store_stats_t ss = { 0 };
    struct { uint64_t commits; int64_t last_us; int64_t now; uint64_t want; const char *what; }
    steps[] = {
        { 1, 1000, 1000, 0, "a fast commit: nothing" },
        { 2, 250000, 2000, 1, "a slow commit: one warning" },
        { 2, 250000, 13000, 0, "idle after it, 11 s later: no repeat" },
        { 2, 250000, 60000, 0, "still idle a minute later: no repeat" },
        { 3, 300000, 61000, 1, "the next slow commit: warned" },
        { 4, 300000, 62000, 0, "another within 10 s: held back" },
        { 5, 300000, 63000, 0, "and another" },
        { 5, 300000, 80000, 0, "idle: the held ones wait for the next slow commit" },
        { 6, 200000, 81000, 3, "which reports all three" },
        { 7, 1000, 95000, 0, "fast again: nothing" },
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        ss.commits = steps[i].commits;
        ss.commit_us_last = steps[i].last_us;
        is_int((long long)bx_slowlog_check(&w, &ss, steps[i].now), (long long)steps[i].want,
               "slowlog: %s", steps[i].what);
    }
}

int main(void)
{
    bx_log_level = BX_LOG_ERROR;   /* the failures planted here log errors; that is expected */
    umask(022);
    snprintf(s_dir, sizeof s_dir, "/tmp/test_store.XXXXXX");
    if (!mkdtemp(s_dir)) {
        printf("Bail out! mkdtemp failed\n");
        return 1;
    }

    t_roundtrip(":memory:", "memory");
    char *file = tmp_path("roundtrip.db");
    t_roundtrip(file, "file");
    free(file);
    t_file();
    t_refusals();
    t_failure_and_stats();
    t_connection();
    t_check_api();
    t_check_raw();
    t_check_only();
    t_migration();
    t_deleted();
    t_no_mmap();
    t_slowlog();
    t_volume();

    rm_tree(s_dir);
    done_testing();
    return exit_status();
}
