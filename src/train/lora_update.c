/* Whole-adapter operations (see lora.h): the optimizer step over every adapted tensor, and merging an
 * adapter into an f32 model in memory. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_internal.h"
#include "train/lora.h"

/* Every adapted tensor in the fixed order layer-major, module q..down, A then B. */
typedef struct tensor_list {
    int64_t n;
    float **p, **g, **m, **v;
    int64_t *size;
} tensor_list;

static lt_status list_make(lt_lora *a, tensor_list *tl) {
    const int64_t L = lt_lora_n_layers(a);
    int64_t n = 0;
    for (int64_t l = 0; l < L; l++)
        for (int mo = 0; mo < LT_LORA_N_MODULES; mo++) n += 2 * (lt_lora_get(a, l, (lt_lora_module)mo) != NULL);
    memset(tl, 0, sizeof *tl);
    const size_t k = (size_t)(n > 0 ? n : 1);
    tl->p = malloc(k * sizeof(float *));
    tl->g = malloc(k * sizeof(float *));
    tl->m = malloc(k * sizeof(float *));
    tl->v = malloc(k * sizeof(float *));
    tl->size = malloc(k * sizeof(int64_t));
    if (!tl->p || !tl->g || !tl->m || !tl->v || !tl->size)
        return lt_errorf(LT_ERR_NOMEM, "optimizer: out of memory for %lld tensor descriptors", (long long)n);
    for (int64_t l = 0; l < L; l++)
        for (int mo = 0; mo < LT_LORA_N_MODULES; mo++) {
            lt_lora_mod *md = lt_lora_get_mut(a, l, (lt_lora_module)mo);
            if (!md) continue;
            tl->p[tl->n] = md->a, tl->g[tl->n] = md->ga, tl->m[tl->n] = md->ma, tl->v[tl->n] = md->va;
            tl->size[tl->n++] = md->r * md->in;
            tl->p[tl->n] = md->b, tl->g[tl->n] = md->gb, tl->m[tl->n] = md->mb, tl->v[tl->n] = md->vb;
            tl->size[tl->n++] = md->out * md->r;
        }
    return NULL;
}

static void list_free(tensor_list *tl) {
    free(tl->p);
    free(tl->g);
    free(tl->m);
    free(tl->v);
    free(tl->size);
}

lt_status lt_lora_optimizer_step(lt_lora *a, const lt_adamw_cfg *c, double lr, int64_t t, double max_grad_norm,
                                 double *grad_norm) {
    LT_ASSERT(a && c && t >= 1);
    tensor_list tl;
    lt_status st = list_make(a, &tl);
    if (st) {
        list_free(&tl);
        return st;
    }
    const double norm = lt_clip_grad_norm(tl.g, tl.size, tl.n, max_grad_norm);
    if (grad_norm) *grad_norm = norm;
    if (!isfinite(norm)) {
        list_free(&tl);
        return lt_errorf(LT_ERR_INVALID_ARG,
                         "the gradient norm is %g (a NaN or infinity in the gradients): the update is skipped and "
                         "the adapter left unchanged; if it repeats, lower training.lr or set training.max_grad_norm",
                         norm);
    }
    for (int64_t i = 0; i < tl.n; i++) lt_adamw_step(c, lr, t, tl.p[i], tl.g[i], tl.m[i], tl.v[i], tl.size[i]);
    list_free(&tl);
    lt_lora_sync_bf16(a);
    return NULL;
}

/* The Linear of layer l for module mo as the forward pass reads it, and the HF name of its weight. */
static const lt_lin *module_lin(const lt_model *m, int64_t l, lt_lora_module mo) {
    const lt_layer_w *L = &m->layers[l];
    const lt_lin *w[LT_LORA_N_MODULES] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->wg, &L->wu, &L->wd};
    return w[mo];
}

static void module_weight_name(int64_t l, lt_lora_module mo, char *buf, size_t cap) {
    snprintf(buf, cap, "model.layers.%lld.%s.%s.weight", (long long)l, mo <= LT_LORA_O ? "self_attn" : "mlp",
             lt_lora_module_name(mo));
}

lt_status lt_lora_merge(const lt_lora *a, lt_model *m) {
    LT_ASSERT(a && m);
    if (lt_lora_n_layers(a) != m->cfg.n_layers)
        return lt_errorf(LT_ERR_INVALID_ARG,
                         "merge: the adapter has %lld layers, the model %lld (num_hidden_layers): the adapter was "
                         "made for another model; merge it into the base it was trained on",
                         (long long)lt_lora_n_layers(a), (long long)m->cfg.n_layers);
    /* check everything before changing anything: a refused merge leaves the model as it was */
    for (int64_t l = 0; l < m->cfg.n_layers; l++)
        for (int mo = 0; mo < LT_LORA_N_MODULES; mo++) {
            const lt_lora_mod *md = lt_lora_get(a, l, (lt_lora_module)mo);
            if (!md) continue;
            char name[128];
            module_weight_name(l, (lt_lora_module)mo, name, sizeof name);
            const int64_t i = lt_model_spec_find(m->specs, m->n_weights, name);
            if (i < 0)
                return lt_errorf(LT_ERR_INVALID_ARG, "merge: the model has no tensor %s, which the adapter adapts",
                                 name);
            const lt_weight_spec *sp = &m->specs[i];
            if (sp->ndim != 2 || sp->shape[0] != md->out || sp->shape[1] != md->in)
                return lt_errorf(LT_ERR_INVALID_ARG,
                                 "merge: %s is [%lld, %lld] in the model but the adapter's B A is [%lld, %lld]: the "
                                 "adapter was made for another model; merge it into the base it was trained on",
                                 name, (long long)sp->shape[0], (long long)(sp->ndim == 2 ? sp->shape[1] : 1),
                                 (long long)md->out, (long long)md->in);
            const lt_lin *w = module_lin(m, l, (lt_lora_module)mo);
            if (w->q || !w->f)
                return lt_errorf(LT_ERR_UNSUPPORTED,
                                 "merge: %s is held quantized; merge into an f32 model (load it without "
                                 "quantization, or load the dequantized weights lt_model_save_effective writes)",
                                 name);
        }
    for (int64_t l = 0; l < m->cfg.n_layers; l++)
        for (int mo = 0; mo < LT_LORA_N_MODULES; mo++) {
            const lt_lora_mod *md = lt_lora_get(a, l, (lt_lora_module)mo);
            if (!md) continue;
            float *W = (float *)module_lin(m, l, (lt_lora_module)mo)->f; /* the model's own pool block [out, in] */
            const int64_t r = md->r, in = md->in;
            for (int64_t o = 0; o < md->out; o++) {
                float *wr = W + o * in;
                const uint16_t *br = md->b_bf16 + o * r;
                for (int64_t i = 0; i < in; i++) {
                    /* (B A)[o, i] of the BF16 values in double: each product of two BF16 values is exact
                       and r of them sum without loss that matters, so W gets s * (B A) rounded once */
                    double acc = 0;
                    for (int64_t k = 0; k < r; k++)
                        acc += (double)lt_bf16_to_f32(br[k]) * (double)lt_bf16_to_f32(md->a_bf16[k * in + i]);
                    wr[i] = (float)((double)wr[i] + (double)md->scale * acc);
                }
            }
        }
    return NULL;
}
