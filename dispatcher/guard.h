/* guard.h - what keeps bayeuxd from losing what it answered for: one
 * bayeuxd per database and per endpoint, and a watch on the database's files
 * (deleted, no longer writable, disk full) so a fault stops it at once, with
 * a log line that says what to do and an exit status of its own
 * (docs/deploy.md, "Exit statuses").
 *
 * No SQLite here: the store (store.c) asks these questions about its files.
 */
#ifndef BX_GUARD_H
#define BX_GUARD_H

#include <stddef.h>
#include <stdint.h>

/* bayeuxd's exit statuses. The systemd unit does not restart on 2 to 5:
 * a restart cannot help until someone acts. */
#define BX_EXIT_OK 0
#define BX_EXIT_FAIL 1        /* anything else: a restart reloads the database */
#define BX_EXIT_USAGE 2       /* command line or configuration */
#define BX_EXIT_IN_USE 3      /* another process holds the database or an endpoint */
#define BX_EXIT_DISK_FULL 4   /* no room on the database's filesystem */
#define BX_EXIT_DB_LOST 5     /* database deleted, unwritable, or an I/O error */

typedef enum {
    BX_FAULT_NONE = 0,
    BX_FAULT_IN_USE,          /* another process holds the database's lock */
    BX_FAULT_FULL,            /* no space left (ENOSPC, EDQUOT, SQLITE_FULL) */
    BX_FAULT_UNWRITABLE,      /* read-only filesystem, immutable file, permissions */
    BX_FAULT_DELETED,         /* a file unlinked while open */
    BX_FAULT_IO,              /* any other I/O error */
    BX_FAULT_OTHER            /* not the files' fault (a constraint, a bug) */
} bx_fault_t;

/* The exit status that goes with a fault. */
int bx_fault_exit_status(bx_fault_t f);

/* One sentence: what the operator should do about a fault. */
const char *bx_fault_advice(bx_fault_t f);

/* The fault an errno from a failed write stands for. */
bx_fault_t bx_fault_from_errno(int err);

/* Names the process holding a write lock on SQLite's lock bytes of the
 * database at path ("pid 1234, bayeuxd"), or writes "" when there is none or
 * it cannot tell (a process in another PID namespace). Opens the file for
 * reading: call it only when this process holds no SQLite lock on path
 * (closing any descriptor of a file drops the process's POSIX locks on it). */
void bx_guard_lock_holder(const char *path, char *out, size_t outlen);

/* Whether something already serves endpoint: for ipc:// a connection to the
 * socket file (ZeroMQ would unlink it and bind a new one, stealing it from
 * its owner), for tcp:// to the address. Returns 0 when free, -1 with who
 * holds it in err. Other transports: 0. */
int bx_guard_endpoint(const char *endpoint, char *err, size_t errlen);

/* Free bytes for this process on the filesystem of path's directory, or -1. */
int64_t bx_guard_free_space(const char *path);

/* The database's files, watched through O_PATH descriptors: those pin the
 * inodes, so a deleted file shows st_nlink == 0, and closing them drops no
 * POSIX lock (SQLite's locks live on the same files). */
typedef struct {
    char *path[2];            /* the database and its -wal; NULL: not watched */
    int fd[2];                /* O_PATH descriptors, -1 until the file exists */
} bx_dbfiles_t;

/* Starts watching the database at path (nothing for ":memory:"). */
void bx_dbfiles_init(bx_dbfiles_t *f, const char *path);
void bx_dbfiles_close(bx_dbfiles_t *f);

/* Cheap, for every commit: a watched file unlinked? Returns BX_FAULT_DELETED
 * with the file named in why, or BX_FAULT_NONE. */
bx_fault_t bx_dbfiles_deleted(bx_dbfiles_t *f, char *why, size_t whylen);

/* Each second: deleted, or no longer writable (access W_OK: EROFS for a
 * read-only remount, EPERM for an immutable file, EACCES for permissions),
 * or the name now leads to another file. */
bx_fault_t bx_dbfiles_check(bx_dbfiles_t *f, char *why, size_t whylen);

#endif
