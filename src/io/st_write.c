/* safetensors writer: one file (atomic) or a sharded model directory with an index.
 *
 * A file is streamed: 8-byte header length, the JSON header padded with spaces to a multiple of 8
 * (so the data section starts 8-byte aligned), then each tensor's bytes straight from the
 * caller's pointer, in the order given. It goes to "<path>.tmp.<pid>.<k>" in the same directory,
 * then fsync, rename over <path>, fsync of the directory: a crash leaves either the old file or
 * the new one under <path>, never half of one.
 */
#include "io/io.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LT_ST_MAX_NAME 1024             /* as the reader */
#define LT_ST_DEFAULT_SHARD 5000000000LL /* HF's "5GB" */
#define LT_ST_WRITE_CHUNK (64LL << 20)   /* bytes per write() call: Linux caps one call near 2 GB */

/* ---------------------------------------------------------------- entry checks */

/* Checks one entry and returns its byte size in *nbytes. Writer-side errors are caller bugs or
 * bad user input, reported as LT_ERR_INVALID_ARG naming the output and the tensor. */
static lt_status lt_st_entry_bytes(const char *path, const lt_st_entry *e, int64_t *nbytes) {
    if (!e->name || !e->name[0] || strlen(e->name) > LT_ST_MAX_NAME || !strcmp(e->name, "__metadata__"))
        return lt_errorf(LT_ERR_INVALID_ARG, "%s: tensor name \"%.100s\" is invalid (1 to %d bytes, not __metadata__)",
                         path, e->name ? e->name : "(null)", LT_ST_MAX_NAME);
    int bits = lt_st_dtype_bits(e->dtype_name);
    if (bits == 0)
        return lt_errorf(LT_ERR_INVALID_ARG, "%s: tensor \"%s\": unknown safetensors dtype \"%s\"", path, e->name,
                         e->dtype_name ? e->dtype_name : "(null)");
    if (e->ndim < 0 || e->ndim > LT_ST_MAX_DIMS)
        return lt_errorf(LT_ERR_INVALID_ARG, "%s: tensor \"%s\": %d dimensions (0 to %d allowed)", path, e->name,
                         e->ndim, LT_ST_MAX_DIMS);
    int64_t numel = 1, nbits;
    for (int d = 0; d < e->ndim; d++)
        if (e->shape[d] < 0 || !lt_mul_i64(numel, e->shape[d], &numel))
            return lt_errorf(LT_ERR_INVALID_ARG, "%s: tensor \"%s\": bad shape (negative or overflowing dimension %d)",
                             path, e->name, d);
    if (!lt_mul_i64(numel, bits, &nbits) || nbits % 8 != 0)
        return lt_errorf(LT_ERR_INVALID_ARG,
                         "%s: tensor \"%s\": %lld elements of %s are not a whole number of bytes (or overflow)", path,
                         e->name, (long long)numel, e->dtype_name);
    if (nbits > 0 && !e->data && !e->fill)
        return lt_errorf(LT_ERR_INVALID_ARG, "%s: tensor \"%s\": data is NULL", path, e->name);
    *nbytes = nbits / 8;
    return NULL;
}

/* ---------------------------------------------------------------- header */

/* Builds the padded header text (N bytes, N % 8 == 0) for entries[0..n) laid out contiguously
 * from offset 0. __metadata__ comes first (when any), then the tensors in the order given. */
static lt_status lt_st_header(const char *path, const lt_st_entry *entries, int64_t n, const lt_st_meta *meta,
                              int64_t n_meta, char **out, int64_t *out_len) {
    *out = NULL;
    lt_status st = NULL;
    json_t *root = json_object(), *m = NULL;
    if (!root) return lt_errorf(LT_ERR_NOMEM, "%s: out of memory building the header", path);
    if (n_meta > 0) {
        m = json_object();
        if (!m || json_object_set_new(root, "__metadata__", m)) {
            st = lt_errorf(LT_ERR_NOMEM, "%s: out of memory building the header", path);
            goto done;
        }
        for (int64_t i = 0; i < n_meta; i++) {
            if (meta[i].key && json_object_get(m, meta[i].key)) {
                st = lt_errorf(LT_ERR_INVALID_ARG, "%s: metadata key \"%.100s\" is given twice", path, meta[i].key);
                goto done;
            }
            json_t *v = meta[i].key && meta[i].value ? json_string(meta[i].value) : NULL;
            if (!v || json_object_set_new(m, meta[i].key, v)) {
                st = lt_errorf(LT_ERR_INVALID_ARG, "%s: metadata entry %lld is missing or not valid UTF-8", path,
                               (long long)i);
                goto done;
            }
        }
    }
    int64_t off = 0;
    for (int64_t i = 0; i < n; i++) {
        const lt_st_entry *e = &entries[i];
        int64_t nb, end;
        if ((st = lt_st_entry_bytes(path, e, &nb))) goto done;
        if (!lt_add_i64(off, nb, &end)) {
            st = lt_errorf(LT_ERR_INVALID_ARG, "%s: total tensor bytes overflow 64 bits", path);
            goto done;
        }
        if (json_object_get(root, e->name)) {
            st = lt_errorf(LT_ERR_INVALID_ARG, "%s: tensor name \"%s\" is given twice", path, e->name);
            goto done;
        }
        json_t *shape = json_array(), *t = json_object();
        bool ok = shape && t && !json_object_set_new(t, "dtype", json_string(e->dtype_name)) &&
                  !json_object_set(t, "shape", shape);
        for (int d = 0; ok && d < e->ndim; d++) ok = !json_array_append_new(shape, json_integer(e->shape[d]));
        ok = ok && !json_object_set_new(t, "data_offsets", json_pack("[II]", (json_int_t)off, (json_int_t)end));
        json_decref(shape);
        if (!ok || json_object_set_new(root, e->name, t)) { /* set_new takes t even on failure */
            if (!ok) json_decref(t);
            st = lt_errorf(LT_ERR_INVALID_ARG, "%s: tensor \"%.100s\": could not encode its header entry (is the name "
                                               "valid UTF-8?)", path, e->name);
            goto done;
        }
        off = end;
    }
    char *text = json_dumps(root, JSON_COMPACT);
    if (!text) {
        st = lt_errorf(LT_ERR_NOMEM, "%s: out of memory writing the header", path);
        goto done;
    }
    int64_t len = (int64_t)strlen(text), padded = (len + 7) / 8 * 8;
    if (padded > LT_ST_MAX_HEADER) {
        free(text);
        st = lt_errorf(LT_ERR_INVALID_ARG, "%s: header would be %lld bytes, over the %d-byte safetensors limit", path,
                       (long long)padded, LT_ST_MAX_HEADER);
        goto done;
    }
    char *buf = realloc(text, (size_t)padded + 1);
    if (!buf) {
        free(text);
        st = lt_errorf(LT_ERR_NOMEM, "%s: out of memory writing the header", path);
        goto done;
    }
    memset(buf + len, ' ', (size_t)(padded - len));
    buf[padded] = '\0';
    *out = buf;
    *out_len = padded;
done:
    json_decref(root);
    return st;
}

/* ---------------------------------------------------------------- streaming */

static lt_status lt_st_write_all(int fd, const char *tmp, const void *data, int64_t len) {
    const char *p = data;
    while (len > 0) {
        size_t chunk = (size_t)(len < LT_ST_WRITE_CHUNK ? len : LT_ST_WRITE_CHUNK);
        ssize_t w = write(fd, p, chunk);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            return lt_errorf(LT_ERR_IO, "%s: write failed: %s (is the disk full?)", tmp,
                             w < 0 ? strerror(errno) : "no progress");
        p += w;
        len -= w;
    }
    return NULL;
}

static void lt_st_fsync_dir(const char *path) {
    char *copy = strdup(path);
    if (!copy) return;
    char *slash = strrchr(copy, '/');
    const char *dir = ".";
    if (slash == copy) dir = "/";
    else if (slash) *slash = '\0', dir = copy;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd); /* best effort: some filesystems refuse fsync on a directory */
        close(fd);
    }
    free(copy);
}

lt_status lt_st_write(const char *path, const lt_st_entry *entries, int64_t n, const lt_st_meta *meta,
                      int64_t n_meta) {
    if (!path || n < 0 || (n > 0 && !entries) || n_meta < 0 || (n_meta > 0 && !meta))
        return lt_errorf(LT_ERR_INVALID_ARG, "lt_st_write: bad arguments for %s", path ? path : "(null)");
    char *hdr = NULL;
    int64_t hlen = 0;
    lt_status st = lt_st_header(path, entries, n, meta, n_meta, &hdr, &hlen);
    if (st) return st;

    static atomic_uint counter;
    size_t tl = strlen(path) + 48;
    char *tmp = malloc(tl);
    if (!tmp) {
        free(hdr);
        return lt_errorf(LT_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(tmp, tl, "%s.tmp.%ld.%u", path, (long)getpid(), atomic_fetch_add(&counter, 1));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        st = lt_errorf(LT_ERR_IO, "%s: cannot create: %s; check that the directory exists and is writable", tmp,
                       strerror(errno));
        free(hdr);
        free(tmp);
        return st;
    }
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    st = lt_st_write_all(fd, tmp, lenb, 8);
    if (!st) st = lt_st_write_all(fd, tmp, hdr, hlen);
    free(hdr);
    void *fbuf = NULL; /* reused by producer entries; grows to the largest one */
    int64_t fcap = 0;
    for (int64_t i = 0; !st && i < n; i++) {
        const lt_st_entry *e = &entries[i];
        int64_t nb = 0;
        st = lt_st_entry_bytes(path, e, &nb); /* checked in lt_st_header; cheap */
        if (st || nb == 0) continue;
        if (e->data) {
            st = lt_st_write_all(fd, tmp, e->data, nb);
            continue;
        }
        if (nb > fcap) {
            free(fbuf);
            fbuf = (uint64_t)nb <= SIZE_MAX ? malloc((size_t)nb) : NULL;
            fcap = fbuf ? nb : 0;
            if (!fbuf) {
                st = lt_errorf(LT_ERR_NOMEM, "%s: out of memory for tensor \"%s\" (%lld bytes)", path, e->name,
                               (long long)nb);
                break;
            }
        }
        st = e->fill(e->fill_ctx, fbuf, nb);
        if (!st) st = lt_st_write_all(fd, tmp, fbuf, nb);
    }
    free(fbuf);
    if (!st && fsync(fd) != 0) st = lt_errorf(LT_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
    if (close(fd) != 0 && !st) st = lt_errorf(LT_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (!st && rename(tmp, path) != 0)
        st = lt_errorf(LT_ERR_IO, "%s: rename to %s failed: %s", tmp, path, strerror(errno));
    if (st) {
        unlink(tmp);
        free(tmp);
        return st;
    }
    free(tmp);
    lt_st_fsync_dir(path);
    return NULL;
}

/* ---------------------------------------------------------------- sharded model directories */

/* meta plus {"format": "pt"} when the caller gave no "format" (HF loaders look for it). */
static lt_st_meta *lt_st_meta_with_format(const lt_st_meta *meta, int64_t n_meta, int64_t *out_n) {
    lt_st_meta *m = malloc(sizeof *m * (size_t)(n_meta + 1));
    if (!m) return NULL;
    bool has = false;
    for (int64_t i = 0; i < n_meta; i++) {
        m[i] = meta[i];
        if (meta[i].key && !strcmp(meta[i].key, "format")) has = true;
    }
    *out_n = n_meta;
    if (!has) m[(*out_n)++] = (lt_st_meta){"format", "pt"};
    return m;
}

/* Removes dir/name if present: a stale single file or index from an earlier write would make
 * loaders (ours prefers the index, transformers the single file) read the wrong weights. */
static lt_status lt_st_remove_stale(const char *dir, const char *name) {
    char *p = lt_path_join(dir, name);
    if (!p) return lt_errorf(LT_ERR_NOMEM, "out of memory");
    lt_status st = NULL;
    if (unlink(p) != 0 && errno != ENOENT)
        st = lt_errorf(LT_ERR_IO, "%s: cannot remove the stale file: %s", p, strerror(errno));
    free(p);
    return st;
}

/* Writes model.safetensors.index.json: entries[i] lives in shard shard_of[i] (0-based). */
static lt_status lt_st_write_index(const char *dir, const lt_st_entry *entries, int64_t n, const int64_t *shard_of,
                                   int64_t nshards, int64_t total) {
    char *path = lt_path_join(dir, "model.safetensors.index.json");
    if (!path) return lt_errorf(LT_ERR_NOMEM, "out of memory");
    lt_status st = NULL;
    json_t *root = json_object(), *wm = json_object();
    bool ok = root && wm && !json_object_set_new(root, "metadata", json_pack("{s:I}", "total_size", (json_int_t)total)) &&
              !json_object_set(root, "weight_map", wm);
    char name[64];
    for (int64_t i = 0; ok && i < n; i++) {
        snprintf(name, sizeof name, "model-%05lld-of-%05lld.safetensors", (long long)shard_of[i] + 1,
                 (long long)nshards);
        ok = !json_object_set_new(wm, entries[i].name, json_string(name));
    }
    char *text = ok ? json_dumps(root, JSON_INDENT(2)) : NULL;
    if (!text) st = lt_errorf(LT_ERR_NOMEM, "%s: out of memory building the index", path);
    else st = lt_write_file_atomic(path, text, (int64_t)strlen(text));
    free(text);
    json_decref(wm);
    json_decref(root);
    free(path);
    return st;
}

lt_status lt_st_write_model(const char *dir, const lt_st_entry *entries, int64_t n, const lt_st_meta *meta,
                            int64_t n_meta, int64_t shard_bytes) {
    if (!dir || n < 0 || (n > 0 && !entries) || n_meta < 0 || (n_meta > 0 && !meta))
        return lt_errorf(LT_ERR_INVALID_ARG, "lt_st_write_model: bad arguments for %s", dir ? dir : "(null)");
    if (shard_bytes <= 0) shard_bytes = LT_ST_DEFAULT_SHARD;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return lt_errorf(LT_ERR_IO, "%s: cannot create the directory: %s", dir, strerror(errno));

    lt_status st = NULL;
    int64_t *shard_of = malloc(sizeof *shard_of * (size_t)(n ? n : 1));
    int64_t nm = 0;
    lt_st_meta *m = lt_st_meta_with_format(meta, n_meta, &nm);
    if (!shard_of || !m) {
        st = lt_errorf(LT_ERR_NOMEM, "%s: out of memory", dir);
        goto done;
    }
    /* Greedy shard assignment, in the order given: a new shard starts when the next tensor would
     * push the current one past shard_bytes; a tensor bigger than shard_bytes ends up alone in
     * its shard (with any zero-size tensors that follow it: they never start a shard). One shard
     * is written as model.safetensors, as transformers does. */
    int64_t total = 0, cur = 0, nshards = n ? 1 : 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t nb;
        if ((st = lt_st_entry_bytes(dir, &entries[i], &nb))) goto done;
        if (!lt_add_i64(total, nb, &total)) {
            st = lt_errorf(LT_ERR_INVALID_ARG, "%s: total tensor bytes overflow 64 bits", dir);
            goto done;
        }
        if (nb > 0 && cur > 0 && cur + nb > shard_bytes) { /* cur + nb <= total: no overflow */
            nshards++;
            cur = 0;
        }
        cur += nb;
        shard_of[i] = nshards - 1;
    }
    if (nshards <= 1) {
        char *path = lt_path_join(dir, "model.safetensors");
        if (!path) {
            st = lt_errorf(LT_ERR_NOMEM, "out of memory");
            goto done;
        }
        st = lt_st_write(path, entries, n, m, nm);
        free(path);
        if (!st) st = lt_st_remove_stale(dir, "model.safetensors.index.json");
        goto done;
    }
    if (nshards > 99999) {
        st = lt_errorf(LT_ERR_INVALID_ARG, "%s: %lld shards needed, more than the 99999 the file names allow; use a "
                                           "larger shard size", dir, (long long)nshards);
        goto done;
    }
    /* shards first, the index last: an index on disk means every shard it names is complete */
    for (int64_t k = 0, i = 0; k < nshards; k++) {
        int64_t j = i;
        while (j < n && shard_of[j] == k) j++;
        char name[64];
        snprintf(name, sizeof name, "model-%05lld-of-%05lld.safetensors", (long long)k + 1, (long long)nshards);
        char *path = lt_path_join(dir, name);
        if (!path) {
            st = lt_errorf(LT_ERR_NOMEM, "out of memory");
            goto done;
        }
        st = lt_st_write(path, entries + i, j - i, m, nm);
        free(path);
        if (st) goto done;
        i = j;
    }
    if ((st = lt_st_write_index(dir, entries, n, shard_of, nshards, total))) goto done;
    st = lt_st_remove_stale(dir, "model.safetensors");
done:
    free(shard_of);
    free(m);
    return st;
}
