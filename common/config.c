/* config.c - options from a "key = value" file and from the command line. */
#include "config.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Strings this file allocated for BX_OPT_STR options. A STR variable may
 * start out pointing at a static default, which must never be freed, so
 * only pointers listed here are ours to free. */
static char **s_owned;
static size_t s_nowned, s_capowned;

static int s_owned_find(const char *p)
{
    for (size_t i = 0; i < s_nowned; i++)
        if (s_owned[i] == p)
            return (int)i;
    return -1;
}

static void s_owned_add(char *p)
{
    if (s_nowned == s_capowned) {
        s_capowned = s_capowned ? s_capowned * 2 : 8;
        s_owned = bx_realloc(s_owned, s_capowned * sizeof *s_owned);
    }
    s_owned[s_nowned++] = p;
}

/* Frees p if this file allocated it; static defaults are left alone. */
static void s_owned_release(char *p)
{
    int i = p ? s_owned_find(p) : -1;
    if (i < 0)
        return;
    free(p);
    s_owned[i] = s_owned[--s_nowned];
    if (s_nowned == 0) {
        free(s_owned);
        s_owned = NULL;
        s_capowned = 0;
    }
}


static const bx_option_t *s_find(const bx_option_t *opts, const char *key)
{
    for (const bx_option_t *o = opts; o && o->name; o++)
        if (strcmp(o->name, key) == 0)
            return o;
    return NULL;
}

static int s_is_foreign(const char *const *foreign, const char *key)
{
    for (const char *const *f = foreign; f && *f; f++)
        if (strcmp(*f, key) == 0)
            return 1;
    return 0;
}

/* 1 / 0 for a boolean word, -1 otherwise. */
static int s_parse_bool(const char *v)
{
    static const char *const yes[] = { "on", "yes", "true", "1" };
    static const char *const no[] = { "off", "no", "false", "0" };
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return 1;
        if (strcasecmp(v, no[i]) == 0)
            return 0;
    }
    return -1;
}

/* "500" and "500ms" are milliseconds, "20s" seconds, "2m" minutes. */
static int s_parse_ms(const char *v, int64_t *out)
{
    size_t len = strlen(v);
    int64_t mul = 1;
    if (len > 2 && strcmp(v + len - 2, "ms") == 0) {
        len -= 2;
    } else if (len > 1 && v[len - 1] == 's') {
        mul = 1000;
        len--;
    } else if (len > 1 && v[len - 1] == 'm') {
        mul = 60000;
        len--;
    }
    if (len == 0 || len > 30)
        return -1;
    char num[32];
    memcpy(num, v, len);
    num[len] = '\0';
    int64_t n;
    if (bx_parse_int64(num, INT64_MIN / 60000, INT64_MAX / 60000, &n) < 0)
        return -1;
    *out = n * mul;
    return 0;
}

/* Copies value into buf without surrounding whitespace and without one pair
 * of surrounding double quotes. Returns 0, or -1 if it does not fit. */
static int s_clean_value(const char *value, char *buf, size_t buflen)
{
    while (isspace((unsigned char)*value))
        value++;
    size_t len = strlen(value);
    while (len > 0 && isspace((unsigned char)value[len - 1]))
        len--;
    if (len >= 2 && value[0] == '"' && value[len - 1] == '"') {
        value++;
        len -= 2;
    }
    if (len >= buflen)
        return -1;
    memcpy(buf, value, len);
    buf[len] = '\0';
    return 0;
}

int bx_config_set(const bx_option_t *opts, const char *const *foreign,
                  const char *key, const char *value, char *err, size_t errlen)
{
    const bx_option_t *o = s_find(opts, key);
    char v[4096];
    int64_t n;

    if (!o) {
        if (s_is_foreign(foreign, key))
            return 0;   /* the other program's key: accepted, ignored */
        bx_errf(err, errlen, "unknown option '%s'", key);
        return -1;
    }
    if (!value) {
        bx_errf(err, errlen, "%s: missing value", key);
        return -1;
    }
    if (s_clean_value(value, v, sizeof v) < 0) {
        bx_errf(err, errlen, "%s: value too long", key);
        return -1;
    }

    switch (o->type) {
    case BX_OPT_INT:
    case BX_OPT_SIZE:
    case BX_OPT_MS: {
        int rc;
        const char *what;
        if (o->type == BX_OPT_INT) {
            rc = bx_parse_int64(v, INT64_MIN, INT64_MAX, &n);
            what = "not an integer";
        } else if (o->type == BX_OPT_SIZE) {
            rc = bx_parse_size(v, INT64_MAX, &n);
            what = "not a size (such as 65536, 64k, 1M)";
        } else {
            rc = s_parse_ms(v, &n);
            what = "not a duration (such as 500ms, 20s, 2m)";
        }
        if (rc < 0) {
            bx_errf(err, errlen, "%s: '%s' is %s", key, v, what);
            return -1;
        }
        if (n < o->min || n > o->max) {
            bx_errf(err, errlen, "%s: %" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]",
                  key, n, o->min, o->max);
            return -1;
        }
        *(int64_t *)o->ptr = n;
        return 0;
    }
    case BX_OPT_STR: {
        char **slot = o->ptr;
        char *copy = bx_strdup(v);
        s_owned_release(*slot);
        *slot = copy;
        s_owned_add(copy);
        return 0;
    }
    case BX_OPT_BOOL: {
        int b = s_parse_bool(v);
        if (b < 0) {
            bx_errf(err, errlen, "%s: '%s' is not a boolean (on/off, yes/no, true/false, 1/0)",
                  key, v);
            return -1;
        }
        *(int *)o->ptr = b;
        return 0;
    }
    }
    bx_errf(err, errlen, "%s: bad option type", key);
    return -1;
}

/* Cuts a comment: '#' outside double quotes starts one. */
static void s_strip_comment(char *line)
{
    int quoted = 0;
    for (char *p = line; *p; p++) {
        if (*p == '"')
            quoted = !quoted;
        else if (*p == '#' && !quoted) {
            *p = '\0';
            return;
        }
    }
}

int bx_config_load_file(const bx_option_t *opts, const char *const *foreign,
                        const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0;
    char msg[512];

    if (!f) {
        bx_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        s_strip_comment(line);
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            continue;
        char *eq = strchr(p, '=');
        if (!eq) {
            bx_errf(err, errlen, "%s:%d: expected 'key = value'", path, lineno);
            goto error;
        }
        char *kend = eq;
        while (kend > p && isspace((unsigned char)kend[-1]))
            kend--;
        *kend = '\0';
        if (*p == '\0') {
            bx_errf(err, errlen, "%s:%d: missing key before '='", path, lineno);
            goto error;
        }
        if (bx_config_set(opts, foreign, p, eq + 1, msg, sizeof msg) < 0) {
            bx_errf(err, errlen, "%s:%d: %s", path, lineno, msg);
            goto error;
        }
    }
    if (ferror(f)) {
        bx_errf(err, errlen, "%s: read error: %s", path, strerror(errno));
        goto error;
    }
    free(line);
    fclose(f);
    return 0;

error:
    free(line);
    fclose(f);
    return -1;
}

/* Is argv[i] the config flag? Sets *file (NULL if the value is missing) and
 * *used (how many argv entries it takes). */
static int s_config_flag(int argc, char **argv, int i, const char **file, int *used)
{
    const char *a = argv[i];
    if (strncmp(a, "--config=", 9) == 0) {
        *file = a + 9;
        *used = 1;
        return 1;
    }
    if (strcmp(a, "--config") == 0 || strcmp(a, "-c") == 0) {
        *file = i + 1 < argc ? argv[i + 1] : NULL;
        *used = 2;
        return 1;
    }
    return 0;
}

int bx_config_parse_args(const bx_option_t *opts, const char *const *foreign,
                         int argc, char **argv, char *err, size_t errlen)
{
    char msg[512];
    const char *file;
    int used;

    /* The file first, so that flags override it wherever they appear. */
    for (int i = 1; i < argc; i++) {
        if (s_config_flag(argc, argv, i, &file, &used)) {
            if (!file || !*file) {
                bx_errf(err, errlen, "%s: missing file name", argv[i]);
                return -1;
            }
            if (bx_config_load_file(opts, foreign, file, err, errlen) < 0)
                return -1;
            i += used - 1;
        }
    }

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (s_config_flag(argc, argv, i, &file, &used)) {
            i += used - 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            bx_errf(err, errlen, "unexpected argument '%s'", a);
            return -1;
        }
        char key[128];
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t klen = eq ? (size_t)(eq - name) : strlen(name);
        if (klen == 0 || klen >= sizeof key) {
            bx_errf(err, errlen, "bad option '%s'", a);
            return -1;
        }
        memcpy(key, name, klen);
        key[klen] = '\0';

        const char *value = eq ? eq + 1 : NULL;
        if (!value) {
            const bx_option_t *o = s_find(opts, key);
            const char *next = i + 1 < argc ? argv[i + 1] : NULL;
            if (o && o->type == BX_OPT_BOOL) {
                /* "--flag" alone means true; "--flag no" is accepted too. */
                if (next && s_parse_bool(next) >= 0) {
                    value = next;
                    i++;
                } else {
                    value = "true";
                }
            } else if (o || s_is_foreign(foreign, key)) {
                if (!next || (o == NULL && strncmp(next, "--", 2) == 0)) {
                    if (o) {
                        bx_errf(err, errlen, "--%s: missing value", key);
                        return -1;
                    }
                } else {
                    value = next;
                    i++;
                }
            }
        }
        if (bx_config_set(opts, foreign, key, value, msg, sizeof msg) < 0) {
            bx_errf(err, errlen, "--%s", msg);
            return -1;
        }
    }
    return 0;
}

void bx_config_print_help(FILE *out, const bx_option_t *opts)
{
    for (const bx_option_t *o = opts; o && o->name; o++) {
        char def[256];
        switch (o->type) {
        case BX_OPT_INT:
        case BX_OPT_SIZE:
            snprintf(def, sizeof def, "%" PRId64, *(int64_t *)o->ptr);
            break;
        case BX_OPT_MS:
            snprintf(def, sizeof def, "%" PRId64 "ms", *(int64_t *)o->ptr);
            break;
        case BX_OPT_STR: {
            const char *s = *(char **)o->ptr;
            snprintf(def, sizeof def, "\"%s\"", s ? s : "");
            break;
        }
        case BX_OPT_BOOL:
            snprintf(def, sizeof def, "%s", *(int *)o->ptr ? "true" : "false");
            break;
        default:
            def[0] = '\0';
        }
        fprintf(out, "  --%s=VALUE  %s (default: %s)\n", o->name,
                o->help ? o->help : "", def);
    }
}

void bx_config_free(const bx_option_t *opts)
{
    for (const bx_option_t *o = opts; o && o->name; o++) {
        if (o->type != BX_OPT_STR)
            continue;
        char **slot = o->ptr;
        s_owned_release(*slot);
        *slot = NULL;
    }
}

int bx_config_take_flag(int *argc, char **argv, const char *flag)
{
    int found = 0, out = 1;
    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], flag) == 0)
            found = 1;
        else
            argv[out++] = argv[i];
    }
    argv[out] = NULL;
    *argc = out;
    return found;
}
