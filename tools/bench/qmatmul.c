/* Benchmark (not a test): the CPU quantized linear (backend qlinear) per format, decode-shaped
 * (M = 1) and prefill-shaped (M = 512 by default), next to its peers measured in the same run:
 *   f32 sgemv / sgemm (OpenBLAS) of the same shape, and
 *   the read-bandwidth roofline: a streaming read of a 1 GiB buffer on all threads.
 * Decode is memory-bound: GB/s = bytes of the quantized weight read per call / time, and its
 * roofline is that measured bandwidth. So that decode reads DRAM and not the last-level cache,
 * each decode timing cycles through enough copies of the weight to fill --ws-mib (default 1024).
 * Every time is the best of --reps repetitions (default 5): these machines are noisy.
 *
 * usage: bench_qmatmul [--m 512] [--reps 5] [--ws-mib 1024] [--formats nf4,mxfp4,...]
 *                      [--all-isa] [NxK ...]          (default shapes 4096x4096 14336x4096)
 * Threads: LOFT_THREADS (OpenBLAS follows it). Prints a markdown table. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_internal.h"

static void die(lt_status st) {
    fprintf(stderr, "bench_qmatmul: %s\n", lt_status_msg(st));
    exit(1);
}

/* ---------------------------------------------------------------- bandwidth roofline */

typedef struct {
    const uint64_t *p;
    uint64_t sink[64];
} bw_ctx;

/* Integer sum: vectorises freely (no float reassociation), far faster than DRAM. */
static void bw_chunk(void *vc, int64_t b, int64_t e) {
    bw_ctx *c = vc;
    uint64_t s[8] = {0};
    int64_t i = b;
    for (; i + 8 <= e; i += 8)
        for (int l = 0; l < 8; l++) s[l] += c->p[i + l];
    for (; i < e; i++) s[0] += c->p[i];
    c->sink[(b / 8) % 64] += s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

static double measure_bandwidth(int reps) {
    const int64_t n = (1LL << 30) / 8; /* 1 GiB */
    uint64_t *p = malloc((size_t)n * 8);
    if (!p) return 0;
    for (int64_t i = 0; i < n; i++) p[i] = (uint64_t)i;
    bw_ctx c = {.p = p};
    double best = 1e30;
    for (int r = 0; r <= reps; r++) {
        double t0 = lt_time_sec();
        lt_parallel_for(n, bw_chunk, &c);
        double dt = lt_time_sec() - t0;
        if (r > 0 && dt < best) best = dt; /* r = 0 warms up */
    }
    free(p);
    return (double)n * 8 / best;
}

/* ---------------------------------------------------------------- helpers */

static void fill(float *x, int64_t n, uint64_t seed, float scale) {
    lt_rng r;
    lt_rng_init(&r, seed);
    for (int64_t i = 0; i < n; i++) x[i] = lt_rng_normal(&r) * scale;
}

static int64_t copies_for(int64_t bytes, int64_t ws) {
    int64_t c = (ws + bytes - 1) / bytes;
    return c < 1 ? 1 : c;
}

typedef struct {
    double decode_s, prefill_s;
} times;

/* f32 peers: sgemv over copies of W (decode), sgemm on one copy (prefill). */
static times f32_peer(const float *w, int64_t N, int64_t K, int64_t M, int64_t ws, int reps, const float *x,
                      float *y) {
    const int64_t bytes = N * K * 4, nc = copies_for(bytes, ws);
    float **cp = malloc(sizeof(float *) * (size_t)nc);
    for (int64_t i = 0; i < nc; i++) {
        cp[i] = malloc((size_t)bytes);
        if (!cp[i]) {
            fprintf(stderr, "bench_qmatmul: out of memory for %lld f32 copies\n", (long long)nc);
            exit(1);
        }
        memcpy(cp[i], w, (size_t)bytes);
    }
    times t = {1e30, 1e30};
    for (int r = 0; r <= reps; r++) {
        double t0 = lt_time_sec();
        for (int64_t i = 0; i < nc; i++)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)N, (int)K, 1.0f, cp[i], (int)K, x, 1, 0.0f, y, 1);
        double dt = (lt_time_sec() - t0) / (double)nc;
        if (r > 0 && dt < t.decode_s) t.decode_s = dt;
    }
    for (int r = 0; r <= (reps + 1) / 2; r++) {
        double t0 = lt_time_sec();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, x, (int)K, cp[0], (int)K,
                    0.0f, y, (int)N);
        double dt = lt_time_sec() - t0;
        if (r > 0 && dt < t.prefill_s) t.prefill_s = dt;
    }
    for (int64_t i = 0; i < nc; i++) free(cp[i]);
    free(cp);
    return t;
}

static double q_decode(lt_qtensor *cp, int64_t nc, int64_t N, int64_t K, int reps, const float *x, float *y,
                       float *scratch) {
    const lt_backend *be = lt_backend_cpu();
    double best = 1e30;
    for (int r = 0; r <= reps; r++) {
        double t0 = lt_time_sec();
        for (int64_t i = 0; i < nc; i++) be->qlinear(x, &cp[i], NULL, y, 1, K, N, scratch);
        double dt = (lt_time_sec() - t0) / (double)nc;
        if (r > 0 && dt < best) best = dt;
    }
    return best;
}

static double q_prefill(const lt_qtensor *q, int64_t M, int64_t N, int64_t K, int reps, const float *x, float *y,
                        float *scratch) {
    const lt_backend *be = lt_backend_cpu();
    double best = 1e30;
    for (int r = 0; r <= (reps + 1) / 2; r++) {
        double t0 = lt_time_sec();
        be->qlinear(x, q, NULL, y, M, K, N, scratch);
        double dt = lt_time_sec() - t0;
        if (r > 0 && dt < best) best = dt;
    }
    return best;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv) {
    int64_t M = 512, ws = 1024LL << 20;
    int reps = 5;
    bool all_isa = false;
    const char *fmt_list = "bf16,nf4,nf4_nodq,mxfp4,nvfp4,q8_0";
    int64_t shapes[16][2];
    int n_shapes = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--m") && i + 1 < argc)
            M = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ws-mib") && i + 1 < argc)
            ws = atoll(argv[++i]) << 20;
        else if (!strcmp(argv[i], "--formats") && i + 1 < argc)
            fmt_list = argv[++i];
        else if (!strcmp(argv[i], "--all-isa"))
            all_isa = true;
        else if (n_shapes < 16 && sscanf(argv[i], "%lldx%lld", (long long *)&shapes[n_shapes][0],
                                         (long long *)&shapes[n_shapes][1]) == 2)
            n_shapes++;
        else {
            fprintf(stderr, "usage: %s [--m 512] [--reps 5] [--ws-mib 1024] [--formats nf4,...] [--all-isa] [NxK ...]\n",
                    argv[0]);
            return 2;
        }
    }
    if (!n_shapes) {
        shapes[0][0] = 4096, shapes[0][1] = 4096;
        shapes[1][0] = 14336, shapes[1][1] = 4096;
        n_shapes = 2;
    }
    if (M < 2 || reps < 1 || ws < 1) return 2;
    lt_qformat fmts[LT_Q_COUNT];
    int n_fmts = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", fmt_list);
    for (char *tok = strtok(buf, ","); tok && n_fmts < LT_Q_COUNT; tok = strtok(NULL, ","))
        if (!lt_qformat_from_name(tok, &fmts[n_fmts++])) {
            fprintf(stderr, "bench_qmatmul: unknown format %s\n", tok);
            return 2;
        }

    const lt_backend *be = lt_backend_cpu();
    (void)be;
    const char *best_isa = lt_cpu_qlinear_isa();
    lt_pool *pool;
    lt_status st = lt_pool_create(LT_POOL_DEFAULT_BUDGET, &pool);
    if (st) die(st);
    const double bw = measure_bandwidth(reps);
    printf("threads %d (OpenBLAS %d, core %s), decode kernels %s, prefill M = %lld, best of %d, decode working set "
           "%lld MiB\n",
           lt_threads_get(), openblas_get_num_threads(), openblas_get_corename(), best_isa, (long long)M, reps,
           (long long)(ws >> 20));
    printf("read bandwidth (1 GiB streaming sum, all threads): %.1f GB/s\n\n", bw / 1e9);
    printf("| N x K | format | kernels | bits/w | MiB | decode us | GB/s | GFLOP/s | x f32 | %% of BW roofline | "
           "prefill ms | GFLOP/s | x f32 |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");

    for (int si = 0; si < n_shapes; si++) {
        const int64_t N = shapes[si][0], K = shapes[si][1];
        float *w = malloc(sizeof(float) * (size_t)(N * K)), *x = malloc(sizeof(float) * (size_t)(M * K));
        float *y = malloc(sizeof(float) * (size_t)(M * N));
        if (!w || !x || !y) {
            fprintf(stderr, "bench_qmatmul: out of memory for %lldx%lld\n", (long long)N, (long long)K);
            return 1;
        }
        fill(w, N * K, 1, 0.02f);
        fill(x, M * K, 2, 1.0f);
        const times f = f32_peer(w, N, K, M, ws, reps, x, y);
        const double flop1 = 2.0 * (double)N * (double)K, flopM = flop1 * (double)M;
        const double fbytes = (double)N * (double)K * 4;
        printf("| %lldx%lld | f32 (OpenBLAS sgemv/sgemm) | - | 32 | %.0f | %.0f | %.1f | %.1f | 1.00 | %.0f%% | %.1f | %.1f "
               "| 1.00 |\n",
               (long long)N, (long long)K, fbytes / 1048576.0, f.decode_s * 1e6, fbytes / f.decode_s / 1e9,
               flop1 / f.decode_s / 1e9, 100.0 * fbytes / f.decode_s / bw, f.prefill_s * 1e3,
               flopM / f.prefill_s / 1e9);
        fflush(stdout);
        for (int fi = 0; fi < n_fmts; fi++) {
            lt_qlayout L;
            if ((st = lt_qlayout_get(fmts[fi], N, K, &L))) die(st);
            const int64_t nc = copies_for(L.total_bytes, ws);
            lt_qtensor *cp = calloc((size_t)nc, sizeof *cp);
            for (int64_t i = 0; i < nc; i++) {
                if ((st = lt_qtensor_alloc(pool, LT_POOL_WEIGHTS, fmts[fi], N, K, "bench.weight", &cp[i]))) die(st);
                if (i == 0) {
                    if ((st = lt_quantize(w, "bench.weight", &cp[0]))) die(st);
                } else {
                    for (int s = 0; s < LT_QC_COUNT; s++)
                        if (L.comp[s].bytes) memcpy(cp[i].comp[s], cp[0].comp[s], (size_t)L.comp[s].bytes);
                }
            }
            int64_t ns = lt_qlinear_scratch(M, K, N), ns1 = lt_qlinear_scratch(1, K, N);
            float *scratch;
            if ((st = lt_pool_alloc(pool, LT_POOL_SCRATCH, (ns > ns1 ? ns : ns1) * 4, "scratch", (void **)&scratch)))
                die(st);
            const double tp = q_prefill(&cp[0], M, N, K, reps, x, y, scratch);
            const char *isas[] = {"generic", "avx2", "avx512"};
            const char *prev = NULL;
            for (int li = all_isa ? 0 : 2; li < 3; li++) {
                const char *isa = lt_cpu_qlinear_isa_set(isas[li]);
                if (prev && !strcmp(prev, isa)) continue;
                prev = isa;
                const double td = q_decode(cp, nc, N, K, reps, x, y, scratch);
                const double qb = (double)L.total_bytes;
                printf("| %lldx%lld | %s | %s | %.3f | %.1f | %.0f | %.1f | %.1f | %.2f | %.0f%% | %.1f | %.1f | %.2f |\n",
                       (long long)N, (long long)K, lt_qformat_name(fmts[fi]), isa, L.bits_per_param, qb / 1048576.0,
                       td * 1e6, qb / td / 1e9, flop1 / td / 1e9, f.decode_s / td, 100.0 * qb / td / bw,
                       tp * 1e3, flopM / tp / 1e9, f.prefill_s / tp);
                fflush(stdout);
            }
            lt_cpu_qlinear_isa_set(best_isa);
            lt_pool_free(pool, scratch);
            for (int64_t i = 0; i < nc; i++) lt_qtensor_free(pool, &cp[i]);
            free(cp);
        }
        free(w), free(x), free(y);
    }
    lt_pool_destroy(pool);
    return 0;
}
