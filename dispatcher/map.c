/* map.c - see map.h. */
#include "map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct {
    uint64_t hash;      /* 0 marks an empty slot (real hashes are forced odd) */
    char *key;          /* owned copy */
    size_t klen;
    void *value;
} s_slot_t;

struct bx_map {
    s_slot_t *slots;    /* cap entries, cap a power of two */
    size_t cap;
    size_t count;
    size_t keybytes;    /* sum of key copy sizes, for bx_map_memory */
    unsigned char sipkey[16];
};

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                            \
    do {                                                                    \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);           \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                              \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                              \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);           \
    } while (0)

static uint64_t s_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

unsigned long long bx_siphash(const unsigned char key[16], const void *data, size_t len)
{
    const unsigned char *in = data;
    uint64_t k0 = s_le64(key), k1 = s_le64(key + 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
    uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
    uint64_t v3 = 0x7465646279746573ULL ^ k1;
    uint64_t b = ((uint64_t)len) << 56;
    size_t left = len & 7;
    const unsigned char *end = in + len - left;

    for (; in != end; in += 8) {
        uint64_t m = s_le64(in);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t i = 0; i < left; i++)
        b |= ((uint64_t)in[i]) << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static uint64_t s_hash(const bx_map_t *m, const void *key, size_t klen)
{
    return bx_siphash(m->sipkey, key, klen) | 1;
}

bx_map_t *bx_map_new(void)
{
    bx_map_t *m = bx_calloc(1, sizeof *m);
    m->cap = 16;
    m->slots = bx_calloc(m->cap, sizeof *m->slots);
    if (bx_random_bytes(m->sipkey, sizeof m->sipkey) != 0) {
        /* getrandom cannot fail on a running Linux; a fixed key would only
         * weaken flooding resistance, never correctness. */
        memset(m->sipkey, 0x5a, sizeof m->sipkey);
    }
    return m;
}

void bx_map_destroy(bx_map_t **pm)
{
    if (!pm || !*pm)
        return;
    bx_map_t *m = *pm;
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    free(m->slots);
    free(m);
    *pm = NULL;
}

size_t bx_map_count(const bx_map_t *m)
{
    return m->count;
}

/* Index of key's slot, or of the empty slot where it would go. */
static size_t s_find(const bx_map_t *m, uint64_t h, const void *key, size_t klen)
{
    size_t mask = m->cap - 1;
    size_t i = (size_t)h & mask;
    for (;;) {
        const s_slot_t *s = &m->slots[i];
        if (s->hash == 0)
            return i;
        if (s->hash == h && s->klen == klen && memcmp(s->key, key, klen) == 0)
            return i;
        i = (i + 1) & mask;
    }
}

static void s_grow(bx_map_t *m)
{
    s_slot_t *old = m->slots;
    size_t oldcap = m->cap;
    m->cap *= 2;
    m->slots = bx_calloc(m->cap, sizeof *m->slots);
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i].hash == 0)
            continue;
        size_t j = s_find(m, old[i].hash, old[i].key, old[i].klen);
        m->slots[j] = old[i];
    }
    free(old);
}

void *bx_map_get(const bx_map_t *m, const void *key, size_t klen)
{
    size_t i = s_find(m, s_hash(m, key, klen), key, klen);
    return m->slots[i].hash ? m->slots[i].value : NULL;
}

void *bx_map_put(bx_map_t *m, const void *key, size_t klen, void *value)
{
    uint64_t h = s_hash(m, key, klen);
    size_t i = s_find(m, h, key, klen);
    s_slot_t *s = &m->slots[i];
    if (s->hash) {
        void *prev = s->value;
        s->value = value;
        return prev;
    }
    /* Keep the load factor at or under 3/4 so probes stay short. */
    if ((m->count + 1) * 4 > m->cap * 3) {
        s_grow(m);
        i = s_find(m, h, key, klen);
        s = &m->slots[i];
    }
    s->hash = h;
    s->key = bx_malloc(klen + 1);
    memcpy(s->key, key, klen);
    s->key[klen] = '\0';
    s->klen = klen;
    s->value = value;
    m->count++;
    m->keybytes += klen + 1;
    return NULL;
}

void *bx_map_del(bx_map_t *m, const void *key, size_t klen)
{
    size_t mask = m->cap - 1;
    size_t i = s_find(m, s_hash(m, key, klen), key, klen);
    if (m->slots[i].hash == 0)
        return NULL;
    void *value = m->slots[i].value;
    free(m->slots[i].key);
    m->keybytes -= m->slots[i].klen + 1;
    m->count--;
    /* Backward-shift: pull later members of the probe run into the hole so
     * lookups never stop early at it. */
    size_t hole = i;
    size_t j = (i + 1) & mask;
    while (m->slots[j].hash != 0) {
        size_t home = (size_t)m->slots[j].hash & mask;
        /* Move j into the hole if its home is not cyclically in (hole, j]. */
        int between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!between) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
        j = (j + 1) & mask;
    }
    memset(&m->slots[hole], 0, sizeof m->slots[hole]);
    return value;
}

void *bx_map_next(const bx_map_t *m, size_t *pos, const void **key, size_t *klen)
{
    while (*pos < m->cap) {
        const s_slot_t *s = &m->slots[(*pos)++];
        if (s->hash) {
            if (key)
                *key = s->key;
            if (klen)
                *klen = s->klen;
            return s->value;
        }
    }
    return NULL;
}

size_t bx_map_memory(const bx_map_t *m)
{
    return sizeof *m + m->cap * sizeof(s_slot_t) + m->keybytes;
}
