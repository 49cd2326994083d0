/* lt_status: heap-allocated error with a code and a message; NULL means success. */
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lt_status_s {
    lt_err_code code;
    char *msg;
};

/* Returned when even the error cannot be allocated; never freed. */
static struct lt_status_s lt_status_oom = {LT_ERR_NOMEM, "out of memory while reporting an error"};

static char *lt_vformat(const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return NULL;
    char *s = malloc((size_t)n + 1);
    if (s) vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

lt_status lt_errorf(lt_err_code code, const char *fmt, ...) {
    struct lt_status_s *st = malloc(sizeof *st);
    if (!st) return &lt_status_oom;
    va_list ap;
    va_start(ap, fmt);
    st->msg = lt_vformat(fmt, ap);
    va_end(ap);
    if (!st->msg) {
        free(st);
        return &lt_status_oom;
    }
    st->code = code == LT_OK ? LT_ERR_INTERNAL : code;
    return st;
}

lt_status lt_status_wrapf(lt_status st, const char *fmt, ...) {
    if (!st || st == &lt_status_oom) return st;
    va_list ap;
    va_start(ap, fmt);
    char *prefix = lt_vformat(fmt, ap);
    va_end(ap);
    if (!prefix) return st;
    size_t n = strlen(prefix) + 2 + strlen(st->msg) + 1;
    char *msg = malloc(n);
    if (msg) {
        snprintf(msg, n, "%s: %s", prefix, st->msg);
        free(st->msg);
        st->msg = msg;
    }
    free(prefix);
    return st;
}

lt_err_code lt_status_code(lt_status st) { return st ? st->code : LT_OK; }

const char *lt_status_msg(lt_status st) { return st ? st->msg : "ok"; }

void lt_status_free(lt_status st) {
    if (!st || st == &lt_status_oom) return;
    free(st->msg);
    free(st);
}

void lt_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "loft: internal error: assertion `%s' failed at %s:%d\n"
                    "This is a bug in loft; please report it with the command that triggered it.\n",
            expr, file, line);
    fflush(stderr);
    abort();
}

bool lt_mul_i64(int64_t a, int64_t b, int64_t *out) { return !__builtin_mul_overflow(a, b, out); }
bool lt_add_i64(int64_t a, int64_t b, int64_t *out) { return !__builtin_add_overflow(a, b, out); }
