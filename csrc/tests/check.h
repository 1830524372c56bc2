/* The one assertion macro of the C unit tests: count, report file:line, keep going.
 * A test program ends with `return check_summary(argv[0]);` (nonzero on any failure).
 * Also `from_hex`, which reads the tests' published vectors. */
#ifndef MESH_TEST_CHECK_H
#define MESH_TEST_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

#define CHECK(condition)                                                                 \
    do {                                                                                 \
        if (condition) {                                                                 \
            check_passed++;                                                              \
        } else {                                                                         \
            check_failed++;                                                              \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #condition); \
        }                                                                                \
    } while (0)

/* The bytes of `hex` into `out`; their count, or 0 if they do not fit in `cap`. */
static inline size_t from_hex(const char *hex, uint8_t *out, size_t cap) {
    size_t n = strlen(hex) / 2;
    if (n > cap) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned int byte = 0;
        if (sscanf(hex + 2 * i, "%2x", &byte) != 1) return 0;
        out[i] = (uint8_t)byte;
    }
    return n;
}

static inline int check_summary(const char *name) {
    printf("%s: %d checks passed, %d failed\n", name, check_passed, check_failed);
    return check_failed != 0;
}

#endif
