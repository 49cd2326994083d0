/* train/step: the LoRA training step's internal consistency (the maths itself is checked against
 * the PyTorch oracle in tests/reference/train_step.sh):
 *   - checkpointing on / off give bit-identical loss and gradients, and checkpointing lowers the
 *     pool's ACTIVATIONS high-water mark;
 *   - gradient accumulation is linear: the two documents of a packed row, run as separate rows with
 *     the full row's denominator, sum to the packed row's gradients;
 *   - a quantized (Q8_0) base gives the gradients of the f32 model with its effective weights;
 *   - lt_train_targets_from_hf follows the HF shift with packing;
 *   - bad batches are refused with a message and accumulate nothing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "train/lora.h"
#include "train/step.h"
#include "test.h"

static const char *tiny_qwen3 = /* q/k norms, GQA 2:1, head_dim 16 != hidden/heads, tied */
    "{\"architectures\":[\"Qwen3ForCausalLM\"],\"hidden_size\":32,\"intermediate_size\":48,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"head_dim\":16,\"vocab_size\":67,"
    "\"tie_word_embeddings\":true,\"initializer_range\":0.15,\"bos_token_id\":1,\"eos_token_id\":2}";
static const char *tiny_qwen2 = /* q/k/v biases, untied lm_head */
    "{\"architectures\":[\"Qwen2ForCausalLM\"],\"hidden_size\":24,\"intermediate_size\":40,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"vocab_size\":53,\"tie_word_embeddings\":false,"
    "\"initializer_range\":0.15,\"bos_token_id\":1,\"eos_token_id\":2}";

#define T_ROW 24
#define T_A 10 /* the first document's length */

typedef struct grads {
    int64_t n;
    float *v;
} grads;

static grads grads_copy(lt_lora *a, int64_t n_layers) {
    grads g = {0, NULL};
    g.n = 2 * lt_lora_n_params(a);
    g.v = calloc((size_t)g.n, sizeof(float));
    int64_t o = 0;
    for (int64_t l = 0; l < n_layers; l++)
        for (int mo = 0; mo < LT_LORA_N_MODULES; mo++) {
            const lt_lora_mod *m = lt_lora_get(a, l, (lt_lora_module)mo);
            if (!m) continue;
            memcpy(g.v + o, m->ga, (size_t)(m->r * m->in) * sizeof(float));
            o += m->r * m->in;
            memcpy(g.v + o, m->gb, (size_t)(m->out * m->r) * sizeof(float));
            o += m->out * m->r;
        }
    CHECK(o <= g.n);
    g.n = o;
    return g;
}

/* All-linear adapter, r 4, PEFT A, and a nonzero B (with B = 0 every A gradient would be 0). */
static lt_lora *make_adapter(const lt_model_config *cfg, lt_pool *pool) {
    lt_lora_cfg lc = {.targets = LT_LORA_ALL_LINEAR, .r = 4, .alpha = 8, .seed = 3};
    lt_lora *a = NULL;
    CHECK_OK(lt_lora_create(cfg, &lc, pool, &a));
    uint32_t s = 12345;
    for (int64_t l = 0; a && l < cfg->n_layers; l++)
        for (int k = 0; k < LT_LORA_N_MODULES; k++) {
            lt_lora_mod *md = lt_lora_get_mut(a, l, (lt_lora_module)k);
            for (int64_t i = 0; i < md->out * md->r; i++) {
                s = s * 1664525u + 1013904223u;
                md->b[i] = ((float)(s >> 8) / 16777216.0f * 2.0f - 1.0f) * 0.05f;
            }
        }
    if (a) lt_lora_sync_bf16(a);
    return a;
}

/* A quantized base (Q8_0, embeddings / tied lm_head included: the qlinear, qlinear_dx, quantized
 * embedding and quantized ce_loss paths) against the f32 model made of the same effective
 * (dequantized) weights: the same maths on the same values, only the GEMM paths differ. */
static void run_quant(const char *json, const char *name) {
    char dir[4200], eff[4200];
    snprintf(dir, sizeof dir, "%s/test_step_q_%s", lt_test_tmpdir(), name);
    snprintf(eff, sizeof eff, "%s/test_step_q_%s_eff", lt_test_tmpdir(), name);
    lt_model_config cfg;
    CHECK_OK(lt_config_parse(json, name, &cfg));
    lt_make_opts mo = {.seed = 8, .dtype = LT_DTYPE_F32};
    CHECK_OK(lt_model_make_random(&cfg, &mo, dir));
    lt_pool *pool;
    CHECK_OK(lt_pool_create(1LL << 30, &pool));
    lt_load_opts qo = {.quantize = true, .format = LT_Q_Q8_0, .quantize_embeddings = true, .quantize_lm_head = true};
    lt_model *mq = NULL, *mf = NULL;
    CHECK_OK(lt_model_load_opts(dir, pool, lt_backend_cpu(), &qo, &mq));
    if (!mq) return;
    CHECK(lt_model_quant_summary(mq).n_quantized > 0);
    CHECK_OK(lt_model_save_effective(mq, eff));
    CHECK_OK(lt_model_load(eff, pool, lt_backend_cpu(), &mf));
    if (!mf) return;
    lt_lora *a = make_adapter(&cfg, pool);
    int32_t ids[T_ROW], labels[T_ROW], doc[T_ROW], tgt[T_ROW], pos[T_ROW];
    uint32_t s = 99;
    for (int t = 0; t < T_ROW; t++) {
        s = s * 1664525u + 1013904223u;
        ids[t] = (int32_t)((s >> 8) % (uint32_t)cfg.vocab_size);
        labels[t] = t == 3 ? -100 : ids[t];
        doc[t] = t < T_A ? 0 : 1;
    }
    CHECK_OK(lt_train_targets_from_hf(T_ROW, labels, doc, tgt, pos));
    lt_train_batch b = {.T = T_ROW, .ids = ids, .targets = tgt, .doc = doc, .pos = pos};
    double sq0, sq1, sf;
    int64_t n;
    lt_lora_zero_grad(a);
    CHECK_OK(lt_train_step_grads(mq, a, &b, 10.0, false, &sq0, &n));
    grads g0 = grads_copy(a, cfg.n_layers);
    lt_lora_zero_grad(a);
    CHECK_OK(lt_train_step_grads(mq, a, &b, 10.0, true, &sq1, &n));
    grads g1 = grads_copy(a, cfg.n_layers);
    lt_lora_zero_grad(a);
    CHECK_OK(lt_train_step_grads(mf, a, &b, 10.0, true, &sf, &n));
    grads g2 = grads_copy(a, cfg.n_layers);
    CHECK(sq0 == sq1 && g0.n == g1.n && !memcmp(g0.v, g1.v, (size_t)g0.n * sizeof(float)));
    /* same weights, different summation orders (panel sgemm vs sgemm, tiled dx): ~1e-7 relative
       per op; 1e-5 of the largest gradient leaves 100x room, a wrong path gives >= 1e-2 */
    CHECKF(fabs(sq0 - sf) <= 1e-6 * fabs(sf), "%s: quantized loss %.9g vs effective f32 %.9g", name, sq0, sf);
    float gmax = 0;
    double maxd = 0;
    for (int64_t i = 0; i < g2.n; i++) {
        gmax = fmaxf(gmax, fabsf(g2.v[i]));
        maxd = fmax(maxd, fabs((double)g0.v[i] - g2.v[i]));
    }
    CHECKF(gmax > 0 && maxd <= 1e-5 * gmax, "%s: quantized grads differ from effective f32 by %.3g (max %.3g)", name,
           maxd, (double)gmax);
    free(g0.v);
    free(g1.v);
    free(g2.v);
    lt_lora_free(a);
    lt_model_free(mq);
    lt_model_free(mf);
    lt_pool_destroy(pool);
}

static void run_model(const char *json, const char *name) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/test_step_%s", lt_test_tmpdir(), name);
    lt_model_config cfg;
    CHECK_OK(lt_config_parse(json, name, &cfg));
    lt_make_opts mo = {.seed = 7, .dtype = LT_DTYPE_F32};
    CHECK_OK(lt_model_make_random(&cfg, &mo, dir));
    lt_pool *pool;
    CHECK_OK(lt_pool_create(1LL << 30, &pool));
    lt_model *m = NULL;
    CHECK_OK(lt_model_load(dir, pool, lt_backend_cpu(), &m));
    if (!m) {
        lt_pool_destroy(pool);
        return;
    }
    lt_lora *a = make_adapter(&cfg, pool);
    uint32_t s = 777;

    int32_t ids[T_ROW], labels[T_ROW], doc[T_ROW], tgt[T_ROW], pos[T_ROW];
    for (int t = 0; t < T_ROW; t++) {
        s = s * 1664525u + 1013904223u;
        ids[t] = (int32_t)((s >> 8) % (uint32_t)cfg.vocab_size);
        labels[t] = (t == 0 || t == 1 || t == T_A + 1) ? -100 : ids[t]; /* prompt masking */
        doc[t] = t < T_A ? 5 : 9;
    }
    CHECK_OK(lt_train_targets_from_hf(T_ROW, labels, doc, tgt, pos));
    CHECK(tgt[T_A - 1] == -100 && tgt[T_ROW - 1] == -100 && tgt[0] == -100 && tgt[2] == ids[3]);
    CHECK(pos[0] == 0 && pos[T_A - 1] == T_A - 1 && pos[T_A] == 0 && pos[T_ROW - 1] == T_ROW - 1 - T_A);
    lt_train_batch b = {.T = T_ROW, .ids = ids, .targets = tgt, .doc = doc, .pos = pos};

    /* checkpointing off / on */
    double sum0, sum1;
    int64_t n0, n1;
    lt_lora_zero_grad(a);
    lt_pool_reset_high_water(pool);
    CHECK_OK(lt_train_step_grads(m, a, &b, 13.0, false, &sum0, &n0));
    const int64_t hw_off = lt_pool_get_stats(pool).tag_high_water[LT_POOL_ACTIVATIONS];
    grads g0 = grads_copy(a, cfg.n_layers);
    lt_lora_zero_grad(a);
    lt_pool_reset_high_water(pool);
    CHECK_OK(lt_train_step_grads(m, a, &b, 13.0, true, &sum1, &n1));
    const int64_t hw_on = lt_pool_get_stats(pool).tag_high_water[LT_POOL_ACTIVATIONS];
    grads g1 = grads_copy(a, cfg.n_layers);
    CHECK(lt_pool_get_stats(pool).tag_used[LT_POOL_ACTIVATIONS] == 0);
    CHECKF(sum0 == sum1 && n0 == n1, "%s: loss %.17g vs %.17g", name, sum0, sum1);
    CHECK(n0 == T_ROW - 2 - 2); /* 24 positions - 2 doc ends - 2 masked targets (labels[1], labels[T_A+1]) */
    CHECK(isfinite(sum0) && sum0 > 0);
    CHECK(g0.n == g1.n && g0.n > 0 && !memcmp(g0.v, g1.v, (size_t)g0.n * sizeof(float)));
    CHECKF(hw_on < hw_off, "%s: activations high-water %lld with checkpointing, %lld without", name,
           (long long)hw_on, (long long)hw_off);
    float gmax = 0;
    for (int64_t i = 0; i < g0.n; i++) gmax = fmaxf(gmax, fabsf(g0.v[i]));
    CHECK(gmax > 0);

    /* accumulation: doc a alone + doc b alone (separate rows, the full denominator) == packed row */
    lt_lora_zero_grad(a);
    int32_t ta[T_A], pa[T_A], tb[T_ROW - T_A], pb[T_ROW - T_A];
    CHECK_OK(lt_train_targets_from_hf(T_A, labels, NULL, ta, pa));
    CHECK_OK(lt_train_targets_from_hf(T_ROW - T_A, labels + T_A, NULL, tb, pb));
    lt_train_batch ba = {.T = T_A, .ids = ids, .targets = ta, .pos = pa};
    lt_train_batch bb = {.T = T_ROW - T_A, .ids = ids + T_A, .targets = tb, .pos = pb};
    double sa, sb;
    int64_t na, nb;
    CHECK_OK(lt_train_step_grads(m, a, &ba, 13.0, true, &sa, &na));
    CHECK_OK(lt_train_step_grads(m, a, &bb, 13.0, false, &sb, &nb));
    grads g2 = grads_copy(a, cfg.n_layers);
    CHECK(na + nb == n0);
    /* only f32 rounding order differs (different softmax row lengths, GEMM shapes): ~1e-7 relative
       per value; 1e-6 leaves room for a few ulps of accumulation */
    CHECKF(fabs(sa + sb - sum0) <= 1e-6 * fabs(sum0), "%s: %.9g + %.9g vs %.9g", name, sa, sb, sum0);
    double maxd = 0;
    for (int64_t i = 0; i < g0.n; i++) maxd = fmax(maxd, fabs((double)g2.v[i] - g0.v[i]));
    CHECKF(maxd <= 1e-6 * gmax, "%s: accumulated grads differ by %.3g (max |g| %.3g)", name, maxd, (double)gmax);

    /* a bad batch accumulates nothing */
    lt_lora_zero_grad(a);
    ids[3] = (int32_t)cfg.vocab_size;
    CHECK_ERR(lt_train_step_grads(m, a, &b, 13.0, false, &sum0, &n0), "outside");
    ids[3] = 0;
    tgt[4] = -7;
    CHECK_ERR(lt_train_step_grads(m, a, &b, 13.0, false, &sum0, &n0), "neither -100");
    CHECK_ERR(lt_train_step_grads(m, a, &b, 0.0, false, &sum0, &n0), "positive");
    grads g3 = grads_copy(a, cfg.n_layers);
    bool zero = true;
    for (int64_t i = 0; i < g3.n; i++) zero = zero && g3.v[i] == 0;
    CHECK(zero);
    int32_t bad_doc[4] = {1, 2, 1, 1}, l4[4] = {0, 0, 0, 0}, t4[4], p4[4];
    CHECK_ERR(lt_train_targets_from_hf(4, l4, bad_doc, t4, p4), "comes back");

    free(g0.v);
    free(g1.v);
    free(g2.v);
    free(g3.v);
    lt_lora_free(a);
    lt_model_free(m);
    lt_pool_destroy(pool);
}

/* Determinism: the same step gives bit-identical loss and gradients for 1, 2 and 3 threads. The
 * shapes are chosen to span several of the tiled GEMMs' 128 x 256 output tiles (T = 150 rows,
 * intermediate 640 columns), so a reduction whose order followed loft's thread split would show.
 * (lt_threads_set does not change OpenBLAS's own thread count; that the GEMMs never let OpenBLAS
 * thread is shown per op in test_train_ops, where a threaded sgemm fails the same check.) */
static const char *wide_llama =
    "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":320,\"intermediate_size\":640,"
    "\"num_hidden_layers\":1,\"num_attention_heads\":4,\"num_key_value_heads\":2,\"vocab_size\":700,"
    "\"initializer_range\":0.1,\"bos_token_id\":1,\"eos_token_id\":2,\"tie_word_embeddings\":false}";

static void run_threads(void) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/test_step_threads", lt_test_tmpdir());
    lt_model_config cfg;
    CHECK_OK(lt_config_parse(wide_llama, "wide", &cfg));
    lt_make_opts mo = {.seed = 11, .dtype = LT_DTYPE_F32};
    CHECK_OK(lt_model_make_random(&cfg, &mo, dir));
    lt_pool *pool;
    CHECK_OK(lt_pool_create(1LL << 30, &pool));
    lt_model *m = NULL;
    CHECK_OK(lt_model_load(dir, pool, lt_backend_cpu(), &m));
    if (!m) {
        lt_pool_destroy(pool);
        return;
    }
    lt_lora *a = make_adapter(&cfg, pool);
    enum { T = 150 };
    int32_t ids[T], labels[T], tgt[T], pos[T];
    uint32_t s = 99;
    for (int t = 0; t < T; t++) {
        s = s * 1664525u + 1013904223u;
        ids[t] = labels[t] = (int32_t)((s >> 8) % (uint32_t)cfg.vocab_size);
    }
    CHECK_OK(lt_train_targets_from_hf(T, labels, NULL, tgt, pos));
    lt_train_batch b = {.T = T, .ids = ids, .targets = tgt, .pos = pos};
    const int before = lt_threads_get();
    grads g[3];
    double sum[3];
    for (int k = 0; k < 3; k++) {
        lt_threads_set(k + 1);
        lt_lora_zero_grad(a);
        int64_t n;
        CHECK_OK(lt_train_step_grads(m, a, &b, (double)(T - 1), k == 2, &sum[k], &n));
        g[k] = grads_copy(a, cfg.n_layers);
    }
    lt_threads_set(before);
    for (int k = 1; k < 3; k++) {
        CHECKF(sum[k] == sum[0], "loss with %d threads %.17g, with 1 thread %.17g", k + 1, sum[k], sum[0]);
        CHECKF(g[k].n == g[0].n && !memcmp(g[k].v, g[0].v, (size_t)g[0].n * sizeof(float)),
               "gradients with %d threads differ from 1 thread", k + 1);
    }
    for (int k = 0; k < 3; k++) free(g[k].v);
    lt_lora_free(a);
    lt_model_free(m);
    lt_pool_destroy(pool);
}

int main(void) {
    run_threads();
    run_model(tiny_qwen3, "qwen3");
    run_model(tiny_qwen2, "qwen2");
    run_quant(tiny_qwen3, "qwen3");
    TEST_MAIN_END();
}
