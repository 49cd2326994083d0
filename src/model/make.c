/* Random-weight HF model directories for tests and benchmarks: config.json,
 * generation_config.json, safetensors weights (one file or shards + index) and, optionally, the
 * tokenizer files copied from another model.
 *
 * Values: matrices and biases ~ normal(0, initializer_range), norms = 1. Every tensor is split into
 * fixed chunks of LT_MAKE_CHUNK elements and each chunk is drawn from its own Philox key derived
 * from (seed, tensor index, chunk index), so the f32 values never depend on the file dtype, the
 * sharding or the thread count; the file dtype is a rounding of those values. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/model.h"

#define LT_MAKE_CHUNK 4096
#define LT_MAKE_TOKENIZER_MAX_BYTES (1LL << 30) /* tokenizer.json of real models: 2-35 MB */
#define LT_MAKE_DOMAIN 0x6C6F66746D616B65ULL    /* "loftmake": keeps these keys apart from plain lt_rng streams */

/* A 64-bit key from (key, x) through the Philox bijection. */
static uint64_t lt_make_derive(uint64_t key, uint64_t x) {
    uint32_t o[4];
    lt_philox4x32(key, x, o);
    return (uint64_t)o[0] | (uint64_t)o[1] << 32;
}

typedef struct lt_make_fill {
    uint64_t tensor_key;
    lt_weight_kind kind;
    float std;
    int64_t numel;
    lt_dtype dtype;
    void *dst;
} lt_make_fill;

/* Fills chunks [begin, end) of one tensor. */
static void lt_make_fill_range(void *ctx, int64_t begin, int64_t end) {
    const lt_make_fill *f = ctx;
    float tmp[LT_MAKE_CHUNK];
    const int64_t esz = lt_dtype_size(f->dtype);
    for (int64_t c = begin; c < end; c++) {
        int64_t off = c * LT_MAKE_CHUNK;
        int64_t n = f->numel - off < LT_MAKE_CHUNK ? f->numel - off : LT_MAKE_CHUNK;
        if (f->kind == LT_W_NORM) {
            for (int64_t i = 0; i < n; i++) tmp[i] = 1.0f;
        } else {
            lt_rng r;
            lt_rng_init(&r, lt_make_derive(f->tensor_key, (uint64_t)c));
            for (int64_t i = 0; i < n; i++) tmp[i] = f->std * lt_rng_normal(&r);
        }
        lt_convert_from_f32(tmp, (char *)f->dst + off * esz, f->dtype, n);
    }
}

/* ---------------------------------------------------------------- directory handling */

static bool lt_file_exists(const char *dir, const char *name) {
    char p[PATH_MAX];
    struct stat sb;
    if (snprintf(p, sizeof p, "%s/%s", dir, name) >= (int)sizeof p) return false;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static bool lt_is_weight_file(const char *name) {
    size_t n = strlen(name);
    if (!strcmp(name, "model.safetensors") || !strcmp(name, "model.safetensors.index.json")) return true;
    /* model-00001-of-00003.safetensors */
    return n > 6 + 12 && !strncmp(name, "model-", 6) && strstr(name, "-of-") && !strcmp(name + n - 12, ".safetensors");
}

/* out_dir may be absent, empty, or an earlier model directory (it has a config.json); anything
 * else is somebody's data. Stale weight files are removed so that an old index cannot shadow a
 * new single file (or old shards mix with new ones). */
static lt_status lt_prepare_out_dir(const char *dir) {
    struct stat sb;
    if (stat(dir, &sb) != 0) return lt_mkdir_p(dir);
    if (!S_ISDIR(sb.st_mode)) return lt_errorf(LT_ERR_INVALID_ARG, "%s: exists and is not a directory", dir);
    DIR *d = opendir(dir);
    if (!d) return lt_errorf(LT_ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
    bool empty = true;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = false;
    closedir(d);
    if (empty) return NULL;
    if (!lt_file_exists(dir, "config.json"))
        return lt_errorf(LT_ERR_INVALID_ARG,
                         "%s: directory is not empty and holds no config.json, so it is not a model directory; "
                         "refusing to write into it (choose a new or empty directory)",
                         dir);
    d = opendir(dir);
    if (!d) return lt_errorf(LT_ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
    lt_status st = NULL;
    while (!st && (e = readdir(d))) {
        if (!lt_is_weight_file(e->d_name)) continue;
        char p[PATH_MAX];
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p) continue;
        if (unlink(p) != 0)
            st = lt_errorf(LT_ERR_IO, "%s: cannot remove the old %s: %s", dir, e->d_name, strerror(errno));
    }
    closedir(d);
    return st;
}

static lt_status lt_copy_file(const char *src_dir, const char *dst_dir, const char *name) {
    char src[PATH_MAX], dst[PATH_MAX];
    if (snprintf(src, sizeof src, "%s/%s", src_dir, name) >= (int)sizeof src ||
        snprintf(dst, sizeof dst, "%s/%s", dst_dir, name) >= (int)sizeof dst)
        return lt_errorf(LT_ERR_INVALID_ARG, "%s: path too long", src_dir);
    char *buf;
    int64_t len;
    lt_status st = lt_read_file(src, LT_MAKE_TOKENIZER_MAX_BYTES, &buf, &len);
    if (st) return st;
    st = lt_write_file_atomic(dst, buf, len);
    free(buf);
    return st;
}

static lt_status lt_copy_tokenizer(const char *tok_dir, const char *out_dir) {
    char a[PATH_MAX], b[PATH_MAX];
    if (realpath(tok_dir, a) && realpath(out_dir, b) && !strcmp(a, b)) return NULL; /* already there */
    static const char *optional[] = {"tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                                     "chat_template.jinja"};
    lt_status st = lt_copy_file(tok_dir, out_dir, "tokenizer.json");
    for (size_t i = 0; !st && i < sizeof optional / sizeof optional[0]; i++)
        if (lt_file_exists(tok_dir, optional[i])) st = lt_copy_file(tok_dir, out_dir, optional[i]);
    return st;
}

static lt_status lt_write_generation_config(const lt_model_config *cfg, const char *dir) {
    json_t *o = json_object();
    if (cfg->bos_token_id >= 0) json_object_set_new(o, "bos_token_id", json_integer(cfg->bos_token_id));
    if (cfg->n_eos == 1) json_object_set_new(o, "eos_token_id", json_integer(cfg->eos_token_ids[0]));
    if (cfg->n_eos > 1) {
        json_t *a = json_array();
        for (int i = 0; i < cfg->n_eos; i++) json_array_append_new(a, json_integer(cfg->eos_token_ids[i]));
        json_object_set_new(o, "eos_token_id", a);
    }
    if (cfg->pad_token_id >= 0) json_object_set_new(o, "pad_token_id", json_integer(cfg->pad_token_id));
    char *text = json_dumps(o, JSON_INDENT(2));
    json_decref(o);
    if (!text) return lt_errorf(LT_ERR_NOMEM, "%s: out of memory formatting generation_config.json", dir);
    char path[PATH_MAX];
    lt_status st = NULL;
    if (snprintf(path, sizeof path, "%s/generation_config.json", dir) >= (int)sizeof path)
        st = lt_errorf(LT_ERR_INVALID_ARG, "%s: path too long", dir);
    else
        st = lt_write_file_atomic(path, text, (int64_t)strlen(text));
    free(text);
    return st;
}

/* ---------------------------------------------------------------- weights */

/* Producer for one tensor: the writer calls it just before the tensor's bytes go to disk, so
 * only one tensor exists in memory at a time (a 70B model can be made on a machine with less
 * memory than its files). */
static lt_status lt_make_fill_entry(void *ctx, void *buf, int64_t nbytes) {
    lt_make_fill *f = ctx;
    LT_ASSERT(nbytes == f->numel * lt_dtype_size(f->dtype));
    f->dst = buf;
    lt_parallel_for((f->numel + LT_MAKE_CHUNK - 1) / LT_MAKE_CHUNK, lt_make_fill_range, f);
    return NULL;
}

/* Writes every tensor with lt_st_write_model, drawing each one when the writer reaches it. */
static lt_status lt_write_random_weights(const lt_model_config *cfg, const lt_make_opts *opts, const char *dir) {
    int64_t n = lt_model_weight_specs(cfg, NULL, 0);
    lt_weight_spec *specs = calloc((size_t)n, sizeof *specs);
    lt_st_entry *entries = calloc((size_t)n, sizeof *entries);
    lt_make_fill *fills = calloc((size_t)n, sizeof *fills);
    lt_status st = NULL;
    if (!specs || !entries || !fills)
        st = lt_errorf(LT_ERR_NOMEM, "%s: out of memory for %lld tensor specs", dir, (long long)n);
    else
        LT_ASSERT(lt_model_weight_specs(cfg, specs, n) == n);
    const uint64_t base_key = opts->seed ^ LT_MAKE_DOMAIN;
    for (int64_t i = 0; !st && i < n; i++) {
        const lt_weight_spec *w = &specs[i];
        int64_t numel = w->shape[0], bytes;
        if (w->ndim == 2 && !lt_mul_i64(numel, w->shape[1], &numel)) numel = -1;
        if (numel < 0 || !lt_mul_i64(numel, lt_dtype_size(opts->dtype), &bytes) || (uint64_t)bytes > SIZE_MAX) {
            st = lt_errorf(LT_ERR_INVALID_ARG, "%s: tensor %s is too large", dir, w->name);
            break;
        }
        fills[i] = (lt_make_fill){
            lt_make_derive(base_key, (uint64_t)i), w->kind, (float)cfg->initializer_range, numel, opts->dtype, NULL};
        lt_st_entry *e = &entries[i];
        e->name = w->name;
        e->dtype_name = lt_dtype_name(opts->dtype);
        e->ndim = w->ndim;
        e->shape[0] = w->shape[0];
        e->shape[1] = w->shape[1];
        e->fill = lt_make_fill_entry;
        e->fill_ctx = &fills[i];
    }
    const lt_st_meta meta[1] = {{"format", "pt"}};
    if (!st) st = lt_st_write_model(dir, entries, n, meta, 1, opts->shard_bytes);
    free(fills);
    free(entries);
    free(specs);
    return st;
}

/* ---------------------------------------------------------------- entry point */

lt_status lt_model_make_random(const lt_model_config *cfg_in, const lt_make_opts *opts, const char *out_dir) {
    LT_ASSERT(cfg_in && opts && out_dir);
    lt_status st = lt_config_validate(cfg_in, "model config");
    if (st) return lt_status_wrapf(st, "make-model %s", out_dir);
    if (opts->dtype != LT_DTYPE_F32 && opts->dtype != LT_DTYPE_BF16 && opts->dtype != LT_DTYPE_F16)
        return lt_errorf(LT_ERR_INVALID_ARG, "make-model %s: weight dtype %s is not supported; use F32, BF16 or F16",
                         out_dir, lt_dtype_name(opts->dtype));
    if (opts->tokenizer_dir && !lt_file_exists(opts->tokenizer_dir, "tokenizer.json"))
        return lt_errorf(LT_ERR_INVALID_ARG,
                         "make-model %s: %s/tokenizer.json not found (the tokenizer directory must "
                         "hold an HF tokenizer.json)",
                         out_dir, opts->tokenizer_dir);
    if ((st = lt_prepare_out_dir(out_dir))) return st;

    lt_model_config cfg = *cfg_in;
    const char *tdt = opts->dtype == LT_DTYPE_F32 ? "float32" : opts->dtype == LT_DTYPE_BF16 ? "bfloat16" : "float16";
    snprintf(cfg.torch_dtype, sizeof cfg.torch_dtype, "%s", tdt);
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/config.json", out_dir) >= (int)sizeof path)
        return lt_errorf(LT_ERR_INVALID_ARG, "%s: path too long", out_dir);
    /* config.json first: it marks the directory as a model directory, so a failed run can be redone. */
    if ((st = lt_config_save(&cfg, path))) return st;
    if ((st = lt_write_random_weights(&cfg, opts, out_dir))) return st;
    if ((st = lt_write_generation_config(&cfg, out_dir))) return st;
    if (opts->tokenizer_dir && (st = lt_copy_tokenizer(opts->tokenizer_dir, out_dir))) return st;
    return NULL;
}
