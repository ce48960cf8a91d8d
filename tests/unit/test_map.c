/* test_map.c - the hash map against a plain array model, and SipHash against
 * the reference vectors of its authors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "map.h"
#include "tap.h"

#define N 5000

static void t_siphash_vectors(void)
{
    /* SipHash-2-4 paper, appendix A: key 00..0f, message 00..0e (15 bytes). */
    unsigned char key[16], msg[15];
    for (int i = 0; i < 16; i++)
        key[i] = (unsigned char)i;
    for (int i = 0; i < 15; i++)
        msg[i] = (unsigned char)i;
    ok(bx_siphash(key, msg, 15) == 0xa129ca6149be45e5ULL, "siphash-2-4 reference vector");
    ok(bx_siphash(key, msg, 0) == 0x726fdb47dd0e0e31ULL, "siphash-2-4 empty message");
}

static void t_model(void)
{
    bx_map_t *m = bx_map_new();
    static char keys[N][16];
    static int present[N];
    int bad = 0;

    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "/k/%d", i);
        bx_map_put(m, keys[i], strlen(keys[i]), &present[i]);
        present[i] = 1;
    }
    is_int((long long)bx_map_count(m), N, "count after %d inserts", N);
    /* Delete every third key, then check every key against the model. */
    for (int i = 0; i < N; i += 3) {
        if (bx_map_del(m, keys[i], strlen(keys[i])) != &present[i])
            bad++;
        present[i] = 0;
    }
    is_int(bad, 0, "deletes return the stored value");
    bad = 0;
    for (int i = 0; i < N; i++) {
        void *v = bx_map_get(m, keys[i], strlen(keys[i]));
        if ((v != NULL) != present[i] || (v && v != &present[i]))
            bad++;
    }
    is_int(bad, 0, "every lookup agrees with the model after deletes");
    ok(bx_map_del(m, keys[0], strlen(keys[0])) == NULL, "deleting an absent key is NULL");
    ok(bx_map_put(m, keys[1], strlen(keys[1]), NULL) == &present[1], "put returns previous");

    bx_map_put(m, keys[1], strlen(keys[1]), &present[1]);
    size_t pos = 0, seen = 0, kl;
    const void *k;
    void *v;
    bad = 0;
    while ((v = bx_map_next(m, &pos, &k, &kl)) != NULL) {
        seen++;
        if (bx_map_get(m, k, kl) != v)
            bad++;
    }
    is_int(bad, 0, "iteration yields each key with its value");
    is_int((long long)seen, (long long)bx_map_count(m), "iteration visits every entry");
    ok(bx_map_get(m, "/k/", 3) == NULL, "prefix of a key is not a key");
    ok(bx_map_get(m, "/k/10\0x", 7) == NULL, "binary keys compare by length");
    bx_map_put(m, "a\0b", 3, &present[2]);
    ok(bx_map_get(m, "a\0b", 3) == &present[2] && bx_map_get(m, "a", 1) == NULL,
       "keys may hold NUL bytes");
    ok(bx_map_memory(m) > N * 8, "memory is accounted");
    bx_map_destroy(&m);
    ok(m == NULL, "destroy clears the pointer");
    bx_map_destroy(&m);
    ok(1, "destroy tolerates NULL");
}

int main(void)
{
    t_siphash_vectors();
    t_model();
    done_testing();
    return exit_status();
}
