// kernels/dequant.cu against quant/ (lt_dequantize_rows): decode to f32 (bit-identical), to bf16 (the
// RNE rounding of that), the decode GEMV (error bound below) and the quantized embedding gather.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"

namespace {

struct QT { // a quantized tensor on the host (for the reference) and its components on the device
    lt_qtensor q{};
    std::vector<std::vector<uint8_t>> host;
    void *dev[LT_QC_COUNT] = {nullptr, nullptr, nullptr, nullptr};
    lt_cuda_qt dq{};
    bool ok = false;
    ~QT() {
        for (void *p : dev) lt_cuda_free(p);
    }
};

bool make(QT &t, lt_qformat f, int64_t rows, int64_t cols, const std::vector<float> &w) {
    lt_qlayout lay;
    lt_status st = lt_qlayout_get(f, rows, cols, &lay);
    if (st) {
        emu_check(false, "lt_qlayout_get: %s", lt_status_msg(st));
        lt_status_free(st);
        return false;
    }
    t.q.format = f;
    t.q.rows = rows;
    t.q.cols = cols;
    t.host.resize(LT_QC_COUNT);
    for (int c = 0; c < LT_QC_COUNT; c++) {
        if (!lay.comp[c].bytes) continue;
        t.host[c].assign((size_t)lay.comp[c].bytes, 0);
        t.q.comp[c] = t.host[c].data();
    }
    st = lt_quantize(w.data(), "emu.weight", &t.q);
    if (st) {
        emu_check(false, "lt_quantize(%s): %s", lt_qformat_name(f), lt_status_msg(st));
        lt_status_free(st);
        return false;
    }
    for (int c = 0; c < LT_QC_COUNT; c++) {
        if (!lay.comp[c].bytes) continue;
        check_rc(lt_cuda_malloc(&t.dev[c], (size_t)lay.comp[c].bytes), "lt_cuda_malloc");
        check_rc(lt_cuda_memcpy_h2d(t.dev[c], t.host[c].data(), (size_t)lay.comp[c].bytes, nullptr), "h2d");
    }
    t.dq.format = (int)f;
    t.dq.rows = rows;
    t.dq.cols = cols;
    t.dq.codes = t.dev[LT_QC_CODES];
    t.dq.scales = t.dev[LT_QC_SCALES];
    t.dq.scales2 = t.dev[LT_QC_SCALES2];
    t.dq.tensor = t.dev[LT_QC_TENSOR];
    t.ok = true;
    return true;
}

void one(lt_qformat f, int64_t rows, int64_t cols) {
    char tag[96];
    snprintf(tag, sizeof tag, "%s %lldx%lld", lt_qformat_name(f), (long long)rows, (long long)cols);
    // weights: normal with a few outliers, so block scales vary
    std::vector<float> w = randn((size_t)(rows * cols), 0.05f);
    for (size_t i = 0; i < w.size(); i += 97) w[i] *= 12.0f;
    QT t;
    if (!make(t, f, rows, cols, w)) return;
    const size_t n = (size_t)(rows * cols);
    std::vector<float> ref(n);
    lt_dequantize_rows(&t.q, 0, rows, ref.data());

    // f32, all rows, ld = cols: bit-identical
    {
        Dev<float> o(n);
        check_rc(lt_cuda_dequant_f32(&t.dq, 0, rows, o.p, cols, nullptr), "lt_cuda_dequant_f32");
        std::vector<float> g = o.down();
        char what[256];
        snprintf(what, sizeof what, "%s dequant_f32 rows [0,%lld) vs lt_dequantize_rows", tag, (long long)rows);
        report_bits(what, bit_mismatches(g.data(), ref.data(), 4, n), (long)n);
    }
    // f32 and bf16 of a row range not starting at 0, into a wider leading dimension: the gap columns
    // must keep the poison (0xFF bytes) the buffer was filled with
    const int64_t r0 = rows / 3 + 1, nr = rows - r0 - rows / 5 > 0 ? rows - r0 - rows / 5 : 1, ld = cols + 6;
    {
        Dev<float> o((size_t)(nr * ld));
        o.fill_bytes(0xFF);
        check_rc(lt_cuda_dequant_f32(&t.dq, r0, nr, o.p, ld, nullptr), "lt_cuda_dequant_f32");
        std::vector<float> g = o.down();
        long bad = 0, gap = 0;
        for (int64_t r = 0; r < nr; r++)
            for (int64_t c = 0; c < ld; c++) {
                uint32_t gb;
                memcpy(&gb, &g[(size_t)(r * ld + c)], 4);
                if (c < cols) bad += memcmp(&gb, &ref[(size_t)((r0 + r) * cols + c)], 4) != 0;
                else gap += gb != 0xFFFFFFFFu;
            }
        char what[256];
        snprintf(what, sizeof what, "%s dequant_f32 rows [%lld,%lld), ld %lld (gap columns untouched: %ld touched)", tag,
                 (long long)r0, (long long)(r0 + nr), (long long)ld, gap);
        report_bits(what, bad + gap, (long)(nr * ld));
    }
    {
        Dev<uint16_t> o((size_t)(nr * ld));
        o.fill_bytes(0xFF);
        check_rc(lt_cuda_dequant_bf16(&t.dq, r0, nr, o.p, ld, nullptr), "lt_cuda_dequant_bf16");
        std::vector<uint16_t> g = o.down();
        long bad = 0;
        for (int64_t r = 0; r < nr; r++)
            for (int64_t c = 0; c < ld; c++) {
                const uint16_t want = c < cols ? lt_f32_to_bf16(ref[(size_t)((r0 + r) * cols + c)]) : 0xFFFF;
                bad += g[(size_t)(r * ld + c)] != want;
            }
        char what[256];
        snprintf(what, sizeof what, "%s dequant_bf16 rows [%lld,%lld) == bf16_rne(lt_dequantize_rows)", tag,
                 (long long)r0, (long long)(r0 + nr));
        report_bits(what, bad, (long)(nr * ld));
    }
    // decode GEMV, beta 0 and 0.5, against a double dot of the dequantized rows. Error bound per row:
    // lane l sums its 8-element chunks (8 fmaf from 0: 8 roundings), adds the chunk sums in order
    // (ceil(cols/256) roundings), then 5 butterfly adds and the final fmaf with beta: at most
    // m = 8 + ceil(cols/256) + 6 roundings along any path, so |y - exact| <= gamma_m * S with
    // gamma_m = m u / (1 - m u), u = 2^-24, S = sum |x_k w_k| + |beta y_old| (the standard bound for
    // floating-point summation; the dequantized weights are exact inputs). The check is err / (gamma_m S) <= 1.
    {
        const std::vector<float> x = randn((size_t)cols);
        Dev<float> dx(x);
        for (float beta : {0.0f, 0.5f}) {
            std::vector<float> y0 = randn((size_t)rows);
            Dev<float> dy(y0);
            check_rc(lt_cuda_qgemv(&t.dq, dx.p, dy.p, beta, nullptr), "lt_cuda_qgemv");
            std::vector<float> y = dy.down();
            const double m = 8.0 + (double)((cols + 255) / 256) + 6.0, u = ldexp(1.0, -24);
            const double gam = m * u / (1.0 - m * u);
            double worst = 0;
            for (int64_t r = 0; r < rows; r++) {
                double exact = beta != 0.0f ? (double)beta * y0[(size_t)r] : 0.0,
                       s = beta != 0.0f ? fabs((double)beta * y0[(size_t)r]) : 0.0;
                for (int64_t k = 0; k < cols; k++) {
                    const double p = (double)x[(size_t)k] * ref[(size_t)(r * cols + k)];
                    exact += p;
                    s += fabs(p);
                }
                const double e = fabs((double)y[(size_t)r] - exact) / (gam * s + 1e-300);
                if (!(e <= worst)) worst = e; // NaN propagates
            }
            char what[256];
            snprintf(what, sizeof what, "%s qgemv beta %g: max |y - dot| / (gamma_%g * sum|x w|)", tag, beta, m);
            report(what, worst, 1.0, "");
        }
    }
    // quantized embedding rows: bit-identical to the dequantized rows; an id outside [0, rows) gives
    // zeros (documented in dequant.cu)
    {
        std::vector<int32_t> ids = {0, (int32_t)rows - 1, 3, 3, (int32_t)(rows / 2), 1, -1, (int32_t)rows};
        Dev<int32_t> di(ids);
        Dev<float> o(ids.size() * (size_t)cols);
        check_rc(lt_cuda_embedding_q(&t.dq, di.p, o.p, (int64_t)ids.size(), nullptr), "lt_cuda_embedding_q");
        std::vector<float> g = o.down(), want(ids.size() * (size_t)cols, 0.0f);
        for (size_t i = 0; i < ids.size(); i++)
            if (ids[i] >= 0 && ids[i] < rows)
                memcpy(&want[i * (size_t)cols], &ref[(size_t)ids[i] * (size_t)cols], (size_t)cols * 4);
        char what[256];
        snprintf(what, sizeof what, "%s embedding_q of %zu ids (two out of range -> zeros)", tag, ids.size());
        report_bits(what, bit_mismatches(g.data(), want.data(), 4, want.size()), (long)want.size());
    }
}

} // namespace

void test_dequant() {
    section("dequant.cu: decode to f32 / bf16, decode GEMV, quantized embedding vs quant/");
    check_rc(lt_cuda_dequant_init(lt_nf4_code, lt_dq8_code, lt_e2m1_value), "lt_cuda_dequant_init");
    const lt_qformat fmts[] = {LT_Q_BF16, LT_Q_NF4, LT_Q_NF4_NODQ, LT_Q_MXFP4, LT_Q_NVFP4, LT_Q_Q8_0};
    for (lt_qformat f : fmts) {
        one(f, 80, 256); // 20480 elements: 320 NF4 blocks, so the second-level groups of 256 blocks are crossed
        one(f, 5, 320);  // a row of 5 NF4 blocks / 10 MX / 20 NV blocks; qgemv lanes with 2 chunks
    }
    // argument checks (return codes, nothing launched)
    QT t;
    std::vector<float> w = randn(64 * 4);
    if (make(t, LT_Q_NF4, 4, 64, w)) {
        Dev<float> o(256);
        emu_check(lt_cuda_dequant_f32(&t.dq, 2, 3, o.p, 64, nullptr) == 1 &&
                      lt_cuda_dequant_f32(&t.dq, 0, 4, o.p, 32, nullptr) == 1 &&
                      lt_cuda_dequant_f32(&t.dq, 0, 0, o.p, 64, nullptr) == 0,
                  "dequant argument checks: rows past the end and ld < cols refused (cudaErrorInvalidValue), 0 rows "
                  "is a no-op");
    }
}
