/* Checkpoint files and directories (see ckpt.h).
 *
 * HDF5 (Debian's serial build) is not thread-safe: checkpoints are written and read from one thread at a
 * time (the trainer's). HDF5's own error printing is switched off; its failures become lt_status errors
 * naming the file and the item. Every item is read fully at open and the SHA-256 checksum verified before
 * anything is returned, so a damaged file is refused as a whole. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "train/ckpt.h"
#include "train/ckpt_internal.h"

#define LT_CKPT_ZSTD_LEVEL 1          /* measured: level 3 costs ~2x the time for ~3% smaller files */
#define LT_CKPT_CHUNK_BYTES (1 << 20) /* chunk ~1 MiB: large enough for zstd, small enough to stream */
#define LT_CKPT_MAX_ITEMS 1000000

static void h5_quiet(void) {
    static bool done = false;
    if (!done) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        done = true;
    }
}

static hid_t h5_type(lt_dtype t) {
    switch (t) {
    case LT_DTYPE_F32:
        return H5T_IEEE_F32LE;
    case LT_DTYPE_BF16:
        return H5T_STD_U16LE; /* + attribute loft_dtype = "bf16" */
    case LT_DTYPE_I32:
        return H5T_STD_I32LE;
    case LT_DTYPE_I64:
        return H5T_STD_I64LE;
    case LT_DTYPE_U8:
        return H5T_STD_U8LE;
    default:
        return -1;
    }
}

/* ---------------------------------------------------------------- checksum */

static void hash_item(lt_sha256_ctx *h, const char *name, lt_dtype dt, int ndim, const int64_t *shape, const void *data,
                      int64_t nbytes) {
    lt_sha256_update(h, "item", 5);
    lt_sha256_update(h, name, strlen(name) + 1);
    const int64_t hdr[4] = {(int64_t)dt, ndim, shape[0], ndim > 1 ? shape[1] : 1};
    lt_sha256_update(h, hdr, sizeof hdr);
    if (nbytes > 0) lt_sha256_update(h, data, (size_t)nbytes);
}

static void hash_attr(lt_sha256_ctx *h, const lt_ckpt_attr *a) {
    lt_sha256_update(h, "attr", 5);
    lt_sha256_update(h, a->name, strlen(a->name) + 1);
    const int64_t k = a->kind;
    lt_sha256_update(h, &k, sizeof k);
    if (a->kind == LT_CKPT_INT) lt_sha256_update(h, &a->i, sizeof a->i);
    if (a->kind == LT_CKPT_FLOAT) lt_sha256_update(h, &a->f, sizeof a->f);
    if (a->kind == LT_CKPT_STR) lt_sha256_update(h, a->s ? a->s : "", strlen(a->s ? a->s : "") + 1);
}

static int cmp_item_name(const void *a, const void *b) {
    return strcmp((*(const lt_ckpt_item *const *)a)->name, (*(const lt_ckpt_item *const *)b)->name);
}
static int cmp_attr_name(const void *a, const void *b) {
    return strcmp((*(const lt_ckpt_attr *const *)a)->name, (*(const lt_ckpt_attr *const *)b)->name);
}

static int64_t item_elems(const lt_ckpt_item *it) { return it->shape[0] * (it->ndim > 1 ? it->shape[1] : 1); }

/* SHA-256 over items and attributes in name order (hex). */
static lt_status checksum(const lt_ckpt_item *items, int64_t ni, const lt_ckpt_attr *attrs, int64_t na,
                          char hex[LT_SHA256_HEX]) {
    const lt_ckpt_item **ip = malloc((size_t)(ni > 0 ? ni : 1) * sizeof *ip);
    const lt_ckpt_attr **ap = malloc((size_t)(na > 0 ? na : 1) * sizeof *ap);
    if (!ip || !ap) {
        free(ip);
        free(ap);
        return lt_errorf(LT_ERR_NOMEM, "checkpoint: out of memory");
    }
    for (int64_t i = 0; i < ni; i++) ip[i] = &items[i];
    for (int64_t i = 0; i < na; i++) ap[i] = &attrs[i];
    qsort(ip, (size_t)ni, sizeof *ip, cmp_item_name);
    qsort(ap, (size_t)na, sizeof *ap, cmp_attr_name);
    lt_sha256_ctx h;
    lt_sha256_init(&h);
    for (int64_t i = 0; i < ni; i++)
        hash_item(&h, ip[i]->name, ip[i]->dtype, ip[i]->ndim, ip[i]->shape, ip[i]->data,
                  item_elems(ip[i]) * lt_dtype_size(ip[i]->dtype));
    for (int64_t i = 0; i < na; i++)
        if (strcmp(ap[i]->name, "loft_checksum")) hash_attr(&h, ap[i]);
    uint8_t d[LT_SHA256_BYTES];
    lt_sha256_final(&h, d);
    lt_sha256_hex(d, hex);
    free(ip);
    free(ap);
    return NULL;
}

/* ---------------------------------------------------------------- writing */

static herr_t put_attr(hid_t obj, const lt_ckpt_attr *a) {
    hid_t sp = H5Screate(H5S_SCALAR), t = -1, at = -1;
    herr_t rc = -1;
    if (sp < 0) return -1;
    if (a->kind == LT_CKPT_INT) {
        at = H5Acreate2(obj, a->name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (at >= 0) rc = H5Awrite(at, H5T_NATIVE_INT64, &a->i);
    } else if (a->kind == LT_CKPT_FLOAT) {
        at = H5Acreate2(obj, a->name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (at >= 0) rc = H5Awrite(at, H5T_NATIVE_DOUBLE, &a->f);
    } else {
        const char *s = a->s ? a->s : "";
        t = H5Tcopy(H5T_C_S1);
        if (t >= 0 && H5Tset_size(t, strlen(s) + 1) >= 0 && H5Tset_strpad(t, H5T_STR_NULLTERM) >= 0 &&
            H5Tset_cset(t, H5T_CSET_UTF8) >= 0) {
            at = H5Acreate2(obj, a->name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
            if (at >= 0) rc = H5Awrite(at, t, s);
        }
    }
    if (at >= 0) H5Aclose(at);
    if (t >= 0) H5Tclose(t);
    H5Sclose(sp);
    return rc;
}

static lt_status write_item(hid_t f, const lt_ckpt_item *it, const char *path) {
    const hid_t ty = h5_type(it->dtype);
    if (ty < 0 || it->ndim < 1 || it->ndim > 2 || it->shape[0] < 0 || (it->ndim > 1 && it->shape[1] < 0))
        return lt_errorf(LT_ERR_INVALID_ARG, "checkpoint %s: item %s: unsupported dtype or shape", path, it->name);
    const hsize_t dims[2] = {(hsize_t)it->shape[0], it->ndim > 1 ? (hsize_t)it->shape[1] : 1};
    const int64_t n = item_elems(it), esz = lt_dtype_size(it->dtype);
    hid_t sp = H5Screate_simple(it->ndim, dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t ds = -1;
    herr_t rc = -1;
    if (sp >= 0 && lcpl >= 0 && dcpl >= 0 && H5Pset_create_intermediate_group(lcpl, 1) >= 0) {
        if (n > 0) { /* chunks of whole rows, ~1 MiB each */
            const int64_t row_bytes = (it->ndim > 1 ? it->shape[1] : 1) * esz;
            int64_t rows = LT_CKPT_CHUNK_BYTES / (row_bytes > 0 ? row_bytes : 1);
            if (rows < 1) rows = 1;
            if (rows > it->shape[0]) rows = it->shape[0];
            hsize_t chunk[2] = {(hsize_t)rows, dims[1]};
            if (it->ndim == 1) chunk[0] = (hsize_t)(rows > 0 ? rows : 1);
            const unsigned int level = LT_CKPT_ZSTD_LEVEL;
            if (H5Pset_chunk(dcpl, it->ndim, chunk) < 0 ||
                H5Pset_filter(dcpl, LT_H5Z_ZSTD, H5Z_FLAG_MANDATORY, 1, &level) < 0)
                goto out;
        }
        ds = H5Dcreate2(f, it->name, ty, sp, lcpl, dcpl, H5P_DEFAULT);
        if (ds >= 0) rc = n > 0 ? H5Dwrite(ds, ty, H5S_ALL, H5S_ALL, H5P_DEFAULT, it->data) : 0;
        if (rc >= 0 && it->dtype == LT_DTYPE_BF16)
            rc = put_attr(ds, &(lt_ckpt_attr){.name = "loft_dtype", .kind = LT_CKPT_STR, .s = "bf16"});
    }
out:
    if (ds >= 0) H5Dclose(ds);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (sp >= 0) H5Sclose(sp);
    if (rc < 0) return lt_errorf(LT_ERR_IO, "checkpoint %s: writing item %s failed (disk full? a name used twice?)", path,
                                 it->name);
    return NULL;
}

static lt_status fsync_path(const char *path, bool dir) {
    int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return lt_errorf(LT_ERR_IO, "%s: cannot open to fsync: %s", path, strerror(errno));
    int rc = fsync(fd);
    close(fd);
    if (rc != 0 && !(dir && (errno == EINVAL || errno == EROFS)))
        return lt_errorf(LT_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
    return NULL;
}

static lt_status fsync_dir_of(const char *path) {
    char *d = strdup(path);
    if (!d) return lt_errorf(LT_ERR_NOMEM, "out of memory");
    char *slash = strrchr(d, '/');
    lt_status st;
    if (!slash)
        st = fsync_path(".", true);
    else {
        if (slash == d) slash[1] = 0;
        else *slash = 0;
        st = fsync_path(d, true);
    }
    free(d);
    return st;
}

lt_status lt_ckpt_write(const char *path, const lt_ckpt_item *items, int64_t n_items, const lt_ckpt_attr *attrs,
                        int64_t n_attrs) {
    h5_quiet();
    if (!lt_h5_zstd_register()) return lt_errorf(LT_ERR_INTERNAL, "checkpoint: cannot register the zstd HDF5 filter");
    for (int64_t i = 0; i < n_items; i++)
        for (int64_t j = 0; j < i; j++)
            if (!strcmp(items[i].name, items[j].name))
                return lt_errorf(LT_ERR_INVALID_ARG, "checkpoint %s: item %s given twice", path, items[i].name);
    char hex[LT_SHA256_HEX];
    lt_status st = checksum(items, n_items, attrs, n_attrs, hex);
    if (st) return st;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST) < 0) {
        if (fapl >= 0) H5Pclose(fapl);
        return lt_errorf(LT_ERR_INTERNAL, "checkpoint: HDF5 property list");
    }
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0) return lt_errorf(LT_ERR_IO, "checkpoint: cannot create %s (does the directory exist and is it writable?)", tmp);
    for (int64_t i = 0; !st && i < n_items; i++) st = write_item(f, &items[i], path);
    hid_t root = st ? -1 : H5Gopen2(f, "/", H5P_DEFAULT);
    if (!st && root < 0) st = lt_errorf(LT_ERR_IO, "checkpoint %s: no root group", path);
    for (int64_t i = 0; !st && i < n_attrs; i++)
        if (put_attr(root, &attrs[i]) < 0)
            st = lt_errorf(LT_ERR_IO, "checkpoint %s: writing attribute %s failed", path, attrs[i].name);
    if (!st && put_attr(root, &(lt_ckpt_attr){.name = "loft_checksum", .kind = LT_CKPT_STR, .s = hex}) < 0)
        st = lt_errorf(LT_ERR_IO, "checkpoint %s: writing the checksum failed", path);
    if (root >= 0) H5Gclose(root);
    if (H5Fclose(f) < 0 && !st) st = lt_errorf(LT_ERR_IO, "checkpoint %s: closing failed (disk full?)", tmp);
    if (!st) st = fsync_path(tmp, false);
    if (!st && rename(tmp, path) != 0)
        st = lt_errorf(LT_ERR_IO, "checkpoint: rename %s -> %s failed: %s", tmp, path, strerror(errno));
    if (st) {
        unlink(tmp);
        return st;
    }
    return fsync_dir_of(path);
}

/* ---------------------------------------------------------------- the directory */

static bool parse_step_name(const char *name, int64_t *step) {
    long long s;
    int len = 0;
    if (sscanf(name, "step-%lld.h5%n", &s, &len) != 1 || (size_t)len != strlen(name) || s < 0) return false;
    *step = s;
    return true;
}

typedef struct step_list {
    int64_t *steps;
    int64_t n;
} step_list;

static int cmp_i64(const void *a, const void *b) {
    const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Steps of the step-*.h5 files in dir, ascending; removes stale temporaries when clean_tmp. */
static lt_status list_steps(const char *dir, bool clean_tmp, step_list *out) {
    out->steps = NULL;
    out->n = 0;
    DIR *d = opendir(dir);
    if (!d) return lt_errorf(LT_ERR_IO, "%s: cannot list the checkpoint directory: %s", dir, strerror(errno));
    int64_t cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        int64_t s;
        if (clean_tmp && !strncmp(e->d_name, "step-", 5) && strstr(e->d_name, ".h5.tmp-")) {
            char p[4400];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p); /* an interrupted write: never renamed, never pointed to */
            continue;
        }
        if (!parse_step_name(e->d_name, &s)) continue;
        if (out->n == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *g = realloc(out->steps, (size_t)cap * sizeof *g);
            if (!g) {
                closedir(d);
                free(out->steps);
                return lt_errorf(LT_ERR_NOMEM, "out of memory");
            }
            out->steps = g;
        }
        out->steps[out->n++] = s;
    }
    closedir(d);
    if (out->n > 1) qsort(out->steps, (size_t)out->n, sizeof *out->steps, cmp_i64);
    return NULL;
}

lt_status lt_ckpt_dir_save(const char *dir, int64_t step, const lt_ckpt_item *items, int64_t n_items,
                           const lt_ckpt_attr *attrs, int64_t n_attrs, int64_t keep_last, char **path_out) {
    if (path_out) *path_out = NULL;
    lt_status st = lt_mkdir_p(dir);
    if (st) return st;
    char name[64], path[4200], latest[4200];
    snprintf(name, sizeof name, "step-%08lld.h5", (long long)step);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(latest, sizeof latest, "%s/latest", dir);
    st = lt_ckpt_write(path, items, n_items, attrs, n_attrs);
    if (st) return st;
    char line[80];
    snprintf(line, sizeof line, "%s\n", name);
    st = lt_write_file_atomic(latest, line, (int64_t)strlen(line));
    if (st) return lt_status_wrapf(st, "updating %s", latest);
    step_list sl;
    st = list_steps(dir, true, &sl);
    if (st) return st;
    if (keep_last > 0)
        for (int64_t i = 0; i + keep_last < sl.n; i++) {
            if (sl.steps[i] == step) continue;
            char p[4200];
            snprintf(p, sizeof p, "%s/step-%08lld.h5", dir, (long long)sl.steps[i]);
            unlink(p);
        }
    free(sl.steps);
    if (path_out) *path_out = strdup(path);
    return NULL;
}

lt_status lt_ckpt_dir_resolve(const char *dir, const char *which, char *path, size_t cap, lt_ckpt_warn_fn warn,
                              void *warn_ctx) {
    LT_ASSERT(which && path && cap > 0);
    path[0] = 0;
    if (strcmp(which, "latest")) {
        char *end;
        long long s = strtoll(which, &end, 10);
        if (*which && !*end && s >= 0)
            snprintf(path, cap, "%s/step-%08lld.h5", dir, s);
        else
            snprintf(path, cap, "%s", which);
        struct stat sb;
        if (stat(path, &sb) != 0) return lt_errorf(LT_ERR_IO, "checkpoint %s: %s", path, strerror(errno));
        return NULL;
    }
    step_list sl;
    lt_status st = list_steps(dir, false, &sl);
    if (st) return st;
    /* the pointer's target first, then every other checkpoint newest first */
    char target[256] = "";
    char lp[4200];
    snprintf(lp, sizeof lp, "%s/latest", dir);
    char *buf = NULL;
    int64_t n = 0;
    lt_status rs = lt_read_file(lp, 4096, &buf, &n);
    int64_t tstep = -1;
    if (!rs) {
        sscanf(buf, "%255s", target);
        if (!parse_step_name(target, &tstep)) tstep = -1;
        free(buf);
    } else {
        lt_status_free(rs);
    }
    char tried[2048] = "";
    const int64_t total = sl.n + (tstep >= 0);
    for (int64_t k = 0; k < total; k++) {
        int64_t s;
        if (k == 0 && tstep >= 0)
            s = tstep;
        else {
            const int64_t idx = sl.n - 1 - (k - (tstep >= 0));
            s = sl.steps[idx];
            if (s == tstep) continue;
        }
        snprintf(path, cap, "%s/step-%08lld.h5", dir, (long long)s);
        lt_ckpt *c = NULL;
        lt_status os = lt_ckpt_open(path, &c);
        if (!os) {
            lt_ckpt_close(c);
            free(sl.steps);
            return NULL;
        }
        if (warn) {
            char m[1024];
            snprintf(m, sizeof m, "%s cannot be used (%s); trying the previous checkpoint", path, lt_status_msg(os));
            warn(warn_ctx, m);
        }
        snprintf(tried + strlen(tried), sizeof tried - strlen(tried), "%sstep-%08lld.h5", tried[0] ? ", " : "",
                 (long long)s);
        lt_status_free(os);
    }
    free(sl.steps);
    path[0] = 0;
    if (!tried[0])
        return lt_errorf(LT_ERR_IO, "%s holds no checkpoint (step-*.h5): nothing to resume; start without --resume",
                         dir);
    return lt_errorf(LT_ERR_FORMAT, "%s: no valid checkpoint (tried %s); refusing to restart from step 0 silently: "
                                    "start a new run without --resume, in another output_dir",
                     dir, tried);
}

/* ---------------------------------------------------------------- reading */

typedef struct ck_item {
    char *name;
    lt_dtype dtype;
    int ndim;
    int64_t shape[2];
    void *data;
} ck_item;

struct lt_ckpt {
    char *path;
    ck_item *items;
    int64_t n_items, cap_items;
    lt_ckpt_attr *attrs;
    int64_t n_attrs, cap_attrs;
    lt_status err;
};

static herr_t attr_cb(hid_t loc, const char *name, const H5A_info_t *info, void *op) {
    (void)info;
    struct lt_ckpt *c = op;
    if (c->n_attrs == c->cap_attrs) {
        c->cap_attrs = c->cap_attrs ? c->cap_attrs * 2 : 32;
        lt_ckpt_attr *g = realloc(c->attrs, (size_t)c->cap_attrs * sizeof *g);
        if (!g) return -1;
        c->attrs = g;
    }
    lt_ckpt_attr a = {0};
    hid_t at = H5Aopen(loc, name, H5P_DEFAULT);
    if (at < 0) return -1;
    hid_t t = H5Aget_type(at), sp = H5Aget_space(at);
    herr_t rc = -1;
    if (t >= 0 && sp >= 0 && H5Sget_simple_extent_npoints(sp) == 1) {
        const H5T_class_t cl = H5Tget_class(t);
        if (cl == H5T_INTEGER) {
            a.kind = LT_CKPT_INT;
            rc = H5Aread(at, H5T_NATIVE_INT64, &a.i);
        } else if (cl == H5T_FLOAT) {
            a.kind = LT_CKPT_FLOAT;
            rc = H5Aread(at, H5T_NATIVE_DOUBLE, &a.f);
        } else if (cl == H5T_STRING && !H5Tis_variable_str(t)) {
            const size_t sz = H5Tget_size(t);
            char *s = sz > 0 && sz < ((size_t)1 << 30) ? calloc(sz + 1, 1) : NULL;
            if (s && H5Aread(at, t, s) >= 0) {
                a.kind = LT_CKPT_STR;
                a.s = s;
                rc = 0;
            } else {
                free(s);
            }
        }
    }
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    H5Aclose(at);
    if (rc < 0) return -1;
    a.name = strdup(name);
    if (!a.name) return -1;
    c->attrs[c->n_attrs++] = a;
    return 0;
}

static herr_t visit_cb(hid_t obj, const char *name, const H5O_info_t *info, void *op) {
    struct lt_ckpt *c = op;
    if (info->type != H5O_TYPE_DATASET) return 0;
    if (c->n_items >= LT_CKPT_MAX_ITEMS) return -1;
    hid_t ds = H5Dopen2(obj, name, H5P_DEFAULT);
    if (ds < 0) return -1;
    hid_t t = H5Dget_type(ds), sp = H5Dget_space(ds);
    herr_t rc = -1;
    ck_item it = {0};
    hsize_t dims[2] = {0, 0};
    const int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (t >= 0 && nd >= 1 && nd <= 2 && H5Sget_simple_extent_dims(sp, dims, NULL) == nd) {
        const H5T_class_t cl = H5Tget_class(t);
        const size_t sz = H5Tget_size(t);
        const bool bf16 = H5Aexists(ds, "loft_dtype") > 0;
        if (cl == H5T_FLOAT && sz == 4) it.dtype = LT_DTYPE_F32;
        else if (cl == H5T_INTEGER && sz == 2 && bf16) it.dtype = LT_DTYPE_BF16;
        else if (cl == H5T_INTEGER && sz == 4) it.dtype = LT_DTYPE_I32;
        else if (cl == H5T_INTEGER && sz == 8) it.dtype = LT_DTYPE_I64;
        else if (cl == H5T_INTEGER && sz == 1) it.dtype = LT_DTYPE_U8;
        else it.dtype = LT_DTYPE_COUNT;
        it.ndim = nd;
        it.shape[0] = (int64_t)dims[0];
        it.shape[1] = nd > 1 ? (int64_t)dims[1] : 1;
        int64_t n = 0, bytes = 0;
        if (it.dtype != LT_DTYPE_COUNT && lt_mul_i64(it.shape[0], it.shape[1], &n) &&
            lt_mul_i64(n, lt_dtype_size(it.dtype), &bytes) && bytes <= ((int64_t)1 << 40)) {
            it.data = malloc(bytes > 0 ? (size_t)bytes : 1);
            if (it.data && (n == 0 || H5Dread(ds, h5_type(it.dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, it.data) >= 0)) rc = 0;
        }
    }
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    H5Dclose(ds);
    if (rc < 0) {
        free(it.data);
        return -1;
    }
    it.name = strdup(name);
    if (c->n_items == c->cap_items) {
        c->cap_items = c->cap_items ? c->cap_items * 2 : 64;
        ck_item *g = realloc(c->items, (size_t)c->cap_items * sizeof *g);
        if (!g) {
            free(it.data);
            free(it.name);
            return -1;
        }
        c->items = g;
    }
    c->items[c->n_items++] = it;
    return it.name ? 0 : -1;
}

void lt_ckpt_close(lt_ckpt *c) {
    if (!c) return;
    for (int64_t i = 0; i < c->n_items; i++) {
        free(c->items[i].name);
        free(c->items[i].data);
    }
    for (int64_t i = 0; i < c->n_attrs; i++) {
        free((char *)c->attrs[i].name);
        free((char *)c->attrs[i].s);
    }
    free(c->items);
    free(c->attrs);
    free(c->path);
    free(c);
}

static int cmp_ck_item(const void *a, const void *b) {
    return strcmp(((const ck_item *)a)->name, ((const ck_item *)b)->name);
}

lt_status lt_ckpt_open(const char *path, lt_ckpt **out) {
    *out = NULL;
    h5_quiet();
    if (!lt_h5_zstd_register()) return lt_errorf(LT_ERR_INTERNAL, "checkpoint: cannot register the zstd HDF5 filter");
    struct stat sb;
    if (stat(path, &sb) != 0) return lt_errorf(LT_ERR_IO, "checkpoint %s: %s", path, strerror(errno));
    if (H5Fis_hdf5(path) <= 0)
        return lt_errorf(LT_ERR_FORMAT, "checkpoint %s: not a readable HDF5 file (truncated or damaged?)", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return lt_errorf(LT_ERR_FORMAT, "checkpoint %s: HDF5 cannot open it (truncated or damaged?)", path);
    lt_ckpt *c = calloc(1, sizeof *c);
    if (!c) {
        H5Fclose(f);
        return lt_errorf(LT_ERR_NOMEM, "out of memory");
    }
    c->path = strdup(path);
    lt_status st = NULL;
    if (H5Ovisit2(f, H5_INDEX_NAME, H5_ITER_INC, visit_cb, c, H5O_INFO_BASIC) < 0)
        st = lt_errorf(LT_ERR_FORMAT, "checkpoint %s: reading its datasets failed (truncated or damaged?)", path);
    hid_t root = st ? -1 : H5Gopen2(f, "/", H5P_DEFAULT);
    hsize_t idx = 0;
    if (!st && (root < 0 || H5Aiterate2(root, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_cb, c) < 0))
        st = lt_errorf(LT_ERR_FORMAT, "checkpoint %s: reading its attributes failed (damaged?)", path);
    if (root >= 0) H5Gclose(root);
    if (H5Fclose(f) < 0 && !st) st = lt_errorf(LT_ERR_FORMAT, "checkpoint %s: closing failed", path);
    if (!st) {
        if (c->n_items > 1) qsort(c->items, (size_t)c->n_items, sizeof *c->items, cmp_ck_item);
        const char *want = NULL;
        for (int64_t i = 0; i < c->n_attrs; i++)
            if (!strcmp(c->attrs[i].name, "loft_checksum") && c->attrs[i].kind == LT_CKPT_STR) want = c->attrs[i].s;
        lt_ckpt_item *iv = malloc((size_t)(c->n_items > 0 ? c->n_items : 1) * sizeof *iv);
        if (!iv) st = lt_errorf(LT_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; !st && i < c->n_items; i++)
            iv[i] = (lt_ckpt_item){.name = c->items[i].name, .dtype = c->items[i].dtype, .ndim = c->items[i].ndim,
                                   .shape = {c->items[i].shape[0], c->items[i].shape[1]}, .data = c->items[i].data};
        char hex[LT_SHA256_HEX];
        if (!st) st = checksum(iv, c->n_items, c->attrs, c->n_attrs, hex);
        free(iv);
        if (!st && !want) st = lt_errorf(LT_ERR_FORMAT, "checkpoint %s: no loft_checksum attribute (not written by loft?)", path);
        if (!st && strcmp(want, hex))
            st = lt_errorf(LT_ERR_FORMAT, "checkpoint %s: checksum mismatch (stored %.16s..., computed %.16s...): the "
                                          "file is damaged", path, want, hex);
    }
    if (st) {
        lt_ckpt_close(c);
        return st;
    }
    *out = c;
    return NULL;
}

static const ck_item *find_item(const lt_ckpt *c, const char *name) {
    const char *n = name[0] == '/' ? name + 1 : name;
    int64_t lo = 0, hi = c->n_items - 1;
    while (lo <= hi) {
        const int64_t mid = (lo + hi) / 2;
        const int r = strcmp(c->items[mid].name, n);
        if (!r) return &c->items[mid];
        if (r < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

bool lt_ckpt_has(const lt_ckpt *c, const char *name) { return find_item(c, name) != NULL; }

lt_status lt_ckpt_item_info(const lt_ckpt *c, const char *name, lt_dtype *dtype, int *ndim, int64_t shape[2]) {
    const ck_item *it = find_item(c, name);
    if (!it) return lt_errorf(LT_ERR_FORMAT, "checkpoint %s: no item %s", c->path, name);
    if (dtype) *dtype = it->dtype;
    if (ndim) *ndim = it->ndim;
    if (shape) shape[0] = it->shape[0], shape[1] = it->shape[1];
    return NULL;
}

lt_status lt_ckpt_read(const lt_ckpt *c, const char *name, lt_dtype dtype, int64_t n_elems, void *dst) {
    const ck_item *it = find_item(c, name);
    if (!it) return lt_errorf(LT_ERR_FORMAT, "checkpoint %s: no item %s (written by another configuration?)", c->path, name);
    const int64_t n = it->shape[0] * it->shape[1];
    if (it->dtype != dtype || n != n_elems)
        return lt_errorf(LT_ERR_FORMAT, "checkpoint %s: item %s is %s x %lld, expected %s x %lld", c->path, name,
                         it->dtype < LT_DTYPE_COUNT ? lt_dtype_name(it->dtype) : "?", (long long)n, lt_dtype_name(dtype),
                         (long long)n_elems);
    if (n > 0) memcpy(dst, it->data, (size_t)(n * lt_dtype_size(dtype)));
    return NULL;
}

static const lt_ckpt_attr *find_attr(const lt_ckpt *c, const char *name, lt_ckpt_attr_kind kind, lt_status *st) {
    for (int64_t i = 0; i < c->n_attrs; i++)
        if (!strcmp(c->attrs[i].name, name)) {
            if (c->attrs[i].kind == kind) return &c->attrs[i];
            *st = lt_errorf(LT_ERR_FORMAT, "checkpoint %s: attribute %s has another type", c->path, name);
            return NULL;
        }
    *st = lt_errorf(LT_ERR_FORMAT, "checkpoint %s: no attribute %s", c->path, name);
    return NULL;
}

lt_status lt_ckpt_attr_int(const lt_ckpt *c, const char *name, int64_t *out) {
    lt_status st = NULL;
    const lt_ckpt_attr *a = find_attr(c, name, LT_CKPT_INT, &st);
    if (a) *out = a->i;
    return st;
}

lt_status lt_ckpt_attr_float(const lt_ckpt *c, const char *name, double *out) {
    lt_status st = NULL;
    const lt_ckpt_attr *a = find_attr(c, name, LT_CKPT_FLOAT, &st);
    if (a) *out = a->f;
    return st;
}

lt_status lt_ckpt_attr_str(const lt_ckpt *c, const char *name, const char **out) {
    lt_status st = NULL;
    const lt_ckpt_attr *a = find_attr(c, name, LT_CKPT_STR, &st);
    if (a) *out = a->s;
    return st;
}

int64_t lt_ckpt_n_items(const lt_ckpt *c) { return c->n_items; }
const char *lt_ckpt_item_name(const lt_ckpt *c, int64_t i) { return i >= 0 && i < c->n_items ? c->items[i].name : NULL; }
