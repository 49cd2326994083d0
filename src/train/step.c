/* One LoRA training step's gradients (see step.h). Per layer, shapes for T tokens (H hidden,
 * qd = n_heads*hd, kvd = n_kv_heads*hd, I intermediate):
 *
 *   forward                                   saved for backward
 *   xn1 = rmsnorm(x)                          x, xn1            [T,H]
 *   qr,kr,v = xn1 W^T (+b) + LoRA             qr [T,qd], kr [T,kvd] (pre q/k-norm; Qwen3 only), v, xa_{q,k,v}
 *   q,k = qk_norm ? rmsnorm per head : qr,kr; rope(q,k)          q, k (after rope)
 *   att, lse = attention_fwd(q,k,v,doc)       att [T,qd], lse [T,n_heads]
 *   xmid = x + att Wo^T (+b) + LoRA           xmid [T,H], xa_o
 *   xn2 = rmsnorm(xmid)                       xn2
 *   g,u = xn2 W^T (+b) + LoRA                 gate, up [T,I], xa_{gate,up}
 *   h = silu(g)*u;  xout = xmid + h Wd^T (+b) + LoRA              h [T,I], xa_down
 *
 * Backward walks this in reverse with dres = d/d(residual stream): the base input gradients go
 * through the frozen weights (matmul_nn on f32 W [out,in], qlinear_dx on quantized W), each LoRA
 * branch adds its own (lt_lora_backward), and each rmsnorm_bwd accumulates into dres (beta 1).
 * Every backward op is the backend's deterministic one; the forward is the same code whether it
 * runs in the forward pass or as a recomputation under checkpointing, so both modes give the same
 * bits for a given thread count. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/model_internal.h"
#include "train/step.h"

typedef struct step_save {
    float *x, *xn1, *qr, *kr, *q, *k, *v, *att, *lse, *xmid, *xn2, *gate, *up, *h;
    float *xa[LT_LORA_N_MODULES]; /* [T, r] per adapted module (NULL when not adapted) */
} step_save;

typedef struct step_ctx {
    lt_model *m;
    lt_lora *a;
    const lt_train_batch *b;
    int64_t T, H, I, nh, nkv, hd, qd, kvd;
    bool qk_norm; /* Qwen3: qr/kr (the projections before the per-head norm) are kept */
    float eps;
    float *scratch; /* shared: attention / ce / qlinear / LoRA scratch, never two at once */
    float *tmp;     /* [T, H] */
    /* backward buffers */
    float *dres, *dxn, *dI, *dq, *dk, *dv, *dqr, *dkr; /* [T,H] x2, [T,I], [T,qd], [T,kvd] x2, [T,qd], [T,kvd] */
    /* LoRA dropout (p > 0 only): the branch input after dropout and the branch's input gradient,
       [T, max(H, I, qd)] each; the masks are regenerated from the key, never stored */
    double p_drop;
    float *xd, *dxd;
    /* the batch's index arrays in the backend's memory (device memory on the GPU) */
    const int32_t *ids, *pos, *doc;
} step_ctx;

/* ---------------------------------------------------------------- LoRA dropout */

void lt_train_dropout(uint64_t key, int64_t layer, int module, double p, const float *x, float *out, int64_t n) {
    lt_backend_cpu()->dropout(key, layer, module, p, x, out, n); /* the mask stream is the backend's (backend.h) */
}

/* ---------------------------------------------------------------- allocation helpers */

typedef struct act_list {
    void **p;
    int64_t n, cap;
} act_list;

static lt_status act_alloc(lt_pool *pool, act_list *l, int64_t n_floats, const char *what, float **out) {
    *out = NULL;
    if (n_floats <= 0) return NULL;
    int64_t bytes;
    if (!lt_mul_i64(n_floats, (int64_t)sizeof(float), &bytes))
        return lt_errorf(LT_ERR_INVALID_ARG, "train step: the %s buffer overflows", what);
    LT_ASSERT(l->n < l->cap);
    lt_status st = lt_pool_alloc(pool, LT_POOL_ACTIVATIONS, bytes, what, &l->p[l->n]);
    if (st) return lt_status_wrapf(st, "train step activations");
    *out = l->p[l->n++];
    return NULL;
}

static void act_free_all(lt_pool *pool, act_list *l) {
    while (l->n > 0) lt_pool_free(pool, l->p[--l->n]);
}

/* Allocates one layer's saved set except x (the layer input, kept in the inputs array) and xa. */
static lt_status save_alloc(const step_ctx *c, act_list *l, step_save *s) {
    lt_pool *pool = c->m->pool;
    const int64_t T = c->T;
    memset(s, 0, sizeof *s);
    lt_status st = NULL;
    struct {
        float **p;
        int64_t n;
        const char *what;
    } bufs[] = {{&s->xn1, T * c->H, "xn1"},   {&s->qr, c->qk_norm ? T * c->qd : 0, "q pre-norm"},
                {&s->kr, c->qk_norm ? T * c->kvd : 0, "k pre-norm"},
                {&s->q, T * c->qd, "q"},       {&s->k, T * c->kvd, "k"},          {&s->v, T * c->kvd, "v"},
                {&s->att, T * c->qd, "att"},   {&s->lse, T * c->nh, "lse"},       {&s->xmid, T * c->H, "xmid"},
                {&s->xn2, T * c->H, "xn2"},    {&s->gate, T * c->I, "gate"},      {&s->up, T * c->I, "up"},
                {&s->h, T * c->I, "swiglu out"}};
    for (size_t i = 0; !st && i < sizeof bufs / sizeof bufs[0]; i++)
        st = act_alloc(pool, l, bufs[i].n, bufs[i].what, bufs[i].p);
    return st;
}

static lt_status save_alloc_xa(const step_ctx *c, act_list *l, int64_t layer, step_save *s) {
    lt_status st = NULL;
    for (int mo = 0; !st && mo < LT_LORA_N_MODULES; mo++) {
        const lt_lora_mod *md = lt_lora_get(c->a, layer, (lt_lora_module)mo);
        s->xa[mo] = NULL;
        if (md) st = act_alloc(c->m->pool, l, c->T * md->r, "lora xa", &s->xa[mo]);
    }
    return st;
}

/* ---------------------------------------------------------------- forward */

/* y = x W^T (+bias) + LoRA(x); xa gets the LoRA x A^T. */
static void proj_fwd(const step_ctx *c, const lt_lin *w, const float *bias, int64_t layer, lt_lora_module mo,
                     const float *x, float *y, int64_t K, int64_t N, float *xa) {
    const lt_backend *be = c->m->be;
    if (w->q) {
        be->qlinear(x, w->q, bias, y, c->T, K, N, c->scratch); /* deterministic for any thread count */
    } else {
        be->matmul_nt(x, w->f, y, c->T, K, N, 0.0f); /* not `linear`: threaded BLAS bits vary with threads */
        if (bias) be->add_rows(y, bias, c->T, N);
    }
    const lt_lora_mod *md = lt_lora_get(c->a, layer, mo);
    if (!md) return;
    if (c->p_drop > 0.0) {
        be->dropout(c->b->dropout_key, layer, (int)mo, c->p_drop, x, c->xd, c->T * K);
        x = c->xd;
    }
    lt_lora_forward(be, md, x, y, c->T, xa);
}

/* One layer forward from x [T,H] into xout [T,H], filling s (s->x must be x). */
static void layer_fwd(const step_ctx *c, int64_t l, const float *x, step_save *s, float *xout) {
    const lt_model *m = c->m;
    const lt_backend *be = m->be;
    const lt_layer_w *L = &m->layers[l];
    const int64_t T = c->T, H = c->H, I = c->I;
    const int32_t *pos = c->pos;

    be->rmsnorm(x, L->attn_norm, s->xn1, T, H, c->eps);
    proj_fwd(c, &L->wq, L->bq, l, LT_LORA_Q, s->xn1, c->qk_norm ? s->qr : s->q, H, c->qd, s->xa[LT_LORA_Q]);
    proj_fwd(c, &L->wk, L->bk, l, LT_LORA_K, s->xn1, c->qk_norm ? s->kr : s->k, H, c->kvd, s->xa[LT_LORA_K]);
    proj_fwd(c, &L->wv, L->bv, l, LT_LORA_V, s->xn1, s->v, H, c->kvd, s->xa[LT_LORA_V]);
    if (c->qk_norm) {
        be->rmsnorm(s->qr, L->q_norm, s->q, T * c->nh, c->hd, c->eps);
        be->rmsnorm(s->kr, L->k_norm, s->k, T * c->nkv, c->hd, c->eps);
    }
    be->rope(s->q, pos, T, c->nh, c->hd, m->inv_freq);
    be->rope(s->k, pos, T, c->nkv, c->hd, m->inv_freq);
    be->attention_fwd(s->q, s->k, s->v, c->doc, s->att, s->lse, T, c->nh, c->nkv, c->hd, c->scratch);
    proj_fwd(c, &L->wo, L->bo, l, LT_LORA_O, s->att, c->tmp, c->qd, H, s->xa[LT_LORA_O]);
    be->add3(s->xmid, x, c->tmp, T * H);

    be->rmsnorm(s->xmid, L->mlp_norm, s->xn2, T, H, c->eps);
    proj_fwd(c, &L->wg, L->bg, l, LT_LORA_GATE, s->xn2, s->gate, H, I, s->xa[LT_LORA_GATE]);
    proj_fwd(c, &L->wu, L->bu, l, LT_LORA_UP, s->xn2, s->up, H, I, s->xa[LT_LORA_UP]);
    be->swiglu(s->gate, s->up, s->h, T * I);
    proj_fwd(c, &L->wd, L->bd, l, LT_LORA_DOWN, s->h, c->tmp, I, H, s->xa[LT_LORA_DOWN]);
    be->add3(xout, s->xmid, c->tmp, T * H);
}

/* ---------------------------------------------------------------- backward */

/* dx (beta 0: overwrite, 1: accumulate) += dy W (the frozen base) + the LoRA branch's input grad,
 * and the LoRA grads. x: the projection's input [T,K]; dy [T,N]. */
static void proj_bwd(const step_ctx *c, const lt_lin *w, int64_t layer, lt_lora_module mo, const float *x,
                     const float *dy, const float *xa, float *dx, int64_t K, int64_t N, float beta) {
    const lt_backend *be = c->m->be;
    if (w->q)
        be->qlinear_dx(dy, w->q, dx, c->T, K, N, beta, c->scratch);
    else
        be->matmul_nn(dy, w->f, dx, c->T, N, K, beta); /* dx[T,K] = dy[T,N] @ W[N,K] */
    lt_lora_mod *md = lt_lora_get_mut(c->a, layer, mo);
    if (!md) return;
    if (c->p_drop > 0.0) {
        /* the branch saw xd = mask * x / (1-p): its grads use xd, and its input gradient goes back
           through the same mask */
        const int64_t n = c->T * K;
        be->dropout(c->b->dropout_key, layer, (int)mo, c->p_drop, x, c->xd, n);
        be->zero(c->dxd, n);
        lt_lora_backward(be, md, c->xd, dy, xa, c->dxd, c->T, c->scratch);
        be->dropout(c->b->dropout_key, layer, (int)mo, c->p_drop, c->dxd, c->dxd, n);
        be->add(dx, c->dxd, n);
        return;
    }
    lt_lora_backward(be, md, x, dy, xa, dx, c->T, c->scratch);
}

/* Given c->dres = d/d(xout), leaves c->dres = d/d(x) (x = s->x, the layer input). */
static void layer_bwd(const step_ctx *c, int64_t l, const float *x, step_save *s) {
    const lt_model *m = c->m;
    const lt_backend *be = m->be;
    const lt_layer_w *L = &m->layers[l];
    const int64_t T = c->T, H = c->H, I = c->I;
    const int32_t *pos = c->pos;

    /* MLP: xout = xmid + down(h) */
    proj_bwd(c, &L->wd, l, LT_LORA_DOWN, s->h, c->dres, s->xa[LT_LORA_DOWN], c->dI, I, H, 0.0f);
    /* dgate, dup overwrite gate, up in place (allowed; this layer's saved set is used once) */
    be->swiglu_bwd(s->gate, s->up, c->dI, s->gate, s->up, T * I);
    proj_bwd(c, &L->wg, l, LT_LORA_GATE, s->xn2, s->gate, s->xa[LT_LORA_GATE], c->dxn, H, I, 0.0f);
    proj_bwd(c, &L->wu, l, LT_LORA_UP, s->xn2, s->up, s->xa[LT_LORA_UP], c->dxn, H, I, 1.0f);
    be->rmsnorm_bwd(s->xmid, L->mlp_norm, c->dxn, c->dres, T, H, c->eps, 1.0f); /* dres = d/d(xmid) */

    /* attention: xmid = x + o(att) */
    float *datt = c->dqr; /* [T, qd], free until the q/k-norm backward */
    proj_bwd(c, &L->wo, l, LT_LORA_O, s->att, c->dres, s->xa[LT_LORA_O], datt, c->qd, H, 0.0f);
    be->attention_bwd(s->q, s->k, s->v, c->doc, s->att, s->lse, datt, c->dq, c->dk, c->dv, T, c->nh, c->nkv,
                      c->hd, c->scratch);
    be->rope_bwd(c->dq, pos, T, c->nh, c->hd, m->inv_freq);
    be->rope_bwd(c->dk, pos, T, c->nkv, c->hd, m->inv_freq);
    const float *dqr = c->dq, *dkr = c->dk;
    if (c->qk_norm) {
        be->rmsnorm_bwd(s->qr, L->q_norm, c->dq, c->dqr, T * c->nh, c->hd, c->eps, 0.0f);
        be->rmsnorm_bwd(s->kr, L->k_norm, c->dk, c->dkr, T * c->nkv, c->hd, c->eps, 0.0f);
        dqr = c->dqr;
        dkr = c->dkr;
    }
    proj_bwd(c, &L->wq, l, LT_LORA_Q, s->xn1, dqr, s->xa[LT_LORA_Q], c->dxn, H, c->qd, 0.0f);
    proj_bwd(c, &L->wk, l, LT_LORA_K, s->xn1, dkr, s->xa[LT_LORA_K], c->dxn, H, c->kvd, 1.0f);
    proj_bwd(c, &L->wv, l, LT_LORA_V, s->xn1, c->dv, s->xa[LT_LORA_V], c->dxn, H, c->kvd, 1.0f);
    be->rmsnorm_bwd(x, L->attn_norm, c->dxn, c->dres, T, H, c->eps, 1.0f); /* dres = d/d(x) */
}

/* ---------------------------------------------------------------- the step */

static lt_step_times g_times; /* benchmarks only: written by the (single) calling thread */

lt_step_times lt_train_step_times(void) { return g_times; }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

lt_status lt_train_targets_from_hf(int64_t T, const int32_t *labels, const int32_t *doc, int32_t *targets,
                                   int32_t *pos) {
    LT_ASSERT(T >= 0 && labels && targets && pos);
    int64_t start = 0;
    for (int64_t t = 0; t < T; t++) {
        if (doc && t > 0 && doc[t] != doc[t - 1]) {
            for (int64_t u = 0; u < t - 1; u++)
                if (doc[u] == doc[t])
                    return lt_errorf(LT_ERR_INVALID_ARG,
                                     "batch: doc id %d at position %lld comes back after another document "
                                     "(documents must be contiguous runs)",
                                     (int)doc[t], (long long)t);
            start = t;
        }
        if (t - start > INT32_MAX)
            return lt_errorf(LT_ERR_INVALID_ARG, "batch: position %lld exceeds the int32 range", (long long)t);
        pos[t] = (int32_t)(t - start);
        bool last = t + 1 == T || (doc && doc[t + 1] != doc[t]);
        targets[t] = last ? LT_IGNORE_INDEX : labels[t + 1];
    }
    return NULL;
}

static lt_status check_batch(const lt_model *m, const lt_train_batch *b) {
    const int64_t V = m->cfg.vocab_size;
    if (b->T <= 0 || b->T > INT32_MAX)
        return lt_errorf(LT_ERR_INVALID_ARG, "train step: %lld tokens given, expected 1 .. 2^31-1", (long long)b->T);
    for (int64_t t = 0; t < b->T; t++) {
        if (b->ids[t] < 0 || b->ids[t] >= V)
            return lt_errorf(LT_ERR_INVALID_ARG, "train step: token id %d at position %lld is outside [0, %lld)",
                             (int)b->ids[t], (long long)t, (long long)V);
        if (b->targets[t] != LT_IGNORE_INDEX && (b->targets[t] < 0 || b->targets[t] >= V))
            return lt_errorf(LT_ERR_INVALID_ARG,
                             "train step: target %d at position %lld is neither -100 nor in [0, %lld)",
                             (int)b->targets[t], (long long)t, (long long)V);
        if (b->pos[t] < 0)
            return lt_errorf(LT_ERR_INVALID_ARG, "train step: position %d at token %lld is negative", (int)b->pos[t],
                             (long long)t);
    }
    return NULL;
}

static bool any_quant(const lt_model *m) {
    if (m->lm_head.q) return true;
    for (int64_t l = 0; l < m->cfg.n_layers; l++) {
        const lt_layer_w *L = &m->layers[l];
        if (L->wq.q || L->wk.q || L->wv.q || L->wo.q || L->wg.q || L->wu.q || L->wd.q) return true;
    }
    return false;
}

static int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

static int64_t scratch_floats(const step_ctx *c) {
    const lt_model *m = c->m;
    const int64_t T = c->T, H = c->H, V = m->cfg.vocab_size;
    int64_t rmax = 0;
    for (int64_t l = 0; l < m->cfg.n_layers; l++)
        for (int mo = 0; mo < LT_LORA_N_MODULES; mo++) {
            const lt_lora_mod *md = lt_lora_get(c->a, l, (lt_lora_module)mo);
            if (md) rmax = imax(rmax, md->r);
        }
    if (m->be->own_workspace) return T * rmax; /* only the LoRA backward's [T, r] buffer */
    int64_t n = imax(lt_attention_train_scratch(T, c->nh, c->hd), lt_ce_scratch(T, H, V));
    if (any_quant(m)) {
        const int64_t sh[][2] = {{H, c->qd}, {H, c->kvd}, {c->qd, H}, {H, c->I}, {c->I, H}};
        for (size_t i = 0; i < sizeof sh / sizeof sh[0]; i++)
            n = imax(n, imax(lt_qlinear_scratch(T, sh[i][0], sh[i][1]), lt_qlinear_dx_scratch(T, sh[i][0], sh[i][1])));
    }
    if (m->lm_head.q) n = imax(n, lt_qlinear_scratch(1, H, V)); /* lt_train_logits, one row at a time */
    return imax(n, T * rmax);
}

/* backward false: the forward and the loss only (eval): one layer's saved set reused, no dropout,
   no gradient touched (the CE's input gradient goes to a scratch buffer and is dropped). */
static lt_status run_step(lt_model *m, lt_lora *a, const lt_train_batch *b, double loss_denominator,
                          bool checkpointing, bool backward, float *logits, double *sum_ce, int64_t *n_scored) {
    LT_ASSERT(m && a && b && b->ids && b->targets && b->pos && sum_ce && n_scored);
    *sum_ce = 0;
    *n_scored = 0;
    if (!(loss_denominator > 0))
        return lt_errorf(LT_ERR_INVALID_ARG, "train step: loss denominator %g must be positive", loss_denominator);
    lt_status st = check_batch(m, b);
    if (st) return st;
    const lt_model_config *mc = &m->cfg;
    step_ctx c = {.m = m, .a = a, .b = b, .T = b->T, .H = mc->hidden_size, .I = mc->intermediate_size,
                  .nh = mc->n_heads, .nkv = mc->n_kv_heads, .hd = mc->head_dim, .qk_norm = mc->qk_norm,
                  .eps = (float)mc->rms_norm_eps};
    c.qd = c.nh * c.hd;
    c.kvd = c.nkv * c.hd;
    const int64_t T = c.T, H = c.H, NL = mc->n_layers;
    /* sizes: the largest product below is T * max(I, qd, V-chunk): T <= 2^31 and the dims are
       bounded by the loader, but check the biggest ones anyway */
    int64_t chk;
    if (!lt_mul_i64(T, imax(imax(c.I, c.qd), H), &chk) || !lt_mul_i64(chk, 4 * (NL + 2), &chk))
        return lt_errorf(LT_ERR_INVALID_ARG, "train step: %lld tokens overflow the activation size", (long long)T);

    act_list *l = calloc(1, sizeof *l);
    if (l) { /* blocks: per layer an input + 13 saved + 7 xa; a fixed number besides */
        l->cap = 40 + (NL + 1) * (1 + 13 + LT_LORA_N_MODULES);
        l->p = calloc((size_t)l->cap, sizeof *l->p);
    }
    step_save *saves = calloc((size_t)(checkpointing ? 1 : NL), sizeof *saves);
    float **xs = calloc((size_t)NL + 1, sizeof *xs); /* layer inputs, xs[NL] = the final hidden */
    if (!l || !l->p || !saves || !xs) {
        if (l) free(l->p);
        free(l);
        free(saves);
        free(xs);
        return lt_errorf(LT_ERR_NOMEM, "train step: out of memory for %lld layer descriptors", (long long)NL);
    }
    lt_pool *pool = m->pool;
    st = act_alloc(pool, l, scratch_floats(&c), "train step scratch", &c.scratch);
    if (!st) st = act_alloc(pool, l, T * H, "train step tmp", &c.tmp);
    for (int64_t i = 0; !st && i <= NL; i++) st = act_alloc(pool, l, T * H, "layer input", &xs[i]);
    const int64_t n_saves = checkpointing ? 1 : NL;
    for (int64_t i = 0; !st && i < n_saves; i++) {
        st = save_alloc(&c, l, &saves[i]);
        /* without checkpointing layer i's xa buffers have layer i's ranks; with it, one set sized
           by the largest rank of each module is reused (allocated per layer below) */
        if (!st && !checkpointing) st = save_alloc_xa(&c, l, i, &saves[i]);
    }
    if (!st && checkpointing) {
        /* one xa set, each module's buffer sized for the largest rank any layer gives it */
        for (int mo = 0; !st && mo < LT_LORA_N_MODULES; mo++) {
            int64_t r = 0;
            for (int64_t i = 0; i < NL; i++) {
                const lt_lora_mod *md = lt_lora_get(a, i, (lt_lora_module)mo);
                if (md) r = imax(r, md->r);
            }
            st = act_alloc(pool, l, T * r, "lora xa", &saves[0].xa[mo]);
        }
    }
    float *xnf = NULL;
    if (!st) st = act_alloc(pool, l, T * H, "final normed hidden", &xnf);
    if (!st) st = act_alloc(pool, l, T * H, "dres", &c.dres);
    if (!st) st = act_alloc(pool, l, T * H, "dxn", &c.dxn);
    if (!st) st = act_alloc(pool, l, T * c.I, "dI", &c.dI);
    if (!st) st = act_alloc(pool, l, T * c.qd, "dq", &c.dq);
    if (!st) st = act_alloc(pool, l, T * c.kvd, "dk", &c.dk);
    if (!st) st = act_alloc(pool, l, T * c.kvd, "dv", &c.dv);
    if (!st) st = act_alloc(pool, l, T * c.qd, "dqr", &c.dqr);
    if (!st) st = act_alloc(pool, l, T * c.kvd, "dkr", &c.dkr);
    c.p_drop = backward ? lt_lora_get_cfg(a)->dropout : 0.0;
    if (!st && c.p_drop > 0.0) {
        const int64_t kmax = imax(imax(H, c.I), c.qd);
        st = act_alloc(pool, l, T * kmax, "lora dropout input", &c.xd);
        if (!st) st = act_alloc(pool, l, T * kmax, "lora dropout grad", &c.dxd);
    }
    /* the batch's index arrays, copied into the backend's memory: ids, pos, doc, and for the loss the
       scored rows' indices and targets (filled below) */
    float *idx_block = NULL;
    if (!st) st = act_alloc(pool, l, 5 * T, "batch indices", &idx_block);
    if (st) goto done;

    const lt_backend *be = m->be;
    int32_t *ids_d = (int32_t *)idx_block, *pos_d = ids_d + T, *doc_d = pos_d + T, *sc_idx_d = doc_d + T,
            *sc_tgt_d = sc_idx_d + T;
    be->copy_in(ids_d, b->ids, T * (int64_t)sizeof(int32_t));
    be->copy_in(pos_d, b->pos, T * (int64_t)sizeof(int32_t));
    if (b->doc) be->copy_in(doc_d, b->doc, T * (int64_t)sizeof(int32_t));
    c.ids = ids_d;
    c.pos = pos_d;
    c.doc = b->doc ? doc_d : NULL;
    /* embedding (frozen) */
    if (m->embed_lin.q)
        be->embedding_q(m->embed_lin.q, ids_d, xs[0], T);
    else
        be->embedding(m->embed_lin.f, LT_DTYPE_F32, ids_d, xs[0], T, H);
    double t0 = now_s();
    for (int64_t i = 0; i < NL; i++) {
        step_save *s = &saves[checkpointing ? 0 : i];
        s->x = xs[i];
        layer_fwd(&c, i, xs[i], s, xs[i + 1]);
    }
    double t1 = now_s();
    if (backward) g_times.forward += t1 - t0;
    /* final norm + fused lm_head / CE: dxnf = (1/denominator) d(sum_ce)/d(xnf) */
    be->rmsnorm(xs[NL], m->final_norm, xnf, T, H, c.eps);
    if (logits) { /* [T, V] = xnf lm_head^T, row by row through the inference linear, each row copied out
                     to the caller's (host) buffer */
        const int64_t V = mc->vocab_size;
        float *row = NULL;
        st = act_alloc(pool, l, V, "logits row", &row);
        for (int64_t t = 0; !st && t < T; t++) {
            if (m->lm_head.q)
                be->qlinear(xnf + t * H, m->lm_head.q, NULL, row, 1, H, V, c.scratch);
            else
                be->matmul_nt(xnf + t * H, m->lm_head.f, row, 1, H, V, 0.0f);
            be->copy_out(logits + t * V, row, V * (int64_t)sizeof(float));
        }
        goto done;
    }
    int64_t n_valid = 0;
    float *dxnf = c.dxn;
    /* Only scored rows reach the lm_head: with completion-only labels most rows are masked, and the
       [rows x V x H] products are the largest of the step. The scored rows are gathered (in order)
       into tmp, their gradient computed into dres and scattered back; dres and tmp are free here. */
    int64_t n_sc = 0;
    for (int64_t t = 0; t < T; t++) n_sc += b->targets[t] != LT_IGNORE_INDEX;
    int32_t *sc = malloc((size_t)(2 * (n_sc > 0 ? n_sc : 1)) * sizeof(int32_t)); /* indices, then targets */
    if (!sc) {
        st = lt_errorf(LT_ERR_NOMEM, "train step: out of memory for %lld targets", (long long)n_sc);
        goto done;
    }
    for (int64_t t = 0, k = 0; t < T; t++)
        if (b->targets[t] != LT_IGNORE_INDEX) {
            sc[k] = (int32_t)t;
            sc[n_sc + k++] = b->targets[t];
        }
    be->copy_in(sc_idx_d, sc, n_sc * (int64_t)sizeof(int32_t));
    be->copy_in(sc_tgt_d, sc + n_sc, n_sc * (int64_t)sizeof(int32_t));
    free(sc);
    if (n_sc == T) {
        *sum_ce = be->ce_loss(xnf, m->lm_head.f, m->lm_head.q, sc_tgt_d, backward ? dxnf : NULL,
                              (float)(1.0 / loss_denominator), T, H, mc->vocab_size, &n_valid, c.scratch);
    } else {
        be->gather_rows(xnf, sc_idx_d, n_sc, H, c.tmp);
        *sum_ce = n_sc == 0 ? 0.0
                            : be->ce_loss(c.tmp, m->lm_head.f, m->lm_head.q, sc_tgt_d, backward ? c.dres : NULL,
                                          (float)(1.0 / loss_denominator), n_sc, H, mc->vocab_size, &n_valid,
                                          c.scratch);
        if (backward) {
            be->zero(dxnf, T * H);
            be->scatter_rows(c.dres, sc_idx_d, n_sc, H, dxnf);
        }
    }
    *n_scored = n_valid;
    if (!backward) goto done;
    t0 = now_s();
    g_times.ce += t0 - t1;
    be->rmsnorm_bwd(xs[NL], m->final_norm, dxnf, c.dres, T, H, c.eps, 0.0f);

    for (int64_t i = NL - 1; i >= 0; i--) {
        step_save *s = &saves[checkpointing ? 0 : i];
        if (checkpointing) { /* recompute layer i's saved set; its output goes to tmp2 = xnf */
            s->x = xs[i];
            layer_fwd(&c, i, xs[i], s, xnf);
        }
        layer_bwd(&c, i, xs[i], s);
    }
    g_times.backward += now_s() - t0;
done:
    act_free_all(pool, l);
    free(l->p);
    free(l);
    free(saves);
    free(xs);
    return st;
}

lt_status lt_train_step_grads(lt_model *m, lt_lora *a, const lt_train_batch *b, double loss_denominator,
                              bool checkpointing, double *sum_ce, int64_t *n_scored) {
    return run_step(m, a, b, loss_denominator, checkpointing, true, NULL, sum_ce, n_scored);
}

lt_status lt_train_eval_loss(lt_model *m, lt_lora *a, const lt_train_batch *b, double *sum_ce, int64_t *n_scored) {
    return run_step(m, a, b, 1.0, true, false, NULL, sum_ce, n_scored);
}

lt_status lt_train_logits(lt_model *m, lt_lora *a, const lt_train_batch *b, float *logits) {
    double s;
    int64_t n;
    return run_step(m, a, b, 1.0, true, false, logits, &s, &n);
}
