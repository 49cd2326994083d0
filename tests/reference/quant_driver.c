/* Driver for tests/reference/quant.sh: loft's side of the bit-exact comparison with
 * tools/reference/quant_ref.py.
 *
 *   quant_driver quantize FORMAT ROWS COLS IN.f32 OUTPREFIX
 *       quantizes the raw little-endian f32 [ROWS, COLS] tensor in IN.f32; writes OUTPREFIX.<name>
 *       for each stored component (names from lt_qlayout_get) and OUTPREFIX.deq, the dequantized
 *       tensor, produced in panels of 5 rows (so row ranges that do not start at 0 are exercised).
 *       Exit status 3, with the refusal on stderr, when the format cannot hold the tensor.
 *   quant_driver tables OUTPREFIX
 *       OUTPREFIX.nf4 (16 f32), .dq8 (256 f32), .e2m1 (16 f32): the code tables.
 */
#include "core/core.h"
#include "pool/pool.h"
#include "quant/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int write_file(const char *prefix, const char *suffix, const void *data, int64_t len) {
    char path[4096];
    snprintf(path, sizeof path, "%s.%s", prefix, suffix);
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(data, 1, (size_t)len, f) != (size_t)len) || fclose(f) != 0) {
        fprintf(stderr, "quant_driver: cannot write %s\n", path);
        return 1;
    }
    return 0;
}

static int usage(void) {
    fprintf(stderr, "usage: quant_driver quantize FORMAT ROWS COLS IN.f32 OUTPREFIX\n"
                    "       quant_driver tables OUTPREFIX\n");
    return 1;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "tables") == 0) {
        return write_file(argv[2], "nf4", lt_nf4_code, sizeof lt_nf4_code) |
               write_file(argv[2], "dq8", lt_dq8_code, sizeof lt_dq8_code) |
               write_file(argv[2], "e2m1", lt_e2m1_value, sizeof lt_e2m1_value);
    }
    if (argc != 7 || strcmp(argv[1], "quantize") != 0) return usage();
    lt_qformat fmt;
    if (!lt_qformat_from_name(argv[2], &fmt)) {
        fprintf(stderr, "quant_driver: unknown format %s\n", argv[2]);
        return 1;
    }
    int64_t rows = atoll(argv[3]), cols = atoll(argv[4]);
    const char *out = argv[6];

    char *buf;
    int64_t len;
    lt_status st = lt_read_file(argv[5], INT64_MAX / 2, &buf, &len);
    if (st) {
        fprintf(stderr, "quant_driver: %s\n", lt_status_msg(st));
        return 1;
    }
    if (rows < 1 || cols < 1 || len != rows * cols * 4) {
        fprintf(stderr, "quant_driver: %s holds %lld bytes, expected %lld x %lld f32\n", argv[5], (long long)len,
                (long long)rows, (long long)cols);
        return 1;
    }
    float *x = malloc((size_t)len); /* an aligned copy */
    float *deq = malloc((size_t)len);
    if (!x || !deq) return 1;
    memcpy(x, buf, (size_t)len);
    free(buf);

    lt_pool *pool;
    lt_qtensor q;
    st = lt_pool_create(LT_POOL_DEFAULT_BUDGET, &pool);
    if (!st) st = lt_qtensor_alloc(pool, LT_POOL_WEIGHTS, fmt, rows, cols, "driver", &q);
    if (st) {
        fprintf(stderr, "quant_driver: %s\n", lt_status_msg(st));
        return 1;
    }
    int rc = 0;
    st = lt_quantize(x, "driver", &q);
    if (st) {
        fprintf(stderr, "refused: %s\n", lt_status_msg(st));
        lt_status_free(st);
        rc = 3;
    } else {
        lt_qlayout L;
        st = lt_qlayout_get(fmt, rows, cols, &L);
        LT_ASSERT(!st); /* the same shape was just allocated */
        for (int s = 0; s < LT_QC_COUNT; s++)
            if (L.comp[s].bytes) rc |= write_file(out, L.comp[s].name, q.comp[s], L.comp[s].bytes);
        for (int64_t r = 0; r < rows; r += 5)
            lt_dequantize_rows(&q, r, rows - r < 5 ? rows - r : 5, deq + r * cols);
        rc |= write_file(out, "deq", deq, len);
    }
    lt_qtensor_free(pool, &q);
    lt_pool_destroy(pool);
    free(x);
    free(deq);
    return rc;
}
