/* history.c - channels that keep their last messages, and replay.
 *
 * A channel matching a configured rule (history = "PATTERN COUNT [MAX-AGE]")
 * numbers its messages 1, 2, 3... (the number travels in the delivery's
 * ext.seq) and keeps the last COUNT of them, none older than MAX-AGE, in
 * memory and in the database. A subscribe with ext.replay asks for those
 * after a number: a client that was away, whose session expired, or whose
 * dispatcher restarted gets what it missed, once and in order
 * (docs/persistence.md).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "engine_int.h"
#include "log.h"

#define TAG "history"
#define HIST_COUNT_MAX 1000000

/* ---- the rules ---- */

static int s_age(const char *s, int64_t *ms)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v <= 0)
        return -1;
    int64_t unit;
    if (strcmp(end, "ms") == 0)
        unit = 1;
    else if (strcmp(end, "s") == 0 || *end == '\0')
        unit = 1000;
    else if (strcmp(end, "m") == 0)
        unit = 60000;
    else if (strcmp(end, "h") == 0)
        unit = 3600000;
    else if (strcmp(end, "d") == 0)
        unit = 86400000;
    else
        return -1;
    if (v > INT64_MAX / unit / 2)
        return -1;
    *ms = v * unit;
    return 0;
}

/* Parses one "PATTERN COUNT [MAX-AGE]" (NUL-terminated, trimmed). */
static int s_rule(char *item, bx_hrule_t *r, char *err, size_t errlen)
{
    char *words[4];
    int n = 0;
    for (char *w = strtok(item, " \t"); w; w = strtok(NULL, " \t")) {
        if (n == 3) {
            snprintf(err, errlen, "history: \"%s ...\": expected PATTERN COUNT [MAX-AGE]",
                     words[0]);
            return -1;
        }
        words[n++] = w;
    }
    if (n < 2) {
        snprintf(err, errlen, "history: \"%s\": expected PATTERN COUNT [MAX-AGE]",
                 n ? words[0] : "");
        return -1;
    }
    size_t len = strlen(words[0]);
    if (bx_channel_parse(words[0], len) == BX_CHAN_INVALID || bx_channel_is_meta(words[0]) ||
        strncmp(words[0], "/meta/", 6) == 0 || strcmp(words[0], "/meta") == 0) {
        snprintf(err, errlen, "history: \"%s\" is not a channel name or pattern outside /meta",
                 words[0]);
        return -1;
    }
    char *end;
    errno = 0;
    long long count = strtoll(words[1], &end, 10);
    if (errno || *end || count < 0 || count > HIST_COUNT_MAX) {
        snprintf(err, errlen, "history: %s: count \"%s\" is not a number from 0 to %d",
                 words[0], words[1], HIST_COUNT_MAX);
        return -1;
    }
    int64_t age = 0;
    if (n == 3 && s_age(words[2], &age) != 0) {
        snprintf(err, errlen, "history: %s: max age \"%s\" is not a duration such as 90s, "
                 "10m, 1h or 2d", words[0], words[2]);
        return -1;
    }
    if (count == 0 && age == 0) {
        snprintf(err, errlen, "history: %s: give a count, a max age, or both", words[0]);
        return -1;
    }
    if (r) {
        r->pattern = bx_strdup(words[0]);
        r->count = (uint32_t)count;
        r->max_age_ms = age;
    }
    return 0;
}

/* Parses spec into rules (NULL: only checks). Returns the count, or -1. */
static int s_parse(const char *spec, bx_hrule_t **rules, char *err, size_t errlen)
{
    char *copy = bx_strdup(spec ? spec : "");
    int n = 0, rc = 0;
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*item))
            item++;
        if (*item == '\0')
            continue;
        bx_hrule_t r;
        if (s_rule(item, rules ? &r : NULL, err, errlen) != 0) {
            rc = -1;
            break;
        }
        if (rules) {
            *rules = bx_realloc(*rules, (size_t)(n + 1) * sizeof **rules);
            (*rules)[n] = r;
        }
        n++;
    }
    free(copy);
    return rc ? -1 : n;
}

int bx_engine_history_check(const char *spec, char *err, size_t errlen)
{
    return s_parse(spec, NULL, err, errlen) < 0 ? -1 : 0;
}

int bx_history_init(bx_engine_t *e)
{
    char err[256];
    e->hist = bx_map_new();
    int n = s_parse(e->cfg.history, &e->hrules, err, sizeof err);
    if (n < 0) {
        bx_error(TAG, "%s", err);
        return -1;
    }
    e->nhrules = (size_t)n;
    return 0;
}

void bx_history_free(bx_engine_t *e)
{
    size_t pos;
    bx_hist_t *h;
    while ((pos = 0, h = bx_map_next(e->hist, &pos, NULL, NULL)) != NULL) {
        bx_map_del(e->hist, h->name, strlen(h->name));
        bx_queue_clear(&h->q);
        free(h->name);
        free(h);
    }
    bx_map_destroy(&e->hist);
    for (size_t i = 0; i < e->nhrules; i++)
        free(e->hrules[i].pattern);
    free(e->hrules);
    e->hrules = NULL;
    e->nhrules = 0;
}

/* ---- histories ---- */

static const bx_hrule_t *s_rule_for(const bx_engine_t *e, const char *name)
{
    for (size_t i = 0; i < e->nhrules; i++)
        if (bx_channel_match(e->hrules[i].pattern, name))
            return &e->hrules[i];
    return NULL;
}

bx_hist_t *bx_history_restore(bx_engine_t *e, const char *name, uint64_t seq)
{
    size_t len = strlen(name);
    bx_hist_t *h = bx_map_get(e->hist, name, len);
    if (h)
        return h;
    if (bx_channel_parse(name, len) != BX_CHAN_NAME)
        return NULL;
    /* A channel no rule names any more keeps its number (it never goes
     * back) but no messages: they are trimmed by the first sweep. */
    const bx_hrule_t *rule = s_rule_for(e, name);
    h = bx_calloc(1, sizeof *h);
    h->name = bx_strdup(name);
    h->rule = rule;
    h->seq = seq;
    bx_map_put(e->hist, h->name, len, h);
    return h;
}

bx_hist_t *bx_history_for(bx_engine_t *e, const char *name)
{
    bx_hist_t *h = bx_map_get(e->hist, name, strlen(name));
    if (h)
        return h->rule ? h : NULL;
    if (e->nhrules == 0 || !s_rule_for(e, name))
        return NULL;
    return bx_history_restore(e, name, 0);
}

/* Drops the oldest n messages of h. */
static void s_trim(bx_engine_t *e, bx_hist_t *h, uint32_t n)
{
    if (n == 0)
        return;
    uint64_t upto = bx_queue_ent(&h->q, n - 1)->tag;
    for (uint32_t i = 0; i < n; i++)
        bx_persist_unstore(e, bx_queue_at(&h->q, i));
    bx_queue_pop(&h->q, n);
    if (e->store)
        bx_store_history_trim(e->store, h->name, upto);
}

void bx_history_append(bx_engine_t *e, bx_hist_t *h, bx_msg_t *m, uint64_t seq, int store)
{
    bx_queue_push(&h->q, m, seq);
    if (m->stored++ == 0 && store && e->store)
        bx_store_msg_put(e->store, m->id, m->json, m->len, m->time);
    if (!store)
        return;   /* loading: the sweep after the load trims */
    if (e->store) {
        bx_store_history_add(e->store, h->name, seq, m->id, m->time);
        bx_store_channel_seq(e->store, h->name, h->seq);
    }
    if (h->rule && h->rule->count > 0 && h->q.count > h->rule->count)
        s_trim(e, h, h->q.count - h->rule->count);
}

void bx_history_sweep(bx_engine_t *e, int64_t wall)
{
    size_t pos = 0;
    bx_hist_t *h;
    while ((h = bx_map_next(e->hist, &pos, NULL, NULL)) != NULL) {
        if (h->q.count == 0)
            continue;
        uint32_t n = 0;
        if (!h->rule) {
            n = h->q.count;
        } else {
            if (h->rule->count > 0 && h->q.count > h->rule->count)
                n = h->q.count - h->rule->count;
            if (h->rule->max_age_ms > 0) {
                int64_t oldest = wall - h->rule->max_age_ms;
                while (n < h->q.count && bx_queue_at(&h->q, n)->time < oldest)
                    n++;
            }
        }
        s_trim(e, h, n);
    }
}

/* ---- replay ---- */

typedef struct {
    bx_msg_t *m;
} s_cand_t;

static int s_by_id(const void *a, const void *b)
{
    const bx_msg_t *x = ((const s_cand_t *)a)->m, *y = ((const s_cand_t *)b)->m;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* The number the client gave for channel name: ext.replay as a number
 * (every channel) or an object (per channel). -1: nothing asked. */
static int64_t s_from(json_object *replay, const char *name)
{
    json_object *v = replay;
    if (json_object_is_type(replay, json_type_object) &&
        !json_object_object_get_ex(replay, name, &v))
        return -1;
    if (!json_object_is_type(v, json_type_int))
        return -1;
    int64_t n = json_object_get_int64(v);
    return n < 0 ? -1 : n;
}

void bx_history_replay(bx_engine_t *e, bx_session_t *s, const char *const *names, size_t n,
                       json_object *replay, bx_buf_t *out)
{
    s_cand_t *cand = NULL;
    size_t ncand = 0, cap = 0, nch = 0;
    size_t pos = 0;
    bx_hist_t *h;
    while ((h = bx_map_next(e->hist, &pos, NULL, NULL)) != NULL) {
        if (!h->rule)
            continue;
        int matched = 0;
        for (size_t i = 0; i < n && !matched; i++)
            matched = bx_channel_match(names[i], h->name);
        if (!matched)
            continue;
        int64_t from = s_from(replay, h->name);
        if (from < 0)
            continue;
        /* What the client asked for that is no longer kept. */
        uint64_t first = h->q.count ? bx_queue_ent(&h->q, 0)->tag : h->seq + 1;
        uint64_t missed = (uint64_t)from + 1 < first ? first - (uint64_t)from - 1 : 0;
        if ((uint64_t)from >= h->seq)
            missed = 0;
        bx_buf_printf(out, "%s", nch++ ? "," : "");
        bx_buf_put_json_string(out, h->name, strlen(h->name));
        bx_buf_printf(out, ":{\"last\":%llu,\"missed\":%llu}", (unsigned long long)h->seq,
                      (unsigned long long)missed);
        for (uint32_t i = 0; i < h->q.count; i++) {
            bx_qent_t *q = bx_queue_ent(&h->q, i);
            if (q->tag <= (uint64_t)from)
                continue;
            if (ncand == cap) {
                cap = cap ? cap * 2 : 64;
                cand = bx_realloc(cand, cap * sizeof *cand);
            }
            cand[ncand++].m = q->m;
        }
    }
    if (ncand > 0) {
        /* Across channels, in the order they were published. */
        qsort(cand, ncand, sizeof *cand, s_by_id);
        for (size_t i = 0; i < ncand; i++) {
            /* Once: a message already waiting in the queue (the session was
             * subscribed) is not queued again. */
            int queued = 0;
            for (uint32_t j = 0; j < s->queue.count && !queued; j++)
                queued = bx_queue_at(&s->queue, j) == cand[i].m;
            if (queued)
                continue;
            bx_enqueue(e, s, cand[i].m);
            e->replayed++;
        }
        bx_state_wake(e, s);
    }
    free(cand);
}
