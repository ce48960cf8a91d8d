/* fuzz_channel.c - bx_channel_parse, bx_channel_match, bx_channel_expand.
 *
 * Input: "A\nB", two candidate channels. If the first byte is a control
 * character other than '\n', it is a mode byte and not part of A: B is then
 * derived from A so that it matches often (bits 0-1: 0 B as given, 1 A cut
 * after its k-th '/' plus "*", 2 the same plus "**", 3 A cut plus B; bits
 * 2-4: k).
 *
 * Checked against a reference written segment by segment from channel.h:
 * the classification of A and B; is_meta / is_service; for a plain name N,
 * expand(N) yields exactly N, the parent's one-segment wildcard, then every
 * ancestor's deep wildcard (each once, each valid or only too long, each
 * matching N), and stops when told to;
 * for every valid pattern P and name N, match(P, N) is true iff P is among
 * expand(N), iff the reference matcher says so.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "fuzz.h"

#define MAX_EXP 1100   /* a 1024-byte name has at most 512 segments */

/* ---- reference ---- */

static int s_ref_segchar(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '!' || c == '~' || c == '(' || c == ')' ||
           c == '$' || c == '@' || c == '.';
}

static bx_chan_kind_t s_ref_parse(const uint8_t *s, size_t n)
{
    if (n < 2 || n > BX_CHANNEL_MAX || s[0] != '/')
        return BX_CHAN_INVALID;
    size_t i = 1;
    for (;;) {
        size_t start = i;
        while (i < n && s[i] != '/')
            i++;
        size_t len = i - start;
        int last = i == n;
        if (len == 0)
            return BX_CHAN_INVALID;
        if (len == 1 && s[start] == '*')
            return last ? BX_CHAN_WILD : BX_CHAN_INVALID;
        if (len == 2 && s[start] == '*' && s[start + 1] == '*')
            return last ? BX_CHAN_DEEPWILD : BX_CHAN_INVALID;
        for (size_t k = start; k < i; k++)
            if (!s_ref_segchar(s[k]))
                return BX_CHAN_INVALID;
        if (last)
            return BX_CHAN_NAME;
        i++;   /* past the '/' */
    }
}

static int s_ref_under(const char *s, const char *prefix)
{
    size_t n = strlen(prefix);
    return strlen(s) > n && memcmp(s, prefix, n) == 0;
}

/* Splits a valid channel into segments (pointers into s, lengths). */
static size_t s_segments(const char *s, const char **seg, size_t *len, size_t max)
{
    size_t n = 0;
    const char *p = s + 1;
    while (n < max) {
        const char *slash = strchr(p, '/');
        seg[n] = p;
        len[n] = slash ? (size_t)(slash - p) : strlen(p);
        n++;
        if (!slash)
            break;
        p = slash + 1;
    }
    return n;
}

static int s_ref_match(const char *pattern, const char *name)
{
    static const char *ps[MAX_EXP], *ns[MAX_EXP];
    static size_t pl[MAX_EXP], nl[MAX_EXP];
    size_t np = s_segments(pattern, ps, pl, MAX_EXP);
    size_t nn = s_segments(name, ns, nl, MAX_EXP);
    const char *last = ps[np - 1];
    int wild = pl[np - 1] == 1 && last[0] == '*';
    int deep = pl[np - 1] == 2 && last[0] == '*' && last[1] == '*';
    size_t fixed = wild || deep ? np - 1 : np;

    if (wild && nn != np)
        return 0;
    if (deep && nn < np)
        return 0;
    if (!wild && !deep && nn != np)
        return 0;
    for (size_t i = 0; i < fixed; i++)
        if (pl[i] != nl[i] || memcmp(ps[i], ns[i], pl[i]) != 0)
            return 0;
    return 1;
}

/* ---- expansion ---- */

typedef struct {
    char *pat[MAX_EXP];   /* owned copies */
    size_t n;
    size_t stop_at;       /* return 7 from this call (1-based), 0 = never */
} s_exp_t;

static int s_collect(const char *pattern, size_t len, void *ud)
{
    s_exp_t *x = ud;
    CHECK(strlen(pattern) == len);
    CHECK(x->n < MAX_EXP);
    x->pat[x->n] = malloc(len + 1);
    if (!x->pat[x->n])
        abort();
    memcpy(x->pat[x->n], pattern, len + 1);
    x->n++;
    return x->n == x->stop_at ? 7 : 0;
}

static void s_exp_free(s_exp_t *x)
{
    for (size_t i = 0; i < x->n; i++)
        free(x->pat[i]);
    x->n = 0;
}

/* The expansion channel.h describes, built independently. */
static void s_check_expansion(const char *name, const s_exp_t *x)
{
    size_t len = strlen(name);
    char buf[BX_CHANNEL_MAX + 8];
    size_t k = 0;

    CHECK(x->n >= 3 && strcmp(x->pat[k++], name) == 0);
    size_t cut = len;
    while (name[cut - 1] != '/')
        cut--;
    snprintf(buf, sizeof buf, "%.*s*", (int)cut, name);
    CHECK(strcmp(x->pat[k++], buf) == 0);
    for (size_t i = len; i-- > 0;) {
        if (name[i] != '/')
            continue;
        snprintf(buf, sizeof buf, "%.*s**", (int)(i + 1), name);
        CHECK(k < x->n && strcmp(x->pat[k++], buf) == 0);
    }
    CHECK(k == x->n);
    for (size_t i = 0; i < x->n; i++) {
        size_t plen = strlen(x->pat[i]);
        bx_chan_kind_t kind = bx_channel_parse(x->pat[i], plen);
        /* An ancestor pattern of a name of maximal length can be a byte
         * too long to subscribe to; it then simply matches no channel. */
        CHECK(kind != BX_CHAN_INVALID || plen > BX_CHANNEL_MAX);
        CHECK(i == 0 ? kind == BX_CHAN_NAME : kind != BX_CHAN_NAME);
        CHECK(bx_channel_match(x->pat[i], name));
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(x->pat[i], x->pat[j]) != 0);
    }
}

static int s_in(const s_exp_t *x, const char *p)
{
    for (size_t i = 0; i < x->n; i++)
        if (strcmp(x->pat[i], p) == 0)
            return 1;
    return 0;
}

/* Both directions of the property for one (pattern, name) pair. */
static void s_check_pair(const char *pattern, const char *name)
{
    s_exp_t x = { .n = 0, .stop_at = 0 };
    CHECK(bx_channel_expand(name, s_collect, &x) == 0);
    s_check_expansion(name, &x);
    int m = bx_channel_match(pattern, name);
    CHECK(!!m == s_in(&x, pattern));
    CHECK(!!m == s_ref_match(pattern, name));
    s_exp_free(&x);
}

static void s_check_one(const char *s, size_t len, bx_chan_kind_t *kind)
{
    char *exact = malloc(len ? len : 1);   /* not NUL-terminated */
    if (!exact)
        abort();
    memcpy(exact, s, len);
    *kind = bx_channel_parse(exact, len);
    free(exact);
    CHECK(*kind == s_ref_parse((const uint8_t *)s, len));
    if (strlen(s) == len) {
        CHECK(!!bx_channel_is_meta(s) == s_ref_under(s, "/meta/"));
        CHECK(!!bx_channel_is_service(s) == s_ref_under(s, "/service/"));
    }
    if (*kind == BX_CHAN_NAME) {
        /* Early stop: fn's non-zero value comes back after exactly k calls. */
        s_exp_t x = { .n = 0, .stop_at = 1 + len % 3 };   /* 3 patterns at least */
        CHECK(bx_channel_expand(s, s_collect, &x) == 7);
        CHECK(x.n == x.stop_at);
        s_exp_free(&x);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int mode = -1;
    if (size > 0 && data[0] < 0x20 && data[0] != '\n') {
        mode = data[0];
        data++;
        size--;
    }
    const uint8_t *nl = memchr(data, '\n', size);
    size_t alen = nl ? (size_t)(nl - data) : size;
    size_t blen = nl ? size - alen - 1 : 0;
    char *a = malloc(alen + 1);
    char *b = malloc(blen + alen + 8);
    if (!a || !b)
        abort();
    memcpy(a, data, alen);
    a[alen] = '\0';
    if (nl)
        memcpy(b, nl + 1, blen);
    b[blen] = '\0';

    if (mode >= 0 && (mode & 3) != 0) {
        /* Cut A after its k-th '/', counting from the end. */
        size_t k = (size_t)(mode >> 2) & 7, cut = alen;
        while (cut > 0) {
            cut--;
            if (a[cut] == '/' && k-- == 0)
                break;
        }
        char *d = malloc(cut + 1 + blen + 3);
        if (!d)
            abort();
        memcpy(d, a, cut);
        d[cut] = '/';
        if ((mode & 3) == 3)
            memcpy(d + cut + 1, b, blen + 1);
        else
            strcpy(d + cut + 1, (mode & 3) == 1 ? "*" : "**");
        free(b);
        b = d;
        blen = strlen(d);
    }

    bx_chan_kind_t ka, kb;
    s_check_one(a, alen, &ka);
    s_check_one(b, blen, &kb);
    if (strlen(a) == alen && strlen(b) == blen) {
        if (ka == BX_CHAN_NAME && kb != BX_CHAN_INVALID)
            s_check_pair(b, a);
        if (kb == BX_CHAN_NAME && ka != BX_CHAN_INVALID)
            s_check_pair(a, b);
    }
    free(a);
    free(b);
    return 0;
}
