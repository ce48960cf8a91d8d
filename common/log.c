/* log.c - levelled logging to stderr, a reopenable file, or syslog.
 *
 * Line format (stderr and file):
 *   2026-11-22T04:11:08.123Z bayeuxd[1234] INFO tag: message
 * with " (file.c:42)" appended for errors and debug lines, where the source
 * location helps. Each line is written with one write(2) so lines from
 * several processes sharing a file do not interleave.
 */
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

int bx_log_level = BX_LOG_INFO;

static char s_ident[64] = "bayeux";   /* program name in every line */
static char *s_path;                  /* file path, owned; NULL otherwise */
static int s_fd = STDERR_FILENO;      /* where lines go unless s_syslog */
static int s_syslog;                  /* lines go to syslog(3) */

static const char *const s_names[] = { "ERROR", "WARN", "INFO", "DEBUG" };

static int s_open_file(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

int bx_log_open(const char *ident, const char *path)
{
    if (ident && *ident)
        snprintf(s_ident, sizeof s_ident, "%s", ident);

    if (s_fd != STDERR_FILENO && s_fd >= 0)
        close(s_fd);
    s_fd = STDERR_FILENO;
    free(s_path);
    s_path = NULL;
    if (s_syslog)
        closelog();
    s_syslog = 0;

    if (!path || !*path || strcmp(path, "-") == 0)
        return 0;
    if (strcmp(path, "syslog") == 0) {
        /* openlog keeps the pointer: s_ident is static storage. */
        openlog(s_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
        s_syslog = 1;
        return 0;
    }
    int fd = s_open_file(path);
    if (fd < 0)
        return -1;
    s_fd = fd;
    s_path = bx_strdup(path);
    return 0;
}

int bx_log_reopen(void)
{
    if (!s_path)
        return 0;
    int fd = s_open_file(s_path);
    if (fd < 0)
        return -1;
    /* dup2 swaps the file under the same descriptor atomically. */
    if (dup2(fd, s_fd) < 0) {
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

int bx_log_parse_level(const char *s)
{
    static const char *const names[] = { "error", "warn", "info", "debug" };
    if (!s)
        return -1;
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, names[i]) == 0)
            return i;
    if (strcasecmp(s, "warning") == 0)
        return BX_LOG_WARN;
    return -1;
}

static const char *s_basename(const char *file)
{
    const char *slash = file ? strrchr(file, '/') : NULL;
    return slash ? slash + 1 : (file ? file : "?");
}

void bx_log_write(int level, const char *tag, const char *file, int line,
                  const char *fmt, ...)
{
    int saved_errno = errno;   /* callers log errno after us */
    char msg[LOG_LINE_MAX];
    va_list ap;

    if (level < BX_LOG_ERROR)
        level = BX_LOG_ERROR;
    if (level > BX_LOG_DEBUG)
        level = BX_LOG_DEBUG;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    int with_loc = level == BX_LOG_ERROR || level == BX_LOG_DEBUG;
    char loc[128] = "";
    if (with_loc)
        snprintf(loc, sizeof loc, " (%s:%d)", s_basename(file), line);

    if (s_syslog) {
        static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
        syslog(prio[level], "%s: %s%s", tag ? tag : "-", msg, loc);
        errno = saved_errno;
        return;
    }

    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char out[LOG_LINE_MAX + 256];
    int n = snprintf(out, sizeof out,
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%ld] %s %s: %s%s\n",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L, s_ident,
                     (long)getpid(), s_names[level], tag ? tag : "-", msg, loc);
    if (n < 0) {
        errno = saved_errno;
        return;
    }
    size_t len = (size_t)n < sizeof out ? (size_t)n : sizeof out - 1;
    if ((size_t)n >= sizeof out)
        out[len - 1] = '\n';
    ssize_t w;
    do {
        w = write(s_fd, out, len);
    } while (w < 0 && errno == EINTR);
    errno = saved_errno;
}
