/* The loader (see data.h): a seeded permutation per epoch (Fisher-Yates on Philox draws keyed by (seed,
 * epoch)), greedy packing in that order, rows handed out one at a time; its state is (epoch, cursor). */
#include <stdlib.h>
#include <string.h>

#include "train/data_internal.h"

#define LT_SHUFFLE_DOMAIN 0x53687566u /* "Shuf": Philox counter word 3 of the shuffle stream */

struct lt_loader {
    const lt_dataset *ds;
    lt_loader_opts o;
    int64_t epoch, cursor;
    int64_t *perm;        /* [n] the current epoch's order */
    int64_t perm_epoch;   /* the epoch perm belongs to (-1: none) */
    int32_t *ids, *labels, *doc; /* [max_seq_len] the current row */
};

static void make_perm(const lt_loader *ld, int64_t epoch, int64_t *perm) {
    const int64_t n = ld->ds->n;
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    if (!ld->o.shuffle) return;
    const uint32_t key[2] = {(uint32_t)ld->o.seed, (uint32_t)(ld->o.seed >> 32)};
    for (int64_t i = n - 1; i > 0; i--) {
        const uint32_t ctr[4] = {(uint32_t)i, (uint32_t)((uint64_t)i >> 32), (uint32_t)epoch, LT_SHUFFLE_DOMAIN};
        uint32_t r[4];
        lt_philox4x32_raw(ctr, key, r);
        const uint64_t u = (uint64_t)r[0] << 32 | r[1];
        const int64_t j = (int64_t)(u % (uint64_t)(i + 1)); /* bias < 2^-32 for n < 2^32 */
        const int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

static int64_t ex_len(const lt_dataset *ds, int64_t i) { return ds->off[i + 1] - ds->off[i]; }

/* How many examples from position c of perm go into one row. */
static int64_t row_span(const lt_loader *ld, const int64_t *perm, int64_t c) {
    const int64_t n = ld->ds->n;
    int64_t k = 1, T = ex_len(ld->ds, perm[c]);
    if (!ld->o.packing) return 1;
    while (c + k < n && T + ex_len(ld->ds, perm[c + k]) <= ld->o.max_seq_len) T += ex_len(ld->ds, perm[c + k++]);
    return k;
}

lt_status lt_loader_create(const lt_dataset *ds, const lt_loader_opts *o, lt_loader **out) {
    *out = NULL;
    if (!ds || ds->n == 0) return lt_errorf(LT_ERR_INVALID_ARG, "data: the dataset holds no example");
    for (int64_t i = 0; i < ds->n; i++)
        if (ex_len(ds, i) > o->max_seq_len)
            return lt_errorf(LT_ERR_INVALID_ARG, "data: example %lld has %lld tokens > max_seq_len %lld", (long long)i,
                             (long long)ex_len(ds, i), (long long)o->max_seq_len);
    lt_loader *ld = calloc(1, sizeof *ld);
    if (!ld) return lt_errorf(LT_ERR_NOMEM, "out of memory");
    ld->ds = ds;
    ld->o = *o;
    ld->perm = malloc((size_t)ds->n * sizeof *ld->perm);
    ld->ids = malloc((size_t)o->max_seq_len * sizeof(int32_t));
    ld->labels = malloc((size_t)o->max_seq_len * sizeof(int32_t));
    ld->doc = malloc((size_t)o->max_seq_len * sizeof(int32_t));
    ld->perm_epoch = -1;
    if (!ld->perm || !ld->ids || !ld->labels || !ld->doc) {
        lt_loader_free(ld);
        return lt_errorf(LT_ERR_NOMEM, "out of memory");
    }
    *out = ld;
    return NULL;
}

void lt_loader_free(lt_loader *ld) {
    if (!ld) return;
    free(ld->perm);
    free(ld->ids);
    free(ld->labels);
    free(ld->doc);
    free(ld);
}

lt_status lt_loader_next(lt_loader *ld, lt_row *row) {
    if (ld->cursor >= ld->ds->n) {
        ld->epoch++;
        ld->cursor = 0;
    }
    if (ld->perm_epoch != ld->epoch) {
        make_perm(ld, ld->epoch, ld->perm);
        ld->perm_epoch = ld->epoch;
    }
    const int64_t k = row_span(ld, ld->perm, ld->cursor);
    int64_t T = 0;
    for (int64_t j = 0; j < k; j++) {
        const int64_t e = ld->perm[ld->cursor + j], n = ex_len(ld->ds, e);
        memcpy(ld->ids + T, ld->ds->ids + ld->ds->off[e], (size_t)n * sizeof(int32_t));
        memcpy(ld->labels + T, ld->ds->labels + ld->ds->off[e], (size_t)n * sizeof(int32_t));
        for (int64_t t = 0; t < n; t++) ld->doc[T + t] = (int32_t)j;
        T += n;
    }
    *row = (lt_row){.T = T, .ids = ld->ids, .labels = ld->labels, .doc = ld->doc, .epoch = ld->epoch};
    ld->cursor += k;
    return NULL;
}

lt_loader_state lt_loader_get_state(const lt_loader *ld) { return (lt_loader_state){ld->epoch, ld->cursor}; }

lt_status lt_loader_set_state(lt_loader *ld, lt_loader_state s) {
    if (s.epoch < 0 || s.cursor < 0 || s.cursor > ld->ds->n)
        return lt_errorf(LT_ERR_INVALID_ARG, "data loader: position epoch %lld, example %lld is outside the dataset's "
                                             "%lld examples (is this the same data?)",
                         (long long)s.epoch, (long long)s.cursor, (long long)ld->ds->n);
    ld->epoch = s.epoch;
    ld->cursor = s.cursor;
    return NULL;
}

int64_t lt_loader_rows_in_epoch(lt_loader *ld, int64_t epoch) {
    int64_t *perm = malloc((size_t)ld->ds->n * sizeof *perm);
    if (!perm) return ld->ds->n; /* an upper bound */
    make_perm(ld, epoch, perm);
    int64_t rows = 0;
    for (int64_t c = 0; c < ld->ds->n; rows++) c += row_span(ld, perm, c);
    free(perm);
    return rows;
}
