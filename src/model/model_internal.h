/* Internal to src/model: the model struct and the loading steps shared by the loaders
 * (safetensors directory in model.c, quantized cache in qcache.c, GGUF file in load_gguf.c).
 *
 * A loader: lt_model_new (config -> sorted weight specs, empty holders), then fills, for every
 * spec i, either m->w[i] (f32, a pool block of tag WEIGHTS) or m->qw[i] (quantized: comp[] set;
 * block non-NULL when the pool owns it, NULL when it points into memory the loader keeps mapped,
 * which the loader then releases through m->release), then lt_model_finish (RoPE table, binding
 * of the per-layer pointers). lt_model_free undoes any prefix of this. */
#ifndef LT_MODEL_INTERNAL_H
#define LT_MODEL_INTERNAL_H

#include "model/model.h"

/* A Linear weight as the forward pass sees it: f32, or quantized (q non-NULL). */
typedef struct lt_lin {
    const float *f;
    const lt_qtensor *q;
} lt_lin;

typedef struct lt_layer_w {
    const float *attn_norm, *bq, *bk, *bv, *bo;
    lt_lin wq, wk, wv, wo;
    const float *q_norm, *k_norm;
    const float *mlp_norm, *bg, *bu, *bd;
    lt_lin wg, wu, wd;
} lt_layer_w;

struct lt_model {
    lt_model_config cfg;
    lt_pool *pool;
    const lt_backend *be;
    int64_t n_weights;
    lt_weight_spec *specs; /* [n_weights] */
    float **w;             /* [n_weights], pool blocks, f32 (NULL where quantized) */
    lt_qtensor *qw;        /* [n_weights], format set and block non-NULL where quantized */
    lt_layer_w *layers;    /* [n_layers] */
    const float *final_norm;
    lt_lin embed_lin; /* the embedding table: f32, or quantized (rows dequantized on lookup) */
    lt_lin lm_head;
    lt_load_opts opts;
    lt_quant_summary qsum;
    int64_t qscratch_rows; /* max over the model's quantized linears: K*N products for scratch */
    float *inv_freq; /* [head_dim/2] */
    void *inv_freq_block; /* non-NULL in a device copy: inv_freq is this pool block, not malloc'ed */
    int64_t weight_bytes;
    /* a loader's mapping that m->qw or m->w point into (an mmap'ed cache): released last by
       lt_model_free; NULL when the pool owns everything */
    void (*release)(void *ctx);
    void *release_ctx;
};

/* Allocates m for cfg: specs (sorted by name), empty holders, inv_freq; checks the shape limits
 * the forward pass has. what names the source in messages. */
lt_status lt_model_new(const lt_model_config *cfg, lt_pool *pool, const lt_backend *be, const lt_load_opts *opts,
                       const char *what, lt_model **out);
/* Computes the RoPE table and binds the per-layer pointers; every holder must be filled. */
lt_status lt_model_finish(lt_model *m);
/* Index of the spec named name in specs (sorted by name), or -1. */
int64_t lt_model_spec_find(const lt_weight_spec *specs, int64_t n, const char *name);
/* Whether spec s is held quantized under m->opts; *unaligned when wanted but the input size is not a
 * multiple of the block. */
bool lt_model_want_quant(const lt_model *m, const lt_weight_spec *s, bool *unaligned);
/* Converts src (F32/BF16/F16, n elements, any alignment) into f32 dst. */
void lt_model_to_f32(const void *src, lt_dtype t, float *dst, int64_t n);

#endif
