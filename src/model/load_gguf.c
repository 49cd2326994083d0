/* Loading a GGUF v3 file (llama.cpp's format) as an lt_model.
 *
 * Steps: lt_gguf_open validates the container; lt_gguf_to_config turns the metadata into an
 * lt_model_config (general.architecture llama — Llama 1-3 and Mistral, which llama.cpp writes
 * as llama —, qwen2, qwen3); lt_model_new gives the weight specs; every check that can fail on a
 * bad file runs before any weight is allocated (lt_gg_check); then each spec is filled
 * (lt_gg_read) and lt_model_finish binds the layers. The mmap is closed before returning: every
 * weight is copied into the pool.
 *
 * Tensors. Each GGUF name maps to an HF name (lt_gguf_name_to_hf). GGUF dims are reversed:
 * an HF weight [out, in] is ne = [in, out] (ne[0] the row length); a 1-D tensor is ne = [n].
 * Every spec must be present with exactly that shape; a tensor the config does not imply is
 * refused by name. Tolerated and ignored, as derived data: "rope_freqs.weight" (Llama-3 rope
 * divisors: lt_gguf_to_config has already turned them into the config's rope scaling) and
 * "blk.N.attn_rot_embd[.weight]" (a per-layer copy of RoPE's inv_freq buffer in old files).
 * Accepted types: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K; others are LT_ERR_UNSUPPORTED
 * naming the tensor and its type.
 *
 * Row order. llama.cpp's converter permutes the rows of q_proj and k_proj (weight and bias) of
 * the llama architecture, not of qwen2/qwen3 (lt_gguf_permuted_heads says which). The rows are
 * put back with lt_gguf_unpermute_rows on the file's raw bytes — a quantized row is whole blocks,
 * so this moves blocks and changes no value — before anything else is done with them.
 *
 * Holding (opts):
 *   - not quantize: every tensor dequantized to f32 (m->w);
 *   - quantize, format Q8_0, tensor Q8_0 in the file: its blocks are copied byte for byte into an
 *     LT_Q_Q8_0 tensor (loft's Q8_0 layout is GGML's), then their scales are checked
 *     (lt_qtensor_validate): no requantization, no loss;
 *   - quantize otherwise: dequantized into one reusable f32 scratch buffer (tag SCRATCH) and
 *     quantized with lt_quantize, one tensor at a time, so the peak is the held model plus one
 *     tensor in f32 (and, for permuted q/k, one tensor's raw bytes).
 *   Which tensors are quantized follows lt_model_want_quant: Linear weights, the embedding table
 *   and lm_head only when asked; norms and biases always f32. No output.weight means tied
 *   embeddings (decided by lt_gguf_to_config).
 *
 * Dequantized values are checked: a NaN or Inf (a damaged block scale) is refused with the
 * tensor's name rather than surfacing as NaN logits. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/model_internal.h"
#include "quant/gguf_blocks.h"

/* Per spec: the file's tensor and what to do with it. */
typedef struct lt_gg_plan {
    const lt_gguf_tensor *t;
    int64_t nh;   /* heads to unpermute the rows with; 0: not permuted */
    bool quant;   /* held quantized (m->qw) */
    bool keep_q8; /* quantized by copying the file's Q8_0 blocks */
} lt_gg_plan;

typedef struct lt_gg {
    const char *path;
    lt_gguf_file *g;
    lt_model *m;
    lt_gg_plan *plan; /* [m->n_weights] */
    float *f32;       /* scratch: one tensor in f32, for quantize-on-load */
    uint8_t *raw;     /* scratch: one tensor's raw bytes in HF row order, for permuted q/k */
} lt_gg;

static const uint32_t lt_gg_types[] = {LT_GGML_F32,  LT_GGML_F16,  LT_GGML_BF16, LT_GGML_Q8_0,
                                       LT_GGML_Q4_0, LT_GGML_Q4_1, LT_GGML_Q4_K, LT_GGML_Q6_K};

static bool lt_gg_type_ok(uint32_t type) {
    for (size_t i = 0; i < sizeof lt_gg_types / sizeof lt_gg_types[0]; i++)
        if (lt_gg_types[i] == type && lt_gguf_can_dequant(type)) return true;
    return false;
}

static const char *lt_gg_type_name(uint32_t type) {
    const lt_ggml_type_info *ti = lt_ggml_type_get(type);
    return ti ? ti->name : "unknown";
}

/* Derived tensors a complete model file may carry and loft does not need as weights. */
static bool lt_gg_tolerated(const char *name) {
    if (!strcmp(name, "rope_freqs.weight")) return true;
    if (strncmp(name, "blk.", 4) != 0) return false;
    const char *p = name + 4;
    if (!(*p >= '0' && *p <= '9')) return false;
    while (*p >= '0' && *p <= '9') p++;
    return !strcmp(p, ".attn_rot_embd") || !strcmp(p, ".attn_rot_embd.weight");
}

/* ---------------------------------------------------------------- the file behind a path */

static bool lt_gg_is_gguf_name(const char *n) {
    size_t len = strlen(n);
    return len > 5 && !strcmp(n + len - 5, ".gguf");
}

/* path itself when it is not a directory; else its only *.gguf (a new string in *owned). */
static lt_status lt_gg_resolve(const char *path, const char **file, char **owned) {
    *file = path;
    *owned = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) return NULL; /* lt_gguf_open reports errors */
    DIR *d = opendir(path);
    if (!d) return lt_errorf(LT_ERR_IO, "%s: cannot list the directory", path);
    int n = 0;
    char first[256] = "", second[256] = "";
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!lt_gg_is_gguf_name(e->d_name)) continue;
        if (n == 0) snprintf(first, sizeof first, "%s", e->d_name);
        if (n == 1) snprintf(second, sizeof second, "%s", e->d_name);
        n++;
    }
    closedir(d);
    if (n == 0)
        return lt_errorf(LT_ERR_FORMAT,
                         "%s: no config.json (so not a Hugging Face model directory) and no .gguf file; point "
                         "--model at an HF model directory or at a GGUF file",
                         path);
    if (n > 1)
        return lt_errorf(LT_ERR_INVALID_ARG,
                         "%s: no config.json and %d .gguf files (\"%s\", \"%s\", ...); pass the GGUF file itself "
                         "(split GGUF models must first be merged with llama-gguf-split --merge)",
                         path, n, first, second);
    *owned = lt_path_join(path, first);
    if (!*owned) return lt_errorf(LT_ERR_NOMEM, "out of memory");
    *file = *owned;
    return NULL;
}

/* ---------------------------------------------------------------- checks, before any weight */

static lt_status lt_gg_check(lt_gg *c) {
    const lt_model *m = c->m;
    const char *path = c->path;
    char hf[160], gn[160];
    /* one file of a split model: its tensors are elsewhere */
    if (lt_gguf_find_kv(c->g, "split.count")) {
        int64_t parts;
        lt_status st = lt_gguf_get_int(c->g, "split.count", 0, INT32_MAX, &parts);
        if (st) return st;
        if (parts > 1)
            return lt_errorf(LT_ERR_UNSUPPORTED,
                             "%s: one of %lld parts of a split GGUF model; merge the parts into one file with "
                             "llama-gguf-split --merge and load that",
                             path, (long long)parts);
    }
    for (int64_t i = 0; i < lt_gguf_tensor_count(c->g); i++) {
        const lt_gguf_tensor *t = lt_gguf_tensor_at(c->g, i);
        if (lt_gg_tolerated(t->name)) continue;
        if (!lt_gguf_name_to_hf(t->name, hf, sizeof hf))
            return lt_errorf(LT_ERR_UNSUPPORTED,
                             "%s: unexpected tensor \"%s\": not a tensor of the Llama-family layout loft runs (is "
                             "this a multimodal, MoE or other-architecture file?)",
                             path, t->name);
        if (lt_model_spec_find(m->specs, m->n_weights, hf) < 0)
            return lt_errorf(LT_ERR_FORMAT,
                             "%s: unexpected tensor \"%s\" (%s): a %s with this file's metadata has no such weight "
                             "(the metadata and the tensors disagree: the file is damaged or from an unknown "
                             "converter)",
                             path, t->name, hf, m->cfg.architecture);
    }
    for (int64_t i = 0; i < m->n_weights; i++) {
        const lt_weight_spec *s = &m->specs[i];
        lt_gg_plan *p = &c->plan[i];
        bool mapped = lt_gguf_name_from_hf(s->name, gn, sizeof gn);
        LT_ASSERT(mapped); /* the layout only has names the GGUF table maps */
        /* expected ne: [in, out] for a weight [out, in], [n] for a vector */
        int64_t want[LT_GGUF_MAX_DIMS] = {s->ndim == 2 ? s->shape[1] : s->shape[0], s->ndim == 2 ? s->shape[0] : 1, 1,
                                          1};
        char ws[48];
        if (s->ndim == 2)
            snprintf(ws, sizeof ws, "[%lld, %lld]", (long long)want[0], (long long)want[1]);
        else
            snprintf(ws, sizeof ws, "[%lld]", (long long)want[0]);
        const lt_gguf_tensor *t = lt_gguf_find_tensor(c->g, gn);
        if (!t)
            return lt_errorf(LT_ERR_FORMAT,
                             "%s: tensor \"%s\" (%s) is missing: a %s with this file's metadata needs it with ne = "
                             "%s; the file is incomplete or damaged",
                             path, gn, s->name, m->cfg.architecture, ws);
        bool same = true;
        for (int d = 0; d < LT_GGUF_MAX_DIMS; d++) same = same && t->ne[d] == want[d];
        if (!same)
            return lt_errorf(LT_ERR_FORMAT,
                             "%s: tensor \"%s\" has ne = [%lld, %lld, %lld, %lld], expected %s (%s%s) from the file's "
                             "metadata; the metadata and the tensors disagree: the file is damaged or from an "
                             "unknown converter",
                             path, gn, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                             (long long)t->ne[3], ws, s->name, s->ndim == 2 ? ", ne[0] = in_features" : "");
        if (!lt_gg_type_ok(t->type))
            return lt_errorf(LT_ERR_UNSUPPORTED,
                             "%s: tensor \"%s\" has type %s; loft reads F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K and "
                             "Q6_K: convert the model again (convert_hf_to_gguf.py --outtype f16 or q8_0, or "
                             "llama-quantize to Q8_0/Q4_K_M), or load the Hugging Face safetensors directory",
                             path, gn, lt_gg_type_name(t->type));
        p->t = t;
        p->nh = lt_gguf_permuted_heads(&m->cfg, s->name);
        bool unaligned;
        p->quant = lt_model_want_quant(m, s, &unaligned);
        p->keep_q8 = p->quant && m->opts.format == LT_Q_Q8_0 && t->type == LT_GGML_Q8_0;
        if (unaligned) c->m->qsum.n_unaligned++;
    }
    return NULL;
}

/* ---------------------------------------------------------------- reading */

typedef struct lt_gg_deq {
    uint32_t type;
    const uint8_t *src;
    float *dst;
    int64_t row_bytes, cols;
} lt_gg_deq;

static void lt_gg_deq_rows(void *ctx, int64_t r0, int64_t r1) {
    const lt_gg_deq *d = ctx;
    lt_gguf_dequant(d->type, d->src + r0 * d->row_bytes, d->dst + r0 * d->cols, (r1 - r0) * d->cols);
}

static lt_status lt_gg_finite(const lt_gg *c, const lt_gguf_tensor *t, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return lt_errorf(LT_ERR_FORMAT,
                             "%s: tensor \"%s\" (%s) holds a non-finite value at element %lld (row %lld): a NaN or "
                             "Inf block scale or value; the file is damaged: download or convert it again",
                             c->path, t->name, lt_gg_type_name(t->type), (long long)i, (long long)(i / t->ne[0]));
    return NULL;
}

/* The raw bytes of a 2-D tensor in HF row order: the file's, or unpermuted into c->raw (whole
 * rows, i.e. whole blocks, move). */
static lt_status lt_gg_rows(lt_gg *c, const lt_gg_plan *p, const uint8_t **src) {
    *src = p->t->data;
    if (!p->nh) return NULL;
    int64_t rows = p->t->ne[1], row_bytes = p->t->nbytes / rows;
    lt_status st = lt_gguf_unpermute_rows(p->t->data, c->raw, rows, row_bytes, p->nh);
    if (st) return lt_status_wrapf(st, "%s: tensor \"%s\"", c->path, p->t->name);
    *src = c->raw;
    return NULL;
}

/* Dequantizes the tensor of p into dst [numel], in HF order. */
static lt_status lt_gg_dequant(lt_gg *c, const lt_gg_plan *p, float *dst) {
    const lt_gguf_tensor *t = p->t;
    lt_status st;
    if (p->nh && t->ne[1] == 1) {
        /* a permuted q/k bias: its "rows" are single values, finer than a block of a quantized
           type, so the values are put in order after dequantizing (a bias is small) */
        float *tmp;
        if ((st = lt_pool_alloc(c->m->pool, LT_POOL_SCRATCH, t->numel * (int64_t)sizeof(float), "GGUF bias buffer",
                                (void **)&tmp)))
            return lt_status_wrapf(st, "%s: tensor \"%s\"", c->path, t->name);
        lt_gguf_dequant(t->type, t->data, tmp, t->numel);
        st = lt_gguf_unpermute_rows(tmp, dst, t->numel, (int64_t)sizeof(float), p->nh);
        lt_pool_free(c->m->pool, tmp);
        if (st) return lt_status_wrapf(st, "%s: tensor \"%s\"", c->path, t->name);
        return lt_gg_finite(c, t, dst, t->numel);
    }
    const uint8_t *src;
    if ((st = lt_gg_rows(c, p, &src))) return st;
    int64_t rows = t->ne[1];
    lt_gg_deq d = {t->type, src, dst, t->nbytes / rows, t->ne[0]};
    lt_parallel_for(rows, lt_gg_deq_rows, &d);
    return lt_gg_finite(c, t, dst, t->numel);
}

static lt_status lt_gg_read_one(lt_gg *c, int64_t i) {
    lt_model *m = c->m;
    const lt_weight_spec *s = &m->specs[i];
    const lt_gg_plan *p = &c->plan[i];
    const lt_gguf_tensor *t = p->t;
    lt_status st;
    if (!p->quant) {
        int64_t bytes = t->numel * (int64_t)sizeof(float); /* numel checked at open, spec-sized */
        if ((st = lt_pool_alloc(m->pool, LT_POOL_WEIGHTS, bytes, s->name, (void **)&m->w[i])))
            return lt_status_wrapf(st, "%s: tensor \"%s\"", c->path, t->name);
        if ((st = lt_gg_dequant(c, p, m->w[i]))) return st;
        m->weight_bytes += bytes;
        if (s->kind == LT_W_MATRIX) {
            m->qsum.n_kept++;
            m->qsum.f32_bytes += bytes;
        }
        return NULL;
    }
    lt_qlayout lay;
    if ((st = lt_qlayout_get(m->opts.format, s->shape[0], s->shape[1], &lay)) ||
        (st = lt_qtensor_alloc(m->pool, LT_POOL_WEIGHTS, m->opts.format, s->shape[0], s->shape[1], s->name, &m->qw[i])))
        return lt_status_wrapf(st, "%s: tensor \"%s\"", c->path, t->name);
    if (p->keep_q8) {
        /* GGML Q8_0 blocks are loft's Q8_0 blocks: copy (rows moved whole when permuted) */
        LT_ASSERT(lay.comp[LT_QC_CODES].bytes == t->nbytes);
        if (p->nh)
            st = lt_gguf_unpermute_rows(t->data, m->qw[i].comp[LT_QC_CODES], t->ne[1], t->nbytes / t->ne[1], p->nh);
        else
            memcpy(m->qw[i].comp[LT_QC_CODES], t->data, (size_t)t->nbytes);
        if (!st) st = lt_qtensor_validate(&m->qw[i], t->name);
    } else {
        st = lt_gg_dequant(c, p, c->f32);
        if (!st) st = lt_quantize(c->f32, s->name, &m->qw[i]);
    }
    if (st) return lt_status_wrapf(st, "%s: tensor \"%s\"", c->path, t->name);
    m->qsum.n_quantized++;
    m->qsum.quantized_bytes += lay.alloc_bytes;
    m->weight_bytes += lay.alloc_bytes;
    return NULL;
}

/* Sizes the scratch buffers, then fills every holder. */
static lt_status lt_gg_read(lt_gg *c) {
    lt_model *m = c->m;
    int64_t f32_n = 0, raw_n = 0;
    for (int64_t i = 0; i < m->n_weights; i++) {
        const lt_gg_plan *p = &c->plan[i];
        if (p->quant && !p->keep_q8 && p->t->numel > f32_n) f32_n = p->t->numel;
        if (p->nh && !p->keep_q8 && p->t->ne[1] > 1 && p->t->nbytes > raw_n) raw_n = p->t->nbytes;
    }
    lt_status st = NULL;
    if (f32_n > 0)
        st = lt_pool_alloc(m->pool, LT_POOL_SCRATCH, f32_n * (int64_t)sizeof(float), "GGUF quantize-on-load buffer",
                           (void **)&c->f32);
    if (!st && raw_n > 0)
        st = lt_pool_alloc(m->pool, LT_POOL_SCRATCH, raw_n, "GGUF q/k unpermute buffer", (void **)&c->raw);
    if (st) st = lt_status_wrapf(st, "%s", c->path);
    for (int64_t i = 0; !st && i < m->n_weights; i++) st = lt_gg_read_one(c, i);
    lt_pool_free(m->pool, c->f32);
    lt_pool_free(m->pool, c->raw);
    c->f32 = NULL;
    c->raw = NULL;
    return st;
}

lt_status lt_model_load_gguf(const char *path, lt_pool *pool, const lt_backend *be, const lt_load_opts *opts,
                             lt_model **out) {
    *out = NULL;
    const char *file;
    char *owned;
    lt_status st = lt_gg_resolve(path, &file, &owned);
    if (st) return st;
    if (opts->quantize && opts->cache_dir) {
        st = lt_errorf(LT_ERR_UNSUPPORTED,
                       "%s: a quantized cache (--quant-cache) is made from Hugging Face safetensors directories; a "
                       "GGUF file loads without one: drop --quant-cache (with --quant q8_0 a Q8_0 GGUF is used "
                       "without requantizing)",
                       file);
        free(owned);
        return st;
    }
    lt_gg c = {.path = file};
    lt_model_config cfg;
    st = lt_gguf_open(file, &c.g);
    if (!st) st = lt_gguf_to_config(c.g, &cfg);
    if (!st) st = lt_model_new(&cfg, pool, be, opts, file, &c.m);
    if (!st && !(c.plan = calloc((size_t)c.m->n_weights, sizeof *c.plan)))
        st = lt_errorf(LT_ERR_NOMEM, "%s: out of memory for %lld tensor descriptors", file, (long long)c.m->n_weights);
    if (!st) st = lt_gg_check(&c);
    if (!st) st = lt_gg_read(&c);
    free(c.plan);
    lt_gguf_close(c.g); /* every weight was copied into the pool */
    if (!st) st = lt_model_finish(c.m);
    free(owned);
    if (st) {
        lt_model_free(c.m);
        return st;
    }
    *out = c.m;
    return NULL;
}
