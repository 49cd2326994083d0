/* Loading a quantized model directory (written by lt_model_quantize_dir, qcache_write.c) by mmap,
 * the quantized cache behind lt_load_opts.cache_dir, and the cheap source fingerprint.
 *
 * Loading checks before it uses anything: config.json; the metadata of every file (layout
 * version, format, block, option flags, fingerprint — all files must agree); then, for every
 * weight the config implies, exactly the tensors the metadata's options imply: the components of
 * a quantized weight (lt_model_want_quant) with the dtype and shape lt_qlayout_get gives, else
 * the plain tensor (F32/BF16/F16, the spec's shape); and no other tensor. Then the mapped bytes
 * are charged to the pool (WEIGHTS), the quantized weights point into the mapping (block NULL;
 * copied into the pool only when a component is not aligned to its dtype size), each passes
 * lt_qtensor_validate (finite scales: reads the scales, not the codes), and the small plain
 * tensors are converted to f32 into the pool. The mapping lives until lt_model_free
 * (m->release), which also gives the charge back.
 *
 * The cache: the source's fingerprint must equal the one the cache records, and the options
 * the stored ones; otherwise the cache is refused (never silently rebuilt or used). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/qcache_internal.h"

/* ---------------------------------------------------------------- format helpers */

void lt_qdir_comp_name(const char *weight, const lt_qlayout *L, int s, char buf[LT_QDIR_NAME_CAP]) {
    int n = snprintf(buf, LT_QDIR_NAME_CAP, "%s.%s", weight, L->comp[s].name);
    LT_ASSERT(n > 0 && n < LT_QDIR_NAME_CAP);
}

void lt_qdir_comp_shape(const lt_qlayout *L, int s, int *ndim, int64_t shape[2]) {
    const lt_qcomp *c = &L->comp[s];
    if (s == LT_QC_CODES || s == LT_QC_SCALES) {
        LT_ASSERT(c->count % L->rows == 0); /* per-element and per-block data: whole rows */
        *ndim = 2;
        shape[0] = L->rows;
        shape[1] = c->count / L->rows;
    } else {
        *ndim = 1;
        shape[0] = c->count;
        shape[1] = 0;
    }
}

lt_load_opts lt_qdir_norm_opts(const lt_load_opts *o, const lt_model_config *cfg) {
    lt_load_opts n = {.quantize = true,
                      .format = o->format,
                      .quantize_embeddings = o->quantize_embeddings,
                      .quantize_lm_head = o->quantize_lm_head && !cfg->tie_word_embeddings};
    return n;
}

/* madvise over the pages holding [p, p + n) of a mapping (advisory: errors are ignored). */
static void lt_advise(const void *p, int64_t n, int advice) {
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || n <= 0 || !p) return;
    uintptr_t a = (uintptr_t)p / (uintptr_t)page * (uintptr_t)page;
    madvise((void *)a, (size_t)((uintptr_t)p + (uintptr_t)n - a), advice);
}

static void lt_fp_u64(lt_sha256_ctx *h, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    lt_sha256_update(h, b, 8);
}

static void lt_fp_str(lt_sha256_ctx *h, const char *s) { lt_sha256_update(h, s, strlen(s) + 1); }

void lt_qdir_fingerprint(const char *config, int64_t config_len, const lt_st_set *set, char hex[LT_SHA256_HEX]) {
    enum { SAMPLE = 4096, CHUNK = 64 * 1024, NCHUNK = 16 };
    lt_sha256_ctx h;
    lt_sha256_init(&h);
    lt_fp_str(&h, "loft source fingerprint 1");
    lt_fp_u64(&h, (uint64_t)config_len);
    lt_sha256_update(&h, config, (size_t)config_len);
    lt_fp_u64(&h, (uint64_t)lt_st_set_nfiles(set));
    for (int64_t fi = 0; fi < lt_st_set_nfiles(set); fi++) {
        const lt_st_file *f = lt_st_set_file(set, fi);
        const char *path = lt_st_path(f), *slash = strrchr(path, '/');
        lt_fp_str(&h, slash ? slash + 1 : path);
        int64_t nm = lt_st_metadata_count(f), n = lt_st_count(f);
        lt_fp_u64(&h, (uint64_t)nm);
        for (int64_t i = 0; i < nm; i++) {
            const char *k, *v;
            lt_st_metadata_get(f, i, &k, &v);
            lt_fp_str(&h, k);
            lt_fp_str(&h, v);
        }
        lt_fp_u64(&h, (uint64_t)n);
        for (int64_t i = 0; i < n; i++) { /* the header, in offset order */
            const lt_st_tensor *t = lt_st_get(f, i);
            lt_fp_str(&h, t->name);
            lt_fp_str(&h, t->dtype_name);
            lt_fp_u64(&h, (uint64_t)t->ndim);
            for (int d = 0; d < t->ndim; d++) lt_fp_u64(&h, (uint64_t)t->shape[d]);
            lt_fp_u64(&h, (uint64_t)t->begin);
            lt_fp_u64(&h, (uint64_t)t->end);
        }
        /* a few KB per tensor: without this advice each sample would pull in a readahead window */
        const uint8_t *data = n ? lt_st_get(f, 0)->data : NULL; /* sorted by offset: the first begins at 0 */
        int64_t len = n ? lt_st_get(f, n - 1)->end : 0;
        lt_advise(data, len, MADV_RANDOM);
        for (int64_t i = 0; i < n; i++) { /* start, middle and end of every tensor */
            const lt_st_tensor *t = lt_st_get(f, i);
            int64_t c = t->nbytes < SAMPLE ? t->nbytes : SAMPLE;
            const uint8_t *d = t->data;
            if (c == 0) continue;
            lt_sha256_update(&h, d, (size_t)c);
            lt_sha256_update(&h, d + (t->nbytes - c) / 2, (size_t)c);
            lt_sha256_update(&h, d + (t->nbytes - c), (size_t)c);
        }
        int64_t c = len < CHUNK ? len : CHUNK;
        for (int64_t j = 0; c > 0 && j < NCHUNK; j++)
            lt_sha256_update(&h, data + j * (len - c) / (NCHUNK - 1), (size_t)c);
        lt_advise(data, len, MADV_NORMAL);
    }
    uint8_t d[LT_SHA256_BYTES];
    lt_sha256_final(&h, d);
    lt_sha256_hex(d, hex);
}

lt_status lt_model_source_fingerprint(const char *dir, char hex[LT_SHA256_HEX]) {
    hex[0] = '\0';
    char *path = lt_path_join(dir, "config.json"), *cfg = NULL;
    if (!path) return lt_errorf(LT_ERR_NOMEM, "out of memory");
    int64_t cfg_len = 0;
    lt_st_set *set = NULL;
    lt_status st = lt_read_file(path, LT_QDIR_MAX_CONFIG, &cfg, &cfg_len);
    free(path);
    if (!st) st = lt_st_set_open_dir(dir, &set);
    if (!st) lt_qdir_fingerprint(cfg, cfg_len, set, hex);
    lt_st_set_close(set);
    free(cfg);
    return st;
}

/* ---------------------------------------------------------------- metadata */

typedef struct lt_qdir_meta {
    lt_load_opts opts; /* normalised: quantize set */
    char sha[LT_SHA256_HEX], fp[LT_SHA256_HEX];
    char source[1024];
} lt_qdir_meta;

static bool lt_is_hex64(const char *s) {
    if (strlen(s) != 64) return false;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

static lt_status lt_meta_bool(const lt_st_file *f, const char *key, bool *out) {
    const char *v = lt_st_metadata_find(f, key);
    if (v && (!strcmp(v, "true") || !strcmp(v, "false"))) {
        *out = !strcmp(v, "true");
        return NULL;
    }
    return lt_errorf(LT_ERR_FORMAT,
                     "%s: metadata \"%s\" is %s%s%s, expected \"true\" or \"false\"; the quantized "
                     "model is damaged: re-run loft quantize",
                     lt_st_path(f), key, v ? "\"" : "", v ? v : "missing", v ? "\"" : "");
}

/* Reads and checks one file's loft metadata. */
static lt_status lt_meta_read(const lt_st_file *f, lt_qdir_meta *m) {
    memset(m, 0, sizeof *m);
    const char *path = lt_st_path(f), *fix = "the quantized model is damaged: re-run loft quantize";
    const char *ver = lt_st_metadata_find(f, LT_QK_VERSION), *fmt = lt_st_metadata_find(f, LT_QK_FORMAT);
    const char *blk = lt_st_metadata_find(f, LT_QK_BLOCK), *sha = lt_st_metadata_find(f, LT_QK_SHA);
    const char *fp = lt_st_metadata_find(f, LT_QK_FP), *src = lt_st_metadata_find(f, LT_QK_SOURCE);
    if (!fmt)
        return lt_errorf(LT_ERR_FORMAT, "%s: no \"%s\" metadata: not a loft quantized model file; %s", path,
                         LT_QK_FORMAT, fix);
    if (!ver || strcmp(ver, LT_QDIR_VERSION))
        return lt_errorf(LT_ERR_UNSUPPORTED,
                         "%s: quantized layout version %s; this loft reads version %s: quantize the "
                         "original model again with this loft",
                         path, ver ? ver : "(missing)", LT_QDIR_VERSION);
    lt_qformat q;
    if (!lt_qformat_from_name(fmt, &q) || strcmp(fmt, lt_qformat_name(q)))
        return lt_errorf(LT_ERR_UNSUPPORTED,
                         "%s: quantized format \"%.40s\" is not one this loft knows (nf4, nf4_nodq, "
                         "mxfp4, nvfp4, q8_0, bf16)",
                         path, fmt);
    char want[32];
    snprintf(want, sizeof want, "%lld", (long long)lt_qformat_block(q));
    if (!blk || strcmp(blk, want))
        return lt_errorf(LT_ERR_FORMAT, "%s: metadata \"%s\" is %.40s, but %s uses blocks of %s; %s", path, LT_QK_BLOCK,
                         blk ? blk : "missing", fmt, want, fix);
    if (!sha || !lt_is_hex64(sha) || !fp || !lt_is_hex64(fp))
        return lt_errorf(LT_ERR_FORMAT, "%s: metadata \"%s\" and \"%s\" must be 64 lowercase hex digits; %s", path,
                         LT_QK_SHA, LT_QK_FP, fix);
    m->opts.quantize = true;
    m->opts.format = q;
    lt_status st = lt_meta_bool(f, LT_QK_EMB, &m->opts.quantize_embeddings);
    if (!st) st = lt_meta_bool(f, LT_QK_LM, &m->opts.quantize_lm_head);
    if (st) return st;
    memcpy(m->sha, sha, LT_SHA256_HEX);
    memcpy(m->fp, fp, LT_SHA256_HEX);
    snprintf(m->source, sizeof m->source, "%s", src ? src : "(unknown)");
    return NULL;
}

/* The metadata of every file; all must agree. */
static lt_status lt_meta_read_set(const lt_st_set *set, lt_qdir_meta *m) {
    lt_status st = lt_meta_read(lt_st_set_file(set, 0), m);
    for (int64_t i = 1; !st && i < lt_st_set_nfiles(set); i++) {
        lt_qdir_meta o;
        if ((st = lt_meta_read(lt_st_set_file(set, i), &o))) break;
        if (o.opts.format != m->opts.format || o.opts.quantize_embeddings != m->opts.quantize_embeddings ||
            o.opts.quantize_lm_head != m->opts.quantize_lm_head || strcmp(o.fp, m->fp) || strcmp(o.sha, m->sha))
            st = lt_errorf(LT_ERR_FORMAT,
                           "%s and %s: the loft metadata of the two files differ (format, options or "
                           "source): files of different quantized models are mixed; re-run loft quantize",
                           lt_st_path(lt_st_set_file(set, 0)), lt_st_path(lt_st_set_file(set, i)));
    }
    return st;
}

static const char *lt_yn(bool b) { return b ? "yes" : "no"; }

/* want (a caller's options, quantize set) against the stored options. */
static lt_status lt_meta_check_opts(const lt_qdir_meta *m, const lt_load_opts *want, const lt_model_config *cfg,
                                    const char *dir, bool cache) {
    lt_load_opts w = lt_qdir_norm_opts(want, cfg);
    if (w.format == m->opts.format && w.quantize_embeddings == m->opts.quantize_embeddings &&
        w.quantize_lm_head == m->opts.quantize_lm_head)
        return NULL;
    return lt_errorf(LT_ERR_INVALID_ARG,
                     "%s holds %s weights (embeddings quantized: %s, lm_head quantized: %s), but %s was asked "
                     "(embeddings: %s, lm_head: %s); %s",
                     dir, lt_qformat_name(m->opts.format), lt_yn(m->opts.quantize_embeddings),
                     lt_yn(m->opts.quantize_lm_head), lt_qformat_name(w.format), lt_yn(w.quantize_embeddings),
                     lt_yn(w.quantize_lm_head),
                     cache ? "delete that cache directory or use a different one for these options"
                           : "a quantized model is never quantized again: load it without quantize options, or "
                             "quantize the original model with these options");
}

/* ---------------------------------------------------------------- checks */

static bool lt_same_shape(const lt_st_tensor *t, int ndim, const int64_t *shape) {
    if (t->ndim != ndim) return false;
    for (int d = 0; d < ndim; d++)
        if (t->shape[d] != shape[d]) return false;
    return true;
}

static const char *lt_tshape(const lt_st_tensor *t, char *buf, size_t cap) {
    if (t->ndim <= LT_MAX_DIMS) return lt_shape_str(t->shape, t->ndim, buf, cap);
    snprintf(buf, cap, "(%d dimensions)", t->ndim);
    return buf;
}

/* Whether tensor name is one the layout expects: a plain spec, or a component of a quantized one. */
static bool lt_qdir_expected(const lt_model *m, const bool *quant, const char *name) {
    int64_t i = lt_model_spec_find(m->specs, m->n_weights, name);
    if (i >= 0) return !quant[i];
    const char *dot = strrchr(name, '.');
    if (!dot || dot - name >= LT_QDIR_NAME_CAP) return false;
    char w[LT_QDIR_NAME_CAP];
    memcpy(w, name, (size_t)(dot - name));
    w[dot - name] = '\0';
    i = lt_model_spec_find(m->specs, m->n_weights, w);
    if (i < 0 || !quant[i]) return false;
    lt_qlayout L;
    lt_status st = lt_qlayout_get(m->opts.format, m->specs[i].shape[0], m->specs[i].shape[1], &L);
    LT_ASSERT(!st); /* quant[i] was set only for shapes the layout accepts */
    for (int s = 0; s < LT_QC_COUNT; s++)
        if (L.comp[s].bytes && !strcmp(dot + 1, L.comp[s].name)) return true;
    return false;
}

/* Every expected tensor present with its dtype and shape, none other. */
static lt_status lt_qdir_check(const lt_model *m, const bool *quant, const lt_st_set *set, const char *dir) {
    const char *fix = "the directory is damaged or incomplete: re-run loft quantize";
    char got[64], want[64], name[LT_QDIR_NAME_CAP];
    for (int64_t i = 0; i < m->n_weights; i++) {
        const lt_weight_spec *sp = &m->specs[i];
        if (!quant[i]) {
            const lt_st_tensor *t = lt_st_set_find(set, sp->name);
            lt_shape_str(sp->shape, sp->ndim, want, sizeof want);
            if (!t)
                return lt_errorf(LT_ERR_FORMAT,
                                 "%s: tensor \"%s\" %s is missing (with %s and these options it is "
                                 "kept unquantized); %s",
                                 dir, sp->name, want, lt_qformat_name(m->opts.format), fix);
            if (!lt_same_shape(t, sp->ndim, sp->shape))
                return lt_errorf(LT_ERR_FORMAT, "%s: tensor \"%s\" has shape %s, expected %s from config.json; %s", dir,
                                 sp->name, lt_tshape(t, got, sizeof got), want, fix);
            if (!t->has_dtype || (t->dtype != LT_DTYPE_F32 && t->dtype != LT_DTYPE_BF16 && t->dtype != LT_DTYPE_F16))
                return lt_errorf(LT_ERR_FORMAT, "%s: tensor \"%s\" has dtype %s, expected F32, BF16 or F16; %s", dir,
                                 sp->name, t->dtype_name, fix);
            continue;
        }
        lt_qlayout L;
        lt_status st = lt_qlayout_get(m->opts.format, sp->shape[0], sp->shape[1], &L);
        LT_ASSERT(!st);
        for (int s = 0; s < LT_QC_COUNT; s++) {
            if (!L.comp[s].bytes) continue;
            int nd;
            int64_t shape[2];
            lt_qdir_comp_name(sp->name, &L, s, name);
            lt_qdir_comp_shape(&L, s, &nd, shape);
            lt_shape_str(shape, nd, want, sizeof want);
            const char *dt = lt_dtype_name(L.comp[s].dtype);
            const lt_st_tensor *t = lt_st_set_find(set, name);
            if (!t)
                return lt_errorf(LT_ERR_FORMAT,
                                 "%s: tensor \"%s\" (%s %s, a component of the %s weight %s) is missing; "
                                 "%s",
                                 dir, name, dt, want, lt_qformat_name(m->opts.format), sp->name, fix);
            if (strcmp(t->dtype_name, dt) || !lt_same_shape(t, nd, shape))
                return lt_errorf(LT_ERR_FORMAT,
                                 "%s: tensor \"%s\" is %s %s, expected %s %s for a %s weight of shape "
                                 "[%lld, %lld]; %s",
                                 dir, name, t->dtype_name, lt_tshape(t, got, sizeof got), dt, want,
                                 lt_qformat_name(m->opts.format), (long long)sp->shape[0], (long long)sp->shape[1],
                                 fix);
        }
    }
    for (int64_t i = 0; i < lt_st_set_count(set); i++) {
        const lt_st_tensor *t = lt_st_set_get(set, i);
        if (!lt_qdir_expected(m, quant, t->name))
            return lt_errorf(LT_ERR_FORMAT,
                             "%s: unexpected tensor \"%.200s\": a %s of this config.json quantized to %s "
                             "with these options has no such tensor; %s",
                             dir, t->name, m->cfg.architecture, lt_qformat_name(m->opts.format), fix);
    }
    return NULL;
}

/* ---------------------------------------------------------------- the mapping */

typedef struct lt_qmap {
    lt_st_set *set;
    lt_pool *pool;
    int64_t charged;
} lt_qmap;

static void lt_qmap_release(void *ctx) {
    lt_qmap *q = ctx;
    if (q->charged) lt_pool_uncharge(q->pool, LT_POOL_WEIGHTS, q->charged);
    lt_st_set_close(q->set);
    free(q);
}

/* Points quantized weight i into the mapping, or copies it into the pool when a component is not
 * aligned to its dtype size. Returns the bytes used in place (0 when copied). */
static lt_status lt_qdir_bind_quant(lt_model *m, int64_t i, const lt_st_set *set, bool in_place) {
    const lt_weight_spec *sp = &m->specs[i];
    lt_qlayout L;
    lt_status st = lt_qlayout_get(m->opts.format, sp->shape[0], sp->shape[1], &L);
    LT_ASSERT(!st);
    lt_qtensor *q = &m->qw[i];
    char name[LT_QDIR_NAME_CAP];
    if (!in_place) {
        if ((st = lt_qtensor_alloc(m->pool, LT_POOL_WEIGHTS, m->opts.format, sp->shape[0], sp->shape[1], sp->name, q)))
            return st;
        m->weight_bytes += L.alloc_bytes;
        m->qsum.quantized_bytes += L.alloc_bytes;
    } else {
        *q = (lt_qtensor){.format = m->opts.format, .rows = sp->shape[0], .cols = sp->shape[1]};
        m->weight_bytes += L.total_bytes;
        m->qsum.quantized_bytes += L.total_bytes;
    }
    for (int s = 0; s < LT_QC_COUNT; s++) {
        if (!L.comp[s].bytes) continue;
        lt_qdir_comp_name(sp->name, &L, s, name);
        const lt_st_tensor *t = lt_st_set_find(set, name);
        if (in_place) {
            q->comp[s] = (void *)t->data; /* read-only mapping: the forward pass never writes weights */
            if (s == LT_QC_CODES) lt_advise(t->data, t->nbytes, MADV_WILLNEED); /* start reading ahead */
        } else {
            memcpy(q->comp[s], t->data, (size_t)t->nbytes);
        }
    }
    m->qsum.n_quantized++;
    return lt_qtensor_validate(q, sp->name);
}

/* Whether every component of quantized weight i sits at an address aligned to its dtype size. */
static bool lt_qdir_aligned(const lt_model *m, int64_t i, const lt_st_set *set, int64_t *bytes) {
    const lt_weight_spec *sp = &m->specs[i];
    lt_qlayout L;
    lt_status st = lt_qlayout_get(m->opts.format, sp->shape[0], sp->shape[1], &L);
    LT_ASSERT(!st);
    char name[LT_QDIR_NAME_CAP];
    *bytes = L.total_bytes;
    for (int s = 0; s < LT_QC_COUNT; s++) {
        if (!L.comp[s].bytes) continue;
        lt_qdir_comp_name(sp->name, &L, s, name);
        const lt_st_tensor *t = lt_st_set_find(set, name);
        if ((uintptr_t)t->data % (uintptr_t)lt_dtype_size(L.comp[s].dtype) != 0) return false;
    }
    return true;
}

/* ---------------------------------------------------------------- loading */

/* want: the caller's options (NULL or quantize unset: take what is stored). src_dir/src_fp:
 * for a cache, the source it must have been made from. */
static lt_status lt_qdir_load(const char *dir, lt_pool *pool, const lt_backend *be, const lt_load_opts *want,
                              const char *src_dir, const char *src_fp, lt_model **out) {
    *out = NULL;
    lt_model *m = NULL;
    lt_st_set *set = NULL;
    bool *quant = NULL, *in_place = NULL;
    lt_model_config cfg;
    lt_qdir_meta meta;
    char *path = lt_path_join(dir, "config.json");
    if (!path) return lt_errorf(LT_ERR_NOMEM, "out of memory");
    lt_status st = lt_config_load(path, &cfg);
    if (!st) st = lt_st_set_open_dir(dir, &set);
    if (!st && lt_st_set_nfiles(set) == 0) st = lt_errorf(LT_ERR_FORMAT, "%s: no safetensors files", dir);
    if (!st) st = lt_meta_read_set(set, &meta);
    if (!st && want && want->quantize) st = lt_meta_check_opts(&meta, want, &cfg, dir, src_dir != NULL);
    if (!st && src_fp && strcmp(src_fp, meta.fp))
        st = lt_errorf(LT_ERR_INVALID_ARG,
                       "the quantized cache %s was made from %s (source fingerprint %.16s...), but %s has fingerprint "
                       "%.16s...: it is another model or it changed since; delete %s or use a different cache "
                       "directory",
                       dir, meta.source, meta.fp, src_dir, src_fp, dir);
    if (!st) st = lt_model_new(&cfg, pool, be, &meta.opts, path, &m);
    free(path);
    if (!st) {
        quant = calloc((size_t)m->n_weights, sizeof *quant);
        in_place = calloc((size_t)m->n_weights, sizeof *in_place);
        if (!quant || !in_place) st = lt_errorf(LT_ERR_NOMEM, "out of memory");
    }
    int64_t mapped = 0;
    for (int64_t i = 0; !st && i < m->n_weights; i++) {
        bool unaligned;
        quant[i] = lt_model_want_quant(m, &m->specs[i], &unaligned);
        if (unaligned) m->qsum.n_unaligned++;
    }
    if (!st) st = lt_qdir_check(m, quant, set, dir);
    for (int64_t i = 0; !st && i < m->n_weights; i++) {
        int64_t b;
        if (quant[i] && (in_place[i] = lt_qdir_aligned(m, i, set, &b))) mapped += b;
        if (quant[i] && !in_place[i])
            LT_WARN("%s: %s is not aligned in its file and is copied into memory", dir, m->specs[i].name);
    }
    if (!st) { /* from here the model owns the mapping and its charge */
        lt_qmap *q = calloc(1, sizeof *q);
        if (!q)
            st = lt_errorf(LT_ERR_NOMEM, "out of memory");
        else if ((st = lt_pool_charge(pool, LT_POOL_WEIGHTS, mapped, "quantized weights (mapped)")))
            free(q);
        else {
            *q = (lt_qmap){set, pool, mapped};
            m->release = lt_qmap_release;
            m->release_ctx = q;
            set = NULL;
        }
    }
    const lt_st_set *mset = m && m->release ? ((lt_qmap *)m->release_ctx)->set : NULL;
    for (int64_t i = 0; !st && i < m->n_weights; i++) {
        const lt_weight_spec *sp = &m->specs[i];
        if (quant[i]) {
            st = lt_qdir_bind_quant(m, i, mset, in_place[i]);
            continue;
        }
        const lt_st_tensor *t = lt_st_set_find(mset, sp->name);
        int64_t bytes = t->numel * (int64_t)sizeof(float); /* numel checked against the spec: no overflow */
        if ((st = lt_pool_alloc(pool, LT_POOL_WEIGHTS, bytes, sp->name, (void **)&m->w[i]))) break;
        lt_model_to_f32(t->data, t->dtype, m->w[i], t->numel);
        m->weight_bytes += bytes;
        if (sp->kind == LT_W_MATRIX) {
            m->qsum.n_kept++;
            m->qsum.f32_bytes += bytes;
        }
    }
    if (!st) st = lt_model_finish(m);
    free(quant);
    free(in_place);
    lt_st_set_close(set);
    if (st) {
        lt_model_free(m);
        return lt_status_wrapf(st, "loading quantized model %s", dir);
    }
    m->opts.cache_dir = NULL; /* the caller's string may not outlive the model */
    *out = m;
    return NULL;
}

bool lt_model_dir_is_quantized(const char *dir) {
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) return false;
    lt_st_set *set = NULL;
    lt_status st = lt_st_set_open_dir(dir, &set);
    bool yes = !st && lt_st_set_nfiles(set) > 0 && lt_st_metadata_find(lt_st_set_file(set, 0), LT_QK_FORMAT) != NULL;
    lt_status_free(st);
    lt_st_set_close(set);
    return yes;
}

lt_status lt_model_load_quantized(const char *dir, lt_pool *pool, const lt_backend *be, const lt_load_opts *opts,
                                  lt_model **out) {
    return lt_qdir_load(dir, pool, be, opts, NULL, NULL, out);
}

/* An absent path or an empty directory: a cache to build. */
static bool lt_cache_absent(const char *dir) {
    struct stat sb;
    if (stat(dir, &sb) != 0) return errno == ENOENT;
    if (!S_ISDIR(sb.st_mode)) return false;
    DIR *d = opendir(dir);
    if (!d) return false;
    bool empty = true;
    for (struct dirent *e; empty && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = false;
    closedir(d);
    return empty;
}

lt_status lt_model_load_cached(const char *dir, lt_pool *pool, const lt_backend *be, const lt_load_opts *opts,
                               lt_model **out) {
    *out = NULL;
    LT_ASSERT(opts && opts->quantize && opts->cache_dir);
    const char *cache = opts->cache_dir;
    if (lt_cache_absent(cache)) {
        LT_INFO("quantizing %s to %s into the cache %s (once; later loads map it)", dir, lt_qformat_name(opts->format),
                cache);
        lt_quantize_stats qs;
        lt_status st = lt_model_quantize_dir(dir, opts, cache, NULL, pool, &qs);
        /* another process may have built the same cache meanwhile: then use (and check) its */
        if (st && !lt_model_dir_is_quantized(cache)) return lt_status_wrapf(st, "building the quantized cache");
        if (st)
            lt_status_free(st);
        else
            LT_INFO("quantized cache %s written in %.1f s", cache, qs.seconds);
    }
    if (!lt_model_dir_is_quantized(cache))
        return lt_errorf(LT_ERR_INVALID_ARG,
                         "quantized cache %s exists but is not a loft quantized model directory (or is damaged); "
                         "delete it or use a different cache directory",
                         cache);
    char fp[LT_SHA256_HEX];
    lt_status st = lt_model_source_fingerprint(dir, fp);
    if (st) return lt_status_wrapf(st, "loading model %s", dir);
    return lt_qdir_load(cache, pool, be, opts, dir, fp, out);
}
