// kernels/attention.cu against the CPU backend's attention_fwd / attention_bwd / attention (cached):
// GQA, document masks (sorted and unsorted doc ids, a one-token document), hd in {8, 16, 24, 33, 64,
// 96, 128, 256} (every hd class of the kernel), T up to 200 (1 to 4 tiles of 64), and
// bit-identical reruns under another scheduling seed (the kernels promise fixed summation orders).
//
// Limit nmse <= 1e-10 (nmse = sum (gpu - cpu)^2 / sum cpu^2). Both sides compute in f32: each output
// is a sum of <= T + hd rounded terms, with a relative error of a few u sqrt(T + hd) ~ 1e-6 at most
// per element here (u = 2^-24; CUDA's expf/logf add 2 ulp), so nmse ~1e-12 or below; the backward's
// ds = p (dp - delta) cancels and loses a few more digits on small elements, which nmse weighs by
// their (small) size. 1e-10 is 100x above that, while an indexing, masking, scaling or tile-skipping
// error changes whole rows: nmse >= 1e-3 in the mutation runs made when this test was written
// (relative noise of only 1e-4 on every element already gives ~3e-9: see the self-test section).
#include <math.h>
#include <stdio.h>

#include "harness.h"

namespace {

const double LIMIT = 1e-10;

void one(int64_t T, int64_t H, int64_t KV, int64_t hd, int ndocs, bool unsorted) {
    char tag[120];
    snprintf(tag, sizeof tag, "T=%lld H=%lld KV=%lld hd=%lld %s%d doc%s", (long long)T, (long long)H, (long long)KV,
             (long long)hd, unsorted ? "unsorted " : "", ndocs, ndocs == 1 ? "" : "s");
    const size_t nq = (size_t)(T * H * hd), nk = (size_t)(T * KV * hd);
    const std::vector<float> q = randn(nq), k = randn(nk), v = randn(nk), dout = randn(nq);
    std::vector<int32_t> doc;
    if (ndocs > 1) {
        doc.resize((size_t)T);
        for (int64_t t = 0; t < T; t++)
            doc[(size_t)t] = unsorted ? (int32_t)(g_rng() % (uint32_t)ndocs) * 7 - 5 : (int32_t)(t * ndocs / T);
        if (ndocs == 2 && unsorted) // one token alone in its document, inside the last tile of another one
            for (int64_t t = 0; t < T; t++) doc[(size_t)t] = t == T * 3 / 4 ? 0 : 3;
    }
    const int32_t *hdoc = doc.empty() ? nullptr : doc.data();
    const lt_backend *be = lt_backend_cpu();
    std::vector<float> scr((size_t)lt_attention_train_scratch(T, H, hd)), out_r(nq), lse_r((size_t)(T * H)), dq_r(nq),
        dk_r(nk), dv_r(nk);
    be->attention_fwd(q.data(), k.data(), v.data(), hdoc, out_r.data(), lse_r.data(), T, H, KV, hd, scr.data());
    be->attention_bwd(q.data(), k.data(), v.data(), hdoc, out_r.data(), lse_r.data(), dout.data(), dq_r.data(),
                      dk_r.data(), dv_r.data(), T, H, KV, hd, scr.data());

    Dev<float> dq_(q), dk_(k), dv_(v), ddout(dout), out(nq), lse((size_t)(T * H)), gq(nq), gk(nk), gv(nk),
        scratch((size_t)lt_cuda_attention_bwd_scratch(T, H));
    Dev<int32_t> ddoc(doc.empty() ? std::vector<int32_t>(1, 0) : doc);
    const int32_t *dd = doc.empty() ? nullptr : ddoc.p;
    check_rc(lt_cuda_attention_fwd(dq_.p, dk_.p, dv_.p, dd, out.p, lse.p, T, H, KV, hd, nullptr), "lt_cuda_attention_fwd");
    // the backward reads the CPU's out / lse, so the two backward passes see the same inputs
    Dev<float> out_cpu(out_r), lse_cpu(lse_r);
    check_rc(lt_cuda_attention_bwd(dq_.p, dk_.p, dv_.p, dd, out_cpu.p, lse_cpu.p, ddout.p, gq.p, gk.p, gv.p, T, H, KV, hd,
                                   scratch.p, nullptr),
             "lt_cuda_attention_bwd");
    const std::vector<float> o = out.down(), l = lse.down(), g1 = gq.down(), g2 = gk.down(), g3 = gv.down();
    char what[200];
    const struct {
        const char *name;
        const std::vector<float> &got, &ref;
    } cmp[] = {{"out", o, out_r}, {"lse", l, lse_r}, {"dq", g1, dq_r}, {"dk", g2, dk_r}, {"dv", g3, dv_r}};
    for (auto &c : cmp) {
        snprintf(what, sizeof what, "attention %s: %s nmse vs cpu", tag, c.name);
        report(what, nmse(c.got.data(), c.ref.data(), c.ref.size()), LIMIT, "");
    }
    // determinism: forward and backward again under another scheduling seed
    {
        const unsigned s0 = emu::seed();
        emu::set_seed(s0 * 7919 + 13);
        Dev<float> out2(nq), lse2((size_t)(T * H)), q2(nq), k2(nk), v2(nk);
        check_rc(lt_cuda_attention_fwd(dq_.p, dk_.p, dv_.p, dd, out2.p, lse2.p, T, H, KV, hd, nullptr), "fwd rerun");
        check_rc(lt_cuda_attention_bwd(dq_.p, dk_.p, dv_.p, dd, out_cpu.p, lse_cpu.p, ddout.p, q2.p, k2.p, v2.p, T, H, KV,
                                       hd, scratch.p, nullptr),
                 "bwd rerun");
        emu::set_seed(s0);
        const long d = bit_mismatches(out2.down().data(), o.data(), 4, nq) +
                       bit_mismatches(lse2.down().data(), l.data(), 4, (size_t)(T * H)) +
                       bit_mismatches(q2.down().data(), g1.data(), 4, nq) +
                       bit_mismatches(k2.down().data(), g2.data(), 4, nk) + bit_mismatches(v2.down().data(), g3.data(), 4, nk);
        snprintf(what, sizeof what, "attention %s: rerun under another scheduling seed (out, lse, dq, dk, dv)", tag);
        report_bits(what, d, (long)(2 * nq + (size_t)(T * H) + 2 * nk));
    }
    // the cached (inference) form: the last Tn queries against all T keys, no doc map
    if (ndocs == 1) {
        const int64_t Tn = T / 2 > 0 ? T / 2 : 1, past = T - Tn;
        std::vector<float> scr2((size_t)lt_attention_scratch(Tn, past, H)), o_r((size_t)(Tn * H * hd));
        be->attention(q.data() + past * H * hd, k.data(), v.data(), o_r.data(), Tn, past, H, KV, hd, scr2.data());
        Dev<float> oc((size_t)(Tn * H * hd));
        check_rc(lt_cuda_attention_cached(dq_.p + past * H * hd, dk_.p, dv_.p, oc.p, Tn, past, H, KV, hd, nullptr),
                 "lt_cuda_attention_cached");
        const std::vector<float> og = oc.down();
        snprintf(what, sizeof what, "attention cached %lld queries after %lld (H=%lld KV=%lld hd=%lld): nmse vs cpu",
                 (long long)Tn, (long long)past, (long long)H, (long long)KV, (long long)hd);
        report(what, nmse(og.data(), o_r.data(), og.size()), LIMIT, "");
    }
}

} // namespace

void test_attention() {
    section("attention.cu vs the CPU backend (attention_fwd / attention_bwd / attention)");
    one(1, 2, 1, 8, 1, false);
    one(37, 4, 2, 24, 3, false);
    one(130, 2, 1, 64, 1, false);
    one(150, 4, 1, 8, 40, true); // 40 doc ids in random order: tiles hold many, not all, of them
    one(200, 2, 1, 128, 2, false);
    // the other hd classes and edges: a full 64-tile, hd not a multiple of 16 (zero padding), 96, 256,
    // a one-token document (doc 0 at 3T/4 among doc 3: its tile's doc range covers the earlier tiles'
    // doc, which must not be skipped)
    one(64, 1, 1, 16, 1, false);
    one(129, 4, 2, 33, 3, true);
    one(100, 3, 3, 96, 2, false);
    one(70, 2, 1, 256, 1, false);
    one(127, 2, 1, 24, 2, true);
    float x = 0;
    Dev<float> d(8);
    emu_check(lt_cuda_attention_fwd(d.p, d.p, d.p, nullptr, d.p, d.p, 4, 3, 2, 8, nullptr) == 1 &&
                  lt_cuda_attention_fwd(d.p, d.p, d.p, nullptr, d.p, d.p, 4, 2, 1, 257, nullptr) == 1 &&
                  lt_cuda_attention_cached(d.p, d.p, d.p, d.p, 4, -1, 2, 1, 8, nullptr) == 1 &&
                  lt_cuda_attention_fwd(&x, &x, &x, nullptr, &x, &x, 0, 2, 1, 8, nullptr) == 0,
              "attention argument checks: n_heads %% n_kv_heads != 0, hd > 256, n_past < 0 refused; T = 0 a no-op");
}
