/* Loading a GGUF model file (src/model/load_gguf.c). Small random HF models (lt_model_make_random)
 * are written as GGUF files by the in-test writer (gguf_writer.h) the way llama.cpp's converter
 * lays them out: GGUF names, reversed dims, llama q/k rows permuted, 1-D tensors F32, 2-D
 * weights F32 or Q8_0. Then:
 *   - F32 file: the logits are bit-identical to those of the HF directory it came from (same
 *     values, same kernels), for llama (GQA, tied), llama with attention_bias (permuted q/k
 *     biases), qwen2 (biases, untied) and qwen3 (q/k norms, head_dim != hidden/heads); and with
 *     --quant nf4 too (the same f32 values quantized);
 *   - Q8_0 file, quantize q8_0 (embeddings and lm_head too): every weight holds exactly the file's
 *     blocks in HF row order. The file's blocks are made with d = amax/100 (not ggml's amax/127)
 *     so requantizing them would change them: equality proves they were kept, not re-made;
 *   - Q8_0 file, quantize nf4: the NF4 bytes equal lt_quantize of the file's dequantized values;
 *   - refusals with messages naming the file and tensor: missing tensor, wrong shape, unsupported
 *     type, unexpected tensors (mapped and unknown names), non-finite values, split files, a
 *     directory with several or no .gguf; tolerated derived tensors (attn_rot_embd);
 *   - the pool is empty after every failure and every free. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf_writer.h"
#include "model/model_internal.h"
#include "quant/gguf_blocks.h"
#include "test.h"

static char g_root[2048];

static const char *CFG_LLAMA =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": 200,"
    " \"hidden_size\": 64, \"intermediate_size\": 96, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
    " \"num_key_value_heads\": 2, \"rms_norm_eps\": 1e-5, \"rope_theta\": 10000.0, \"initializer_range\": 0.15,"
    " \"tie_word_embeddings\": true, \"bos_token_id\": 1, \"eos_token_id\": 2}";
/* Llama with attention_bias: q/k biases are permuted like their weights' rows */
static const char *CFG_LLAMA_BIAS =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": 160,"
    " \"hidden_size\": 64, \"intermediate_size\": 96, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
    " \"num_key_value_heads\": 2, \"rms_norm_eps\": 1e-5, \"rope_theta\": 10000.0, \"initializer_range\": 0.15,"
    " \"attention_bias\": true, \"tie_word_embeddings\": false, \"bos_token_id\": 1, \"eos_token_id\": 2}";
static const char *CFG_QWEN2 =
    "{\"architectures\": [\"Qwen2ForCausalLM\"], \"model_type\": \"qwen2\", \"vocab_size\": 150,"
    " \"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
    " \"num_key_value_heads\": 1, \"rms_norm_eps\": 1e-6, \"rope_theta\": 1000000.0, \"initializer_range\": 0.15,"
    " \"tie_word_embeddings\": false, \"bos_token_id\": 1, \"eos_token_id\": 2}";
static const char *CFG_QWEN3 =
    "{\"architectures\": [\"Qwen3ForCausalLM\"], \"model_type\": \"qwen3\", \"vocab_size\": 120,"
    " \"hidden_size\": 64, \"intermediate_size\": 96, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
    " \"num_key_value_heads\": 2, \"head_dim\": 32, \"rms_norm_eps\": 1e-6, \"rope_theta\": 1000000.0,"
    " \"initializer_range\": 0.15, \"tie_word_embeddings\": true, \"bos_token_id\": 1, \"eos_token_id\": 2}";

/* ---------------------------------------------------------------- HF directory -> GGUF file */

typedef struct conv_opts {
    uint32_t wtype;       /* 2-D weights: LT_GGML_F32 or LT_GGML_Q8_0 */
    const char *drop;     /* a GGUF name not written */
    const char *reshape;  /* a GGUF name written with ne[0] and ne[1] swapped */
    const char *bad_type; /* a GGUF name written as Q5_0 (valid ggml, not read by loft) */
    const char *extra;    /* an extra F32 tensor of 64 values with this name */
    const char *nan_in;   /* a GGUF name whose first value (F32) or block scale (Q8_0) is NaN */
    int64_t split_count;  /* > 0: written as split.count */
} conv_opts;

/* What the converter wrote, in HF order, for the checks: per tensor of the safetensors set. */
typedef struct conv_out {
    int n;
    char hf[GW_MAX_T][96];
    uint8_t *q8[GW_MAX_T]; /* Q8_0 bytes in HF row order (2-D weights of a Q8_0 file) */
    int64_t q8_bytes[GW_MAX_T];
} conv_out;

static void conv_out_free(conv_out *r) {
    for (int i = 0; i < r->n; i++) free(r->q8[i]);
    memset(r, 0, sizeof *r);
}

/* Q8_0 blocks of x [n] with d = amax/100 (q in [-100, 100]): valid GGML Q8_0 that ggml's
 * quantizer (d = amax/127) would not produce, so a requantization would be visible. */
static void enc_q8(const float *x, int64_t n, uint8_t *out) {
    for (int64_t b = 0; b < n / 32; b++, x += 32, out += 34) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 100.0f;
        uint16_t h = lt_f32_to_f16(d);
        float dd = lt_f16_to_f32(h);
        memcpy(out, &h, 2);
        for (int j = 0; j < 32; j++) {
            float q = dd > 0 ? rintf(x[j] / dd) : 0;
            out[2 + j] = (uint8_t)(int8_t)fmaxf(-127.0f, fminf(127.0f, q));
        }
    }
}

static const char *arch_of(const lt_model_config *c) {
    return c->arch == LT_ARCH_QWEN2 ? "qwen2" : c->arch == LT_ARCH_QWEN3 ? "qwen3" : "llama";
}

/* Writes the HF directory hf (F32 safetensors) as the GGUF file out. */
static void convert(const char *hf, const lt_model_config *c, const conv_opts *o, const char *out, conv_out *r) {
    memset(r, 0, sizeof *r);
    gw w;
    gw_init(&w, 32);
    const char *a = arch_of(c);
    char k[128];
#define KV_U32(name, v) (snprintf(k, sizeof k, "%s." name, a), gw_kv_u32(&w, k, (uint32_t)(v)))
    gw_kv_str(&w, "general.architecture", a);
    KV_U32("embedding_length", c->hidden_size);
    KV_U32("block_count", c->n_layers);
    KV_U32("feed_forward_length", c->intermediate_size);
    KV_U32("attention.head_count", c->n_heads);
    KV_U32("attention.head_count_kv", c->n_kv_heads);
    KV_U32("context_length", c->max_position_embeddings);
    if (c->head_dim != c->hidden_size / c->n_heads) KV_U32("attention.key_length", c->head_dim);
#undef KV_U32
    snprintf(k, sizeof k, "%s.attention.layer_norm_rms_epsilon", a);
    gw_kv_f32(&w, k, (float)c->rms_norm_eps);
    snprintf(k, sizeof k, "%s.rope.freq_base", a);
    gw_kv_f32(&w, k, (float)c->rope_theta);
    if (o->split_count > 0) gw_kv_u32(&w, "split.count", (uint32_t)o->split_count);

    lt_st_set *set;
    CHECK_OK(lt_st_set_open_dir(hf, &set));
    void *bufs[GW_MAX_T] = {0};
    int nb = 0;
    for (int64_t i = 0; i < lt_st_set_count(set); i++) {
        const lt_st_tensor *t = lt_st_set_get(set, i);
        char gn[128];
        CHECK(lt_gguf_name_from_hf(t->name, gn, sizeof gn));
        snprintf(r->hf[r->n], sizeof r->hf[r->n], "%s", t->name);
        int ri = r->n++;
        if (o->drop && !strcmp(gn, o->drop)) continue;
        LT_ASSERT(t->dtype == LT_DTYPE_F32);
        const int64_t rows = t->shape[0], cols = t->ndim == 2 ? t->shape[1] : 1;
        const int64_t nh = lt_gguf_permuted_heads(c, t->name);
        uint32_t type = t->ndim == 2 ? o->wtype : LT_GGML_F32;
        if (o->bad_type && !strcmp(gn, o->bad_type)) type = LT_GGML_Q5_0;
        const int64_t row_bytes = type == LT_GGML_F32 ? cols * 4 : cols / 32 * (type == LT_GGML_Q8_0 ? 34 : 22);
        const int64_t nbytes = t->ndim == 2 ? rows * row_bytes : rows * 4;
        uint8_t *hf_order = malloc((size_t)nbytes), *file = malloc((size_t)nbytes);
        if (type == LT_GGML_F32)
            memcpy(hf_order, t->data, (size_t)nbytes);
        else if (type == LT_GGML_Q8_0)
            enc_q8(t->data, t->numel, hf_order);
        else
            memset(hf_order, 0x11, (size_t)nbytes); /* Q5_0: contents never read */
        /* the converter's row order: q/k weight rows (bias values) of llama permuted */
        if (nh)
            CHECK_OK(lt_gguf_permute_rows(hf_order, file, rows, t->ndim == 2 ? row_bytes : 4, nh));
        else
            memcpy(file, hf_order, (size_t)nbytes);
        if (o->nan_in && !strcmp(gn, o->nan_in)) {
            if (type == LT_GGML_F32) {
                float nan = NAN;
                memcpy(file, &nan, 4);
            } else {
                file[0] = 0x00, file[1] = 0x7E; /* f16 NaN scale */
            }
        }
        if (type == LT_GGML_Q8_0) {
            r->q8[ri] = hf_order;
            r->q8_bytes[ri] = nbytes;
        } else {
            free(hf_order);
        }
        bufs[nb++] = file;
        uint64_t ne[2] = {(uint64_t)cols, (uint64_t)rows};
        if (t->ndim == 1) ne[0] = (uint64_t)rows;
        if (o->reshape && !strcmp(gn, o->reshape)) {
            uint64_t tmp = ne[0];
            ne[0] = ne[1], ne[1] = tmp;
        }
        gw_tensor(&w, gn, type, t->ndim, ne, file, (size_t)nbytes);
    }
    if (o->extra) {
        static const float zeros[64];
        gw_tensor(&w, o->extra, LT_GGML_F32, 1, (uint64_t[]){64}, zeros, sizeof zeros);
    }
    size_t len;
    uint8_t *img = gw_build(&w, &len);
    FILE *f = fopen(out, "wb");
    CHECK(f && fwrite(img, 1, len, f) == len);
    if (f) fclose(f);
    free(img);
    gw_free(&w);
    for (int i = 0; i < nb; i++) free(bufs[i]);
    lt_st_set_close(set);
}

/* ---------------------------------------------------------------- helpers */

static void make_hf(const char *json, const char *name, lt_model_config *cfg, char *dir, size_t cap) {
    CHECK_OK(lt_config_parse(json, name, cfg));
    snprintf(dir, cap, "%s/%s_hf", g_root, name);
    lt_make_opts mo = {.seed = 7, .dtype = LT_DTYPE_F32};
    CHECK_OK(lt_model_make_random(cfg, &mo, dir));
}

/* Logits of every position of ids, for the model at path loaded with lo. */
static bool logits_of(const char *path, const lt_load_opts *lo, const int32_t *ids, int64_t n, float *out) {
    lt_pool *pool = NULL;
    lt_model *m = NULL;
    lt_kv_cache *kv = NULL;
    bool ok = false;
    CHECK_OK(lt_pool_create(1LL << 30, &pool));
    lt_status st = lt_model_load_opts(path, pool, lt_backend_cpu(), lo, &m);
    lt_test_checks++;
    if (st) {
        lt_test_failures++;
        fprintf(stderr, "FAIL: loading %s: %s\n", path, lt_status_msg(st));
        lt_status_free(st);
    } else {
        CHECK_OK(lt_kv_create(m, pool, n, &kv));
        st = lt_model_forward(m, kv, ids, n, out, true);
        ok = st == NULL;
        CHECK_OK(st);
    }
    lt_kv_free(kv);
    lt_model_free(m);
    CHECK(!pool || lt_pool_get_stats(pool).used == 0);
    lt_pool_destroy(pool);
    return ok;
}

/* A load that must fail with a message containing both needles; nothing may stay allocated. */
static void expect_refusal(const char *path, const lt_load_opts *lo, const char *n1, const char *n2) {
    lt_pool *pool;
    CHECK_OK(lt_pool_create(1LL << 30, &pool));
    lt_model *m = (lt_model *)1;
    lt_status st = lt_model_load_opts(path, pool, lt_backend_cpu(), lo, &m);
    CHECKF(st != NULL, "%s loaded, expected a refusal with \"%s\"", path, n1);
    CHECK(m == NULL);
    if (st) {
        const char *msg = lt_status_msg(st);
        CHECKF(strstr(msg, n1) && (!n2 || strstr(msg, n2)), "message \"%s\" lacks \"%s\" / \"%s\"", msg, n1,
               n2 ? n2 : "");
        lt_status_free(st);
    }
    lt_model_free(m == (lt_model *)1 ? NULL : m);
    CHECK(lt_pool_get_stats(pool).used == 0);
    lt_pool_destroy(pool);
}

/* ---------------------------------------------------------------- F32 files: bit-identical */

static void test_f32_identical(const char *json, const char *name) {
    lt_model_config cfg;
    char hf[2300], gguf[2300];
    make_hf(json, name, &cfg, hf, sizeof hf);
    snprintf(gguf, sizeof gguf, "%s/%s_f32.gguf", g_root, name);
    conv_opts o = {.wtype = LT_GGML_F32};
    conv_out r;
    convert(hf, &cfg, &o, gguf, &r);
    conv_out_free(&r);

    enum { N = 19 };
    int32_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = (int32_t)((i * 37 + 3) % cfg.vocab_size);
    const size_t bytes = sizeof(float) * N * (size_t)cfg.vocab_size;
    float *a = malloc(bytes), *b = malloc(bytes);
    /* the same f32 values through the same kernels: no tolerance */
    lt_load_opts f32 = {.quantize = false};
    if (logits_of(hf, &f32, ids, N, a) && logits_of(gguf, &f32, ids, N, b))
        CHECKF(!memcmp(a, b, bytes), "%s: f32 logits of the GGUF differ from the HF directory's", name);
    /* quantize-on-load from the same f32 values gives the same NF4 bytes: identical again */
    lt_load_opts nf4 = {.quantize = true, .format = LT_Q_NF4};
    if (logits_of(hf, &nf4, ids, N, a) && logits_of(gguf, &nf4, ids, N, b))
        CHECKF(!memcmp(a, b, bytes), "%s: nf4 logits of the GGUF differ from the HF directory's", name);
    free(a);
    free(b);
}

/* ---------------------------------------------------------------- Q8_0 files */

static void test_q8_0(const char *json, const char *name) {
    lt_model_config cfg;
    char hf[2300], gguf[2300];
    make_hf(json, name, &cfg, hf, sizeof hf);
    snprintf(gguf, sizeof gguf, "%s/%s_q8.gguf", g_root, name);
    conv_opts o = {.wtype = LT_GGML_Q8_0};
    conv_out r;
    convert(hf, &cfg, &o, gguf, &r);

    /* kept: every matrix holds the file's blocks, in HF row order */
    lt_load_opts q8 = {.quantize = true, .format = LT_Q_Q8_0, .quantize_embeddings = true, .quantize_lm_head = true};
    lt_pool *pool;
    CHECK_OK(lt_pool_create(1LL << 30, &pool));
    lt_model *m = NULL;
    CHECK_OK(lt_model_load_opts(gguf, pool, lt_backend_cpu(), &q8, &m));
    if (m) {
        int n_mat = 0;
        for (int i = 0; i < r.n; i++) {
            if (!r.q8[i]) continue;
            n_mat++;
            int64_t s = lt_model_spec_find(m->specs, m->n_weights, r.hf[i]);
            CHECKF(s >= 0 && m->qw[s].format == LT_Q_Q8_0 && m->qw[s].comp[LT_QC_CODES], "%s: %s not held as Q8_0",
                   name, r.hf[i]);
            if (s >= 0 && m->qw[s].comp[LT_QC_CODES])
                CHECKF(!memcmp(m->qw[s].comp[LT_QC_CODES], r.q8[i], (size_t)r.q8_bytes[i]),
                       "%s: %s: the Q8_0 blocks differ from the file's (HF row order)", name, r.hf[i]);
        }
        lt_quant_summary qs = lt_model_quant_summary(m);
        CHECKF(qs.n_quantized == n_mat && qs.n_kept == 0, "%s: %lld quantized, %lld kept f32 of %d matrices", name,
               (long long)qs.n_quantized, (long long)qs.n_kept, n_mat);
        CHECK(lt_pool_get_stats(pool).tag_used[LT_POOL_SCRATCH] == 0);
    }
    lt_model_free(m);

    /* requantized: NF4 of the file's dequantized values */
    lt_load_opts nf4 = {.quantize = true, .format = LT_Q_NF4};
    m = NULL;
    CHECK_OK(lt_model_load_opts(gguf, pool, lt_backend_cpu(), &nf4, &m));
    for (int i = 0; m && i < r.n; i++) {
        if (!r.q8[i]) continue;
        int64_t s = lt_model_spec_find(m->specs, m->n_weights, r.hf[i]);
        bool unaligned;
        if (s < 0 || !lt_model_want_quant(m, &m->specs[s], &unaligned)) continue;
        const int64_t rows = m->specs[s].shape[0], cols = m->specs[s].shape[1];
        float *x = malloc(sizeof(float) * (size_t)(rows * cols));
        lt_gguf_dequant(LT_GGML_Q8_0, r.q8[i], x, rows * cols);
        lt_qtensor want;
        lt_qlayout lay;
        CHECK_OK(lt_qlayout_get(LT_Q_NF4, rows, cols, &lay));
        CHECK_OK(lt_qtensor_alloc(pool, LT_POOL_SCRATCH, LT_Q_NF4, rows, cols, r.hf[i], &want));
        CHECK_OK(lt_quantize(x, r.hf[i], &want));
        for (int c = 0; c < LT_QC_COUNT; c++)
            if (lay.comp[c].bytes)
                CHECKF(!memcmp(want.comp[c], m->qw[s].comp[c], (size_t)lay.comp[c].bytes),
                       "%s: %s: NF4 component %d differs from lt_quantize of the dequantized file", name, r.hf[i], c);
        lt_qtensor_free(pool, &want);
        free(x);
    }
    lt_model_free(m);
    CHECK(lt_pool_get_stats(pool).used == 0);
    lt_pool_destroy(pool);

    /* the kept Q8_0 forward and the f32 forward of the same (dequantized) values: same products,
     * different summation order (qlinear panels vs sgemm) over K <= 128 terms, ~1e-6 relative;
     * 1e-4 catches any misplaced row or block (O(1) errors) with a wide margin */
    enum { N = 11 };
    int32_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = (int32_t)((i * 53 + 1) % cfg.vocab_size);
    float *a = malloc(sizeof(float) * N * (size_t)cfg.vocab_size),
          *b = malloc(sizeof(float) * N * (size_t)cfg.vocab_size);
    lt_load_opts f32 = {.quantize = false};
    if (logits_of(gguf, &q8, ids, N, a) && logits_of(gguf, &f32, ids, N, b)) {
        double num = 0, den = 0;
        for (int64_t i = 0; i < N * cfg.vocab_size; i++) {
            num = fmax(num, fabs((double)a[i] - b[i]));
            den = fmax(den, fabs((double)b[i]));
        }
        CHECKF(num <= 1e-4 * den, "%s: Q8_0-held vs f32-held logits: rel err %.3g", name, num / den);
    }
    free(a);
    free(b);
    conv_out_free(&r);
}

/* ---------------------------------------------------------------- refusals */

static void test_refusals(void) {
    lt_model_config cfg;
    char hf[2300], path[2600], dir[2400];
    make_hf(CFG_LLAMA, "bad", &cfg, hf, sizeof hf);
    const lt_load_opts f32 = {.quantize = false};
    const lt_load_opts q8 = {.quantize = true, .format = LT_Q_Q8_0};
    conv_out r;
    struct {
        conv_opts o;
        const lt_load_opts *lo;
        const char *n1, *n2;
    } cases[] = {
        {{.wtype = LT_GGML_F32, .drop = "blk.1.ffn_up.weight"},
         &f32,
         "tensor \"blk.1.ffn_up.weight\"",
         "is missing: a LlamaForCausalLM with this file's metadata needs it with ne = [64, 96]"},
        {{.wtype = LT_GGML_F32, .drop = "output_norm.weight"},
         &f32,
         "tensor \"output_norm.weight\" (model.norm.weight)",
         "needs it with ne = [64];"},
        {{.wtype = LT_GGML_F32, .reshape = "blk.0.ffn_down.weight"},
         &f32,
         "tensor \"blk.0.ffn_down.weight\" has ne = [64, 96",
         "expected [96, 64]"},
        {{.wtype = LT_GGML_Q8_0, .bad_type = "blk.0.attn_v.weight"},
         &q8,
         "tensor \"blk.0.attn_v.weight\" has type Q5_0",
         "loft reads F32"},
        {{.wtype = LT_GGML_F32, .extra = "blk.1.attn_output.bias"},
         &f32,
         "unexpected tensor \"blk.1.attn_output.bias\"",
         "model.layers.1.self_attn.o_proj.bias"},
        {{.wtype = LT_GGML_F32, .extra = "blk.2.ffn_up.weight"},
         &f32,
         "unexpected tensor \"blk.2.ffn_up.weight\"",
         NULL},
        {{.wtype = LT_GGML_F32, .extra = "mm.0.weight"}, &f32, "unexpected tensor \"mm.0.weight\"", "Llama-family"},
        {{.wtype = LT_GGML_F32, .nan_in = "blk.1.attn_k.weight"}, &f32, "tensor \"blk.1.attn_k.weight\"", "non-finite"},
        {{.wtype = LT_GGML_Q8_0, .nan_in = "blk.0.ffn_gate.weight"},
         &f32,
         "tensor \"blk.0.ffn_gate.weight\"",
         "non-finite"},
        {{.wtype = LT_GGML_Q8_0, .nan_in = "blk.0.ffn_gate.weight"}, &q8, "blk.0.ffn_gate.weight", NULL},
        {{.wtype = LT_GGML_F32, .split_count = 3}, &f32, "one of 3 parts of a split GGUF", "llama-gguf-split"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(path, sizeof path, "%s/bad_%zu.gguf", g_root, i);
        convert(hf, &cfg, &cases[i].o, path, &r);
        conv_out_free(&r);
        expect_refusal(path, cases[i].lo, cases[i].n1, cases[i].n2);
        expect_refusal(path, cases[i].lo, path, NULL); /* every message names the file */
    }
    /* --quant-cache is for safetensors sources */
    snprintf(path, sizeof path, "%s/good.gguf", g_root);
    conv_opts good = {.wtype = LT_GGML_F32};
    convert(hf, &cfg, &good, path, &r);
    conv_out_free(&r);
    lt_load_opts cached = {.quantize = true, .format = LT_Q_NF4, .cache_dir = g_root};
    expect_refusal(path, &cached, "--quant-cache", "good.gguf");

    /* tolerated: a per-layer inv_freq buffer of an old converter */
    snprintf(path, sizeof path, "%s/rot.gguf", g_root);
    conv_opts rot = {.wtype = LT_GGML_F32, .extra = "blk.0.attn_rot_embd"};
    convert(hf, &cfg, &rot, path, &r);
    conv_out_free(&r);
    int32_t ids[3] = {1, 2, 3};
    float *lg = malloc(sizeof(float) * 3 * (size_t)cfg.vocab_size);
    CHECK(logits_of(path, &f32, ids, 3, lg));

    /* directories: exactly one .gguf and no config.json loads it; none or two are refused */
    snprintf(dir, sizeof dir, "%s/dir_one", g_root);
    CHECK_OK(lt_mkdir_p(dir));
    snprintf(path, sizeof path, "%s/model.gguf", dir);
    convert(hf, &cfg, &good, path, &r);
    conv_out_free(&r);
    CHECK(logits_of(dir, &f32, ids, 3, lg));
    snprintf(path, sizeof path, "%s/other.gguf", dir);
    convert(hf, &cfg, &good, path, &r);
    conv_out_free(&r);
    expect_refusal(dir, &f32, "2 .gguf files", "pass the GGUF file itself");
    snprintf(dir, sizeof dir, "%s/dir_none", g_root);
    CHECK_OK(lt_mkdir_p(dir));
    expect_refusal(dir, &f32, "no config.json", "no .gguf file");
    free(lg);
}

int main(void) {
    snprintf(g_root, sizeof g_root, "%s/test_gguf_model", lt_test_tmpdir());
    char cmd[2200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not clear %s\n", g_root);
    CHECK_OK(lt_mkdir_p(g_root));

    test_f32_identical(CFG_LLAMA, "llama");
    test_f32_identical(CFG_LLAMA_BIAS, "llama_bias");
    test_f32_identical(CFG_QWEN2, "qwen2");
    test_f32_identical(CFG_QWEN3, "qwen3");
    test_q8_0(CFG_LLAMA, "llama");
    test_q8_0(CFG_QWEN2, "qwen2");
    test_q8_0(CFG_QWEN3, "qwen3");
    test_refusals();
    TEST_MAIN_END();
}
