/* Driver for tests/reference/train_attn_ce.sh: writes random inputs and loft's outputs of the
 * training attention and the fused lm_head + cross-entropy, for tools/reference/train_attn_ce_ref.py.
 * All files are raw little-endian arrays in DIR.
 *
 *   train_attn_ce_driver attn T N_HEADS N_KV_HEADS HD DOCS SEED DIR
 *       inputs  q.f32 [T,nh,hd], k.f32 v.f32 [T,nkv,hd], dout.f32 [T,nh,hd], doc.i32 [T]
 *               (DOCS documents of random lengths; DOCS 0: doc NULL, all zeros written)
 *       outputs out.f32 [T,nh,hd], lse.f32 [T,nh], dq.f32, dk.f32, dv.f32
 *   train_attn_ce_driver ce T H V FORMAT SEED DIR
 *       FORMAT f32 or a quantized format name (nf4, q8_0, ...): W is quantized and w.f32 holds the
 *       dequantized W the reference must use.
 *       inputs  x.f32 [T,H], w.f32 [V,H], labels.i32 [T] (about 1 in 4 is -100), scale.f32 (grad_scale)
 *       outputs loss.f64 (the sum), dx.f32 [T,H] (grad_scale * d loss / dx), nvalid.i64
 */
#include "backend/backend.h"
#include "backend/cpu/cpu_internal.h"
#include "core/core.h"
#include "pool/pool.h"
#include "quant/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int wr(const char *dir, const char *name, const void *data, int64_t bytes) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (bytes && fwrite(data, 1, (size_t)bytes, f) != (size_t)bytes) || fclose(f) != 0) {
        fprintf(stderr, "train_attn_ce_driver: cannot write %s\n", path);
        return 1;
    }
    return 0;
}

static float *randn(lt_rng *r, int64_t n, float sd) {
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) x[i] = sd * lt_rng_normal(r);
    return x;
}

static int run_attn(int64_t T, int64_t nh, int64_t nkv, int64_t hd, int64_t docs, uint64_t seed, const char *dir) {
    if (T < 1 || nh < 1 || nkv < 1 || nh % nkv || hd < 1 || docs < 0) return 2;
    lt_rng r;
    lt_rng_init(&r, seed);
    const int64_t nq = T * nh * hd, nk = T * nkv * hd;
    float *q = randn(&r, nq, 1.5f), *k = randn(&r, nk, 1.5f), *v = randn(&r, nk, 1.0f), *dout = randn(&r, nq, 1.0f);
    int32_t *doc = calloc((size_t)T, sizeof(int32_t));
    /* DOCS documents: cut points drawn at random; ids not in order (the mask compares ids only) */
    for (int64_t d = 1; d < docs; d++) {
        const int64_t cut = (int64_t)(lt_rng_u32(&r) % (uint32_t)T);
        for (int64_t t = cut; t < T; t++) doc[t] = (int32_t)(d * 7 % 5 + d * 10);
    }
    float *out = malloc((size_t)nq * 4), *lse = malloc((size_t)(T * nh) * 4), *dq = malloc((size_t)nq * 4);
    float *dk = malloc((size_t)nk * 4), *dv = malloc((size_t)nk * 4);
    float *scratch = malloc((size_t)lt_attention_train_scratch(T, nh, hd) * 4);
    const int32_t *dp = docs ? doc : NULL;
    lt_cpu_attention_fwd(q, k, v, dp, out, lse, T, nh, nkv, hd, scratch);
    lt_cpu_attention_bwd(q, k, v, dp, out, lse, dout, dq, dk, dv, T, nh, nkv, hd, scratch);
    int rc = wr(dir, "q.f32", q, nq * 4) | wr(dir, "k.f32", k, nk * 4) | wr(dir, "v.f32", v, nk * 4) |
             wr(dir, "dout.f32", dout, nq * 4) | wr(dir, "doc.i32", doc, T * 4) | wr(dir, "out.f32", out, nq * 4) |
             wr(dir, "lse.f32", lse, T * nh * 4) | wr(dir, "dq.f32", dq, nq * 4) | wr(dir, "dk.f32", dk, nk * 4) |
             wr(dir, "dv.f32", dv, nk * 4);
    free(q), free(k), free(v), free(dout), free(doc), free(out), free(lse), free(dq), free(dk), free(dv), free(scratch);
    return rc;
}

static int run_ce(int64_t T, int64_t H, int64_t V, const char *fmt, uint64_t seed, const char *dir) {
    if (T < 1 || H < 1 || V < 1) return 2;
    lt_rng r;
    lt_rng_init(&r, seed);
    float *x = randn(&r, T * H, 1.0f), *w = randn(&r, V * H, 0.5f), *dx = malloc((size_t)(T * H) * 4);
    int32_t *labels = malloc((size_t)T * 4);
    for (int64_t t = 0; t < T; t++)
        labels[t] = lt_rng_u32(&r) % 4 == 0 ? -100 : (int32_t)(lt_rng_u32(&r) % (uint32_t)V);
    if (T > 1) labels[T - 1] = (int32_t)(V - 1); /* the last vocabulary row: the partial chunk */
    const float gs = 0.75f;
    lt_pool *pool = NULL;
    lt_qtensor q;
    memset(&q, 0, sizeof q);
    const bool quant = strcmp(fmt, "f32") != 0;
    if (quant) {
        lt_qformat f;
        lt_status st = NULL;
        if (!lt_qformat_from_name(fmt, &f)) {
            fprintf(stderr, "train_attn_ce_driver: unknown format %s\n", fmt);
            return 2;
        }
        st = lt_pool_create(4LL << 30, &pool);
        if (!st) st = lt_qtensor_alloc(pool, LT_POOL_WEIGHTS, f, V, H, "lm_head.weight", &q);
        if (!st) st = lt_quantize(w, "lm_head.weight", &q);
        if (st) {
            fprintf(stderr, "train_attn_ce_driver: %s\n", lt_status_msg(st));
            return 1;
        }
        lt_dequantize_rows(&q, 0, V, w); /* the reference sees the dequantized W */
    }
    float *scratch = malloc((size_t)lt_ce_scratch(T, H, V) * 4);
    int64_t nv = 0;
    const double loss = lt_cpu_ce_loss(x, quant ? NULL : w, quant ? &q : NULL, labels, dx, gs, T, H, V, &nv, scratch);
    int rc = wr(dir, "x.f32", x, T * H * 4) | wr(dir, "w.f32", w, V * H * 4) | wr(dir, "labels.i32", labels, T * 4) |
             wr(dir, "scale.f32", &gs, 4) | wr(dir, "loss.f64", &loss, 8) | wr(dir, "dx.f32", dx, T * H * 4) |
             wr(dir, "nvalid.i64", &nv, 8);
    if (quant) {
        lt_qtensor_free(pool, &q);
        lt_pool_destroy(pool);
    }
    free(x), free(w), free(dx), free(labels), free(scratch);
    return rc;
}

int main(int argc, char **argv) {
    if (argc == 9 && strcmp(argv[1], "attn") == 0)
        return run_attn(atoll(argv[2]), atoll(argv[3]), atoll(argv[4]), atoll(argv[5]), atoll(argv[6]),
                        (uint64_t)atoll(argv[7]), argv[8]);
    if (argc == 8 && strcmp(argv[1], "ce") == 0)
        return run_ce(atoll(argv[2]), atoll(argv[3]), atoll(argv[4]), argv[5], (uint64_t)atoll(argv[6]), argv[7]);
    fprintf(stderr, "usage: train_attn_ce_driver attn T N_HEADS N_KV_HEADS HD DOCS SEED DIR\n"
                    "       train_attn_ce_driver ce T H V FORMAT SEED DIR\n");
    return 2;
}
