/* CUDA backend parity (label gpu): every op of the vtable, forward and backward, on random inputs
 * of several shapes, against the CPU backend, plus the dequantizers and AdamW. Without a GPU (or
 * without the CUDA backend built) it prints SKIPPED with the reason and exits 77 (ctest: skipped).
 *
 * The measure is the normalised MSE  nmse = sum (gpu - cpu)^2 / sum cpu^2  per output, against a
 * limit per op class:
 *  - exact:    the f32 dequantizers are bit-identical to quant/ (the same f32 roundings, written with
 *              __fmul_rn/__fadd_rn so nothing is contracted), and the bf16 ones equal bf16(cpu f32);
 *  - f32 ops   (RMSNorm, RoPE, SwiGLU, embedding, add, attention, their backwards): same formulas in
 *              f32 with a different summation order / libm: relative errors of a few ulps
 *              (2^-24 = 6e-8 each), nmse ~1e-14; limit 1e-10 (10^4 margin, still 10^6 below a bug
 *              such as a wrong mask entry or a missing rescale, which gives nmse > 1e-4);
 *  - bf16 GEMM ops (linear, qlinear, matmul_nn/tn/nt, qlinear_dx, the CE's dx): both operands are
 *              rounded to bf16 (unit roundoff u = 2^-9); each product then carries a relative error
 *              ~ d_a + d_b, uniform-ish in +-u each, variance 2u^2/3 = 2.5e-6, and a sum of
 *              independent terms keeps that ratio: predicted nmse ~2.5e-6; limit 1e-4 (40x margin
 *              for cancellation in random data), while a transposed operand or a dropped panel
 *              gives nmse ~1 and a missing bias ~1e-2;
 *  - the CE loss (a sum of lse - logit over rows, logits from bf16 operands): |dloss| / loss <= 2e-3
 *              (each logit off by ~u*|logit|*sqrt(2/3)/sqrt(H)-ish relative; 2e-3 is 4x u);
 *  - AdamW:    train/optim.c's f32 formula with the same f32 constants: equal unless the double
 *              norm (summed in another order) moves the f32 clip factor by an ulp: nmse <= 1e-12.
 * Determinism: attention backward and the CE run twice and must give identical bits. */
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "gpu_test.h"
#include "quant/quant.h"
#include "train/optim.h"
#ifdef LOFT_WITH_CUDA
#include "lt_cuda.cuh" /* the dequantizers are checked directly, below the vtable */
#endif

#define LIM_F32 1e-10
#define LIM_BF16 1e-4

static lt_pool *HP, *DP; /* host pool (CPU reference), device pool (GPU) */
static const lt_backend *CPU, *GPU;
static uint64_t seed = 1;

static float *hbuf(int64_t n) {
    void *p = NULL;
    lt_status st = lt_pool_alloc(HP, LT_POOL_SCRATCH, n * 4 + 64, "host", &p);
    LT_ASSERT(!st);
    return p;
}

static void *dbuf(int64_t bytes) {
    void *p = NULL;
    lt_status st = lt_pool_alloc(DP, LT_POOL_SCRATCH, bytes + 64, "device", &p);
    LT_ASSERT(!st);
    return p;
}

static float *up(const float *h, int64_t n) {
    float *d = dbuf(n * 4);
    lt_status st = lt_cuda_upload(d, h, n * 4);
    LT_ASSERT(!st);
    return d;
}

static void *up_bytes(const void *h, int64_t n) {
    void *d = dbuf(n);
    lt_status st = lt_cuda_upload(d, h, n);
    LT_ASSERT(!st);
    return d;
}

static float *down(const float *d, int64_t n) {
    float *h = hbuf(n);
    CHECK_OK(lt_cuda_check("op"));
    lt_status st = lt_cuda_download(h, d, n * 4);
    LT_ASSERT(!st);
    return h;
}

static float *randn(int64_t n, float scale) {
    float *x = hbuf(n);
    lt_rng r;
    lt_rng_init(&r, seed++);
    for (int64_t i = 0; i < n; i++) x[i] = scale * lt_rng_normal(&r);
    return x;
}

static void check_nmse(const char *what, const float *gpu_dev, const float *cpu, int64_t n, double lim) {
    const float *g = down(gpu_dev, n);
    const double v = gpu_nmse(g, cpu, n);
    printf("  %-44s nmse %.3e (limit %.0e)\n", what, v, lim);
    CHECKF(v <= lim, "%s: nmse %.3e > %.0e", what, v, lim);
}

/* ---------------------------------------------------------------- dequant + quantized GEMMs */

static void test_quant(lt_qformat f, int64_t N, int64_t K) {
    char name[64];
    float *w = randn(N * K, 0.05f);
    lt_qtensor qh, qd;
    CHECK_OK(lt_qtensor_alloc(HP, LT_POOL_WEIGHTS, f, N, K, "w", &qh));
    CHECK_OK(lt_quantize(w, "w", &qh));
    CHECK_OK(lt_cuda_qtensor_upload(DP, LT_POOL_WEIGHTS, &qh, "w", &qd));
#ifdef LOFT_WITH_CUDA
    /* f32 decode: bit-identical */
    float *ref = hbuf(N * K), *dd = dbuf(N * K * 4);
    lt_dequantize_rows(&qh, 0, N, ref);
    lt_cuda_qt q = {(int)f, N, K, qd.comp[0], qd.comp[1], qd.comp[2], qd.comp[3]};
    CHECK(lt_cuda_dequant_f32(&q, 0, N, dd, K, NULL) == 0);
    float *got = down(dd, N * K);
    int64_t bad = 0;
    for (int64_t i = 0; i < N * K; i++) bad += memcmp(&got[i], &ref[i], 4) != 0;
    printf("  dequant %-8s [%lld, %lld] f32: %lld of %lld values differ (must be 0)\n", lt_qformat_name(f),
           (long long)N, (long long)K, (long long)bad, (long long)(N * K));
    CHECKF(bad == 0, "%s f32 dequant differs in %lld values", lt_qformat_name(f), (long long)bad);
    /* bf16 decode of rows 1..N-1: bf16(cpu f32) */
    uint16_t *db = dbuf(N * K * 2), *hb = (uint16_t *)hbuf(N * K);
    CHECK(lt_cuda_dequant_bf16(&q, 1, N - 1, db, K, NULL) == 0);
    CHECK_OK(lt_cuda_check("dequant_bf16"));
    CHECK_OK(lt_cuda_download(hb, db, (N - 1) * K * 2));
    bad = 0;
    for (int64_t i = 0; i < (N - 1) * K; i++) bad += hb[i] != lt_f32_to_bf16(ref[K + i]);
    CHECKF(bad == 0, "%s bf16 dequant differs from bf16(cpu) in %lld values", lt_qformat_name(f), (long long)bad);
#endif
    /* qlinear (M = 1: the decode GEMV; M > 1: dequant panels + cuBLASLt), qlinear_dx */
    const int64_t Ms[3] = {1, 7, 64};
    for (int i = 0; i < 3; i++) {
        const int64_t M = Ms[i];
        float *x = randn(M * K, 1.0f), *bias = randn(N, 0.1f), *y = hbuf(M * N);
        float *s = hbuf(lt_qlinear_scratch(M, K, N) + 1);
        CPU->qlinear(x, &qh, bias, y, M, K, N, s);
        float *xd = up(x, M * K), *bd = up(bias, N), *yd = dbuf(M * N * 4);
        GPU->qlinear(xd, &qd, bd, yd, M, K, N, NULL);
        snprintf(name, sizeof name, "qlinear %s M=%lld K=%lld N=%lld", lt_qformat_name(f), (long long)M, (long long)K,
                 (long long)N);
        check_nmse(name, yd, y, M * N, LIM_BF16);
        float *dy = randn(M * N, 1.0f), *dx = randn(M * K, 1.0f);
        float *dxd = up(dx, M * K), *dyd = up(dy, M * N);
        float *s2 = hbuf(lt_qlinear_dx_scratch(M, K, N) + 1);
        CPU->qlinear_dx(dy, &qh, dx, M, K, N, 1.0f, s2);
        GPU->qlinear_dx(dyd, &qd, dxd, M, K, N, 1.0f, NULL);
        snprintf(name, sizeof name, "qlinear_dx %s M=%lld (beta 1)", lt_qformat_name(f), (long long)M);
        check_nmse(name, dxd, dx, M * K, LIM_BF16);
    }
    lt_qtensor_free(DP, &qd);
    lt_qtensor_free(HP, &qh);
}

/* ---------------------------------------------------------------- dense GEMMs */

static void test_gemms(int64_t M, int64_t K, int64_t N) {
    char name[96];
    float *x = randn(M * K, 1.0f), *w = randn(N * K, 0.1f), *bias = randn(N, 0.1f), *y = hbuf(M * N);
    CPU->linear(x, w, bias, y, M, K, N);
    float *yd = dbuf(M * N * 4);
    GPU->linear(up(x, M * K), up(w, N * K), up(bias, N), yd, M, K, N);
    snprintf(name, sizeof name, "linear+bias %lldx%lldx%lld", (long long)M, (long long)K, (long long)N);
    check_nmse(name, yd, y, M * N, LIM_BF16);
    for (int beta = 0; beta <= 1; beta++) {
        float *a = randn(M * K, 1.0f), *b = randn(K * N, 1.0f), *c = randn(M * N, 1.0f);
        float *cd = up(c, M * N), *ad = up(a, M * K), *bd = up(b, K * N);
        CPU->matmul_nn(a, b, c, M, K, N, (float)beta);
        GPU->matmul_nn(ad, bd, cd, M, K, N, (float)beta);
        snprintf(name, sizeof name, "matmul_nn %lldx%lldx%lld beta %d", (long long)M, (long long)K, (long long)N, beta);
        check_nmse(name, cd, c, M * N, LIM_BF16);
        /* tn: a is [K, M]; nt: b is [N, K] (same buffers reinterpreted: sizes match) */
        float *c2 = randn(M * N, 1.0f), *c2d = up(c2, M * N);
        CPU->matmul_tn(a, b, c2, M, K, N, (float)beta);
        GPU->matmul_tn(ad, bd, c2d, M, K, N, (float)beta);
        snprintf(name, sizeof name, "matmul_tn %lldx%lldx%lld beta %d", (long long)M, (long long)K, (long long)N, beta);
        check_nmse(name, c2d, c2, M * N, LIM_BF16);
        float *c3 = randn(M * N, 1.0f), *c3d = up(c3, M * N);
        CPU->matmul_nt(a, b, c3, M, K, N, (float)beta);
        GPU->matmul_nt(ad, bd, c3d, M, K, N, (float)beta);
        snprintf(name, sizeof name, "matmul_nt %lldx%lldx%lld beta %d", (long long)M, (long long)K, (long long)N, beta);
        check_nmse(name, c3d, c3, M * N, LIM_BF16);
    }
}

/* ---------------------------------------------------------------- row and elementwise ops */

static void test_rowops(int64_t rows, int64_t dim, int64_t n_heads, int64_t hd) {
    char name[96];
    float *x = randn(rows * dim, 1.0f), *g = randn(dim, 1.0f), *y = hbuf(rows * dim), *yd = dbuf(rows * dim * 4);
    float *xd = up(x, rows * dim), *gd = up(g, dim);
    CPU->rmsnorm(x, g, y, rows, dim, 1e-5f);
    GPU->rmsnorm(xd, gd, yd, rows, dim, 1e-5f);
    snprintf(name, sizeof name, "rmsnorm %lldx%lld", (long long)rows, (long long)dim);
    check_nmse(name, yd, y, rows * dim, LIM_F32);
    for (int beta = 0; beta <= 1; beta++) {
        float *dy = randn(rows * dim, 1.0f), *dx = randn(rows * dim, 1.0f), *dxd = up(dx, rows * dim);
        CPU->rmsnorm_bwd(x, g, dy, dx, rows, dim, 1e-5f, (float)beta);
        GPU->rmsnorm_bwd(xd, gd, up(dy, rows * dim), dxd, rows, dim, 1e-5f, (float)beta);
        snprintf(name, sizeof name, "rmsnorm_bwd %lldx%lld beta %d", (long long)rows, (long long)dim, beta);
        check_nmse(name, dxd, dx, rows * dim, LIM_F32);
    }
    /* RoPE over [T=rows, n_heads, hd] with llama3 scaling and positions up to 100000 */
    float *inv = hbuf(hd / 2);
    lt_rope_params rp = {500000.0, hd, true, 8.0, 1.0, 4.0, 8192};
    lt_rope_inv_freq(&rp, inv);
    int32_t *pos = (int32_t *)hbuf(rows);
    for (int64_t t = 0; t < rows; t++) pos[t] = (int32_t)(t * 7919 % 100000);
    const int64_t n = rows * n_heads * hd;
    float *q = randn(n, 1.0f), *qd = up(q, n);
    int32_t *posd = up_bytes(pos, rows * 4);
    float *invd = up(inv, hd / 2);
    CPU->rope(q, pos, rows, n_heads, hd, inv);
    GPU->rope(qd, posd, rows, n_heads, hd, invd);
    snprintf(name, sizeof name, "rope T=%lld heads=%lld hd=%lld", (long long)rows, (long long)n_heads, (long long)hd);
    check_nmse(name, qd, q, n, LIM_F32);
    CPU->rope_bwd(q, pos, rows, n_heads, hd, inv);
    GPU->rope_bwd(qd, posd, rows, n_heads, hd, invd);
    check_nmse("rope_bwd (inverse rotation)", qd, q, n, LIM_F32);
    /* SwiGLU */
    float *ga = randn(n, 3.0f), *u = randn(n, 1.0f), *o = hbuf(n), *od = dbuf(n * 4);
    float *gad = up(ga, n), *ud = up(u, n);
    CPU->swiglu(ga, u, o, n);
    GPU->swiglu(gad, ud, od, n);
    check_nmse("swiglu", od, o, n, LIM_F32);
    float *dout = randn(n, 1.0f), *dg = hbuf(n), *du = hbuf(n), *dgd = dbuf(n * 4), *dud = dbuf(n * 4);
    CPU->swiglu_bwd(ga, u, dout, dg, du, n);
    GPU->swiglu_bwd(gad, ud, up(dout, n), dgd, dud, n);
    check_nmse("swiglu_bwd dgate", dgd, dg, n, LIM_F32);
    check_nmse("swiglu_bwd dup", dud, du, n, LIM_F32);
    /* add */
    float *a = randn(n, 1.0f), *ad = up(a, n);
    CPU->add(a, o, n);
    GPU->add(ad, od, n);
    check_nmse("add", ad, a, n, LIM_F32);
    /* embedding from f32 and bf16 tables */
    const int64_t vocab = 300;
    float *tab = randn(vocab * dim, 1.0f);
    uint16_t *tb = (uint16_t *)hbuf(vocab * dim);
    for (int64_t i = 0; i < vocab * dim; i++) tb[i] = lt_f32_to_bf16(tab[i]);
    int32_t *ids = (int32_t *)hbuf(rows);
    for (int64_t t = 0; t < rows; t++) ids[t] = (int32_t)((t * 31 + 7) % vocab);
    int32_t *idsd = up_bytes(ids, rows * 4);
    float *e = hbuf(rows * dim), *ed = dbuf(rows * dim * 4);
    CPU->embedding(tab, LT_DTYPE_F32, ids, e, rows, dim);
    GPU->embedding(up(tab, vocab * dim), LT_DTYPE_F32, idsd, ed, rows, dim);
    check_nmse("embedding f32 table", ed, e, rows * dim, 0.0);
    CPU->embedding(tb, LT_DTYPE_BF16, ids, e, rows, dim);
    GPU->embedding(up_bytes(tb, vocab * dim * 2), LT_DTYPE_BF16, idsd, ed, rows, dim);
    check_nmse("embedding bf16 table", ed, e, rows * dim, 0.0);
}

/* ---------------------------------------------------------------- attention */

static void test_attention(int64_t T, int64_t H, int64_t KV, int64_t hd, int n_docs) {
    char name[128];
    const int64_t nq = T * H * hd, nk = T * KV * hd;
    float *q = randn(nq, 1.0f), *k = randn(nk, 1.0f), *v = randn(nk, 1.0f);
    int32_t *doc = NULL;
    if (n_docs > 1) {
        doc = (int32_t *)hbuf(T);
        for (int64_t t = 0; t < T; t++) doc[t] = (int32_t)(t * n_docs / T);
    }
    float *out = hbuf(nq), *lse = hbuf(T * H);
    float *s = hbuf(lt_attention_train_scratch(T, H, hd) + 1);
    CPU->attention_fwd(q, k, v, doc, out, lse, T, H, KV, hd, s);
    float *qd = up(q, nq), *kd = up(k, nk), *vd = up(v, nk), *outd = dbuf(nq * 4), *lsed = dbuf(T * H * 4);
    int32_t *docd = doc ? up_bytes(doc, T * 4) : NULL;
    GPU->attention_fwd(qd, kd, vd, docd, outd, lsed, T, H, KV, hd, NULL);
    snprintf(name, sizeof name, "attention_fwd T=%lld H=%lld KV=%lld hd=%lld docs=%d", (long long)T, (long long)H,
             (long long)KV, (long long)hd, n_docs);
    check_nmse(name, outd, out, nq, LIM_F32);
    check_nmse("  lse", lsed, lse, T * H, LIM_F32);
    float *dout = randn(nq, 1.0f), *dq = hbuf(nq), *dk = hbuf(nk), *dv = hbuf(nk);
    CPU->attention_bwd(q, k, v, doc, out, lse, dout, dq, dk, dv, T, H, KV, hd, s);
    float *doutd = up(dout, nq), *dqd = dbuf(nq * 4), *dkd = dbuf(nk * 4), *dvd = dbuf(nk * 4);
    GPU->attention_bwd(qd, kd, vd, docd, outd, lsed, doutd, dqd, dkd, dvd, T, H, KV, hd, NULL);
    check_nmse("  attention_bwd dq", dqd, dq, nq, LIM_F32);
    check_nmse("  attention_bwd dk", dkd, dk, nk, LIM_F32);
    check_nmse("  attention_bwd dv", dvd, dv, nk, LIM_F32);
    /* determinism: a second run gives the same bits */
    float *dq1 = down(dqd, nq), *dk1 = down(dkd, nk);
    GPU->attention_bwd(qd, kd, vd, docd, outd, lsed, doutd, dqd, dkd, dvd, T, H, KV, hd, NULL);
    float *dq2 = down(dqd, nq), *dk2 = down(dkd, nk);
    CHECKF(!memcmp(dq1, dq2, (size_t)nq * 4) && !memcmp(dk1, dk2, (size_t)nk * 4),
           "attention_bwd is not deterministic (T=%lld)", (long long)T);
    /* inference form against a cache: the last T/2 rows as new queries after n_past = T - T/2 */
    const int64_t Tn = T / 2 > 0 ? T / 2 : 1, past = T - Tn;
    float *o2 = hbuf(Tn * H * hd), *o2d = dbuf(Tn * H * hd * 4);
    float *s2 = hbuf(lt_attention_scratch(Tn, past, H) + 1);
    CPU->attention(q + past * H * hd, k, v, o2, Tn, past, H, KV, hd, s2);
    GPU->attention(qd + past * H * hd, kd, vd, o2d, Tn, past, H, KV, hd, NULL);
    snprintf(name, sizeof name, "  attention (cache, n_past=%lld, T=%lld)", (long long)past, (long long)Tn);
    check_nmse(name, o2d, o2, Tn * H * hd, LIM_F32);
}

/* ---------------------------------------------------------------- chunked lm_head + CE */

static void test_ce(int64_t T, int64_t H, int64_t V, bool quant) {
    float *x = randn(T * H, 1.0f), *w = randn(V * H, 0.05f);
    int32_t *lab = (int32_t *)hbuf(T);
    lt_rng r;
    lt_rng_init(&r, seed++);
    for (int64_t t = 0; t < T; t++) lab[t] = t % 5 == 3 ? -100 : (int32_t)(lt_rng_u32(&r) % (uint32_t)V);
    lt_qtensor qh, qd;
    memset(&qh, 0, sizeof qh);
    memset(&qd, 0, sizeof qd);
    if (quant) {
        CHECK_OK(lt_qtensor_alloc(HP, LT_POOL_WEIGHTS, LT_Q_NF4, V, H, "lm_head", &qh));
        CHECK_OK(lt_quantize(w, "lm_head", &qh));
        CHECK_OK(lt_cuda_qtensor_upload(DP, LT_POOL_WEIGHTS, &qh, "lm_head", &qd));
    }
    float *dx = hbuf(T * H), *s = hbuf(lt_ce_scratch(T, H, V) + 1);
    int64_t nv = 0, nvg = 0;
    const float gs = 1.0f / 37.0f;
    const double loss = CPU->ce_loss(x, quant ? NULL : w, quant ? &qh : NULL, lab, dx, gs, T, H, V, &nv, s);
    float *xd = up(x, T * H), *wd = quant ? NULL : up(w, V * H), *dxd = dbuf(T * H * 4);
    int32_t *labd = up_bytes(lab, T * 4);
    const double lg = GPU->ce_loss(xd, wd, quant ? &qd : NULL, labd, dxd, gs, T, H, V, &nvg, NULL);
    CHECK_OK(lt_cuda_check("ce_loss"));
    const double rel = fabs(lg - loss) / fabs(loss);
    printf("  ce_loss T=%lld H=%lld V=%lld %s: loss %.6f vs cpu %.6f, rel %.2e (limit 2e-3), valid %lld/%lld\n",
           (long long)T, (long long)H, (long long)V, quant ? "nf4" : "f32", lg, loss, rel, (long long)nvg, (long long)nv);
    CHECKF(rel <= 2e-3, "ce loss rel err %.3e", rel);
    CHECK(nv == nvg);
    check_nmse("  ce_loss dx", dxd, dx, T * H, LIM_BF16);
    /* determinism */
    float *dx1 = down(dxd, T * H);
    const double lg2 = GPU->ce_loss(xd, wd, quant ? &qd : NULL, labd, dxd, gs, T, H, V, &nvg, NULL);
    float *dx2 = down(dxd, T * H);
    CHECKF(lg2 == lg && !memcmp(dx1, dx2, (size_t)(T * H) * 4), "ce_loss is not deterministic");
    if (quant) {
        lt_qtensor_free(DP, &qd);
        lt_qtensor_free(HP, &qh);
    }
}

/* ---------------------------------------------------------------- AdamW */

static void test_adamw(void) {
    const int NT = 3;
    const int64_t sizes[3] = {1000, 37, 4096};
    float *p[3], *g[3], *m[3], *v[3];
    lt_cuda_param dp[3];
    for (int i = 0; i < NT; i++) {
        p[i] = randn(sizes[i], 0.1f);
        m[i] = hbuf(sizes[i]);
        v[i] = hbuf(sizes[i]);
        memset(m[i], 0, (size_t)sizes[i] * 4);
        memset(v[i], 0, (size_t)sizes[i] * 4);
        dp[i] = (lt_cuda_param){up(p[i], sizes[i]), NULL, up(m[i], sizes[i]), up(v[i], sizes[i]), NULL, sizes[i]};
    }
    const lt_adamw_cfg c = {2e-3, 0.9, 0.999, 1e-8, 0.01};
    for (int64_t step = 1; step <= 3; step++) {
        for (int i = 0; i < NT; i++) {
            g[i] = randn(sizes[i], 1.0f);
            dp[i].grad = up(g[i], sizes[i]);
        }
        const double norm = lt_clip_grad_norm(g, sizes, NT, 1.0);
        for (int i = 0; i < NT; i++) lt_adamw_step(&c, c.lr, step, p[i], g[i], m[i], v[i], sizes[i]);
        const lt_cuda_adamw_args a = {2e-3, 0.9, 0.999, 1e-8, 0.01, 1.0, step};
        double gnorm = 0;
        CHECK_OK(lt_cuda_adamw_step(DP, dp, NT, &a, &gnorm));
        printf("  adamw step %lld: grad norm %.9g vs cpu %.9g\n", (long long)step, gnorm, norm);
        CHECK(fabs(gnorm - norm) <= 1e-12 * norm); /* double sums in another order: ~1e-16 relative */
    }
    for (int i = 0; i < NT; i++) {
        char name[64];
        snprintf(name, sizeof name, "adamw params (3 steps, clip 1.0) tensor %d", i);
        check_nmse(name, dp[i].param, p[i], sizes[i], 1e-12);
    }
}

int main(void) {
    if (!gpu_start(16LL << 30, &DP)) return 77;
    CHECK_OK(lt_pool_create(4LL << 30, &HP));
    CPU = lt_backend_cpu();
    GPU = lt_backend_cuda();
    for (lt_qformat f = LT_Q_BF16; f < LT_Q_COUNT; f++) test_quant(f, 96, 256);
    test_quant(LT_Q_NF4, 1000, 4096); /* panels, more than one double-quant group per row */
    test_gemms(1, 64, 48);
    test_gemms(37, 200, 96);
    test_gemms(512, 1024, 768);
    test_rowops(37, 96, 4, 24);
    test_rowops(512, 2048, 16, 128);
    test_attention(1, 2, 1, 8, 1);
    test_attention(37, 4, 2, 24, 3);
    test_attention(300, 8, 2, 64, 4);
    test_attention(130, 2, 1, 128, 1);
    test_attention(1024, 8, 8, 128, 5);
    test_ce(37, 64, 1000, false);
    test_ce(200, 256, 20000, false); /* more than one vocabulary chunk */
    test_ce(64, 256, 9000, true);
    test_adamw();
    lt_cuda_shutdown();
    lt_pool_destroy(DP);
    lt_pool_destroy(HP);
    TEST_MAIN_END();
}
