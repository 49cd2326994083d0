/* The CUDA backend's host side (see cuda.h): device set-up, the pool's GPU memory, the workspace,
 * and the vtable entries, each a few kernel launches from kernels/ (lt_cuda.cuh). */
#include "backend/cuda/cuda.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef LOFT_WITH_CUDA
#include "lt_cuda.cuh"

_Static_assert(LT_Q_BF16 == 0 && LT_Q_NF4 == 1 && LT_Q_NF4_NODQ == 2 && LT_Q_MXFP4 == 3 && LT_Q_NVFP4 == 4 &&
                   LT_Q_Q8_0 == 5,
               "kernels/dequant.cu numbers the formats as quant.h does");

/* Workspace slots, each grown from the pool on demand (never shrunk until shutdown). */
enum { WS_A, WS_B, WS_L, WS_G, WS_MISC, WS_COUNT };

typedef struct cuda_state {
    bool ready, unified;
    lt_pool *pool;
    void *stream;
    lt_cuda_blas *blas;
    void *blas_ws;
    void *ws[WS_COUNT];
    int64_t ws_bytes[WS_COUNT];
    int err;             /* first failure (cudaError_t or LT_CUDA_BLAS_ERR_BASE + status), 0 when none */
    char err_op[96];     /* the op that failed */
    lt_status err_status; /* a pool refusal while growing the workspace */
    char desc[400];
} cuda_state;

static cuda_state G;

/* ---------------------------------------------------------------- errors */

/* Records the first failure; true when rc is a failure (the op should stop). */
static bool fail(int rc, const char *op) {
    if (!rc) return false;
    if (!G.err) {
        G.err = rc;
        snprintf(G.err_op, sizeof G.err_op, "%s", op);
    }
    return true;
}

/* Ops after a failure do nothing: their inputs may be garbage and the first error is the one to read. */
#define OP_GUARD()                                                                                                     \
    do {                                                                                                               \
        if (!G.ready || G.err || G.err_status) return;                                                                 \
    } while (0)

lt_status lt_cuda_check(const char *where) {
    if (!G.ready) return lt_errorf(LT_ERR_INVALID_ARG, "%s: the CUDA backend is not initialised", where);
    if (!G.err) fail(lt_cuda_sync(G.stream), "synchronise");
    if (G.err_status) {
        lt_status st = lt_status_wrapf(G.err_status, "%s", where);
        G.err_status = NULL;
        return st;
    }
    if (G.err) {
        lt_status st = lt_errorf(LT_ERR_INTERNAL, "%s: CUDA op %s failed: %s", where, G.err_op, lt_cuda_strerror(G.err));
        G.err = 0;
        return st;
    }
    return NULL;
}

/* ---------------------------------------------------------------- pool memory */

static int dev_alloc(void **out, size_t bytes, void *ctx, char *err, size_t cap) {
    (void)ctx;
    int rc = lt_cuda_malloc(out, bytes);
    if (!rc) rc = lt_cuda_memset(*out, 0, bytes, NULL);
    if (!rc) rc = lt_cuda_sync(NULL);
    if (rc) snprintf(err, cap, "cudaMalloc: %s", lt_cuda_strerror(rc));
    return rc;
}

static void dev_free(void *p, void *ctx) {
    (void)ctx;
    lt_cuda_free(p);
}

/* The workspace slot at least `bytes` long (NULL after recording the failure). */
static void *ws(int slot, int64_t bytes) {
    if (bytes <= G.ws_bytes[slot]) return G.ws[slot];
    lt_cuda_sync(G.stream); /* the old buffer may still be in use by queued kernels */
    lt_pool_free(G.pool, G.ws[slot]);
    G.ws[slot] = NULL;
    G.ws_bytes[slot] = 0;
    int64_t want = bytes + bytes / 4; /* headroom: shapes grow a little between calls */
    lt_status st = lt_pool_alloc(G.pool, LT_POOL_SCRATCH, want, "CUDA backend workspace", &G.ws[slot]);
    if (st) {
        if (!G.err_status) G.err_status = st;
        else lt_status_free(st);
        return NULL;
    }
    G.ws_bytes[slot] = want;
    return G.ws[slot];
}

/* ---------------------------------------------------------------- set-up */

lt_status lt_cuda_init(lt_pool *pool, const lt_cuda_opts *o) {
    if (G.ready) return lt_errorf(LT_ERR_INVALID_ARG, "the CUDA backend is already initialised");
    char desc[300];
    const int n = lt_cuda_query(desc, sizeof desc);
    if (n <= 0) return lt_errorf(LT_ERR_UNSUPPORTED, "no CUDA device: %s", desc);
    const int dev = o ? o->device : 0;
    if (dev < 0 || dev >= n)
        return lt_errorf(LT_ERR_INVALID_ARG, "CUDA device %d does not exist (%d visible: %s)", dev, n, desc);
    lt_cuda_devinfo info;
    int rc = lt_cuda_set_device(dev);
    if (!rc) rc = lt_cuda_devinfo_get(dev, &info);
    if (rc) return lt_errorf(LT_ERR_INTERNAL, "CUDA device %d: %s", dev, lt_cuda_strerror(rc));
    memset(&G, 0, sizeof G);
    G.pool = pool;
    /* Integrated GPUs that read pageable memory (Grace-Blackwell) use the host pool as it is;
     * otherwise device memory. (An integrated GPU without pageable access would need pinned
     * memory; it is treated as discrete, which is correct, only not zero-copy.) */
    G.unified = info.integrated && info.pageable_access;
    if (!G.unified) {
        if (lt_pool_get_stats(pool).n_allocs != 0)
            return lt_errorf(LT_ERR_INVALID_ARG, "lt_cuda_init: the pool must be empty (its memory becomes GPU memory)");
        const lt_pool_mem_ops mem = {"the GPU (cudaMalloc)", dev_alloc, dev_free, NULL};
        lt_pool_set_mem(pool, &mem);
    }
    snprintf(G.desc, sizeof G.desc, "%s, sm_%d%d, %d SMs, %.1f GiB %s", info.name, info.major, info.minor,
             info.sm_count, (double)info.total_bytes / (1024.0 * 1024.0 * 1024.0),
             G.unified ? "shared with the host (unified memory, used in place)" : "device memory (cudaMalloc)");
    rc = lt_cuda_stream_create(&G.stream);
    if (!rc) rc = lt_cuda_dequant_init(lt_nf4_code, lt_dq8_code, lt_e2m1_value);
    if (rc) return lt_errorf(LT_ERR_INTERNAL, "CUDA set-up on %s: %s", info.name, lt_cuda_strerror(rc));
    const int64_t wsb = o && o->cublas_ws_bytes > 0 ? o->cublas_ws_bytes : 32LL << 20;
    lt_status st = lt_pool_alloc(pool, LT_POOL_SCRATCH, wsb, "cuBLASLt workspace", &G.blas_ws);
    if (st) return st;
    rc = lt_cuda_blas_create(G.stream, G.blas_ws, (size_t)wsb, o ? o->deterministic : 1, &G.blas);
    if (rc) {
        lt_pool_free(pool, G.blas_ws);
        return lt_errorf(LT_ERR_INTERNAL, "cuBLASLt set-up: %s", lt_cuda_strerror(rc));
    }
    G.ready = true;
    return NULL;
}

void lt_cuda_shutdown(void) {
    if (!G.ready) return;
    lt_cuda_sync(G.stream);
    lt_cuda_blas_destroy(G.blas);
    for (int i = 0; i < WS_COUNT; i++) lt_pool_free(G.pool, G.ws[i]);
    lt_pool_free(G.pool, G.blas_ws);
    lt_cuda_stream_destroy(G.stream);
    if (G.err_status) lt_status_free(G.err_status);
    memset(&G, 0, sizeof G);
}

bool lt_cuda_unified(void) { return G.ready && G.unified; }
const char *lt_cuda_describe(void) { return G.ready ? G.desc : "CUDA backend not initialised"; }

lt_status lt_cuda_upload(void *dst, const void *src, int64_t bytes) {
    if (bytes <= 0) return NULL;
    if (G.unified) {
        memcpy(dst, src, (size_t)bytes);
        return NULL;
    }
    int rc = lt_cuda_memcpy_h2d(dst, src, (size_t)bytes, G.stream);
    if (!rc) rc = lt_cuda_sync(G.stream); /* src may be reused by the caller at once */
    return rc ? lt_errorf(LT_ERR_INTERNAL, "copy to the GPU (%lld bytes): %s", (long long)bytes, lt_cuda_strerror(rc))
              : NULL;
}

lt_status lt_cuda_download(void *dst, const void *src, int64_t bytes) {
    if (bytes <= 0) return NULL;
    if (G.unified) {
        int rc = lt_cuda_sync(G.stream);
        if (rc) return lt_errorf(LT_ERR_INTERNAL, "waiting for the GPU: %s", lt_cuda_strerror(rc));
        memcpy(dst, src, (size_t)bytes);
        return NULL;
    }
    int rc = lt_cuda_memcpy_d2h(dst, src, (size_t)bytes, G.stream);
    return rc ? lt_errorf(LT_ERR_INTERNAL, "copy from the GPU (%lld bytes): %s", (long long)bytes, lt_cuda_strerror(rc))
              : NULL;
}

lt_status lt_cuda_qtensor_upload(lt_pool *pool, lt_pool_tag tag, const lt_qtensor *host, const char *name,
                                 lt_qtensor *dev) {
    memset(dev, 0, sizeof *dev);
    lt_qlayout lay;
    lt_status st = lt_qlayout_get(host->format, host->rows, host->cols, &lay);
    if (st) return st;
    st = lt_qtensor_alloc(pool, tag, host->format, host->rows, host->cols, name, dev);
    for (int c = 0; !st && c < LT_QC_COUNT; c++)
        if (lay.comp[c].bytes) st = lt_cuda_upload(dev->comp[c], host->comp[c], lay.comp[c].bytes);
    if (st) lt_qtensor_free(pool, dev);
    return st;
}

/* ---------------------------------------------------------------- helpers for the ops */

static lt_cuda_qt qt_of(const lt_qtensor *w) {
    lt_cuda_qt q = {(int)w->format, w->rows, w->cols, w->comp[LT_QC_CODES], w->comp[LT_QC_SCALES],
                    w->comp[LT_QC_SCALES2], w->comp[LT_QC_TENSOR]};
    return q;
}

/* bf16 copy of n f32 values in a workspace slot. */
static const uint16_t *to_bf16(int slot, const float *x, int64_t n, const char *op) {
    uint16_t *d = ws(slot, n * 2);
    if (!d || fail(lt_cuda_f32_to_bf16(x, d, n, G.stream), op)) return NULL;
    return d;
}

/* Rows per panel when a quantized weight [N, K] is decoded to bf16: at most 64 MiB of workspace. */
static int64_t panel_rows(int64_t N, int64_t K) {
    int64_t r = (64LL << 20) / (2 * K);
    if (r < 1) r = 1;
    return r < N ? r : N;
}

/* ---------------------------------------------------------------- the vtable */

static void cu_linear(const float *x, const float *w, const float *bias, float *y, int64_t M, int64_t K, int64_t N) {
    OP_GUARD();
    const uint16_t *xb = to_bf16(WS_A, x, M * K, "linear"), *wb = xb ? to_bf16(WS_B, w, N * K, "linear") : NULL;
    if (!wb || fail(lt_cuda_gemm(G.blas, 0, 1, M, N, K, xb, K, wb, K, y, N, 0.0f), "linear (gemm)")) return;
    if (bias) fail(lt_cuda_add_bias(y, bias, M, N, G.stream), "linear (bias)");
}

static void cu_qlinear(const float *x, const lt_qtensor *w, const float *bias, float *y, int64_t M, int64_t K,
                       int64_t N, float *scratch) {
    (void)scratch;
    OP_GUARD();
    lt_cuda_qt q = qt_of(w);
    if (M == 1 && K % 8 == 0) { /* decode: read the packed bytes once */
        if (fail(lt_cuda_qgemv(&q, x, y, 0.0f, G.stream), "qlinear (decode gemv)")) return;
    } else {
        const uint16_t *xb = to_bf16(WS_A, x, M * K, "qlinear");
        if (!xb) return;
        if (w->format == LT_Q_BF16) {
            if (fail(lt_cuda_gemm(G.blas, 0, 1, M, N, K, xb, K, w->comp[LT_QC_CODES], K, y, N, 0.0f), "qlinear (gemm)"))
                return;
        } else {
            const int64_t P = panel_rows(N, K);
            uint16_t *wb = ws(WS_B, P * K * 2);
            for (int64_t n0 = 0; wb && n0 < N; n0 += P) {
                const int64_t nb = N - n0 < P ? N - n0 : P;
                if (fail(lt_cuda_dequant_bf16(&q, n0, nb, wb, K, G.stream), "qlinear (dequant)") ||
                    fail(lt_cuda_gemm(G.blas, 0, 1, M, nb, K, xb, K, wb, K, y + n0, N, 0.0f), "qlinear (gemm)"))
                    return;
            }
            if (!wb) return;
        }
    }
    if (bias) fail(lt_cuda_add_bias(y, bias, M, N, G.stream), "qlinear (bias)");
}

static void cu_rmsnorm(const float *x, const float *g, float *y, int64_t rows, int64_t dim, float eps) {
    OP_GUARD();
    fail(lt_cuda_rmsnorm(x, g, y, rows, dim, eps, G.stream), "rmsnorm");
}

static void cu_rope(float *x, const int32_t *pos, int64_t T, int64_t n_heads, int64_t head_dim, const float *inv_freq) {
    OP_GUARD();
    fail(lt_cuda_rope(x, pos, T, n_heads, head_dim, inv_freq, 0, G.stream), "rope");
}

static void cu_attention(const float *q, const float *k, const float *v, float *out, int64_t T, int64_t n_past,
                         int64_t n_heads, int64_t n_kv_heads, int64_t hd, float *scratch) {
    (void)scratch;
    OP_GUARD();
    fail(lt_cuda_attention_cached(q, k, v, out, T, n_past, n_heads, n_kv_heads, hd, G.stream), "attention");
}

static void cu_swiglu(const float *gate, const float *up, float *out, int64_t n) {
    OP_GUARD();
    fail(lt_cuda_swiglu(gate, up, out, n, G.stream), "swiglu");
}

static void cu_embedding(const void *table, lt_dtype table_t, const int32_t *ids, float *out, int64_t n, int64_t dim) {
    OP_GUARD();
    if (table_t != LT_DTYPE_F32 && table_t != LT_DTYPE_BF16) {
        fail(LT_CUDA_ERR_INVALID_VALUE, "embedding (the table must be f32 or bf16 on the GPU; load it unquantized)");
        return;
    }
    fail(lt_cuda_embedding(table, table_t == LT_DTYPE_BF16, ids, out, n, dim, G.stream), "embedding");
}

static void cu_add(float *y, const float *x, int64_t n) {
    OP_GUARD();
    fail(lt_cuda_add(y, x, n, G.stream), "add");
}

/* c[M,N] = beta*c + a @ b with the three transposition patterns of the vtable. */
static void gemm_f32(int ta, int tb, const float *a, const float *b, float *c, int64_t M, int64_t K, int64_t N,
                     float beta, const char *op) {
    OP_GUARD();
    const uint16_t *ab = to_bf16(WS_A, a, M * K, op), *bb = ab ? to_bf16(WS_B, b, K * N, op) : NULL;
    if (!bb) return;
    fail(lt_cuda_gemm(G.blas, ta, tb, M, N, K, ab, ta ? M : K, bb, tb ? K : N, c, N, beta), op);
}

static void cu_matmul_nn(const float *a, const float *b, float *c, int64_t M, int64_t K, int64_t N, float beta) {
    gemm_f32(0, 0, a, b, c, M, K, N, beta, "matmul_nn");
}
static void cu_matmul_tn(const float *a, const float *b, float *c, int64_t M, int64_t K, int64_t N, float beta) {
    gemm_f32(1, 0, a, b, c, M, K, N, beta, "matmul_tn");
}
static void cu_matmul_nt(const float *a, const float *b, float *c, int64_t M, int64_t K, int64_t N, float beta) {
    gemm_f32(0, 1, a, b, c, M, K, N, beta, "matmul_nt");
}

/* dx[M,K] = beta*dx + dy[M,N] @ W[N,K], W decoded in panels of rows (each panel a slice of N). */
static void cu_qlinear_dx(const float *dy, const lt_qtensor *w, float *dx, int64_t M, int64_t K, int64_t N, float beta,
                          float *scratch) {
    (void)scratch;
    OP_GUARD();
    const uint16_t *db = to_bf16(WS_A, dy, M * N, "qlinear_dx");
    if (!db) return;
    if (w->format == LT_Q_BF16) {
        fail(lt_cuda_gemm(G.blas, 0, 0, M, K, N, db, N, w->comp[LT_QC_CODES], K, dx, K, beta), "qlinear_dx (gemm)");
        return;
    }
    lt_cuda_qt q = qt_of(w);
    const int64_t P = panel_rows(N, K);
    uint16_t *wb = ws(WS_B, P * K * 2);
    for (int64_t n0 = 0; wb && n0 < N; n0 += P) {
        const int64_t nb = N - n0 < P ? N - n0 : P;
        if (fail(lt_cuda_dequant_bf16(&q, n0, nb, wb, K, G.stream), "qlinear_dx (dequant)") ||
            fail(lt_cuda_gemm(G.blas, 0, 0, M, K, nb, db + n0, N, wb, K, dx, K, n0 == 0 ? beta : 1.0f),
                 "qlinear_dx (gemm)"))
            return;
    }
}

static void cu_rmsnorm_bwd(const float *x, const float *g, const float *dy, float *dx, int64_t rows, int64_t dim,
                           float eps, float beta) {
    OP_GUARD();
    fail(lt_cuda_rmsnorm_bwd(x, g, dy, dx, rows, dim, eps, beta, G.stream), "rmsnorm_bwd");
}

static void cu_rope_bwd(float *dx, const int32_t *pos, int64_t T, int64_t n_heads, int64_t head_dim,
                        const float *inv_freq) {
    OP_GUARD();
    fail(lt_cuda_rope(dx, pos, T, n_heads, head_dim, inv_freq, 1, G.stream), "rope_bwd");
}

static void cu_swiglu_bwd(const float *gate, const float *up, const float *dout, float *dgate, float *dup, int64_t n) {
    OP_GUARD();
    fail(lt_cuda_swiglu_bwd(gate, up, dout, dgate, dup, n, G.stream), "swiglu_bwd");
}

static void cu_attention_fwd(const float *q, const float *k, const float *v, const int32_t *doc, float *out, float *lse,
                             int64_t T, int64_t n_heads, int64_t n_kv_heads, int64_t hd, float *scratch) {
    (void)scratch;
    OP_GUARD();
    fail(lt_cuda_attention_fwd(q, k, v, doc, out, lse, T, n_heads, n_kv_heads, hd, G.stream), "attention_fwd");
}

static void cu_attention_bwd(const float *q, const float *k, const float *v, const int32_t *doc, const float *out,
                             const float *lse, const float *dout, float *dq, float *dk, float *dv, int64_t T,
                             int64_t n_heads, int64_t n_kv_heads, int64_t hd, float *scratch) {
    (void)scratch;
    OP_GUARD();
    float *s = ws(WS_MISC, lt_cuda_attention_bwd_scratch(T, n_heads) * (int64_t)sizeof(float));
    if (!s) return;
    fail(lt_cuda_attention_bwd(q, k, v, doc, out, lse, dout, dq, dk, dv, T, n_heads, n_kv_heads, hd, s, G.stream),
         "attention_bwd");
}

/* The lm_head + CE chunk loop (kernels/ce.cu holds the per-row work). Chunk: 8192 vocabulary rows
 * (the f32 logits chunk is T x 8192; the bf16 W chunk 8192 x H). */
#define LT_CUDA_CE_CHUNK 8192

/* Rows [c0, c0+cn) of the lm_head as bf16 (a view of a BF16 weight, else decoded into WS_B). */
static const uint16_t *ce_wchunk(const float *w, const lt_qtensor *wq, int64_t c0, int64_t cn, int64_t H) {
    if (wq && wq->format == LT_Q_BF16) return (const uint16_t *)wq->comp[LT_QC_CODES] + c0 * H;
    uint16_t *wb = ws(WS_B, cn * H * 2);
    if (!wb) return NULL;
    if (wq) {
        lt_cuda_qt q = qt_of(wq);
        if (fail(lt_cuda_dequant_bf16(&q, c0, cn, wb, H, G.stream), "ce_loss (dequant)")) return NULL;
    } else if (fail(lt_cuda_f32_to_bf16(w + c0 * H, wb, cn * H, G.stream), "ce_loss (convert)"))
        return NULL;
    return wb;
}

static double cu_ce_loss(const float *x, const float *w, const lt_qtensor *wq, const int32_t *labels, float *dx,
                         float grad_scale, int64_t T, int64_t H, int64_t V, int64_t *n_valid, float *scratch) {
    (void)scratch;
    if (n_valid) *n_valid = 0;
    if (!G.ready || G.err || G.err_status || T <= 0) return 0.0;
    const int64_t C = V < LT_CUDA_CE_CHUNK ? V : LT_CUDA_CE_CHUNK;
    /* WS_MISC: s [T] f64, rowloss [T] f64, loss partials (reduce scratch) f64, m, lab, lse [T] f32 */
    const int64_t red = lt_cuda_reduce_scratch(T);
    char *misc = ws(WS_MISC, (2 * T + red + 1) * 8 + 3 * T * 4);
    const uint16_t *xb = to_bf16(WS_A, x, T * H, "ce_loss");
    float *L = ws(WS_L, T * C * 4);
    if (!misc || !xb || !L) return 0.0;
    double *s = (double *)misc, *rowloss = s + T, *reds = rowloss + T, *total = reds + red;
    float *m = (float *)(total + 1), *lab = m + T, *lse = lab + T;
    if (fail(lt_cuda_ce_init(m, s, lab, T, G.stream), "ce_loss (init)")) return 0.0;
    for (int64_t c0 = 0; c0 < V; c0 += C) {
        const int64_t cn = V - c0 < C ? V - c0 : C;
        const uint16_t *wc = ce_wchunk(w, wq, c0, cn, H);
        if (!wc || fail(lt_cuda_gemm(G.blas, 0, 1, T, cn, H, xb, H, wc, H, L, cn, 0.0f), "ce_loss (logits)") ||
            fail(lt_cuda_ce_stats(L, cn, labels, c0, cn, m, s, lab, T, G.stream), "ce_loss (stats)"))
            return 0.0;
    }
    if (fail(lt_cuda_ce_finish(m, s, lab, labels, lse, rowloss, T, G.stream), "ce_loss (finish)") ||
        fail(lt_cuda_sum_f64(rowloss, T, total, reds, G.stream), "ce_loss (sum)"))
        return 0.0;
    if (dx) {
        uint16_t *Gb = ws(WS_G, T * C * 2);
        for (int64_t c0 = 0; Gb && c0 < V; c0 += C) {
            const int64_t cn = V - c0 < C ? V - c0 : C;
            const uint16_t *wc = ce_wchunk(w, wq, c0, cn, H);
            if (!wc || fail(lt_cuda_gemm(G.blas, 0, 1, T, cn, H, xb, H, wc, H, L, cn, 0.0f), "ce_loss (logits)") ||
                fail(lt_cuda_ce_grad(L, cn, labels, lse, c0, cn, grad_scale, Gb, cn, T, G.stream), "ce_loss (grad)") ||
                fail(lt_cuda_gemm(G.blas, 0, 0, T, H, cn, Gb, cn, wc, H, dx, H, c0 == 0 ? 0.0f : 1.0f), "ce_loss (dx)"))
                return 0.0;
        }
        if (!Gb) return 0.0;
    }
    double loss = 0.0;
    int32_t *lh = malloc((size_t)T * sizeof *lh);
    if (!lh) {
        fail(LT_CUDA_ERR_MEMORY_ALLOCATION, "ce_loss (host memory for the labels)");
        return 0.0;
    }
    if (fail(lt_cuda_memcpy_d2h(&loss, total, sizeof loss, G.stream), "ce_loss (read loss)") ||
        fail(lt_cuda_memcpy_d2h(lh, labels, (size_t)T * sizeof *lh, G.stream), "ce_loss (read labels)")) {
        free(lh);
        return 0.0;
    }
    int64_t nv = 0;
    for (int64_t t = 0; t < T; t++) nv += lh[t] >= 0;
    free(lh);
    if (n_valid) *n_valid = nv;
    return loss;
}

/* ---------------------------------------------------------------- data movement of the training step */

static void cu_copy_in(void *dst, const void *src, int64_t bytes) {
    OP_GUARD();
    if (bytes <= 0) return;
    if (G.unified) {
        /* queued kernels may still read dst: wait before overwriting it from the host */
        if (!fail(lt_cuda_sync(G.stream), "copy_in (wait)")) memcpy(dst, src, (size_t)bytes);
        return;
    }
    /* synchronous: src is the caller's (often a stack or malloc buffer freed right after) */
    if (!fail(lt_cuda_memcpy_h2d(dst, src, (size_t)bytes, G.stream), "copy_in")) fail(lt_cuda_sync(G.stream), "copy_in");
}

static void cu_copy_out(void *dst, const void *src, int64_t bytes) {
    OP_GUARD();
    if (bytes <= 0) return;
    if (G.unified) {
        if (!fail(lt_cuda_sync(G.stream), "copy_out (wait)")) memcpy(dst, src, (size_t)bytes);
        return;
    }
    fail(lt_cuda_memcpy_d2h(dst, src, (size_t)bytes, G.stream), "copy_out"); /* waits for the stream */
}

static void cu_zero(float *x, int64_t n) {
    OP_GUARD();
    if (n > 0) fail(lt_cuda_memset(x, 0, (size_t)n * sizeof(float), G.stream), "zero");
}

static void cu_add3(float *out, const float *a, const float *b, int64_t n) {
    OP_GUARD();
    fail(lt_cuda_add3(out, a, b, n, G.stream), "add3");
}

static void cu_scale(float *out, const float *x, float s, int64_t n) {
    OP_GUARD();
    fail(lt_cuda_scale(out, x, s, n, G.stream), "scale");
}

static void cu_add_rows(float *y, const float *bias, int64_t rows, int64_t n) {
    OP_GUARD();
    fail(lt_cuda_add_bias(y, bias, rows, n, G.stream), "add_rows");
}

static void cu_gather_rows(const float *src, const int32_t *idx, int64_t n_idx, int64_t dim, float *dst) {
    OP_GUARD();
    fail(lt_cuda_gather_rows(src, idx, n_idx, dim, dst, G.stream), "gather_rows");
}

static void cu_scatter_rows(const float *src, const int32_t *idx, int64_t n_idx, int64_t dim, float *dst) {
    OP_GUARD();
    fail(lt_cuda_scatter_rows(src, idx, n_idx, dim, dst, G.stream), "scatter_rows");
}

static void cu_embedding_q(const lt_qtensor *table, const int32_t *ids, float *out, int64_t n) {
    OP_GUARD();
    lt_cuda_qt q = qt_of(table);
    fail(lt_cuda_embedding_q(&q, ids, out, n, G.stream), "embedding_q");
}

static void cu_dropout(uint64_t key, int64_t layer, int module, double p, const float *x, float *out, int64_t n) {
    OP_GUARD();
    fail(lt_cuda_dropout(key, layer, module, p, x, out, n, G.stream), "dropout");
}

static const lt_backend cuda_backend = {
    .name = "cuda",
    .own_workspace = true,
    .linear = cu_linear,
    .qlinear = cu_qlinear,
    .rmsnorm = cu_rmsnorm,
    .rope = cu_rope,
    .attention = cu_attention,
    .swiglu = cu_swiglu,
    .embedding = cu_embedding,
    .add = cu_add,
    .matmul_nn = cu_matmul_nn,
    .matmul_tn = cu_matmul_tn,
    .matmul_nt = cu_matmul_nt,
    .qlinear_dx = cu_qlinear_dx,
    .rmsnorm_bwd = cu_rmsnorm_bwd,
    .rope_bwd = cu_rope_bwd,
    .swiglu_bwd = cu_swiglu_bwd,
    .attention_fwd = cu_attention_fwd,
    .attention_bwd = cu_attention_bwd,
    .ce_loss = cu_ce_loss,
    .copy_in = cu_copy_in,
    .copy_out = cu_copy_out,
    .zero = cu_zero,
    .add3 = cu_add3,
    .scale = cu_scale,
    .add_rows = cu_add_rows,
    .gather_rows = cu_gather_rows,
    .scatter_rows = cu_scatter_rows,
    .embedding_q = cu_embedding_q,
    .dropout = cu_dropout,
};

const lt_backend *lt_backend_cuda(void) { return G.ready ? &cuda_backend : NULL; }

/* ---------------------------------------------------------------- optimizer */

lt_status lt_cuda_adamw_step(lt_pool *pool, const lt_cuda_param *params, int n_params, const lt_cuda_adamw_args *a,
                             double *norm) {
    if (!G.ready) return lt_errorf(LT_ERR_INVALID_ARG, "AdamW on the GPU: the CUDA backend is not initialised");
    if (n_params <= 0) return NULL;
    int64_t max_n = 0;
    for (int i = 0; i < n_params; i++) max_n = params[i].n > max_n ? params[i].n : max_n;
    const int64_t red = lt_cuda_reduce_scratch(max_n > n_params ? max_n : n_params);
    /* device block: descriptors, per-tensor sums of squares, reduce scratch, total, norm, clip, hp */
    const int64_t desc_bytes = (int64_t)n_params * (int64_t)sizeof(lt_cuda_adamw_tensor);
    const int64_t off_ss = (desc_bytes + 63) / 64 * 64, off_red = off_ss + (int64_t)n_params * 8,
                  off_norm = off_red + red * 8, off_clip = off_norm + 8;
    char *blk = NULL;
    lt_status st = lt_pool_alloc(pool, LT_POOL_SCRATCH, off_clip + 8, "AdamW launch block", (void **)&blk);
    if (st) return st;
    lt_cuda_adamw_tensor *desc = malloc((size_t)desc_bytes);
    if (!desc) {
        lt_pool_free(pool, blk);
        return lt_errorf(LT_ERR_NOMEM, "out of memory for %d AdamW descriptors", n_params);
    }
    for (int i = 0; i < n_params; i++)
        desc[i] = (lt_cuda_adamw_tensor){params[i].param, params[i].grad, params[i].m, params[i].v, params[i].bf16,
                                         params[i].n};
    st = lt_cuda_upload(blk, desc, desc_bytes);
    free(desc);
    double *ss = (double *)(blk + off_ss), *reds = (double *)(blk + off_red), *nrm = (double *)(blk + off_norm);
    float *clip = (float *)(blk + off_clip);
    int rc = 0;
    for (int i = 0; !st && !rc && i < n_params; i++) rc = lt_cuda_sumsq_f32(params[i].grad, params[i].n, ss + i, reds, G.stream);
    if (!st && !rc) rc = lt_cuda_clip_factor(ss, n_params, a->max_grad_norm, clip, nrm, G.stream);
    double n = 0.0;
    if (!st && !rc) rc = lt_cuda_memcpy_d2h(&n, nrm, sizeof n, G.stream);
    /* a non-finite norm: no update (the caller skips the step, as lt_lora_optimizer_step does) */
    const lt_cuda_adamw_hp hp = {a->lr, a->beta1, a->beta2, a->eps, a->weight_decay, a->step};
    if (!st && !rc && isfinite(n)) rc = lt_cuda_adamw((const lt_cuda_adamw_tensor *)blk, n_params, max_n, &hp, clip, G.stream);
    if (!st && rc) st = lt_errorf(LT_ERR_INTERNAL, "AdamW on the GPU: %s", lt_cuda_strerror(rc));
    lt_pool_free(pool, blk);
    if (norm) *norm = n;
    return st;
}

bool lt_cuda_built(void) { return true; }
int lt_cuda_device_count(char *desc, size_t cap) { return lt_cuda_query(desc, cap); }

#else /* no CUDA toolkit at build time */

static lt_status not_built(void) {
    return lt_errorf(LT_ERR_UNSUPPORTED, "this loft was built without the CUDA backend (nvcc was not found at "
                                         "build time): install the CUDA toolkit and rebuild");
}
lt_status lt_cuda_init(lt_pool *pool, const lt_cuda_opts *o) {
    (void)pool;
    (void)o;
    return not_built();
}
void lt_cuda_shutdown(void) {}
const lt_backend *lt_backend_cuda(void) { return NULL; }
lt_status lt_cuda_check(const char *where) {
    (void)where;
    return not_built();
}
bool lt_cuda_unified(void) { return false; }
const char *lt_cuda_describe(void) { return "CUDA backend not built"; }
lt_status lt_cuda_upload(void *dst, const void *src, int64_t bytes) {
    (void)dst, (void)src, (void)bytes;
    return not_built();
}
lt_status lt_cuda_download(void *dst, const void *src, int64_t bytes) {
    (void)dst, (void)src, (void)bytes;
    return not_built();
}
lt_status lt_cuda_qtensor_upload(lt_pool *pool, lt_pool_tag tag, const lt_qtensor *host, const char *name,
                                 lt_qtensor *dev) {
    (void)pool, (void)tag, (void)host, (void)name;
    memset(dev, 0, sizeof *dev);
    return not_built();
}
lt_status lt_cuda_adamw_step(lt_pool *pool, const lt_cuda_param *params, int n_params, const lt_cuda_adamw_args *a,
                             double *norm) {
    (void)pool, (void)params, (void)n_params, (void)a;
    if (norm) *norm = 0.0;
    return not_built();
}
bool lt_cuda_built(void) { return false; }
int lt_cuda_device_count(char *desc, size_t cap) {
    snprintf(desc, cap, "CUDA backend not built");
    return 0;
}
#endif
