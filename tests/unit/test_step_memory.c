/* The fused chunked lm_head + cross-entropy never materialises the [tokens x vocab] logits: for a
 * 128256-token vocabulary (Llama 3's) and T = 384, the pool's high-water mark during a whole training
 * step (all activations, the CE scratch, everything) stays below T * V * 4 bytes, the size of the f32
 * logits alone. Also with a quantized (NF4) tied embedding / lm_head, where the CE dequantizes one
 * chunk of the vocabulary at a time. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "train/lora.h"
#include "train/step.h"
#include "test.h"

static const char *cfg_json = "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,\"intermediate_size\":128,"
                              "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
                              "\"vocab_size\":128256,\"tie_word_embeddings\":true,\"initializer_range\":0.05,"
                              "\"bos_token_id\":128000,\"eos_token_id\":128001}";

#define T_ROW 384

static void run(const char *dir, const lt_model_config *cfg, bool quant, bool ckpt) {
    lt_pool *pool;
    CHECK_OK(lt_pool_create(4LL << 30, &pool));
    lt_model *m = NULL;
    lt_load_opts lo = {.quantize = quant, .format = LT_Q_NF4, .quantize_embeddings = quant};
    CHECK_OK(lt_model_load_opts(dir, pool, lt_backend_cpu(), &lo, &m));
    if (!m) return;
    lt_lora_cfg lc = {.targets = LT_LORA_ALL_LINEAR, .r = 8, .alpha = 16, .seed = 1};
    lt_lora *a = NULL;
    CHECK_OK(lt_lora_create(cfg, &lc, pool, &a));
    int32_t *ids = malloc(T_ROW * sizeof(int32_t)), *tgt = malloc(T_ROW * sizeof(int32_t)),
            *pos = malloc(T_ROW * sizeof(int32_t));
    for (int t = 0; t < T_ROW; t++) ids[t] = (int32_t)((t * 7919 + 13) % cfg->vocab_size);
    CHECK_OK(lt_train_targets_from_hf(T_ROW, ids, NULL, tgt, pos)); /* every position scored */
    lt_train_batch b = {.T = T_ROW, .ids = ids, .targets = tgt, .pos = pos};
    const int64_t before = lt_pool_get_stats(pool).used;
    lt_pool_reset_high_water(pool);
    double sum;
    int64_t n;
    CHECK_OK(lt_train_step_grads(m, a, &b, T_ROW - 1, ckpt, &sum, &n));
    const int64_t peak = lt_pool_get_stats(pool).high_water - before;
    const int64_t logits = (int64_t)T_ROW * cfg->vocab_size * 4;
    printf("%s base, checkpointing %s: step high-water %.1f MB above the model = %.3f x the logits' %.1f MB\n",
           quant ? "nf4" : "f32", ckpt ? "on " : "off", peak / 1e6, (double)peak / (double)logits, logits / 1e6);
    CHECK(isfinite(sum) && n == T_ROW - 1);
    CHECKF(peak < logits, "the step's high-water %lld >= the logits' %lld bytes", (long long)peak, (long long)logits);
    free(ids);
    free(tgt);
    free(pos);
    lt_lora_free(a);
    lt_model_free(m);
    lt_pool_destroy(pool);
}

int main(void) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/test_step_memory", lt_test_tmpdir());
    lt_model_config cfg;
    CHECK_OK(lt_config_parse(cfg_json, "128k", &cfg));
    CHECK_OK(lt_model_make_random(&cfg, &(lt_make_opts){.seed = 1, .dtype = LT_DTYPE_BF16}, dir));
    run(dir, &cfg, false, true);
    run(dir, &cfg, false, false);
    run(dir, &cfg, true, true);
    TEST_MAIN_END();
}
