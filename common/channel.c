/* channel.c - Bayeux channel names, patterns, matching and expansion. */
#include "channel.h"

#include <string.h>

/* Bayeux 1.0 §2.2 channel segment characters, plus '.' (see channel.h). */
static int s_segment_char(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("-_!~()$@.", c) != NULL;
}

bx_chan_kind_t bx_channel_parse(const char *s, size_t len)
{
    if (!s || len < 2 || len > BX_CHANNEL_MAX || s[0] != '/')
        return BX_CHAN_INVALID;

    size_t i = 0;
    while (i < len) {
        /* s[i] is the '/' that opens a segment. */
        size_t start = ++i;
        while (i < len && s[i] != '/')
            i++;
        size_t seglen = i - start;
        const char *seg = s + start;
        if (seglen == 0)
            return BX_CHAN_INVALID;   /* "//", or a trailing '/' */
        int last = i == len;
        if (seglen == 1 && seg[0] == '*')
            return last ? BX_CHAN_WILD : BX_CHAN_INVALID;
        if (seglen == 2 && seg[0] == '*' && seg[1] == '*')
            return last ? BX_CHAN_DEEPWILD : BX_CHAN_INVALID;
        for (size_t k = 0; k < seglen; k++)
            if (!s_segment_char((unsigned char)seg[k]))
                return BX_CHAN_INVALID;
    }
    return BX_CHAN_NAME;
}

static int s_under(const char *s, const char *prefix, size_t plen)
{
    /* "/meta/x" is under "/meta/"; "/meta" and "/metax" are not. */
    return s && strncmp(s, prefix, plen) == 0 && s[plen] != '\0';
}

int bx_channel_is_meta(const char *s)
{
    return s_under(s, "/meta/", 6);
}

int bx_channel_is_service(const char *s)
{
    return s_under(s, "/service/", 9);
}

int bx_channel_match(const char *pattern, const char *name)
{
    size_t plen = strlen(pattern);
    size_t nlen = strlen(name);

    if (plen >= 2 && strcmp(pattern + plen - 2, "/*") == 0) {
        // "/a/*": name = "/a/" + exactly one segment.
        size_t pre = plen - 1;   /* "/a/" */
        if (nlen <= pre || strncmp(pattern, name, pre) != 0)
            return 0;
        return strchr(name + pre, '/') == NULL;
    }
    if (plen >= 3 && strcmp(pattern + plen - 3, "/**") == 0) {
        // "/a/**": name = "/a/" + one or more segments.
        size_t pre = plen - 2;   /* "/a/" */
        return nlen > pre && strncmp(pattern, name, pre) == 0;
    }
    return strcmp(pattern, name) == 0;
}

int bx_channel_expand(const char *name, bx_channel_expand_fn fn, void *ud)
{
    char buf[BX_CHANNEL_MAX + 4];
    size_t len = strlen(name);
    int rc;

    if (len < 2 || len > BX_CHANNEL_MAX || name[0] != '/')
        return 0;
    memcpy(buf, name, len + 1);
    if ((rc = fn(buf, len, ud)) != 0)
        return rc;

    // Parent + "/*", then each ancestor + "/**" from the nearest up.
    size_t cut = len;
    while (cut > 0 && name[cut - 1] != '/')
        cut--;
    /* buf[0..cut) is "/a/b/" for "/a/b/c". */
    memcpy(buf, name, cut);
    memcpy(buf + cut, "*", 2);
    if ((rc = fn(buf, cut + 1, ud)) != 0)
        return rc;
    for (;;) {
        memcpy(buf, name, cut);
        memcpy(buf + cut, "**", 3);
        if ((rc = fn(buf, cut + 2, ud)) != 0)
            return rc;
        if (cut <= 1)
            break;
        cut--;   /* drop the '/' and walk back to the previous one */
        while (cut > 0 && name[cut - 1] != '/')
            cut--;
    }
    return 0;
}
