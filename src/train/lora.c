/* train/lora — LoRA adapters (see lora.h for the maths and the storage).
 *
 * Compute copies. forward/backward compute with the BF16 weights converted exactly to f32. The
 * backend's GEMMs take f32 operands in fixed layouts, so each module also keeps (tag ADAPTER,
 * refreshed by lt_lora_sync_bf16, never touched by the optimizer):
 *   at  [in, r]   = f32(A_bf16)^T       x A^T      as matmul_nn(x, at)
 *   af  [r, in]   = f32(A_bf16)         dxa A      as matmul_nn(dxa, af)
 *   bs  [out, r]  = fl32(s * f32(B_bf16))          s dy B     as matmul_nn(dy, bs)
 *   bst [r, out]  = bs^T                            s xa B^T   as matmul_nn(xa, bst) (beta = 1)
 * Folding s into B lets forward accumulate into y without a [T, out] temporary. PEFT rounds
 * differently ((xa B^T) then * s, each in f32): the two agree to ~1 ulp, far inside the 1e-5
 * relative budget the reference test allows.
 *
 * Why matmul_nn/matmul_tn and not be->linear: the CPU linear is one OpenBLAS sgemm whose bits
 * depend on OpenBLAS's thread count and on the call's shape; the training GEMMs cut the output
 * into fixed tiles (128 rows) computed by single-threaded calls, so results are identical for
 * any lt_threads count, and a call on rows [128k, 128k + n) of a larger input gives the same
 * bits as the larger call. lt_lora_forward with xa == NULL relies on the latter: it runs in
 * chunks of LT_LORA_ROWS rows through a per-adapter scratch (so it is not reentrant for one
 * lt_lora when xa is NULL).
 *
 * forward/backward accept only lt_lora_mod pointers obtained from lt_lora_get/lt_lora_get_mut
 * (the compute copies live in the private struct that embeds them).
 */
#include "train/lora.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Row chunk of forward without xa: the training GEMMs' row tile (cpu_train_ops.c LT_TR_TM), so
 * chunked calls reproduce the full call's tiles exactly. */
#define LT_LORA_ROWS 128
/* Philox counter word 3 of the init stream: a domain tag ("LoRA") so these draws never meet
 * other users of the same seed that count from zero. */
#define LT_LORA_RNG_DOMAIN 0x4C6F5241u

typedef struct lora_mod_priv {
    lt_lora_mod pub; /* first: lt_lora_mod * converts back to the wrapper */
    bool used;
    float *at, *af, *bs, *bst;
    struct lt_lora *owner;
} lora_mod_priv;

struct lt_lora {
    lt_pool *pool;
    lt_lora_cfg cfg;
    int64_t n_layers;
    lora_mod_priv *mods; /* [n_layers][LT_LORA_N_MODULES] */
    float *fwd_scratch;  /* LT_LORA_ROWS * max r floats */
};

static const char *const k_names[LT_LORA_N_MODULES] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                       "gate_proj", "up_proj", "down_proj"};
static const char *const k_short[LT_LORA_N_MODULES] = {"q", "k", "v", "o", "gate", "up", "down"};

const char *lt_lora_module_name(lt_lora_module m) { return (int)m >= 0 && m < LT_LORA_N_MODULES ? k_names[m] : NULL; }

bool lt_lora_module_from_name(const char *name, lt_lora_module *out) {
    if (!name) return false;
    for (int m = 0; m < LT_LORA_N_MODULES; m++) {
        if (strcmp(name, k_names[m]) == 0 || strcmp(name, k_short[m]) == 0) {
            *out = (lt_lora_module)m;
            return true;
        }
    }
    return false;
}

/* [out, in] of module m (HF Linear weight layout). */
static void module_shape(const lt_model_config *mc, int m, int64_t *out, int64_t *in) {
    const int64_t h = mc->hidden_size, q = mc->n_heads * mc->head_dim, kv = mc->n_kv_heads * mc->head_dim,
                  f = mc->intermediate_size;
    switch (m) {
    case LT_LORA_Q:
        *out = q, *in = h;
        break;
    case LT_LORA_K:
    case LT_LORA_V:
        *out = kv, *in = h;
        break;
    case LT_LORA_O:
        *out = h, *in = q;
        break;
    case LT_LORA_GATE:
    case LT_LORA_UP:
        *out = f, *in = h;
        break;
    default:
        *out = h, *in = f;
        break; /* down */
    }
}

/* PEFT's init of A: kaiming_uniform_(a = sqrt(5)) has gain sqrt(2 / (1 + 5)) and bound
 * gain * sqrt(3 / fan_in) = 1 / sqrt(in). Element i of A (row-major [r, in]) takes word i % 4 of
 * the Philox4x32-10 block with key = seed (lo, hi) and counter = {i / 4, layer, module, "LoRA"};
 * u = (word >> 8) * 2^-24 in [0, 1) and A[i] = fl32((2u - 1) * bound), the product formed in
 * double (2u - 1 is exact there), so |A[i]| <= fl32(bound). */
static void init_a(float *a, int64_t n, int64_t in, uint64_t seed, int64_t layer, int m) {
    const double bound = 1.0 / sqrt((double)in);
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t blk[4];
    for (int64_t i = 0; i < n; i++) {
        if (i % 4 == 0) {
            const uint32_t ctr[4] = {(uint32_t)(i / 4), (uint32_t)layer, (uint32_t)m, LT_LORA_RNG_DOMAIN};
            lt_philox4x32_raw(ctr, key, blk);
        }
        const double u = (double)(blk[i % 4] >> 8) * 0x1p-24;
        a[i] = (float)((2.0 * u - 1.0) * bound);
    }
}

static void sync_mod(lora_mod_priv *p) {
    lt_lora_mod *m = &p->pub;
    const int64_t r = m->r, in = m->in, out = m->out;
    for (int64_t j = 0; j < r; j++) {
        for (int64_t i = 0; i < in; i++) {
            const uint16_t h = lt_f32_to_bf16(m->a[j * in + i]);
            const float f = lt_bf16_to_f32(h);
            m->a_bf16[j * in + i] = h;
            p->af[j * in + i] = f;
            p->at[i * r + j] = f;
        }
    }
    for (int64_t o = 0; o < out; o++) {
        for (int64_t j = 0; j < r; j++) {
            const uint16_t h = lt_f32_to_bf16(m->b[o * r + j]);
            const float f = m->scale * lt_bf16_to_f32(h); /* f32 product, as torch's tensor * scalar */
            m->b_bf16[o * r + j] = h;
            p->bs[o * r + j] = f;
            p->bst[j * out + o] = f;
        }
    }
}

/* Carves 64-byte-aligned arrays out of one pool block. */
static size_t align64(size_t n) { return (n + 63u) & ~(size_t)63u; }

static lt_status alloc_mod(lt_lora *a, lora_mod_priv *p, const char *what) {
    lt_lora_mod *m = &p->pub;
    const size_t na = (size_t)(m->r * m->in), nb = (size_t)(m->out * m->r);
    /* ADAPTER: a_bf16, b_bf16, a, b, ga, gb, at, af, bs, bst. Sizes were overflow-checked by the
     * caller (r * (in + out) * 64 fits in int64). */
    const size_t sz_adapter = align64(na * 2) + align64(nb * 2) + 4 * align64(na * 4) + 4 * align64(nb * 4);
    const size_t sz_opt = 2 * align64(na * 4) + 2 * align64(nb * 4);
    void *blk = NULL, *opt = NULL;
    lt_status st = lt_pool_alloc(a->pool, LT_POOL_ADAPTER, (int64_t)sz_adapter, what, &blk);
    if (st) return st;
    st = lt_pool_alloc(a->pool, LT_POOL_OPTIMIZER, (int64_t)sz_opt, what, &opt);
    if (st) {
        lt_pool_free(a->pool, blk);
        return st;
    }
    uint8_t *c = blk;
#define TAKE(ptr, type, count)                                                                                         \
    do {                                                                                                               \
        (ptr) = (type *)(void *)c;                                                                                     \
        c += align64((count) * sizeof(type));                                                                          \
    } while (0)
    TAKE(m->a_bf16, uint16_t, na);
    TAKE(m->b_bf16, uint16_t, nb);
    TAKE(m->a, float, na);
    TAKE(m->ga, float, na);
    TAKE(p->at, float, na);
    TAKE(p->af, float, na);
    TAKE(m->b, float, nb);
    TAKE(m->gb, float, nb);
    TAKE(p->bs, float, nb);
    TAKE(p->bst, float, nb);
    c = opt;
    TAKE(m->ma, float, na);
    TAKE(m->va, float, na);
    TAKE(m->mb, float, nb);
    TAKE(m->vb, float, nb);
#undef TAKE
    return NULL;
}

/* Effective rank and alpha of module m, with the key to name in messages. */
static lt_status check_cfg(const lt_model_config *mc, const lt_lora_cfg *c) {
    if (c->targets == 0)
        return lt_errorf(LT_ERR_INVALID_ARG, "lora.targets: no module selected; expected at least one of q_proj, "
                                             "k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj");
    if (c->targets & ~LT_LORA_ALL_LINEAR)
        return lt_errorf(LT_ERR_INVALID_ARG, "lora.targets: bits 0x%x name no module; expected only bits 0..%d",
                         c->targets & ~LT_LORA_ALL_LINEAR, LT_LORA_N_MODULES - 1);
    if (!(c->dropout >= 0.0 && c->dropout < 1.0))
        return lt_errorf(LT_ERR_INVALID_ARG, "lora.dropout: %g is not a probability in [0, 1)", c->dropout);
    if (mc->n_layers < 1 || mc->hidden_size < 1 || mc->intermediate_size < 1 || mc->n_heads < 1 || mc->n_kv_heads < 1 ||
        mc->head_dim < 1)
        return lt_errorf(LT_ERR_INVALID_ARG,
                         "lora: the model config has a non-positive size (layers %lld, hidden "
                         "%lld, intermediate %lld, heads %lld/%lld, head_dim %lld)",
                         (long long)mc->n_layers, (long long)mc->hidden_size, (long long)mc->intermediate_size,
                         (long long)mc->n_heads, (long long)mc->n_kv_heads, (long long)mc->head_dim);
    for (int m = 0; m < LT_LORA_N_MODULES; m++) {
        if (c->r_module[m] < 0)
            return lt_errorf(LT_ERR_INVALID_ARG, "lora.r_module.%s: %d is negative; expected 0 (use lora.r) or a rank",
                             k_names[m], c->r_module[m]);
        if (c->alpha_module[m] != 0.0 && !(c->alpha_module[m] > 0.0 && isfinite(c->alpha_module[m])))
            return lt_errorf(LT_ERR_INVALID_ARG,
                             "lora.alpha_module.%s: %g is not positive; expected 0 (use lora.alpha) or > 0", k_names[m],
                             c->alpha_module[m]);
        if (!(c->targets & (1u << m))) continue;
        const bool own_r = c->r_module[m] != 0;
        const int64_t r = own_r ? c->r_module[m] : c->r;
        if (r < 1)
            return lt_errorf(LT_ERR_INVALID_ARG, "%s%s: rank %lld; expected >= 1", own_r ? "lora.r_module." : "lora.r",
                             own_r ? k_names[m] : "", (long long)r);
        int64_t out, in;
        module_shape(mc, m, &out, &in);
        const int64_t lim = in < out ? in : out;
        if (r > lim)
            return lt_errorf(LT_ERR_INVALID_ARG,
                             "%s%s: rank %lld exceeds min(in, out) = %lld of %s [%lld, %lld]; "
                             "use a rank <= %lld",
                             own_r ? "lora.r_module." : "lora.r", own_r ? k_names[m] : "", (long long)r, (long long)lim,
                             k_names[m], (long long)out, (long long)in, (long long)lim);
        if (c->alpha_module[m] == 0.0 && !(c->alpha > 0.0 && isfinite(c->alpha)))
            return lt_errorf(LT_ERR_INVALID_ARG, "lora.alpha: %g; expected a finite value > 0", c->alpha);
        int64_t t1, t2;
        if (!lt_add_i64(in, out, &t1) || !lt_mul_i64(t1, r, &t2) || !lt_mul_i64(t2, 64, &t2) ||
            !lt_mul_i64(t2, mc->n_layers, &t2) || r * in / 4 > (int64_t)UINT32_MAX)
            return lt_errorf(LT_ERR_INVALID_ARG, "lora.r: rank %lld on %s [%lld, %lld] x %lld layers overflows",
                             (long long)r, k_names[m], (long long)out, (long long)in, (long long)mc->n_layers);
    }
    if (mc->n_layers > (int64_t)UINT32_MAX)
        return lt_errorf(LT_ERR_INVALID_ARG, "lora: %lld layers; expected < 2^32", (long long)mc->n_layers);
    return NULL;
}

lt_status lt_lora_create(const lt_model_config *mc, const lt_lora_cfg *c, lt_pool *pool, lt_lora **out) {
    LT_ASSERT(mc && c && pool && out);
    *out = NULL;
    lt_status st = check_cfg(mc, c);
    if (st) return st;
    lt_lora *a = calloc(1, sizeof *a);
    if (!a) return lt_errorf(LT_ERR_NOMEM, "lora: out of memory for the adapter table");
    a->pool = pool;
    a->cfg = *c;
    a->n_layers = mc->n_layers;
    a->mods = calloc((size_t)mc->n_layers * LT_LORA_N_MODULES, sizeof *a->mods);
    if (!a->mods) {
        free(a);
        return lt_errorf(LT_ERR_NOMEM, "lora: out of memory for %lld layers' module table", (long long)mc->n_layers);
    }
    int64_t max_r = 0;
    for (int64_t l = 0; l < mc->n_layers && !st; l++) {
        for (int m = 0; m < LT_LORA_N_MODULES && !st; m++) {
            if (!(c->targets & (1u << m))) continue;
            lora_mod_priv *p = &a->mods[l * LT_LORA_N_MODULES + m];
            lt_lora_mod *mm = &p->pub;
            mm->module = (lt_lora_module)m;
            mm->layer = l;
            module_shape(mc, m, &mm->out, &mm->in);
            mm->r = c->r_module[m] ? c->r_module[m] : c->r;
            const double alpha = c->alpha_module[m] != 0.0 ? c->alpha_module[m] : c->alpha;
            /* PEFT: scaling = lora_alpha / r (or / math.sqrt(r)) as a Python float; torch casts it to
             * f32 when it multiplies the f32 branch output. */
            mm->scale = (float)(c->rslora ? alpha / sqrt((double)mm->r) : alpha / (double)mm->r);
            p->owner = a;
            char what[96];
            snprintf(what, sizeof what, "lora.layers.%lld.%s", (long long)l, k_names[m]);
            st = alloc_mod(a, p, what);
            if (st) break;
            p->used = true;
            init_a(mm->a, mm->r * mm->in, mm->in, c->seed, l, m);
            sync_mod(p); /* B stays 0 (the pool zeroes) */
            if (mm->r > max_r) max_r = mm->r;
        }
    }
    if (!st)
        st = lt_pool_alloc(pool, LT_POOL_SCRATCH, LT_LORA_ROWS * max_r * (int64_t)sizeof(float), "lora.forward_scratch",
                           (void **)&a->fwd_scratch);
    if (st) {
        lt_lora_free(a);
        return lt_status_wrapf(st, "lora: allocating the adapters");
    }
    *out = a;
    return NULL;
}

void lt_lora_free(lt_lora *a) {
    if (!a) return;
    for (int64_t i = 0; i < a->n_layers * LT_LORA_N_MODULES; i++) {
        if (!a->mods[i].used) continue;
        lt_pool_free(a->pool, a->mods[i].pub.a_bf16);
        lt_pool_free(a->pool, a->mods[i].pub.ma);
    }
    lt_pool_free(a->pool, a->fwd_scratch);
    free(a->mods);
    free(a);
}

const lt_lora_cfg *lt_lora_get_cfg(const lt_lora *a) { return &a->cfg; }

int64_t lt_lora_n_layers(const lt_lora *a) { return a->n_layers; }

lt_lora_mod *lt_lora_get_mut(lt_lora *a, int64_t layer, lt_lora_module m) {
    if (!a || layer < 0 || layer >= a->n_layers || (int)m < 0 || m >= LT_LORA_N_MODULES) return NULL;
    lora_mod_priv *p = &a->mods[layer * LT_LORA_N_MODULES + m];
    return p->used ? &p->pub : NULL;
}

const lt_lora_mod *lt_lora_get(const lt_lora *a, int64_t layer, lt_lora_module m) {
    return lt_lora_get_mut((lt_lora *)a, layer, m);
}

int64_t lt_lora_n_params(const lt_lora *a) {
    int64_t n = 0;
    for (int64_t i = 0; i < a->n_layers * LT_LORA_N_MODULES; i++)
        if (a->mods[i].used) n += a->mods[i].pub.r * (a->mods[i].pub.in + a->mods[i].pub.out);
    return n;
}

void lt_lora_zero_grad(lt_lora *a) {
    for (int64_t i = 0; i < a->n_layers * LT_LORA_N_MODULES; i++) {
        if (!a->mods[i].used) continue;
        const lt_lora_mod *m = &a->mods[i].pub;
        memset(m->ga, 0, (size_t)(m->r * m->in) * sizeof(float));
        memset(m->gb, 0, (size_t)(m->out * m->r) * sizeof(float));
    }
}

void lt_lora_sync_bf16(lt_lora *a) {
    for (int64_t i = 0; i < a->n_layers * LT_LORA_N_MODULES; i++)
        if (a->mods[i].used) sync_mod(&a->mods[i]);
}

/* ---------------------------------------------------------------- mirrors (GPU copies) */

lt_status lt_lora_mirror_create(const lt_lora *host, lt_pool *pool, lt_lora **out) {
    *out = NULL;
    lt_lora *a = calloc(1, sizeof *a);
    if (!a) return lt_errorf(LT_ERR_NOMEM, "lora mirror: out of memory for the adapter table");
    a->pool = pool;
    a->cfg = host->cfg;
    a->n_layers = host->n_layers;
    a->mods = calloc((size_t)host->n_layers * LT_LORA_N_MODULES, sizeof *a->mods);
    if (!a->mods) {
        free(a);
        return lt_errorf(LT_ERR_NOMEM, "lora mirror: out of memory for the module table");
    }
    lt_status st = NULL;
    int64_t max_r = 0;
    for (int64_t i = 0; !st && i < host->n_layers * LT_LORA_N_MODULES; i++) {
        if (!host->mods[i].used) continue;
        lora_mod_priv *p = &a->mods[i];
        const lt_lora_mod *hm = &host->mods[i].pub;
        p->pub.module = hm->module;
        p->pub.layer = hm->layer;
        p->pub.in = hm->in;
        p->pub.out = hm->out;
        p->pub.r = hm->r;
        p->pub.scale = hm->scale;
        p->owner = a;
        char what[96];
        snprintf(what, sizeof what, "lora mirror.layers.%lld.%s", (long long)hm->layer, k_names[hm->module]);
        st = alloc_mod(a, p, what); /* zero-filled by the pool: the gradients start at 0 */
        if (!st) p->used = true;
        if (hm->r > max_r) max_r = hm->r;
    }
    if (!st)
        st = lt_pool_alloc(pool, LT_POOL_SCRATCH, LT_LORA_ROWS * max_r * (int64_t)sizeof(float), "lora.forward_scratch",
                           (void **)&a->fwd_scratch);
    if (st) {
        lt_lora_free(a);
        return lt_status_wrapf(st, "lora: allocating the adapter mirror");
    }
    *out = a;
    return NULL;
}

void lt_lora_mirror_push(const lt_lora *host, lt_lora *mirror, const lt_backend *be) {
    LT_ASSERT(host->n_layers == mirror->n_layers);
    for (int64_t i = 0; i < host->n_layers * LT_LORA_N_MODULES; i++) {
        if (!host->mods[i].used) continue;
        const lora_mod_priv *h = &host->mods[i];
        lora_mod_priv *d = &mirror->mods[i];
        LT_ASSERT(d->used && d->pub.r == h->pub.r && d->pub.in == h->pub.in && d->pub.out == h->pub.out);
        const int64_t na = h->pub.r * h->pub.in * (int64_t)sizeof(float), nb = h->pub.out * h->pub.r * (int64_t)sizeof(float);
        be->copy_in(d->at, h->at, na);
        be->copy_in(d->af, h->af, na);
        be->copy_in(d->bs, h->bs, nb);
        be->copy_in(d->bst, h->bst, nb); /* the f32 copies are all forward/backward read */
    }
}

void lt_lora_mirror_pull_grads(const lt_lora *mirror, lt_lora *host, const lt_backend *be) {
    LT_ASSERT(host->n_layers == mirror->n_layers);
    for (int64_t i = 0; i < host->n_layers * LT_LORA_N_MODULES; i++) {
        if (!host->mods[i].used) continue;
        const lt_lora_mod *d = &mirror->mods[i].pub;
        lt_lora_mod *h = &host->mods[i].pub;
        be->copy_out(h->ga, d->ga, h->r * h->in * (int64_t)sizeof(float));
        be->copy_out(h->gb, d->gb, h->out * h->r * (int64_t)sizeof(float));
    }
}

void lt_lora_mirror_zero_grad(lt_lora *mirror, const lt_backend *be) {
    for (int64_t i = 0; i < mirror->n_layers * LT_LORA_N_MODULES; i++) {
        if (!mirror->mods[i].used) continue;
        const lt_lora_mod *m = &mirror->mods[i].pub;
        be->zero(m->ga, m->r * m->in);
        be->zero(m->gb, m->out * m->r);
    }
}

static const lora_mod_priv *priv_of(const lt_lora_mod *m) {
    const lora_mod_priv *p = (const lora_mod_priv *)(const void *)m;
    LT_ASSERT(p->used && p->owner); /* m must come from lt_lora_get */
    return p;
}

void lt_lora_forward(const lt_backend *be, const lt_lora_mod *m, const float *x, float *y, int64_t T, float *xa) {
    LT_ASSERT(be && m && x && y && T >= 0);
    const lora_mod_priv *p = priv_of(m);
    if (T == 0) return;
    if (xa) {
        be->matmul_nn(x, p->at, xa, T, m->in, m->r, 0.0f);   /* xa[T, r] = x A^T */
        be->matmul_nn(xa, p->bst, y, T, m->r, m->out, 1.0f); /* y += xa (sB)^T */
        return;
    }
    float *buf = p->owner->fwd_scratch;
    for (int64_t t0 = 0; t0 < T; t0 += LT_LORA_ROWS) {
        const int64_t n = T - t0 < LT_LORA_ROWS ? T - t0 : LT_LORA_ROWS;
        be->matmul_nn(x + t0 * m->in, p->at, buf, n, m->in, m->r, 0.0f);
        be->matmul_nn(buf, p->bst, y + t0 * m->out, n, m->r, m->out, 1.0f);
    }
}

void lt_lora_backward(const lt_backend *be, lt_lora_mod *m, const float *x, const float *dy, const float *xa, float *dx,
                      int64_t T, float *scratch) {
    LT_ASSERT(be && m && x && dy && scratch && T >= 0);
    const lora_mod_priv *p = priv_of(m);
    if (T == 0) return;
    const int64_t n = T * m->r;
    /* scratch = s * xa (xa recomputed when not given: the same GEMM as forward, same bits) */
    if (xa)
        be->scale(scratch, xa, m->scale, n);
    else {
        be->matmul_nn(x, p->at, scratch, T, m->in, m->r, 0.0f);
        be->scale(scratch, scratch, m->scale, n);
    }
    be->matmul_tn(dy, scratch, m->gb, m->out, T, m->r, 1.0f);        /* gb[out, r] += dy^T (s xa) */
    be->matmul_nn(dy, p->bs, scratch, T, m->out, m->r, 0.0f);        /* dxa[T, r] = dy (sB) */
    be->matmul_tn(scratch, x, m->ga, m->r, T, m->in, 1.0f);          /* ga[r, in] += dxa^T x */
    if (dx) be->matmul_nn(scratch, p->af, dx, T, m->r, m->in, 1.0f); /* dx[T, in] += dxa A */
}
