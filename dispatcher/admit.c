/* admit.c - who may handshake (docs/security.md, "Handshakes"): a limit per
 * request and a rate per client address, so that neither one request nor
 * one client takes the whole max-sessions-per-address of everyone behind
 * the same address (a NAT, a proxy). */
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"

/* The handshake bucket of one client address. */
typedef struct {
    bx_bucket_t b;
    char addr[48];      /* its key in e->hs_buckets */
} s_hsb_t;

int bx_admit_handshake(bx_engine_t *e, const char *addr, int64_t now)
{
    if (e->cfg.handshake_rate <= 0 || !*addr)
        return 1;
    /* The key is what the bucket keeps: an address cut to its size, the
     * same for the lookup as for the insertion (as bx_state_address cuts
     * the session's). */
    size_t alen = strnlen(addr, sizeof ((s_hsb_t *)0)->addr - 1);
    if (!e->hs_buckets)
        e->hs_buckets = bx_map_new();
    s_hsb_t *h = bx_map_get(e->hs_buckets, addr, alen);
    if (!h) {
        h = bx_calloc(1, sizeof *h);
        memcpy(h->addr, addr, alen);
        h->addr[alen] = '\0';
        bx_map_put(e->hs_buckets, h->addr, alen, h);
    }
    return bx_bucket_take(&h->b, (double)e->cfg.handshake_rate,
                          (double)e->cfg.handshake_burst, now);
}

void bx_admit_sweep(bx_engine_t *e, int64_t now)
{
    if (!e->hs_buckets)
        return;
    /* A full bucket is what an unknown address gets: forget it, so the map
     * holds only addresses that handshook lately. */
    s_hsb_t **full = NULL, *h;
    size_t nfull = 0, cap = 0, pos = 0;
    while ((h = bx_map_next(e->hs_buckets, &pos, NULL, NULL)) != NULL) {
        if (!bx_bucket_full(&h->b, (double)e->cfg.handshake_rate,
                            (double)e->cfg.handshake_burst, now))
            continue;
        if (nfull == cap) {
            cap = cap ? cap * 2 : 16;
            full = bx_realloc(full, cap * sizeof *full);
        }
        full[nfull++] = h;
    }
    for (size_t i = 0; i < nfull; i++) {
        bx_map_del(e->hs_buckets, full[i]->addr, strlen(full[i]->addr));
        free(full[i]);
    }
    free(full);
}

size_t bx_admit_addresses(const bx_engine_t *e)
{
    return e->hs_buckets ? bx_map_count(e->hs_buckets) : 0;
}

void bx_admit_free(bx_engine_t *e)
{
    if (!e->hs_buckets)
        return;
    size_t pos = 0;
    s_hsb_t *h;
    while ((h = bx_map_next(e->hs_buckets, &pos, NULL, NULL)) != NULL)
        free(h);
    bx_map_destroy(&e->hs_buckets);
}
