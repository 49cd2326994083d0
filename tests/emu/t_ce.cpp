// kernels/ce.cu: the per-row kernels driven by the chunk loop of the host glue (cu_ce_loss in
// src/backend/cuda/cuda_backend.c), with the cuBLAS GEMMs replaced by plain f32 loops here, against
// lt_backend_cpu()->ce_loss. x and W are made bf16-representable first, so both sides start from the
// same logits operands the GPU path would (it converts x and W to bf16 for the GEMM).
#include <math.h>
#include <stdio.h>

#include "harness.h"

namespace {

// L[T, cn] = x[T, H] @ W[c0 .. c0+cn, H]^T, f32, k in order (the stand-in for the logits GEMM)
void logits(const std::vector<float> &x, const std::vector<float> &w, int64_t T, int64_t H, int64_t c0, int64_t cn,
            std::vector<float> &L) {
    L.assign((size_t)(T * cn), 0.0f);
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < cn; j++) {
            float acc = 0.0f;
            for (int64_t k = 0; k < H; k++) acc += x[(size_t)(t * H + k)] * w[(size_t)((c0 + j) * H + k)];
            L[(size_t)(t * cn + j)] = acc;
        }
}

} // namespace

void test_ce() {
    section("ce.cu: fused lm_head + cross-entropy, host chunk loop of cu_ce_loss, vs cpu ce_loss");
    const int64_t T = 11, H = 48, V = 300, C = 128; // 3 vocabulary chunks (128, 128, 44)
    std::vector<float> x = randn((size_t)(T * H)), w = randn((size_t)(V * H), 0.4f);
    for (auto &v : x) v = lt_bf16_to_f32(lt_f32_to_bf16(v));
    for (auto &v : w) v = lt_bf16_to_f32(lt_f32_to_bf16(v));
    std::vector<int32_t> labels((size_t)T);
    for (auto &v : labels) v = (int32_t)(g_rng() % (uint32_t)V);
    labels[2] = -100;
    labels[7] = -100;
    labels[10] = -100;
    labels[0] = 0;
    labels[1] = (int32_t)V - 1;
    labels[3] = (int32_t)C; // first column of the second chunk
    int64_t valid = 0;
    for (int32_t v : labels) valid += v >= 0;
    const float gs = 1.0f / (float)valid;

    // CPU reference
    const lt_backend *be = lt_backend_cpu();
    std::vector<float> scratch((size_t)lt_ce_scratch(T, H, V) + 2), dx_ref((size_t)(T * H));
    int64_t nv_ref = 0;
    const double loss_ref =
        be->ce_loss(x.data(), w.data(), nullptr, labels.data(), dx_ref.data(), gs, T, H, V, &nv_ref, scratch.data());

    // the kernels, chunk loop as cu_ce_loss
    Dev<int32_t> dlab(labels);
    Dev<float> m((size_t)T), lab((size_t)T), lse((size_t)T), L((size_t)(T * C));
    Dev<double> s((size_t)T), rowloss((size_t)T), total(1), reds((size_t)lt_cuda_reduce_scratch(T));
    Dev<uint16_t> G((size_t)(T * C));
    check_rc(lt_cuda_ce_init(m.p, s.p, lab.p, T, nullptr), "lt_cuda_ce_init");
    std::vector<float> Lh, Lall((size_t)(T * V));
    double dLmax = 0; // bound on |L here - L of the CPU's sgemm| (see below)
    for (int64_t c0 = 0; c0 < V; c0 += C) {
        const int64_t cn = V - c0 < C ? V - c0 : C;
        logits(x, w, T, H, c0, cn, Lh);
        L.up(Lh);
        for (int64_t t = 0; t < T; t++)
            for (int64_t j = 0; j < cn; j++) Lall[(size_t)(t * V + c0 + j)] = Lh[(size_t)(t * cn + j)];
        check_rc(lt_cuda_ce_stats(L.p, cn, dlab.p, c0, cn, m.p, s.p, lab.p, T, nullptr), "lt_cuda_ce_stats");
        for (int64_t t = 0; t < T; t++)
            for (int64_t j = 0; j < cn; j++) {
                double a = 0;
                for (int64_t k = 0; k < H; k++) a += fabs((double)x[(size_t)(t * H + k)] * w[(size_t)((c0 + j) * H + k)]);
                dLmax = fmax(dLmax, a);
            }
    }
    // Each side's f32 dot of H terms (here in order; OpenBLAS in its own order, with or without FMA)
    // is within gamma_H sum |x w| of the exact one: the logits differ by <= 2 gamma_H sum |x w|.
    const double U = 0x1p-24, gH = (double)H * U / (1 - (double)H * U);
    dLmax *= 2 * gH;
    check_rc(lt_cuda_ce_finish(m.p, s.p, lab.p, dlab.p, lse.p, rowloss.p, T, nullptr), "lt_cuda_ce_finish");
    check_rc(lt_cuda_sum_f64(rowloss.p, T, total.p, reds.p, nullptr), "lt_cuda_sum_f64");
    const double loss = total.down()[0];
    // (1) against the exact loss of the very logits the kernels were given (double, no GEMM in the
    // way). Per valid row, relative errors of the sum of exp: CUDA's expf (<= 2 ulp from exact, taken
    // as 3 ulp from glibc's = 6 u), the f32 subtraction l - m_c before it (m_c the running max when the
    // chunk was summed, m_c <= m: an error <= u (m - l) in the exponent, so <= u sum_j p_j (m - l_j) =
    // u w_row over the row, p the softmax), the rescaling exp and the log (double, 1 ulp each) and the
    // double sums: 8 u + u w_row in lse; lse - label logit is formed in double.
    std::vector<double> lse_x((size_t)T, 0.0), w_row((size_t)T, 0.0);
    double loss_x = 0, tol1 = 0, tol2 = 0;
    for (int64_t t = 0; t < T; t++) {
        if (labels[(size_t)t] < 0) continue;
        double mx = -INFINITY, se = 0, sw = 0;
        for (int64_t j = 0; j < V; j++) mx = fmax(mx, (double)Lall[(size_t)(t * V + j)]);
        for (int64_t j = 0; j < V; j++) {
            const double e = exp((double)Lall[(size_t)(t * V + j)] - mx);
            se += e;
            sw += e * (mx - (double)Lall[(size_t)(t * V + j)]);
        }
        lse_x[(size_t)t] = mx + log(se);
        w_row[(size_t)t] = sw / se;
        loss_x += lse_x[(size_t)t] - (double)Lall[(size_t)(t * V + labels[(size_t)t])];
        tol1 += (8 + w_row[(size_t)t]) * U;
        // (2) below: the CPU's own lse has glibc's expf (1 ulp: 2 u) and the same subtraction rounding
        tol2 += 2 * dLmax + (8 + w_row[(size_t)t]) * U + (2 + w_row[(size_t)t]) * U;
    }
    char what[240];
    snprintf(what, sizeof what, "ce loss (T %lld with %lld ignored, H %lld, V %lld in chunks of %lld) vs the exact loss "
             "of the same f32 logits: |%.9f - %.9f|", (long long)T, (long long)(T - valid), (long long)H, (long long)V,
             (long long)C, loss, loss_x);
    report(what, fabs(loss - loss_x), tol1, "");
    // (2) against the CPU backend (OpenBLAS logits): the logits differ by <= dLmax each, and lse is a
    // smooth max (it moves by at most the largest logit change), so 2 dLmax per row on top of both
    // sides' exp/log errors. A loose bound (worst-case GEMM rounding); the tight one is (1).
    snprintf(what, sizeof what, "ce loss vs cpu ce_loss |%.9f - %.9f| (dLmax %.2e: the worst-case logit difference)",
             loss, loss_ref, dLmax);
    report(what, fabs(loss - loss_ref), tol2, "");
    emu_check(nv_ref == valid, "cpu n_valid %lld == %lld", (long long)nv_ref, (long long)valid);

    // pass 2: G chunk by chunk, dx (+)= G @ Wc in f32 (the stand-in for the dx GEMM)
    std::vector<float> dx((size_t)(T * H), 0.0f);
    std::vector<float> bound((size_t)(T * H), 0.0f);
    double g_worst = 0;
    long g_bad = 0;
    for (int64_t c0 = 0; c0 < V; c0 += C) {
        const int64_t cn = V - c0 < C ? V - c0 : C;
        logits(x, w, T, H, c0, cn, Lh);
        L.up(Lh);
        G.fill_bytes(0xFF);
        check_rc(lt_cuda_ce_grad(L.p, cn, dlab.p, lse.p, c0, cn, gs, G.p, cn, T, nullptr), "lt_cuda_ce_grad");
        std::vector<uint16_t> Gh = G.down();
        // G itself against gs (softmax - onehot) of the same logits in double: the bf16 rounding (half an
        // ulp of an 8-bit significand: 2^-8 relative to the value rounded) of a value that already carries,
        // relative to p: expf (6 u), lse (its f32 rounding u |lse|, and the 8 u + u w_row above), the f32
        // subtraction l - lse (u |l - lse|), then the two f32 roundings (2 u |G|).
        for (int64_t t = 0; t < T; t++)
            for (int64_t j = 0; j < cn; j++) {
                const double gk = lt_bf16_to_f32(Gh[(size_t)(t * cn + j)]);
                if (labels[(size_t)t] < 0) {
                    g_bad += gk != 0.0;
                    continue;
                }
                const double p = exp((double)Lh[(size_t)(t * cn + j)] - lse_x[(size_t)t]);
                const double gx = gs * (p - (labels[(size_t)t] == c0 + j ? 1.0 : 0.0));
                const double lx = (double)Lh[(size_t)(t * cn + j)];
                const double pre = gs * p * U * (14 + w_row[(size_t)t] + fabs(lse_x[(size_t)t]) + fabs(lx - lse_x[(size_t)t])) +
                                   2 * U * fabs(gx);
                const double tol = 0x1p-8 * fabs(gx) + (1 + 0x1p-8) * pre + 1e-38; // bf16 rounds the perturbed value
                const double e = fabs(gk - gx) / tol;
                if (!(e <= g_worst)) g_worst = e;
            }
        for (int64_t t = 0; t < T; t++)
            for (int64_t k = 0; k < H; k++) {
                float acc = dx[(size_t)(t * H + k)];
                for (int64_t j = 0; j < cn; j++)
                    acc += lt_bf16_to_f32(Gh[(size_t)(t * cn + j)]) * w[(size_t)((c0 + j) * H + k)];
                dx[(size_t)(t * H + k)] = acc;
            }
        // bound, per element: sum_j |W_jk| (|G_tj| + gs [j == label]) (>= sum_j |W_jk| max(|G|, gs p))
        // times rel_t: 2^-8 (the bf16 rounding of G: half an ulp of an 8-bit significand) + 2 dLmax (the
        // logits and lse of the two sides differ by that much, and p = exp(L - lse)) + the exp/lse
        // errors of both sides as in the G check above (u (16 + 2 w_row + 2 |lse| + 2 max |l - lse|))
        // + 2 V u (each side's f32 sum over V terms in its dx GEMM).
        for (int64_t t = 0; t < T; t++) {
            if (labels[(size_t)t] < 0) continue;
            for (int64_t j = 0; j < cn; j++) {
                const double gv = fabs((double)lt_bf16_to_f32(Gh[(size_t)(t * cn + j)])) +
                                  (labels[(size_t)t] == c0 + j ? gs : 0.0);
                for (int64_t k = 0; k < H; k++)
                    bound[(size_t)(t * H + k)] += (float)(gv * fabs((double)w[(size_t)((c0 + j) * H + k)]));
            }
        }
    }
    report("ce grad G (bf16) vs gs (softmax - onehot) of the same logits in double: max |diff| / bound (the bf16 "
           "rounding alone reaches ~0.99 of it)",
           g_worst, 1.0, "");
    report_bits("ce grad G of the ignored rows (zero)", g_bad, 3 * V);
    std::vector<double> rel((size_t)T, 0.0);
    for (int64_t t = 0; t < T; t++) {
        if (labels[(size_t)t] < 0) continue;
        double dl = 0;
        for (int64_t j = 0; j < V; j++) dl = fmax(dl, fabs((double)Lall[(size_t)(t * V + j)] - lse_x[(size_t)t]));
        rel[(size_t)t] = 0x1p-8 + 2 * dLmax +
                         U * (16 + 2 * w_row[(size_t)t] + 2 * fabs(lse_x[(size_t)t]) + 2 * dl + 2 * (double)V);
    }
    double worst = 0;
    long nonzero_ignored = 0;
    for (int64_t t = 0; t < T; t++)
        for (int64_t k = 0; k < H; k++) {
            const size_t i = (size_t)(t * H + k);
            if (labels[(size_t)t] < 0) {
                nonzero_ignored += dx[i] != 0.0f || dx_ref[i] != 0.0f;
                continue;
            }
            const double e = fabs((double)dx[i] - dx_ref[i]) / (rel[(size_t)t] * bound[i] + 1e-30);
            if (!(e <= worst)) worst = e;
        }
    report("ce dx: max |dx - cpu| / bound (bf16 G: 2^-8 relative per term, see t_ce.cpp)", worst, 1.0, "");
    report_bits("ce dx of the 3 ignored rows (zero on both sides)", nonzero_ignored, 3 * H);
    emu_check(lt_cuda_ce_stats(L.p, 10, dlab.p, 0, 20, m.p, s.p, lab.p, T, nullptr) == 1,
              "ce_stats with ldl < cn refused (cudaErrorInvalidValue)");
}
