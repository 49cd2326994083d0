/* `loft quantize`: an HF model directory -> a quantized model directory (lt_model_quantize_dir),
 * which `loft logits/generate --model` then load by mmap with no re-quantization. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli/cli.h"
#include "model/model.h"

static lt_opt quantize_opts[] = {
    {"model", "DIR", "HF model directory to quantize (required)", NULL},
    {"format", "FORMAT", "nf4, nf4_nodq, mxfp4, nvfp4, q8_0 or bf16 (required)", NULL},
    {"out", "DIR", "output directory (required); must be absent or empty unless --force", NULL},
    {"quantize-embeddings", NULL, "quantize the token embedding table too (and lm_head when tied)", NULL},
    {"quantize-lm-head", NULL, "quantize an untied lm_head too", NULL},
    {"force", NULL, "replace an existing non-empty --out directory (of files only)", NULL},
    {"shard-size", "BYTES", "largest output file, e.g. 5GB or 200MB (default 5GB, as HF)", NULL},
    {"budget-gb", "GB", "memory budget for the pool (default 128); quantizing holds one tensor", NULL},
    {NULL, NULL, NULL, NULL},
};
static const lt_cmd_info quantize_cmd = {
    "quantize", "write a quantized copy of a model that loads by mmap, without quantizing again",
    "--model DIR --format nf4|nf4_nodq|mxfp4|nvfp4|q8_0|bf16 --out DIR [--quantize-embeddings] [--quantize-lm-head] "
    "[--force]",
    quantize_opts};

/* "1000000", "200MB", "5GB", "512MiB" -> bytes. */
static bool lt_quant_parse_size(const char *s, int64_t *out) {
    char *end;
    double v = strtod(s, &end);
    static const struct {
        const char *suf;
        double mul;
    } units[] = {{"", 1},     {"B", 1},        {"KB", 1e3},        {"MB", 1e6},
                 {"GB", 1e9}, {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}};
    if (end == s || !(v > 0)) return false;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (!strcasecmp(end, units[i].suf) && v * units[i].mul >= 1 && v * units[i].mul <= 9e18) {
            *out = (int64_t)(v * units[i].mul);
            return true;
        }
    return false;
}

typedef struct lt_quant_progress {
    double t0, last;
    bool tty;
    int last_decile;
} lt_quant_progress;

/* One updating line on a terminal; a line per 10% of the source otherwise (logs). */
static void lt_quant_report(void *ctx, int64_t done, int64_t total, const char *name, int64_t bytes_done,
                            int64_t bytes_total) {
    lt_quant_progress *p = ctx;
    double now = lt_time_sec(), dt = now - p->t0;
    int decile = bytes_total > 0 ? (int)(bytes_done * 10 / bytes_total) : 10;
    if (p->tty ? (now - p->last < 0.2 && done < total) : decile == p->last_decile) return;
    p->last = now;
    p->last_decile = decile;
    fprintf(stderr, "%sloft quantize: tensor %lld/%lld  %5.1f%%  %7.1f MB/s  %-60.60s%s", p->tty ? "\r" : "",
            (long long)done, (long long)total,
            bytes_total > 0 ? 100.0 * (double)bytes_done / (double)bytes_total : 100.0,
            dt > 0 ? (double)bytes_done / dt / 1e6 : 0.0, name, p->tty ? (done == total ? "\n" : "") : "\n");
    fflush(stderr);
}

int lt_cmd_quantize(int argc, char **argv) {
    const char *pos[1];
    int npos;
    int rc = lt_args_parse(&quantize_cmd, argc, argv, pos, 0, &npos);
    if (rc >= 0) return rc;
    const char *model = lt_opt_get(&quantize_cmd, "model"), *fmt = lt_opt_get(&quantize_cmd, "format");
    const char *out = lt_opt_get(&quantize_cmd, "out");
    if (!model || !fmt || !out) {
        fprintf(stderr, "loft quantize: --model, --format and --out are required; see 'loft quantize --help'\n");
        return 2;
    }
    lt_load_opts lo = {.quantize = true,
                       .quantize_embeddings = lt_opt_get(&quantize_cmd, "quantize-embeddings") != NULL,
                       .quantize_lm_head = lt_opt_get(&quantize_cmd, "quantize-lm-head") != NULL};
    if (!lt_qformat_from_name(fmt, &lo.format)) {
        fprintf(stderr, "loft quantize: --format: expected nf4, nf4_nodq, mxfp4, nvfp4, q8_0 or bf16, got '%s'\n", fmt);
        return 2;
    }
    lt_quant_progress prog = {.t0 = lt_time_sec(), .tty = isatty(2), .last_decile = -1};
    lt_quantize_dir_opts qo = {
        .force = lt_opt_get(&quantize_cmd, "force") != NULL, .progress = lt_quant_report, .progress_ctx = &prog};
    const char *ss = lt_opt_get(&quantize_cmd, "shard-size");
    if (ss && !lt_quant_parse_size(ss, &qo.shard_bytes)) {
        fprintf(stderr, "loft quantize: --shard-size: expected a positive size like 200MB or 5GB, got '%s'\n", ss);
        return 2;
    }
    double gb;
    if (!lt_opt_float(&quantize_cmd, "budget-gb", 128.0, 0.001, 1e6, &gb)) return 2;
    lt_pool *pool;
    lt_status st = lt_pool_create((int64_t)(gb * 1e9), &pool);
    if (st) return lt_cli_fail("quantize", st);
    lt_quantize_stats s;
    st = lt_model_quantize_dir(model, &lo, out, &qo, pool, &s);
    lt_pool_destroy(pool);
    if (st) return lt_cli_fail("quantize", st);

    /* whole-model bits per parameter: every tensor written, over the config's parameter count */
    lt_model_config cfg;
    char *cpath = lt_path_join(out, "config.json");
    int64_t params = -1;
    if (cpath && !(st = lt_config_load(cpath, &cfg))) params = lt_config_n_params(&cfg);
    lt_status_free(st);
    free(cpath);
    char a[32], b[32], c[32], d[32];
    printf("loft quantize: wrote %s (%s) in %.1f s\n", out, lt_qformat_name(lo.format), s.seconds);
    printf("  tensors: %lld weights quantized (%.3f bits/param), %lld matrices kept in their source dtype%s, "
           "%lld tensors in %lld file(s)\n",
           (long long)s.n_quantized,
           s.params_quantized ? (double)s.quantized_bytes * 8.0 / (double)s.params_quantized : 0.0, (long long)s.n_kept,
           s.n_unaligned ? " (some inputs are not a multiple of the block size)" : "", (long long)s.n_tensors,
           (long long)s.n_files);
    printf("  bytes: source %s -> %s (quantized weights %s, kept tensors %s)\n",
           lt_fmt_bytes(s.source_bytes, a, sizeof a), lt_fmt_bytes(s.out_bytes, b, sizeof b),
           lt_fmt_bytes(s.quantized_bytes, c, sizeof c), lt_fmt_bytes(s.kept_bytes, d, sizeof d));
    if (params > 0)
        printf("  whole model: %.3f bits per parameter (%lld parameters)\n",
               (double)(s.quantized_bytes + s.kept_bytes) * 8.0 / (double)params, (long long)params);
    printf("  source sha256: %s\n  source fingerprint: %s\n", s.source_sha256, s.source_fingerprint);
    printf("  %.1f MB/s of source\n", s.seconds > 0 ? (double)s.source_bytes / s.seconds / 1e6 : 0.0);
    return 0;
}
