/* Test driver: loads MODEL_DIR quantized to FORMAT (as `loft logits --quant FORMAT` does) and
 * writes the weights the forward pass then uses, dequantized to f32, as an HF model directory,
 * so the PyTorch reference can run on exactly those weights.
 * usage: quant_export MODEL_DIR FORMAT OUT_DIR */
#include <stdio.h>

#include "model/model.h"

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL_DIR FORMAT OUT_DIR\n", argv[0]);
        return 2;
    }
    lt_load_opts lo = {.quantize = true};
    if (!lt_qformat_from_name(argv[2], &lo.format)) {
        fprintf(stderr, "quant_export: unknown format '%s'\n", argv[2]);
        return 2;
    }
    lt_pool *pool;
    lt_model *m = NULL;
    lt_status st = lt_pool_create(LT_POOL_DEFAULT_BUDGET, &pool);
    if (!st) st = lt_model_load_opts(argv[1], pool, lt_backend_cpu(), &lo, &m);
    if (!st) st = lt_model_save_effective(m, argv[3]);
    if (!st) {
        lt_quant_summary q = lt_model_quant_summary(m);
        printf("quant_export: %s: %lld weights %s, %lld f32 (%lld not block-aligned)\n", argv[1],
               (long long)q.n_quantized, argv[2], (long long)q.n_kept, (long long)q.n_unaligned);
    }
    lt_model_free(m);
    lt_pool_destroy(pool);
    if (st) {
        fprintf(stderr, "quant_export: %s\n", lt_status_msg(st));
        lt_status_free(st);
        return 1;
    }
    return 0;
}
