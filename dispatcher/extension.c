/* extension.c - what the engine writes into messages besides the protocol's
 * own fields: the timesync answer, the ext object of replies, the delivery
 * as subscribers get it (ext.seq, the timestamp). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "channel.h"
#include "engine_int.h"
#include "log.h"
#include "util.h"

static const int JSON_OUT = JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE;

int bx_json_is_number(json_object *v)
{
    return json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double);
}

/* ---- extensions on replies ---- */

/* CometD TimesyncExtension, server side (shared bayeux-wire.md §5.3): what a
 * meta message's ext.timesync asks its reply to carry. */
void bx_ext_tsync_in(json_object *msg, int64_t wall, bx_tsync_t *t)
{
    json_object *ext, *tx, *v;
    memset(t, 0, sizeof *t);
    if (!json_object_object_get_ex(msg, "ext", &ext) ||
        !json_object_is_type(ext, json_type_object) ||
        !json_object_object_get_ex(ext, "timesync", &tx) ||
        !json_object_is_type(tx, json_type_object) ||
        !json_object_object_get_ex(tx, "tc", &v) || !bx_json_is_number(v))
        return;
    t->on = 1;
    t->tc = json_object_get_int64(v);
    t->ts = wall;
    if (json_object_object_get_ex(tx, "l", &v) && bx_json_is_number(v)) {
        int64_t l = json_object_get_int64(v), o = 0;
        if (json_object_object_get_ex(tx, "o", &v) && bx_json_is_number(v))
            o = json_object_get_int64(v);
        t->a = (t->tc + o + l) - t->ts;
        t->has_a = 1;
        /* Answered only while the client is not yet accurate enough. */
        if (l != 0 && t->a > -25 && t->a < 25)
            t->on = 0;
    }
}

/* Appends ,"timesync":{...} if t answers. */
void bx_ext_members(bx_buf_t *b, const bx_tsync_t *t, int64_t wall)
{
    if (!t || !t->on)
        return;
    bx_buf_printf(b, ",\"timesync\":{\"tc\":%lld,\"ts\":%lld,\"p\":%lld", (long long)t->tc,
                  (long long)t->ts, (long long)(wall - t->ts));
    if (t->has_a)
        bx_buf_printf(b, ",\"a\":%lld", (long long)t->a);
    bx_buf_putc(b, '}');
}

/* Appends ,"ext":{...} with the members that apply: ack (JSON text),
 * replay (object members, without braces), timesync. */
void bx_ext(bx_buf_t *b, const char *ack, const bx_tsync_t *t, int64_t wall,
            const char *replay, size_t rlen)
{
    if (!ack && !(t && t->on) && rlen == 0)
        return;
    bx_buf_puts(b, ",\"ext\":");
    size_t open = b->len;
    /* Every member is written with a leading comma; the first one's
     * becomes the opening brace. */
    if (ack)
        bx_buf_printf(b, ",\"ack\":%s", ack);
    if (rlen > 0) {
        bx_buf_puts(b, ",\"replay\":{");
        bx_buf_append(b, replay, rlen);
        bx_buf_putc(b, '}');
    }
    bx_ext_members(b, t, wall);
    b->data[open] = '{';
    bx_buf_putc(b, '}');
}

/* RFC 1123 date, as HTTP and the CometD clients write it. */
void bx_rfc1123(int64_t wall_ms, char *out, size_t len)
{
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;
    static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    gmtime_r(&t, &tm);
    snprintf(out, len, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* The message as subscribers get it: every field of the publisher's but
 * clientId (CometD: "do not leak clientId") and id (CometD resets it); with
 * a history, ext.seq; with the timestamp option, the server's timestamp. */
bx_msg_t *bx_delivery(bx_engine_t *e, json_object *msg, uint64_t seq, int64_t wall)
{
    bx_buf_t b;
    bx_buf_init(&b);
    bx_buf_putc(&b, '{');
    int n = 0, had_ext = 0;
    json_object_object_foreach(msg, key, val) {
        if (strcmp(key, "clientId") == 0 || strcmp(key, "id") == 0)
            continue;
        if (e->cfg.timestamp && strcmp(key, "timestamp") == 0)
            continue;
        if (n++ > 0)
            bx_buf_putc(&b, ',');
        bx_buf_put_json_string(&b, key, strlen(key));
        bx_buf_putc(&b, ':');
        if (seq > 0 && strcmp(key, "ext") == 0) {
            /* The publisher's ext, with our seq in place of any of its own. */
            had_ext = 1;
            bx_buf_putc(&b, '{');
            if (json_object_is_type(val, json_type_object)) {
                json_object_object_foreach(val, k2, v2) {
                    if (strcmp(k2, "seq") == 0)
                        continue;
                    bx_buf_put_json_string(&b, k2, strlen(k2));
                    bx_buf_putc(&b, ':');
                    bx_buf_puts(&b, v2 ? json_object_to_json_string_ext(v2, JSON_OUT) : "null");
                    bx_buf_putc(&b, ',');
                }
            }
            bx_buf_printf(&b, "\"seq\":%llu}", (unsigned long long)seq);
            continue;
        }
        bx_buf_puts(&b, val ? json_object_to_json_string_ext(val, JSON_OUT) : "null");
    }
    if (seq > 0 && !had_ext)
        bx_buf_printf(&b, "%s\"ext\":{\"seq\":%llu}", n++ ? "," : "", (unsigned long long)seq);
    if (e->cfg.timestamp) {
        char date[40];
        bx_rfc1123(wall, date, sizeof date);
        bx_buf_printf(&b, "%s\"timestamp\":\"%s\"", n++ ? "," : "", date);
    }
    bx_buf_putc(&b, '}');
    bx_msg_t *m = bx_msg_new(b.data, b.len);
    bx_buf_free(&b);
    m->id = e->next_msgid++;
    m->time = wall;
    return m;
}

