/* Random model directories: every tensor of the layout present with the right shape and dtype,
 * weight statistics, norms exactly 1, determinism in the seed, dtype and sharding independence,
 * overwrite rules, tokenizer copying and generation_config.json. */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "io/io.h"
#include "model/model.h"
#include "test.h"

/* Tiny configs, one per architecture, each exercising a different part of the layout. */
static const char *tiny_llama = /* q,k,v,o and MLP biases; initializer_range 0.5 (not the default) */
    "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,\"intermediate_size\":96,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"vocab_size\":256,\"attention_bias\":true,"
    "\"mlp_bias\":true,\"initializer_range\":0.5,\"eos_token_id\":[2,3],\"bos_token_id\":1}";
static const char *tiny_mistral =
    "{\"architectures\":[\"MistralForCausalLM\"],\"hidden_size\":64,\"intermediate_size\":128,"
    "\"num_hidden_layers\":2,\"num_attention_heads\":8,\"num_key_value_heads\":2,\"vocab_size\":256,"
    "\"sliding_window\":null}";
static const char *tiny_qwen2 = /* q,k,v biases always; tied embeddings (no lm_head) */
    "{\"architectures\":[\"Qwen2ForCausalLM\"],\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"vocab_size\":256,\"tie_word_embeddings\":true,"
    "\"eos_token_id\":255}";
static const char *tiny_qwen3 = /* q/k norms; head_dim 32 so q_proj is [128, 64], not square */
    "{\"architectures\":[\"Qwen3ForCausalLM\"],\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"head_dim\":32,\"vocab_size\":256,"
    "\"bos_token_id\":254,\"eos_token_id\":255}";

static char g_tmp[512];

static void model_dir(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/make_model_dirs/%s", g_tmp, name);
}

static void rm_rf(const char *path) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", path);
}

static bool exists(const char *dir, const char *name) {
    char p[4200];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &sb) == 0;
}

static lt_status make(const lt_model_config *c, uint64_t seed, lt_dtype dt, int64_t shard, const char *dir) {
    lt_make_opts o = {.seed = seed, .dtype = dt, .shard_bytes = shard, .tokenizer_dir = NULL};
    return lt_model_make_random(c, &o, dir);
}

/* Element i of a tensor as f32 (the mapping may be unaligned for 4-byte loads: memcpy). */
static float elem(const lt_st_tensor *t, int64_t i) {
    if (t->dtype == LT_DTYPE_F32) {
        float f;
        memcpy(&f, (const char *)t->data + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, (const char *)t->data + 2 * i, 2);
    return t->dtype == LT_DTYPE_BF16 ? lt_bf16_to_f32(h) : lt_f16_to_f32(h);
}

static uint16_t elem16(const lt_st_tensor *t, int64_t i) {
    uint16_t h;
    memcpy(&h, (const char *)t->data + 2 * i, 2);
    return h;
}

typedef struct stats {
    double sum, sum2, max_abs;
    int64_t n;
} stats;

/* The sample std s of n draws from N(0, std) has relative standard error ~ 1/sqrt(2n) (2.2% for
 * the smallest matrix here, Mistral's 1024-draw k_proj; 4.4% for 256 pooled biases). Accept 7 standard errors: an
 * honest draw never lands outside (p < 1e-11), while a wrong scale (2x, or 1/sqrt(fan_in)) or a
 * constant stream does. */
static bool std_ok(double s, double std, int64_t n) {
    return n >= 256 && fabs(s / std - 1) < 7.0 / sqrt(2.0 * (double)n);
}

/* Opens dir, checks config.json and that the tensors are exactly the layout's, with dtype dt. */
static lt_st_set *open_and_check(const char *dir, const lt_model_config *want, lt_dtype dt, const char *what) {
    char p[4200];
    snprintf(p, sizeof p, "%s/config.json", dir);
    lt_model_config got;
    CHECK_OK(lt_config_load(p, &got));
    CHECKF(got.arch == want->arch && got.hidden_size == want->hidden_size && got.head_dim == want->head_dim &&
               got.n_kv_heads == want->n_kv_heads && got.tie_word_embeddings == want->tie_word_embeddings &&
               got.qkv_bias == want->qkv_bias && got.o_bias == want->o_bias && got.mlp_bias == want->mlp_bias &&
               got.initializer_range == want->initializer_range && got.n_eos == want->n_eos,
           "%s: config.json differs", what);
    const char *tdt = dt == LT_DTYPE_F32 ? "float32" : dt == LT_DTYPE_BF16 ? "bfloat16" : "float16";
    CHECKF(!strcmp(got.torch_dtype, tdt), "%s: torch_dtype %s", what, got.torch_dtype);

    lt_st_set *set = NULL;
    lt_status st = lt_st_set_open_dir(dir, &set);
    CHECKF(st == NULL, "%s: %s", what, lt_status_msg(st));
    if (st) {
        lt_status_free(st);
        return NULL;
    }
    int64_t n = lt_model_weight_specs(want, NULL, 0);
    lt_weight_spec *specs = calloc((size_t)n, sizeof *specs);
    lt_model_weight_specs(want, specs, n);
    CHECKF(lt_st_set_count(set) == n, "%s: %lld tensors, layout has %lld", what, (long long)lt_st_set_count(set),
           (long long)n);
    for (int64_t i = 0; i < n; i++) {
        const lt_st_tensor *t = lt_st_set_find(set, specs[i].name);
        CHECKF(t != NULL, "%s: %s missing", what, specs[i].name);
        if (!t) continue;
        CHECKF(t->ndim == specs[i].ndim && t->shape[0] == specs[i].shape[0] &&
                   (t->ndim == 1 || t->shape[1] == specs[i].shape[1]),
               "%s: %s shape", what, specs[i].name);
        CHECKF(t->has_dtype && t->dtype == dt && !strcmp(t->dtype_name, lt_dtype_name(dt)), "%s: %s dtype %s", what,
               specs[i].name, t->dtype_name);
    }
    for (int64_t f = 0; f < lt_st_set_nfiles(set); f++) {
        const char *fmt = lt_st_metadata_find(lt_st_set_file(set, f), "format");
        CHECKF(fmt && !strcmp(fmt, "pt"), "%s: file %lld metadata format", what, (long long)f);
    }
    free(specs);
    return set;
}

/* Statistics of an f32 model: matrices and biases ~ N(0, std), norms exactly 1. */
static void check_values(const lt_st_set *set, const lt_model_config *c, const char *what) {
    int64_t n = lt_model_weight_specs(c, NULL, 0);
    lt_weight_spec *specs = calloc((size_t)n, sizeof *specs);
    lt_model_weight_specs(c, specs, n);
    const double std = c->initializer_range;
    stats mat = {0, 0, 0, 0}, bias = {0, 0, 0, 0};
    int64_t norm_bad = 0, n_bias_tensors = 0;
    for (int64_t i = 0; i < n; i++) {
        const lt_st_tensor *t = lt_st_set_find(set, specs[i].name);
        if (!t) continue;
        stats one = {0, 0, 0, 0};
        for (int64_t k = 0; k < t->numel; k++) {
            double x = elem(t, k);
            if (specs[i].kind == LT_W_NORM) {
                norm_bad += x != 1.0;
                continue;
            }
            one.sum += x;
            one.sum2 += x * x;
            one.n++;
            if (!(fabs(x) <= one.max_abs)) one.max_abs = fabs(x); /* also catches NaN */
        }
        if (specs[i].kind == LT_W_NORM) continue;
        stats *pool = specs[i].kind == LT_W_MATRIX ? &mat : &bias;
        n_bias_tensors += specs[i].kind == LT_W_BIAS;
        pool->sum += one.sum;
        pool->sum2 += one.sum2;
        pool->n += one.n;
        if (one.max_abs > pool->max_abs) pool->max_abs = one.max_abs;
        if (specs[i].kind == LT_W_MATRIX) {
            double s = sqrt(one.sum2 / (double)one.n);
            CHECKF(std_ok(s, std, one.n), "%s: %s sample std %g, want %g (n %lld)", what, specs[i].name, s, std,
                   (long long)one.n);
        }
    }
    CHECKF(norm_bad == 0, "%s: %lld norm values are not exactly 1", what, (long long)norm_bad);
    /* Pooled over all matrices (> 50k draws, so within 7/sqrt(1e5) = 2.2%). The mean's standard
     * error is std/sqrt(n): 7 of those. */
    double s = sqrt(mat.sum2 / (double)mat.n), m = mat.sum / (double)mat.n;
    CHECKF(mat.n > 50000 && std_ok(s, std, mat.n), "%s: pooled std %g want %g (n %lld)", what, s, std,
           (long long)mat.n);
    CHECKF(fabs(m) < 7 * std / sqrt((double)mat.n), "%s: pooled mean %g", what, m);
    /* lt_rng_normal (Box-Muller on 32-bit uniforms) cannot exceed sqrt(2 ln 2^32) = 6.66 standard
     * deviations; anything beyond (or a NaN) is a scaling bug. */
    CHECKF(mat.max_abs <= 6.67 * std, "%s: max |w| %g", what, mat.max_abs);
    if (c->qkv_bias || c->mlp_bias) {
        /* Biases are drawn like matrices (so tests exercise the bias path); pooled, >= 256 draws. */
        double bs = sqrt(bias.sum2 / (double)bias.n);
        CHECKF(n_bias_tensors > 0 && bias.n >= 256 && std_ok(bs, std, bias.n), "%s: bias std %g want %g (n %lld)", what,
               bs, std, (long long)bias.n);
    } else {
        CHECKF(n_bias_tensors == 0, "%s: unexpected bias tensors", what);
    }
    free(specs);
}

/* Every value of b (bf16 or f16) is the rounding of the same value in a (f32); f32 sets must
 * match bit for bit. */
static void check_same_values(const lt_st_set *a, const lt_st_set *b, const char *what) {
    int64_t mismatches = 0, checked = 0;
    for (int64_t i = 0; i < lt_st_set_count(a); i++) {
        const lt_st_tensor *ta = lt_st_set_get(a, i);
        const lt_st_tensor *tb = lt_st_set_find(b, ta->name);
        CHECKF(tb && tb->numel == ta->numel, "%s: %s", what, ta->name);
        if (!tb || tb->numel != ta->numel) continue;
        for (int64_t k = 0; k < ta->numel; k++) {
            float x = elem(ta, k);
            bool ok;
            if (tb->dtype == LT_DTYPE_BF16)
                ok = elem16(tb, k) == lt_f32_to_bf16(x);
            else if (tb->dtype == LT_DTYPE_F16)
                ok = elem16(tb, k) == lt_f32_to_f16(x);
            else {
                float y = elem(tb, k);
                ok = !memcmp(&x, &y, 4);
            }
            mismatches += !ok;
            checked++;
        }
    }
    CHECKF(mismatches == 0 && checked > 0, "%s: %lld of %lld values differ", what, (long long)mismatches,
           (long long)checked);
}

static bool files_equal(const char *dir1, const char *dir2, const char *name) {
    char p1[4200], p2[4200];
    snprintf(p1, sizeof p1, "%s/%s", dir1, name);
    snprintf(p2, sizeof p2, "%s/%s", dir2, name);
    char *a = NULL, *b = NULL;
    int64_t la = 0, lb = 0;
    lt_status s1 = lt_read_file(p1, 1 << 28, &a, &la), s2 = lt_read_file(p2, 1 << 28, &b, &lb);
    bool eq = !s1 && !s2 && la == lb && !memcmp(a, b, (size_t)la);
    lt_status_free(s1);
    lt_status_free(s2);
    free(a);
    free(b);
    return eq;
}

static int64_t count_shard_files(const char *dir) {
    DIR *d = opendir(dir);
    int64_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (!strncmp(e->d_name, "model-", 6)) n++;
    if (d) closedir(d);
    return n;
}

static void test_arch(const char *json, const char *name) {
    lt_model_config c;
    CHECK_OK(lt_config_parse(json, name, &c));
    char d32[1024], d16[1024], dh[1024], dsh[1024], what[256];
    snprintf(what, sizeof what, "%s-f32", name);
    model_dir(d32, sizeof d32, what);
    CHECK_OK(make(&c, 1234, LT_DTYPE_F32, 0, d32));
    snprintf(what, sizeof what, "%s-bf16", name);
    model_dir(d16, sizeof d16, what);
    CHECK_OK(make(&c, 1234, LT_DTYPE_BF16, 0, d16));
    snprintf(what, sizeof what, "%s-f16", name);
    model_dir(dh, sizeof dh, what);
    CHECK_OK(make(&c, 1234, LT_DTYPE_F16, 0, dh));
    snprintf(what, sizeof what, "%s-sharded", name);
    model_dir(dsh, sizeof dsh, what);
    /* 20000 bytes: about one f32 matrix per shard, so many shards */
    CHECK_OK(make(&c, 1234, LT_DTYPE_F32, 20000, dsh));

    lt_st_set *s32 = open_and_check(d32, &c, LT_DTYPE_F32, d32);
    lt_st_set *s16 = open_and_check(d16, &c, LT_DTYPE_BF16, d16);
    lt_st_set *sh = open_and_check(dh, &c, LT_DTYPE_F16, dh);
    lt_st_set *ssh = open_and_check(dsh, &c, LT_DTYPE_F32, dsh);
    CHECK(exists(d32, "model.safetensors") && !exists(d32, "model.safetensors.index.json"));
    CHECK(exists(dsh, "model.safetensors.index.json") && !exists(dsh, "model.safetensors"));
    if (s32 && s16 && sh && ssh) {
        CHECK(lt_st_set_nfiles(s32) == 1);
        CHECKF(lt_st_set_nfiles(ssh) > 3, "%s: %lld shards", name, (long long)lt_st_set_nfiles(ssh));
        check_values(s32, &c, name);
        check_same_values(s32, s16, "bf16 vs f32");
        check_same_values(s32, sh, "f16 vs f32");
        check_same_values(s32, ssh, "sharded vs single");
    }
    lt_st_set_close(s32);
    lt_st_set_close(s16);
    lt_st_set_close(sh);
    lt_st_set_close(ssh);

    /* generation_config.json carries bos/eos */
    char p[4200];
    snprintf(p, sizeof p, "%s/generation_config.json", d16);
    json_error_t err;
    json_t *g = json_load_file(p, 0, &err);
    CHECKF(g != NULL, "%s: %s", p, err.text);
    if (g) {
        json_t *bos = json_object_get(g, "bos_token_id"), *eos = json_object_get(g, "eos_token_id");
        CHECK(c.bos_token_id < 0 ? bos == NULL : json_integer_value(bos) == c.bos_token_id);
        if (c.n_eos == 0)
            CHECK(eos == NULL);
        else if (c.n_eos == 1)
            CHECK(json_is_integer(eos) && json_integer_value(eos) == c.eos_token_ids[0]);
        else
            CHECK(json_is_array(eos) && (int)json_array_size(eos) == c.n_eos &&
                  json_integer_value(json_array_get(eos, 1)) == c.eos_token_ids[1]);
        json_decref(g);
    }
}

static void test_seed(void) {
    lt_model_config c;
    CHECK_OK(lt_config_parse(tiny_qwen3, "seed", &c));
    char a[1024], b[1024], x[1024];
    model_dir(a, sizeof a, "seed-a");
    model_dir(b, sizeof b, "seed-b");
    model_dir(x, sizeof x, "seed-x");
    CHECK_OK(make(&c, 7, LT_DTYPE_BF16, 0, a));
    CHECK_OK(make(&c, 7, LT_DTYPE_BF16, 0, b));
    CHECK_OK(make(&c, 8, LT_DTYPE_BF16, 0, x));
    CHECK(files_equal(a, b, "model.safetensors"));
    CHECK(files_equal(a, b, "config.json"));
    CHECK(!files_equal(a, x, "model.safetensors"));
    /* A different seed changes (nearly) every value, not just a few. */
    lt_st_set *sa = NULL, *sx = NULL;
    CHECK_OK(lt_st_set_open_dir(a, &sa));
    CHECK_OK(lt_st_set_open_dir(x, &sx));
    if (!sa || !sx) return;
    const lt_st_tensor *ta = lt_st_set_find(sa, "model.embed_tokens.weight");
    const lt_st_tensor *tx = lt_st_set_find(sx, "model.embed_tokens.weight");
    int64_t same = 0;
    for (int64_t k = 0; ta && tx && k < ta->numel; k++) same += elem16(ta, k) == elem16(tx, k);
    /* Two independent N(0, 0.02) draws round to the same bf16 with probability well under 1%
     * (bf16 keeps 8 significant bits); 2% of 16384 would be a broken seed mix. */
    CHECKF(ta && tx && same < ta->numel / 50, "%lld of %lld equal", (long long)same, ta ? (long long)ta->numel : 0LL);
    /* Within a tensor the stream does not repeat: the two halves of the embedding differ. */
    CHECK(ta && memcmp(ta->data, (const char *)ta->data + ta->nbytes / 2, (size_t)ta->nbytes / 2) != 0);
    /* Distinct tensors draw distinct streams: layer 0 and layer 1 gate_proj differ. */
    const lt_st_tensor *g0 = lt_st_set_find(sa, "model.layers.0.mlp.gate_proj.weight");
    const lt_st_tensor *g1 = lt_st_set_find(sa, "model.layers.1.mlp.gate_proj.weight");
    CHECK(g0 && g1 && memcmp(g0->data, g1->data, (size_t)g0->nbytes) != 0);
    lt_st_set_close(sa);
    lt_st_set_close(sx);
}

static void test_dirs(void) {
    lt_model_config c;
    CHECK_OK(lt_config_parse(tiny_mistral, "dirs", &c));
    char d[1024], p[4096];
    /* Overwriting a model directory: sharded, then single file; no old shard or index remains. */
    model_dir(d, sizeof d, "overwrite");
    CHECK_OK(make(&c, 1, LT_DTYPE_F32, 20000, d));
    CHECK(exists(d, "model.safetensors.index.json") && count_shard_files(d) > 1);
    CHECK_OK(make(&c, 2, LT_DTYPE_F32, 0, d));
    CHECK(!exists(d, "model.safetensors.index.json") && count_shard_files(d) == 0 && exists(d, "model.safetensors"));
    lt_st_set *s = open_and_check(d, &c, LT_DTYPE_F32, "overwrite");
    CHECK(s && lt_st_set_nfiles(s) == 1);
    lt_st_set_close(s);

    /* A non-empty directory that is not a model directory is left alone. */
    model_dir(d, sizeof d, "not-a-model");
    rm_rf(d);
    snprintf(p, sizeof p, "mkdir -p '%s' && echo data > '%s/notes.txt'", d, d);
    CHECK(system(p) == 0);
    CHECK_ERR(make(&c, 1, LT_DTYPE_F32, 0, d), "not empty and holds no config.json");
    CHECK(!exists(d, "config.json") && exists(d, "notes.txt"));
    /* A regular file in the way. */
    snprintf(p, sizeof p, "%s/notes.txt", d);
    CHECK_ERR(make(&c, 1, LT_DTYPE_F32, 0, p), "not a directory");
    /* An empty existing directory is fine; nested new directories are created. */
    model_dir(d, sizeof d, "empty");
    rm_rf(d);
    snprintf(p, sizeof p, "mkdir -p '%s'", d);
    CHECK(system(p) == 0);
    CHECK_OK(make(&c, 1, LT_DTYPE_BF16, 0, d));
    model_dir(d, sizeof d, "nested/a/b");
    rm_rf(d);
    CHECK_OK(make(&c, 1, LT_DTYPE_BF16, 0, d));
    CHECK(exists(d, "config.json") && exists(d, "model.safetensors"));

    /* Bad inputs: dtype, config. Nothing is created. */
    model_dir(d, sizeof d, "never");
    rm_rf(d);
    CHECK_ERR(make(&c, 1, LT_DTYPE_F8_E4M3, 0, d), "F8_E4M3 is not supported");
    lt_model_config bad = c;
    bad.n_kv_heads = 3;
    CHECK_ERR(make(&bad, 1, LT_DTYPE_F32, 0, d), "\"num_key_value_heads\" (3) must divide");
    struct stat sb;
    CHECK(stat(d, &sb) != 0);
}

static void test_tokenizer(void) {
    lt_model_config c;
    CHECK_OK(lt_config_parse(tiny_llama, "tok", &c));
    char tok[1024], d[1024], cmd[4096];
    model_dir(tok, sizeof tok, "tok-src");
    rm_rf(tok);
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s' && printf '{\"version\":\"1.0\",\"model\":{}}' > '%s/tokenizer.json' && "
             "printf '{\"bos_token\":\"<s>\"}' > '%s/tokenizer_config.json'",
             tok, tok, tok);
    CHECK(system(cmd) == 0);
    model_dir(d, sizeof d, "with-tok");
    rm_rf(d);
    lt_make_opts o = {.seed = 3, .dtype = LT_DTYPE_BF16, .shard_bytes = 0, .tokenizer_dir = tok};
    CHECK_OK(lt_model_make_random(&c, &o, d));
    CHECK(files_equal(tok, d, "tokenizer.json") && files_equal(tok, d, "tokenizer_config.json"));
    CHECK(!exists(d, "special_tokens_map.json") && !exists(d, "tokenizer.model"));
    /* Making into the tokenizer's own directory again is harmless. */
    o.tokenizer_dir = d;
    CHECK_OK(lt_model_make_random(&c, &o, d));
    CHECK(files_equal(tok, d, "tokenizer.json"));

    /* A tokenizer dir without tokenizer.json is refused before anything is written. */
    snprintf(cmd, sizeof cmd, "rm -f '%s/tokenizer.json'", tok);
    CHECK(system(cmd) == 0);
    model_dir(d, sizeof d, "with-tok-missing");
    rm_rf(d);
    o.tokenizer_dir = tok;
    CHECK_ERR(lt_model_make_random(&c, &o, d), "tokenizer.json not found");
    struct stat sb;
    CHECK(stat(d, &sb) != 0);
}

/* The layout itself: names and shapes of one layer, and the count/fill contract. */
static void test_layout(void) {
    lt_model_config c;
    CHECK_OK(lt_config_parse(tiny_qwen3, "layout", &c));
    lt_weight_spec s[64];
    int64_t n = lt_model_weight_specs(&c, s, 64);
    CHECK(n == 1 + 2 * 11 + 2);
    CHECK(!strcmp(s[0].name, "model.embed_tokens.weight") && s[0].shape[0] == 256 && s[0].shape[1] == 64);
    const struct {
        const char *name;
        int ndim;
        int64_t d0, d1;
        lt_weight_kind kind;
    } layer1[] = {
        {"model.layers.1.input_layernorm.weight", 1, 64, 0, LT_W_NORM},
        {"model.layers.1.self_attn.q_proj.weight", 2, 128, 64, LT_W_MATRIX}, /* n_heads*head_dim = 4*32 */
        {"model.layers.1.self_attn.k_proj.weight", 2, 64, 64, LT_W_MATRIX},  /* n_kv*head_dim = 2*32 */
        {"model.layers.1.self_attn.v_proj.weight", 2, 64, 64, LT_W_MATRIX},
        {"model.layers.1.self_attn.o_proj.weight", 2, 64, 128, LT_W_MATRIX},
        {"model.layers.1.self_attn.q_norm.weight", 1, 32, 0, LT_W_NORM},
        {"model.layers.1.self_attn.k_norm.weight", 1, 32, 0, LT_W_NORM},
        {"model.layers.1.post_attention_layernorm.weight", 1, 64, 0, LT_W_NORM},
        {"model.layers.1.mlp.gate_proj.weight", 2, 128, 64, LT_W_MATRIX},
        {"model.layers.1.mlp.up_proj.weight", 2, 128, 64, LT_W_MATRIX},
        {"model.layers.1.mlp.down_proj.weight", 2, 64, 128, LT_W_MATRIX},
    };
    for (int i = 0; i < 11; i++) {
        const lt_weight_spec *w = &s[1 + 11 + i];
        CHECKF(!strcmp(w->name, layer1[i].name) && w->ndim == layer1[i].ndim && w->shape[0] == layer1[i].d0 &&
                   (w->ndim == 1 || w->shape[1] == layer1[i].d1) && w->kind == layer1[i].kind,
               "spec %d: %s", i, w->name);
    }
    CHECK(!strcmp(s[n - 2].name, "model.norm.weight") && !strcmp(s[n - 1].name, "lm_head.weight"));
    /* cap smaller than the count: the count is still returned, only cap entries are written */
    memset(s, 0x5A, sizeof s);
    CHECK(lt_model_weight_specs(&c, s, 3) == n);
    CHECK(!strcmp(s[2].name, "model.layers.0.self_attn.q_proj.weight") && (unsigned char)s[3].name[0] == 0x5A);

    /* Qwen2 biases sit right after their weights; Llama with attention_bias has o_proj.bias. */
    CHECK_OK(lt_config_parse(tiny_qwen2, "layout", &c));
    n = lt_model_weight_specs(&c, s, 64);
    CHECK(n == 1 + 2 * 12 + 1); /* tied: no lm_head */
    CHECK(!strcmp(s[3].name, "model.layers.0.self_attn.q_proj.bias") && s[3].ndim == 1 && s[3].shape[0] == 64 &&
          s[3].kind == LT_W_BIAS);
    CHECK(!strcmp(s[5].name, "model.layers.0.self_attn.k_proj.bias") && s[5].shape[0] == 32);
    CHECK(!strcmp(s[8].name, "model.layers.0.self_attn.o_proj.weight") &&
          strcmp(s[9].name, "model.layers.0.self_attn.o_proj.bias") != 0);
    CHECK(!strcmp(s[n - 1].name, "model.norm.weight"));
    CHECK_OK(lt_config_parse(tiny_llama, "layout", &c));
    n = lt_model_weight_specs(&c, s, 64);
    CHECK(n == 1 + 2 * 16 + 2); /* 9 weights + 4 attention biases + 3 MLP biases per layer */
    CHECK(!strcmp(s[9].name, "model.layers.0.self_attn.o_proj.bias") && s[9].shape[0] == 64);
    CHECK(!strcmp(s[16].name, "model.layers.0.mlp.down_proj.bias") && s[16].shape[0] == 64);
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "%s", lt_test_tmpdir());
    char root[1024];
    model_dir(root, sizeof root, "");
    rm_rf(root);
    test_layout();
    test_arch(tiny_llama, "llama");
    test_arch(tiny_mistral, "mistral");
    test_arch(tiny_qwen2, "qwen2");
    test_arch(tiny_qwen3, "qwen3");
    test_seed();
    test_dirs();
    test_tokenizer();
    TEST_MAIN_END();
}
