/* Quantize-on-load: the pool's high-water mark during loading is the quantized model plus one
 * tensor's f32 buffer (not the f32 model), and the forward pass on quantized weights equals the
 * f32 forward pass on the same weights dequantized (written out by lt_model_save_effective). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "model/model.h"
#include "test.h"

static const char *CONFIG =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 384, \"hidden_size\": 256,"
    " \"intermediate_size\": 512, \"num_hidden_layers\": 3, \"num_attention_heads\": 8,"
    " \"num_key_value_heads\": 2, \"initializer_range\": 0.1, \"tie_word_embeddings\": false,"
    " \"bos_token_id\": 1, \"eos_token_id\": 2}";

static double max_rel(const float *a, const float *b, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)a[i] - (double)b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return den > 0 ? num / den : num;
}

static void logits_of(const char *dir, const lt_load_opts *lo, const int32_t *ids, int64_t n, float *out) {
    lt_pool *pool = NULL;
    lt_model *m = NULL;
    lt_kv_cache *kv = NULL;
    CHECK_OK(lt_pool_create(1LL << 30, &pool));
    CHECK_OK(lt_model_load_opts(dir, pool, lt_backend_cpu(), lo, &m));
    if (m) {
        CHECK_OK(lt_kv_create(m, pool, n, &kv));
        CHECK_OK(lt_model_forward(m, kv, ids, n, out, true));
    }
    lt_kv_free(kv);
    lt_model_free(m);
    lt_pool_destroy(pool);
}

int main(void) {
    char dir[4096], eff[4096];
    snprintf(dir, sizeof dir, "%s/test_model_quant/model", lt_test_tmpdir());
    lt_model_config cfg;
    CHECK_OK(lt_config_parse(CONFIG, "test config", &cfg));
    lt_make_opts mo = {.seed = 5, .dtype = LT_DTYPE_BF16};
    CHECK_OK(lt_model_make_random(&cfg, &mo, dir));

    const int64_t H = cfg.hidden_size, I = cfg.intermediate_size, V = cfg.vocab_size;
    const int64_t f32_model = lt_config_n_params(&cfg) * 4;
    const lt_qformat formats[] = {LT_Q_NF4, LT_Q_NF4_NODQ, LT_Q_MXFP4, LT_Q_NVFP4, LT_Q_Q8_0, LT_Q_BF16};
    int32_t ids[24];
    for (int i = 0; i < 24; i++) ids[i] = (int32_t)((i * 37 + 5) % V);
    float *a = malloc(sizeof(float) * 24 * (size_t)V), *b = malloc(sizeof(float) * 24 * (size_t)V);

    for (size_t k = 0; k < sizeof formats / sizeof formats[0]; k++) {
        lt_load_opts lo = {.quantize = true, .format = formats[k]};
        const char *fname = lt_qformat_name(formats[k]);
        lt_pool *pool;
        lt_model *m = NULL;
        CHECK_OK(lt_pool_create(1LL << 30, &pool));
        CHECK_OK(lt_model_load_opts(dir, pool, lt_backend_cpu(), &lo, &m));
        if (!m) {
            lt_pool_destroy(pool);
            continue;
        }
        lt_pool_stats s = lt_pool_get_stats(pool);
        lt_quant_summary q = lt_model_quant_summary(m);
        /* every Linear of the layers is quantized (all inputs are block multiples); embedding and
         * lm_head stay f32 by default */
        CHECKF(q.n_quantized == 7 * cfg.n_layers && q.n_kept == 2 && q.n_unaligned == 0, "%s: %lld quantized, %lld kept",
               fname, (long long)q.n_quantized, (long long)q.n_kept);
        /* the peak while loading: everything now resident + the one reusable f32 buffer, which
         * is as large as the largest quantized tensor (gate/up/down: H x I) — exactly, since the
         * pool counts requested bytes */
        int64_t expect_peak = lt_model_weight_bytes(m) + H * I * 4;
        CHECKF(s.high_water == expect_peak, "%s: high water %lld, expected weights %lld + one tensor %lld", fname,
               (long long)s.high_water, (long long)lt_model_weight_bytes(m), (long long)(H * I * 4));
        CHECKF(s.tag_used[LT_POOL_SCRATCH] == 0, "%s: scratch not released", fname);
        /* 4-bit formats hold the layers in ~1/7 of f32; the f32 embedding and lm_head
         * (2 x 384 x 256 floats) are the rest: the peak stays under half the f32 model */
        if (formats[k] != LT_Q_BF16 && formats[k] != LT_Q_Q8_0)
            CHECKF(s.high_water < f32_model / 2, "%s: peak %lld vs f32 model %lld", fname, (long long)s.high_water,
                   (long long)f32_model);
        snprintf(eff, sizeof eff, "%s/test_model_quant/eff_%s", lt_test_tmpdir(), fname);
        CHECK_OK(lt_model_save_effective(m, eff));
        lt_model_free(m);
        CHECK(lt_pool_get_stats(pool).used == 0);
        lt_pool_destroy(pool);

        /* quantized forward == f32 forward on the dequantized weights. Both compute the same
         * products in f32 with different summation orders (qlinear's panels vs sgemm) over
         * K <= 512 terms: ~1e-6 relative; 1e-4 leaves headroom and still catches any wrong
         * block, scale or nibble (those give O(1e-2) or worse). */
        lt_load_opts f32 = {.quantize = false};
        logits_of(dir, &lo, ids, 24, a);
        logits_of(eff, &f32, ids, 24, b);
        double e = max_rel(a, b, 24 * V);
        CHECKF(e <= 1e-4, "%s: quantized forward vs f32 on effective weights: rel err %.3g", fname, e);
        printf("%-9s peak %7.2f MiB (f32 model %.2f MiB), forward vs effective-f32 rel err %.2g\n", fname,
               (double)expect_peak / 1048576.0, (double)f32_model / 1048576.0, e);
    }
    /* the embedding quantized too: rows dequantized on lookup */
    {
        lt_load_opts lo = {.quantize = true, .format = LT_Q_Q8_0, .quantize_embeddings = true, .quantize_lm_head = true};
        lt_load_opts f32 = {.quantize = false};
        lt_pool *pool;
        lt_model *m = NULL;
        CHECK_OK(lt_pool_create(1LL << 30, &pool));
        CHECK_OK(lt_model_load_opts(dir, pool, lt_backend_cpu(), &lo, &m));
        if (m) {
            CHECK(lt_model_quant_summary(m).n_quantized == 7 * cfg.n_layers + 2);
            snprintf(eff, sizeof eff, "%s/test_model_quant/eff_all", lt_test_tmpdir());
            CHECK_OK(lt_model_save_effective(m, eff));
        }
        lt_model_free(m);
        lt_pool_destroy(pool);
        logits_of(dir, &lo, ids, 24, a);
        logits_of(eff, &f32, ids, 24, b);
        double e = max_rel(a, b, 24 * V);
        CHECKF(e <= 1e-4, "q8_0 with embeddings: rel err %.3g", e); /* same reason as above */
    }
    free(a);
    free(b);
    TEST_MAIN_END();
}
