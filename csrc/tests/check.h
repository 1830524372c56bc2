/* The one assertion macro of the C unit tests: count, report file:line, keep going.
 * A test program ends with `return check_summary(argv[0]);` (nonzero on any failure). */
#ifndef MESH_TEST_CHECK_H
#define MESH_TEST_CHECK_H

#include <stdio.h>

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

static inline int check_summary(const char *name) {
    printf("%s: %d checks passed, %d failed\n", name, check_passed, check_failed);
    return check_failed != 0;
}

#endif
