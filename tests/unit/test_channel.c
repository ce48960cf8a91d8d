/* test_channel.c - channel grammar, matching and expansion (table-driven). */
#include "channel.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

static const struct {
    const char *s;
    bx_chan_kind_t kind;
} parse_cases[] = {
    { "/a", BX_CHAN_NAME },
    { "/a/b", BX_CHAN_NAME },
    { "/a/*", BX_CHAN_WILD },
    { "/a/**", BX_CHAN_DEEPWILD },
    { "/*", BX_CHAN_WILD },
    { "/**", BX_CHAN_DEEPWILD },
    { "/a-b_c!~()$@.x", BX_CHAN_NAME },
    { "/meta/connect", BX_CHAN_NAME },
    { "/service/echo", BX_CHAN_NAME },
    { "/Chat/Room1/9", BX_CHAN_NAME },
    { "/.", BX_CHAN_NAME },
    { "", BX_CHAN_INVALID },
    { "/", BX_CHAN_INVALID },
    { "a", BX_CHAN_INVALID },
    { "nochannel", BX_CHAN_INVALID },
    { "/a/", BX_CHAN_INVALID },
    { "//a", BX_CHAN_INVALID },
    { "/foo//bar", BX_CHAN_INVALID },
    { "/**/foo", BX_CHAN_INVALID },
    { "/foo/*/bar", BX_CHAN_INVALID },
    { "/a*", BX_CHAN_INVALID },
    { "/a/b*", BX_CHAN_INVALID },
    { "/a/***", BX_CHAN_INVALID },
    { "/a b", BX_CHAN_INVALID },
    { "/a#", BX_CHAN_INVALID },
    { "/a/*/", BX_CHAN_INVALID },
    { "/a/**/", BX_CHAN_INVALID },
    { "/a{b}", BX_CHAN_INVALID },
    { "/a+b", BX_CHAN_INVALID },
    { "/\xc3\xa9", BX_CHAN_INVALID },
    { "/a\\b", BX_CHAN_INVALID },
};

static const struct {
    const char *pattern, *name;
    int want;
} match_cases[] = {
    { "/a", "/a", 1 },
    { "/a", "/b", 0 },
    { "/a", "/a/b", 0 },
    { "/a/b", "/a", 0 },
    { "/a", "/ab", 0 },
    { "/*", "/a", 1 },
    { "/*", "/a/b", 0 },
    { "/**", "/a", 1 },
    { "/**", "/a/b", 1 },
    { "/**", "/a/b/c/d", 1 },
    { "/**", "/meta/connect", 1 },
    { "/a/*", "/a/b", 1 },
    { "/a/*", "/a", 0 },
    { "/a/*", "/a/b/c", 0 },
    { "/a/*", "/ab/c", 0 },
    { "/a/*", "/b/c", 0 },
    { "/a/**", "/a/b", 1 },
    { "/a/**", "/a/b/c", 1 },
    { "/a/**", "/a", 0 },
    { "/a/**", "/ab", 0 },
    { "/a/**", "/ab/c", 0 },
    { "/a/b/*", "/a/b/c", 1 },
    { "/a/b/*", "/a/c/d", 0 },
    { "/a/b/**", "/a/b/c/d/e", 1 },
    { "/chat/*", "/chat/room1", 1 },
};

static const struct {
    const char *name;
    const char *want;   /* the patterns, space-separated, in order */
} expand_cases[] = {
    { "/a/b/c", "/a/b/c /a/b/* /a/b/** /a/** /**" },
    { "/a", "/a /* /**" },
    { "/a/b", "/a/b /a/* /a/** /**" },
    { "/chat/room1", "/chat/room1 /chat/* /chat/** /**" },
};

/* Collects expanded patterns into a space-separated string. */
struct collect {
    char out[512];
    int calls;
    int stop_after;   /* return non-zero at this call (1-based), 0 = never */
    int lens_ok;
};

static int s_collect(const char *pattern, size_t len, void *ud)
{
    struct collect *c = ud;
    if (strlen(pattern) != len)
        c->lens_ok = 0;
    if (c->out[0])
        strcat(c->out, " ");
    strcat(c->out, pattern);
    c->calls++;
    return c->calls == c->stop_after ? 77 : 0;
}

int main(void)
{
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++)
        is_int(bx_channel_parse(parse_cases[i].s, strlen(parse_cases[i].s)),
               parse_cases[i].kind, "parse '%s'", parse_cases[i].s);

    /* Length: not NUL-terminated input, and BX_CHANNEL_MAX. */
    is_int(bx_channel_parse("/abc/def", 4), BX_CHAN_NAME, "parse uses len, not NUL");
    is_int(bx_channel_parse("/a/*xyz", 4), BX_CHAN_WILD, "parse stops at len");
    is_int(bx_channel_parse(NULL, 0), BX_CHAN_INVALID, "parse NULL");
    char *longname = malloc(BX_CHANNEL_MAX + 2);
    longname[0] = '/';
    memset(longname + 1, 'x', BX_CHANNEL_MAX);
    longname[BX_CHANNEL_MAX + 1] = '\0';
    is_int(bx_channel_parse(longname, BX_CHANNEL_MAX), BX_CHAN_NAME, "exactly the max length");
    is_int(bx_channel_parse(longname, BX_CHANNEL_MAX + 1), BX_CHAN_INVALID, "one over the max");
    free(longname);

    is_int(bx_channel_is_meta("/meta/connect"), 1, "is_meta /meta/connect");
    is_int(bx_channel_is_meta("/meta/**"), 1, "is_meta /meta/**");
    is_int(bx_channel_is_meta("/meta"), 0, "is_meta /meta");
    is_int(bx_channel_is_meta("/meta/"), 0, "is_meta /meta/ (nothing under it)");
    is_int(bx_channel_is_meta("/metax/a"), 0, "is_meta /metax/a");
    is_int(bx_channel_is_meta("/a/meta/b"), 0, "is_meta /a/meta/b");
    is_int(bx_channel_is_meta(NULL), 0, "is_meta NULL");
    is_int(bx_channel_is_service("/service/echo"), 1, "is_service /service/echo");
    is_int(bx_channel_is_service("/service"), 0, "is_service /service");
    is_int(bx_channel_is_service("/services/x"), 0, "is_service /services/x");
    is_int(bx_channel_is_service("/meta/x"), 0, "is_service /meta/x");

    for (size_t i = 0; i < sizeof match_cases / sizeof match_cases[0]; i++)
        is_int(bx_channel_match(match_cases[i].pattern, match_cases[i].name),
               match_cases[i].want, "match '%s' vs '%s'", match_cases[i].pattern,
               match_cases[i].name);

    for (size_t i = 0; i < sizeof expand_cases / sizeof expand_cases[0]; i++) {
        struct collect c = { .out = "", .lens_ok = 1 };
        is_int(bx_channel_expand(expand_cases[i].name, s_collect, &c), 0,
               "expand '%s' returns 0", expand_cases[i].name);
        is_str(c.out, expand_cases[i].want, "expand '%s' order", expand_cases[i].name);
        ok(c.lens_ok, "expand '%s' lengths", expand_cases[i].name);
    }

    /* Every expanded pattern matches the name, and no other pattern that is
     * a prefix-derived wildcard does. */
    struct collect c = { .out = "", .lens_ok = 1, .stop_after = 2 };
    is_int(bx_channel_expand("/a/b/c", s_collect, &c), 77, "expand stops on non-zero");
    is_str(c.out, "/a/b/c /a/b/*", "expand stopped after two");

    /* Consistency: every pattern expand yields matches the name. */
    const char *names[] = { "/a", "/a/b", "/x/y/z/w", "/meta/connect" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct collect e = { .out = "", .lens_ok = 1 };
        bx_channel_expand(names[i], s_collect, &e);
        int all = 1;
        char *save = NULL;
        for (char *p = strtok_r(e.out, " ", &save); p; p = strtok_r(NULL, " ", &save))
            if (!bx_channel_match(p, names[i]) ||
                bx_channel_parse(p, strlen(p)) == BX_CHAN_INVALID)
                all = 0;
        ok(all, "every expansion of '%s' is valid and matches it", names[i]);
    }

    done_testing();
    return exit_status();
}
