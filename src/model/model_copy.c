/* A copy of a loaded model in another backend's memory (see lt_model_copy in model.h): the same
 * weight specs and formats, every tensor allocated from the target pool and filled through the
 * target backend's copy_in, so the same code serves a GPU (device memory) and the CPU (a plain copy,
 * which is how the tests check it without a GPU). */
#include <stdlib.h>
#include <string.h>

#include "model/model_internal.h"

lt_status lt_model_copy(const lt_model *src, lt_pool *pool, const lt_backend *be, lt_model **out) {
    *out = NULL;
    lt_model *m = NULL;
    lt_status st = lt_model_new(&src->cfg, pool, be, &src->opts, "model copy", &m);
    if (st) return st;
    LT_ASSERT(m->n_weights == src->n_weights);
    for (int64_t i = 0; !st && i < src->n_weights; i++) {
        const lt_weight_spec *sp = &src->specs[i];
        if (src->w[i]) {
            int64_t bytes = 0;
            if (!lt_mul_i64(sp->shape[0], sp->ndim == 2 ? sp->shape[1] : 1, &bytes) ||
                !lt_mul_i64(bytes, (int64_t)sizeof(float), &bytes))
                st = lt_errorf(LT_ERR_INVALID_ARG, "model copy: %s overflows", sp->name);
            if (!st) st = lt_pool_alloc(pool, LT_POOL_WEIGHTS, bytes, sp->name, (void **)&m->w[i]);
            if (!st) {
                be->copy_in(m->w[i], src->w[i], bytes);
                m->weight_bytes += bytes;
            }
        } else {
            const lt_qtensor *q = &src->qw[i];
            lt_qlayout lay;
            st = lt_qlayout_get(q->format, q->rows, q->cols, &lay);
            if (!st) st = lt_qtensor_alloc(pool, LT_POOL_WEIGHTS, q->format, q->rows, q->cols, sp->name, &m->qw[i]);
            for (int c = 0; !st && c < LT_QC_COUNT; c++)
                if (lay.comp[c].bytes) be->copy_in(m->qw[i].comp[c], q->comp[c], lay.comp[c].bytes);
            if (!st) m->weight_bytes += lay.alloc_bytes;
        }
    }
    m->qsum = src->qsum;
    m->qscratch_rows = src->qscratch_rows;
    if (!st) st = lt_model_finish(m); /* the RoPE table (host) and the per-layer pointers */
    /* the RoPE table in the target memory too: the ops read it there */
    const int64_t nf = (int64_t)(m->cfg.head_dim / 2) * (int64_t)sizeof(float);
    if (!st) st = lt_pool_alloc(pool, LT_POOL_WEIGHTS, nf, "rope inv_freq", &m->inv_freq_block);
    if (!st) {
        be->copy_in(m->inv_freq_block, m->inv_freq, nf);
        free(m->inv_freq);
        m->inv_freq = m->inv_freq_block;
    }
    if (st) {
        lt_model_free(m);
        return lt_status_wrapf(st, "copying the model to the %s backend", be->name);
    }
    *out = m;
    return NULL;
}

int64_t lt_model_n_params(const lt_model *m) {
    int64_t n = 0;
    for (int64_t i = 0; i < m->n_weights; i++)
        n += m->specs[i].shape[0] * (m->specs[i].ndim == 2 ? m->specs[i].shape[1] : 1);
    return n;
}

int64_t lt_model_n_qweights(const lt_model *m) { return m->n_weights; }

const lt_qtensor *lt_model_qweight(const lt_model *m, int64_t i) {
    return i >= 0 && i < m->n_weights && !m->w[i] && m->qw[i].comp[LT_QC_CODES] ? &m->qw[i] : NULL;
}
