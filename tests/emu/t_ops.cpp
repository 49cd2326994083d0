// kernels/ops.cu against the CPU backend (lt_backend_cpu()): every entry point. u = 2^-24 (half an
// ulp of 1: the relative error of one f32 rounding) in the tolerances below.
#include <math.h>
#include <stdio.h>

#include "harness.h"

namespace {

const double U = 0x1p-24;
const lt_backend *be;

std::vector<float> uniform(size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto &x : v) x = d(g_rng);
    return v;
}

// ------------------------------------------------------------------ rmsnorm
void rmsnorm(int64_t rows, int64_t dim) {
    const float eps = 1e-5f;
    std::vector<float> x = randn((size_t)(rows * dim), 3.0f), g = uniform((size_t)dim, 0.5f, 1.5f);
    x[0] = 0.0f;
    std::vector<float> ref((size_t)(rows * dim));
    be->rmsnorm(x.data(), g.data(), ref.data(), rows, dim, eps);
    Dev<float> dx(x), dg(g), dy((size_t)(rows * dim));
    check_rc(lt_cuda_rmsnorm(dx.p, dg.p, dy.p, rows, dim, eps, nullptr), "lt_cuda_rmsnorm");
    std::vector<float> y = dy.down();
    // Tolerance (relative, units of u): the sum of squares is f32 in both, in different orders. CPU:
    // 8 partial sums of dim/8 terms, a 3-level tree, up to 7 tail adds, the square's own rounding:
    // <= dim/8 + 11 roundings on any term; GPU: per thread ceil(dim/256) fmaf (square exact inside),
    // a 5-step butterfly, 7 adds over the warps: <= ceil(dim/256) + 12 (+1 spare). Positive terms, so
    // each ss is within that many u (relative) of the exact sum; 1/sqrt halves the difference; then
    // /dim, +eps, sqrt, 1/x (4 roundings a side: 8) and (x * inv) * g (2 a side: 4).
    const double k = ((double)dim / 8 + 11 + (double)((dim + 255) / 256) + 13) / 2 + 8 + 4;
    double worst = 0;
    for (size_t i = 0; i < y.size(); i++) {
        const double e = fabs((double)y[i] - ref[i]) / (U * fabs((double)ref[i]) + 1e-37);
        if (!(e <= worst)) worst = e;
    }
    char what[160];
    snprintf(what, sizeof what, "rmsnorm %lldx%lld: max |dy| / (u |y|)", (long long)rows, (long long)dim);
    report(what, worst, k, "units");
    // y aliasing x (documented): the same bits as the out-of-place call
    check_rc(lt_cuda_rmsnorm(dx.p, dg.p, dx.p, rows, dim, eps, nullptr), "lt_cuda_rmsnorm in place");
    std::vector<float> y2 = dx.down();
    snprintf(what, sizeof what, "rmsnorm %lldx%lld in place (y == x) vs out of place", (long long)rows, (long long)dim);
    report_bits(what, bit_mismatches(y2.data(), y.data(), 4, y.size()), (long)y.size());
}

void rmsnorm_bwd(int64_t rows, int64_t dim, float beta) {
    const float eps = 1e-5f;
    std::vector<float> x = randn((size_t)(rows * dim)), g = uniform((size_t)dim, 0.5f, 1.5f),
                       dy = randn((size_t)(rows * dim)), dx0 = randn((size_t)(rows * dim));
    std::vector<float> ref = dx0;
    be->rmsnorm_bwd(x.data(), g.data(), dy.data(), ref.data(), rows, dim, eps, beta);
    Dev<float> dX(x), dG(g), dDY(dy), dDX(dx0);
    check_rc(lt_cuda_rmsnorm_bwd(dX.p, dG.p, dDY.p, dDX.p, rows, dim, eps, beta, nullptr), "lt_cuda_rmsnorm_bwd");
    std::vector<float> got = dDX.down();
    // Both compute v = (g dy - x coef) rs in double and round once to f32 (then dx + v for beta 1, one
    // more rounding: fmaf(1, dx, v) on the GPU). The double parts differ only by the summation order
    // of the two row sums (tree vs sequential) and a possible FMA contraction by nvcc: relative
    // 2 dim 2^-53 of the terms' magnitude M = (|g dy| + |x coef|) rs. So per element
    // |diff| <= 2^-23 (|v| + |result|) (the f32 roundings, one ulp each) + 4 dim 2^-53 M.
    double worst = 0;
    for (int64_t r = 0; r < rows; r++) {
        double ss = 0, sd = 0;
        for (int64_t i = 0; i < dim; i++) {
            const size_t j = (size_t)(r * dim + i);
            ss += (double)x[j] * x[j];
            sd += (double)g[(size_t)i] * dy[j] * x[j];
        }
        const double var = ss / (double)dim + (double)eps, rs = 1.0 / sqrt(var), coef = sd / (double)dim / var;
        for (int64_t i = 0; i < dim; i++) {
            const size_t j = (size_t)(r * dim + i);
            const double gd = (double)g[(size_t)i] * dy[j], xc = (double)x[j] * coef;
            const double v = (gd - xc) * rs, M = (fabs(gd) + fabs(xc)) * rs;
            const double tol = 2 * U * (fabs(v) + fabs((double)ref[j])) + 4.0 * (double)dim * 0x1p-53 * M + 1e-40;
            const double e = fabs((double)got[j] - ref[j]) / tol;
            if (!(e <= worst)) worst = e;
        }
    }
    char what[160];
    snprintf(what, sizeof what, "rmsnorm_bwd %lldx%lld beta %g: max |diff| / bound", (long long)rows, (long long)dim,
             beta);
    report(what, worst, 1.0, "");
}

// ------------------------------------------------------------------ rope
void rope(bool inverse) {
    const int64_t T = 7, H = 3, hd = 64, half = hd / 2;
    std::vector<int32_t> pos = {0, 1, 17, 4095, 32768, 65537, 100000};
    lt_rope_params rp = {};
    rp.theta = 500000.0;
    rp.head_dim = hd;
    std::vector<float> inv((size_t)half);
    lt_rope_inv_freq(&rp, inv.data());
    std::vector<float> x = randn((size_t)(T * H * hd)), ref = x;
    if (inverse) be->rope_bwd(ref.data(), pos.data(), T, H, hd, inv.data());
    else be->rope(ref.data(), pos.data(), T, H, hd, inv.data());
    Dev<float> dx(x), dinv(inv);
    Dev<int32_t> dpos(pos);
    check_rc(lt_cuda_rope(dx.p, dpos.p, T, H, hd, dinv.p, inverse ? 1 : 0, nullptr), "lt_cuda_rope");
    std::vector<float> got = dx.down();
    // The angle a = f32(pos * inv_freq) is the same single rounding on both sides. CUDA's sinf/cosf
    // are within 2 ulp of the true value over the whole range (accurate range reduction, so large
    // positions are fine), glibc's within 0.5 ulp: the cos/sin used differ by <= 2.5 ulp <= 2.5 u in
    // absolute terms (|c|, |s| <= 1). Each side then rounds x1 c, x2 s and the difference (or fuses
    // one product, if nvcc contracts): <= 2 u (|x1| + |x2|) per side. Bound per output:
    // (2.5 + 4) u (|x1| + |x2|), checked as max |diff| / (u (|x1| + |x2|)) <= 6.5.
    double worst = 0;
    for (int64_t th = 0; th < T * H; th++)
        for (int64_t j = 0; j < half; j++) {
            const size_t a = (size_t)(th * hd + j), b = a + (size_t)half;
            const double m = fabs((double)x[a]) + fabs((double)x[b]);
            for (size_t i : {a, b}) {
                const double e = fabs((double)got[i] - ref[i]) / (U * m + 1e-40);
                if (!(e <= worst)) worst = e;
            }
        }
    char what[160];
    snprintf(what, sizeof what, "rope%s T=%lld (positions up to 1e5) H=%lld hd=%lld: max |diff| / (u (|x1|+|x2|))",
             inverse ? " inverse" : "", (long long)T, (long long)H, (long long)hd);
    report(what, worst, 6.5, "units");
}

// ------------------------------------------------------------------ swiglu
void swiglu() {
    const size_t n = 3001;
    std::vector<float> gate = uniform(n, -12.0f, 12.0f), up = randn(n), dout = randn(n);
    const float special[] = {0.0f, -0.0f, 100.0f, -100.0f, -87.0f, 88.0f, 1e-30f, -1.2784645f};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) gate[i] = special[i];
    std::vector<float> ref(n);
    be->swiglu(gate.data(), up.data(), ref.data(), (int64_t)n);
    Dev<float> dg(gate), du(up), dout_d(dout), o(n), dgate(n), dup(n);
    check_rc(lt_cuda_swiglu(dg.p, du.p, o.p, (int64_t)n, nullptr), "lt_cuda_swiglu");
    std::vector<float> got = o.down();
    // out = g / (1 + expf(-g)) * u. CUDA's expf is within 2 ulp, glibc's within 1: the two e differ by
    // <= 3 ulp <= 6 u relative, and 1 + e carries at most that relative difference (e / (1 + e) <= 1);
    // then 1 + e, the division and the product round once each on each side: 3 roundings of <= u
    // relative, 6 u for the pair. Relative bound 6 + 6 = 12 u (plus the smallest subnormal, for results
    // that underflow).
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        const double e = fabs((double)got[i] - ref[i]) / (12 * U * fabs((double)ref[i]) + 0x1p-149);
        if (!(e <= worst)) worst = e;
    }
    report("swiglu (n 3001, gate in [-12, 12] and +-0, +-100, -87, 88): max |diff| / (12 u |out|)", worst, 1.0, "");
    check_rc(lt_cuda_swiglu(dg.p, du.p, dg.p, (int64_t)n, nullptr), "lt_cuda_swiglu in place");
    std::vector<float> got2 = dg.down();
    report_bits("swiglu in place (out == gate) vs out of place", bit_mismatches(got2.data(), got.data(), 4, n), (long)n);

    dg.up(gate);
    std::vector<float> rg(n), ru(n);
    be->swiglu_bwd(gate.data(), up.data(), dout.data(), rg.data(), ru.data(), (int64_t)n);
    check_rc(lt_cuda_swiglu_bwd(dg.p, du.p, dout_d.p, dgate.p, dup.p, (int64_t)n, nullptr), "lt_cuda_swiglu_bwd");
    std::vector<float> gg = dgate.down(), gu = dup.down();
    // s = 1 / (1 + e) carries <= 6 u (from expf) + 2 u (two roundings a side) = 8 u relative; silu as
    // the forward (12 u). dgate = d u (s (1 + g (1 - s))): the error of s reaches the bracket
    // multiplied by up to |g| (through g (1 - s)), the bracket's own roundings (or nvcc's fma) give
    // 2 u (|1 + g(1-s)| + |g (1-s)|) a side, the three products 3 u a side. With
    // M = |d u| s (|1 + g (1 - s)| + |g|): |diff| <= 20 u M. dup = d silu: 12 u + 1 u a side: 14 u.
    double wg = 0, wu = 0;
    for (size_t i = 0; i < n; i++) {
        const double g = gate[i], s = 1.0 / (1.0 + exp(-g));
        const double M = fabs((double)dout[i] * up[i]) * s * (fabs(1.0 + g * (1.0 - s)) + fabs(g));
        const double e1 = fabs((double)gg[i] - rg[i]) / (20 * U * M + 0x1p-149);
        const double e2 = fabs((double)gu[i] - ru[i]) / (14 * U * fabs((double)ru[i]) + 0x1p-149);
        if (!(e1 <= wg)) wg = e1;
        if (!(e2 <= wu)) wu = e2;
    }
    report("swiglu_bwd dgate: max |diff| / (20 u |d u| s (|1 + g (1-s)| + |g|))", wg, 1.0, "");
    report("swiglu_bwd dup: max |diff| / (14 u |dup|)", wu, 1.0, "");
}

// ------------------------------------------------------------------ embedding
void embedding() {
    const int64_t vocab = 50, dim = 300, n = 40;
    std::vector<float> table = randn((size_t)(vocab * dim));
    std::vector<uint16_t> tb((size_t)(vocab * dim));
    for (size_t i = 0; i < tb.size(); i++) tb[i] = lt_f32_to_bf16(table[i]);
    std::vector<int32_t> ids((size_t)n);
    for (auto &v : ids) v = (int32_t)(g_rng() % (uint32_t)vocab);
    ids[1] = ids[0];
    ids[5] = (int32_t)vocab - 1;
    Dev<float> dt(table), o((size_t)(n * dim));
    Dev<uint16_t> dtb(tb);
    Dev<int32_t> di(ids);
    std::vector<float> ref((size_t)(n * dim));
    be->embedding(table.data(), LT_DTYPE_F32, ids.data(), ref.data(), n, dim);
    check_rc(lt_cuda_embedding(dt.p, 0, di.p, o.p, n, dim, nullptr), "lt_cuda_embedding f32");
    std::vector<float> got = o.down();
    report_bits("embedding f32 (40 ids of 50x300, repeats)", bit_mismatches(got.data(), ref.data(), 4, ref.size()), (long)ref.size());
    be->embedding(tb.data(), LT_DTYPE_BF16, ids.data(), ref.data(), n, dim);
    check_rc(lt_cuda_embedding(dtb.p, 1, di.p, o.p, n, dim, nullptr), "lt_cuda_embedding bf16");
    got = o.down();
    report_bits("embedding bf16", bit_mismatches(got.data(), ref.data(), 4, ref.size()), (long)ref.size());
    emu_check(lt_cuda_embedding(dt.p, 2, di.p, o.p, n, dim, nullptr) == 1, "embedding dtype 2 refused (cudaErrorInvalidValue)");

    // backward: dtable = beta dtable (0: zeros; the kernel writes s == 0 ? 0 : s y) then, per column,
    // += dy[t] for t = 0, 1, ... in order: the straightforward loop below gives the same bits
    const std::vector<float> dy = randn((size_t)(n * dim));
    Dev<float> ddy(dy);
    for (float beta : {0.0f, 1.0f, 0.5f}) {
        std::vector<float> d0 = randn((size_t)(vocab * dim));
        if (beta == 0.0f)
            for (size_t i = 0; i < d0.size(); i += 7) d0[i] = NAN; // beta 0 overwrites, NaN included
        std::vector<float> want = d0;
        for (auto &v : want) v = beta == 0.0f ? 0.0f : (beta == 1.0f ? v : beta * v);
        for (int64_t t = 0; t < n; t++)
            for (int64_t j = 0; j < dim; j++) want[(size_t)(ids[(size_t)t] * dim + j)] += dy[(size_t)(t * dim + j)];
        Dev<float> dd(d0);
        check_rc(lt_cuda_embedding_bwd(ddy.p, di.p, dd.p, n, vocab, dim, beta, nullptr), "lt_cuda_embedding_bwd");
        std::vector<float> g = dd.down();
        char what[120];
        snprintf(what, sizeof what, "embedding_bwd beta %g vs the in-order loop", beta);
        report_bits(what, bit_mismatches(g.data(), want.data(), 4, want.size()), (long)want.size());
    }
}

// ------------------------------------------------------------------ elementwise and data movement
void elementwise() {
    const int64_t rows = 9, cols = 333, n = rows * cols;
    const std::vector<float> a = randn((size_t)n), b = randn((size_t)n), bias = randn((size_t)cols);
    Dev<float> da(a), db(b), dbias(bias), o((size_t)n);
    std::vector<float> ref = a;
    be->add(ref.data(), b.data(), n);
    check_rc(lt_cuda_add(da.p, db.p, n, nullptr), "lt_cuda_add");
    std::vector<float> g = da.down();
    report_bits("add (y += x) vs cpu add", bit_mismatches(g.data(), ref.data(), 4, (size_t)n), (long)n);

    da.up(a);
    ref = a;
    be->add_rows(ref.data(), bias.data(), rows, cols);
    check_rc(lt_cuda_add_bias(da.p, dbias.p, rows, cols, nullptr), "lt_cuda_add_bias");
    g = da.down();
    report_bits("add_bias vs cpu add_rows", bit_mismatches(g.data(), ref.data(), 4, (size_t)n), (long)n);

    da.up(a);
    for (size_t i = 0; i < ref.size(); i++) ref[i] = fmaf(0.37f, b[i], a[i]); // the documented fused y + s x
    check_rc(lt_cuda_scale_add(da.p, db.p, 0.37f, n, nullptr), "lt_cuda_scale_add");
    g = da.down();
    report_bits("scale_add (y = fmaf(s, x, y)) vs fmaf loop", bit_mismatches(g.data(), ref.data(), 4, (size_t)n), (long)n);

    da.up(a);
    be->add3(ref.data(), a.data(), b.data(), n);
    check_rc(lt_cuda_add3(o.p, da.p, db.p, n, nullptr), "lt_cuda_add3");
    g = o.down();
    report_bits("add3 vs cpu add3", bit_mismatches(g.data(), ref.data(), 4, (size_t)n), (long)n);
    check_rc(lt_cuda_add3(da.p, da.p, db.p, n, nullptr), "lt_cuda_add3 aliased");
    g = da.down();
    report_bits("add3 with out == a", bit_mismatches(g.data(), ref.data(), 4, (size_t)n), (long)n);

    da.up(a);
    be->scale(ref.data(), a.data(), -1.75f, n);
    check_rc(lt_cuda_scale(o.p, da.p, -1.75f, n, nullptr), "lt_cuda_scale");
    g = o.down();
    report_bits("scale vs cpu scale", bit_mismatches(g.data(), ref.data(), 4, (size_t)n), (long)n);

    // gather / scatter of rows (scatter indices distinct, as the step uses them)
    std::vector<int32_t> idx = {4, 0, 8, 2, 7};
    Dev<int32_t> didx(idx);
    std::vector<float> gref((size_t)(5 * cols));
    be->gather_rows(a.data(), idx.data(), 5, cols, gref.data());
    Dev<float> go((size_t)(5 * cols));
    check_rc(lt_cuda_gather_rows(da.p, didx.p, 5, cols, go.p, nullptr), "lt_cuda_gather_rows");
    g = go.down();
    report_bits("gather_rows vs cpu", bit_mismatches(g.data(), gref.data(), 4, gref.size()), (long)gref.size());
    std::vector<float> sref = b;
    be->scatter_rows(gref.data(), idx.data(), 5, cols, sref.data());
    Dev<float> so(b);
    check_rc(lt_cuda_scatter_rows(go.p, didx.p, 5, cols, so.p, nullptr), "lt_cuda_scatter_rows");
    g = so.down();
    report_bits("scatter_rows vs cpu", bit_mismatches(g.data(), sref.data(), 4, sref.size()), (long)sref.size());
}

// ------------------------------------------------------------------ dropout
void dropout() {
    const int64_t n = 1001; // not a multiple of 4: the last Philox block is partial
    const std::vector<float> x = randn((size_t)n);
    Dev<float> dx(x), o((size_t)n);
    const uint64_t key = 0x9E3779B97F4A7C15ull;
    for (double p : {0.0, 0.1, 0.5}) {
        for (int64_t layer : {0LL, 3LL, 4000000000LL}) {
            const int module = layer == 0 ? 0 : layer == 3 ? 7 : 200; // even and odd: every bit of word3 matters
            std::vector<float> ref((size_t)n);
            be->dropout(key, layer, module, p, x.data(), ref.data(), n);
            check_rc(lt_cuda_dropout(key, layer, module, p, dx.p, o.p, n, nullptr), "lt_cuda_dropout");
            std::vector<float> g = o.down();
            long kept = 0;
            for (float v : ref) kept += v != 0.0f;
            char what[160];
            snprintf(what, sizeof what, "dropout p %.1f layer %lld module %d (%ld of %lld kept) vs cpu", p,
                     (long long)layer, module, kept, (long long)n);
            report_bits(what, bit_mismatches(g.data(), ref.data(), 4, (size_t)n), (long)n);
        }
    }
    // in place (out == x)
    std::vector<float> ref((size_t)n);
    be->dropout(key + 1, 2, 6, 0.25, x.data(), ref.data(), n);
    check_rc(lt_cuda_dropout(key + 1, 2, 6, 0.25, dx.p, dx.p, n, nullptr), "lt_cuda_dropout in place");
    std::vector<float> g = dx.down();
    report_bits("dropout p 0.25 in place vs cpu", bit_mismatches(g.data(), ref.data(), 4, (size_t)n), (long)n);
    emu_check(lt_cuda_dropout(key, 0, 0, 1.0, dx.p, o.p, n, nullptr) == 1 &&
                  lt_cuda_dropout(key, 0, 256, 0.1, dx.p, o.p, n, nullptr) == 1,
              "dropout p = 1 and module 256 refused (cudaErrorInvalidValue)");
}

} // namespace

void test_ops() {
    section("ops.cu vs the CPU backend");
    be = lt_backend_cpu();
    rmsnorm(5, 1000);
    rmsnorm(3, 64);
    rmsnorm_bwd(4, 1000, 0.0f);
    rmsnorm_bwd(4, 1000, 1.0f);
    rmsnorm_bwd(3, 40, 0.0f);
    rope(false);
    rope(true);
    swiglu();
    embedding();
    elementwise();
    dropout();
}
