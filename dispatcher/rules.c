/* rules.c - see rules.h. */
#include "rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "util.h"

typedef enum { WHO_DEFAULT = 0, WHO_ANYONE, WHO_AUTHENTICATED, WHO_NOBODY, WHO_SUBJECT } s_who_t;

typedef struct {
    char **segs;            /* the pattern's segments, "{x}" for the template */
    int nsegs;
    int tmpl;               /* index of the template segment, -1 if none */
    int wild;               /* 0, 1 for a last "*", 2 for a last "**" */
    s_who_t who[BX_OP_COUNT];
} s_rule_t;

struct bx_rules {
    s_rule_t *rules;
    int n;
    int closed;
};

static const char *const s_ops[BX_OP_COUNT] = { "subscribe", "publish", "create" };
static const char *const s_whos[] = { "", "anyone", "authenticated", "nobody", "subject" };

static void s_rule_free(s_rule_t *r)
{
    for (int i = 0; i < r->nsegs; i++)
        free(r->segs[i]);
    free(r->segs);
}

void bx_rules_free(bx_rules_t **pr)
{
    if (!pr || !*pr)
        return;
    for (int i = 0; i < (*pr)->n; i++)
        s_rule_free(&(*pr)->rules[i]);
    free((*pr)->rules);
    free(*pr);
    *pr = NULL;
}

/* Splits a pattern into segments; the template segment becomes a plain one
 * for the grammar check. */
static int s_pattern(s_rule_t *r, const char *pat, char *err, size_t errlen)
{
    char *check = bx_strdup(pat);
    r->tmpl = -1;
    const char *p = pat;
    while (*p == '/') {
        const char *q = strchr(p + 1, '/');
        size_t len = q ? (size_t)(q - p - 1) : strlen(p + 1);
        char *seg = bx_strndup(p + 1, len);
        if (len > 2 && seg[0] == '{' && seg[len - 1] == '}') {
            if (r->tmpl >= 0) {
                bx_errf(err, errlen, "channel-rules: %s: one {template} segment at most", pat);
                free(seg);
                goto bad;
            }
            r->tmpl = r->nsegs;
            /* For the grammar: the template stands for one segment. */
            memset(check + (p + 1 - pat), 'x', len);
        }
        r->segs = bx_realloc(r->segs, (size_t)(r->nsegs + 1) * sizeof *r->segs);
        r->segs[r->nsegs++] = seg;
        p = q ? q : p + 1 + len;
    }
    bx_chan_kind_t kind = bx_channel_parse(check, strlen(check));
    if (*p || kind == BX_CHAN_INVALID) {
        bx_errf(err, errlen, "channel-rules: \"%s\" is not a channel name or pattern", pat);
        goto bad;
    }
    if (bx_channel_is_meta(check) || strcmp(check, "/meta") == 0) {
        bx_errf(err, errlen, "channel-rules: %s: meta channels have fixed rules", pat);
        goto bad;
    }
    r->wild = kind == BX_CHAN_WILD ? 1 : kind == BX_CHAN_DEEPWILD ? 2 : 0;
    free(check);
    return 0;
bad:
    free(check);
    return -1;
}

/* One "PATTERN op=WHO ..." item (trimmed, NUL-terminated, writable). */
static int s_item(bx_rules_t *rs, char *item, char *err, size_t errlen)
{
    s_rule_t r;
    memset(&r, 0, sizeof r);
    char *save = NULL;
    char *pat = strtok_r(item, " \t", &save);
    if (s_pattern(&r, pat, err, errlen) != 0) {
        s_rule_free(&r);
        return -1;
    }
    int nset = 0;
    for (char *w = strtok_r(NULL, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
        char *eq = strchr(w, '=');
        int op = -1, who = -1;
        if (eq) {
            *eq = '\0';
            for (int i = 0; i < BX_OP_COUNT; i++)
                if (strcmp(w, s_ops[i]) == 0)
                    op = i;
            for (int i = 1; i <= WHO_SUBJECT; i++)
                if (strcmp(eq + 1, s_whos[i]) == 0)
                    who = i;
        }
        if (op < 0 || who < 0) {
            bx_errf(err, errlen, "channel-rules: %s: \"%s%s%s\": expected subscribe=, publish= "
                    "or create= with anyone, authenticated, nobody or subject", pat, w,
                    eq ? "=" : "", eq ? eq + 1 : "");
            s_rule_free(&r);
            return -1;
        }
        if (who == WHO_SUBJECT && r.tmpl < 0) {
            bx_errf(err, errlen, "channel-rules: %s: %s=subject needs a {template} segment",
                    pat, s_ops[op]);
            s_rule_free(&r);
            return -1;
        }
        r.who[op] = (s_who_t)who;
        nset++;
    }
    if (nset == 0) {
        bx_errf(err, errlen, "channel-rules: %s: say who may subscribe, publish or create", pat);
        s_rule_free(&r);
        return -1;
    }
    rs->rules = bx_realloc(rs->rules, (size_t)(rs->n + 1) * sizeof *rs->rules);
    rs->rules[rs->n++] = r;
    return 0;
}

bx_rules_t *bx_rules_new(const char *spec, int closed, char *err, size_t errlen)
{
    bx_rules_t *rs = bx_calloc(1, sizeof *rs);
    rs->closed = closed;
    char *copy = bx_strdup(spec ? spec : "");
    char *save = NULL;
    for (char *item = strtok_r(copy, ";", &save); item; item = strtok_r(NULL, ";", &save)) {
        while (*item == ' ' || *item == '\t' || *item == '\n')
            item++;
        char *end = item + strlen(item);
        while (end > item && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n'))
            *--end = '\0';
        if (*item && s_item(rs, item, err, errlen) != 0) {
            free(copy);
            bx_rules_free(&rs);
            return NULL;
        }
    }
    free(copy);
    return rs;
}

/* Does r match channel? Sets *bound to the template segment's value (a
 * pointer into channel) and *blen. */
static int s_match(const s_rule_t *r, const char *channel, const char **bound, size_t *blen)
{
    const char *p = channel;
    int fixed = r->nsegs - (r->wild ? 1 : 0);
    *bound = NULL;
    *blen = 0;
    for (int i = 0; i < fixed; i++) {
        if (*p != '/')
            return 0;
        const char *q = strchr(p + 1, '/');
        size_t len = q ? (size_t)(q - p - 1) : strlen(p + 1);
        if (i == r->tmpl) {
            /* A wildcard subscription does not bind a subject. */
            if (len == 0 || (len <= 2 && strspn(p + 1, "*") >= len))
                return 0;
            *bound = p + 1;
            *blen = len;
        } else if (strlen(r->segs[i]) != len || memcmp(r->segs[i], p + 1, len) != 0) {
            return 0;
        }
        p += 1 + len;
    }
    if (r->wild == 0)
        return *p == '\0';
    if (*p != '/' || p[1] == '\0')
        return 0;
    /* "*": exactly one more segment; "**": one or more. */
    return r->wild == 2 || strchr(p + 1, '/') == NULL;
}

/* Could some channel be reached by the subscription pattern sub (its
 * segments, wild as s_rule_t) and match r? Depths must meet, and every
 * position both fix must agree (a template agrees with anything). */
static int s_overlap(char **segs, int n, int wild, const s_rule_t *r)
{
    int pmin = n, pmax = wild == 2 ? 1 << 20 : n;
    int rmin = r->nsegs, rmax = r->wild == 2 ? 1 << 20 : r->nsegs;
    if (pmax < rmin || rmax < pmin)
        return 0;
    int pf = n - (wild ? 1 : 0), rf = r->nsegs - (r->wild ? 1 : 0);
    for (int i = 0; i < pf && i < rf; i++)
        if (i != r->tmpl && strcmp(segs[i], r->segs[i]) != 0)
            return 0;
    return 1;
}

/* Does who let this session in? bound (blen bytes) is the value of the
 * rule's template segment in the channel, NULL if not fixed there. */
static int s_who_ok(const bx_rules_t *rs, s_who_t who, const char *subject, const char *bound,
                    size_t blen)
{
    int authenticated = subject && *subject;
    switch (who) {
    case WHO_ANYONE:
        return 1;
    case WHO_AUTHENTICATED:
        return authenticated;
    case WHO_NOBODY:
        return 0;
    case WHO_SUBJECT:
        return authenticated && bound && strlen(subject) == blen &&
               memcmp(subject, bound, blen) == 0;
    default:
        return rs ? !rs->closed : 1;
    }
}

/* A wildcard subscription reaches the channels of every rule it overlaps:
 * each of those must let this session in, for all of them. */
static int s_wild_allowed(const bx_rules_t *rs, const char *pattern, const char *subject)
{
    s_rule_t p;
    char err[8];
    memset(&p, 0, sizeof p);
    if (s_pattern(&p, pattern, err, sizeof err) != 0 || p.tmpl >= 0) {
        s_rule_free(&p);
        return 0;
    }
    int ok = 1;
    for (int i = 0; ok && p.wild && i < rs->n; i++) {
        const s_rule_t *r = &rs->rules[i];
        if (!s_overlap(p.segs, p.nsegs, p.wild, r))
            continue;
        /* subject: only if the pattern fixes the rule's template segment
         * (and it is the subject); a wildcard there cannot prove it. */
        const char *bound = r->tmpl >= 0 && r->tmpl < p.nsegs - (p.wild ? 1 : 0)
                                ? p.segs[r->tmpl] : NULL;
        ok = s_who_ok(rs, r->who[BX_OP_SUBSCRIBE], subject, bound, bound ? strlen(bound) : 0);
    }
    s_rule_free(&p);
    return ok;
}

int bx_rules_allow(const bx_rules_t *rs, bx_op_t op, const char *channel, const char *subject)
{
    if (rs && op == BX_OP_SUBSCRIBE && strchr(channel, '*') &&
        !s_wild_allowed(rs, channel, subject))
        return 0;
    s_who_t who = WHO_DEFAULT;
    const char *bound = NULL;
    size_t blen = 0;
    for (int i = 0; rs && i < rs->n; i++) {
        if (s_match(&rs->rules[i], channel, &bound, &blen)) {
            who = rs->rules[i].who[op];
            /* A rule that does not speak of creating lets whoever it lets
             * subscribe or publish bring the channel into being. */
            if (op == BX_OP_CREATE && who == WHO_DEFAULT)
                return 1;
            break;
        }
    }
    return s_who_ok(rs, who, subject, bound, blen);
}
