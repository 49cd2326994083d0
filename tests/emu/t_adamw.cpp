// kernels/adamw.cu: the deterministic reductions against compensated double sums, and clip factor +
// fused AdamW over 3 tensors for 3 steps against train/optim.c (lt_clip_grad_norm, lt_adamw_step).
#include <math.h>
#include <stdio.h>

#include "harness.h"

namespace {

const double UD = 0x1p-53; // one double rounding, relative

// Neumaier's compensated sum: error <= 2 UD |sum| + O(n UD^2) sum |x|, far below the bounds checked.
struct Comp {
    double s = 0, c = 0;
    void add(double x) {
        const double t = s + x;
        c += fabs(s) >= fabs(x) ? (s - t) + x : (x - t) + s;
        s = t;
    }
    double get() const { return s + c; }
};

// The kernels' summation depth (adamw.cu): B = min(1024, ceil(n/256)) blocks; per thread
// ceil(n / (256 B)) terms, a 5-step butterfly and 7 adds over the warps; then per lane ceil(B/32)
// partials and a 5-step butterfly. Any term passes at most m roundings: |err| <= gamma_m sum |x|.
double depth(int64_t n) {
    const int64_t B = n <= 0 ? 1 : ((n + 255) / 256 > 1024 ? 1024 : (n + 255) / 256);
    return (double)((n + 256 * B - 1) / (256 * B)) + 5 + 7 + (double)((B + 31) / 32) + 5;
}

void reductions() {
    for (int64_t n : {1LL, 1000LL, 270000LL}) { // 270000 > 1024 * 256: the capped grid, threads loop
        std::vector<float> x = randn((size_t)n);
        for (size_t i = 0; i < x.size(); i += 1013) x[i] *= 1000.0f;
        Dev<float> dx(x);
        Dev<double> out(1), scr((size_t)lt_cuda_reduce_scratch(n));
        check_rc(lt_cuda_sumsq_f32(dx.p, n, out.p, scr.p, nullptr), "lt_cuda_sumsq_f32");
        const double got = out.down()[0];
        Comp c;
        for (float v : x) c.add((double)v * v); // exact squares
        const double m = depth(n), tol = m * UD / (1 - m * UD) * c.get();
        char what[160];
        snprintf(what, sizeof what, "sumsq_f32 n=%lld: |got - sum| / sum (bound gamma_%g)", (long long)n, m);
        report(what, fabs(got - c.get()) / c.get(), tol / c.get(), "");
    }
    {
        const int64_t n = 5000;
        std::vector<double> x(n);
        std::normal_distribution<double> d(0.0, 1.0);
        for (auto &v : x) v = d(g_rng) * (1.0 + 1e-3 * (double)(g_rng() % 1000));
        Dev<double> dx(x), out(1), scr((size_t)lt_cuda_reduce_scratch(n));
        check_rc(lt_cuda_sum_f64(dx.p, n, out.p, scr.p, nullptr), "lt_cuda_sum_f64");
        const double got = out.down()[0];
        Comp c;
        double sabs = 0;
        for (double v : x) c.add(v), sabs += fabs(v);
        const double m = depth(n);
        char what[160];
        snprintf(what, sizeof what, "sum_f64 n=%lld (mixed signs): |got - sum| / sum|x| (bound gamma_%g)", (long long)n, m);
        report(what, fabs(got - c.get()) / sabs, m * UD / (1 - m * UD), "");
        // n = 0 writes +0.0 (memset), whatever was there
        Dev<double> z(1);
        z.fill_bytes(0x7F);
        check_rc(lt_cuda_sum_f64(dx.p, 0, z.p, scr.p, nullptr), "lt_cuda_sum_f64 n=0");
        const double zero = z.down()[0];
        emu_check(zero == 0.0 && !signbit(zero), "sum_f64 of n = 0 elements writes +0.0 (got %g)", zero);
        // determinism: a rerun under another scheduling seed gives the same bits
        const unsigned s0 = emu::seed();
        emu::set_seed(s0 + 77);
        check_rc(lt_cuda_sum_f64(dx.p, n, out.p, scr.p, nullptr), "lt_cuda_sum_f64 rerun");
        emu::set_seed(s0);
        const double again = out.down()[0];
        report_bits("sum_f64 rerun with another scheduling seed", memcmp(&got, &again, 8) != 0, 1);
    }
}

// lt_clip_grad_norm's factor from a norm (optim.c), to compare with the kernel's
float clip_of(double norm, double max_norm) {
    if (!isfinite(norm) || !(max_norm > 0.0)) return 1.0f;
    const float denom = (float)norm + (float)1e-6;
    const float coef = (1.0f / denom) * (float)max_norm;
    return coef < 1.0f ? coef : 1.0f;
}

void adamw() {
    const int nt = 3;
    const int64_t sizes[nt] = {1000, 37, 5000};
    const int64_t max_n = 5000;
    const double max_norm = 1.0;
    const float grad_scale[3] = {0.2f, 0.001f, 0.05f}; // step 2's norm is below max_norm: no clipping
    lt_adamw_cfg cfg = {1e-3, 0.9, 0.999, 1e-8, 0.01};
    std::vector<std::vector<float>> p(nt), m(nt), v(nt);
    std::vector<Dev<float> *> dp, dg, dm, dv;
    std::vector<Dev<uint16_t> *> db;
    std::vector<lt_cuda_adamw_tensor> desc(nt);
    for (int i = 0; i < nt; i++) {
        p[i] = randn((size_t)sizes[i]);
        m[i].assign((size_t)sizes[i], 0.0f);
        v[i].assign((size_t)sizes[i], 0.0f);
        dp.push_back(new Dev<float>(p[i]));
        dg.push_back(new Dev<float>((size_t)sizes[i]));
        dm.push_back(new Dev<float>(m[i]));
        dv.push_back(new Dev<float>(v[i]));
        db.push_back(new Dev<uint16_t>((size_t)sizes[i]));
        desc[i] = {dp[i]->p, dg[i]->p, dm[i]->p, dv[i]->p, i == 2 ? db[i]->p : nullptr, sizes[i]};
    }
    Dev<lt_cuda_adamw_tensor> ddesc(desc); // the kernel reads the descriptors from device memory
    Dev<double> ss(nt), norm(1), reds((size_t)lt_cuda_reduce_scratch(max_n));
    Dev<float> clip(1);
    for (int step = 1; step <= 3; step++) {
        const double lr = cfg.lr * (double)step / 3.0; // a scheduled learning rate
        std::vector<std::vector<float>> g(nt);
        for (int i = 0; i < nt; i++) {
            g[i] = randn((size_t)sizes[i], grad_scale[step - 1]);
            dg[i]->up(g[i]);
        }
        // GPU: per-tensor sums of squares, clip factor, one fused launch
        for (int i = 0; i < nt; i++)
            check_rc(lt_cuda_sumsq_f32(dg[i]->p, sizes[i], ss.p + i, reds.p, nullptr), "lt_cuda_sumsq_f32");
        check_rc(lt_cuda_clip_factor(ss.p, nt, max_norm, clip.p, norm.p, nullptr), "lt_cuda_clip_factor");
        const double gnorm = norm.down()[0];
        const float gclip = clip.down()[0];
        const lt_cuda_adamw_hp hp = {lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay, step};
        check_rc(lt_cuda_adamw(ddesc.p, nt, max_n, &hp, clip.p, nullptr), "lt_cuda_adamw");

        // CPU: lt_clip_grad_norm on a copy (its norm, factor and scaled gradients) ...
        std::vector<std::vector<float>> gc = g;
        float *gp[nt];
        for (int i = 0; i < nt; i++) gp[i] = gc[i].data();
        const double cnorm = lt_clip_grad_norm(gp, sizes, nt, max_norm);
        const float cclip = clip_of(cnorm, max_norm);
        // The norm: the per-tensor sums differ by order only (tree vs sequential, double): relative
        // <= (n + depth) 2^-53 each, halved by the sqrt, plus a few roundings of the stacking.
        const double ntol = ((double)max_n + depth(max_n)) * UD / 2 + 8 * UD;
        char what[200];
        snprintf(what, sizeof what, "step %d: global norm %.6f vs lt_clip_grad_norm (relative)", step, gnorm);
        report(what, fabs(gnorm - cnorm) / cnorm, ntol, "");
        // The factor is computed from f32(norm) with the same f32 operations: the same bits unless the
        // two norms (which differ by ~1e-16 relative) straddle an f32 rounding boundary, and then they
        // differ by one ulp of f32(norm), i.e. <= 1 ulp of the factor. Limit 1 ulp (0 is expected).
        snprintf(what, sizeof what, "step %d: clip factor %.9g vs the CPU's %.9g (ulps; %s)", step, gclip, cclip,
                 gclip < 1.0f ? "clipping" : "no clipping");
        report(what, (double)ulp_distance(gclip, cclip), 1.0, "");
        // ... then AdamW given the GPU's factor (g *= clip when < 1, as lt_clip_grad_norm scales):
        // the same IEEE f32 operations in the same order (the kernel's _rn intrinsics and two fmaf where
        // optim.c has them; the constants rounded to f32 once from the same double expressions), so the
        // same bits are required. lt_clip_grad_norm's own scaled gradients equal them when the factors
        // are equal (checked).
        long bad_p = 0, bad_m = 0, bad_v = 0, bad_g = 0, bad_b = 0, bad_cg = 0;
        long total = 0;
        for (int i = 0; i < nt; i++) {
            std::vector<float> gi = g[i];
            if (gclip != 1.0f)
                for (auto &x : gi) x *= gclip;
            for (size_t k = 0; k < gi.size(); k++) bad_cg += memcmp(&gi[k], &gc[i][k], 4) != 0;
            lt_adamw_step(&cfg, lr, step, p[i].data(), gi.data(), m[i].data(), v[i].data(), sizes[i]);
            const std::vector<float> P = dp[i]->down(), M = dm[i]->down(), Vv = dv[i]->down(), G = dg[i]->down();
            bad_p += bit_mismatches(P.data(), p[i].data(), 4, P.size());
            bad_m += bit_mismatches(M.data(), m[i].data(), 4, M.size());
            bad_v += bit_mismatches(Vv.data(), v[i].data(), 4, Vv.size());
            bad_g += bit_mismatches(G.data(), gi.data(), 4, G.size());
            if (i == 2) {
                const std::vector<uint16_t> B = db[i]->down();
                for (size_t k = 0; k < B.size(); k++) bad_b += B[k] != lt_f32_to_bf16(p[i][k]);
            }
            total += (long)sizes[i];
        }
        snprintf(what, sizeof what, "step %d: params / exp_avg / exp_avg_sq vs lt_adamw_step (%ld / %ld / %ld differ)",
                 step, bad_p, bad_m, bad_v);
        report_bits(what, bad_p + bad_m + bad_v, 3 * total);
        snprintf(what, sizeof what, "step %d: gradients left scaled in place (as lt_clip_grad_norm does)", step);
        report_bits(what, bad_g, total);
        snprintf(what, sizeof what, "step %d: lt_clip_grad_norm's own scaled gradients == the GPU factor's", step);
        report_bits(what, bad_cg, total);
        snprintf(what, sizeof what, "step %d: bf16 compute copy == bf16_rne(param)", step);
        report_bits(what, bad_b, (long)sizes[2]);
    }
    for (int i = 0; i < nt; i++) delete dp[i], delete dg[i], delete dm[i], delete dv[i], delete db[i];
    // the factor for a non-finite norm and for max_norm <= 0 is 1 (the host skips / only measures)
    std::vector<double> bad = {1.0, INFINITY};
    Dev<double> dbad(bad);
    check_rc(lt_cuda_clip_factor(dbad.p, 2, 1.0, clip.p, norm.p, nullptr), "lt_cuda_clip_factor inf");
    const float c1 = clip.down()[0];
    const double n1 = norm.down()[0];
    check_rc(lt_cuda_clip_factor(dbad.p, 1, 0.0, clip.p, norm.p, nullptr), "lt_cuda_clip_factor max_norm 0");
    const float c2 = clip.down()[0];
    emu_check(c1 == 1.0f && isinf(n1) && c2 == 1.0f, "clip factor 1 for an infinite norm (norm %g) and for max_norm 0", n1);
}

} // namespace

void test_adamw() {
    section("adamw.cu: reductions, clip factor, fused AdamW vs train/optim.c");
    reductions();
    adamw();
}
