/* api.c - what backends may ask of the engine (docs/backend.md): publish to
 * a channel, deliver to one client, end a session, and questions about
 * sessions and subscribers. The app endpoint (app.c) turns requests into
 * these calls; replies and deliveries leave at the next flush, after the
 * group commit, like everything else.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "engine_int.h"
#include "log.h"
#include "util.h"

#define TAG "api"

static const int JSON_OUT = JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE;

void bx_engine_on_event(bx_engine_t *e, bx_engine_event_fn fn, void *ud)
{
    e->event = fn;
    e->event_ud = ud;
}

/* A channel a backend may name: a plain name outside /meta. */
static bx_api_err_t s_check_channel(const char *channel)
{
    if (!channel || bx_channel_parse(channel, strlen(channel)) != BX_CHAN_NAME)
        return BX_API_INVALID_CHANNEL;
    if (bx_channel_is_meta(channel) || strcmp(channel, "/meta") == 0)
        return BX_API_CHANNEL_DENIED;
    return BX_API_OK;
}

bx_api_err_t bx_engine_publish(bx_engine_t *e, const char *channel, json_object *data,
                               json_object *ext, size_t *reached, uint64_t *seq)
{
    bx_api_err_t err = s_check_channel(channel);
    if (err)
        return err;
    /* Service messages go to one client: deliver. */
    if (bx_channel_is_service(channel))
        return BX_API_CHANNEL_DENIED;
    json_object *msg = json_object_new_object();
    json_object_object_add(msg, "channel", json_object_new_string(channel));
    json_object_object_add(msg, "data", json_object_get(data));
    if (ext)
        json_object_object_add(msg, "ext", json_object_get(ext));
    size_t n = bx_broadcast(e, channel, msg, e->cfg.wall_ms(), seq);
    json_object_put(msg);
    if (reached)
        *reached = n;
    return BX_API_OK;
}

bx_api_err_t bx_engine_deliver(bx_engine_t *e, const char *client_id, const char *channel,
                               json_object *data, const char *id, int successful,
                               json_object *ext)
{
    bx_api_err_t err = s_check_channel(channel);
    if (err)
        return err;
    bx_session_t *s = client_id ? bx_state_session_get(e, client_id) : NULL;
    if (!s || s->doomed)
        return BX_API_UNKNOWN_CLIENT;
    bx_buf_t b;
    bx_buf_init(&b);
    bx_buf_puts(&b, "{\"channel\":");
    bx_buf_put_json_string(&b, channel, strlen(channel));
    bx_buf_printf(&b, ",\"data\":%s", data ? json_object_to_json_string_ext(data, JSON_OUT)
                                           : "null");
    if (id) {
        bx_buf_puts(&b, ",\"id\":");
        bx_buf_put_json_string(&b, id, strlen(id));
    }
    if (successful >= 0)
        bx_buf_printf(&b, ",\"successful\":%s", successful ? "true" : "false");
    if (ext)
        bx_buf_printf(&b, ",\"ext\":%s", json_object_to_json_string_ext(ext, JSON_OUT));
    bx_buf_putc(&b, '}');
    bx_msg_t *m = bx_msg_new(b.data, b.len);
    bx_buf_free(&b);
    m->id = e->next_msgid++;
    m->time = e->cfg.wall_ms();
    bx_enqueue(e, s, m);
    bx_msg_unref(&m);
    bx_state_wake(e, s);
    return BX_API_OK;
}

bx_api_err_t bx_engine_kick(bx_engine_t *e, const char *client_id, int64_t now)
{
    bx_session_t *s = client_id ? bx_state_session_get(e, client_id) : NULL;
    if (!s || s->doomed)
        return BX_API_UNKNOWN_CLIENT;
    bx_remove_session(e, s, now, "kicked", "none");
    return BX_API_OK;
}

static void s_info(const bx_session_t *s, bx_session_info_t *si)
{
    si->client_id = s->id;
    si->ack = s->ack;
    si->created = s->created;
    si->subscriptions = s->nsubs;
    si->queued = s->queue.count;
    si->connected = s->parked;
    si->address = s->address;
}

size_t bx_engine_sessions(bx_engine_t *e, size_t limit, bx_session_fn fn, void *ud)
{
    size_t pos = 0, n = 0;
    bx_session_t *s;
    while ((s = bx_map_next(e->sessions, &pos, NULL, NULL)) != NULL) {
        if (limit == 0 || n < limit) {
            bx_session_info_t si;
            s_info(s, &si);
            fn(ud, &si);
        }
        n++;
    }
    return n;
}

bx_api_err_t bx_engine_session(bx_engine_t *e, const char *client_id, bx_session_fn fn,
                               bx_name_fn sub, void *ud)
{
    bx_session_t *s = client_id ? bx_state_session_get(e, client_id) : NULL;
    if (!s)
        return BX_API_UNKNOWN_CLIENT;
    bx_session_info_t si;
    s_info(s, &si);
    if (fn)
        fn(ud, &si);
    for (uint32_t i = 0; i < s->nsubs && sub; i++)
        sub(ud, s->subs[i].ch->name);
    return BX_API_OK;
}

typedef struct {
    bx_engine_t *e;
    bx_name_fn fn;
    void *ud;
    size_t count;
} s_subs_t;

static int s_subs_pattern(const char *pattern, size_t len, void *ud)
{
    s_subs_t *x = ud;
    bx_chan_t *ch = bx_map_get(x->e->channels, pattern, len);
    for (uint32_t i = 0; ch && i < ch->nsubs; i++) {
        bx_session_t *s = ch->subs[i];
        /* Once per session, as a fan-out would reach it. */
        if (s->mark == x->e->fanout_seq)
            continue;
        s->mark = x->e->fanout_seq;
        x->fn(x->ud, s->id);
        x->count++;
    }
    return 0;
}

bx_api_err_t bx_engine_subscribers(bx_engine_t *e, const char *channel, bx_name_fn fn,
                                   void *ud, size_t *count)
{
    if (!channel || bx_channel_parse(channel, strlen(channel)) != BX_CHAN_NAME)
        return BX_API_INVALID_CHANNEL;
    s_subs_t x = { e, fn, ud, 0 };
    e->fanout_seq++;
    bx_channel_expand(channel, s_subs_pattern, &x);
    if (count)
        *count = x.count;
    return BX_API_OK;
}

/* ---- stats ---- */

void bx_engine_stats(const bx_engine_t *e, bx_engine_stats_t *st)
{
    memset(st, 0, sizeof *st);
    st->sessions = bx_map_count(e->sessions);
    st->channels = bx_map_count(e->channels);
    st->parked = e->nheap;
    st->published = e->published;
    st->delivered = e->delivered;
    st->dropped = e->dropped;
    st->overflowed = e->overflowed;
    st->expired = e->expired;
    st->acked = e->acked;
    st->replayed = e->replayed;
    st->evicted = e->evicted;
    st->queued_bytes = e->qacct.bytes;
    st->queued_msgs = e->qacct.msgs;
    size_t pos = 0;
    bx_session_t *s;
    while ((s = bx_map_next(e->sessions, &pos, NULL, NULL)) != NULL)
        if (s->queue.bytes > st->queue_max_bytes)
            st->queue_max_bytes = s->queue.bytes;
    st->histories = bx_map_count(e->hist);
    memcpy(st->refused, e->refused, sizeof st->refused);
    st->memory = bx_map_memory(e->sessions) + bx_map_memory(e->channels) +
                 bx_map_memory(e->parked) + st->sessions * sizeof(bx_session_t) +
                 (size_t)e->capheap * sizeof(*e->heap);
}

static const int s_http_codes[4] = { 400, 405, 413, 414 };

void bx_engine_note_http(bx_engine_t *e, int status)
{
    int i = 0;
    while (i < 4 && s_http_codes[i] != status)
        i++;
    e->http_refused[i]++;
}

void bx_engine_note_turn(bx_engine_t *e, int64_t us, int64_t cpu_us)
{
    if (us > e->turn_max_us)
        e->turn_max_us = us;
    if (cpu_us > e->turn_cpu_max_us)
        e->turn_cpu_max_us = cpu_us;
}

void bx_engine_stats_json(const bx_engine_t *e, bx_buf_t *b)
{
    bx_engine_stats_t st;
    bx_engine_stats(e, &st);
    /* Queue depths: what waits for clients, in all and at the worst, in
     * messages and in bytes; queued_bytes counts each message once, the
     * memory they take (queue-memory bounds it). */
    uint64_t queued = 0, deepest = 0;
    size_t pos = 0;
    bx_session_t *s;
    while ((s = bx_map_next(e->sessions, &pos, NULL, NULL)) != NULL) {
        queued += s->queue.count;
        if (s->queue.count > deepest)
            deepest = s->queue.count;
    }
    bx_buf_printf(b, "{\"queued\":%llu,\"queue_max\":%llu,\"queued_bytes\":%llu,"
                  "\"queued_messages\":%llu,\"queue_max_bytes\":%llu,\"evicted\":%llu,",
                  (unsigned long long)queued, (unsigned long long)deepest,
                  (unsigned long long)st.queued_bytes, (unsigned long long)st.queued_msgs,
                  (unsigned long long)st.queue_max_bytes, (unsigned long long)st.evicted);
    bx_buf_printf(b, "\"sessions\":%zu,\"channels\":%zu,\"parked\":%zu,"
                  "\"published\":%llu,\"delivered\":%llu,\"dropped\":%llu,"
                  "\"overflowed\":%llu,\"expired\":%llu,\"acked\":%llu,\"replayed\":%llu,"
                  "\"histories\":%zu,\"refused\":{",
                  st.sessions, st.channels, st.parked, (unsigned long long)st.published,
                  (unsigned long long)st.delivered, (unsigned long long)st.dropped,
                  (unsigned long long)st.overflowed, (unsigned long long)st.expired,
                  (unsigned long long)st.acked, (unsigned long long)st.replayed, st.histories);
    for (int i = 0; i < BX_REFUSAL_COUNT; i++)
        bx_buf_printf(b, "%s\"%s\":%llu", i ? "," : "", bx_refusal_names[i],
                      (unsigned long long)st.refused[i]);
    /* What the responders refused before it reached bayeuxd: too large,
     * too many messages, not JSON... (HTTP status). */
    bx_buf_puts(b, "},\"http_refused\":{");
    for (int i = 0; i < 4; i++)
        bx_buf_printf(b, "\"%d\":%llu,", s_http_codes[i],
                      (unsigned long long)e->http_refused[i]);
    bx_buf_printf(b, "\"other\":%llu", (unsigned long long)e->http_refused[4]);
    bx_buf_printf(b, "},\"turn_max_us\":%lld,\"turn_cpu_max_us\":%lld",
                  (long long)e->turn_max_us, (long long)e->turn_cpu_max_us);
    if (e->store) {
        bx_store_stats_t ss;
        bx_store_stats(e->store, &ss);
        bx_buf_printf(b, ",\"store\":{\"commits\":%llu,\"writes\":%llu,\"failures\":%llu,"
                      "\"commit_us_last\":%lld,\"commit_us_max\":%lld}",
                      (unsigned long long)ss.commits, (unsigned long long)ss.writes,
                      (unsigned long long)ss.failures, (long long)ss.commit_us_last,
                      (long long)ss.commit_us_max);
    }
    bx_buf_putc(b, '}');
}

int bx_engine_backup(bx_engine_t *e, const char *path, char *err, size_t errlen)
{
    if (!e->store) {
        bx_errf(err, errlen, "bayeuxd keeps no database (database = :memory:)");
        return -1;
    }
    if (!path || path[0] != '/') {
        bx_errf(err, errlen, "path must be absolute (bayeuxd writes it)");
        return -1;
    }
    int64_t t0 = bx_now_ms();
    if (bx_store_backup(e->store, path, err, errlen) != 0) {
        bx_warn(TAG, "backup to %s failed: %s", path, err);
        return -1;
    }
    bx_info(TAG, "database copied to %s in %lld ms", path, (long long)(bx_now_ms() - t0));
    return 0;
}
