/* Shared by tests/unit/test_mirror.c (CPU backend: the copies must give the same bits) and
 * tests/gpu/test_cuda_step.c (CUDA backend: bf16 tolerances): one training step of a tiny packed batch
 * (two documents, LoRA dropout, Qwen2 biases, NF4 base) run on a host model + host adapter and on a
 * copy of both in another pool through another backend (lt_model_copy, lt_lora_mirror_*), then an
 * AdamW step on both host adapters. The caller compares what this returns. */
#ifndef LT_TEST_MIRROR_STEP_H
#define LT_TEST_MIRROR_STEP_H

#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "train/lora.h"
#include "train/step.h"
#include "test.h"

static const char *mirror_cfg_json =
    "{\"architectures\":[\"Qwen2ForCausalLM\"],\"hidden_size\":64,\"intermediate_size\":96,"
    "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
    "\"vocab_size\":300,\"initializer_range\":0.12,\"bos_token_id\":1,\"eos_token_id\":2}";

#define MIRROR_T 96

typedef struct mirror_result {
    double loss_ref, loss_copy; /* sum of CE over scored tokens */
    int64_t n_ref, n_copy;
    float *g_ref, *g_copy;      /* every ga then gb, layer-major, modules in order */
    float *p0;                  /* the masters before it (the same for both) */
    float *p_ref, *p_copy;      /* the masters after one AdamW step */
    int64_t n_params;
} mirror_result;

static void mirror_flatten(const lt_lora *a, int64_t n_layers, bool grads, float *out) {
    int64_t o = 0;
    for (int64_t l = 0; l < n_layers; l++)
        for (int mo = 0; mo < LT_LORA_N_MODULES; mo++) {
            const lt_lora_mod *x = lt_lora_get(a, l, (lt_lora_module)mo);
            if (!x) continue;
            memcpy(out + o, grads ? x->ga : x->a, (size_t)(x->r * x->in) * sizeof(float));
            o += x->r * x->in;
            memcpy(out + o, grads ? x->gb : x->b, (size_t)(x->r * x->out) * sizeof(float));
            o += x->r * x->out;
        }
}

static lt_lora *mirror_adapter(const lt_model_config *cfg, lt_pool *pool) {
    lt_lora_cfg lc = {.targets = LT_LORA_ALL_LINEAR, .r = 4, .alpha = 8, .dropout = 0.1, .seed = 17};
    lt_lora *a = NULL;
    CHECK_OK(lt_lora_create(cfg, &lc, pool, &a));
    if (!a) return NULL;
    for (int64_t l = 0; l < cfg->n_layers; l++) /* B != 0 so that A gets gradients too */
        for (int mo = 0; mo < LT_LORA_N_MODULES; mo++) {
            lt_lora_mod *x = lt_lora_get_mut(a, l, (lt_lora_module)mo);
            for (int64_t i = 0; i < x->out * x->r; i++) x->b[i] = 0.02f * (float)((i * 5 + mo) % 7 - 3);
        }
    lt_lora_sync_bf16(a);
    return a;
}

/* Runs the comparison (push false: the mirror is never given the adapter's values); dir is a scratch directory for the random model. Returns false when setting up
 * failed (already reported through CHECK). */
static bool mirror_run(const char *dir, lt_pool *host_pool, lt_pool *copy_pool, const lt_backend *be,
                       bool checkpointing, bool push, mirror_result *r) {
    memset(r, 0, sizeof *r);
    lt_model_config cfg;
    CHECK_OK(lt_config_parse(mirror_cfg_json, "mirror", &cfg));
    CHECK_OK(lt_model_make_random(&cfg, &(lt_make_opts){.seed = 5, .dtype = LT_DTYPE_F32}, dir));
    lt_model *m = NULL, *mc = NULL;
    CHECK_OK(lt_model_load_opts(dir, host_pool, lt_backend_cpu(), &(lt_load_opts){.quantize = true, .format = LT_Q_NF4},
                                &m));
    if (!m) return false;
    CHECK_OK(lt_model_copy(m, copy_pool, be, &mc));
    lt_lora *a_ref = mirror_adapter(&cfg, host_pool), *a_host = mirror_adapter(&cfg, host_pool), *mir = NULL;
    if (!mc || !a_ref || !a_host) return false;
    CHECK_OK(lt_lora_mirror_create(a_host, copy_pool, &mir));
    if (!mir) return false;
    /* a packed row: documents of 60 and 36 tokens, the first 10 of each unscored */
    static int32_t ids[MIRROR_T], labels[MIRROR_T], doc[MIRROR_T], tgt[MIRROR_T], pos[MIRROR_T];
    uint32_t s = 99;
    for (int t = 0; t < MIRROR_T; t++) {
        s = s * 1664525u + 1013904223u;
        ids[t] = (int32_t)((s >> 8) % (uint32_t)cfg.vocab_size);
        doc[t] = t < 60 ? 0 : 1;
        labels[t] = (t < 10 || (t >= 60 && t < 70)) ? -100 : ids[t];
    }
    CHECK_OK(lt_train_targets_from_hf(MIRROR_T, labels, doc, tgt, pos));
    const lt_train_batch b = {.T = MIRROR_T, .ids = ids, .targets = tgt, .doc = doc, .pos = pos, .dropout_key = 1234};
    lt_lora_zero_grad(a_ref);
    CHECK_OK(lt_train_step_grads(m, a_ref, &b, 80.0, checkpointing, &r->loss_ref, &r->n_ref));
    if (push) lt_lora_mirror_push(a_host, mir, be); /* false: a negative control (the mirror's A, B stay 0) */
    lt_lora_mirror_zero_grad(mir, be);
    CHECK_OK(lt_train_step_grads(mc, mir, &b, 80.0, checkpointing, &r->loss_copy, &r->n_copy));
    lt_lora_mirror_pull_grads(mir, a_host, be);
    r->n_params = lt_lora_n_params(a_ref);
    r->g_ref = malloc((size_t)r->n_params * sizeof(float));
    r->g_copy = malloc((size_t)r->n_params * sizeof(float));
    r->p_ref = malloc((size_t)r->n_params * sizeof(float));
    r->p_copy = malloc((size_t)r->n_params * sizeof(float));
    r->p0 = malloc((size_t)r->n_params * sizeof(float));
    mirror_flatten(a_ref, cfg.n_layers, false, r->p0);
    mirror_flatten(a_ref, cfg.n_layers, true, r->g_ref);
    mirror_flatten(a_host, cfg.n_layers, true, r->g_copy);
    const lt_adamw_cfg oc = {1e-3, 0.9, 0.999, 1e-8, 0.01};
    double n1 = 0, n2 = 0;
    CHECK_OK(lt_lora_optimizer_step(a_ref, &oc, 1e-3, 1, 1.0, &n1));
    CHECK_OK(lt_lora_optimizer_step(a_host, &oc, 1e-3, 1, 1.0, &n2));
    mirror_flatten(a_ref, cfg.n_layers, false, r->p_ref);
    mirror_flatten(a_host, cfg.n_layers, false, r->p_copy);
    lt_lora_free(mir);
    lt_lora_free(a_ref);
    lt_lora_free(a_host);
    lt_model_free(mc);
    lt_model_free(m);
    return true;
}

/* Inference through a model copy: a prefill of 20 tokens then 3 decode steps with a KV cache in the
 * copy's pool, the last logits of each call into out_ref (the host model) and out_copy (the copy), each
 * 4 x vocab floats. */
static bool mirror_forward(const char *dir, lt_pool *host_pool, lt_pool *copy_pool, const lt_backend *be, float *out_ref,
                           float *out_copy, int64_t *vocab) {
    lt_model_config cfg;
    CHECK_OK(lt_config_parse(mirror_cfg_json, "mirror", &cfg));
    CHECK_OK(lt_model_make_random(&cfg, &(lt_make_opts){.seed = 6, .dtype = LT_DTYPE_F32}, dir));
    lt_model *m = NULL, *mc = NULL;
    CHECK_OK(lt_model_load_opts(dir, host_pool, lt_backend_cpu(), &(lt_load_opts){.quantize = true, .format = LT_Q_NF4},
                                &m));
    if (!m) return false;
    CHECK_OK(lt_model_copy(m, copy_pool, be, &mc));
    lt_kv_cache *k1 = NULL, *k2 = NULL;
    CHECK_OK(lt_kv_create(m, host_pool, 64, &k1));
    if (mc) CHECK_OK(lt_kv_create(mc, copy_pool, 64, &k2));
    if (!mc || !k1 || !k2) return false;
    *vocab = cfg.vocab_size;
    int32_t ids[20];
    for (int t = 0; t < 20; t++) ids[t] = (int32_t)((t * 37 + 5) % cfg.vocab_size);
    CHECK_OK(lt_model_forward(m, k1, ids, 20, out_ref, false));
    CHECK_OK(lt_model_forward(mc, k2, ids, 20, out_copy, false));
    for (int s = 1; s <= 3; s++) {
        const int32_t next = (int32_t)((s * 101) % cfg.vocab_size);
        CHECK_OK(lt_model_forward(m, k1, &next, 1, out_ref + s * cfg.vocab_size, false));
        CHECK_OK(lt_model_forward(mc, k2, &next, 1, out_copy + s * cfg.vocab_size, false));
    }
    lt_kv_free(k2);
    lt_kv_free(k1);
    lt_model_free(mc);
    lt_model_free(m);
    return true;
}

static void mirror_free(mirror_result *r) {
    free(r->g_ref);
    free(r->g_copy);
    free(r->p_ref);
    free(r->p_copy);
    free(r->p0);
}

#endif
