/* fuzz.h - what every fuzz target shares: the libFuzzer entry point and a
 * check that aborts (so libFuzzer and the make-check driver both report it)
 * naming the file and line of the broken invariant. */
#ifndef BX_FUZZ_H
#define BX_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,     \
                    #cond);                                                      \
            abort();                                                             \
        }                                                                        \
    } while (0)

#endif
