/* GGUF -> lt_model_config for llama/qwen2/qwen3 metadata (incl. Llama-3 rope scaling recovered from
 * rope_freqs.weight), config-level refusals, the GGUF <-> HF tensor name mapping, and the Llama q/k
 * row permutation (hand-worked examples, inverse pairs, and RoPE equivalence of the two
 * conventions). Files come from the in-test writer tests/unit/gguf_writer.h. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "gguf_writer.h"
#include "io/io.h"
#include "test.h"

/* A model description with every field set to something valid. */
static gw_model base_model(const char *arch) {
    gw_model m = {.arch = arch,
                  .hidden = 64,
                  .inter = 96,
                  .layers = 2,
                  .heads = 8,
                  .kv_heads = 2,
                  .vocab = 40,
                  .ctx = 2048,
                  .write_tokens = true,
                  .eps = 1e-5f,
                  .theta = 10000.0f,
                  .wtype = LT_GGML_F32,
                  .bos = 1,
                  .eos = 2,
                  .eot = -1};
    return m;
}

/* Builds m (+ extra kvs from fn), opens it and converts it; returns the status of the conversion
 * (the open itself must succeed). */
typedef void (*extra_fn)(gw *w);
static lt_status convert(const gw_model *m, extra_fn extra, lt_model_config *cfg) {
    gw w;
    gw_init(&w, 32);
    gw_model_build(&w, m);
    if (extra) extra(&w);
    size_t len;
    uint8_t *img = gw_build(&w, &len);
    lt_gguf_file *f = NULL;
    lt_status st = lt_gguf_open_buffer(img, (int64_t)len, "model.gguf", &f);
    if (!st) {
        st = lt_gguf_to_config(f, cfg);
        lt_gguf_close(f);
    } else {
        fprintf(stderr, "open failed: %s\n", lt_status_msg(st));
        lt_status_free(st);
        st = lt_errorf(LT_ERR_INTERNAL, "test file did not open");
    }
    free(img);
    gw_free(&w);
    return st;
}

/* HF's llama3 inverse frequencies for cfg (specs §2), in double. */
static void hf_inv_freq(const lt_model_config *c, double *out) {
    int64_t d = c->head_dim;
    for (int64_t i = 0; i < d / 2; i++) {
        double inv = 1.0 / pow(c->rope_theta, (double)(2 * i) / (double)d);
        if (c->rope_kind == LT_ROPE_LLAMA3) {
            double orig = (double)c->rope_original_max_position, wl = 2 * M_PI / inv;
            double low_wl = orig / c->rope_low_freq_factor, high_wl = orig / c->rope_high_freq_factor;
            if (wl > low_wl)
                inv /= c->rope_factor;
            else if (wl >= high_wl) {
                double s = (orig / wl - c->rope_low_freq_factor) / (c->rope_high_freq_factor - c->rope_low_freq_factor);
                inv = (1 - s) * inv / c->rope_factor + s * inv;
            }
        }
        out[i] = inv;
    }
}

/* ---------------------------------------------------------------- configs */

static void extra_eot_eom(gw *w) { gw_kv_u32(w, "tokenizer.ggml.eom_token_id", 7); }

static void test_llama(void) {
    lt_model_config c;
    gw_model m = base_model("llama");
    m.tied = true;
    m.eot = 5;
    CHECK_OK(convert(&m, extra_eot_eom, &c));
    CHECK(c.arch == LT_ARCH_LLAMA && !strcmp(c.architecture, "LlamaForCausalLM") && !strcmp(c.model_type, "llama"));
    CHECK(c.hidden_size == 64 && c.intermediate_size == 96 && c.n_layers == 2 && c.n_heads == 8 && c.n_kv_heads == 2 &&
          c.head_dim == 8 && c.vocab_size == 40 && c.max_position_embeddings == 2048);
    CHECK(c.rms_norm_eps == (double)1e-5f && c.rope_theta == 10000.0 && c.rope_kind == LT_ROPE_DEFAULT);
    CHECK(c.tie_word_embeddings && !c.qkv_bias && !c.o_bias && !c.mlp_bias && !c.qk_norm);
    CHECK(c.bos_token_id == 1 && c.pad_token_id == -1);
    CHECK(c.n_eos == 3 && c.eos_token_ids[0] == 2 && c.eos_token_ids[1] == 5 && c.eos_token_ids[2] == 7);
    CHECK(lt_config_n_params(&c) > 0);
    /* counts as UINT64 (the spec's type), eps as FLOAT64, untied, no token list, eot == eos */
    m = base_model("llama");
    m.counts_u64 = true, m.eps_f64 = true, m.write_tokens = false, m.eot = 2, m.bos = -1;
    CHECK_OK(convert(&m, NULL, &c));
    CHECK(c.n_layers == 2 && c.rms_norm_eps == (double)1e-5f && !c.tie_word_embeddings);
    CHECK(c.n_eos == 1 && c.eos_token_ids[0] == 2 && c.bos_token_id == -1);
}

static void test_qwen(void) {
    lt_model_config c;
    gw_model m = base_model("qwen2");
    m.kv_heads = 4;
    CHECK_OK(convert(&m, NULL, &c));
    CHECK(c.arch == LT_ARCH_QWEN2 && !strcmp(c.architecture, "Qwen2ForCausalLM") && c.qkv_bias && !c.o_bias);
    CHECK(c.n_kv_heads == 4 && !c.tie_word_embeddings && !c.qk_norm);
    /* qwen3: head_dim 32 != hidden/heads (key_length written), tied, q/k norms */
    m = base_model("qwen3");
    m.heads = 4, m.head_dim = 32, m.write_key_length = true, m.tied = true;
    CHECK_OK(convert(&m, NULL, &c));
    CHECK(c.arch == LT_ARCH_QWEN3 && c.head_dim == 32 && c.n_heads == 4 && c.qk_norm && c.tie_word_embeddings);
    CHECK(!c.qkv_bias && !strcmp(c.model_type, "qwen3"));
    /* incomplete files */
    m = base_model("qwen2");
    m.no_extras = true;
    CHECK_ERR(convert(&m, NULL, &c), "a qwen2 model needs blk.0.attn_q.bias");
    m = base_model("qwen3");
    m.no_extras = true;
    CHECK_ERR(convert(&m, NULL, &c), "a qwen3 model needs blk.0.attn_q_norm.weight");
}

/* Llama-3 rope scaling only exists as rope_freqs.weight: the parameters must be recovered so that
 * loft's rope reproduces the converter's divisors. */
static float g_freqs[64];
static void test_rope_llama3(void) {
    lt_model_config c;
    double got[64], want[64];
    /* hidden 128 / 8 heads: head_dim 16, 8 frequencies; theta 10000 and original context 64 put
     * two frequencies in the interpolated band (the two-point fit) */
    gw_model m = base_model("llama");
    m.hidden = 128, m.rope_freqs = g_freqs, m.rope_orig = 64;
    gw_llama3_freqs(10000.0f, 16, 8.0, 1.0, 4.0, 64, g_freqs);
    CHECK_OK(convert(&m, NULL, &c));
    CHECK(c.rope_kind == LT_ROPE_LLAMA3 && c.rope_factor == 8.0 && c.rope_original_max_position == 64);
    /* 1e-3: the band edges come from float32 divisors (relative error ~6e-8, amplified by the
     * two-point fit over wavelengths a factor ~3 apart) */
    CHECKF(fabs(c.rope_low_freq_factor - 1.0) < 1e-3 && fabs(c.rope_high_freq_factor - 4.0) < 1e-3, "%g %g",
           c.rope_low_freq_factor, c.rope_high_freq_factor);
    hf_inv_freq(&c, got);
    lt_model_config ref = c;
    ref.rope_low_freq_factor = 1.0, ref.rope_high_freq_factor = 4.0;
    hf_inv_freq(&ref, want);
    /* 1e-5 relative: float32 storage of the divisors (see LT_GC_ROPE_TOL in gguf_config.c) */
    for (int i = 0; i < 8; i++)
        CHECKF(fabs(got[i] - want[i]) <= 1e-5 * want[i], "freq %d: %g vs %g", i, got[i], want[i]);
    /* without the original-context key: orig is assumed 8192 and low/high scale with it; the
     * frequencies loft computes must still be the same */
    m.rope_orig = 0;
    CHECK_OK(convert(&m, NULL, &c));
    CHECK(c.rope_kind == LT_ROPE_LLAMA3 && c.rope_original_max_position == 8192);
    CHECKF(fabs(c.rope_low_freq_factor - 128.0) < 0.2 && fabs(c.rope_high_freq_factor - 512.0) < 0.5, "%g %g",
           c.rope_low_freq_factor, c.rope_high_freq_factor);
    hf_inv_freq(&c, got);
    for (int i = 0; i < 8; i++)
        CHECKF(fabs(got[i] - want[i]) <= 1e-5 * want[i], "freq %d: %g vs %g", i, got[i], want[i]);
    /* theta 500000: one interpolated frequency -> Meta's low 1 / high 4 with orig 64 */
    m.theta = 500000.0f, m.rope_orig = 64;
    gw_llama3_freqs(500000.0f, 16, 8.0, 1.0, 4.0, 64, g_freqs);
    CHECK_OK(convert(&m, NULL, &c));
    CHECK(c.rope_kind == LT_ROPE_LLAMA3 && c.rope_low_freq_factor == 1.0 && c.rope_high_freq_factor == 4.0);
    /* one interpolated frequency with other band edges (low 0.2 / high 1, low 1.5 / high 3
     * one equation, two unknowns): the edges are not identifiable, but the recovered ones must give the same
     * frequencies as the true ones */
    for (int variant = 0; variant < 2; variant++) {
        const double lo = variant ? 1.5 : 0.2, hi = variant ? 3.0 : 1.0;
        gw_llama3_freqs(500000.0f, 16, 8.0, lo, hi, 64, g_freqs);
        int n_mid = 0;
        for (int i = 0; i < 8; i++) n_mid += g_freqs[i] > 1.0f && g_freqs[i] < 8.0f;
        CHECKF(n_mid == 1, "variant %d has %d interpolated frequencies, the case needs 1", variant, n_mid);
        CHECK_OK(convert(&m, NULL, &c));
        CHECK(c.rope_kind == LT_ROPE_LLAMA3 && c.rope_factor == 8.0);
        hf_inv_freq(&c, got);
        ref = c;
        ref.rope_low_freq_factor = lo, ref.rope_high_freq_factor = hi;
        hf_inv_freq(&ref, want);
        for (int i = 0; i < 8; i++) /* 1e-5: float32 storage of the divisors, as above */
            CHECKF(fabs(got[i] - want[i]) <= 1e-5 * want[i], "variant %d freq %d: %g vs %g", variant, i, got[i],
                   want[i]);
    }
    /* head_dim 4 (2 frequencies), orig unknown: nothing in between; band edges are placed between */
    m = base_model("llama");
    m.heads = 16, m.kv_heads = 4, m.rope_freqs = g_freqs; /* 64 / 16 = 4 */
    gw_llama3_freqs(10000.0f, 4, 8.0, 1.0, 4.0, 64, g_freqs);
    CHECK(g_freqs[0] == 1.0f && g_freqs[1] == 8.0f);
    CHECK_OK(convert(&m, NULL, &c));
    CHECK(c.rope_kind == LT_ROPE_LLAMA3 && c.rope_factor == 8.0);
    hf_inv_freq(&c, got);
    CHECK(fabs(got[0] - 1.0) < 1e-12 && fabs(got[1] - 0.01 / 8) < 1e-12);
    /* all ones: no scaling */
    m = base_model("llama");
    m.rope_freqs = g_freqs;
    for (int i = 0; i < 4; i++) g_freqs[i] = 1.0f;
    CHECK_OK(convert(&m, NULL, &c));
    CHECK(c.rope_kind == LT_ROPE_DEFAULT);
    /* divisors that follow no llama3 rule */
    g_freqs[0] = 1.0f, g_freqs[1] = 3.0f, g_freqs[2] = 1.0f, g_freqs[3] = 8.0f;
    lt_status st = convert(&m, NULL, &c);
    CHECK(st && lt_status_code(st) == LT_ERR_UNSUPPORTED && strstr(lt_status_msg(st), "do not follow"));
    lt_status_free(st);
    g_freqs[1] = -1.0f;
    CHECK_ERR(convert(&m, NULL, &c), "rope_freqs.weight[1] = -1");
    g_freqs[1] = NAN;
    CHECK_ERR(convert(&m, NULL, &c), "rope_freqs.weight[1] = nan");
}

static void extra_yarn(gw *w) {
    gw_kv_str(w, "llama.rope.scaling.type", "yarn");
    gw_kv_f32(w, "llama.rope.scaling.factor", 4.0f);
}
static void extra_linear_factor(gw *w) { gw_kv_f32(w, "llama.rope.scaling.factor", 2.0f); }
static void extra_none(gw *w) {
    gw_kv_str(w, "llama.rope.scaling.type", "none");
    gw_kv_f32(w, "llama.rope.scaling.factor", 2.0f);
}
static void extra_value_len(gw *w) { gw_kv_u32(w, "llama.attention.value_length", 16); }
static void extra_rope_dims(gw *w) { gw_kv_u32(w, "llama.rope.dimension_count", 4); }
static void extra_vocab_size(gw *w) { gw_kv_u32(w, "llama.vocab_size", 41); }
static void extra_vocab_ok(gw *w) { gw_kv_u32(w, "llama.vocab_size", 40); }
static void extra_eos_big(gw *w) { gw_kv_u32(w, "tokenizer.ggml.eos_token_id", 99); }
static void extra_layers_huge(gw *w) { gw_kv_u32(w, "llama.block_count", 100000); }
static void extra_layers_str(gw *w) { gw_kv_str(w, "llama.block_count", "32"); }
static void extra_theta0(gw *w) { gw_kv_f32(w, "llama.rope.freq_base", 0.0f); }
static void extra_arch_gpt2(gw *w) { gw_kv_str(w, "general.architecture", "gpt2"); }
static void extra_arch_u32(gw *w) { gw_kv_u32(w, "general.architecture", 1); }
static void extra_tokens_short(gw *w) { gw_kv_arr_str(w, "tokenizer.ggml.tokens", 2, (const char *[]){"a", "b"}); }

static void test_config_errors(void) {
    lt_model_config c;
    gw_model m = base_model("llama");
    CHECK_OK(convert(&m, extra_vocab_ok, &c));
    CHECK_OK(convert(&m, extra_none, &c)); /* type "none" overrides a factor */
    CHECK_ERR(convert(&m, extra_yarn, &c), "not linear or YaRN");
    CHECK_ERR(convert(&m, extra_linear_factor, &c), "\"llama.rope.scaling.factor\" is 2 (scaling type \"linear\")");
    CHECK_ERR(convert(&m, extra_value_len, &c), "\"llama.attention.value_length\" is 16 but the head size is 8");
    CHECK_ERR(convert(&m, extra_rope_dims, &c), "\"llama.rope.dimension_count\" is 4");
    CHECK_ERR(convert(&m, extra_vocab_size, &c), "\"llama.vocab_size\" is 41 but token_embd.weight has 40 rows");
    m.eos = -1;
    CHECK_ERR(convert(&m, extra_eos_big, &c), "\"tokenizer.ggml.eos_token_id\" is 99; expected a value from 0 to 39");
    m = base_model("llama");
    m.write_tokens = false;
    CHECK_ERR(convert(&m, extra_tokens_short, &c), "tokenizer.ggml.tokens has 2 entries but token_embd.weight has 40");
    /* an unbounded layer count would index fixed per-layer arrays (acestep.cpp#98) */
    m = base_model("llama");
    m.skip = "block_count";
    CHECK_ERR(convert(&m, NULL, &c), "\"llama.block_count\" is missing");
    CHECK_ERR(convert(&m, extra_layers_huge, &c), "\"llama.block_count\" is 100000; expected a value from 1 to 1024");
    CHECK_ERR(convert(&m, extra_layers_str, &c), "\"llama.block_count\" must be an integer below 2^63, found STRING");
    m = base_model("llama");
    m.eps = 0.0f;
    CHECK_ERR(convert(&m, NULL, &c), "\"llama.attention.layer_norm_rms_epsilon\" is 0; expected a number in (0, 1]");
    m.eps = 1e-5f, m.skip = "rope.freq_base";
    CHECK_OK(convert(&m, NULL, &c)); /* absent: 10000 */
    CHECK(c.rope_theta == 10000.0);
    CHECK_ERR(convert(&m, extra_theta0, &c), "\"llama.rope.freq_base\" is 0; expected a finite number above 1");
    m = base_model("llama");
    m.skip = "general.architecture";
    CHECK_ERR(convert(&m, NULL, &c), "\"general.architecture\" is missing");
    lt_status st = convert(&m, extra_arch_gpt2, &c);
    CHECK(st && lt_status_code(st) == LT_ERR_UNSUPPORTED && strstr(lt_status_msg(st), "\"gpt2\"; loft runs llama"));
    lt_status_free(st);
    CHECK_ERR(convert(&m, extra_arch_u32, &c), "\"general.architecture\" must be STRING, found UINT32");
    m = base_model("llama");
    m.skip = "token_embd";
    CHECK_ERR(convert(&m, NULL, &c), "tensor \"token_embd.weight\" is missing");
    m = base_model("llama");
    m.kv_heads = 3; /* 8 % 3 != 0: lt_config_validate */
    CHECK_ERR(convert(&m, NULL, &c),
              "llama.attention.head_count_kv (3) does not divide llama.attention.head_count (8)");
    m = base_model("llama");
    m.heads = 7, m.skip = "attention.key_length"; /* 64 / 7: head size unknown */
    m.kv_heads = 7;
    CHECK_ERR(convert(&m, NULL, &c), "is not divisible by llama.attention.head_count (7)");
    CHECK(c.hidden_size == 0); /* a failed conversion leaves nothing half-filled */
}

/* ---------------------------------------------------------------- names */

static void test_names(void) {
    static const char *const pairs[][2] = {
        {"token_embd.weight", "model.embed_tokens.weight"},
        {"output_norm.weight", "model.norm.weight"},
        {"output.weight", "lm_head.weight"},
        {"blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight"},
        {"blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight"},
        {"blk.17.attn_q.bias", "model.layers.17.self_attn.q_proj.bias"},
        {"blk.17.attn_k.weight", "model.layers.17.self_attn.k_proj.weight"},
        {"blk.3.attn_k.bias", "model.layers.3.self_attn.k_proj.bias"},
        {"blk.3.attn_v.weight", "model.layers.3.self_attn.v_proj.weight"},
        {"blk.3.attn_v.bias", "model.layers.3.self_attn.v_proj.bias"},
        {"blk.79.attn_output.weight", "model.layers.79.self_attn.o_proj.weight"},
        {"blk.79.attn_output.bias", "model.layers.79.self_attn.o_proj.bias"},
        {"blk.2.attn_q_norm.weight", "model.layers.2.self_attn.q_norm.weight"},
        {"blk.2.attn_k_norm.weight", "model.layers.2.self_attn.k_norm.weight"},
        {"blk.10.ffn_norm.weight", "model.layers.10.post_attention_layernorm.weight"},
        {"blk.10.ffn_gate.weight", "model.layers.10.mlp.gate_proj.weight"},
        {"blk.10.ffn_up.weight", "model.layers.10.mlp.up_proj.weight"},
        {"blk.10.ffn_down.weight", "model.layers.10.mlp.down_proj.weight"},
        {"blk.10.ffn_down.bias", "model.layers.10.mlp.down_proj.bias"},
    };
    char out[128];
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        CHECKF(lt_gguf_name_to_hf(pairs[i][0], out, sizeof out) && !strcmp(out, pairs[i][1]), "%s -> %s", pairs[i][0],
               out);
        CHECKF(lt_gguf_name_from_hf(pairs[i][1], out, sizeof out) && !strcmp(out, pairs[i][0]), "%s -> %s", pairs[i][1],
               out);
    }
    static const char *const no_gguf[] = {"rope_freqs.weight",    "blk.01.attn_q.weight",
                                          "blk.1.attn_qq.weight", "blk.1.attn_q.weight.x",
                                          "blk..attn_q.weight",   "blk.1234567890.attn_q.weight",
                                          "blk.1.attn_q",         "blk.-1.attn_q.weight",
                                          "output.bias",          ""};
    for (size_t i = 0; i < sizeof no_gguf / sizeof no_gguf[0]; i++) {
        strcpy(out, "junk");
        CHECKF(!lt_gguf_name_to_hf(no_gguf[i], out, sizeof out) && out[0] == '\0', "%s", no_gguf[i]);
    }
    CHECK(!lt_gguf_name_from_hf("model.layers.3.mlp.up_proj.lora_A.weight", out, sizeof out));
    CHECK(!lt_gguf_name_from_hf("model.layers.3.mlp.up.weight", out, sizeof out));
    CHECK(!lt_gguf_name_to_hf("blk.10.ffn_up.weight", out, 10) && out[0] == '\0'); /* too small */
    CHECK(lt_gguf_name_to_hf("blk.999999999.ffn_up.weight", out, sizeof out) &&
          !strcmp(out, "model.layers.999999999.mlp.up_proj.weight"));
}

/* ---------------------------------------------------------------- the q/k permutation */

static void test_permute(void) {
    /* hand-worked, one byte per row. n_head 2, hd 4: GGUF row h*4 + 2i + s = HF row h*4 + 2s + i,
     * so GGUF order lists HF rows 0 2 1 3 | 4 6 5 7 */
    uint8_t hf[16], g[16], back[16];
    for (int i = 0; i < 8; i++) hf[i] = (uint8_t)i;
    CHECK_OK(lt_gguf_permute_rows(hf, g, 8, 1, 2));
    static const uint8_t want4[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    CHECK(!memcmp(g, want4, 8));
    CHECK_OK(lt_gguf_unpermute_rows(g, back, 8, 1, 2));
    CHECK(!memcmp(back, hf, 8));
    /* n_head 1, hd 8: (i, s) -> HF row 4s + i: 0 4 1 5 2 6 3 7 */
    CHECK_OK(lt_gguf_permute_rows(hf, g, 8, 1, 1));
    static const uint8_t want8[8] = {0, 4, 1, 5, 2, 6, 3, 7};
    CHECK(!memcmp(g, want8, 8));
    /* random rows of several widths: unpermute(permute(x)) = x = permute(unpermute(x)) */
    static const int64_t shapes[][3] = {{4, 2, 3}, {8, 16, 34}, {2, 128, 4}, {32, 64, 144}, {1, 2, 7}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t nh = shapes[s][0], hd = shapes[s][1], rb = shapes[s][2], rows = nh * hd, n = rows * rb;
        uint8_t *x = malloc((size_t)n), *y = malloc((size_t)n), *z = malloc((size_t)n);
        for (int64_t i = 0; i < n; i++) x[i] = (uint8_t)(i * 131 + s);
        CHECK_OK(lt_gguf_permute_rows(x, y, rows, rb, nh));
        CHECK_OK(lt_gguf_unpermute_rows(y, z, rows, rb, nh));
        CHECKF(!memcmp(x, z, (size_t)n), "shape %zu", s);
        CHECK_OK(lt_gguf_unpermute_rows(x, y, rows, rb, nh));
        CHECK_OK(lt_gguf_permute_rows(y, z, rows, rb, nh));
        CHECKF(!memcmp(x, z, (size_t)n), "shape %zu", s);
        CHECK(hd <= 2 || memcmp(x, y, (size_t)n) != 0); /* not the identity */
        free(x), free(y), free(z);
    }
    CHECK_ERR(lt_gguf_unpermute_rows(hf, g, 9, 1, 2), "cannot unpermute 9 rows over 2 heads");
    CHECK_ERR(lt_gguf_permute_rows(hf, g, 6, 1, 2), "cannot permute 6 rows"); /* head_dim 3 is odd */
    CHECK_ERR(lt_gguf_unpermute_rows(hf, g, 8, 1, 0), "cannot unpermute");

    /* Why it is right: q = W x; rows of W permuted = entries of q permuted. GGUF/Meta RoPE rotates
     * pairs (2i, 2i+1), HF rotates (i, i + hd/2), both with angle p * inv_freq[i] (specs §2).
     * So rope_hf(q) must equal unpermute(rope_meta(permute(q))). */
    enum { HD = 8, NH = 2 };
    float q[NH * HD], qg[NH * HD], rg[NH * HD], back2[NH * HD], rh[NH * HD];
    for (int i = 0; i < NH * HD; i++) q[i] = (float)sin(1.3 * i + 0.2);
    const double pos = 5.0;
    for (int h = 0; h < NH; h++)
        for (int i = 0; i < HD / 2; i++) {
            double a = pos * pow(10000.0, -2.0 * i / HD), c = cos(a), s = sin(a);
            float *x = q + h * HD, *y = rh + h * HD;
            y[i] = (float)(x[i] * c - x[i + HD / 2] * s);
            y[i + HD / 2] = (float)(x[i + HD / 2] * c + x[i] * s);
        }
    CHECK_OK(lt_gguf_permute_rows(q, qg, NH * HD, sizeof(float), NH));
    for (int h = 0; h < NH; h++)
        for (int i = 0; i < HD / 2; i++) {
            double a = pos * pow(10000.0, -2.0 * i / HD), c = cos(a), s = sin(a);
            float *x = qg + h * HD, *y = rg + h * HD;
            y[2 * i] = (float)(x[2 * i] * c - x[2 * i + 1] * s);
            y[2 * i + 1] = (float)(x[2 * i + 1] * c + x[2 * i] * s);
        }
    CHECK_OK(lt_gguf_unpermute_rows(rg, back2, NH * HD, sizeof(float), NH));
    /* the same float operations on the same operands in both orders: exactly equal */
    CHECK(!memcmp(back2, rh, sizeof rh));

    /* which tensors get unpermuted */
    lt_model_config c = {.arch = LT_ARCH_LLAMA, .n_heads = 32, .n_kv_heads = 8};
    CHECK(lt_gguf_permuted_heads(&c, "model.layers.0.self_attn.q_proj.weight") == 32);
    CHECK(lt_gguf_permuted_heads(&c, "model.layers.31.self_attn.q_proj.bias") == 32);
    CHECK(lt_gguf_permuted_heads(&c, "model.layers.5.self_attn.k_proj.weight") == 8);
    CHECK(lt_gguf_permuted_heads(&c, "model.layers.5.self_attn.v_proj.weight") == 0);
    CHECK(lt_gguf_permuted_heads(&c, "model.layers.5.self_attn.o_proj.weight") == 0);
    CHECK(lt_gguf_permuted_heads(&c, "model.embed_tokens.weight") == 0);
    c.arch = LT_ARCH_MISTRAL;
    CHECK(lt_gguf_permuted_heads(&c, "model.layers.0.self_attn.k_proj.weight") == 8);
    c.arch = LT_ARCH_QWEN2;
    CHECK(lt_gguf_permuted_heads(&c, "model.layers.0.self_attn.q_proj.weight") == 0);
    c.arch = LT_ARCH_QWEN3;
    CHECK(lt_gguf_permuted_heads(&c, "model.layers.0.self_attn.k_proj.weight") == 0);
}

int main(void) {
    test_llama();
    test_qwen();
    test_rope_llama3();
    test_config_errors();
    test_names();
    test_permute();
    TEST_MAIN_END();
}
