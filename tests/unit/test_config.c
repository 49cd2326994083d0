/* HF config.json: real-shaped configs of each architecture (values as in the published
 * config.json files), transformers defaults for absent keys, both rope layouts, save -> parse
 * round trips, parameter counts worked out by hand, and malformed configs refused with a message
 * that names the key. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "io/io.h"
#include "model/model.h"
#include "test.h"

/* ---------------------------------------------------------------- real configs */

static const char *llama31_8b_instruct = "{\n"
                                         "  \"architectures\": [\"LlamaForCausalLM\"],\n"
                                         "  \"attention_bias\": false,\n"
                                         "  \"attention_dropout\": 0.0,\n"
                                         "  \"bos_token_id\": 128000,\n"
                                         "  \"eos_token_id\": [128001, 128008, 128009],\n"
                                         "  \"hidden_act\": \"silu\",\n"
                                         "  \"hidden_size\": 4096,\n"
                                         "  \"initializer_range\": 0.02,\n"
                                         "  \"intermediate_size\": 14336,\n"
                                         "  \"max_position_embeddings\": 131072,\n"
                                         "  \"mlp_bias\": false,\n"
                                         "  \"model_type\": \"llama\",\n"
                                         "  \"num_attention_heads\": 32,\n"
                                         "  \"num_hidden_layers\": 32,\n"
                                         "  \"num_key_value_heads\": 8,\n"
                                         "  \"pretraining_tp\": 1,\n"
                                         "  \"rms_norm_eps\": 1e-05,\n"
                                         "  \"rope_scaling\": {\n"
                                         "    \"factor\": 8.0,\n"
                                         "    \"low_freq_factor\": 1.0,\n"
                                         "    \"high_freq_factor\": 4.0,\n"
                                         "    \"original_max_position_embeddings\": 8192,\n"
                                         "    \"rope_type\": \"llama3\"\n"
                                         "  },\n"
                                         "  \"rope_theta\": 500000.0,\n"
                                         "  \"tie_word_embeddings\": false,\n"
                                         "  \"torch_dtype\": \"bfloat16\",\n"
                                         "  \"transformers_version\": \"4.43.0.dev0\",\n"
                                         "  \"use_cache\": true,\n"
                                         "  \"vocab_size\": 128256\n"
                                         "}\n";

static const char *mistral_7b_v01 =
    "{\"architectures\": [\"MistralForCausalLM\"], \"bos_token_id\": 1, \"eos_token_id\": 2,"
    " \"hidden_act\": \"silu\", \"hidden_size\": 4096, \"initializer_range\": 0.02,"
    " \"intermediate_size\": 14336, \"max_position_embeddings\": 32768, \"model_type\": \"mistral\","
    " \"num_attention_heads\": 32, \"num_hidden_layers\": 32, \"num_key_value_heads\": 8,"
    " \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, \"sliding_window\": 4096,"
    " \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\", \"transformers_version\": \"4.34.0.dev0\","
    " \"use_cache\": true, \"vocab_size\": 32000}";

static const char *qwen25_7b =
    "{\"architectures\": [\"Qwen2ForCausalLM\"], \"attention_dropout\": 0.0, \"bos_token_id\": 151643,"
    " \"eos_token_id\": 151643, \"hidden_act\": \"silu\", \"hidden_size\": 3584, \"initializer_range\": 0.02,"
    " \"intermediate_size\": 18944, \"max_position_embeddings\": 131072, \"max_window_layers\": 28,"
    " \"model_type\": \"qwen2\", \"num_attention_heads\": 28, \"num_hidden_layers\": 28,"
    " \"num_key_value_heads\": 4, \"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000.0, \"sliding_window\": 131072,"
    " \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\", \"transformers_version\": \"4.43.1\","
    " \"use_cache\": true, \"use_mrope\": false, \"use_sliding_window\": false, \"vocab_size\": 152064}";

/* Qwen3-8B writes rope_theta as the integer 1000000: numbers may be JSON integers. */
static const char *qwen3_8b =
    "{\"architectures\": [\"Qwen3ForCausalLM\"], \"attention_bias\": false, \"attention_dropout\": 0.0,"
    " \"bos_token_id\": 151643, \"eos_token_id\": 151645, \"head_dim\": 128, \"hidden_act\": \"silu\","
    " \"hidden_size\": 4096, \"initializer_range\": 0.02, \"intermediate_size\": 12288,"
    " \"max_position_embeddings\": 40960, \"max_window_layers\": 36, \"model_type\": \"qwen3\","
    " \"num_attention_heads\": 32, \"num_hidden_layers\": 36, \"num_key_value_heads\": 8,"
    " \"rms_norm_eps\": 1e-06, \"rope_scaling\": null, \"rope_theta\": 1000000, \"sliding_window\": null,"
    " \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\", \"transformers_version\": \"4.51.0\","
    " \"use_cache\": true, \"use_sliding_window\": false, \"vocab_size\": 151936}";

/* Qwen3-0.6B: head_dim 128 while hidden/heads = 64 (q_proj out 2048 != hidden 1024); tied. */
static const char *qwen3_06b =
    "{\"architectures\": [\"Qwen3ForCausalLM\"], \"attention_bias\": false, \"bos_token_id\": 151643,"
    " \"eos_token_id\": 151645, \"head_dim\": 128, \"hidden_act\": \"silu\", \"hidden_size\": 1024,"
    " \"initializer_range\": 0.02, \"intermediate_size\": 3072, \"max_position_embeddings\": 40960,"
    " \"model_type\": \"qwen3\", \"num_attention_heads\": 16, \"num_hidden_layers\": 28,"
    " \"num_key_value_heads\": 8, \"rms_norm_eps\": 1e-06, \"rope_scaling\": null, \"rope_theta\": 1000000,"
    " \"sliding_window\": null, \"tie_word_embeddings\": true, \"torch_dtype\": \"bfloat16\","
    " \"use_sliding_window\": false, \"vocab_size\": 151936}";

/* Llama-3.2-1B as transformers v5 writes it: "dtype" and "rope_parameters". */
static const char *llama32_1b_v5 =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"dtype\": \"bfloat16\","
    " \"hidden_size\": 2048, \"intermediate_size\": 8192, \"num_hidden_layers\": 16,"
    " \"num_attention_heads\": 32, \"num_key_value_heads\": 8, \"head_dim\": 64, \"vocab_size\": 128256,"
    " \"max_position_embeddings\": 131072, \"rms_norm_eps\": 1e-05, \"bos_token_id\": 128000,"
    " \"eos_token_id\": 128001, \"pad_token_id\": null, \"tie_word_embeddings\": true,"
    " \"rope_parameters\": {\"rope_type\": \"llama3\", \"rope_theta\": 500000.0, \"factor\": 32.0,"
    " \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}}";

/* A v5 Qwen3 with the default rope in rope_parameters (top-level rope_theta absent). */
static const char *qwen3_v5_default_rope =
    "{\"architectures\": [\"Qwen3ForCausalLM\"], \"model_type\": \"qwen3\", \"dtype\": \"float32\","
    " \"hidden_size\": 4096, \"intermediate_size\": 12288, \"num_hidden_layers\": 36,"
    " \"num_attention_heads\": 32, \"num_key_value_heads\": 8, \"head_dim\": 128, \"vocab_size\": 151936,"
    " \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 1000000.0}}";

static void check_common(const lt_model_config *c, lt_arch arch, const char *cls, const char *type) {
    CHECK(c->arch == arch);
    CHECKF(!strcmp(c->architecture, cls), "%s", c->architecture);
    CHECKF(!strcmp(c->model_type, type), "%s", c->model_type);
    CHECK(!strcmp(lt_arch_name(arch), cls));
}

/* Sum of the layout's tensor sizes must equal the closed-form count; returns the tensor count. */
static int64_t check_layout_matches(const lt_model_config *c) {
    int64_t n = lt_model_weight_specs(c, NULL, 0);
    lt_weight_spec *s = calloc((size_t)n, sizeof *s);
    CHECK(lt_model_weight_specs(c, s, n) == n);
    int64_t total = 0;
    for (int64_t i = 0; i < n; i++) total += s[i].ndim == 2 ? s[i].shape[0] * s[i].shape[1] : s[i].shape[0];
    CHECKF(total == lt_config_n_params(c), "layout %lld vs n_params %lld", (long long)total,
           (long long)lt_config_n_params(c));
    free(s);
    return n;
}

static void test_llama31(lt_model_config *c) {
    CHECK_OK(lt_config_parse(llama31_8b_instruct, "llama31/config.json", c));
    check_common(c, LT_ARCH_LLAMA, "LlamaForCausalLM", "llama");
    CHECK(c->vocab_size == 128256 && c->hidden_size == 4096 && c->intermediate_size == 14336);
    CHECK(c->n_layers == 32 && c->n_heads == 32 && c->n_kv_heads == 8 && c->head_dim == 128);
    CHECK(c->max_position_embeddings == 131072);
    CHECK(c->rms_norm_eps == 1e-5 && c->rope_theta == 500000.0);
    CHECK(c->rope_kind == LT_ROPE_LLAMA3 && c->rope_factor == 8.0 && c->rope_low_freq_factor == 1.0 &&
          c->rope_high_freq_factor == 4.0 && c->rope_original_max_position == 8192);
    CHECK(!c->tie_word_embeddings && !c->qkv_bias && !c->o_bias && !c->mlp_bias && !c->qk_norm);
    CHECK(c->bos_token_id == 128000 && c->pad_token_id == -1);
    CHECK(c->n_eos == 3 && c->eos_token_ids[0] == 128001 && c->eos_token_ids[1] == 128008 &&
          c->eos_token_ids[2] == 128009);
    CHECK(c->initializer_range == 0.02 && !strcmp(c->torch_dtype, "bfloat16"));
    /* embed + lm_head: 2*128256*4096 = 1,050,673,152. Per layer: q,o 2*4096*4096 = 33,554,432;
     * k,v 2*4096*1024 = 8,388,608; gate,up,down 3*4096*14336 = 176,160,768; 2 norms 8,192
     * -> 218,112,000; x32 = 6,979,584,000. + final norm 4,096 = 8,030,261,248. */
    CHECK(lt_config_n_params(c) == 8030261248LL);
    CHECK(check_layout_matches(c) == 1 + 32 * 9 + 2); /* embed, 9 per layer, norm, lm_head */
}

static void test_mistral(lt_model_config *c) {
    /* sliding_window 4096 < 32768: loaded with a warning (loft attends over the full context). */
    CHECK_OK(lt_config_parse(mistral_7b_v01, "mistral/config.json", c));
    check_common(c, LT_ARCH_MISTRAL, "MistralForCausalLM", "mistral");
    CHECK(c->vocab_size == 32000 && c->hidden_size == 4096 && c->intermediate_size == 14336);
    CHECK(c->n_layers == 32 && c->n_heads == 32 && c->n_kv_heads == 8 && c->head_dim == 128);
    CHECK(c->max_position_embeddings == 32768 && c->rms_norm_eps == 1e-5 && c->rope_theta == 10000.0);
    CHECK(c->rope_kind == LT_ROPE_DEFAULT);
    CHECK(!c->tie_word_embeddings && !c->qkv_bias && !c->o_bias && !c->mlp_bias && !c->qk_norm);
    CHECK(c->bos_token_id == 1 && c->n_eos == 1 && c->eos_token_ids[0] == 2 && c->pad_token_id == -1);
    /* embed + lm_head 2*32000*4096 = 262,144,000; layers as Llama-3.1-8B 6,979,584,000; norm 4,096. */
    CHECK(lt_config_n_params(c) == 7241732096LL);
    check_layout_matches(c);
}

static void test_qwen25(lt_model_config *c) {
    CHECK_OK(lt_config_parse(qwen25_7b, "qwen25/config.json", c));
    check_common(c, LT_ARCH_QWEN2, "Qwen2ForCausalLM", "qwen2");
    CHECK(c->vocab_size == 152064 && c->hidden_size == 3584 && c->intermediate_size == 18944);
    CHECK(c->n_layers == 28 && c->n_heads == 28 && c->n_kv_heads == 4 && c->head_dim == 128);
    CHECK(c->max_position_embeddings == 131072 && c->rms_norm_eps == 1e-6 && c->rope_theta == 1e6);
    CHECK(c->qkv_bias && !c->o_bias && !c->mlp_bias && !c->qk_norm && !c->tie_word_embeddings);
    CHECK(c->bos_token_id == 151643 && c->n_eos == 1 && c->eos_token_ids[0] == 151643);
    /* embed + lm_head 2*152064*3584 = 1,089,994,752. Per layer: q,o 2*3584*3584 = 25,690,112;
     * k,v 2*3584*512 = 3,670,016; q,k,v bias 3584+512+512 = 4,608; mlp 3*3584*18944 = 203,685,888;
     * norms 7,168 -> 233,057,792; x28 = 6,525,618,176. + norm 3,584 = 7,615,616,512. */
    CHECK(lt_config_n_params(c) == 7615616512LL);
    CHECK(check_layout_matches(c) == 1 + 28 * 12 + 2); /* 339, as in the published index */
}

static void test_qwen3(lt_model_config *c) {
    CHECK_OK(lt_config_parse(qwen3_8b, "qwen3/config.json", c));
    check_common(c, LT_ARCH_QWEN3, "Qwen3ForCausalLM", "qwen3");
    CHECK(c->vocab_size == 151936 && c->hidden_size == 4096 && c->intermediate_size == 12288);
    CHECK(c->n_layers == 36 && c->n_heads == 32 && c->n_kv_heads == 8 && c->head_dim == 128);
    CHECK(c->max_position_embeddings == 40960 && c->rms_norm_eps == 1e-6 && c->rope_theta == 1e6);
    CHECK(c->rope_kind == LT_ROPE_DEFAULT);
    CHECK(c->qk_norm && !c->qkv_bias && !c->o_bias && !c->mlp_bias && !c->tie_word_embeddings);
    CHECK(c->bos_token_id == 151643 && c->n_eos == 1 && c->eos_token_ids[0] == 151645);
    /* embed + lm_head 2*151936*4096 = 1,244,659,712. Per layer: attention 41,943,040 (as Llama);
     * mlp 3*4096*12288 = 150,994,944; norms 8,192 + q/k norms 256 -> 192,946,432; x36 =
     * 6,946,071,552. + norm 4,096 = 8,190,735,360. */
    CHECK(lt_config_n_params(c) == 8190735360LL);
    CHECK(check_layout_matches(c) == 1 + 36 * 11 + 2);

    lt_model_config s;
    CHECK_OK(lt_config_parse(qwen3_06b, "qwen3-0.6b/config.json", &s));
    CHECK(s.head_dim == 128 && s.hidden_size == 1024 && s.n_heads == 16 && s.tie_word_embeddings);
    /* embed 151936*1024 = 155,582,464 (tied: once). Per layer: q 1024*2048 + o 2048*1024 = 4,194,304;
     * k,v 2*1024*1024 = 2,097,152; mlp 3*1024*3072 = 9,437,184; norms 2,048 + 256 -> 15,730,944;
     * x28 = 440,466,432. + norm 1,024 = 596,049,920. */
    CHECK(lt_config_n_params(&s) == 596049920LL);
    CHECK(check_layout_matches(&s) == 1 + 28 * 11 + 1); /* no lm_head */
}

static void test_v5(void) {
    lt_model_config c;
    CHECK_OK(lt_config_parse(llama32_1b_v5, "llama32/config.json", &c));
    CHECK(c.arch == LT_ARCH_LLAMA && c.head_dim == 64 && c.tie_word_embeddings);
    CHECK(c.rope_kind == LT_ROPE_LLAMA3 && c.rope_theta == 500000.0 && c.rope_factor == 32.0 &&
          c.rope_low_freq_factor == 1.0 && c.rope_high_freq_factor == 4.0 && c.rope_original_max_position == 8192);
    CHECK(!strcmp(c.torch_dtype, "bfloat16") && c.pad_token_id == -1 && c.n_eos == 1);
    /* embed 128256*2048 = 262,668,288 (tied). Per layer: q,o 2*2048*2048 = 8,388,608; k,v
     * 2*2048*512 = 2,097,152; mlp 3*2048*8192 = 50,331,648; norms 4,096 -> 60,821,504; x16 =
     * 973,144,064. + norm 2,048 = 1,235,814,400. */
    CHECK(lt_config_n_params(&c) == 1235814400LL);

    CHECK_OK(lt_config_parse(qwen3_v5_default_rope, "q3v5/config.json", &c));
    CHECK(c.rope_kind == LT_ROPE_DEFAULT && c.rope_theta == 1e6 && !strcmp(c.torch_dtype, "float32"));
    /* absent: qwen3 defaults */
    CHECK(c.max_position_embeddings == 32768 && c.rms_norm_eps == 1e-6 && c.bos_token_id == -1 && c.n_eos == 0);

    /* Legacy "type" spelling inside rope_scaling. */
    CHECK_OK(lt_config_parse("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,\"intermediate_size\":128,"
                             "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"vocab_size\":100,"
                             "\"rope_scaling\":{\"type\":\"llama3\",\"factor\":8,\"low_freq_factor\":1,"
                             "\"high_freq_factor\":4,\"original_max_position_embeddings\":8192}}",
                             "legacy", &c));
    CHECK(c.rope_kind == LT_ROPE_LLAMA3 && c.rope_factor == 8.0);
    CHECK_OK(lt_config_parse("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,\"intermediate_size\":128,"
                             "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"vocab_size\":100,"
                             "\"rope_scaling\":{\"type\":\"default\"}}",
                             "legacy", &c));
    CHECK(c.rope_kind == LT_ROPE_DEFAULT);
}

#define TINY                                                                                                           \
    "\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"vocab_size\":"   \
    "100"

/* Defaults for absent keys, per architecture (specs/files.md §2 table). */
static void test_defaults(void) {
    lt_model_config c;
    CHECK_OK(lt_config_parse("{\"architectures\":[\"LlamaForCausalLM\"]," TINY "}", "d", &c));
    CHECK(c.n_kv_heads == 4 && c.head_dim == 16 && c.max_position_embeddings == 2048);
    CHECK(c.rms_norm_eps == 1e-6 && c.rope_theta == 10000.0 && c.rope_kind == LT_ROPE_DEFAULT);
    CHECK(c.bos_token_id == 1 && c.n_eos == 1 && c.eos_token_ids[0] == 2 && c.pad_token_id == -1);
    CHECK(!c.tie_word_embeddings && !c.qkv_bias && !c.o_bias && !c.mlp_bias && !c.qk_norm);
    CHECK(c.initializer_range == 0.02 && c.torch_dtype[0] == '\0');

    CHECK_OK(lt_config_parse("{\"architectures\":[\"LlamaForCausalLM\"]," TINY
                             ",\"attention_bias\":true,\"mlp_bias\":true,\"num_key_value_heads\":null,"
                             "\"bos_token_id\":null,\"eos_token_id\":null,\"pad_token_id\":-1,\"head_dim\":null}",
                             "d", &c));
    CHECK(c.qkv_bias && c.o_bias && c.mlp_bias && c.n_kv_heads == 4 && c.head_dim == 16);
    CHECK(c.bos_token_id == -1 && c.n_eos == 0 && c.pad_token_id == -1);
    /* q,k,v,o biases 4*64 + mlp biases 2*128+64 = 576 per layer more than the plain model. */
    lt_model_config plain;
    CHECK_OK(lt_config_parse("{\"architectures\":[\"LlamaForCausalLM\"]," TINY "}", "d", &plain));
    CHECK(lt_config_n_params(&c) - lt_config_n_params(&plain) == 2 * 576);
    check_layout_matches(&c);

    /* Mistral: kv 8 when absent (so 8 heads here), 131072 positions, window 4096 (warned). */
    CHECK_OK(lt_config_parse("{\"model_type\":\"mistral\",\"hidden_size\":64,\"intermediate_size\":128,"
                             "\"num_hidden_layers\":2,\"num_attention_heads\":8,\"vocab_size\":100}",
                             "d", &c));
    CHECK(c.arch == LT_ARCH_MISTRAL && c.n_kv_heads == 8 && c.head_dim == 8 && c.max_position_embeddings == 131072);
    CHECK(c.bos_token_id == 1 && c.n_eos == 1 && c.eos_token_ids[0] == 2 && !c.qkv_bias);
    /* Mistral's attention_bias does not exist in transformers: ignored. */

    /* Qwen2: q,k,v bias always (even with attention_bias false), kv 32 when absent. */
    CHECK_OK(lt_config_parse("{\"model_type\":\"qwen2\",\"hidden_size\":64,\"intermediate_size\":128,"
                             "\"num_hidden_layers\":2,\"num_attention_heads\":32,\"vocab_size\":100,"
                             "\"attention_bias\":false}",
                             "d", &c));
    CHECK(c.arch == LT_ARCH_QWEN2 && c.qkv_bias && !c.o_bias && c.n_kv_heads == 32 && c.head_dim == 2);
    CHECK(c.max_position_embeddings == 32768 && c.bos_token_id == -1 && c.n_eos == 0);
    check_layout_matches(&c);

    /* Qwen3: head_dim 128 when absent (not hidden/heads), q/k norms, attention_bias on q,k,v,o. */
    CHECK_OK(lt_config_parse("{\"architectures\":[\"Qwen3ForCausalLM\"],\"model_type\":\"qwen3\",\"hidden_size\":64,"
                             "\"intermediate_size\":128,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                             "\"num_key_value_heads\":2,\"vocab_size\":100,\"attention_bias\":true,"
                             "\"use_sliding_window\":true,\"sliding_window\":16}",
                             "d", &c));
    CHECK(c.arch == LT_ARCH_QWEN3 && c.head_dim == 128 && c.qk_norm && c.qkv_bias && c.o_bias && !c.mlp_bias);
    check_layout_matches(&c);
}

/* ---------------------------------------------------------------- round trip */

static void check_same(const lt_model_config *a, const lt_model_config *b, const char *what) {
    CHECKF(a->arch == b->arch && !strcmp(a->architecture, b->architecture) && !strcmp(a->model_type, b->model_type),
           "%s: arch", what);
    CHECKF(a->vocab_size == b->vocab_size && a->hidden_size == b->hidden_size &&
               a->intermediate_size == b->intermediate_size && a->n_layers == b->n_layers && a->n_heads == b->n_heads &&
               a->n_kv_heads == b->n_kv_heads && a->head_dim == b->head_dim &&
               a->max_position_embeddings == b->max_position_embeddings,
           "%s: sizes", what);
    CHECKF(a->rms_norm_eps == b->rms_norm_eps && a->rope_theta == b->rope_theta && a->rope_kind == b->rope_kind &&
               a->rope_factor == b->rope_factor && a->rope_low_freq_factor == b->rope_low_freq_factor &&
               a->rope_high_freq_factor == b->rope_high_freq_factor &&
               a->rope_original_max_position == b->rope_original_max_position,
           "%s: eps/rope (%.17g vs %.17g)", what, a->rms_norm_eps, b->rms_norm_eps);
    CHECKF(a->tie_word_embeddings == b->tie_word_embeddings && a->qkv_bias == b->qkv_bias && a->o_bias == b->o_bias &&
               a->mlp_bias == b->mlp_bias && a->qk_norm == b->qk_norm,
           "%s: flags", what);
    CHECKF(a->bos_token_id == b->bos_token_id && a->pad_token_id == b->pad_token_id && a->n_eos == b->n_eos &&
               !memcmp(a->eos_token_ids, b->eos_token_ids, sizeof(int64_t) * (size_t)a->n_eos),
           "%s: tokens", what);
    CHECKF(a->initializer_range == b->initializer_range && !strcmp(a->torch_dtype, b->torch_dtype), "%s: init/dtype",
           what);
}

static void round_trip(const lt_model_config *c, const char *what) {
    char path[4200];
    snprintf(path, sizeof path, "%s/test_config_rt.json", lt_test_tmpdir());
    CHECK_OK(lt_config_save(c, path));
    lt_model_config back;
    CHECK_OK(lt_config_load(path, &back));
    check_same(c, &back, what);
    /* The file reads as JSON with the keys transformers needs. */
    char *text;
    CHECK_OK(lt_read_file(path, 1 << 20, &text, NULL));
    CHECK(strstr(text, "\"hidden_act\": \"silu\"") && strstr(text, "\"architectures\": ["));
    CHECKF(!strstr(text, "0000000"), "%s: reals are written shortest: %s", what, text);
    free(text);
}

static void test_round_trip(void) {
    lt_model_config c;
    const char *all[] = {llama31_8b_instruct, mistral_7b_v01, qwen25_7b, qwen3_8b, qwen3_06b, llama32_1b_v5};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        CHECK_OK(lt_config_parse(all[i], "rt", &c));
        round_trip(&c, all[i] + 20);
    }
    /* Odd values: eps 1/3 needs 17 digits; pad id; Llama biases. */
    CHECK_OK(lt_config_parse("{\"architectures\":[\"LlamaForCausalLM\"]," TINY
                             ",\"rms_norm_eps\":0.3333333333333333,\"pad_token_id\":7,\"attention_bias\":true}",
                             "rt", &c));
    char path[4200];
    snprintf(path, sizeof path, "%s/test_config_rt.json", lt_test_tmpdir());
    CHECK_OK(lt_config_save(&c, path));
    lt_model_config back;
    CHECK_OK(lt_config_load(path, &back));
    check_same(&c, &back, "odd");

    /* Save refuses configs the architecture cannot express, and invalid ones. */
    lt_model_config bad = c;
    bad.qk_norm = true; /* Llama has no q/k norms */
    CHECK_ERR(lt_config_save(&bad, path), "not possible for LlamaForCausalLM");
    bad = c;
    bad.n_kv_heads = 3;
    CHECK_ERR(lt_config_save(&bad, path), "\"num_key_value_heads\" (3) must divide");
    bad = c;
    bad.head_dim = 0;
    CHECK_ERR(lt_config_save(&bad, path), "\"head_dim\"");
    CHECK(lt_config_n_params(&bad) == -1);
}

/* ---------------------------------------------------------------- malformed */

static void bad(const char *json, const char *needle) {
    lt_model_config c;
    lt_status st = lt_config_parse(json, "bad/config.json", &c);
    CHECKF(st != NULL, "accepted, expected \"%s\": %s", needle, json);
    if (!st) return;
    CHECKF(strstr(lt_status_msg(st), needle) != NULL, "message \"%s\" lacks \"%s\"", lt_status_msg(st), needle);
    CHECKF(strstr(lt_status_msg(st), "bad/config.json") != NULL, "message \"%s\" lacks the file", lt_status_msg(st));
    lt_status_free(st);
}

#define LL "{\"architectures\":[\"LlamaForCausalLM\"],"
#define SZ "\"intermediate_size\":128,\"num_hidden_layers\":2,\"vocab_size\":100"

static void test_malformed(void) {
    /* missing required keys, each named */
    bad(LL "\"intermediate_size\":128,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"vocab_size\":100}",
        "required key \"hidden_size\" is missing");
    bad(LL "\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"vocab_size\":100}",
        "\"intermediate_size\" is missing");
    bad(LL "\"hidden_size\":64,\"intermediate_size\":128,\"num_attention_heads\":4,\"vocab_size\":100}",
        "\"num_hidden_layers\" is missing");
    bad(LL "\"hidden_size\":64," SZ "}", "\"num_attention_heads\" is missing");
    bad(LL "\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2,\"num_attention_heads\":4}",
        "\"vocab_size\" is missing");
    bad(LL "\"hidden_size\":null," SZ ",\"num_attention_heads\":4}",
        "key \"hidden_size\": expected a positive integer");
    bad("{" TINY "}", "\"architectures\" (or \"model_type\") is missing");
    /* wrong types */
    bad(LL "\"hidden_size\":64," SZ ",\"num_attention_heads\":\"32\"}",
        "key \"num_attention_heads\": expected a positive integer (at most 1024), found \"32\" (a string)");
    bad(LL "\"hidden_size\":64.0," SZ ",\"num_attention_heads\":4}",
        "key \"hidden_size\": expected a positive integer (at most 1048576), found 64.0 (a floating-point number)");
    bad(LL "\"hidden_size\":64," SZ ",\"num_attention_heads\":true}", "\"num_attention_heads\": expected a positive "
                                                                      "integer (at most 1024), found true (a boolean)");
    bad(LL TINY ",\"tie_word_embeddings\":\"false\"}",
        "key \"tie_word_embeddings\": expected true or false, found \"false\"");
    bad(LL TINY ",\"rms_norm_eps\":\"1e-5\"}", "key \"rms_norm_eps\": expected a number in (0, 1]");
    bad(LL TINY ",\"bos_token_id\":\"<s>\"}", "key \"bos_token_id\"");
    bad("{\"architectures\":\"LlamaForCausalLM\"," TINY "}", "key \"architectures\": expected a list");
    bad(LL TINY ",\"rope_scaling\":\"llama3\"}", "key \"rope_scaling\": expected an object or null");
    /* unknown architecture */
    bad("{\"architectures\":[\"GPT2LMHeadModel\"]," TINY "}", "unknown architecture \"GPT2LMHeadModel\"");
    bad("{\"model_type\":\"gemma\"," TINY "}", "key \"model_type\": unknown architecture \"gemma\"");
    /* bad sizes */
    bad(LL "\"hidden_size\":64," SZ ",\"num_attention_heads\":0}", "key \"num_attention_heads\": expected a positive "
                                                                   "integer (at most 1024), found 0");
    bad(LL "\"hidden_size\":64,\"intermediate_size\":-5,\"num_hidden_layers\":2,\"vocab_size\":100,"
           "\"num_attention_heads\":4}",
        "key \"intermediate_size\": expected a positive integer (at most 4194304), found -5");
    bad(LL "\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":5000,\"vocab_size\":100,"
           "\"num_attention_heads\":4}",
        "\"num_hidden_layers\": expected a positive integer (at most 1024), found 5000");
    bad(LL "\"hidden_size\":2097152," SZ ",\"num_attention_heads\":4}", "\"hidden_size\"");
    bad(LL "\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2,\"vocab_size\":2147483648,"
           "\"num_attention_heads\":4}",
        "\"vocab_size\": expected a positive integer (at most 2147483647)");
    bad(LL "\"hidden_size\":66," SZ ",\"num_attention_heads\":4}", "heads not dividing hidden size");
    bad(LL TINY ",\"num_key_value_heads\":3}", "\"num_key_value_heads\" (3) must divide \"num_attention_heads\" (4)");
    bad(LL TINY ",\"num_key_value_heads\":8}", "\"num_key_value_heads\" (8) must divide");
    bad(LL TINY ",\"head_dim\":15}", "\"head_dim\" (15) must be even");
    bad(LL TINY ",\"max_position_embeddings\":0}", "\"max_position_embeddings\"");
    bad(LL TINY ",\"rms_norm_eps\":0}", "\"rms_norm_eps\": expected a number in (0, 1], found 0");
    bad(LL TINY ",\"rope_theta\":-10000.0}", "\"rope_theta\": expected a number greater than 0");
    bad(LL TINY ",\"initializer_range\":0}", "\"initializer_range\"");
    /* rope */
    bad(LL TINY ",\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4.0}}",
        "key \"rope_scaling.rope_type\": rope type \"yarn\" is not supported");
    bad(LL TINY ",\"rope_scaling\":{\"type\":\"linear\",\"factor\":2.0}}", "rope type \"linear\" is not supported");
    bad(LL TINY ",\"rope_parameters\":{\"rope_type\":\"dynamic\",\"rope_theta\":10000.0}}",
        "\"rope_parameters.rope_type\": rope type \"dynamic\"");
    bad(LL TINY ",\"rope_scaling\":{\"rope_type\":\"llama3\",\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,"
                "\"original_max_position_embeddings\":8192}}",
        "required key \"rope_scaling.factor\" is missing");
    bad(LL TINY ",\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,"
                "\"high_freq_factor\":4.0}}",
        "\"rope_scaling.original_max_position_embeddings\" is missing");
    bad(LL TINY ",\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":4.0,"
                "\"high_freq_factor\":4.0,\"original_max_position_embeddings\":8192}}",
        "\"rope_scaling.high_freq_factor\" (4) must be greater than");
    bad(LL TINY ",\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":-8.0,\"low_freq_factor\":1.0,"
                "\"high_freq_factor\":4.0,\"original_max_position_embeddings\":8192}}",
        "\"rope_scaling.factor\": expected a number greater than 0, found -8");
    bad(LL TINY ",\"partial_rotary_factor\":0.5}", "\"partial_rotary_factor\"");
    bad(LL TINY ",\"hidden_act\":\"gelu\"}", "key \"hidden_act\": activation \"gelu\" is not supported");
    /* invalid JSON: line:column of the error */
    bad("{\n  \"hidden_size\": 64,\n  \"vocab_size\": ,\n}", "bad/config.json:3:17: invalid JSON");
    bad("[1, 2]", "expected a JSON object");
    bad(LL TINY ",\"hidden_size\":64}", "bad/config.json:1:"); /* duplicate key */
    /* architectures and model_type disagree */
    bad(LL "\"model_type\":\"qwen2\"," TINY "}",
        "keys \"architectures\" (LlamaForCausalLM) and \"model_type\" (\"qwen2\") disagree");
    bad(LL "\"model_type\":\"llama4\"," TINY "}", "disagree");
    bad(LL TINY ",\"quantization_config\":{\"quant_method\":\"gptq\",\"bits\":4}}",
        "key \"quantization_config\": this is a pre-quantized checkpoint (quant_method \"gptq\")");
    /* token ids */
    bad(LL TINY ",\"eos_token_id\":[1, \"2\"]}", "key \"eos_token_id[1]\": expected a token id in [0, 100)");
    bad(LL TINY ",\"eos_token_id\":[1, 2.5]}", "\"eos_token_id[1]\"");
    bad(LL TINY ",\"eos_token_id\":100}", "key \"eos_token_id\": expected a token id in [0, 100)");
    bad(LL TINY ",\"eos_token_id\":[1,2,3,4,5,6,7,8,9]}", "at most 8 such ids");
    bad(LL TINY ",\"bos_token_id\":-3}", "\"bos_token_id\"");
    bad(LL TINY ",\"pad_token_id\":100}", "\"pad_token_id\"");
    bad(LL TINY ",\"torch_dtype\":\"a-very-long-dtype-name\"}", "\"torch_dtype\"");
    bad(LL TINY ",\"torch_dtype\":16}", "\"torch_dtype\": expected a string");

    /* error codes: unsupported vs malformed */
    lt_model_config c;
    lt_status st = lt_config_parse(LL TINY ",\"rope_scaling\":{\"rope_type\":\"yarn\"}}", "x", &c);
    CHECK(lt_status_code(st) == LT_ERR_UNSUPPORTED);
    lt_status_free(st);
    st = lt_config_parse("{\"architectures\":[\"Gemma3ForCausalLM\"]," TINY "}", "x", &c);
    CHECK(lt_status_code(st) == LT_ERR_UNSUPPORTED);
    lt_status_free(st);
    st = lt_config_parse(LL TINY ",\"num_key_value_heads\":3}", "x", &c);
    CHECK(lt_status_code(st) == LT_ERR_FORMAT);
    lt_status_free(st);
    /* Keys an architecture does not have are ignored, like any unknown key (Llama has no window). */
    CHECK_OK(lt_config_parse(LL TINY ",\"sliding_window\":\"4096\",\"some_new_key\":[{}]}", "x", &c));
    /* Qwen's sliding_window is type-checked even when unused. */
    CHECK_ERR(lt_config_parse("{\"model_type\":\"qwen2\"," TINY ",\"num_key_value_heads\":2,\"sliding_window\":\"x\"}",
                              "q", &c),
              "key \"sliding_window\"");
    /* load: a missing file names the path */
    CHECK_ERR(lt_config_load("/nonexistent/dir/config.json", &c), "/nonexistent/dir/config.json");
}

int main(void) {
    lt_model_config c;
    test_llama31(&c);
    test_mistral(&c);
    test_qwen25(&c);
    test_qwen3(&c);
    test_v5();
    test_defaults();
    test_round_trip();
    test_malformed();
    TEST_MAIN_END();
}
