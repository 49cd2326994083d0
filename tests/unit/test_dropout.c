/* LoRA dropout in the training step: the mask stream's statistics and independence, and that the
 * step with dropout is still deterministic — checkpointing on / off (where the masks are drawn again
 * inside backward) and thread counts give the same bits — while a different key gives other
 * gradients; and the eval loss (no dropout, no gradients). (The gradients' values with dropout are checked against PyTorch, fed the same masks,
 * in tests/reference/train_step.sh.) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "train/lora.h"
#include "train/step.h"
#include "test.h"

static void check_stream(void) {
    const int64_t n = 1 << 20;
    float *x = malloc((size_t)n * sizeof(float)), *y = malloc((size_t)n * sizeof(float)),
          *z = malloc((size_t)n * sizeof(float));
    CHECK(x && y && z);
    if (!x || !y || !z) return;
    for (int64_t i = 0; i < n; i++) x[i] = 1.0f + (float)(i % 7);
    const double p = 0.1;
    lt_train_dropout(77, 3, 2, p, x, y, n);
    int64_t kept = 0;
    const float scale = (float)(1.0 / (1.0 - p));
    bool exact = true;
    for (int64_t i = 0; i < n; i++) {
        if (y[i] != 0.0f) {
            kept++;
            exact &= y[i] == x[i] * scale;
        }
    }
    /* binomial: sd of the kept fraction = sqrt(p(1-p)/n) = 2.9e-4; 6 sd = 1.8e-3 (a biased stream,
       e.g. a threshold off by a factor, misses by far more) */
    const double frac = (double)kept / (double)n;
    CHECKF(fabs(frac - (1.0 - p)) < 1.8e-3, "kept fraction %.5f, expected %.5f", frac, 1.0 - p);
    CHECK(exact);
    /* same key -> same mask, in place too */
    memcpy(z, x, (size_t)n * sizeof(float));
    lt_train_dropout(77, 3, 2, p, z, z, n);
    CHECK(!memcmp(y, z, (size_t)n * sizeof(float)));
    /* a prefix of the stream is the stream of the prefix (masks do not depend on the call's length) */
    lt_train_dropout(77, 3, 2, p, x, z, 1001);
    CHECK(!memcmp(y, z, 1001 * sizeof(float)));
    /* another key / layer / module: masks agree only by chance: P(same) per element = 0.82;
       over 2^20 elements the agreement is 0.82 +- 0.002 when independent, 1.0 when not */
    const uint64_t keys[3] = {78, 77, 77};
    const int64_t layers[3] = {3, 4, 3};
    const int mods[3] = {2, 2, 3};
    for (int v = 0; v < 3; v++) {
        lt_train_dropout(keys[v], layers[v], mods[v], p, x, z, n);
        int64_t same = 0;
        for (int64_t i = 0; i < n; i++) same += (y[i] != 0.0f) == (z[i] != 0.0f);
        const double agree = (double)same / (double)n, expect = p * p + (1 - p) * (1 - p);
        CHECKF(fabs(agree - expect) < 0.005, "variant %d: masks agree on %.4f of elements (independent: %.4f)", v,
               agree, expect);
    }
    lt_train_dropout(77, 3, 2, 0.0, x, z, n); /* p = 0 keeps everything, scale 1 */
    CHECK(!memcmp(x, z, (size_t)n * sizeof(float)));
    free(x);
    free(y);
    free(z);
}

static const char *tiny = "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":32,\"intermediate_size\":48,"
                          "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
                          "\"vocab_size\":61,\"initializer_range\":0.15,\"bos_token_id\":1,\"eos_token_id\":2}";

#define T_ROW 40

static float *grads_of(lt_lora *a, int64_t L, int64_t *n_out) {
    int64_t n = 0;
    for (int64_t l = 0; l < L; l++)
        for (int mo = 0; mo < LT_LORA_N_MODULES; mo++) {
            const lt_lora_mod *m = lt_lora_get(a, l, (lt_lora_module)mo);
            if (m) n += m->r * (m->in + m->out);
        }
    float *g = malloc((size_t)n * sizeof(float));
    int64_t o = 0;
    for (int64_t l = 0; g && l < L; l++)
        for (int mo = 0; mo < LT_LORA_N_MODULES; mo++) {
            const lt_lora_mod *m = lt_lora_get(a, l, (lt_lora_module)mo);
            if (!m) continue;
            memcpy(g + o, m->ga, (size_t)(m->r * m->in) * sizeof(float));
            o += m->r * m->in;
            memcpy(g + o, m->gb, (size_t)(m->r * m->out) * sizeof(float));
            o += m->r * m->out;
        }
    *n_out = n;
    return g;
}

static void check_step(void) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/test_dropout_model", lt_test_tmpdir());
    lt_model_config cfg;
    CHECK_OK(lt_config_parse(tiny, "tiny", &cfg));
    lt_make_opts mo = {.seed = 5, .dtype = LT_DTYPE_F32};
    CHECK_OK(lt_model_make_random(&cfg, &mo, dir));
    lt_pool *pool;
    CHECK_OK(lt_pool_create(1LL << 30, &pool));
    lt_model *m = NULL;
    CHECK_OK(lt_model_load(dir, pool, lt_backend_cpu(), &m));
    if (!m) return;
    lt_lora_cfg lc = {.targets = LT_LORA_ALL_LINEAR, .r = 4, .alpha = 8, .seed = 3, .dropout = 0.25};
    lt_lora *a = NULL;
    CHECK_OK(lt_lora_create(&cfg, &lc, pool, &a));
    if (!a) return;
    for (int64_t l = 0; l < cfg.n_layers; l++) /* B != 0, so the A gradients are not all 0 */
        for (int k = 0; k < LT_LORA_N_MODULES; k++) {
            lt_lora_mod *md = lt_lora_get_mut(a, l, (lt_lora_module)k);
            for (int64_t i = 0; i < md->out * md->r; i++) md->b[i] = 0.02f * (float)((i * 7 + k) % 11 - 5);
        }
    lt_lora_sync_bf16(a);
    int32_t ids[T_ROW], labels[T_ROW], tgt[T_ROW], pos[T_ROW];
    for (int t = 0; t < T_ROW; t++) labels[t] = ids[t] = (int32_t)((t * 37 + 11) % cfg.vocab_size);
    CHECK_OK(lt_train_targets_from_hf(T_ROW, labels, NULL, tgt, pos));
    lt_train_batch b = {.T = T_ROW, .ids = ids, .targets = tgt, .pos = pos, .dropout_key = 1234};
    double s[4];
    int64_t nsc, n[4];
    float *g[4];
    const bool ckpt[4] = {false, true, true, false};
    const uint64_t key[4] = {1234, 1234, 1234, 999};
    const int threads[4] = {1, 1, 2, 1};
    for (int v = 0; v < 4; v++) {
        lt_threads_set(threads[v]);
        b.dropout_key = key[v];
        lt_lora_zero_grad(a);
        CHECK_OK(lt_train_step_grads(m, a, &b, 20.0, ckpt[v], &s[v], &nsc));
        g[v] = grads_of(a, cfg.n_layers, &n[v]);
    }
    lt_threads_set(0);
    CHECK(n[0] > 0 && n[0] == n[1] && n[0] == n[2] && n[0] == n[3]);
    CHECKF(s[0] == s[1] && s[0] == s[2], "losses %.17g %.17g %.17g", s[0], s[1], s[2]);
    CHECK(!memcmp(g[0], g[1], (size_t)n[0] * sizeof(float)));
    CHECK(!memcmp(g[0], g[2], (size_t)n[0] * sizeof(float)));
    /* another key: the LoRA branch sees other inputs, so the loss and the gradients move */
    CHECK(s[3] != s[0] && memcmp(g[0], g[3], (size_t)n[0] * sizeof(float)));
    /* eval: no dropout, no gradient touched; equal to the step's loss with an adapter of dropout 0
       and the same weights (same forward ops in the same order) */
    lt_lora_cfg lc0 = lc;
    lc0.dropout = 0.0;
    lt_lora *a0 = NULL;
    CHECK_OK(lt_lora_create(&cfg, &lc0, pool, &a0));
    for (int64_t l = 0; a0 && l < cfg.n_layers; l++)
        for (int k = 0; k < LT_LORA_N_MODULES; k++)
            memcpy(lt_lora_get_mut(a0, l, (lt_lora_module)k)->b, lt_lora_get(a, l, (lt_lora_module)k)->b,
                   (size_t)(lt_lora_get(a, l, (lt_lora_module)k)->out * 4) * sizeof(float));
    if (a0) {
        lt_lora_sync_bf16(a0);
        double se, s0;
        int64_t ne, n0;
        CHECK_OK(lt_train_eval_loss(m, a, &b, &se, &ne));
        int64_t ng;
        float *gafter = grads_of(a, cfg.n_layers, &ng);
        CHECK(ng == n[0] && !memcmp(gafter, g[3], (size_t)ng * sizeof(float))); /* the last step's grads stay */
        free(gafter);
        lt_lora_zero_grad(a0);
        CHECK_OK(lt_train_step_grads(m, a0, &b, 1.0, true, &s0, &n0));
        CHECKF(se == s0 && ne == n0 && ne == T_ROW - 1, "eval loss %.17g (%lld) vs step %.17g (%lld)", se,
               (long long)ne, s0, (long long)n0);
        lt_lora_free(a0);
    }
    for (int v = 0; v < 4; v++) free(g[v]);
    lt_lora_free(a);
    lt_model_free(m);
    lt_pool_destroy(pool);
}

int main(void) {
    check_stream();
    check_step();
    TEST_MAIN_END();
}
