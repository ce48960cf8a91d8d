/* config.h - options from a config file and from the command line.
 *
 * One file can configure a whole deployment: both programs read the same
 * "key = value" file; each program declares the keys it uses and lists the
 * keys that belong to the other program as foreign (accepted, ignored), so a
 * typo is still an error. '#' starts a comment; blank lines are ignored;
 * values may be wrapped in double quotes. Every key is also a flag:
 * "--key=value" or "--key value"; a bool flag alone means "true".
 * Flags override the file whatever their order on the command line.
 */
#ifndef BX_CONFIG_H
#define BX_CONFIG_H

#include <stdint.h>
#include <stdio.h>

typedef enum {
    BX_OPT_INT,    /* ptr: int64_t *, checked against [min, max] */
    BX_OPT_SIZE,   /* ptr: int64_t *, accepts k/M/G suffixes, [min, max] */
    BX_OPT_MS,     /* ptr: int64_t *, milliseconds; accepts "500ms", "20s", "2m" */
    BX_OPT_STR,    /* ptr: char **, owned by the table (bx_config_free) */
    BX_OPT_BOOL    /* ptr: int *, accepts on/off, yes/no, true/false, 1/0 */
} bx_opt_type_t;

typedef struct {
    const char *name;    /* key, e.g. "timeout"; NULL ends the table */
    bx_opt_type_t type;
    void *ptr;           /* where the value goes */
    int64_t min, max;    /* INT, SIZE and MS only */
    const char *help;    /* one line for --help */
} bx_option_t;

/* Sets key to value. Returns 0, or -1 with a message in err ("unknown option
 * 'x'", "timeout: not a number"...). Keys in foreign (NULL-terminated list,
 * may be NULL) are accepted and ignored. */
int bx_config_set(const bx_option_t *opts, const char *const *foreign,
                  const char *key, const char *value, char *err, size_t errlen);

/* Reads a file. Returns 0, or -1 with "path:line: message" in err. */
int bx_config_load_file(const bx_option_t *opts, const char *const *foreign,
                        const char *path, char *err, size_t errlen);

/* Handles argv: "--config FILE" (or "-c FILE") is loaded first, then every
 * other "--key[=value]" overrides it. "--help"/"-h" and "--version" are not
 * handled here: the caller looks for them first. Returns 0, or -1 with a
 * message in err. Positional arguments are an error. */
int bx_config_parse_args(const bx_option_t *opts, const char *const *foreign,
                         int argc, char **argv, char *err, size_t errlen);

/* Prints "  --name=VALUE  help (default: current value)" for each option. */
void bx_config_print_help(FILE *out, const bx_option_t *opts);

/* Removes every bare occurrence of flag (e.g. "--check-config") from argv,
 * shifting the rest down and keeping argv[*argc] == NULL. For flags that are
 * not options of a table. Returns 1 if flag was present, else 0. */
int bx_config_take_flag(int *argc, char **argv, const char *flag);

/* Frees the strings held by BX_OPT_STR options (sets them to NULL). */
void bx_config_free(const bx_option_t *opts);

#endif
