/* Driver for tests/reference/gguf_dequant.sh: loft's side of the bit-exact comparison with
 * tools/reference/gguf_ref.py.
 *
 *   gguf_driver blocks TYPE IN OUT.f32
 *       IN holds whole blocks of ggml type TYPE (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K);
 *       writes their dequantized values as little-endian f32.
 *   gguf_driver gguf IN.gguf OUT.f32
 *       opens IN.gguf with loft's validated reader and writes every tensor, in file order,
 *       dequantized row by row, concatenated. Prints one line per tensor: name type ne0 rows.
 * Exit status: 0 ok, 1 refused (message on stderr), 2 usage.
 */
#include "core/core.h"
#include "io/io.h"
#include "quant/gguf_blocks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(lt_status st) {
    fprintf(stderr, "gguf_driver: %s\n", lt_status_msg(st));
    lt_status_free(st);
    return 1;
}

static int cmd_blocks(const char *type_name, const char *in, const char *out) {
    uint32_t type = LT_GGML_TYPE_END;
    for (uint32_t t = 0; t < LT_GGML_TYPE_END; t++) {
        const lt_ggml_type_info *ti = lt_ggml_type_get(t);
        if (ti && !strcmp(ti->name, type_name)) type = t;
    }
    const lt_ggml_type_info *ti = lt_ggml_type_get(type);
    if (!ti || !lt_gguf_can_dequant(type)) {
        fprintf(stderr, "gguf_driver: type %s is not one loft dequantizes\n", type_name);
        return 2;
    }
    char *buf;
    int64_t len;
    lt_status st = lt_read_file(in, (int64_t)1 << 30, &buf, &len);
    if (st) return fail(st);
    if (len % ti->bytes != 0) {
        fprintf(stderr, "gguf_driver: %s: %lld bytes is not a whole number of %lld-byte %s blocks\n", in,
                (long long)len, (long long)ti->bytes, ti->name);
        free(buf);
        return 1;
    }
    int64_t n = len / ti->bytes * ti->block;
    float *y = malloc((size_t)(n ? n : 1) * sizeof *y);
    if (!y) {
        free(buf);
        return 1;
    }
    lt_gguf_dequant(type, buf, y, n);
    st = lt_write_file_atomic(out, y, n * (int64_t)sizeof *y);
    free(buf);
    free(y);
    return st ? fail(st) : 0;
}

static int cmd_gguf(const char *in, const char *out) {
    lt_gguf_file *g;
    lt_status st = lt_gguf_open(in, &g);
    if (st) return fail(st);
    FILE *fo = fopen(out, "wb");
    if (!fo) {
        lt_gguf_close(g);
        fprintf(stderr, "gguf_driver: cannot write %s\n", out);
        return 1;
    }
    int rc = 0;
    for (int64_t i = 0; i < lt_gguf_tensor_count(g) && rc == 0; i++) {
        const lt_gguf_tensor *t = lt_gguf_tensor_at(g, i);
        int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
        printf("%s %s %lld %lld\n", t->name, lt_ggml_type_get(t->type)->name, (long long)t->ne[0], (long long)rows);
        float *row = malloc((size_t)t->ne[0] * sizeof *row);
        for (int64_t r = 0; r < rows && rc == 0; r++) {
            if ((st = lt_gguf_dequant_rows(t, r, 1, row)))
                rc = fail(st);
            else if (fwrite(row, sizeof *row, (size_t)t->ne[0], fo) != (size_t)t->ne[0])
                rc = 1;
        }
        free(row);
    }
    if (fclose(fo) != 0) rc = 1;
    lt_gguf_close(g);
    return rc;
}

int main(int argc, char **argv) {
    if (argc == 5 && !strcmp(argv[1], "blocks")) return cmd_blocks(argv[2], argv[3], argv[4]);
    if (argc == 4 && !strcmp(argv[1], "gguf")) return cmd_gguf(argv[2], argv[3]);
    fprintf(stderr, "usage: gguf_driver blocks TYPE IN OUT.f32 | gguf_driver gguf IN.gguf OUT.f32\n");
    return 2;
}
