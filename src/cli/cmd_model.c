/* `loft make-model` and `loft inspect`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "io/io.h"
#include "model/model.h"
#include "pool/pool.h"
#include "quant/quant.h"

/* "1000000", "64MB", "5GB", "512MiB" -> bytes (decimal units as HF's max_shard_size; *iB binary). */
static bool lt_parse_size(const char *s, int64_t *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || v <= 0) return false;
    while (*end == ' ') end++;
    static const struct {
        const char *suf;
        double mul;
    } units[] = {{"", 1},     {"B", 1},         {"KB", 1e3},          {"MB", 1e6},           {"GB", 1e9},
                 {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (!strcasecmp(end, units[i].suf)) {
            double b = v * units[i].mul;
            if (b < 1 || b > 9e18) return false;
            *out = (int64_t)b;
            return true;
        }
    return false;
}

static lt_opt make_opts[] = {
    {"config", "CONFIG.json", "HF config.json describing the architecture (required)", NULL},
    {"out", "DIR", "output model directory (required)", NULL},
    {"seed", "S", "random seed (default 0)", NULL},
    {"dtype", "bf16|f32|f16", "weight dtype in the files (default bf16)", NULL},
    {"tokenizer", "DIR", "copy tokenizer.json and tokenizer_config.json from DIR", NULL},
    {"shard-size", "BYTES", "largest shard, e.g. 5GB or 200MB (default 5GB, as HF)", NULL},
    {NULL, NULL, NULL, NULL},
};
static const lt_cmd_info make_cmd = {
    "make-model", "write a complete HF-format model directory with random weights",
    "--config CONFIG.json --out DIR [--seed S] [--dtype bf16|f32|f16] [--tokenizer DIR] [--shard-size BYTES]",
    make_opts};

int lt_cmd_make_model(int argc, char **argv) {
    const char *pos[1];
    int npos;
    int rc = lt_args_parse(&make_cmd, argc, argv, pos, 0, &npos);
    if (rc >= 0) return rc;
    const char *config = lt_opt_get(&make_cmd, "config"), *out = lt_opt_get(&make_cmd, "out");
    if (!config || !out) {
        fprintf(stderr, "loft make-model: --config and --out are required; see 'loft make-model --help'\n");
        return 2;
    }
    int64_t seed;
    if (!lt_opt_int(&make_cmd, "seed", 0, 0, INT64_MAX, &seed)) return 2;
    lt_make_opts mo = {.seed = (uint64_t)seed, .dtype = LT_DTYPE_BF16, .shard_bytes = 0, .tokenizer_dir = NULL};
    const char *dt = lt_opt_get(&make_cmd, "dtype");
    if (dt) {
        if (!strcasecmp(dt, "bf16") || !strcasecmp(dt, "bfloat16")) mo.dtype = LT_DTYPE_BF16;
        else if (!strcasecmp(dt, "f32") || !strcasecmp(dt, "float32")) mo.dtype = LT_DTYPE_F32;
        else if (!strcasecmp(dt, "f16") || !strcasecmp(dt, "float16")) mo.dtype = LT_DTYPE_F16;
        else {
            fprintf(stderr, "loft make-model: --dtype: expected bf16, f32 or f16, got '%s'\n", dt);
            return 2;
        }
    }
    const char *ss = lt_opt_get(&make_cmd, "shard-size");
    if (ss && !lt_parse_size(ss, &mo.shard_bytes)) {
        fprintf(stderr, "loft make-model: --shard-size: expected a positive size like 200MB or 5GB, got '%s'\n", ss);
        return 2;
    }
    mo.tokenizer_dir = lt_opt_get(&make_cmd, "tokenizer");
    lt_model_config cfg;
    lt_status st = lt_config_load(config, &cfg);
    if (st) return lt_cli_fail("make-model", st);
    double t0 = lt_time_sec();
    st = lt_model_make_random(&cfg, &mo, out);
    if (st) return lt_cli_fail("make-model", st);
    fprintf(stderr, "loft make-model: wrote %s (%s, %.1fM parameters, %s) in %.1f s\n", out, cfg.architecture,
            (double)lt_config_n_params(&cfg) / 1e6, lt_dtype_name(mo.dtype), lt_time_sec() - t0);
    return 0;
}

/* ---------------------------------------------------------------- inspect */

static lt_opt inspect_opts[] = {
    {"no-tensors", NULL, "print only the summary, not one line per tensor", NULL},
    {NULL, NULL, NULL, NULL},
};
static const lt_cmd_info inspect_cmd = {"inspect", "list tensors, dtypes, shapes, bytes and metadata",
                                        "PATH   (a .safetensors file or a model directory)", inspect_opts};

typedef struct lt_inspect_totals {
    int64_t n, params, bytes;
} lt_inspect_totals;

static void lt_inspect_tensor(const lt_st_tensor *t, bool print, lt_inspect_totals *tot) {
    char shape[128], b[32];
    lt_shape_str(t->shape, t->ndim > LT_MAX_DIMS ? LT_MAX_DIMS : t->ndim, shape, sizeof shape);
    if (t->ndim > LT_MAX_DIMS) snprintf(shape, sizeof shape, "(%d dims)", t->ndim);
    if (print) printf("  %-56s %-8s %-22s %12s\n", t->name, t->dtype_name, shape, lt_fmt_bytes(t->nbytes, b, sizeof b));
    tot->n++;
    tot->params += t->numel;
    tot->bytes += t->nbytes;
}

/* What the model's Linear weights (embedding and lm_head excluded, as --quant does by default)
 * would take in each base format: exact bytes from the quant layouts, and bits per parameter. */
static void lt_inspect_quant_sizes(const lt_model_config *cfg) {
    int64_t n = lt_model_weight_specs(cfg, NULL, 0);
    lt_weight_spec *specs = calloc((size_t)n, sizeof *specs);
    if (!specs) return;
    lt_model_weight_specs(cfg, specs, n);
    printf("  Linear weights as a frozen base (embedding and lm_head not included):\n");
    for (int f = 0; f < LT_Q_COUNT; f++) {
        int64_t bytes = 0, params = 0, unaligned = 0;
        for (int64_t i = 0; i < n; i++) {
            const lt_weight_spec *w = &specs[i];
            if (w->kind != LT_W_MATRIX || w->ndim != 2 || !strcmp(w->name, "model.embed_tokens.weight") ||
                !strcmp(w->name, "lm_head.weight"))
                continue;
            lt_qlayout lay;
            lt_status st = lt_qlayout_get((lt_qformat)f, w->shape[0], w->shape[1], &lay);
            params += w->shape[0] * w->shape[1];
            if (st) { /* input size not a block multiple: stays f32 */
                lt_status_free(st);
                bytes += w->shape[0] * w->shape[1] * 4;
                unaligned++;
            } else {
                bytes += lay.total_bytes;
            }
        }
        char b[32];
        printf("    %-9s %10s  %6.3f bits/param (format: %.3f)%s\n", lt_qformat_name((lt_qformat)f),
               lt_fmt_bytes(bytes, b, sizeof b), params ? (double)bytes * 8.0 / (double)params : 0.0,
               lt_qformat_bits_per_param((lt_qformat)f), unaligned ? " — some inputs not block multiples, kept f32" : "");
    }
    free(specs);
}

static void lt_inspect_meta(const lt_st_file *f) {
    int64_t nm = lt_st_metadata_count(f);
    for (int64_t i = 0; i < nm; i++) {
        const char *k, *v;
        if (lt_st_metadata_get(f, i, &k, &v)) printf("  metadata %s = %.200s\n", k, v);
    }
}

int lt_cmd_inspect(int argc, char **argv) {
    const char *pos[1];
    int npos;
    int rc = lt_args_parse(&inspect_cmd, argc, argv, pos, 1, &npos);
    if (rc >= 0) return rc;
    if (npos != 1) {
        fprintf(stderr, "loft inspect: give one PATH (a .safetensors file or a model directory)\n");
        return 2;
    }
    bool print = !lt_opt_get(&inspect_cmd, "no-tensors");
    struct stat sb;
    if (stat(pos[0], &sb) != 0) {
        fprintf(stderr, "loft inspect: %s: no such file or directory\n", pos[0]);
        return 1;
    }
    lt_inspect_totals tot = {0, 0, 0};
    char b[32];
    if (S_ISDIR(sb.st_mode)) {
        char path[4096];
        snprintf(path, sizeof path, "%s/config.json", pos[0]);
        lt_model_config cfg;
        lt_status st = lt_config_load(path, &cfg);
        if (st) return lt_cli_fail("inspect", st);
        printf("%s: %s (%s)\n", pos[0], cfg.architecture, cfg.model_type);
        printf("  vocab %lld, hidden %lld, intermediate %lld, layers %lld, heads %lld (kv %lld), head_dim %lld\n",
               (long long)cfg.vocab_size, (long long)cfg.hidden_size, (long long)cfg.intermediate_size,
               (long long)cfg.n_layers, (long long)cfg.n_heads, (long long)cfg.n_kv_heads, (long long)cfg.head_dim);
        printf("  rope theta %g%s, rms eps %g, tied embeddings %s, qkv bias %s, qk norm %s\n", cfg.rope_theta,
               cfg.rope_kind == LT_ROPE_LLAMA3 ? " (llama3 scaling)" : "", cfg.rms_norm_eps,
               cfg.tie_word_embeddings ? "yes" : "no", cfg.qkv_bias ? "yes" : "no", cfg.qk_norm ? "yes" : "no");
        lt_st_set *set;
        st = lt_st_set_open_dir(pos[0], &set);
        if (st) return lt_cli_fail("inspect", st);
        printf("  %lld file(s)\n", (long long)lt_st_set_nfiles(set));
        for (int64_t i = 0; i < lt_st_set_nfiles(set); i++) {
            const lt_st_file *f = lt_st_set_file(set, i);
            printf("  file %s\n", lt_st_path(f));
            lt_inspect_meta(f);
        }
        for (int64_t i = 0; i < lt_st_set_count(set); i++) lt_inspect_tensor(lt_st_set_get(set, i), print, &tot);
        lt_st_set_close(set);
        int64_t expect = lt_config_n_params(&cfg);
        printf("total: %lld tensors, %lld parameters (config predicts %lld), %s\n", (long long)tot.n,
               (long long)tot.params, (long long)expect, lt_fmt_bytes(tot.bytes, b, sizeof b));
        lt_inspect_quant_sizes(&cfg);
        return 0;
    }
    lt_st_file *f;
    lt_status st = lt_st_open(pos[0], &f);
    if (st) return lt_cli_fail("inspect", st);
    printf("%s\n", pos[0]);
    lt_inspect_meta(f);
    for (int64_t i = 0; i < lt_st_count(f); i++) lt_inspect_tensor(lt_st_get(f, i), print, &tot);
    printf("total: %lld tensors, %lld parameters, %s\n", (long long)tot.n, (long long)tot.params,
           lt_fmt_bytes(tot.bytes, b, sizeof b));
    lt_st_close(f);
    return 0;
}
