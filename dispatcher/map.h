/* map.h - hash map from byte-string keys to pointers.
 *
 * Open addressing with linear probing and backward-shift deletion (no
 * tombstones). Keys come from the network (channel names, client ids), so
 * the hash is SipHash-2-4 with a random key per map: nobody can aim for
 * collisions. The map copies keys; values are borrowed pointers.
 */
#ifndef BX_MAP_H
#define BX_MAP_H

#include <stddef.h>

typedef struct bx_map bx_map_t;

bx_map_t *bx_map_new(void);
/* Frees the map and its key copies, not the values. Sets *pm to NULL. */
void bx_map_destroy(bx_map_t **pm);

size_t bx_map_count(const bx_map_t *m);

/* Returns the value for key, or NULL. */
void *bx_map_get(const bx_map_t *m, const void *key, size_t klen);

/* Inserts or replaces. Returns the previous value or NULL. */
void *bx_map_put(bx_map_t *m, const void *key, size_t klen, void *value);

/* Removes key. Returns its value, or NULL if it was absent. */
void *bx_map_del(bx_map_t *m, const void *key, size_t klen);

/* Iteration: start with *pos = 0; returns the next value (and its key through
 * key/klen when not NULL) or NULL at the end. The map must not be changed
 * during an iteration: collect what to delete, then delete. */
void *bx_map_next(const bx_map_t *m, size_t *pos, const void **key, size_t *klen);

/* Bytes allocated by the map itself (slots and key copies), for stats. */
size_t bx_map_memory(const bx_map_t *m);

/* SipHash-2-4 of data under a 16-byte key. Exposed for the unit tests. */
unsigned long long bx_siphash(const unsigned char key[16], const void *data, size_t len);

#endif
