/* bench_gpu_train MODEL_DIR BASE MB [T=2048] [r=16] [steps=6] [warmup=2]: LoRA training on the CUDA
 * backend, the loft side of tools/bench/gpu_train.sh (the race against PyTorch + PEFT).
 *   BASE: nf4 | bf16 (the frozen base as stored on the GPU); MB: rows per optimizer step (micro-batch);
 *   every Linear adapted (r, alpha 2r), activation checkpointing on.
 * One optimizer step = MB rows of T tokens each through lt_train_step_grads on the GPU copies of the
 * model and the adapter, the gradients pulled to the host, AdamW on the host masters (the fused GPU
 * AdamW is parity-tested in tests/gpu but not yet wired here), the compute copies pushed back.
 * Prints one JSON line: tokens/s (median over the timed steps), the device pool's high-water mark (what
 * loft asked for: weights, adapter, activations, workspaces), the measured bf16 GEMM peak (cuBLASLt,
 * 8192^3) and the MFU on the 6N-per-token basis, N = the model's parameters. Then the decode roofline
 * part: one token's quantized GEMVs through every Linear and the lm_head (the weight streaming that
 * bounds batch-1 decode) against the measured device-to-device copy bandwidth. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cuda/cuda.h"
#include "model/model.h"
#include "train/lora.h"
#include "train/step.h"

#ifndef LOFT_WITH_CUDA
int main(void) {
    fprintf(stderr, "bench_gpu_train: this loft was built without the CUDA backend (nvcc was not found)\n");
    return 1;
}
#else
#include "lt_cuda.cuh"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int die(const char *what, lt_status st) {
    fprintf(stderr, "bench_gpu_train: %s: %s\n", what, st ? lt_status_msg(st) : "failed");
    return 1;
}

/* cuBLASLt bf16 GEMM TFLOP/s (best of 10 after 3 warm-ups) and device copy GB/s (read + write). */
static void peaks(lt_pool *dp, double *tflops, double *gbs) {
    const int64_t n = 8192;
    void *a = NULL, *b = NULL, *c = NULL, *ws = NULL;
    lt_cuda_blas *bl = NULL;
    *tflops = *gbs = 0;
    if (lt_pool_alloc(dp, LT_POOL_SCRATCH, n * n * 2, "peak a", &a) || lt_pool_alloc(dp, LT_POOL_SCRATCH, n * n * 2, "peak b", &b) ||
        lt_pool_alloc(dp, LT_POOL_SCRATCH, n * n * 4, "peak c", &c) || lt_pool_alloc(dp, LT_POOL_SCRATCH, 32 << 20, "ws", &ws))
        return;
    if (lt_cuda_blas_create(NULL, ws, 32 << 20, 1, &bl)) return;
    double best = 1e30;
    for (int k = 0; k < 13; k++) {
        const double t0 = now_s();
        lt_cuda_gemm(bl, 0, 1, n, n, n, a, n, b, n, c, n, 0.0f);
        lt_cuda_sync(NULL);
        if (k >= 3 && now_s() - t0 < best) best = now_s() - t0;
    }
    *tflops = 2.0 * n * n * (double)n / best / 1e12;
    best = 1e30;
    for (int k = 0; k < 8; k++) {
        const double t0 = now_s();
        lt_cuda_memcpy_d2d(c, a, (size_t)(n * n * 2), NULL);
        lt_cuda_sync(NULL);
        if (k >= 2 && now_s() - t0 < best) best = now_s() - t0;
    }
    *gbs = 2.0 * (double)(n * n * 2) / best / 1e9;
    lt_cuda_blas_destroy(bl);
    lt_pool_free(dp, a);
    lt_pool_free(dp, b);
    lt_pool_free(dp, c);
    lt_pool_free(dp, ws);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: bench_gpu_train MODEL_DIR nf4|bf16 MB [T=2048] [r=16] [steps=6] [warmup=2]\n");
        return 2;
    }
    const char *base = argv[2];
    const int mb = atoi(argv[3]);
    const int64_t T = argc > 4 ? atoll(argv[4]) : 2048;
    const int r = argc > 5 ? atoi(argv[5]) : 16, steps = argc > 6 ? atoi(argv[6]) : 6, warm = argc > 7 ? atoi(argv[7]) : 2;
    lt_load_opts lo = {0};
    if (!strcmp(base, "nf4")) {
        lo.quantize = true;
        lo.format = LT_Q_NF4;
    } else if (!strcmp(base, "bf16")) {
        lo.quantize = true;
        lo.format = LT_Q_BF16;
    } else {
        fprintf(stderr, "bench_gpu_train: base %s: expected nf4 or bf16\n", base);
        return 2;
    }
    if (mb < 1 || T < 2 || r < 1 || steps < 1 || warm < 0) return die("arguments", NULL);
    lt_pool *hp, *dp;
    lt_status st = lt_pool_create((int64_t)200 << 30, &hp);
    if (!st) st = lt_pool_create((int64_t)200 << 30, &dp);
    lt_cuda_opts co = {0, true, 0};
    if (!st) st = lt_cuda_init(dp, &co);
    if (st) return die("CUDA", st);
    double tflops, gbs;
    peaks(dp, &tflops, &gbs);
    lt_model *hm = NULL, *m = NULL;
    st = lt_model_load_opts(argv[1], hp, lt_backend_cpu(), &lo, &hm);
    if (!st) st = lt_model_copy(hm, dp, lt_backend_cuda(), &m);
    if (st) return die("model", st);
    const lt_model_config *c = lt_model_get_config(hm);
    lt_lora_cfg lc = {.targets = LT_LORA_ALL_LINEAR, .r = r, .alpha = 2.0 * r, .seed = 1};
    lt_lora *a = NULL, *mir = NULL;
    st = lt_lora_create(c, &lc, hp, &a);
    if (!st) st = lt_lora_mirror_create(a, dp, &mir);
    if (st) return die("adapter", st);
    const lt_backend *be = lt_backend_cuda();
    lt_lora_mirror_push(a, mir, be);
    /* MB rows of random tokens, every next token scored */
    int32_t *ids = malloc((size_t)(mb * T) * sizeof(int32_t)), *tgt = malloc((size_t)(mb * T) * sizeof(int32_t)),
            *pos = malloc((size_t)T * sizeof(int32_t));
    uint32_t s = 7;
    for (int64_t i = 0; i < mb * T; i++) {
        s = s * 1664525u + 1013904223u;
        ids[i] = (int32_t)((s >> 8) % (uint32_t)c->vocab_size);
    }
    for (int64_t i = 0; i < mb * T; i++) tgt[i] = (i + 1) % T == 0 ? -100 : ids[i + 1];
    for (int64_t t = 0; t < T; t++) pos[t] = (int32_t)t;
    lt_pool_reset_high_water(dp);
    const lt_adamw_cfg oc = {1e-4, 0.9, 0.999, 1e-8, 0.0};
    double *dt = malloc((size_t)steps * sizeof(double)), loss = 0;
    for (int k = 0; k < warm + steps; k++) {
        const double t0 = now_s();
        lt_lora_mirror_zero_grad(mir, be);
        int64_t n_all = 0;
        double sum = 0;
        for (int row = 0; row < mb && !st; row++) {
            lt_train_batch b = {.T = T, .ids = ids + row * T, .targets = tgt + row * T, .pos = pos};
            double sc;
            int64_t n;
            st = lt_train_step_grads(m, mir, &b, (double)(mb * (T - 1)), true, &sc, &n);
            sum += sc;
            n_all += n;
        }
        if (!st) st = lt_cuda_check("training step");
        lt_lora_mirror_pull_grads(mir, a, be);
        double gn = 0;
        if (!st) st = lt_lora_optimizer_step(a, &oc, oc.lr, k + 1, 1.0, &gn);
        lt_lora_mirror_push(a, mir, be);
        if (!st) st = lt_cuda_check("optimizer step");
        if (st) return die("step", st);
        loss = sum / (double)n_all;
        if (k >= warm) dt[k - warm] = now_s() - t0;
        fprintf(stderr, "step %d: loss %.4f, %.3f s\n", k + 1, loss, now_s() - t0);
    }
    qsort(dt, (size_t)steps, sizeof *dt, cmp_d);
    const double step_s = dt[steps / 2], tok_s = (double)(mb * T) / step_s;
    /* N: every parameter of the model (embedding, Linears, norms, lm_head unless tied) */
    const double N = (double)lt_model_n_params(hm);
    const double mfu = tflops > 0 ? tok_s * 6.0 * N / (tflops * 1e12) : 0;
    const lt_pool_stats ps = lt_pool_get_stats(dp);
    /* decode roofline: every quantized Linear's GEMV for one token, bytes = the packed weights read */
    lt_model_free(hm);
    double dec_s = 0, dec_bytes = 0;
    {
        float *x = NULL, *y = NULL;
        const int64_t big = c->intermediate_size > c->vocab_size ? c->intermediate_size : c->vocab_size;
        if (!lt_pool_alloc(dp, LT_POOL_SCRATCH, big * 4 * 2, "decode x", (void **)&x) &&
            !lt_pool_alloc(dp, LT_POOL_SCRATCH, big * 4 * 2, "decode y", (void **)&y)) {
            double best = 1e30;
            for (int rep = 0; rep < 6; rep++) {
                dec_bytes = 0;
                const double t0 = now_s();
                for (int64_t i = 0; i < lt_model_n_qweights(m); i++) {
                    const lt_qtensor *q = lt_model_qweight(m, i);
                    if (!q) continue;
                    lt_cuda_qt qt = {(int)q->format, q->rows, q->cols, q->comp[0], q->comp[1], q->comp[2], q->comp[3]};
                    lt_qlayout lay;
                    if (lt_qlayout_get(q->format, q->rows, q->cols, &lay)) continue;
                    lt_cuda_qgemv(&qt, x, y, 0.0f, NULL);
                    dec_bytes += (double)lay.total_bytes;
                }
                lt_cuda_sync(NULL);
                if (rep > 0 && now_s() - t0 < best) best = now_s() - t0;
            }
            dec_s = best;
        }
    }
    printf("{\"impl\":\"loft\",\"base\":\"%s\",\"mb\":%d,\"seq\":%lld,\"r\":%d,\"step_s\":%.4f,\"tok_s\":%.1f,"
           "\"peak_bytes\":%lld,\"loss\":%.4f,\"params\":%.0f,\"bf16_gemm_tflops\":%.1f,\"mfu\":%.4f,"
           "\"copy_gbs\":%.1f,\"decode_gemv_s\":%.6f,\"decode_bytes\":%.0f,\"decode_roofline\":%.3f,\"device\":\"%s\"}\n",
           base, mb, (long long)T, r, step_s, tok_s, (long long)ps.high_water, loss, N, tflops, mfu, gbs, dec_s, dec_bytes,
           dec_s > 0 && gbs > 0 ? (dec_bytes / (gbs * 1e9)) / dec_s : 0.0, lt_cuda_describe());
    return 0;
}
#endif
