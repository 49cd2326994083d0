/* Benchmark (not a test): prefill and decode tokens/s of the CPU forward pass for a model
 * directory, next to the two rooflines measured on this machine in the same run:
 *   compute roofline = FLOPs per token / measured sgemm FLOP/s      (bounds prefill)
 *   memory roofline  = weight bytes read per token / measured bandwidth (bounds decode)
 * It also times a prefill that computes every position's logits, the work `loft logits` and the
 * PyTorch peer (tools/bench/forward_peer.py, run by tools/bench/forward.sh) do.
 * With a FORMAT the Linear weights are quantized on load (as --quant) and the memory roofline
 * counts the bytes actually resident (quantized layers + f32 embedding/lm_head/norms).
 * usage: bench_forward MODEL_DIR [prefill_tokens=128] [decode_tokens=32] [FORMAT] */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

/* Best-of-3 sgemm FLOP/s at a prefill-like shape: [m,k] x [k,n]^T. */
static double lt_measure_sgemm(int64_t m, int64_t k, int64_t n) {
    float *a = malloc(sizeof(float) * (size_t)(m * k)), *b = malloc(sizeof(float) * (size_t)(n * k)),
          *c = malloc(sizeof(float) * (size_t)(m * n));
    for (int64_t i = 0; i < m * k; i++) a[i] = (float)(i % 7) * 0.01f;
    for (int64_t i = 0; i < n * k; i++) b[i] = (float)(i % 5) * 0.01f;
    double best = 1e30;
    for (int r = 0; r < 4; r++) {
        double t0 = lt_time_sec();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)k, 1.0f, a, (int)k, b, (int)k, 0.0f,
                    c, (int)n);
        double dt = lt_time_sec() - t0;
        if (r > 0 && dt < best) best = dt; /* r = 0 warms up threads and caches */
    }
    free(a), free(b), free(c);
    return 2.0 * (double)m * (double)n * (double)k / best;
}

/* Read bandwidth: sum a buffer much larger than the caches, best of 3, all threads. */
typedef struct {
    const float *p;
    double *partial;
} lt_bw_ctx;
static void lt_bw_chunk(void *ctx, int64_t b, int64_t e) {
    lt_bw_ctx *c = ctx;
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = b;
    for (; i + 4 <= e; i += 4) s0 += c->p[i], s1 += c->p[i + 1], s2 += c->p[i + 2], s3 += c->p[i + 3];
    for (; i < e; i++) s0 += c->p[i];
    c->partial[b % 64] += (double)(s0 + s1 + s2 + s3); /* keeps the loads alive */
}
static double lt_measure_bandwidth(void) {
    int64_t n = 256LL << 20 >> 2; /* 256 MiB of floats */
    float *p = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) p[i] = 1.0f;
    double partial[64] = {0}, best = 1e30;
    lt_bw_ctx ctx = {p, partial};
    for (int r = 0; r < 4; r++) {
        double t0 = lt_time_sec();
        lt_parallel_for(n, lt_bw_chunk, &ctx);
        double dt = lt_time_sec() - t0;
        if (r > 0 && dt < best) best = dt;
    }
    free(p);
    return (double)n * sizeof(float) / best;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        fprintf(stderr, "usage: %s MODEL_DIR [prefill_tokens=128] [decode_tokens=32] [nf4|mxfp4|nvfp4|q8_0|bf16]\n",
                argv[0]);
        return 2;
    }
    int64_t P = argc > 2 ? atoll(argv[2]) : 128, D = argc > 3 ? atoll(argv[3]) : 32;
    if (P < 1 || D < 1) return 2;
    lt_pool *pool;
    lt_model *m;
    lt_status st = lt_pool_create(LT_POOL_DEFAULT_BUDGET, &pool);
    lt_load_opts lo = {.quantize = argc > 4};
    if (argc > 4 && !lt_qformat_from_name(argv[4], &lo.format)) {
        fprintf(stderr, "bench_forward: unknown format '%s'\n", argv[4]);
        return 2;
    }
    if (!st) st = lt_model_load_opts(argv[1], pool, lt_backend_cpu(), &lo, &m);
    if (st) {
        fprintf(stderr, "bench_forward: %s\n", lt_status_msg(st));
        return 1;
    }
    const lt_model_config *c = lt_model_get_config(m);
    int64_t vocab = c->vocab_size;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(P + D));
    for (int64_t i = 0; i < P + D; i++) ids[i] = (int32_t)((i * 7919 + 13) % vocab);
    float *logits = malloc(sizeof(float) * (size_t)vocab * (size_t)P);
    lt_kv_cache *kv;
    st = lt_kv_create(m, pool, P + D, &kv);
    if (st) {
        fprintf(stderr, "bench_forward: %s\n", lt_status_msg(st));
        return 1;
    }
    /* warm-up pass so first-touch page faults and thread start-up are not timed */
    st = lt_model_forward(m, kv, ids, P < 16 ? P : 16, logits, false);
    lt_kv_reset(kv);
    double t0 = lt_time_sec();
    if (!st) st = lt_model_forward(m, kv, ids, P, logits, false);
    double t_prefill = lt_time_sec() - t0;
    t0 = lt_time_sec();
    for (int64_t i = 0; i < D && !st; i++) st = lt_model_forward(m, kv, ids + P + i, 1, logits, false);
    double t_decode = lt_time_sec() - t0;
    double t_all = 1e30; /* best of 3: every position's logits */
    for (int r = 0; r < 3 && !st; r++) {
        lt_kv_reset(kv);
        t0 = lt_time_sec();
        st = lt_model_forward(m, kv, ids, P, logits, true);
        double dt = lt_time_sec() - t0;
        if (dt < t_all) t_all = dt;
    }
    if (st) {
        fprintf(stderr, "bench_forward: %s\n", lt_status_msg(st));
        return 1;
    }
    /* FLOPs per token: 2 per weight of every matmul that runs per token (all layers + lm_head once
     * per token for decode; prefill computes lm_head only for the last token) + attention
     * 4 * n_heads * head_dim * context per layer (QK^T and PV). */
    int64_t H = c->hidden_size, hd = c->head_dim, q = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    double layer_w = (double)(H * q + 2 * H * kvd + q * H + 3 * H * c->intermediate_size);
    double body_w = layer_w * (double)c->n_layers;
    double head_w = (double)(vocab * H);
    double ctx_avg = (double)P / 2.0;
    double attn_flops = 4.0 * (double)c->n_heads * (double)hd * (double)c->n_layers;
    double prefill_flops = (2.0 * body_w + attn_flops * ctx_avg) * (double)P + 2.0 * head_w;
    /* every resident weight byte is read once per decoded token, except an untied f32 embedding
     * table, of which one row is read */
    double decode_bytes = lo.quantize ? (double)lt_model_weight_bytes(m) -
                                            (c->tie_word_embeddings ? 0.0 : (double)(vocab * H) * 4.0)
                                      : (body_w + head_w) * 4.0;
    double gemm = lt_measure_sgemm(P, H, c->intermediate_size), bw = lt_measure_bandwidth();
    double prefill_tps = (double)P / t_prefill, decode_tps = (double)D / t_decode;
    double prefill_roof = (double)P / (prefill_flops / gemm), decode_roof = bw / decode_bytes;
    printf("model %s: %s, %.1fM params, weights %.0f MiB as %s, %d threads\n", argv[1], c->architecture,
           (double)lt_config_n_params(c) / 1e6, (double)lt_model_weight_bytes(m) / 1048576.0,
           lo.quantize ? lt_qformat_name(lo.format) : "f32", lt_threads_get());
    printf("measured sgemm %.1f GFLOP/s (%lldx%lldx%lld), read bandwidth %.1f GB/s\n", gemm / 1e9, (long long)P,
           (long long)H, (long long)c->intermediate_size, bw / 1e9);
    printf("| phase   | tokens | tok/s    | roofline tok/s | of roofline | bound by |\n");
    printf("|---------|--------|----------|----------------|-------------|----------|\n");
    printf("| prefill | %6lld | %8.1f | %14.1f | %10.0f%% | sgemm FLOP/s |\n", (long long)P, prefill_tps, prefill_roof,
           100.0 * prefill_tps / prefill_roof);
    printf("| prefill, all logits | %6lld | %8.1f | %14.1f | %10.0f%% | sgemm FLOP/s |\n", (long long)P,
           (double)P / t_all, (double)P / ((prefill_flops + 2.0 * head_w * (double)(P - 1)) / gemm),
           100.0 * ((prefill_flops + 2.0 * head_w * (double)(P - 1)) / gemm) / t_all);
    printf("| decode  | %6lld | %8.1f | %14.1f | %10.0f%% | bandwidth |\n", (long long)D, decode_tps, decode_roof,
           100.0 * decode_tps / decode_roof);
    lt_kv_free(kv);
    lt_model_free(m);
    lt_pool_destroy(pool);
    free(ids), free(logits);
    return 0;
}
