/* lt_model_quantize_dir: an HF model directory -> a quantized model directory (format in model.h).
 *
 * One pass over the source, in its file order: each tensor is converted to f32 (pool SCRATCH,
 * reused), quantized into a reused SCRATCH block, and its components written with pwrite at
 * offsets planned up front; the tensors kept as they are go straight from the source mapping to
 * the output. A second thread hashes the source files (loft.source_sha256) over its own mapping
 * of the same pages at the same time, so the source is read from disk once.
 *
 * The layout is planned before anything is written, because every size follows from the config
 * and the format: weights go to shards greedily in source order (a weight never spans two
 * files); inside a file the tensors are ordered by dtype size, largest first (F32, then BF16/F16,
 * then the byte-sized codes and scales), and within a dtype size those whose byte count is a
 * multiple of 64 first. Safetensors forbids gaps between tensors, so this order is what keeps
 * every component at an offset that is a multiple of its dtype size; the header (a JSON object
 * that may end in spaces) is padded so that the largest dtype group starts 64-byte aligned in the
 * file when the sizes allow it, else so that the data section does (the header length is then
 * not the multiple of 8 the reference writer pads to: readers do not require that). The header carries the source
 * SHA-256, known only at the end: it is written last, with a value of the same length as the placeholder it was planned
 * with.
 *
 * Atomicity: everything goes into "<out>.tmp-<pid>-<k>" next to out_dir, is fsynced, and the
 * directory is renamed into place; on any failure the temporary directory is removed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "model/qcache_internal.h"

#define LT_QW_DEFAULT_SHARD 5000000000LL /* HF's "5GB" */
#define LT_QW_IO_CHUNK (64LL << 20)      /* bytes per write()/hash step */
#define LT_QW_AUX_MAX (1LL << 30)        /* tokenizer.json of real models: 2-35 MB */

static const char *const lt_qw_aux_files[] = {
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
};

typedef struct lt_qw_ent { /* one output tensor */
    char name[LT_QDIR_NAME_CAP];
    const char *dtype; /* safetensors dtype name */
    int ndim;
    int64_t shape[2];
    int64_t bytes, esize;
    int64_t shard, offset; /* offset in the shard's data section */
    int64_t order;         /* position in the plan: ties in the sort */
} lt_qw_ent;

typedef struct lt_qw_shard {
    char name[64];
    int fd;
    int64_t *ents, n; /* entry indices in file order */
    int64_t hdr_len;  /* N: the padded header */
    int64_t data_bytes;
} lt_qw_shard;

typedef struct lt_qw {
    const char *src, *out;
    char *tmp;
    lt_model *m; /* specs and lt_model_want_quant only: holds no weights */
    lt_st_set *set;
    char *config;
    int64_t config_len;
    bool *quant;
    int64_t *first; /* per spec: its first entry (the others follow) */
    lt_qw_ent *ents;
    int64_t n_ents;
    lt_qw_shard *shards;
    int64_t n_shards;
    char fp[LT_SHA256_HEX], source[PATH_MAX];
} lt_qw;

/* ---------------------------------------------------------------- small file helpers */

static lt_status lt_qw_pwrite(int fd, const char *path, const void *data, int64_t len, int64_t off) {
    const char *p = data;
    while (len > 0) {
        size_t c = (size_t)(len < LT_QW_IO_CHUNK ? len : LT_QW_IO_CHUNK);
        ssize_t w = pwrite(fd, p, c, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            return lt_errorf(LT_ERR_IO, "%s: write failed: %s (is the disk full?)", path,
                             w < 0 ? strerror(errno) : "no progress");
        p += w, len -= w, off += w;
    }
    return NULL;
}

static void lt_qw_fsync_path(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd); /* best effort: some filesystems refuse fsync on a directory */
        close(fd);
    }
}

/* Removes the regular files of dir (not recursive) and dir itself; best effort. */
static void lt_qw_rmdir_flat(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        for (struct dirent *e; (e = readdir(d));) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char *p = lt_path_join(dir, e->d_name);
            if (p) unlink(p);
            free(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* 0: empty, 1: holds only files, 2: holds a directory (its name in sub), -1: cannot read. */
static int lt_qw_dir_kind(const char *dir, char *sub, size_t cap) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int kind = 0;
    for (struct dirent *e; kind < 2 && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        kind = 1;
        char *p = lt_path_join(dir, e->d_name);
        struct stat sb;
        if (p && lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            kind = 2;
            snprintf(sub, cap, "%s", e->d_name);
        }
        free(p);
    }
    closedir(d);
    return kind;
}

/* ---------------------------------------------------------------- checks and the plan */

/* The source as lt_model_load_opts checks it: every spec with its shape and a float dtype, no
 * tensor the config does not imply (rotary inv_freq buffers excepted), not already quantized. */
static lt_status lt_qw_check_source(const lt_qw *w) {
    const lt_model *m = w->m;
    if (lt_st_metadata_find(lt_st_set_file(w->set, 0), LT_QK_FORMAT))
        return lt_errorf(LT_ERR_INVALID_ARG,
                         "%s is already a loft quantized model; quantize the original model instead", w->src);
    for (int64_t i = 0; i < lt_st_set_count(w->set); i++) {
        const lt_st_tensor *t = lt_st_set_get(w->set, i);
        size_t n = strlen(t->name);
        if (n >= 20 && !strcmp(t->name + n - 20, ".rotary_emb.inv_freq")) continue;
        if (lt_model_spec_find(m->specs, m->n_weights, t->name) < 0)
            return lt_errorf(LT_ERR_FORMAT,
                             "%s: unexpected tensor \"%.200s\": a %s with this config.json has no such "
                             "weight (check that config.json belongs to these safetensors files)",
                             w->src, t->name, m->cfg.architecture);
    }
    for (int64_t i = 0; i < m->n_weights; i++) {
        const lt_weight_spec *s = &m->specs[i];
        const lt_st_tensor *t = lt_st_set_find(w->set, s->name);
        char want[64], got[80] = "is missing";
        lt_shape_str(s->shape, s->ndim, want, sizeof want);
        bool same = t && t->ndim == s->ndim;
        for (int d = 0; same && d < s->ndim; d++) same = t->shape[d] == s->shape[d];
        if (t && !same) {
            char sh[64] = "(more than 4 dimensions)";
            if (t->ndim <= LT_MAX_DIMS) lt_shape_str(t->shape, t->ndim, sh, sizeof sh);
            snprintf(got, sizeof got, "has shape %s", sh);
        }
        if (!same)
            return lt_errorf(LT_ERR_FORMAT,
                             "%s: tensor \"%s\" %s, expected shape %s from config.json (check that "
                             "config.json belongs to these safetensors files and that no shard is missing)",
                             w->src, s->name, got, want);
        if (!t->has_dtype || (t->dtype != LT_DTYPE_F32 && t->dtype != LT_DTYPE_BF16 && t->dtype != LT_DTYPE_F16))
            return lt_errorf(LT_ERR_UNSUPPORTED, "%s: tensor \"%s\" has dtype %s, expected F32, BF16 or F16", w->src,
                             s->name, t->dtype_name);
    }
    return NULL;
}

static int lt_qw_cmp_ent(const lt_qw_ent *x, const lt_qw_ent *y) {
    if (x->esize != y->esize) return x->esize > y->esize ? -1 : 1;
    bool xa = x->bytes % 64 == 0, ya = y->bytes % 64 == 0;
    if (xa != ya) return xa ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Insertion sort by lt_qw_cmp_ent: qsort has no context argument in C11, and a shard holds at
 * most a few thousand tensors. */
static void lt_qw_sort(int64_t *idx, int64_t n, const lt_qw_ent *ents) {
    for (int64_t i = 1; i < n; i++)
        for (int64_t j = i; j > 0 && lt_qw_cmp_ent(&ents[idx[j]], &ents[idx[j - 1]]) < 0; j--) {
            int64_t t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
}

static void lt_qw_add(lt_qw *w, const char *name, const char *dtype, int ndim, const int64_t *shape, int64_t bytes,
                      int64_t esize) {
    lt_qw_ent *e = &w->ents[w->n_ents];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->dtype = dtype;
    e->ndim = ndim;
    for (int d = 0; d < ndim; d++) e->shape[d] = shape[d];
    e->bytes = bytes;
    e->esize = esize;
    e->order = w->n_ents++;
}

/* Entries of every spec in source order, then shards and offsets. */
static lt_status lt_qw_plan(lt_qw *w, int64_t shard_bytes) {
    lt_model *m = w->m;
    int64_t cap = m->n_weights * LT_QC_COUNT;
    w->ents = calloc((size_t)cap, sizeof *w->ents);
    w->first = calloc((size_t)m->n_weights, sizeof *w->first);
    w->quant = calloc((size_t)m->n_weights, sizeof *w->quant);
    w->shards = calloc((size_t)m->n_weights, sizeof *w->shards); /* at most one shard per weight */
    if (!w->ents || !w->first || !w->quant || !w->shards) return lt_errorf(LT_ERR_NOMEM, "out of memory");
    for (int64_t k = 0; k < m->n_weights; k++) w->shards[k].fd = -1;
    int64_t cur = 0;
    for (int64_t k = 0; k < lt_st_set_count(w->set); k++) {
        const lt_st_tensor *t = lt_st_set_get(w->set, k);
        int64_t i = lt_model_spec_find(m->specs, m->n_weights, t->name);
        if (i < 0) continue; /* a rotary buffer */
        const lt_weight_spec *sp = &m->specs[i];
        bool unaligned;
        w->quant[i] = lt_model_want_quant(m, sp, &unaligned);
        w->first[i] = w->n_ents;
        if (w->quant[i]) {
            lt_qlayout L;
            lt_status st = lt_qlayout_get(m->opts.format, sp->shape[0], sp->shape[1], &L);
            if (st) return st;
            for (int s = 0; s < LT_QC_COUNT; s++) {
                if (!L.comp[s].bytes) continue;
                char name[LT_QDIR_NAME_CAP];
                int nd;
                int64_t shape[2];
                lt_qdir_comp_name(sp->name, &L, s, name);
                lt_qdir_comp_shape(&L, s, &nd, shape);
                lt_qw_add(w, name, lt_dtype_name(L.comp[s].dtype), nd, shape, L.comp[s].bytes,
                          lt_dtype_size(L.comp[s].dtype));
            }
        } else {
            lt_qw_add(w, sp->name, t->dtype_name, sp->ndim, sp->shape, t->nbytes, lt_dtype_size(t->dtype));
        }
        int64_t bytes = 0;
        for (int64_t j = w->first[i]; j < w->n_ents; j++) bytes += w->ents[j].bytes;
        if (w->n_shards == 0 || (cur > 0 && cur + bytes > shard_bytes)) w->n_shards++, cur = 0;
        cur += bytes;
        for (int64_t j = w->first[i]; j < w->n_ents; j++) w->ents[j].shard = w->n_shards - 1;
    }
    if (w->n_shards > 99999)
        return lt_errorf(LT_ERR_INVALID_ARG,
                         "%s: %lld files needed, more than the 99999 the names allow; use a larger "
                         "shard size",
                         w->out, (long long)w->n_shards);
    for (int64_t k = 0; k < w->n_shards; k++) {
        lt_qw_shard *sh = &w->shards[k];
        if (w->n_shards == 1)
            snprintf(sh->name, sizeof sh->name, "model.safetensors");
        else
            snprintf(sh->name, sizeof sh->name, "model-%05lld-of-%05lld.safetensors", (long long)k + 1,
                     (long long)w->n_shards);
        sh->ents = malloc(sizeof *sh->ents * (size_t)w->n_ents);
        if (!sh->ents) return lt_errorf(LT_ERR_NOMEM, "out of memory");
        for (int64_t j = 0; j < w->n_ents; j++)
            if (w->ents[j].shard == k) sh->ents[sh->n++] = j;
        lt_qw_sort(sh->ents, sh->n, w->ents);
        for (int64_t j = 0; j < sh->n; j++) {
            w->ents[sh->ents[j]].offset = sh->data_bytes;
            sh->data_bytes += w->ents[sh->ents[j]].bytes;
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------- headers */

/* The header text of shard k with source hash sha, padded with spaces to *len; *len == 0 asks
 * for the padding rule (the largest dtype group 64-byte aligned when possible, see the top). */
static lt_status lt_qw_header(const lt_qw *w, int64_t k, const char *sha, char **out, int64_t *len) {
    const lt_qw_shard *sh = &w->shards[k];
    const lt_load_opts *o = &w->m->opts;
    char block[32];
    snprintf(block, sizeof block, "%lld", (long long)lt_qformat_block(o->format));
    json_t *root = json_object(), *meta = json_object();
    bool ok = root && meta && !json_object_set(root, "__metadata__", meta);
    const char *kv[][2] = {{"format", "pt"},
                           {LT_QK_VERSION, LT_QDIR_VERSION},
                           {LT_QK_FORMAT, lt_qformat_name(o->format)},
                           {LT_QK_BLOCK, block},
                           {LT_QK_EMB, o->quantize_embeddings ? "true" : "false"},
                           {LT_QK_LM, o->quantize_lm_head ? "true" : "false"},
                           {LT_QK_SHA, sha},
                           {LT_QK_FP, w->fp},
                           {LT_QK_SOURCE, w->source}};
    for (size_t i = 0; ok && i < sizeof kv / sizeof kv[0]; i++)
        ok = !json_object_set_new(meta, kv[i][0], json_string(kv[i][1]));
    for (int64_t j = 0; ok && j < sh->n; j++) {
        const lt_qw_ent *e = &w->ents[sh->ents[j]];
        json_t *t = json_pack("{s:s, s:[], s:[I,I]}", "dtype", e->dtype, "shape", "data_offsets", (json_int_t)e->offset,
                              (json_int_t)(e->offset + e->bytes));
        json_t *shape = t ? json_object_get(t, "shape") : NULL;
        for (int d = 0; shape && d < e->ndim; d++) ok = ok && !json_array_append_new(shape, json_integer(e->shape[d]));
        if (ok && shape)
            ok = !json_object_set_new(root, e->name, t); /* takes t, also on failure */
        else
            ok = false, json_decref(t);
    }
    json_decref(meta);
    char *text = ok ? json_dumps(root, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(root);
    if (!text) return lt_errorf(LT_ERR_NOMEM, "%s: out of memory building a header (or a name is not UTF-8)", w->out);
    int64_t n = (int64_t)strlen(text);
    if (*len == 0) {
        /* bytes per dtype size (1..8), where each group starts, the largest dtype size present */
        int64_t group[9] = {0}, g_start[9] = {0}, start = 0, best = 0, maxe = 1;
        for (int64_t j = 0; j < sh->n; j++) group[w->ents[sh->ents[j]].esize] += w->ents[sh->ents[j]].bytes;
        for (int e = 8; e >= 1; e--) {
            g_start[e] = start;
            start += group[e];
            if (group[e] > group[best]) best = e;
            if (group[e] > 0 && e > maxe) maxe = e;
        }
        /* data start = -g (mod 64) must stay a multiple of maxe (the first group's alignment) */
        int64_t g = g_start[best] % maxe == 0 ? g_start[best] : 0;
        *len = n;
        while ((8 + *len + g) % 64 != 0) (*len)++;
    }
    if (*len > LT_ST_MAX_HEADER) {
        free(text);
        return lt_errorf(LT_ERR_INVALID_ARG, "%s: a header of %lld bytes is over the safetensors limit", w->out,
                         (long long)*len);
    }
    LT_ASSERT(n <= *len); /* the final build differs from the planned one only in a 64-digit hash */
    char *buf = realloc(text, (size_t)*len + 1);
    if (!buf) {
        free(text);
        return lt_errorf(LT_ERR_NOMEM, "out of memory");
    }
    memset(buf + n, ' ', (size_t)(*len - n));
    buf[*len] = '\0';
    *out = buf;
    return NULL;
}

static lt_status lt_qw_write_header(const lt_qw *w, int64_t k, const char *sha) {
    const lt_qw_shard *sh = &w->shards[k];
    int64_t len = sh->hdr_len;
    char *text = NULL;
    lt_status st = lt_qw_header(w, k, sha, &text, &len);
    if (st) return st;
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)((uint64_t)len >> (8 * i));
    char *path = lt_path_join(w->tmp, sh->name);
    if (!path) st = lt_errorf(LT_ERR_NOMEM, "out of memory");
    if (!st) st = lt_qw_pwrite(sh->fd, path, lenb, 8, 0);
    if (!st) st = lt_qw_pwrite(sh->fd, path, text, len, 8);
    free(path);
    free(text);
    return st;
}

/* ---------------------------------------------------------------- the source hash */

typedef struct lt_qw_hash {
    const lt_qw *w;
    atomic_int stop;
    lt_status st;
    int64_t bytes;
    char hex[LT_SHA256_HEX];
} lt_qw_hash;

static void *lt_qw_hash_run(void *arg) {
    lt_qw_hash *h = arg;
    lt_sha256_ctx s;
    lt_sha256_init(&s);
    lt_sha256_update(&s, h->w->config, (size_t)h->w->config_len);
    for (int64_t i = 0; !h->st && i < lt_st_set_nfiles(h->w->set); i++) {
        const char *path = lt_st_path(lt_st_set_file(h->w->set, i));
        const uint8_t *base;
        int64_t len;
        bool mapped;
        if ((h->st = lt_map_file(path, "a .safetensors file", &base, &len, &mapped))) break;
        if (mapped) madvise((void *)base, (size_t)len, MADV_SEQUENTIAL);
        for (int64_t off = 0; off < len && !atomic_load(&h->stop); off += LT_QW_IO_CHUNK)
            lt_sha256_update(&s, base + off, (size_t)(len - off < LT_QW_IO_CHUNK ? len - off : LT_QW_IO_CHUNK));
        lt_unmap_file(base, len, mapped);
        h->bytes += len;
    }
    uint8_t d[LT_SHA256_BYTES];
    lt_sha256_final(&s, d);
    lt_sha256_hex(d, h->hex);
    return NULL;
}

/* ---------------------------------------------------------------- quantize and write */

static lt_status lt_qw_open_shards(lt_qw *w) {
    int64_t total = 0;
    for (int64_t k = 0; k < w->n_shards; k++) {
        lt_qw_shard *sh = &w->shards[k];
        char *text = NULL;
        lt_status st =
            lt_qw_header(w, k, "0000000000000000000000000000000000000000000000000000000000000000", &text, &sh->hdr_len);
        free(text);
        if (st) return st;
        char *path = lt_path_join(w->tmp, sh->name);
        if (!path) return lt_errorf(LT_ERR_NOMEM, "out of memory");
        sh->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        int64_t size = 8 + sh->hdr_len + sh->data_bytes;
        if (sh->fd < 0 || ftruncate(sh->fd, (off_t)size) != 0)
            st = lt_errorf(LT_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        free(path);
        if (st) return st;
        total += size;
    }
    struct statvfs vfs;
    if (statvfs(w->tmp, &vfs) == 0 && (double)vfs.f_bavail * (double)vfs.f_frsize < (double)total) {
        char a[32], b[32];
        return lt_errorf(LT_ERR_IO,
                         "%s: the quantized model needs %s but its filesystem has %s free; free some "
                         "space or choose another output directory",
                         w->out, lt_fmt_bytes(total, a, sizeof a),
                         lt_fmt_bytes((int64_t)((double)vfs.f_bavail * (double)vfs.f_frsize), b, sizeof b));
    }
    return NULL;
}

/* Writes entry j (data section offset) of its shard. */
static lt_status lt_qw_put(const lt_qw *w, int64_t j, const void *data) {
    const lt_qw_ent *e = &w->ents[j];
    const lt_qw_shard *sh = &w->shards[e->shard];
    lt_status st = lt_qw_pwrite(sh->fd, sh->name, data, e->bytes, 8 + sh->hdr_len + e->offset);
    return st ? lt_status_wrapf(st, "writing %s into %s", e->name, w->tmp) : NULL;
}

static lt_status lt_qw_tensors(lt_qw *w, lt_pool *pool, const lt_quantize_dir_opts *qo, lt_quantize_stats *stats) {
    lt_model *m = w->m;
    int64_t max_numel = 0, max_q = 0, total_bytes = 0;
    for (int64_t i = 0; i < m->n_weights; i++) {
        if (!w->quant[i]) continue;
        lt_qlayout L;
        lt_status st = lt_qlayout_get(m->opts.format, m->specs[i].shape[0], m->specs[i].shape[1], &L);
        if (st) return st;
        if (L.numel > max_numel) max_numel = L.numel;
        if (L.alloc_bytes > max_q) max_q = L.alloc_bytes;
    }
    for (int64_t k = 0; k < lt_st_set_count(w->set); k++) total_bytes += lt_st_set_get(w->set, k)->nbytes;
    float *f32 = NULL;
    uint8_t *qbuf = NULL;
    lt_status st = NULL;
    if (max_numel > 0) {
        st = lt_pool_alloc(pool, LT_POOL_SCRATCH, max_numel * (int64_t)sizeof(float), "quantize: f32 tensor",
                           (void **)&f32);
        if (!st) st = lt_pool_alloc(pool, LT_POOL_SCRATCH, max_q, "quantize: quantized tensor", (void **)&qbuf);
    }
    int64_t done = 0, n = lt_st_set_count(w->set);
    for (int64_t k = 0; !st && k < n; k++) {
        const lt_st_tensor *t = lt_st_set_get(w->set, k);
        int64_t i = lt_model_spec_find(m->specs, m->n_weights, t->name);
        if (i >= 0 && w->quant[i]) {
            const lt_weight_spec *sp = &m->specs[i];
            lt_qlayout L;
            lt_qtensor q = {.format = m->opts.format, .rows = sp->shape[0], .cols = sp->shape[1]};
            st = lt_qlayout_get(q.format, q.rows, q.cols, &L);
            LT_ASSERT(!st);
            int64_t off = 0, j = w->first[i];
            for (int s = 0; s < LT_QC_COUNT; s++)
                if (L.comp[s].bytes) {
                    q.comp[s] = qbuf + off;
                    off += (L.comp[s].bytes + LT_POOL_ALIGN - 1) / LT_POOL_ALIGN * LT_POOL_ALIGN;
                }
            lt_model_to_f32(t->data, t->dtype, f32, t->numel);
            st = lt_quantize(f32, sp->name, &q);
            for (int s = 0; !st && s < LT_QC_COUNT; s++)
                if (L.comp[s].bytes) st = lt_qw_put(w, j++, q.comp[s]);
            if (!st) {
                stats->n_quantized++;
                stats->params_quantized += L.numel;
                stats->quantized_bytes += L.total_bytes;
            }
        } else if (i >= 0) {
            st = lt_qw_put(w, w->first[i], t->data);
            stats->kept_bytes += t->nbytes;
            if (m->specs[i].kind == LT_W_MATRIX) stats->n_kept++;
        }
        done += t->nbytes;
        if (!st && qo->progress) qo->progress(qo->progress_ctx, k + 1, n, t->name, done, total_bytes);
    }
    lt_pool_free(pool, f32);
    lt_pool_free(pool, qbuf);
    return st;
}

/* Copies config.json (the bytes read) and the tokenizer / generation files present. */
static lt_status lt_qw_aux(const lt_qw *w) {
    char *path = lt_path_join(w->tmp, "config.json");
    if (!path) return lt_errorf(LT_ERR_NOMEM, "out of memory");
    lt_status st = lt_write_file_atomic(path, w->config, w->config_len);
    free(path);
    for (size_t i = 0; !st && i < sizeof lt_qw_aux_files / sizeof lt_qw_aux_files[0]; i++) {
        char *src = lt_path_join(w->src, lt_qw_aux_files[i]), *dst = lt_path_join(w->tmp, lt_qw_aux_files[i]),
             *buf = NULL;
        int64_t len = 0;
        struct stat sb;
        if (!src || !dst)
            st = lt_errorf(LT_ERR_NOMEM, "out of memory");
        else if (stat(src, &sb) == 0 && !(st = lt_read_file(src, LT_QW_AUX_MAX, &buf, &len)))
            st = lt_write_file_atomic(dst, buf, len);
        free(buf);
        free(src);
        free(dst);
    }
    return st;
}

static lt_status lt_qw_index(const lt_qw *w) {
    if (w->n_shards < 2) return NULL;
    int64_t total = 0;
    json_t *root = json_object(), *wm = json_object();
    bool ok = root && wm && !json_object_set(root, "weight_map", wm);
    for (int64_t j = 0; ok && j < w->n_ents; j++) {
        total += w->ents[j].bytes;
        ok = !json_object_set_new(wm, w->ents[j].name, json_string(w->shards[w->ents[j].shard].name));
    }
    ok = ok && !json_object_set_new(root, "metadata",
                                    json_pack("{s:I, s:s}", "total_size", (json_int_t)total, LT_QK_FORMAT,
                                              lt_qformat_name(w->m->opts.format)));
    char *text = ok ? json_dumps(root, JSON_INDENT(2)) : NULL;
    json_decref(wm);
    json_decref(root);
    char *path = lt_path_join(w->tmp, "model.safetensors.index.json");
    lt_status st = text && path ? lt_write_file_atomic(path, text, (int64_t)strlen(text))
                                : lt_errorf(LT_ERR_NOMEM, "out of memory building the index");
    free(text);
    free(path);
    return st;
}

/* ---------------------------------------------------------------- directories */

/* Checks out_dir (absent, empty, or non-empty with force and files only; not src nor a parent of
 * it), creates the temporary directory next to it. */
static lt_status lt_qw_prepare(lt_qw *w, bool force, int *out_kind) {
    char src_real[PATH_MAX], out_real[PATH_MAX], sub[256] = "";
    if (!realpath(w->src, src_real))
        return lt_errorf(LT_ERR_IO, "%s: %s; give a Hugging Face model directory", w->src, strerror(errno));
    /* informational: printable ASCII only, so the header stays valid UTF-8 whatever the path */
    size_t k = 0;
    for (; src_real[k] && k + 1 < sizeof w->source; k++)
        w->source[k] = src_real[k] >= 0x20 && src_real[k] < 0x7F ? src_real[k] : '?';
    w->source[k] = '\0';
    struct stat sb;
    *out_kind = -2; /* absent */
    if (stat(w->out, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode)) return lt_errorf(LT_ERR_INVALID_ARG, "%s exists and is not a directory", w->out);
        *out_kind = lt_qw_dir_kind(w->out, sub, sizeof sub);
        if (*out_kind < 0) return lt_errorf(LT_ERR_IO, "%s: cannot read the directory: %s", w->out, strerror(errno));
        if (!realpath(w->out, out_real)) return lt_errorf(LT_ERR_IO, "%s: %s", w->out, strerror(errno));
        size_t n = strlen(out_real);
        if (!strcmp(out_real, src_real) || (!strncmp(src_real, out_real, n) && src_real[n] == '/'))
            return lt_errorf(LT_ERR_INVALID_ARG,
                             "the output %s is the source %s or contains it; choose another output "
                             "directory",
                             w->out, w->src);
        if (*out_kind > 0 && !force)
            return lt_errorf(LT_ERR_INVALID_ARG,
                             "%s exists and is not empty; pass --force to replace it, or choose "
                             "another output directory",
                             w->out);
        if (*out_kind == 2)
            return lt_errorf(LT_ERR_INVALID_ARG,
                             "%s holds the directory \"%s\"; --force replaces a directory of files "
                             "only: remove it yourself or choose another output directory",
                             w->out, sub);
    } else if (errno != ENOENT) {
        return lt_errorf(LT_ERR_IO, "%s: %s", w->out, strerror(errno));
    }
    static atomic_uint counter;
    size_t n = strlen(w->out) + 64;
    w->tmp = malloc(n);
    if (!w->tmp) return lt_errorf(LT_ERR_NOMEM, "out of memory");
    snprintf(w->tmp, n, "%s.tmp-%ld-%u", w->out, (long)getpid(), atomic_fetch_add(&counter, 1));
    char *parent = strdup(w->tmp), *slash = parent ? strrchr(parent, '/') : NULL;
    lt_status st = NULL;
    if (!parent) return lt_errorf(LT_ERR_NOMEM, "out of memory");
    if (slash && slash != parent) *slash = '\0', st = lt_mkdir_p(parent);
    free(parent);
    if (!st && mkdir(w->tmp, 0755) != 0)
        st = lt_errorf(LT_ERR_IO, "%s: cannot create the directory: %s", w->tmp, strerror(errno));
    if (st) {
        free(w->tmp);
        w->tmp = NULL;
    }
    return st;
}

/* Moves the finished temporary directory to out_dir. */
static lt_status lt_qw_commit(lt_qw *w, int out_kind) {
    if (out_kind <= 0) { /* absent or empty: rename replaces an empty directory */
        if (rename(w->tmp, w->out) != 0)
            return lt_errorf(LT_ERR_IO, "%s: cannot rename %s to it: %s%s", w->out, w->tmp, strerror(errno),
                             errno == EEXIST || errno == ENOTEMPTY ? " (another process wrote it meanwhile?)" : "");
    } else { /* --force over a directory of files: move it aside, move ours in, drop the old one */
        size_t n = strlen(w->out) + 64;
        char *old = malloc(n);
        if (!old) return lt_errorf(LT_ERR_NOMEM, "out of memory");
        snprintf(old, n, "%s.old-%ld", w->out, (long)getpid());
        if (rename(w->out, old) != 0) {
            lt_status st = lt_errorf(LT_ERR_IO, "%s: cannot move it aside to %s: %s", w->out, old, strerror(errno));
            free(old);
            return st;
        }
        if (rename(w->tmp, w->out) != 0) {
            lt_status st = lt_errorf(LT_ERR_IO, "%s: cannot rename %s to it: %s", w->out, w->tmp, strerror(errno));
            rename(old, w->out); /* put the old one back */
            free(old);
            return st;
        }
        lt_qw_rmdir_flat(old);
        free(old);
    }
    free(w->tmp);
    w->tmp = NULL;
    char *parent = strdup(w->out), *slash = parent ? strrchr(parent, '/') : NULL;
    if (slash) *slash = '\0';
    lt_qw_fsync_path(slash ? (slash == parent ? "/" : parent) : ".");
    free(parent);
    return NULL;
}

/* ---------------------------------------------------------------- entry point */

static void lt_qw_free(lt_qw *w) {
    for (int64_t k = 0; w->shards && k < w->n_shards; k++) {
        if (w->shards[k].fd >= 0) close(w->shards[k].fd);
        free(w->shards[k].ents);
    }
    if (w->tmp) lt_qw_rmdir_flat(w->tmp);
    free(w->tmp);
    free(w->shards);
    free(w->ents);
    free(w->first);
    free(w->quant);
    free(w->config);
    lt_st_set_close(w->set);
    lt_model_free(w->m);
}

/* Quantizes every tensor with the hash running beside it, then the headers, files, index. */
static lt_status lt_qw_run(lt_qw *w, lt_pool *pool, const lt_quantize_dir_opts *qo, lt_quantize_stats *stats) {
    lt_qw_hash h = {.w = w};
    atomic_init(&h.stop, 0);
    pthread_t th;
    bool threaded = pthread_create(&th, NULL, lt_qw_hash_run, &h) == 0;
    double t0 = lt_time_sec();
    lt_status st = lt_qw_tensors(w, pool, qo, stats);
    double t1 = lt_time_sec();
    if (threaded) {
        if (st) atomic_store(&h.stop, 1);
        pthread_join(th, NULL);
    } else if (!st) {
        lt_qw_hash_run(&h);
    }
    double t2 = lt_time_sec();
    if (st) {
        lt_status_free(h.st);
        return st;
    }
    if (h.st) return h.st;
    memcpy(stats->source_sha256, h.hex, LT_SHA256_HEX);
    stats->source_bytes = h.bytes;
    for (int64_t k = 0; !st && k < w->n_shards; k++) {
        lt_qw_shard *sh = &w->shards[k];
        st = lt_qw_write_header(w, k, h.hex);
        if (!st && fsync(sh->fd) != 0)
            st = lt_errorf(LT_ERR_IO, "%s/%s: fsync failed: %s", w->tmp, sh->name, strerror(errno));
        if (close(sh->fd) != 0 && !st)
            st = lt_errorf(LT_ERR_IO, "%s/%s: close failed: %s", w->tmp, sh->name, strerror(errno));
        sh->fd = -1;
        stats->out_bytes += 8 + sh->hdr_len + sh->data_bytes;
    }
    if (!st) st = lt_qw_index(w);
    if (!st) st = lt_qw_aux(w);
    if (!st) lt_qw_fsync_path(w->tmp);
    LT_DEBUG("quantize %s: tensors %.2f s, then waiting for the source hash %.2f s, headers + fsync %.2f s", w->out,
             t1 - t0, t2 - t1, lt_time_sec() - t2);
    return st;
}

lt_status lt_model_quantize_dir(const char *src_dir, const lt_load_opts *opts, const char *out_dir,
                                const lt_quantize_dir_opts *qo, lt_pool *pool, lt_quantize_stats *stats) {
    LT_ASSERT(src_dir && opts && out_dir && pool);
    const lt_quantize_dir_opts no_opts = {0};
    lt_quantize_stats no_stats;
    if (!qo) qo = &no_opts;
    if (!stats) stats = &no_stats;
    memset(stats, 0, sizeof *stats);
    if (!opts->quantize)
        return lt_errorf(LT_ERR_INVALID_ARG, "quantize %s: no format given (lt_load_opts.quantize is false)", src_dir);
    double t0 = lt_time_sec();
    lt_qw w = {.src = src_dir};
    /* out_dir without trailing slashes, so "<out>.tmp-..." is its sibling */
    char *out = strdup(out_dir);
    if (!out) return lt_errorf(LT_ERR_NOMEM, "out of memory");
    for (size_t n = strlen(out); n > 1 && out[n - 1] == '/'; n--) out[n - 1] = '\0';
    w.out = out;
    int out_kind = -2;
    lt_model_config cfg;
    char *path = lt_path_join(src_dir, "config.json");
    lt_status st = path ? lt_read_file(path, LT_QDIR_MAX_CONFIG, &w.config, &w.config_len)
                        : lt_errorf(LT_ERR_NOMEM, "out of memory");
    if (!st) st = lt_config_parse(w.config, path, &cfg);
    if (!st) {
        lt_load_opts o = lt_qdir_norm_opts(opts, &cfg);
        st = lt_model_new(&cfg, pool, NULL, &o, path, &w.m);
    }
    free(path);
    if (!st) st = lt_st_set_open_dir(src_dir, &w.set);
    if (!st && lt_st_set_nfiles(w.set) == 0) st = lt_errorf(LT_ERR_FORMAT, "%s: no safetensors files", src_dir);
    if (!st) st = lt_qw_check_source(&w);
    if (!st) st = lt_qw_plan(&w, qo->shard_bytes > 0 ? qo->shard_bytes : LT_QW_DEFAULT_SHARD);
    if (!st) {
        lt_qdir_fingerprint(w.config, w.config_len, w.set, w.fp);
        memcpy(stats->source_fingerprint, w.fp, LT_SHA256_HEX);
        st = lt_qw_prepare(&w, qo->force, &out_kind);
    }
    if (!st) st = lt_qw_open_shards(&w);
    if (!st) st = lt_qw_run(&w, pool, qo, stats);
    if (!st) st = lt_qw_commit(&w, out_kind);
    if (!st) {
        stats->n_tensors = w.n_ents;
        stats->n_files = w.n_shards;
        for (int64_t i = 0; i < w.m->n_weights; i++) {
            bool un;
            lt_model_want_quant(w.m, &w.m->specs[i], &un);
            stats->n_unaligned += un;
        }
        stats->seconds = lt_time_sec() - t0;
    }
    lt_qw_free(&w);
    free(out);
    return st ? lt_status_wrapf(st, "quantizing %s into %s", src_dir, out_dir) : NULL;
}
