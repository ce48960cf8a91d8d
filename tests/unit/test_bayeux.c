/* test_bayeux.c - request body parsing, message ids, JSONP callback names. */
#include "bayeux.h"
#include "util.h"
#include "tap.h"

#include <stdio.h>
#include <string.h>

#define S(lit) lit, sizeof(lit) - 1

static const struct {
    const char *text;
    size_t len;
    bx_batch_err_t want;
    int count;   /* messages when OK */
} batch_cases[] = {
    { S("[{\"channel\":\"/meta/handshake\"}]"), BX_BATCH_OK, 1 },
    { S("{\"channel\":\"/meta/handshake\"}"), BX_BATCH_OK, 1 },
    { S("  [{\"a\":1},{\"b\":2}]\r\n "), BX_BATCH_OK, 2 },
    { S("[{}]"), BX_BATCH_OK, 1 },
    { S(""), BX_BATCH_EMPTY, 0 },
    { S(" \t\r\n"), BX_BATCH_EMPTY, 0 },
    { S("[]"), BX_BATCH_EMPTY, 0 },
    { S("[ ]"), BX_BATCH_EMPTY, 0 },
    { S("[{\"a\":1}"), BX_BATCH_BAD_JSON, 0 },
    { S("[{\"a\":1}] x"), BX_BATCH_BAD_JSON, 0 },
    { S("[{\"a\":1}][{\"a\":1}]"), BX_BATCH_BAD_JSON, 0 },
    { S("[{\"a\":1},]"), BX_BATCH_BAD_JSON, 0 },
    { S("[{'a':1}]"), BX_BATCH_BAD_JSON, 0 },
    { S("[{\"a\":1}]/*c*/"), BX_BATCH_BAD_JSON, 0 },
    { S("[{\"a\":NaN}]"), BX_BATCH_BAD_JSON, 0 },
    { S("[{\"a\":01}]"), BX_BATCH_BAD_JSON, 0 },
    { S("nochannel"), BX_BATCH_BAD_JSON, 0 },
    { S("[{\"a\":1}]\0"), BX_BATCH_BAD_JSON, 0 },
    { S("[{\"a\":\"x\0y\"}]"), BX_BATCH_BAD_JSON, 0 },
    { S("[{\"a\":1.}]"), BX_BATCH_BAD_JSON, 0 },
    { S("[{\"a\":.5}]"), BX_BATCH_BAD_JSON, 0 },
    { S("[{\"a\":Infinity}]"), BX_BATCH_BAD_JSON, 0 },
    { S("[{\"a\":-}]"), BX_BATCH_BAD_JSON, 0 },
    { S("[{\"a\":1e}]"), BX_BATCH_BAD_JSON, 0 },
    { S("[{\"a\":0x10}]"), BX_BATCH_BAD_JSON, 0 },
    { S("[{\"a\":tru}]"), BX_BATCH_BAD_JSON, 0 },
    { S("[{\"a\":True}]"), BX_BATCH_BAD_JSON, 0 },
    { S("[{\"a\":\"\\x\"}]"), BX_BATCH_BAD_JSON, 0 },
    { S("[{\"a\":\"\\u12\"}]"), BX_BATCH_BAD_JSON, 0 },
    { S("[{\"a\":\"tab\there\"}]"), BX_BATCH_BAD_JSON, 0 },
    { S("[{\"a\":\"x}]"), BX_BATCH_BAD_JSON, 0 },
    { S("[{\"a\" 1}]"), BX_BATCH_BAD_JSON, 0 },
    { S("[{a:1}]"), BX_BATCH_BAD_JSON, 0 },
    { S("[{,}]"), BX_BATCH_BAD_JSON, 0 },
    { S("[{\"a\":1,}]"), BX_BATCH_BAD_JSON, 0 },
    { S("[{\"a\":1}}"), BX_BATCH_BAD_JSON, 0 },
    { S("{\"a\":1}]"), BX_BATCH_BAD_JSON, 0 },
    { S("[{\"a\":1} {\"b\":2}]"), BX_BATCH_BAD_JSON, 0 },
    { S("[{\"a\":-0.5e+3,\"b\":0,\"c\":1E-2,\"d\":-0}]"), BX_BATCH_OK, 1 },
    { S("[{\"a\":[1,[2,{\"b\":null}]],\"t\":true,\"f\":false,\"s\":\"\\/\\b\"}]"),
      BX_BATCH_OK, 1 },
    /* json-c would cut these keys short, and the second would replace "a". */
    { S("[{\"data\":{\"a\\u0000b\":1,\"a\":2}}]"), BX_BATCH_NUL_KEY, 0 },
    { S("[{\"ext\":{\"\\u0000\":1}}]"), BX_BATCH_NUL_KEY, 0 },
    { S("[{\"data\":{\"a\\\\u0000b\":1}}]"), BX_BATCH_OK, 1 },   /* an escaped backslash */
    { S("[{\"data\":{\"a\":\"x\\u0000y\"}}]"), BX_BATCH_OK, 1 },   /* in a value: kept */
    { S("1"), BX_BATCH_NOT_MESSAGES, 0 },
    { S("\"str\""), BX_BATCH_NOT_MESSAGES, 0 },
    { S("null"), BX_BATCH_NOT_MESSAGES, 0 },
    { S("true"), BX_BATCH_NOT_MESSAGES, 0 },
    { S("[1]"), BX_BATCH_NOT_MESSAGES, 0 },
    { S("[{\"a\":1},\"x\"]"), BX_BATCH_NOT_MESSAGES, 0 },
    { S("[[{\"a\":1}]]"), BX_BATCH_NOT_MESSAGES, 0 },
    { S("[null]"), BX_BATCH_NOT_MESSAGES, 0 },
    /* UTF-8 */
    { S("[{\"a\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}]"), BX_BATCH_OK, 1 },
    { S("[{\"a\":\"\xc0\xaf\"}]"), BX_BATCH_BAD_UTF8, 0 },          /* overlong '/' */
    { S("[{\"a\":\"\xe0\x80\xaf\"}]"), BX_BATCH_BAD_UTF8, 0 },      /* overlong, 3 bytes */
    { S("[{\"a\":\"\xf0\x80\x80\xaf\"}]"), BX_BATCH_BAD_UTF8, 0 },  /* overlong, 4 bytes */
    { S("[{\"a\":\"\xed\xa0\x80\"}]"), BX_BATCH_BAD_UTF8, 0 },      /* U+D800 */
    { S("[{\"a\":\"\xed\xbf\xbf\"}]"), BX_BATCH_BAD_UTF8, 0 },      /* U+DFFF */
    { S("[{\"a\":\"\xf4\x90\x80\x80\"}]"), BX_BATCH_BAD_UTF8, 0 },  /* U+110000 */
    { S("[{\"a\":\"\xf4\x8f\xbf\xbf\"}]"), BX_BATCH_OK, 1 },        /* U+10FFFF */
    { S("[{\"a\":\"\xff\"}]"), BX_BATCH_BAD_UTF8, 0 },
    { S("[{\"a\":\"\x80\"}]"), BX_BATCH_BAD_UTF8, 0 },
    { S("[{\"a\":\"\xc3\"}]"), BX_BATCH_BAD_UTF8, 0 },              /* truncated */
    { S("[{\"a\":\"x\"}]\xe2\x82"), BX_BATCH_BAD_UTF8, 0 },         /* truncated at end */
    /* Escapes that are valid JSON and must not upset anything. */
    { S("[{\"a\":\"\\u0000\",\"id\":\"\\u0000\"}]"), BX_BATCH_OK, 1 },
    { S("[{\"a\":\"\\ud800\"}]"), BX_BATCH_OK, 1 },
    { S("[{\"a\":\"\\ud83d\\ude00\"}]"), BX_BATCH_OK, 1 },
};

static void test_batch_table(void)
{
    bx_limits_t lim;
    bx_limits_init(&lim);
    for (size_t i = 0; i < sizeof batch_cases / sizeof batch_cases[0]; i++) {
        bx_batch_err_t err = (bx_batch_err_t)-1;
        json_object *a = bx_batch_parse(batch_cases[i].text, batch_cases[i].len, &lim, &err);
        is_int(err, batch_cases[i].want, "batch case %zu: %s", i,
               bx_batch_strerror(batch_cases[i].want));
        if (batch_cases[i].want == BX_BATCH_OK) {
            ok(a && json_object_is_type(a, json_type_array) &&
               (int)json_object_array_length(a) == batch_cases[i].count,
               "batch case %zu: array of %d", i, batch_cases[i].count);
        } else {
            ok(a == NULL, "batch case %zu: NULL on error", i);
        }
        json_object_put(a);
    }
}

/* Builds [ {"d": [[[...1...]]]} ] with `depth` containers in all. */
static char *s_nested(int depth, int wrap_array, int empty_inner)
{
    bx_buf_t b;
    bx_buf_init(&b);
    int inner = depth - (wrap_array ? 2 : 1);   /* arrays inside the message */
    if (wrap_array)
        bx_buf_puts(&b, "[");
    bx_buf_puts(&b, "{\"d\":");
    if (inner == 0)
        bx_buf_puts(&b, "1");
    for (int i = 0; i < inner; i++)
        bx_buf_puts(&b, "[");
    if (inner > 0 && !empty_inner)
        bx_buf_puts(&b, "1");
    for (int i = 0; i < inner; i++)
        bx_buf_puts(&b, "]");
    bx_buf_puts(&b, "}");
    if (wrap_array)
        bx_buf_puts(&b, "]");
    return bx_buf_steal(&b, NULL);
}

static void test_limits(void)
{
    bx_limits_t lim;
    bx_batch_err_t err;
    json_object *a;

    bx_limits_init(&lim);
    is_int((long long)lim.max_body, BX_DEFAULT_MAX_BODY, "default max_body");
    is_int(lim.max_messages, BX_DEFAULT_MAX_MESSAGES, "default max_messages");
    is_int(lim.max_depth, BX_DEFAULT_MAX_DEPTH, "default max_depth");

    const char *body = "[{\"channel\":\"/a\"}]";
    lim.max_body = strlen(body);
    a = bx_batch_parse(body, strlen(body), &lim, &err);
    ok(a && err == BX_BATCH_OK, "body exactly at max_body");
    json_object_put(a);
    lim.max_body = strlen(body) - 1;
    a = bx_batch_parse(body, strlen(body), &lim, &err);
    ok(!a && err == BX_BATCH_TOO_LARGE, "body one over max_body");
    is_int(bx_batch_http_status(err), 413, "too large is 413");
    /* Size comes first, even for junk. */
    lim.max_body = 3;
    a = bx_batch_parse("\xff\xff\xff\xff", 4, &lim, &err);
    is_int(err, BX_BATCH_TOO_LARGE, "size checked before UTF-8");

    bx_limits_init(&lim);
    lim.max_messages = 3;
    a = bx_batch_parse(S("[{},{},{}]"), &lim, &err);
    ok(a && err == BX_BATCH_OK, "exactly max_messages");
    json_object_put(a);
    a = bx_batch_parse(S("[{},{},{},{}]"), &lim, &err);
    ok(!a && err == BX_BATCH_TOO_MANY, "one over max_messages");

    /* Depth: the array is 1, the message 2. */
    bx_limits_init(&lim);
    lim.max_depth = 5;
    for (int wrap = 0; wrap <= 1; wrap++) {
        for (int empty = 0; empty <= 1; empty++) {
            char *ok_text = s_nested(wrap ? 5 : 4, wrap, empty);
            char *deep_text = s_nested(wrap ? 6 : 5, wrap, empty);
            a = bx_batch_parse(ok_text, strlen(ok_text), &lim, &err);
            ok(a && err == BX_BATCH_OK, "depth at the limit (%s, %s): %s",
               wrap ? "array" : "object", empty ? "empty inner" : "scalar inner", ok_text);
            json_object_put(a);
            a = bx_batch_parse(deep_text, strlen(deep_text), &lim, &err);
            ok(!a && err == BX_BATCH_TOO_DEEP, "depth one over (%s, %s): %s",
               wrap ? "array" : "object", empty ? "empty inner" : "scalar inner", deep_text);
            free(ok_text);
            free(deep_text);
        }
    }
    /* A very deep body is refused without recursion trouble. */
    bx_limits_init(&lim);
    bx_buf_t b;
    bx_buf_init(&b);
    for (int i = 0; i < 100000; i++)
        bx_buf_putc(&b, '[');
    a = bx_batch_parse(b.data, b.len, &lim, &err);
    ok(!a && err == BX_BATCH_TOO_DEEP, "100000 open brackets: too deep");
    bx_buf_free(&b);

    /* Object keys and strings with NUL escapes stay usable. */
    a = bx_batch_parse(S("{\"channel\":\"/a\\u0000b\",\"id\":\"1\"}"), &lim, &err);
    ok(a != NULL, "NUL escape in a channel parses");
    json_object *m = a ? json_object_array_get_idx(a, 0) : NULL;
    ok(bx_message_str(m, "channel") == NULL, "a string with a NUL is no identifier");
    json_object_put(a);
    a = bx_batch_parse(S("{\"clientId\":\"abc\\u0000zz\",\"id\":\"x\\u0000\"}"), &lim,
                       &err);
    m = a ? json_object_array_get_idx(a, 0) : NULL;
    ok(bx_message_str(m, "clientId") == NULL, "clientId \"<id>\\u0000zz\" is refused");
    char id[BX_ID_MAX + 1];
    is_int(bx_message_id(m, id, sizeof id), -1, "id with a NUL is refused");
    json_object_put(a);
    a = bx_batch_parse(S("{\"clientId\":\"abc\"}"), &lim, &err);
    m = a ? json_object_array_get_idx(a, 0) : NULL;
    is_str(bx_message_str(m, "clientId"), "abc", "a plain clientId is read");
    json_object_put(a);
}

/* Every number comes back out as it went in: json-c alone clamps integers
 * beyond 64 bits and turns -0 into 0. */
static const char *const exact_numbers[] = {
    "123456789012345678901234567890", "-123456789012345678901234567890",
    "18446744073709551615", "18446744073709551616", "-9223372036854775808",
    "-9223372036854775809", "9223372036854775807", "9223372036854775808",
    "-0", "0", "-0.0", "0.1", "1e400", "-1e-400", "1E+2", "-0.5e+3",
    "3.14159265358979323846264338327950288", "100000000000000000000000000000.5",
    "42", "-1",
};

static void test_exact_numbers(void)
{
    bx_limits_t lim;
    bx_limits_init(&lim);
    for (size_t i = 0; i < sizeof exact_numbers / sizeof exact_numbers[0]; i++) {
        const char *n = exact_numbers[i];
        char text[512], want[512];
        /* In an array, in an object, twice, and in a duplicated key. */
        snprintf(text, sizeof text,
                 "[{\"data\":{\"a\":[%s,{\"b\":%s}],\"c\":7,\"c\":%s},\"x\":%s}]",
                 n, n, n, n);
        snprintf(want, sizeof want,
                 "[{\"data\":{\"a\":[%s,{\"b\":%s}],\"c\":%s},\"x\":%s}]", n, n, n, n);
        bx_batch_err_t err;
        json_object *a = bx_batch_parse(text, strlen(text), &lim, &err);
        ok(a != NULL, "%s parses", n);
        is_str(a ? json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN) : "", want,
               "%s is written back as it came", n);
        json_object_put(a);
    }
    bx_batch_err_t err;
    json_object *a = bx_batch_parse(S("[{\"a\":99999999999999999999999}]"), &lim, &err);
    json_object *v = a ? json_object_object_get(json_object_array_get_idx(a, 0), "a") : NULL;
    ok(json_object_is_type(v, json_type_double), "a big integer is no json-c integer");
    ok(v && json_object_get_double(v) > 9.9e22 && json_object_get_double(v) < 1.1e23,
       "its value is the nearest double");
    json_object_put(a);
    a = bx_batch_parse(S("[{\"a\":0.0e-0000000001}]"), &lim, &err);
    ok(!a && err == BX_BATCH_BAD_NUMBER, "a number spelled like a stand-in is refused");
    a = bx_batch_parse(S("[{\"a\":\"0.0e-0000000000\",\"b\":-0}]"), &lim, &err);
    is_str(a ? json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN) : "",
           "[{\"a\":\"0.0e-0000000000\",\"b\":-0}]", "a string like a stand-in is data");
    json_object_put(a);
}

static void test_errors(void)
{
    const bx_batch_err_t all[] = {
        BX_BATCH_TOO_LARGE, BX_BATCH_BAD_UTF8, BX_BATCH_BAD_JSON, BX_BATCH_TOO_DEEP,
        BX_BATCH_NOT_MESSAGES, BX_BATCH_EMPTY, BX_BATCH_TOO_MANY, BX_BATCH_BAD_NUMBER
    };
    is_int(bx_batch_http_status(BX_BATCH_OK), 200, "ok is 200");
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        is_int(bx_batch_http_status(all[i]), all[i] == BX_BATCH_TOO_LARGE ? 413 : 400,
               "status of %s", bx_batch_strerror(all[i]));
        ok(strlen(bx_batch_strerror(all[i])) > 3, "strerror %d", (int)all[i]);
    }
    is_str(bx_batch_strerror(BX_BATCH_BAD_JSON), "malformed JSON", "malformed JSON text");
}

static const struct {
    const char *json;   /* a message object */
    int rc;
    const char *want;
} id_cases[] = {
    { "{}", 0, "" },
    { "{\"id\":null}", 0, "" },
    { "{\"id\":\"1\"}", 0, "1" },
    { "{\"id\":\"abcXYZ09\"}", 0, "abcXYZ09" },
    { "{\"id\":42}", 0, "42" },
    { "{\"id\":0}", 0, "0" },
    { "{\"id\":18446744073709551615}", 0, "18446744073709551615" },
    { "{\"id\":-1}", -1, "" },
    { "{\"id\":\"\"}", -1, "" },
    { "{\"id\":\"a-b\"}", -1, "" },
    { "{\"id\":\"a b\"}", -1, "" },
    { "{\"id\":\"\\u0000\"}", -1, "" },
    { "{\"id\":\"a\\u0000b\"}", -1, "" },
    { "{\"id\":\"\xc3\xa9\"}", -1, "" },
    { "{\"id\":1.5}", -1, "" },
    { "{\"id\":true}", -1, "" },
    { "{\"id\":{}}", -1, "" },
    { "{\"id\":[]}", -1, "" },
    { "{\"id\":\"1234567890123456789012345678901234567890123456789012345678901234\"}",
      0, "1234567890123456789012345678901234567890123456789012345678901234" },
    { "{\"id\":\"12345678901234567890123456789012345678901234567890123456789012345\"}",
      -1, "" },
};

static void test_message_id(void)
{
    for (size_t i = 0; i < sizeof id_cases / sizeof id_cases[0]; i++) {
        json_object *m = json_tokener_parse(id_cases[i].json);
        char out[BX_ID_MAX + 1];
        memset(out, 'Z', sizeof out);
        int rc = bx_message_id(m, out, sizeof out);
        is_int(rc, id_cases[i].rc, "id %s rc", id_cases[i].json);
        if (rc == 0)
            is_str(out, id_cases[i].want, "id %s value", id_cases[i].json);
        json_object_put(m);
    }
    json_object *m = json_tokener_parse("{\"channel\":\"/a\",\"n\":1}");
    is_str(bx_message_str(m, "channel"), "/a", "message_str present");
    is_str(bx_message_str(m, "n"), NULL, "message_str not a string");
    is_str(bx_message_str(m, "x"), NULL, "message_str absent");
    is_str(bx_message_str(NULL, "x"), NULL, "message_str NULL message");
    json_object_put(m);
}

static const struct {
    const char *s;
    int want;
} jsonp_cases[] = {
    { "alert(1)//", 0 },
    { "a.b.c", 1 },
    { "_cometd_jsonp_2", 1 },
    { "__jsonp1__", 1 },
    { "$", 1 },
    { "jQuery_123.cb$", 1 },
    { "a..b", 0 },
    { ".a", 0 },
    { "a.", 0 },
    { "1abc", 0 },
    { "a.1b", 0 },
    { "", 0 },
    { "a b", 0 },
    { "a-b", 0 },
    { "a;b", 0 },
    { "a\nb", 0 },
    { "\xc3\xa9", 0 },
    { "a[0]", 0 },
    { "x\"", 0 },
};

static void test_jsonp(void)
{
    for (size_t i = 0; i < sizeof jsonp_cases / sizeof jsonp_cases[0]; i++) {
        char shown[80];   /* the name with control characters made visible */
        snprintf(shown, sizeof shown, "%s", jsonp_cases[i].s);
        for (char *p = shown; *p; p++)
            if ((unsigned char)*p < 0x20)
                *p = '?';
        is_int(bx_jsonp_callback_valid(jsonp_cases[i].s, strlen(jsonp_cases[i].s)),
               jsonp_cases[i].want, "jsonp callback '%s'", shown);
    }
    char name[66];
    memset(name, 'a', sizeof name);
    is_int(bx_jsonp_callback_valid(name, 64), 1, "64-character callback");
    is_int(bx_jsonp_callback_valid(name, 65), 0, "65-character callback");
    is_int(bx_jsonp_callback_valid("ab\0cd", 5), 0, "embedded NUL");
    is_int(bx_jsonp_callback_valid(NULL, 0), 0, "NULL callback");
}

int main(void)
{
    test_batch_table();
    test_limits();
    test_errors();
    test_exact_numbers();
    test_message_id();
    test_jsonp();
    done_testing();
    return exit_status();
}
