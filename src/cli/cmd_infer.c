/* `loft logits`, and the model loading every command that runs a model shares. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "model/model.h"

static lt_opt logits_opts[] = {
    {"model", "DIR", "HF model directory, quantized directory or .gguf file (required)", NULL},
    {"ids", "1,2,3", "input token ids (required)", NULL},
    {"out", "FILE", "output: float32 little-endian, [n_ids x vocab] (required)", NULL},
    LT_MODEL_LOAD_OPTS,
    {NULL, NULL, NULL, NULL},
};
static const lt_cmd_info logits_cmd = {"logits", "run the forward pass and write the logits of every position",
                                       "--model DIR --ids 1,2,3 --out FILE", logits_opts};

/* Opens the pool and loads the model; prints the failure itself. */
int lt_cli_open_model(const lt_cmd_info *cmd, lt_pool **pool, lt_model **m) {
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
        *pool = NULL;
        *m = NULL;
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
    if ((rc = lt_cli_open_model(&logits_cmd, &pool, &m))) {
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
