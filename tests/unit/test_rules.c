/* test_rules.c - channel rules: parsing, templates bound to the subject,
 * defaults, and wildcard subscriptions that must not reach past a rule. */
#include <stdio.h>
#include <string.h>

#include "rules.h"
#include "tap.h"

#define SUB BX_OP_SUBSCRIBE
#define PUB BX_OP_PUBLISH
#define NEW BX_OP_CREATE

static const char *const SPEC =
    "/user/{id}/** subscribe=subject publish=nobody;"
    " /chat/** subscribe=anyone publish=authenticated create=authenticated;"
    " /admin/** subscribe=nobody publish=nobody;"
    " /room/{name} publish=subject";

static void t_closed(void)
{
    char err[256];
    bx_rules_t *r = bx_rules_new(SPEC, 1, err, sizeof err);
    ok(r != NULL, "the example parses (%s)", r ? "" : err);
    ok(bx_rules_allow(r, SUB, "/user/alice/inbox", "alice"), "alice: her own inbox");
    ok(!bx_rules_allow(r, SUB, "/user/bob/inbox", "alice"), "alice: not bob's");
    ok(!bx_rules_allow(r, SUB, "/user/alice/inbox", ""), "anonymous: not alice's");
    ok(!bx_rules_allow(r, SUB, "/user/alice", "alice"), "/user/alice itself: /** needs more");
    ok(!bx_rules_allow(r, PUB, "/user/alice/inbox", "alice"), "publish=nobody even for alice");
    ok(bx_rules_allow(r, NEW, "/user/alice/inbox", "alice"),
       "create not said: whoever may subscribe or publish may create");
    ok(!bx_rules_allow(r, NEW, "/nowhere", "alice"), "no rule, closed: no create");
    ok(bx_rules_allow(r, SUB, "/chat/room", ""), "chat: anyone subscribes");
    ok(!bx_rules_allow(r, PUB, "/chat/room", ""), "chat: anonymous may not publish");
    ok(bx_rules_allow(r, PUB, "/chat/room", "bob"), "chat: bob may");
    ok(!bx_rules_allow(r, NEW, "/chat/new", NULL), "chat: anonymous may not create");
    ok(bx_rules_allow(r, NEW, "/chat/new", "bob"), "chat: bob may create");
    ok(!bx_rules_allow(r, SUB, "/admin/x", "root"), "admin: nobody");
    ok(!bx_rules_allow(r, SUB, "/other", "alice"), "no rule, closed: refused");
    ok(bx_rules_allow(r, PUB, "/room/blue", "blue"), "/room/{name}: the subject blue");
    ok(!bx_rules_allow(r, PUB, "/room/blue/x", "blue"), "/room/{name}: one segment only");

    /* Wildcard subscriptions reach every channel of the rules they overlap. */
    ok(!bx_rules_allow(r, SUB, "/user/*/inbox", "alice"), "a wildcard in the template: refused");
    ok(!bx_rules_allow(r, SUB, "/user/**", "alice"), "/user/** would reach every inbox");
    ok(!bx_rules_allow(r, SUB, "/**", "alice"), "/** reaches /admin and /user: refused");
    ok(bx_rules_allow(r, SUB, "/chat/*", ""), "/chat/* stays inside /chat/**: anyone");
    ok(bx_rules_allow(r, SUB, "/chat/**", ""), "/chat/** itself");
    ok(bx_rules_allow(r, SUB, "/user/alice/*", "alice"),
       "/user/alice/*: every channel it reaches is alice's");
    ok(bx_rules_allow(r, SUB, "/user/alice/**", "alice"), "/user/alice/** too");
    ok(!bx_rules_allow(r, SUB, "/user/alice/*", "bob"), "but not for bob");
    ok(!bx_rules_allow(r, SUB, "/user/alice/**", ""), "nor anonymously");
    bx_rules_free(&r);
    ok(r == NULL, "freed");
}

static void t_open_and_errors(void)
{
    char err[256];
    bx_rules_t *r = bx_rules_new("/secret/** subscribe=nobody", 0, err, sizeof err);
    ok(bx_rules_allow(r, SUB, "/other", NULL), "open default: a channel no rule names");
    ok(bx_rules_allow(r, PUB, "/secret/x", NULL), "open default: what the rule does not say");
    ok(!bx_rules_allow(r, SUB, "/secret/x", NULL), "the rule: nobody");
    ok(!bx_rules_allow(r, SUB, "/**", NULL), "open, but /** would reach /secret");
    ok(bx_rules_allow(r, SUB, "/public/**", NULL), "/public/** does not");
    bx_rules_free(&r);

    r = bx_rules_new("", 0, err, sizeof err);
    ok(r && bx_rules_allow(r, SUB, "/**", NULL), "no rules, open: everything");
    bx_rules_free(&r);
    r = bx_rules_new(NULL, 1, err, sizeof err);
    ok(r && !bx_rules_allow(r, PUB, "/a", "x"), "no rules, closed: nothing");
    bx_rules_free(&r);

    static const struct { const char *spec, *why; } bad[] = {
        { "/a/** subscribe=everyone", "an unknown WHO" },
        { "/a/** read=anyone", "an unknown operation" },
        { "/a/**", "a rule that says nothing" },
        { "/a/** subscribe=subject", "subject without a template" },
        { "/{a}/{b} publish=subject", "two templates" },
        { "/a/*/b publish=anyone", "a wildcard inside" },
        { "/meta/** publish=anyone", "meta channels" },
        { "nope publish=anyone", "not a channel" },
        { "/ok publish=anyone; /x/ publish=anyone", "a bad second rule" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        r = bx_rules_new(bad[i].spec, 0, err, sizeof err);
        ok(r == NULL && strncmp(err, "channel-rules:", 14) == 0, "refused: %s", bad[i].why);
        bx_rules_free(&r);
    }
}

int main(void)
{
    t_closed();
    t_open_and_errors();
    done_testing();
    return exit_status();
}
