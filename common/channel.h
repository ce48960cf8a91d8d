// channel.h - Bayeux channel names and patterns.
//
// Grammar (Bayeux 1.0 §2.2, as Faye enforces it, plus '.' which CometD
// accepts and applications use): "/" segment *("/" segment), a segment being
// one or more of [A-Za-z0-9] - _ ! ~ ( ) $ @ .  A pattern may end in "/*"
// (exactly one more segment) or "/**" (one or more segments); a wildcard
// anywhere else is invalid. Empty segments and a trailing "/" are invalid.
#ifndef BX_CHANNEL_H
#define BX_CHANNEL_H

#include <stddef.h>

#define BX_CHANNEL_MAX 1024   /* longest channel name accepted, in bytes */

typedef enum {
    BX_CHAN_INVALID = 0,  /* not a channel name or pattern */
    BX_CHAN_NAME,         /* a plain name such as /chat/room1 */
    BX_CHAN_WILD,         // ends in /*
    BX_CHAN_DEEPWILD      // ends in /**
} bx_chan_kind_t;

/* Classifies s (len bytes, need not be NUL-terminated). */
bx_chan_kind_t bx_channel_parse(const char *s, size_t len);

/* True for "/meta/..." (any pattern or name under /meta/, and "/meta" itself
 * is not a meta channel), and likewise for "/service/...". */
int bx_channel_is_meta(const char *s);
int bx_channel_is_service(const char *s);

// True if pattern (a name or a wildcard pattern, assumed valid) matches name
// (a plain name, assumed valid): "/a/*" matches "/a/b" only, "/a/**" matches
// "/a/b" and "/a/b/c", not "/a".
int bx_channel_match(const char *pattern, const char *name);

// Calls fn once for each pattern that can match the plain name, in this order:
// the name itself, its parent + "/*", then each ancestor + "/**" from the
// nearest to "/**". For "/a/b/c": /a/b/c, /a/b/*, /a/b/**, /a/**, /**.
// pattern is NUL-terminated and valid only during the call. Stops early and
// returns fn's value when fn returns non-zero; returns 0 otherwise.
typedef int (*bx_channel_expand_fn)(const char *pattern, size_t len, void *ud);
int bx_channel_expand(const char *name, bx_channel_expand_fn fn, void *ud);

#endif
