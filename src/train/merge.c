/* Merged model directories (see merge.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_internal.h"
#include "train/merge.h"
#include "train/step.h"

static const char *const k_aux[] = {"generation_config.json", "tokenizer.json",  "tokenizer_config.json",
                                    "special_tokens_map.json", "tokenizer.model", "chat_template.jinja"};

typedef struct merge_fill {
    const lt_model *m;
    const lt_lora *a;
    int64_t i;     /* weight index */
    bool bf16;
    float *f32;    /* [rows * cols] scratch (shared) */
} merge_fill;

/* "model.layers.<l>.self_attn.q_proj.weight" -> (l, module); false for other tensors. */
static bool adapted_of(const char *name, int64_t *layer, lt_lora_module *mod) {
    long long l;
    char rest[96];
    if (sscanf(name, "model.layers.%lld.%95s", &l, rest) != 2) return false;
    char *dot = strchr(rest, '.');
    if (!dot) return false;
    char *w = strchr(dot + 1, '.');
    if (!w || strcmp(w, ".weight")) return false;
    *w = 0;
    if (!lt_lora_module_from_name(dot + 1, mod)) return false;
    *layer = l;
    return true;
}

static lt_status merge_produce(void *ctx, void *buf, int64_t nbytes) {
    merge_fill *f = ctx;
    const lt_model *m = f->m;
    const lt_weight_spec *sp = &m->specs[f->i];
    const int64_t rows = sp->shape[0], cols = sp->ndim == 2 ? sp->shape[1] : 1, n = rows * cols;
    LT_ASSERT(nbytes == n * (f->bf16 ? 2 : 4));
    float *w = f->bf16 ? f->f32 : (float *)buf;
    if (m->qw[f->i].comp[LT_QC_CODES])
        lt_dequantize_rows(&m->qw[f->i], 0, rows, w);
    else
        memcpy(w, m->w[f->i], (size_t)n * sizeof(float));
    int64_t layer;
    lt_lora_module mod;
    const lt_lora_mod *md = adapted_of(sp->name, &layer, &mod) ? lt_lora_get(f->a, layer, mod) : NULL;
    if (md) {
        if (md->out != rows || md->in != cols)
            return lt_errorf(LT_ERR_INVALID_ARG, "merge: %s is [%lld, %lld] but the adapter's %s is [%lld, %lld]",
                             sp->name, (long long)rows, (long long)cols, lt_lora_module_name(mod), (long long)md->out,
                             (long long)md->in);
        /* W[o, i] += s * sum_k B[o, k] A[k, i], with the BF16 values the adapter computes with, summed in
           double so the merged weight is the exact product rounded once */
        const int64_t r = md->r;
        float *av = malloc((size_t)(r * cols) * sizeof(float));
        if (!av) return lt_errorf(LT_ERR_NOMEM, "merge: out of memory");
        lt_convert_to_f32(md->a_bf16, LT_DTYPE_BF16, av, r * cols);
        double *acc = malloc((size_t)cols * sizeof(double));
        if (!acc) {
            free(av);
            return lt_errorf(LT_ERR_NOMEM, "merge: out of memory");
        }
        for (int64_t o = 0; o < rows; o++) {
            memset(acc, 0, (size_t)cols * sizeof(double));
            for (int64_t k = 0; k < r; k++) {
                const double bk = (double)lt_bf16_to_f32(md->b_bf16[o * r + k]);
                if (bk == 0.0) continue;
                const float *ar = av + k * cols;
                for (int64_t i = 0; i < cols; i++) acc[i] += bk * (double)ar[i];
            }
            float *wr = w + o * cols;
            for (int64_t i = 0; i < cols; i++) wr[i] = (float)((double)wr[i] + (double)md->scale * acc[i]);
        }
        free(acc);
        free(av);
    }
    if (f->bf16) lt_convert_from_f32(w, buf, LT_DTYPE_BF16, n);
    return NULL;
}

static lt_status copy_aux(const char *src, const char *dst) {
    for (size_t i = 0; i < sizeof k_aux / sizeof *k_aux; i++) {
        char *sp = lt_path_join(src, k_aux[i]), *dp = lt_path_join(dst, k_aux[i]);
        char *buf = NULL;
        int64_t n = 0;
        lt_status st = lt_read_file(sp, (int64_t)1 << 31, &buf, &n);
        if (st) { /* absent: fine */
            lt_status_free(st);
            st = NULL;
        } else {
            st = lt_write_file_atomic(dp, buf, n);
        }
        free(buf);
        free(sp);
        free(dp);
        if (st) return st;
    }
    return NULL;
}

lt_status lt_merge_write(const lt_model *m, const lt_lora *a, const lt_merge_opts *o, const char *dir) {
    if (o->dtype != LT_DTYPE_F32 && o->dtype != LT_DTYPE_BF16)
        return lt_errorf(LT_ERR_INVALID_ARG, "merge: the output dtype must be f32 or bf16");
    if (lt_lora_n_layers(a) != m->cfg.n_layers)
        return lt_errorf(LT_ERR_INVALID_ARG, "merge: the adapter has %lld layers, the model %lld",
                         (long long)lt_lora_n_layers(a), (long long)m->cfg.n_layers);
    lt_status st = lt_mkdir_p(dir);
    if (st) return st;
    lt_model_config cfg = m->cfg;
    snprintf(cfg.torch_dtype, sizeof cfg.torch_dtype, "%s", o->dtype == LT_DTYPE_BF16 ? "bfloat16" : "float32");
    char *path = lt_path_join(dir, "config.json");
    st = lt_config_save(&cfg, path);
    free(path);
    if (st) return st;
    int64_t maxn = 0;
    for (int64_t i = 0; i < m->n_weights; i++) {
        const int64_t n = m->specs[i].shape[0] * (m->specs[i].ndim == 2 ? m->specs[i].shape[1] : 1);
        if (n > maxn) maxn = n;
    }
    lt_st_entry *e = calloc((size_t)m->n_weights, sizeof *e);
    merge_fill *f = calloc((size_t)m->n_weights, sizeof *f);
    float *scratch = o->dtype == LT_DTYPE_BF16 ? malloc((size_t)maxn * sizeof(float)) : NULL;
    if (!e || !f || (o->dtype == LT_DTYPE_BF16 && !scratch)) st = lt_errorf(LT_ERR_NOMEM, "merge: out of memory");
    for (int64_t i = 0; !st && i < m->n_weights; i++) {
        const lt_weight_spec *sp = &m->specs[i];
        f[i] = (merge_fill){m, a, i, o->dtype == LT_DTYPE_BF16, scratch};
        e[i] = (lt_st_entry){.name = sp->name, .dtype_name = o->dtype == LT_DTYPE_BF16 ? "BF16" : "F32",
                             .ndim = sp->ndim, .shape = {sp->shape[0], sp->shape[1]}, .fill = merge_produce,
                             .fill_ctx = &f[i]};
    }
    const lt_st_meta meta[] = {{"format", "pt"},
                               {"loft.merged_from", m->opts.quantize ? lt_qformat_name(m->opts.format) : "f32"}};
    if (!st) st = lt_st_write_model(dir, e, m->n_weights, meta, 2, o->shard_bytes);
    free(e);
    free(f);
    free(scratch);
    if (!st && o->copy_from) st = copy_aux(o->copy_from, dir);
    return st;
}

lt_status lt_merge_probe(lt_model *base, lt_lora *a, lt_model *merged, const int32_t *ids, int64_t T,
                         lt_merge_report *rep) {
    memset(rep, 0, sizeof *rep);
    const int64_t V = base->cfg.vocab_size;
    int64_t n;
    if (!lt_mul_i64(T, V, &n)) return lt_errorf(LT_ERR_INVALID_ARG, "merge probe: too many tokens");
    float *lu = malloc((size_t)n * sizeof(float)), *lm = malloc((size_t)n * sizeof(float));
    int32_t *tgt = calloc((size_t)T, sizeof(int32_t)), *pos = malloc((size_t)T * sizeof(int32_t));
    lt_status st = NULL;
    if (!lu || !lm || !tgt || !pos) st = lt_errorf(LT_ERR_NOMEM, "merge probe: out of memory");
    for (int64_t t = 0; !st && t < T; t++) pos[t] = (int32_t)t;
    lt_train_batch b = {.T = T, .ids = ids, .targets = tgt, .pos = pos};
    if (!st) st = lt_train_logits(base, a, &b, lu);
    lt_kv_cache *kv = NULL;
    if (!st) st = lt_kv_create(merged, merged->pool, T, &kv);
    if (!st) st = lt_model_forward(merged, kv, ids, T, lm, true);
    lt_kv_free(kv);
    for (int64_t i = 0; !st && i < n; i++) {
        rep->max_abs_diff = fmax(rep->max_abs_diff, fabs((double)lu[i] - lm[i]));
        rep->max_abs_logit = fmax(rep->max_abs_logit, fabs((double)lu[i]));
    }
    /* the base alone, for scale: the base forward with no adapter */
    if (!st) {
        kv = NULL;
        st = lt_kv_create(base, base->pool, T, &kv);
        if (!st) st = lt_model_forward(base, kv, ids, T, lm, true);
        lt_kv_free(kv);
        for (int64_t i = 0; !st && i < n; i++) rep->max_abs_delta = fmax(rep->max_abs_delta, fabs((double)lu[i] - lm[i]));
    }
    free(lu);
    free(lm);
    free(tgt);
    free(pos);
    return st;
}
