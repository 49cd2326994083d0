/* Loading a Llama-family model (f32 weights in the pool) and its forward pass with a KV cache.
 *
 * Loading validates before it allocates: config.json is parsed, every tensor the config implies
 * (lt_model_weight_specs) must be in the safetensors files with exactly that shape and a dtype of
 * F32/BF16/F16, and no file may hold a tensor the config does not imply (old checkpoints'
 * "*.rotary_emb.inv_freq" buffers excepted: they are derived data). Only then is each tensor
 * converted to f32 into its own pool allocation (tag WEIGHTS, labelled with its name).
 *
 * Forward, per layer (shapes for n tokens; H hidden, q = n_heads*hd, kv = n_kv_heads*hd):
 *   xn = rmsnorm(x)                                  [n, H]
 *   q = xn Wq^T (+b), k,v = xn Wk^T, xn Wv^T (+b)    [n, q], written: [n, kv] into the cache rows
 *   Qwen3: q, k = rmsnorm per head (q_norm, k_norm)
 *   rope(q, k) at positions kv_len .. kv_len+n-1
 *   att = attention(q, cache k/v rows 0 .. kv_len+n-1)   [n, q]
 *   x += att Wo^T (+b)
 *   xn = rmsnorm(x); x += down(silu(xn Wg^T) * (xn Wu^T))
 * then the final norm and lm_head (the embedding matrix when tied) on the rows asked for.
 * Every linear runs once over all n tokens (one GEMM per weight per call).
 *
 * Activations: one pool allocation (tag ACTIVATIONS) per forward call, sized for that n, freed
 * before returning. Between calls the model holds no activation memory, so the pool's
 * ACTIVATIONS high-water mark is exactly the largest call's need (what a planner predicts), and a
 * long-lived served model costs only its weights and caches; the cost is one malloc per call,
 * negligible next to the GEMMs. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/kv_internal.h"
#include "model/model_internal.h"

/* ---------------------------------------------------------------- name lookup */

static int lt_spec_cmp(const void *a, const void *b) {
    return strcmp(((const lt_weight_spec *)a)->name, ((const lt_weight_spec *)b)->name);
}

int64_t lt_model_spec_find(const lt_weight_spec *specs, int64_t n, const char *name) {
    int64_t lo = 0, hi = n - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(specs[mid].name, name);
        if (c == 0) return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* Index of the weight whose name is printf(fmt, ap) in m->specs, or -1 when the config implies
 * no such tensor (a bias of a model without biases, say). */
static int64_t lt_weight_vindex(const lt_model *m, const char *fmt, va_list ap) {
    char name[128];
    vsnprintf(name, sizeof name, fmt, ap);
    return lt_model_spec_find(m->specs, m->n_weights, name);
}

/* An f32 weight (norm, bias) by printf-style name; NULL when absent. */
static const float *lt_weight(const lt_model *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const float *lt_weight(const lt_model *m, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int64_t i = lt_weight_vindex(m, fmt, ap);
    va_end(ap);
    return i < 0 ? NULL : m->w[i];
}

/* A Linear weight by printf-style name: the quantized tensor when it was quantized on load, else
 * the f32 one; both NULL when absent. */
static lt_lin lt_linear_w(const lt_model *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static lt_lin lt_linear_w(const lt_model *m, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int64_t i = lt_weight_vindex(m, fmt, ap);
    va_end(ap);
    lt_lin l = {NULL, NULL};
    if (i >= 0 && m->qw[i].comp[LT_QC_CODES])
        l.q = &m->qw[i];
    else if (i >= 0)
        l.f = m->w[i];
    return l;
}

static bool lt_ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* ---------------------------------------------------------------- loading */

/* Every check that can fail on a bad directory, before anything big is allocated. */
static lt_status lt_model_check_tensors(const lt_model *m, const lt_st_set *set) {
    for (int64_t i = 0; i < lt_st_set_count(set); i++) {
        const lt_st_tensor *t = lt_st_set_get(set, i);
        if (lt_ends_with(t->name, ".rotary_emb.inv_freq")) continue;
        if (lt_model_spec_find(m->specs, m->n_weights, t->name) < 0)
            return lt_errorf(LT_ERR_FORMAT,
                             "unexpected tensor \"%s\": a %s with this config.json has no such weight "
                             "(check that config.json belongs to these safetensors files)",
                             t->name, m->cfg.architecture);
    }
    for (int64_t i = 0; i < m->n_weights; i++) {
        const lt_weight_spec *s = &m->specs[i];
        const lt_st_tensor *t = lt_st_set_find(set, s->name);
        char want[64], got[64];
        lt_shape_str(s->shape, s->ndim, want, sizeof want);
        if (!t)
            return lt_errorf(LT_ERR_FORMAT,
                             "tensor \"%s\" %s is missing: a %s with this config.json needs it (check that "
                             "config.json belongs to these safetensors files and that no shard is missing)",
                             s->name, want, m->cfg.architecture);
        bool same = t->ndim == s->ndim;
        for (int d = 0; same && d < s->ndim; d++) same = t->shape[d] == s->shape[d];
        if (!same) {
            if (t->ndim <= LT_MAX_DIMS)
                lt_shape_str(t->shape, t->ndim, got, sizeof got);
            else
                snprintf(got, sizeof got, "(%d dimensions)", t->ndim);
            return lt_errorf(LT_ERR_FORMAT,
                             "tensor \"%s\" has shape %s, expected %s from config.json (check that config.json "
                             "belongs to these safetensors files)",
                             s->name, got, want);
        }
        if (!t->has_dtype || (t->dtype != LT_DTYPE_F32 && t->dtype != LT_DTYPE_BF16 && t->dtype != LT_DTYPE_F16))
            return lt_errorf(LT_ERR_UNSUPPORTED,
                             "tensor \"%s\" has dtype %s, expected F32, BF16 or F16 (quantized checkpoints "
                             "are not loaded by this path)",
                             s->name, t->dtype_name);
    }
    return NULL;
}

void lt_model_to_f32(const void *src, lt_dtype t, float *dst, int64_t n) {
    if (t == LT_DTYPE_F32) {
        memcpy(dst, src, (size_t)n * sizeof(float));
        return;
    }
    if (((uintptr_t)src % 2) == 0) {
        lt_convert_to_f32(src, t, dst, n);
        return;
    }
    uint16_t buf[4096]; /* an odd address: bounce through an aligned copy */
    for (int64_t i = 0; i < n; i += 4096) {
        int64_t c = n - i < 4096 ? n - i : 4096;
        memcpy(buf, (const char *)src + i * 2, (size_t)c * 2);
        lt_convert_to_f32(buf, t, dst + i, c);
    }
}

static lt_status lt_model_bind(lt_model *m) {
    const lt_model_config *c = &m->cfg;
    m->embed_lin = lt_linear_w(m, "model.embed_tokens.weight");
    m->final_norm = lt_weight(m, "model.norm.weight");
    m->lm_head = c->tie_word_embeddings ? m->embed_lin : lt_linear_w(m, "lm_head.weight");
    LT_ASSERT((m->embed_lin.f || m->embed_lin.q) && m->final_norm && (m->lm_head.f || m->lm_head.q));
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers) return lt_errorf(LT_ERR_NOMEM, "out of memory for %lld layer descriptors", (long long)c->n_layers);
    for (int64_t l = 0; l < c->n_layers; l++) {
        lt_layer_w *L = &m->layers[l];
        const long long i = (long long)l;
        L->attn_norm = lt_weight(m, "model.layers.%lld.input_layernorm.weight", i);
        L->wq = lt_linear_w(m, "model.layers.%lld.self_attn.q_proj.weight", i);
        L->wk = lt_linear_w(m, "model.layers.%lld.self_attn.k_proj.weight", i);
        L->wv = lt_linear_w(m, "model.layers.%lld.self_attn.v_proj.weight", i);
        L->wo = lt_linear_w(m, "model.layers.%lld.self_attn.o_proj.weight", i);
        L->bq = lt_weight(m, "model.layers.%lld.self_attn.q_proj.bias", i);
        L->bk = lt_weight(m, "model.layers.%lld.self_attn.k_proj.bias", i);
        L->bv = lt_weight(m, "model.layers.%lld.self_attn.v_proj.bias", i);
        L->bo = lt_weight(m, "model.layers.%lld.self_attn.o_proj.bias", i);
        L->q_norm = lt_weight(m, "model.layers.%lld.self_attn.q_norm.weight", i);
        L->k_norm = lt_weight(m, "model.layers.%lld.self_attn.k_norm.weight", i);
        L->mlp_norm = lt_weight(m, "model.layers.%lld.post_attention_layernorm.weight", i);
        L->wg = lt_linear_w(m, "model.layers.%lld.mlp.gate_proj.weight", i);
        L->wu = lt_linear_w(m, "model.layers.%lld.mlp.up_proj.weight", i);
        L->wd = lt_linear_w(m, "model.layers.%lld.mlp.down_proj.weight", i);
        L->bg = lt_weight(m, "model.layers.%lld.mlp.gate_proj.bias", i);
        L->bu = lt_weight(m, "model.layers.%lld.mlp.up_proj.bias", i);
        L->bd = lt_weight(m, "model.layers.%lld.mlp.down_proj.bias", i);
        /* the layout and this binding must agree: a missing one is a bug, not a bad file */
        const lt_lin *lins[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->wg, &L->wu, &L->wd};
        for (size_t k = 0; k < sizeof lins / sizeof lins[0]; k++) LT_ASSERT(lins[k]->f || lins[k]->q);
        LT_ASSERT(L->attn_norm && L->mlp_norm);
        LT_ASSERT(!c->qk_norm || (L->q_norm && L->k_norm));
        LT_ASSERT(!c->qkv_bias || (L->bq && L->bk && L->bv));
    }
    return NULL;
}

bool lt_model_want_quant(const lt_model *m, const lt_weight_spec *s, bool *unaligned) {
    const lt_load_opts *o = &m->opts;
    *unaligned = false;
    if (!o->quantize || s->kind != LT_W_MATRIX || s->ndim != 2) return false;
    if (!strcmp(s->name, "model.embed_tokens.weight") && !o->quantize_embeddings) return false;
    if (!strcmp(s->name, "lm_head.weight") && !o->quantize_lm_head) return false;
    if (s->shape[1] % lt_qformat_block(o->format) != 0) {
        *unaligned = true;
        return false;
    }
    return true;
}

/* Reads every weight into the pool: f32, or quantized through one reusable f32 scratch buffer
 * (so the peak is the quantized model + the f32 weights + one tensor). */
static lt_status lt_model_read_weights(lt_model *m, const lt_st_set *set) {
    bool *quant = calloc((size_t)m->n_weights, sizeof *quant);
    if (!quant) return lt_errorf(LT_ERR_NOMEM, "out of memory");
    int64_t scratch_n = 0;
    for (int64_t i = 0; i < m->n_weights; i++) {
        bool unaligned;
        quant[i] = lt_model_want_quant(m, &m->specs[i], &unaligned);
        int64_t numel = m->specs[i].shape[0] * (m->specs[i].ndim == 2 ? m->specs[i].shape[1] : 1);
        if (quant[i] && numel > scratch_n) scratch_n = numel;
        if (unaligned) m->qsum.n_unaligned++;
    }
    float *scratch = NULL;
    lt_status st = NULL;
    if (scratch_n > 0)
        st = lt_pool_alloc(m->pool, LT_POOL_SCRATCH, scratch_n * (int64_t)sizeof(float), "quantize-on-load buffer",
                           (void **)&scratch);
    for (int64_t i = 0; !st && i < m->n_weights; i++) {
        const lt_weight_spec *sp = &m->specs[i];
        const lt_st_tensor *t = lt_st_set_find(set, sp->name);
        if (quant[i]) {
            lt_model_to_f32(t->data, t->dtype, scratch, t->numel);
            lt_qlayout lay;
            st = lt_qlayout_get(m->opts.format, sp->shape[0], sp->shape[1], &lay);
            if (!st) st = lt_qtensor_alloc(m->pool, LT_POOL_WEIGHTS, m->opts.format, sp->shape[0], sp->shape[1],
                                           sp->name, &m->qw[i]);
            if (!st) st = lt_quantize(scratch, sp->name, &m->qw[i]);
            if (!st) {
                m->qsum.n_quantized++;
                m->qsum.quantized_bytes += lay.alloc_bytes;
                m->weight_bytes += lay.alloc_bytes;
            }
            continue;
        }
        int64_t bytes;
        if (!lt_mul_i64(t->numel, (int64_t)sizeof(float), &bytes)) {
            st = lt_errorf(LT_ERR_FORMAT, "tensor \"%s\" is too large", t->name);
            break;
        }
        if ((st = lt_pool_alloc(m->pool, LT_POOL_WEIGHTS, bytes, sp->name, (void **)&m->w[i]))) break;
        lt_model_to_f32(t->data, t->dtype, m->w[i], t->numel);
        m->weight_bytes += bytes;
        if (sp->kind == LT_W_MATRIX) {
            m->qsum.n_kept++;
            m->qsum.f32_bytes += bytes;
        }
    }
    lt_pool_free(m->pool, scratch);
    free(quant);
    return st;
}

lt_status lt_model_load(const char *dir, lt_pool *pool, const lt_backend *be, lt_model **out) {
    const lt_load_opts f32 = {.quantize = false};
    return lt_model_load_opts(dir, pool, be, &f32, out);
}

lt_status lt_model_new(const lt_model_config *cfg, lt_pool *pool, const lt_backend *be, const lt_load_opts *opts,
                       const char *what, lt_model **out) {
    *out = NULL;
    const lt_model_config *c = cfg;
    if (c->head_dim % 2 != 0 || c->head_dim > 2048 || c->n_heads % c->n_kv_heads != 0)
        return lt_errorf(LT_ERR_UNSUPPORTED,
                         "%s: head_dim %lld with %lld heads and %lld KV heads: loft needs an even head_dim <= 2048 "
                         "and n_heads a multiple of n_kv_heads",
                         what, (long long)c->head_dim, (long long)c->n_heads, (long long)c->n_kv_heads);
    lt_model *m = calloc(1, sizeof *m);
    if (!m) return lt_errorf(LT_ERR_NOMEM, "%s: out of memory for the model descriptor", what);
    m->cfg = *cfg;
    m->pool = pool;
    m->be = be;
    m->opts = *opts;
    m->n_weights = lt_model_weight_specs(c, NULL, 0);
    m->specs = calloc((size_t)m->n_weights, sizeof *m->specs);
    m->w = calloc((size_t)m->n_weights, sizeof *m->w);
    m->qw = calloc((size_t)m->n_weights, sizeof *m->qw);
    m->inv_freq = malloc((size_t)(c->head_dim / 2) * sizeof(float));
    if (!m->specs || !m->w || !m->qw || !m->inv_freq) {
        lt_model_free(m);
        return lt_errorf(LT_ERR_NOMEM, "out of memory for %lld weight descriptors", (long long)m->n_weights);
    }
    lt_model_weight_specs(c, m->specs, m->n_weights);
    qsort(m->specs, (size_t)m->n_weights, sizeof *m->specs, lt_spec_cmp);
    *out = m;
    return NULL;
}

lt_status lt_model_finish(lt_model *m) {
    const lt_model_config *c = &m->cfg;
    lt_rope_params rp = {.theta = c->rope_theta,
                         .head_dim = c->head_dim,
                         .llama3 = c->rope_kind == LT_ROPE_LLAMA3,
                         .factor = c->rope_factor,
                         .low_freq_factor = c->rope_low_freq_factor,
                         .high_freq_factor = c->rope_high_freq_factor,
                         .original_max_position = c->rope_original_max_position};
    lt_rope_inv_freq(&rp, m->inv_freq);
    return lt_model_bind(m);
}

lt_status lt_model_load_opts(const char *dir, lt_pool *pool, const lt_backend *be, const lt_load_opts *opts,
                             lt_model **out) {
    *out = NULL;
    lt_model *m = NULL;
    lt_st_set *set = NULL;
    lt_model_config cfg;
    char *path = lt_path_join(dir, "config.json");
    if (!path) return lt_errorf(LT_ERR_NOMEM, "out of memory");
    /* ---- GGUF (load_gguf.c): dir is a file, or a directory without config.json (which must
       then hold exactly one *.gguf; lt_model_load_gguf says so otherwise) ---- */
    {
        struct stat sd, sc;
        if (stat(dir, &sd) == 0 && (S_ISREG(sd.st_mode) || (S_ISDIR(sd.st_mode) && stat(path, &sc) != 0))) {
            free(path);
            return lt_model_load_gguf(dir, pool, be, opts, out);
        }
    }
    /* ---- end GGUF ---- */
    /* ---- a quantized model directory (loft quantize), or a quantized cache: qcache.c ---- */
    const bool quantized_dir = lt_model_dir_is_quantized(dir);
    if (quantized_dir || (opts->quantize && opts->cache_dir)) {
        free(path);
        return quantized_dir ? lt_model_load_quantized(dir, pool, be, opts, out)
                             : lt_model_load_cached(dir, pool, be, opts, out);
    }
    /* ---- end quantized ---- */
    lt_status st = lt_config_load(path, &cfg);
    if (!st) st = lt_model_new(&cfg, pool, be, opts, path, &m);
    free(path);
    if (!st) st = lt_st_set_open_dir(dir, &set);
    if (!st) st = lt_model_check_tensors(m, set);
    if (!st) st = lt_model_read_weights(m, set);
    if (set) lt_st_set_close(set);
    if (!st) st = lt_model_finish(m);
    if (st) {
        lt_model_free(m);
        return lt_status_wrapf(st, "loading model %s", dir);
    }
    *out = m;
    return NULL;
}

void lt_model_free(lt_model *m) {
    if (!m) return;
    for (int64_t i = 0; m->w && i < m->n_weights; i++) lt_pool_free(m->pool, m->w[i]);
    for (int64_t i = 0; m->qw && i < m->n_weights; i++) lt_qtensor_free(m->pool, &m->qw[i]);
    free(m->w);
    free(m->qw);
    free(m->specs);
    free(m->layers);
    if (m->inv_freq_block)
        lt_pool_free(m->pool, m->inv_freq_block);
    else
        free(m->inv_freq);
    if (m->release) m->release(m->release_ctx);
    free(m);
}

const lt_model_config *lt_model_get_config(const lt_model *m) { return &m->cfg; }
int64_t lt_model_weight_bytes(const lt_model *m) { return m->weight_bytes; }
lt_quant_summary lt_model_quant_summary(const lt_model *m) { return m->qsum; }

/* ---------------------------------------------------------------- forward */

/* Offsets (in floats) of the per-call activation buffers, each 16-float (64 B) aligned. */
typedef struct lt_act_plan {
    int64_t x, xn, q, att, gate, up, scratch, qscratch, pos, ids, logits, total;
} lt_act_plan;

static bool lt_act_take(int64_t *cursor, int64_t n, int64_t *off) {
    *off = *cursor;
    int64_t rounded;
    if (!lt_add_i64(n, 15, &rounded)) return false;
    rounded = rounded / 16 * 16;
    return lt_add_i64(*cursor, rounded, cursor);
}

/* Scratch floats the backend's qlinear needs for any of the model's products over n rows. */
static int64_t lt_qscratch(const lt_model *m, int64_t n) {
    if (m->qsum.n_quantized == 0) return 0;
    const lt_model_config *c = &m->cfg;
    const int64_t H = c->hidden_size, I = c->intermediate_size, qd = c->n_heads * c->head_dim;
    const int64_t kvd = c->n_kv_heads * c->head_dim;
    const int64_t shapes[][2] = {{H, qd}, {H, kvd}, {qd, H}, {H, I}, {I, H}, {H, c->vocab_size}};
    int64_t best = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int64_t s = lt_qlinear_scratch(n, shapes[i][0], shapes[i][1]);
        if (s > best) best = s;
    }
    return best;
}

/* logit_rows: rows of logits computed in the activations (backends whose memory the caller cannot read
   directly, then copied out); 0 when they are written straight into the caller's buffer. */
static bool lt_act_layout(const lt_model *m, int64_t n, int64_t n_past, int64_t logit_rows, lt_act_plan *p) {
    const lt_model_config *c = &m->cfg;
    const int64_t qd = c->n_heads * c->head_dim;
    int64_t nh, nq, ni, sc, nl, cur = 0;
    if (!lt_mul_i64(n, c->hidden_size, &nh) || !lt_mul_i64(n, qd, &nq) || !lt_mul_i64(n, c->intermediate_size, &ni))
        return false;
    int64_t L;
    if (!lt_add_i64(n_past, n, &L) || L > INT32_MAX) return false;
    sc = lt_attention_scratch(n, n_past, c->n_heads); /* <= max(n_heads, 128) * L: no overflow */
    const int64_t qs = m->be->own_workspace ? 0 : lt_qscratch(m, n);
    if (m->be->own_workspace) sc = 0; /* the backend's own workspace (backend.h) */
    return lt_act_take(&cur, nh, &p->x) && lt_act_take(&cur, nh, &p->xn) && lt_act_take(&cur, nq, &p->q) &&
           lt_act_take(&cur, nq, &p->att) && lt_act_take(&cur, ni, &p->gate) && lt_act_take(&cur, ni, &p->up) &&
           lt_act_take(&cur, sc, &p->scratch) && lt_act_take(&cur, qs, &p->qscratch) &&
           lt_act_take(&cur, n, &p->pos) /* int32 fits a float slot */ && lt_act_take(&cur, n, &p->ids) &&
           lt_mul_i64(logit_rows, c->vocab_size, &nl) && lt_act_take(&cur, nl, &p->logits) && (p->total = cur, true);
}

/* y[M,N] = x[M,K] W^T (+ bias) with W f32 or quantized. */
static void lt_apply(const lt_model *m, const lt_lin *w, const float *x, const float *bias, float *y, int64_t M,
                     int64_t K, int64_t N, float *qscratch) {
    if (w->q)
        m->be->qlinear(x, w->q, bias, y, M, K, N, qscratch);
    else
        m->be->linear(x, w->f, bias, y, M, K, N);
}

/* One decoder layer over n tokens at positions pos (cache already holds n_past rows). */
static void lt_layer_forward(const lt_model *m, int64_t l, lt_kv_cache *kv, float *act, const lt_act_plan *p,
                             int64_t n) {
    const lt_model_config *c = &m->cfg;
    const lt_backend *be = m->be;
    const lt_layer_w *L = &m->layers[l];
    const int64_t H = c->hidden_size, I = c->intermediate_size, hd = c->head_dim;
    const int64_t nh = c->n_heads, nkv = c->n_kv_heads, qd = nh * hd, kvd = nkv * hd;
    const int64_t n_past = lt_kv_len(kv);
    float *x = act + p->x, *xn = act + p->xn, *q = act + p->q, *att = act + p->att;
    float *gate = act + p->gate, *up = act + p->up, *scratch = act + p->scratch, *qs = act + p->qscratch;
    const int32_t *pos = (const int32_t *)(act + p->pos);
    float *kc, *vc;
    lt_kv_layer(kv, l, &kc, &vc);
    float *k_new = kc + n_past * kvd, *v_new = vc + n_past * kvd; /* [n, kvd] rows of the cache */

    be->rmsnorm(x, L->attn_norm, xn, n, H, (float)c->rms_norm_eps);
    lt_apply(m, &L->wq, xn, L->bq, q, n, H, qd, qs);
    lt_apply(m, &L->wk, xn, L->bk, k_new, n, H, kvd, qs);
    lt_apply(m, &L->wv, xn, L->bv, v_new, n, H, kvd, qs);
    if (c->qk_norm) { /* Qwen3: RMSNorm over each head's hd values, before RoPE */
        be->rmsnorm(q, L->q_norm, q, n * nh, hd, (float)c->rms_norm_eps);
        be->rmsnorm(k_new, L->k_norm, k_new, n * nkv, hd, (float)c->rms_norm_eps);
    }
    be->rope(q, pos, n, nh, hd, m->inv_freq);
    be->rope(k_new, pos, n, nkv, hd, m->inv_freq);
    be->attention(q, kc, vc, att, n, n_past, nh, nkv, hd, scratch);
    lt_apply(m, &L->wo, att, L->bo, xn, n, qd, H, qs);
    be->add(x, xn, n * H);

    be->rmsnorm(x, L->mlp_norm, xn, n, H, (float)c->rms_norm_eps);
    lt_apply(m, &L->wg, xn, L->bg, gate, n, H, I, qs);
    lt_apply(m, &L->wu, xn, L->bu, up, n, H, I, qs);
    be->swiglu(gate, up, gate, n * I);
    lt_apply(m, &L->wd, gate, L->bd, xn, n, I, H, qs);
    be->add(x, xn, n * H);
}

lt_status lt_model_forward(lt_model *m, lt_kv_cache *kv, const int32_t *ids, int64_t n, float *logits,
                           bool all_logits) {
    const lt_model_config *c = &m->cfg;
    lt_kv_check_model(kv, c);
    if (n <= 0) return lt_errorf(LT_ERR_INVALID_ARG, "forward: %lld tokens given, expected at least 1", (long long)n);
    for (int64_t t = 0; t < n; t++)
        if (ids[t] < 0 || ids[t] >= c->vocab_size)
            return lt_errorf(LT_ERR_INVALID_ARG,
                             "forward: token id %d at position %lld is outside the vocabulary [0, %lld) of this model",
                             (int)ids[t], (long long)t, (long long)c->vocab_size);
    const int64_t n_past = lt_kv_len(kv), cap = lt_kv_capacity(kv);
    if (n > cap - n_past)
        return lt_errorf(LT_ERR_INVALID_ARG,
                         "forward: the KV cache holds %lld of %lld tokens and %lld more do not fit; create it with "
                         "max_tokens >= %lld",
                         (long long)n_past, (long long)cap, (long long)n, (long long)(n_past + n));
    if (n_past + n > INT32_MAX)
        return lt_errorf(LT_ERR_INVALID_ARG, "forward: position %lld exceeds the int32 range", (long long)(n_past + n));

    lt_act_plan p;
    int64_t bytes;
    /* the CPU writes logits straight into the caller's buffer; another backend computes them in its
       own memory and copies them out */
    const bool direct = m->be == lt_backend_cpu();
    const int64_t rows_out = logits ? (all_logits ? n : 1) : 0;
    if (!lt_act_layout(m, n, n_past, direct ? 0 : rows_out, &p) || !lt_mul_i64(p.total, (int64_t)sizeof(float), &bytes))
        return lt_errorf(LT_ERR_INVALID_ARG, "forward: %lld tokens overflow the activation size", (long long)n);
    float *act;
    lt_status st = lt_pool_alloc(m->pool, LT_POOL_ACTIVATIONS, bytes, "forward activations", (void **)&act);
    if (st) return lt_status_wrapf(st, "forward of %lld tokens", (long long)n);

    const lt_backend *be = m->be;
    const int64_t H = c->hidden_size, V = c->vocab_size;
    /* positions and ids into the backend's memory (the activations may be GPU memory) */
    int32_t *pos = malloc((size_t)n * sizeof *pos);
    if (!pos) {
        lt_pool_free(m->pool, act);
        return lt_errorf(LT_ERR_NOMEM, "forward: out of memory for %lld positions", (long long)n);
    }
    for (int64_t t = 0; t < n; t++) pos[t] = (int32_t)(n_past + t);
    be->copy_in(act + p.pos, pos, n * (int64_t)sizeof(int32_t));
    free(pos);
    int32_t *ids_b = (int32_t *)(act + p.ids);
    be->copy_in(ids_b, ids, n * (int64_t)sizeof(int32_t));
    if (m->embed_lin.q)
        be->embedding_q(m->embed_lin.q, ids_b, act + p.x, n);
    else
        be->embedding(m->embed_lin.f, LT_DTYPE_F32, ids_b, act + p.x, n, H);
    for (int64_t l = 0; l < c->n_layers; l++) lt_layer_forward(m, l, kv, act, &p, n);
    lt_kv_advance(kv, n);

    if (logits) {
        /* only the rows whose logits are wanted go through the final norm and lm_head */
        const int64_t rows = all_logits ? n : 1;
        const float *xin = act + p.x + (n - rows) * H;
        float *xn = act + p.xn;
        be->rmsnorm(xin, m->final_norm, xn, rows, H, (float)c->rms_norm_eps);
        float *out = direct ? logits : act + p.logits;
        lt_apply(m, &m->lm_head, xn, NULL, out, rows, H, V, act + p.qscratch);
        if (!direct) be->copy_out(logits, out, rows * V * (int64_t)sizeof(float));
    }
    lt_pool_free(m->pool, act);
    return NULL;
}

/* ---------------------------------------------------------------- effective weights */

typedef struct lt_effective_fill {
    const lt_model *m;
    int64_t i;
} lt_effective_fill;

static lt_status lt_effective_produce(void *ctx, void *buf, int64_t nbytes) {
    const lt_effective_fill *f = ctx;
    const lt_model *m = f->m;
    const lt_weight_spec *sp = &m->specs[f->i];
    if (m->qw[f->i].comp[LT_QC_CODES]) {
        LT_ASSERT(nbytes == sp->shape[0] * sp->shape[1] * (int64_t)sizeof(float));
        lt_dequantize_rows(&m->qw[f->i], 0, sp->shape[0], buf);
    } else {
        memcpy(buf, m->w[f->i], (size_t)nbytes);
    }
    return NULL;
}

lt_status lt_model_save_effective(const lt_model *m, const char *dir) {
    lt_status st = lt_mkdir_p(dir);
    if (st) return st;
    lt_model_config cfg = m->cfg;
    snprintf(cfg.torch_dtype, sizeof cfg.torch_dtype, "float32");
    char *path = lt_path_join(dir, "config.json");
    if (!path) return lt_errorf(LT_ERR_NOMEM, "out of memory");
    st = lt_config_save(&cfg, path);
    free(path);
    if (st) return st;
    lt_st_entry *e = calloc((size_t)m->n_weights, sizeof *e);
    lt_effective_fill *f = calloc((size_t)m->n_weights, sizeof *f);
    if (!e || !f) st = lt_errorf(LT_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; !st && i < m->n_weights; i++) {
        const lt_weight_spec *sp = &m->specs[i];
        f[i] = (lt_effective_fill){m, i};
        e[i] = (lt_st_entry){.name = sp->name, .dtype_name = "F32", .ndim = sp->ndim,
                             .shape = {sp->shape[0], sp->shape[1]}, .fill = lt_effective_produce, .fill_ctx = &f[i]};
    }
    const lt_st_meta meta[] = {{"format", "pt"}, {"loft.effective_weights", m->opts.quantize ? lt_qformat_name(m->opts.format) : "f32"}};
    if (!st) st = lt_st_write_model(dir, e, m->n_weights, meta, 2, 0);
    free(e);
    free(f);
    return st;
}
