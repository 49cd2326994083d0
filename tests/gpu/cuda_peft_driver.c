/* cuda_peft_driver MODEL_DIR OUT_DIR [T=128] [r=8]: the loft side of tools/reference/gpu_peft_check.py.
 * Loads MODEL_DIR with a BF16 base (the file's bf16 values, exactly), copies it to the GPU, makes a LoRA
 * (every Linear, r, alpha 2r, PEFT init for A, B set to a fixed nonzero pattern so A gets gradients), and
 * writes to OUT_DIR:
 *   adapter/            the adapter in PEFT format, BF16 (the values loft computes with)
 *   batch.json          {"ids": [...]}: one row of T random ids, every next token scored
 *   loft.json           {"loss": mean CE, "n_scored": ..., "tensors": [{"name", "shape", "offset"}...]}
 *   loft.bin            f32: the logits [T, V], then the gradient of every lora_A / lora_B (PEFT names)
 * computed by the CUDA backend (lt_train_logits and lt_train_step_grads on the GPU copies). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda.h"
#include "model/model.h"
#include "train/lora.h"
#include "train/peft.h"
#include "train/step.h"

static int fail(const char *what, lt_status st) {
    fprintf(stderr, "cuda_peft_driver: %s: %s\n", what, st ? lt_status_msg(st) : "failed");
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: cuda_peft_driver MODEL_DIR OUT_DIR [T=128] [r=8]\n");
        return 2;
    }
    const int64_t T = argc > 3 ? atoll(argv[3]) : 128;
    const int r = argc > 4 ? atoi(argv[4]) : 8;
    const char *out = argv[2];
    lt_pool *hp, *dp;
    lt_status st = lt_pool_create(32LL << 30, &hp);
    if (!st) st = lt_pool_create(64LL << 30, &dp);
    lt_cuda_opts co = {0, true, 0};
    if (!st) st = lt_cuda_init(dp, &co);
    if (st) return fail("CUDA", st);
    lt_model *hm = NULL, *m = NULL;
    st = lt_model_load_opts(argv[1], hp, lt_backend_cpu(), &(lt_load_opts){.quantize = true, .format = LT_Q_BF16}, &hm);
    if (!st) st = lt_model_copy(hm, dp, lt_backend_cuda(), &m);
    if (st) return fail("model", st);
    const lt_model_config *c = lt_model_get_config(hm);
    lt_lora_cfg lc = {.targets = LT_LORA_ALL_LINEAR, .r = r, .alpha = 2.0 * r, .seed = 3};
    lt_lora *a = NULL, *mir = NULL;
    st = lt_lora_create(c, &lc, hp, &a);
    for (int64_t l = 0; !st && l < c->n_layers; l++)
        for (int mo = 0; mo < LT_LORA_N_MODULES; mo++) {
            lt_lora_mod *x = lt_lora_get_mut(a, l, (lt_lora_module)mo);
            for (int64_t i = 0; i < x->out * x->r; i++) x->b[i] = 0.01f * (float)((i * 7 + mo + 3 * l) % 9 - 4);
        }
    if (!st) {
        lt_lora_sync_bf16(a); /* the BF16 copies: what loft computes with and what the export writes */
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/adapter", out);
        st = lt_peft_export(a, c, &(lt_peft_export_opts){.base_model = argv[1], .dtype = LT_DTYPE_BF16}, dir);
    }
    if (!st) st = lt_lora_mirror_create(a, dp, &mir);
    if (st) return fail("adapter", st);
    const lt_backend *be = lt_backend_cuda();
    lt_lora_mirror_push(a, mir, be);
    int32_t *ids = malloc((size_t)T * sizeof *ids), *tgt = malloc((size_t)T * sizeof *tgt), *pos = malloc((size_t)T * sizeof *pos);
    uint32_t s = 11;
    for (int64_t t = 0; t < T; t++) {
        s = s * 1664525u + 1013904223u;
        ids[t] = (int32_t)((s >> 8) % (uint32_t)c->vocab_size);
        pos[t] = (int32_t)t;
    }
    for (int64_t t = 0; t < T; t++) tgt[t] = t + 1 < T ? ids[t + 1] : -100;
    const lt_train_batch b = {.T = T, .ids = ids, .targets = tgt, .pos = pos};
    const int64_t V = c->vocab_size;
    float *logits = malloc((size_t)(T * V) * sizeof(float));
    st = lt_train_logits(m, mir, &b, logits);
    double sum = 0;
    int64_t n = 0;
    lt_lora_mirror_zero_grad(mir, be);
    if (!st) st = lt_train_step_grads(m, mir, &b, (double)(T - 1), true, &sum, &n); /* HF: mean over T-1 */
    if (!st) st = lt_cuda_check("step");
    if (st) return fail("step", st);
    lt_lora_mirror_pull_grads(mir, a, be);
    char path[4300];
    snprintf(path, sizeof path, "%s/batch.json", out);
    FILE *f = fopen(path, "w");
    if (!f) return fail(path, NULL);
    fprintf(f, "{\"ids\": [");
    for (int64_t t = 0; t < T; t++) fprintf(f, "%s%d", t ? ", " : "", ids[t]);
    fprintf(f, "]}\n");
    fclose(f);
    snprintf(path, sizeof path, "%s/loft.bin", out);
    FILE *bin = fopen(path, "wb");
    snprintf(path, sizeof path, "%s/loft.json", out);
    FILE *js = fopen(path, "w");
    if (!bin || !js) return fail("output files", NULL);
    fwrite(logits, sizeof(float), (size_t)(T * V), bin);
    int64_t off = T * V * (int64_t)sizeof(float);
    fprintf(js, "{\"loss\": %.9g, \"n_scored\": %lld, \"T\": %lld, \"vocab\": %lld, \"tensors\": [", sum / (double)n,
            (long long)n, (long long)T, (long long)V);
    int first = 1;
    for (int64_t l = 0; l < c->n_layers; l++)
        for (int mo = 0; mo < LT_LORA_N_MODULES; mo++) {
            const lt_lora_mod *x = lt_lora_get(a, l, (lt_lora_module)mo);
            const char *parent = mo <= LT_LORA_O ? "self_attn" : "mlp";
            for (int ab = 0; ab < 2; ab++) {
                const int64_t rows = ab ? x->out : x->r, cols = ab ? x->r : x->in;
                fprintf(js, "%s\n  {\"name\": \"base_model.model.model.layers.%lld.%s.%s.lora_%c.weight\", "
                            "\"shape\": [%lld, %lld], \"offset\": %lld}",
                        first ? "" : ",", (long long)l, parent, lt_lora_module_name((lt_lora_module)mo), ab ? 'B' : 'A',
                        (long long)rows, (long long)cols, (long long)off);
                first = 0;
                fwrite(ab ? x->gb : x->ga, sizeof(float), (size_t)(rows * cols), bin);
                off += rows * cols * (int64_t)sizeof(float);
            }
        }
    fprintf(js, "\n]}\n");
    fclose(js);
    fclose(bin);
    printf("cuda_peft_driver: loss %.6f over %lld tokens; wrote %s\n", sum / (double)n, (long long)n, out);
    lt_lora_free(mir);
    lt_lora_free(a);
    lt_model_free(m);
    lt_model_free(hm);
    lt_cuda_shutdown();
    free(ids);
    free(tgt);
    free(pos);
    free(logits);
    return 0;
}
