/* Minimal test harness: CHECK records a failure (with file:line and the expression) and goes on;
 * TEST_MAIN returns non-zero when anything failed, so ctest sees it. */
#ifndef LT_TEST_H
#define LT_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int lt_test_failures = 0;
static int lt_test_checks = 0;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        lt_test_checks++;                                                                          \
        if (!(cond)) {                                                                             \
            lt_test_failures++;                                                                    \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                        \
        }                                                                                          \
    } while (0)

#define CHECKF(cond, ...)                                                                          \
    do {                                                                                           \
        lt_test_checks++;                                                                          \
        if (!(cond)) {                                                                             \
            lt_test_failures++;                                                                    \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* An lt_status expected to be OK: prints the message when it is not. */
#define CHECK_OK(expr)                                                                             \
    do {                                                                                           \
        lt_status st_ = (expr);                                                                    \
        lt_test_checks++;                                                                          \
        if (st_) {                                                                                 \
            lt_test_failures++;                                                                    \
            fprintf(stderr, "FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #expr, lt_status_msg(st_)); \
            lt_status_free(st_);                                                                   \
        }                                                                                          \
    } while (0)

/* An lt_status expected to fail with a message containing needle (case-sensitive). */
#define CHECK_ERR(expr, needle)                                                                    \
    do {                                                                                           \
        lt_status st_ = (expr);                                                                    \
        lt_test_checks++;                                                                          \
        if (!st_) {                                                                                \
            lt_test_failures++;                                                                    \
            fprintf(stderr, "FAIL %s:%d: %s succeeded, expected an error with \"%s\"\n", __FILE__,  \
                    __LINE__, #expr, needle);                                                      \
        } else {                                                                                   \
            if (!strstr(lt_status_msg(st_), needle)) {                                             \
                lt_test_failures++;                                                                \
                fprintf(stderr, "FAIL %s:%d: %s: message \"%s\" lacks \"%s\"\n", __FILE__,         \
                        __LINE__, #expr, lt_status_msg(st_), needle);                              \
            }                                                                                      \
            lt_status_free(st_);                                                                   \
        }                                                                                          \
    } while (0)

#define TEST_MAIN_END()                                                                            \
    do {                                                                                           \
        if (lt_test_failures) {                                                                    \
            fprintf(stderr, "%d of %d checks FAILED\n", lt_test_failures, lt_test_checks);         \
            return 1;                                                                              \
        }                                                                                          \
        printf("all %d checks passed\n", lt_test_checks);                                          \
        return 0;                                                                                  \
    } while (0)

/* A scratch directory for this test (LOFT_TEST_TMP, else /tmp), created if missing. */
static inline const char *lt_test_tmpdir(void) {
    const char *d = getenv("LOFT_TEST_TMP");
    if (!d || !*d) d = "/tmp";
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", d);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not create %s\n", d);
    return d;
}

#endif
