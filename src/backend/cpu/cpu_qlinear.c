/* CPU quantized linear: y[M,N] = x[M,K] @ dequant(W[N,K])^T (+ bias), W an lt_qtensor.
 *
 * M == 1 (decode) is bound by the bytes of W: a fused dequantize-dot per output row reads the
 * packed codes once and never writes an f32 copy of W. Rows are split over lt_parallel_for
 * (static partition); each row is one thread's fixed-order sum, so y does not depend on the thread
 * count. The kernels (portable C here, AVX2/AVX-512 in cpu_qdot_x86.c, NEON in cpu_qdot_arm.c)
 * decode a block with a 16-entry code table and the block's scale, so every weight value equals
 * lt_dequantize_rows'.
 *
 * M > 1 (prefill) is bound by FLOPs: W is cut into fixed panels of nb rows (LT_QL_NB, fewer for
 * a small N; a function of N only); a worker dequantizes a panel (lt_dequantize_rows) into its
 * slice of scratch and runs a single-threaded sgemm  y[:, panel] = x[M,K] @ panel[nb,K]^T
 * (ldc = N). Panels are dealt to min(threads, panels) workers in contiguous runs.
 *
 * Determinism. Every output element is computed by one sgemm call whose shape and operands depend
 * only on (M, K, N), never on the thread count, so y is bit-identical for any thread count. That
 * needs OpenBLAS itself held to one thread: OpenBLAS 0.3.21's sgemm gives different bits for the
 * same operands with 1 and 2 threads, and for the same row inside calls of different M or panel
 * width (measured; it picks different blockings/kernels by shape). So openblas_set_num_threads(1)
 * is in force while the workers run, and restored after (it is process-wide: a BLAS call made on
 * another thread meanwhile runs single-threaded, slower but correct). It also keeps threaded
 * sgemm calls from several workers from queueing on OpenBLAS's level-3 lock. The decode and
 * prefill paths of the same row agree to f32 rounding, not bit for bit.
 *
 * Scratch (floats): decode K (the pair-split copy of x the SIMD kernels read); prefill
 * min(T, panels) * min(nb, N) * K with T = lt_threads_get() when it is asked: size it after the
 * thread count is set.
 */
#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>

#include "backend/cpu/cpu_internal.h"
#include "backend/cpu/cpu_qdot.h"

/* Rows per prefill panel. 128 rows of K = 4096 are 2 MiB of f32, written by the dequantizer and
 * read back by OpenBLAS's packing while still in L2/L3; sgemm re-packs x once per call, so much
 * narrower panels pay that copy more often. 32..256 measured within noise of each other on the
 * 2-core development VM (docs/perf.md). */
#define LT_QL_NB 128

float lt_qdot_e8m0[256];
float lt_qdot_e4m3[256];

static pthread_once_t lt_qdot_once = PTHREAD_ONCE_INIT;
static atomic_int lt_qdot_isa_best; /* what the CPU can run */
static atomic_int lt_qdot_isa_cur;  /* what the kernels use (<= best) */

static void lt_qdot_init(void) {
    for (int i = 0; i < 256; i++) {
        lt_qdot_e8m0[i] = lt_e8m0_to_f32((uint8_t)i);
        lt_qdot_e4m3[i] = lt_e4m3_to_f32((uint8_t)i);
    }
    int best = lt_qdot_x86_level();
    if (best == LT_QDOT_GENERIC) best = lt_qdot_arm_level();
    atomic_store(&lt_qdot_isa_best, best);
    atomic_store(&lt_qdot_isa_cur, best);
}

static const char *const lt_qdot_isa_names[] = {"generic", "avx2", "avx512", "neon"};

/* Whether a CPU whose best level is best can run level i: generic always, the x86 levels up to
 * best, NEON only on itself. */
static bool lt_qdot_isa_runs(int i, int best) {
    if (i == LT_QDOT_GENERIC || i == best) return true;
    return best == LT_QDOT_AVX512 && i == LT_QDOT_AVX2;
}

const char *lt_cpu_qlinear_isa(void) {
    pthread_once(&lt_qdot_once, lt_qdot_init);
    return lt_qdot_isa_names[atomic_load(&lt_qdot_isa_cur)];
}

const char *lt_cpu_qlinear_isa_set(const char *want) {
    pthread_once(&lt_qdot_once, lt_qdot_init);
    int lvl = atomic_load(&lt_qdot_isa_best);
    for (int i = 0; i < 4; i++)
        if (want && !strcmp(want, lt_qdot_isa_names[i]) && lt_qdot_isa_runs(i, lvl)) lvl = i;
    atomic_store(&lt_qdot_isa_cur, lvl);
    return lt_qdot_isa_names[lvl];
}

/* ---------------------------------------------------------------- portable decode kernels */

/* acc[l] += w[j + l] * x[j + l] over n elements (n % 8 == 0): eight independent partial sums,
 * the shape compilers vectorise without reassociating anything. */
static inline void lt_qdot_acc8(float acc[8], const float *restrict w, const float *restrict x, int64_t n) {
    for (int64_t j = 0; j < n; j += 8)
        for (int l = 0; l < 8; l++) acc[l] += w[j + l] * x[j + l];
}

static inline float lt_qdot_sum8(const float acc[8]) {
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static void lt_qdot_bf16_generic(const lt_qdot_args *a, int64_t r0, int64_t r1) {
    const int64_t K = a->K;
    const uint8_t *wb = a->w->comp[LT_QC_CODES];
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = wb + r * K * 2;
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, buf[64];
        int64_t k = 0;
        for (; k + 64 <= K; k += 64) {
            for (int j = 0; j < 64; j++) {
                uint16_t h;
                memcpy(&h, row + 2 * (k + j), 2);
                buf[j] = lt_bf16_to_f32(h);
            }
            lt_qdot_acc8(acc, buf, a->x + k, 64);
        }
        float tail = 0.0f;
        for (; k < K; k++) {
            uint16_t h;
            memcpy(&h, row + 2 * k, 2);
            tail += lt_bf16_to_f32(h) * a->x[k];
        }
        a->y[r] = lt_qdot_sum8(acc) + tail;
    }
}

/* NF4 and NF4_NODQ: blocks of 64, first element in the high nibble. */
static void lt_qdot_nf4_generic(const lt_qdot_args *a, int64_t r0, int64_t r1) {
    const int64_t bpr = a->K / 64;
    const uint8_t *codes = a->w->comp[LT_QC_CODES];
    for (int64_t r = r0; r < r1; r++) {
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int64_t k = 0; k < bpr; k++) {
            const int64_t b = r * bpr + k;
            const float s = lt_qdot_nf4_absmax(a->w, b, a->offset);
            float t[16], w[64];
            for (int i = 0; i < 16; i++) t[i] = lt_nf4_code[i] * s;
            const uint8_t *c = codes + b * 32;
            for (int j = 0; j < 32; j++) {
                w[2 * j] = t[c[j] >> 4];
                w[2 * j + 1] = t[c[j] & 15];
            }
            lt_qdot_acc8(acc, w, a->x + k * 64, 64);
        }
        a->y[r] = lt_qdot_sum8(acc);
    }
}

/* MXFP4 (blocks of 32, E8M0 scale) and NVFP4 (blocks of 16, scale g * E4M3): E2M1 codes, first
 * element in the low nibble. */
static void lt_qdot_e2m1_generic(const lt_qdot_args *a, int64_t r0, int64_t r1) {
    const bool mx = a->w->format == LT_Q_MXFP4;
    const int B = mx ? 32 : 16;
    const int64_t bpr = a->K / B;
    const uint8_t *codes = a->w->comp[LT_QC_CODES], *sc = a->w->comp[LT_QC_SCALES];
    for (int64_t r = r0; r < r1; r++) {
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int64_t k = 0; k < bpr; k++) {
            const int64_t b = r * bpr + k;
            const float s = mx ? lt_qdot_e8m0[sc[b]] : a->offset * lt_qdot_e4m3[sc[b]];
            float t[16], w[32];
            for (int i = 0; i < 16; i++) t[i] = lt_e2m1_value[i] * s;
            const uint8_t *c = codes + b * (B / 2);
            for (int j = 0; j < B / 2; j++) {
                w[2 * j] = t[c[j] & 15];
                w[2 * j + 1] = t[c[j] >> 4];
            }
            lt_qdot_acc8(acc, w, a->x + k * B, B);
        }
        a->y[r] = lt_qdot_sum8(acc);
    }
}

/* Q8_0: 34-byte blocks {f16 d, int8 q[32]}. */
static void lt_qdot_q8_0_generic(const lt_qdot_args *a, int64_t r0, int64_t r1) {
    const int64_t bpr = a->K / 32;
    const uint8_t *blocks = a->w->comp[LT_QC_CODES];
    for (int64_t r = r0; r < r1; r++) {
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int64_t k = 0; k < bpr; k++) {
            const uint8_t *blk = blocks + (r * bpr + k) * 34;
            uint16_t h;
            memcpy(&h, blk, 2);
            const float d = lt_f16_to_f32(h);
            float w[32];
            for (int j = 0; j < 32; j++) w[j] = (float)(int8_t)blk[2 + j] * d;
            lt_qdot_acc8(acc, w, a->x + k * 32, 32);
        }
        a->y[r] = lt_qdot_sum8(acc);
    }
}

static lt_qdot_fn lt_qdot_generic_kernel(lt_qformat f) {
    switch (f) {
    case LT_Q_BF16: return lt_qdot_bf16_generic;
    case LT_Q_NF4:
    case LT_Q_NF4_NODQ: return lt_qdot_nf4_generic;
    case LT_Q_MXFP4:
    case LT_Q_NVFP4: return lt_qdot_e2m1_generic;
    case LT_Q_Q8_0: return lt_qdot_q8_0_generic;
    case LT_Q_COUNT: break;
    }
    LT_ASSERT(!"qlinear: unknown format");
    return NULL;
}

/* The pair-split order of x (cpu_qdot.h) for the 4-bit SIMD kernels. K % 16 == 0. */
static void lt_qdot_split_x(const float *x, int64_t K, float *xs) {
    for (int64_t g = 0; g < K; g += 32) {
        const int64_t h = K - g >= 32 ? 16 : 8;
        for (int64_t i = 0; i < h; i++) {
            xs[g + i] = x[g + 2 * i];
            xs[g + h + i] = x[g + 2 * i + 1];
        }
    }
}

/* ---------------------------------------------------------------- decode: M == 1 */

typedef struct {
    lt_qdot_fn fn;
    lt_qdot_args a;
} lt_qdot_job;

static void lt_qdot_rows(void *p, int64_t r0, int64_t r1) {
    const lt_qdot_job *j = p;
    j->fn(&j->a, r0, r1);
}

static void lt_ql_decode(const float *x, const lt_qtensor *w, float *y, int64_t K, int64_t N, float *scratch) {
    const lt_qformat f = w->format;
    const int isa = atomic_load(&lt_qdot_isa_cur);
    lt_qdot_fn fn = NULL;
    if (isa == LT_QDOT_NEON)
        fn = lt_qdot_arm_kernel(f);
    else if (isa != LT_QDOT_GENERIC)
        fn = lt_qdot_x86_kernel(f, isa);
    const bool four_bit = f == LT_Q_NF4 || f == LT_Q_NF4_NODQ || f == LT_Q_MXFP4 || f == LT_Q_NVFP4;
    if (fn && four_bit) {
        LT_ASSERT(scratch); /* lt_qlinear_scratch(1, K, N) floats */
        lt_qdot_split_x(x, K, scratch);
        x = scratch;
    }
    if (!fn) fn = lt_qdot_generic_kernel(f);
    lt_qdot_job j = {fn, {.w = w, .x = x, .y = y, .K = K}};
    if (f == LT_Q_NF4 || f == LT_Q_NVFP4) j.a.offset = lt_qdot_ld_f32(w->comp[LT_QC_TENSOR]);
    lt_cpu_run(N, N * K, lt_qdot_rows, &j);
}

/* ---------------------------------------------------------------- prefill: M > 1 */

typedef struct {
    const float *x;
    const lt_qtensor *w;
    float *y, *scratch;
    int64_t M, K, N, nb, n_panels, nw, slice; /* nb: rows per panel; slice: floats of scratch per worker */
} lt_ql_job;

static void lt_ql_panels(void *p, int64_t w0, int64_t w1) {
    const lt_ql_job *j = p;
    for (int64_t wk = w0; wk < w1; wk++) {
        /* worker wk takes panels [p0, p1): a contiguous run, the first n_panels % nw runs one longer */
        const int64_t q = j->n_panels / j->nw, rem = j->n_panels % j->nw;
        const int64_t p0 = wk * q + (wk < rem ? wk : rem), p1 = p0 + q + (wk < rem ? 1 : 0);
        float *panel = j->scratch + wk * j->slice;
        for (int64_t pi = p0; pi < p1; pi++) {
            const int64_t r0 = pi * j->nb, nb = j->N - r0 < j->nb ? j->N - r0 : j->nb;
            lt_dequantize_rows(j->w, r0, nb, panel); /* panel [nb, K] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)j->M, (int)nb, (int)j->K, 1.0f, j->x, (int)j->K,
                        panel, (int)j->K, 0.0f, j->y + r0, (int)j->N);
        }
    }
}

/* Rows per panel: LT_QL_NB, or fewer for a small N so that it still makes about 8 panels for the
 * workers to share (a multiple of 16, the sgemm kernels' unroll). A function of N alone. */
static int64_t lt_ql_nb(int64_t N) {
    int64_t nb = (N + 8 * 16 - 1) / (8 * 16) * 16;
    return nb < 16 ? 16 : (nb > LT_QL_NB ? LT_QL_NB : nb);
}

/* Workers that share the panels: min(threads, panels). */
static int64_t lt_ql_workers(int64_t N) {
    const int64_t nb = lt_ql_nb(N), n_panels = (N + nb - 1) / nb, t = lt_threads_get();
    return t < n_panels ? t : n_panels;
}

static void lt_ql_prefill(const float *x, const lt_qtensor *w, float *y, int64_t M, int64_t K, int64_t N,
                          float *scratch) {
    LT_ASSERT(scratch); /* lt_qlinear_scratch(M, K, N) floats */
    lt_ql_job j = {.x = x, .w = w, .y = y, .scratch = scratch, .M = M, .K = K, .N = N, .nb = lt_ql_nb(N)};
    j.n_panels = (N + j.nb - 1) / j.nb;
    j.nw = lt_ql_workers(N);
    j.slice = (N < j.nb ? N : j.nb) * K;
    /* One OpenBLAS thread per sgemm, always: OpenBLAS's bits depend on its own thread count (and on
     * the call's shape), so a threaded sgemm for a single worker would make y depend on the thread
     * count; and threaded calls from several workers would queue on its level-3 lock. */
    const int ob = openblas_get_num_threads();
    if (ob != 1) openblas_set_num_threads(1);
    lt_parallel_for(j.nw, lt_ql_panels, &j);
    if (ob != 1) openblas_set_num_threads(ob);
}

/* ---------------------------------------------------------------- entry points */

void lt_cpu_qlinear(const float *x, const lt_qtensor *w, const float *bias, float *y, int64_t M, int64_t K, int64_t N,
                    float *scratch) {
    pthread_once(&lt_qdot_once, lt_qdot_init);
    LT_ASSERT(w && w->rows == N && w->cols == K);
    LT_ASSERT(M >= 0 && K > 0 && N > 0 && M <= INT32_MAX && K <= INT32_MAX && N <= INT32_MAX);
    LT_ASSERT(K % lt_qformat_block(w->format) == 0 && w->comp[LT_QC_CODES]);
    if (M == 0) return;
    if (M == 1)
        lt_ql_decode(x, w, y, K, N, scratch);
    else
        lt_ql_prefill(x, w, y, M, K, N, scratch);
    if (bias) {
        for (int64_t m = 0; m < M; m++) {
            float *row = y + m * N;
            for (int64_t n = 0; n < N; n++) row[n] += bias[n];
        }
    }
}

int64_t lt_qlinear_scratch(int64_t M, int64_t K, int64_t N) {
    LT_ASSERT(M >= 0 && K > 0 && N > 0);
    if (M == 0) return 0;
    if (M == 1) return K;
    int64_t n;
    const int64_t nb = lt_ql_nb(N);
    LT_ASSERT(lt_mul_i64(lt_ql_workers(N) * (N < nb ? N : nb), K, &n));
    return n;
}
