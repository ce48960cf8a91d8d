/* guard.c - see guard.h. */
#include "guard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <unistd.h>

#include "util.h"

/* SQLite's lock bytes in a database file (os_unix.c): PENDING_BYTE at 1 GiB,
 * then RESERVED_BYTE, then the 510 SHARED bytes. A writer, and a connection in
 * exclusive locking mode, holds write locks there. */
#define S_LOCK_FIRST 0x40000000L
#define S_LOCK_LEN 512

int bx_fault_exit_status(bx_fault_t f)
{
    switch (f) {
    case BX_FAULT_NONE: return BX_EXIT_OK;
    case BX_FAULT_IN_USE: return BX_EXIT_IN_USE;
    case BX_FAULT_FULL: return BX_EXIT_DISK_FULL;
    case BX_FAULT_UNWRITABLE:
    case BX_FAULT_DELETED:
    case BX_FAULT_IO: return BX_EXIT_DB_LOST;
    case BX_FAULT_OTHER: break;
    }
    return BX_EXIT_FAIL;
}

const char *bx_fault_advice(bx_fault_t f)
{
    switch (f) {
    case BX_FAULT_NONE: return "";
    case BX_FAULT_IN_USE:
        return "one bayeuxd per database: stop the other one, or give this one its own "
               "database";
    case BX_FAULT_FULL:
        return "free space on the database's filesystem (df), then start bayeuxd again: it "
               "reloads everything that was committed";
    case BX_FAULT_UNWRITABLE:
        return "make the database and its directory writable again (mount for a read-only "
               "filesystem, lsattr/chattr -i for an immutable file, ls -l for owners), then "
               "start bayeuxd again";
    case BX_FAULT_DELETED:
        return "what was committed since it was opened went with it: restore the database "
               "from a backup, or start bayeuxd again with an empty one (clients handshake "
               "again)";
    case BX_FAULT_IO:
        return "check the disk (dmesg) and the database (bayeuxd --check-db), then start "
               "bayeuxd again";
    case BX_FAULT_OTHER: break;
    }
    return "start bayeuxd again: it reloads what was committed";
}

bx_fault_t bx_fault_from_errno(int err)
{
    switch (err) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        return BX_FAULT_FULL;
    case EROFS:
    case EPERM:
    case EACCES:
        return BX_FAULT_UNWRITABLE;
    case ENOENT:
    case ESTALE:
        return BX_FAULT_DELETED;
    default:
        return BX_FAULT_IO;
    }
}

/* "pid N, comm" from /proc, or "pid N". */
static void s_describe_pid(long pid, char *out, size_t outlen)
{
    char path[64], comm[64] = "";
    snprintf(path, sizeof path, "/proc/%ld/comm", pid);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fgets(comm, sizeof comm, f))
            comm[strcspn(comm, "\n")] = '\0';
        fclose(f);
    }
    if (*comm)
        snprintf(out, outlen, "pid %ld, %s", pid, comm);
    else
        snprintf(out, outlen, "pid %ld", pid);
}

void bx_guard_lock_holder(const char *path, char *out, size_t outlen)
{
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
                        .l_start = S_LOCK_FIRST, .l_len = S_LOCK_LEN };
    out[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    /* F_GETLK reports one conflicting lock with its owner's pid (0 when the
     * owner is in another PID namespace). */
    if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK && fl.l_pid > 0)
        s_describe_pid((long)fl.l_pid, out, outlen);
    close(fd);
}

/* ipc://PATH or ipc://@NAME (abstract): 1 when a listener accepts. */
static int s_ipc_served(const char *name, char *who, size_t wholen)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t len = strlen(name);
    struct stat sb;
    int served = 0;

    who[0] = '\0';
    if (len == 0 || len >= sizeof sa.sun_path)
        return 0;
    if (name[0] != '@' && (stat(name, &sb) != 0 || !S_ISSOCK(sb.st_mode)))
        return 0;
    memcpy(sa.sun_path, name, len);
    if (name[0] == '@')
        sa.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    if (connect(fd, (struct sockaddr *)&sa, salen) == 0) {
        /* ECONNREFUSED instead: a file left by a process that died. */
        struct ucred cred;
        socklen_t clen = sizeof cred;
        served = 1;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0 && cred.pid > 0)
            s_describe_pid((long)cred.pid, who, wholen);
    }
    close(fd);
    return served;
}

/* tcp://HOST:PORT with a numeric HOST or "*": 1 when something accepts. */
static int s_tcp_served(const char *addr)
{
    const char *colon = strrchr(addr, ':');
    char host[128];
    int served = 0;

    if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof host)
        return 0;
    const char *port = colon + 1;
    if (!*port || strspn(port, "0123456789") != strlen(port))
        return 0;   /* "*" or "!": an ephemeral port, nobody holds it */
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    if (strcmp(host, "*") == 0 || strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    if (host[0] == '[') {
        size_t hl = strlen(host);
        if (hl < 3 || host[hl - 1] != ']')
            return 0;
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    /* An interface name (tcp://eth0:5555) is not resolved: no probe. */
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return 0;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        served = connect(fd, res->ai_addr, res->ai_addrlen) == 0;
        close(fd);
    }
    freeaddrinfo(res);
    return served;
}

int bx_guard_endpoint(const char *endpoint, char *err, size_t errlen)
{
    char who[128] = "";
    if (!endpoint)
        return 0;
    if (strncmp(endpoint, "ipc://", 6) == 0 && s_ipc_served(endpoint + 6, who, sizeof who)) {
        bx_errf(err, errlen, "%s is served by another process (%s): one bayeuxd per "
                "endpoint; stop that one, or give this one other endpoints", endpoint,
                *who ? who : "pid unknown");
        return -1;
    }
    if (strncmp(endpoint, "tcp://", 6) == 0 && s_tcp_served(endpoint + 6)) {
        bx_errf(err, errlen, "%s is served by another process (ss -ltnp shows which): one "
                "bayeuxd per endpoint; stop that one, or give this one another port",
                endpoint);
        return -1;
    }
    return 0;
}

int64_t bx_guard_free_space(const char *path)
{
    char dir[4096];
    struct statvfs sv;
    const char *slash = strrchr(path, '/');

    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (statvfs(dir, &sv) != 0)
        return -1;
    /* f_bavail: what an unprivileged process may still use; root may use the
     * reserved blocks too. */
    uint64_t blocks = geteuid() == 0 ? sv.f_bfree : sv.f_bavail;
    return (int64_t)(blocks * sv.f_frsize);
}

/* ------------------------------------------------------------ the files */

void bx_dbfiles_init(bx_dbfiles_t *f, const char *path)
{
    f->path[0] = f->path[1] = NULL;
    f->fd[0] = f->fd[1] = -1;
    if (!path || !*path || strcmp(path, ":memory:") == 0)
        return;
    size_t len = strlen(path);
    f->path[0] = bx_strdup(path);
    f->path[1] = bx_malloc(len + 5);
    memcpy(f->path[1], path, len);
    memcpy(f->path[1] + len, "-wal", 5);
}

void bx_dbfiles_close(bx_dbfiles_t *f)
{
    for (int i = 0; i < 2; i++) {
        if (f->fd[i] >= 0)
            close(f->fd[i]);
        f->fd[i] = -1;
        free(f->path[i]);
        f->path[i] = NULL;
    }
}

bx_fault_t bx_dbfiles_deleted(bx_dbfiles_t *f, char *why, size_t whylen)
{
    for (int i = 0; i < 2; i++) {
        struct stat sb;
        if (!f->path[i])
            continue;
        /* The -wal appears at the first write; SQLite keeps it until it
         * closes the database (exclusive locking mode). */
        if (f->fd[i] < 0 && (f->fd[i] = open(f->path[i], O_PATH | O_CLOEXEC)) < 0)
            continue;
        if (fstat(f->fd[i], &sb) == 0 && sb.st_nlink == 0) {
            bx_errf(why, whylen, "%s was deleted while open", f->path[i]);
            return BX_FAULT_DELETED;
        }
    }
    return BX_FAULT_NONE;
}

bx_fault_t bx_dbfiles_check(bx_dbfiles_t *f, char *why, size_t whylen)
{
    bx_fault_t fault = bx_dbfiles_deleted(f, why, whylen);
    if (fault != BX_FAULT_NONE)
        return fault;
    for (int i = 0; i < 2; i++) {
        struct stat byname, byfd;
        if (f->fd[i] < 0)
            continue;
        if (stat(f->path[i], &byname) != 0 || fstat(f->fd[i], &byfd) != 0) {
            int e = errno;
            bx_errf(why, whylen, "%s: %s", f->path[i], strerror(e));
            return bx_fault_from_errno(e);
        }
        if (byname.st_dev != byfd.st_dev || byname.st_ino != byfd.st_ino) {
            bx_errf(why, whylen, "%s was replaced by another file while open", f->path[i]);
            return BX_FAULT_DELETED;
        }
        if (access(f->path[i], W_OK) != 0) {
            int e = errno;
            bx_errf(why, whylen, "%s can no longer be written: %s", f->path[i], strerror(e));
            return bx_fault_from_errno(e);
        }
    }
    return BX_FAULT_NONE;
}
