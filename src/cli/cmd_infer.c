/* `loft logits` and `loft generate`: the CPU forward pass from the command line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "model/model.h"

static lt_opt logits_opts[] = {
    {"model", "DIR", "HF model directory (required)", NULL},
    {"ids", "1,2,3", "input token ids (required)", NULL},
    {"out", "FILE", "output: float32 little-endian, [n_ids x vocab] (required)", NULL},
    {"budget-gb", "GB", "memory budget for the pool (default 128)", NULL},
    {"quant", "FORMAT", "hold Linear weights quantized: nf4, nf4_nodq, mxfp4, nvfp4, q8_0, bf16 (default: f32)", NULL},
    {"quant-embeddings", NULL, "with --quant: quantize the token embedding table too (and lm_head when tied)", NULL},
    {"quant-lm-head", NULL, "with --quant: quantize an untied lm_head too", NULL},
    {"quant-cache", "DIR", "with --quant: load the quantized model from DIR, writing it there first when absent", NULL},
    {NULL, NULL, NULL, NULL},
};
static const lt_cmd_info logits_cmd = {"logits", "run the forward pass and write the logits of every position",
                                       "--model DIR --ids 1,2,3 --out FILE", logits_opts};

static lt_opt generate_opts[] = {
    {"model", "DIR", "HF model directory (required)", NULL},
    {"prompt-ids", "1,2,3", "prompt token ids (required)", NULL},
    {"max-tokens", "N", "number of tokens to generate (default 32)", NULL},
    {"temperature", "T", "0 = greedy (default 0)", NULL},
    {"top-k", "K", "sample from the K most likely tokens (default 0 = off)", NULL},
    {"top-p", "P", "nucleus sampling threshold (default 1 = off)", NULL},
    {"seed", "S", "sampling seed (default 0); the same seed gives the same tokens", NULL},
    {"ignore-eos", NULL, "keep generating after an end-of-sequence token", NULL},
    {"budget-gb", "GB", "memory budget for the pool (default 128)", NULL},
    {"quant", "FORMAT", "hold Linear weights quantized: nf4, nf4_nodq, mxfp4, nvfp4, q8_0, bf16 (default: f32)", NULL},
    {"quant-embeddings", NULL, "with --quant: quantize the token embedding table too (and lm_head when tied)", NULL},
    {"quant-lm-head", NULL, "with --quant: quantize an untied lm_head too", NULL},
    {"quant-cache", "DIR", "with --quant: load the quantized model from DIR, writing it there first when absent", NULL},
    {NULL, NULL, NULL, NULL},
};
static const lt_cmd_info generate_cmd = {
    "generate", "generate tokens from prompt ids; prints the new ids on one line",
    "--model DIR --prompt-ids 1,2,3 [--max-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S]",
    generate_opts};

/* Opens the pool and loads the model; prints the failure itself. */
static int lt_open_model(const lt_cmd_info *cmd, lt_pool **pool, lt_model **m) {
    double gb;
    if (!lt_opt_float(cmd, "budget-gb", 128.0, 0.001, 1e6, &gb)) return 2;
    lt_load_opts lo = {.quantize = false};
    const char *qf = lt_opt_get(cmd, "quant");
    if (qf) {
        lo.quantize = true;
        if (!lt_qformat_from_name(qf, &lo.format)) {
            fprintf(stderr, "loft %s: --quant: expected nf4, nf4_nodq, mxfp4, nvfp4, q8_0 or bf16, got '%s'\n",
                    cmd->name, qf);
            return 2;
        }
        lo.quantize_embeddings = lt_opt_get(cmd, "quant-embeddings") != NULL;
        lo.quantize_lm_head = lt_opt_get(cmd, "quant-lm-head") != NULL;
        lo.cache_dir = lt_opt_get(cmd, "quant-cache");
    } else if (lt_opt_get(cmd, "quant-embeddings") || lt_opt_get(cmd, "quant-lm-head") || lt_opt_get(cmd, "quant-cache")) {
        fprintf(stderr, "loft %s: --quant-embeddings, --quant-lm-head and --quant-cache need --quant FORMAT\n", cmd->name);
        return 2;
    }
    lt_status st = lt_pool_create((int64_t)(gb * 1e9), pool);
    if (st) return lt_cli_fail(cmd->name, st);
    st = lt_model_load_opts(lt_opt_get(cmd, "model"), *pool, lt_backend_cpu(), &lo, m);
    if (st) {
        lt_pool_destroy(*pool);
        return lt_cli_fail(cmd->name, st);
    }
    if (qf) {
        lt_quant_summary q = lt_model_quant_summary(*m);
        char a[32], b[32];
        fprintf(stderr, "loft %s: %lld weights in %s (%s), %lld kept f32 (%s)%s\n", cmd->name,
                (long long)q.n_quantized, lt_qformat_name(lo.format), lt_fmt_bytes(q.quantized_bytes, a, sizeof a),
                (long long)q.n_kept, lt_fmt_bytes(q.f32_bytes, b, sizeof b),
                q.n_unaligned ? " — some inputs are not a multiple of the block size and stay f32" : "");
    }
    return 0;
}

int lt_cmd_logits(int argc, char **argv) {
    const char *pos[1];
    int npos;
    int rc = lt_args_parse(&logits_cmd, argc, argv, pos, 0, &npos);
    if (rc >= 0) return rc;
    if (!lt_opt_get(&logits_cmd, "model") || !lt_opt_get(&logits_cmd, "ids") || !lt_opt_get(&logits_cmd, "out")) {
        fprintf(stderr, "loft logits: --model, --ids and --out are required; see 'loft logits --help'\n");
        return 2;
    }
    int32_t *ids;
    int64_t n;
    if (!lt_parse_ids("logits", "ids", lt_opt_get(&logits_cmd, "ids"), &ids, &n)) return 2;
    lt_pool *pool;
    lt_model *m;
    if ((rc = lt_open_model(&logits_cmd, &pool, &m))) {
        free(ids);
        return rc;
    }
    int64_t vocab = lt_model_get_config(m)->vocab_size, bytes;
    lt_status st = NULL;
    float *logits = NULL;
    lt_kv_cache *kv = NULL;
    if (!lt_mul_i64(n, vocab * (int64_t)sizeof(float), &bytes))
        st = lt_errorf(LT_ERR_INVALID_ARG, "%lld ids x vocab %lld logits overflow", (long long)n, (long long)vocab);
    if (!st) st = lt_pool_alloc(pool, LT_POOL_ACTIVATIONS, bytes, "logits output", (void **)&logits);
    if (!st) st = lt_kv_create(m, pool, n, &kv);
    if (!st) st = lt_model_forward(m, kv, ids, n, logits, true);
    if (!st) st = lt_write_file_atomic(lt_opt_get(&logits_cmd, "out"), logits, bytes);
    lt_kv_free(kv);
    lt_pool_free(pool, logits);
    lt_model_free(m);
    lt_pool_destroy(pool);
    free(ids);
    return st ? lt_cli_fail("logits", st) : 0;
}

typedef struct lt_print_ctx {
    int64_t count;
    double t_first; /* when the first new token arrived: prefill + one sample */
} lt_print_ctx;

static bool lt_print_token(void *ctx, int32_t token) {
    lt_print_ctx *c = ctx;
    if (c->count == 0) c->t_first = lt_time_sec();
    printf(c->count ? " %d" : "%d", token);
    fflush(stdout);
    c->count++;
    return true;
}

int lt_cmd_generate(int argc, char **argv) {
    const char *pos[1];
    int npos;
    int rc = lt_args_parse(&generate_cmd, argc, argv, pos, 0, &npos);
    if (rc >= 0) return rc;
    if (!lt_opt_get(&generate_cmd, "model") || !lt_opt_get(&generate_cmd, "prompt-ids")) {
        fprintf(stderr, "loft generate: --model and --prompt-ids are required; see 'loft generate --help'\n");
        return 2;
    }
    int64_t max_new, top_k, seed;
    double temp, top_p;
    if (!lt_opt_int(&generate_cmd, "max-tokens", 32, 1, 1 << 24, &max_new) ||
        !lt_opt_int(&generate_cmd, "top-k", 0, 0, 1 << 30, &top_k) ||
        !lt_opt_int(&generate_cmd, "seed", 0, 0, INT64_MAX, &seed) ||
        !lt_opt_float(&generate_cmd, "temperature", 0.0, 0.0, 100.0, &temp) ||
        !lt_opt_float(&generate_cmd, "top-p", 1.0, 1e-6, 1.0, &top_p))
        return 2;
    int32_t *prompt;
    int64_t n_prompt;
    if (!lt_parse_ids("generate", "prompt-ids", lt_opt_get(&generate_cmd, "prompt-ids"), &prompt, &n_prompt)) return 2;
    lt_pool *pool;
    lt_model *m;
    if ((rc = lt_open_model(&generate_cmd, &pool, &m))) {
        free(prompt);
        return rc;
    }
    lt_sampler s;
    lt_sampler_init(&s, (float)temp, (int)top_k, (float)top_p, (uint64_t)seed);
    int32_t *out = malloc((size_t)max_new * sizeof *out);
    int64_t n_out = 0;
    lt_print_ctx printed = {0, 0.0};
    double t0 = lt_time_sec();
    lt_status st = out ? NULL : lt_errorf(LT_ERR_NOMEM, "out of memory for %lld tokens", (long long)max_new);
    if (!st)
        st = lt_generate(m, pool, prompt, n_prompt, max_new, &s, !lt_opt_get(&generate_cmd, "ignore-eos"), out, &n_out,
                         lt_print_token, &printed);
    double t_end = lt_time_sec();
    printf("\n");
    fflush(stdout);
    if (!st && n_out > 0) {
        double t_pre = printed.t_first - t0, t_dec = t_end - printed.t_first;
        fprintf(stderr, "loft generate: prompt %lld tokens in %.3f s (%.1f tok/s), %lld new tokens at %.1f tok/s\n",
                (long long)n_prompt, t_pre, t_pre > 0 ? (double)n_prompt / t_pre : 0.0, (long long)n_out,
                n_out > 1 && t_dec > 0 ? (double)(n_out - 1) / t_dec : 0.0);
    }
    free(out);
    lt_model_free(m);
    lt_pool_destroy(pool);
    free(prompt);
    return st ? lt_cli_fail("generate", st) : 0;
}
