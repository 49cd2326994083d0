/* bench_train_step MODEL_DIR [T=512] [r=16] [reps=3] [format=nf4]: one LoRA training step (forward +
 * backward, gradients of every adapter tensor, no optimizer) of one row of T tokens on the CPU backend,
 * every Linear adapted (r, alpha 2r), base quantized (format, or "f32"), activation checkpointing off and
 * on. Prints the median step time, tokens/s, the pool's high-water mark (whole: weights + adapter +
 * activations; and the step's own), and the FLOP roofline: with N the matmul parameters the step reads
 * (every Linear + lm_head), forward 2N, backward input gradients 2N (the base gets no weight gradient) and
 * a recomputed forward 2N with checkpointing: 4N / 6N FLOPs per token (+ attention 4·L·T·d per token per
 * pass, + the LoRA products), against the measured sgemm peak of this machine (OpenBLAS, all threads). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/model.h"
#include "train/lora.h"
#include "train/step.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* sgemm GFLOP/s: best of 3 runs of a 1536^3 product (all OpenBLAS threads). */
static double sgemm_peak(void) {
    const int n = 1536;
    float *a = malloc((size_t)n * n * sizeof(float)), *b = malloc((size_t)n * n * sizeof(float)),
          *c = malloc((size_t)n * n * sizeof(float));
    for (int64_t i = 0; i < (int64_t)n * n; i++) a[i] = (float)(i % 17) * 0.01f, b[i] = (float)(i % 13) * 0.01f;
    double best = 1e30;
    for (int k = 0; k < 4; k++) {
        const double t0 = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        const double dt = now_s() - t0;
        if (k > 0 && dt < best) best = dt; /* the first call warms the threads */
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * n * (double)n * n / best / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_train_step MODEL_DIR [T=512] [r=16] [reps=3] [format=nf4|...|f32]\n");
        return 2;
    }
    const int64_t T = argc > 2 ? atoll(argv[2]) : 512;
    const int r = argc > 3 ? atoi(argv[3]) : 16, reps = argc > 4 ? atoi(argv[4]) : 3;
    const char *fmt = argc > 5 ? argv[5] : "nf4";
    lt_load_opts lo = {0};
    if (strcmp(fmt, "f32")) {
        lo.quantize = true;
        if (!lt_qformat_from_name(fmt, &lo.format)) {
            fprintf(stderr, "bench_train_step: unknown format %s\n", fmt);
            return 2;
        }
    }
    lt_pool *pool;
    lt_model *m;
    lt_status st = lt_pool_create((int64_t)64 << 30, &pool);
    if (!st) st = lt_model_load_opts(argv[1], pool, lt_backend_cpu(), &lo, &m);
    if (st) {
        fprintf(stderr, "bench_train_step: %s\n", lt_status_msg(st));
        return 1;
    }
    const lt_model_config *c = lt_model_get_config(m);
    lt_lora_cfg lc = {.targets = LT_LORA_ALL_LINEAR, .r = r, .alpha = 2.0 * r, .seed = 1};
    lt_lora *a;
    st = lt_lora_create(c, &lc, pool, &a);
    if (st) {
        fprintf(stderr, "bench_train_step: %s\n", lt_status_msg(st));
        return 1;
    }
    int32_t *ids = malloc((size_t)T * sizeof(int32_t)), *tgt = malloc((size_t)T * sizeof(int32_t)),
            *pos = malloc((size_t)T * sizeof(int32_t));
    uint64_t s = 12345;
    for (int64_t t = 0; t < T; t++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        ids[t] = (int32_t)((s >> 33) % (uint64_t)c->vocab_size);
    }
    lt_train_targets_from_hf(T, ids, NULL, tgt, pos); /* every next token scored (pretraining-style) */
    lt_train_batch b = {.T = T, .ids = ids, .targets = tgt, .pos = pos};

    const int64_t H = c->hidden_size, FF = c->intermediate_size, L = c->n_layers, V = c->vocab_size;
    const int64_t qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    const double N = (double)L * (double)(H * qd + 2 * H * kvd + qd * H + 3 * H * FF) + (double)V * H;
    const double n_lora = (double)lt_lora_n_params(a);
    /* attention per token per pass: QK^T and PV over on average T/2 keys, 2 flops each: 2 * 2 * qd * T/2 */
    const double att = (double)L * 2.0 * qd * (double)T;
    const double peak = sgemm_peak();
    printf("model %s: N = %.1f M matmul parameters (%lld layers, hidden %lld, vocab %lld), base %s, LoRA r %d on "
           "every Linear (%.2f M parameters), T = %lld, %d threads; sgemm peak %.1f GFLOP/s\n",
           argv[1], N / 1e6, (long long)L, (long long)H, (long long)V, fmt, r, n_lora / 1e6, (long long)T,
           lt_threads_get(), peak);
    printf("| checkpointing | step s (median of %d) | tokens/s | FLOP/token (model) | roofline tokens/s | of roofline | "
           "pool high-water | of which the step |\n|---|---|---|---|---|---|---|---|\n",
           reps);
    for (int ck = 0; ck < 2; ck++) {
        double times[16];
        int64_t hw = 0, step_hw = 0;
        const lt_step_times p0 = lt_train_step_times();
        for (int k = 0; k < reps && k < 16; k++) {
            lt_lora_zero_grad(a);
            const int64_t before = lt_pool_get_stats(pool).used;
            lt_pool_reset_high_water(pool);
            double sum;
            int64_t n;
            const double t0 = now_s();
            st = lt_train_step_grads(m, a, &b, (double)(T - 1), ck == 1, &sum, &n);
            times[k] = now_s() - t0;
            if (st) {
                fprintf(stderr, "bench_train_step: %s\n", lt_status_msg(st));
                return 1;
            }
            hw = lt_pool_get_stats(pool).high_water;
            step_hw = hw - before;
        }
        const lt_step_times p1 = lt_train_step_times();
        const double tf = (p1.forward - p0.forward) / reps, tc = (p1.ce - p0.ce) / reps,
                     tb = (p1.backward - p0.backward) / reps;
        fprintf(stderr, "checkpointing %s: per step forward %.3f s, lm_head + CE %.3f s, backward%s %.3f s\n",
                ck ? "on" : "off", tf, tc, ck ? " (with the recomputed forward)" : "", tb);
        qsort(times, (size_t)reps, sizeof(double), cmp_d);
        const double med = times[reps / 2];
        const double passes = ck ? 3.0 : 2.0; /* forward, backward (input grads), + recomputed forward */
        const double flop = passes * 2.0 * N + passes * 2.0 * att + 6.0 * 2.0 * n_lora;
        const double roof = peak * 1e9 / flop;
        printf("| %s | %.3f | %.1f | %.2f G (%gN) | %.1f | %.0f%% | %.1f MB | %.1f MB |\n", ck ? "on" : "off", med,
               (double)T / med, flop / 1e9, passes * 2, roof, 100.0 * ((double)T / med) / roof, hw / 1e6,
               step_hw / 1e6);
        fflush(stdout);
    }
    free(ids);
    free(tgt);
    free(pos);
    lt_lora_free(a);
    lt_model_free(m);
    lt_pool_destroy(pool);
    return 0;
}
