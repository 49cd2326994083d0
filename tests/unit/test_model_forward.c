/* The model forward pass with its KV cache, generation, and lt_model_load's validation, on tiny
 * random models written by lt_model_make_random. (Correctness against an independent torch
 * implementation is the reference test tests/reference/forward.sh; this test checks what that one
 * cannot see: that the KV-cache paths agree with a full prefill, error messages, pool accounting.)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/io.h"
#include "model/model.h"
#include "test.h"

/* Qwen3-like: q/k norms, head_dim 32 != hidden/heads, GQA 2:1, untied; q/k/v biases via
 * attention_bias to exercise the bias path in the same model. */
static const char *cfg_qwen3 =
    "{\"architectures\":[\"Qwen3ForCausalLM\"],\"hidden_size\":64,\"intermediate_size\":96,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"head_dim\":32,\"vocab_size\":301,"
    "\"initializer_range\":0.1,\"bos_token_id\":1,\"eos_token_id\":2,\"tie_word_embeddings\":false,"
    "\"attention_bias\":true}";
/* Llama-3-like: llama3 rope scaling, GQA 4:1, tied embeddings */
static const char *cfg_llama3 =
    "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":8,\"num_key_value_heads\":2,\"vocab_size\":257,\"initializer_range\":0.1,"
    "\"rope_theta\":500000.0,\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,"
    "\"high_freq_factor\":4.0,\"original_max_position_embeddings\":64},\"tie_word_embeddings\":true,"
    "\"bos_token_id\":1,\"eos_token_id\":2}";

static char g_root[600];

static void rm_rf(const char *path) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", path);
}

static float max_abs(const float *a, int64_t n) {
    float m = 0;
    for (int64_t i = 0; i < n; i++) m = fabsf(a[i]) > m ? fabsf(a[i]) : m;
    return m;
}
static float max_diff(const float *a, const float *b, int64_t n) {
    float m = 0;
    for (int64_t i = 0; i < n; i++) m = fabsf(a[i] - b[i]) > m ? fabsf(a[i] - b[i]) : m;
    return m;
}

/* Full prefill vs one token at a time vs two chunks: the same logits up to f32 summation order
 * (sgemv vs sgemm kernels), and a reset cache reproduces the first run bit for bit. */
static void test_kv_paths(const char *json, const char *name) {
    lt_model_config cfg;
    CHECK_OK(lt_config_parse(json, name, &cfg));
    char dir[700];
    snprintf(dir, sizeof dir, "%s/%s", g_root, name);
    lt_make_opts mo = {.seed = 5, .dtype = LT_DTYPE_BF16};
    CHECK_OK(lt_model_make_random(&cfg, &mo, dir));

    lt_pool *pool;
    CHECK_OK(lt_pool_create(1LL << 30, &pool));
    lt_model *m = NULL;
    CHECK_OK(lt_model_load(dir, pool, lt_backend_cpu(), &m));
    if (!m) {
        lt_pool_destroy(pool);
        return;
    }
    /* 40 tokens: the prefill takes the attention op's GEMM path (>= 16 queries), decode the loop */
    const int64_t V = cfg.vocab_size, n = 40;
    CHECK(lt_model_weight_bytes(m) == lt_config_n_params(&cfg) * 4);
    int32_t ids[40];
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)((i * 37 + 3) % V);
    ids[n - 1] = (int32_t)(V - 1);
    float *full = calloc((size_t)(n * V), sizeof(float)), *step = calloc((size_t)(n * V), sizeof(float));
    float *chunk = calloc((size_t)(n * V), sizeof(float)), *again = calloc((size_t)(n * V), sizeof(float));
    float *last = calloc((size_t)V, sizeof(float));

    lt_kv_cache *kv;
    CHECK_OK(lt_kv_create(m, pool, n, &kv));
    CHECK(lt_kv_capacity(kv) == n && lt_kv_len(kv) == 0);
    CHECK_OK(lt_model_forward(m, kv, ids, n, full, true));
    CHECK(lt_kv_len(kv) == n);
    /* the activations of a call are freed before it returns */
    CHECK(lt_pool_get_stats(pool).tag_used[LT_POOL_ACTIVATIONS] == 0);
    CHECK(lt_pool_get_stats(pool).tag_high_water[LT_POOL_ACTIVATIONS] > 0);

    lt_kv_reset(kv);
    for (int64_t t = 0; t < n; t++) CHECK_OK(lt_model_forward(m, kv, ids + t, 1, step + t * V, true));
    lt_kv_reset(kv);
    CHECK_OK(lt_model_forward(m, kv, ids, 4, chunk, true));
    CHECK_OK(lt_model_forward(m, kv, ids + 4, n - 4, chunk + 4 * V, true));
    lt_kv_reset(kv);
    CHECK_OK(lt_model_forward(m, kv, ids, n, again, true));
    lt_kv_reset(kv);
    CHECK_OK(lt_model_forward(m, kv, ids, n, last, false));

    /* f32 with different GEMM kernels (sgemv for one row, blocked sgemm for many) and the same
     * attention loop: ~1e-6 relative, 1e-5 leaves 10x; a cache or position bug moves logits O(1) */
    const float scale = max_abs(full, n * V);
    CHECKF(max_diff(full, step, n * V) <= 1e-5f * scale, "%s: token-by-token differs by %g (scale %g)", name,
           (double)max_diff(full, step, n * V), (double)scale);
    CHECKF(max_diff(full, chunk, n * V) <= 1e-5f * scale, "%s: two chunks differ by %g", name,
           (double)max_diff(full, chunk, n * V));
    CHECK(memcmp(full, again, (size_t)(n * V) * sizeof(float)) == 0); /* deterministic */
    /* last-row-only logits: the same row, computed by a 1-row lm_head GEMM */
    CHECK(max_diff(full + (n - 1) * V, last, V) <= 1e-5f * scale);

    /* bad input: id out of range names the position and id; the cache is full */
    lt_kv_reset(kv);
    int32_t bad[3] = {1, 2, (int32_t)V};
    CHECK_ERR(lt_model_forward(m, kv, bad, 3, NULL, false), "position 2");
    bad[2] = -1;
    CHECK_ERR(lt_model_forward(m, kv, bad, 3, NULL, false), "token id -1");
    CHECK(lt_kv_len(kv) == 0); /* refused calls change nothing */
    CHECK_ERR(lt_model_forward(m, kv, ids, 0, NULL, false), "at least 1");
    CHECK_OK(lt_model_forward(m, kv, ids, n - 1, NULL, false));
    CHECK_ERR(lt_model_forward(m, kv, ids, 2, NULL, false), "do not fit");
    CHECK_OK(lt_model_forward(m, kv, ids, 1, NULL, false));
    CHECK(lt_kv_len(kv) == n);

    /* generation: greedy equals forward + argmax by hand; the callback can stop it; EOS stops it */
    lt_sampler s;
    lt_sampler_init(&s, 0.0f, 0, 1.0f, 0);
    int32_t out[12], want[12];
    int64_t n_out = 0;
    CHECK_OK(lt_generate(m, pool, ids, 3, 12, &s, false, out, &n_out, NULL, NULL));
    CHECK(n_out == 12);
    lt_kv_cache *kv2;
    CHECK_OK(lt_kv_create(m, pool, 3 + 12, &kv2));
    CHECK_OK(lt_model_forward(m, kv2, ids, 3, last, false));
    for (int i = 0; i < 12; i++) {
        int32_t best = 0;
        for (int64_t v = 1; v < V; v++)
            if (last[v] > last[best]) best = (int32_t)v;
        want[i] = best;
        if (i < 11) CHECK_OK(lt_model_forward(m, kv2, &best, 1, last, false));
    }
    CHECK(memcmp(out, want, sizeof out) == 0);
    lt_kv_free(kv2);

    /* stop at EOS: pretend the 4th greedy token is the end of sequence (the test edits the loaded
     * config in place: the model object is not const, only the accessor's view of it) */
    lt_model_config *mc = (lt_model_config *)lt_model_get_config(m);
    const int n_eos = mc->n_eos;
    const int64_t eos0 = mc->eos_token_ids[0];
    mc->n_eos = 1;
    mc->eos_token_ids[0] = want[3];
    int first = -1;
    for (int i = 0; i < 12 && first < 0; i++)
        if (want[i] == want[3]) first = i;
    CHECK_OK(lt_generate(m, pool, ids, 3, 12, &s, true, out, &n_out, NULL, NULL));
    CHECK(n_out == first + 1);
    CHECK_OK(lt_generate(m, pool, ids, 3, 12, &s, false, out, &n_out, NULL, NULL));
    CHECK(n_out == 12);
    mc->n_eos = n_eos;
    mc->eos_token_ids[0] = eos0;
    CHECK_ERR(lt_generate(m, pool, ids, 0, 4, &s, false, out, &n_out, NULL, NULL), "prompt is empty");

    /* sampled generation is reproducible for a seed */
    int32_t o1[12], o2[12];
    lt_sampler_init(&s, 0.8f, 40, 0.95f, 99);
    CHECK_OK(lt_generate(m, pool, ids, 3, 12, &s, false, o1, &n_out, NULL, NULL));
    lt_sampler_init(&s, 0.8f, 40, 0.95f, 99);
    CHECK_OK(lt_generate(m, pool, ids, 3, 12, &s, false, o2, &n_out, NULL, NULL));
    CHECK(memcmp(o1, o2, sizeof o1) == 0);

    lt_kv_free(kv);
    lt_model_free(m);
    lt_pool_stats ps = lt_pool_get_stats(pool);
    CHECK(ps.used == 0 && ps.n_allocs == 0); /* model, caches and activations all returned */
    lt_pool_destroy(pool);
    free(full), free(step), free(chunk), free(again), free(last);
}

/* ---------------------------------------------------------------- load validation */

/* Rewrites dir's tensors into bad_dir with one change, then checks the load error. */
typedef enum { DROP, RESHAPE, EXTRA, INV_FREQ, BAD_DTYPE } edit_kind;

static void check_bad_dir(const char *dir, edit_kind kind, const char *target, const char *needle) {
    char bad[800], path[900];
    snprintf(bad, sizeof bad, "%s/bad", g_root);
    rm_rf(bad);
    mkdir(bad, 0755);
    lt_model_config cfg;
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK_OK(lt_config_load(path, &cfg));
    snprintf(path, sizeof path, "%s/config.json", bad);
    CHECK_OK(lt_config_save(&cfg, path));

    lt_st_set *set;
    CHECK_OK(lt_st_set_open_dir(dir, &set));
    const int64_t n = lt_st_set_count(set);
    lt_st_entry *e = calloc((size_t)n + 1, sizeof *e);
    int64_t k = 0;
    static const float inv_freq[16] = {1};
    static const int32_t ints[64] = {0};
    for (int64_t i = 0; i < n; i++) {
        const lt_st_tensor *t = lt_st_set_get(set, i);
        bool hit = !strcmp(t->name, target);
        if (hit && kind == DROP) continue;
        e[k].name = t->name;
        e[k].dtype_name = t->dtype_name;
        e[k].ndim = t->ndim;
        memcpy(e[k].shape, t->shape, sizeof t->shape);
        e[k].data = t->data;
        if (hit && kind == RESHAPE) { /* the transpose of a [out, in] weight: same bytes */
            e[k].shape[0] = t->shape[1];
            e[k].shape[1] = t->shape[0];
        }
        if (hit && kind == BAD_DTYPE && t->ndim == 1 && t->nbytes == 64 * 4) {
            e[k].dtype_name = "I32";
            e[k].data = ints;
        }
        k++;
    }
    if (kind == EXTRA || kind == INV_FREQ) {
        e[k].name = target;
        e[k].dtype_name = "F32";
        e[k].ndim = 1;
        e[k].shape[0] = 16;
        e[k].data = inv_freq;
        k++;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", bad);
    CHECK_OK(lt_st_write(path, e, k, NULL, 0));
    lt_st_set_close(set);
    free(e);

    lt_pool *pool;
    CHECK_OK(lt_pool_create(1LL << 30, &pool));
    lt_model *m = NULL;
    if (needle) {
        CHECK_ERR(lt_model_load(bad, pool, lt_backend_cpu(), &m), needle);
        CHECK(m == NULL);
        CHECK(lt_pool_get_stats(pool).used == 0); /* nothing allocated, or all of it released */
    } else {
        CHECK_OK(lt_model_load(bad, pool, lt_backend_cpu(), &m));
        lt_model_free(m);
    }
    lt_pool_destroy(pool);
}

static void test_load_errors(void) {
    lt_model_config cfg;
    CHECK_OK(lt_config_parse(cfg_llama3, "llama3", &cfg));
    char dir[700];
    snprintf(dir, sizeof dir, "%s/load_src", g_root);
    lt_make_opts mo = {.seed = 1, .dtype = LT_DTYPE_F32};
    CHECK_OK(lt_model_make_random(&cfg, &mo, dir));

    check_bad_dir(dir, DROP, "model.layers.1.mlp.up_proj.weight",
                  "\"model.layers.1.mlp.up_proj.weight\" [128, 64] is missing");
    check_bad_dir(dir, RESHAPE, "model.layers.0.mlp.down_proj.weight", "has shape [128, 64], expected [64, 128]");
    check_bad_dir(dir, EXTRA, "model.layers.0.self_attn.q_proj.bias",
                  "unexpected tensor \"model.layers.0.self_attn.q_proj.bias\"");
    check_bad_dir(dir, EXTRA, "lm_head.weight", "unexpected tensor \"lm_head.weight\""); /* tied: no lm_head */
    check_bad_dir(dir, INV_FREQ, "model.layers.0.self_attn.rotary_emb.inv_freq", NULL);  /* old checkpoints: ignored */
    check_bad_dir(dir, BAD_DTYPE, "model.norm.weight", "has dtype I32, expected F32, BF16 or F16");

    lt_pool *pool;
    CHECK_OK(lt_pool_create(1LL << 30, &pool));
    lt_model *m = NULL;
    char missing[800];
    snprintf(missing, sizeof missing, "%s/no_such_model", g_root);
    CHECK_ERR(lt_model_load(missing, pool, lt_backend_cpu(), &m), "config.json");
    /* a budget smaller than the weights: refused by the pool, nothing left allocated */
    lt_pool *tiny;
    CHECK_OK(lt_pool_create(100000, &tiny));
    CHECK_ERR(lt_model_load(dir, tiny, lt_backend_cpu(), &m), "memory budget exceeded");
    CHECK(lt_pool_get_stats(tiny).used == 0);
    lt_pool_destroy(tiny);
    lt_pool_destroy(pool);
}

int main(void) {
    snprintf(g_root, sizeof g_root, "%s/model_forward", lt_test_tmpdir());
    rm_rf(g_root);
    mkdir(g_root, 0755);
    test_kv_paths(cfg_qwen3, "qwen3");
    test_kv_paths(cfg_llama3, "llama3");
    test_load_errors();
    rm_rf(g_root);
    TEST_MAIN_END();
}
