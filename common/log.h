/* log.h - levelled logging with a tag per module.
 *
 * The level is tested before anything is formatted. Output goes to stderr by
 * default (the web server, systemd or the terminal keeps it), to a file that
 * SIGHUP can reopen, or to syslog.
 */
#ifndef BX_LOG_H
#define BX_LOG_H

typedef enum {
    BX_LOG_ERROR = 0,
    BX_LOG_WARN = 1,
    BX_LOG_INFO = 2,
    BX_LOG_DEBUG = 3
} bx_log_level_t;

extern int bx_log_level;

/* ident: program name shown in each line. path: NULL or "" or "-" for stderr,
 * "syslog" for syslog, otherwise a file opened for append.
 * Returns 0 or -1 (the file could not be opened; stderr stays in use). */
int bx_log_open(const char *ident, const char *path);

/* Reopens the log file (after rotation, on SIGHUP). No-op for stderr and
 * syslog. Returns 0 or -1. */
int bx_log_reopen(void);

/* Parses "error", "warn", "info", "debug". Returns the level or -1. */
int bx_log_parse_level(const char *s);

void bx_log_write(int level, const char *tag, const char *file, int line,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define bx_log(level, tag, ...)                                              \
    do {                                                                     \
        if ((level) <= bx_log_level)                                         \
            bx_log_write((level), (tag), __FILE__, __LINE__, __VA_ARGS__);   \
    } while (0)

#define bx_error(tag, ...) bx_log(BX_LOG_ERROR, tag, __VA_ARGS__)
#define bx_warn(tag, ...) bx_log(BX_LOG_WARN, tag, __VA_ARGS__)
#define bx_info(tag, ...) bx_log(BX_LOG_INFO, tag, __VA_ARGS__)
#define bx_debug(tag, ...) bx_log(BX_LOG_DEBUG, tag, __VA_ARGS__)

#endif
