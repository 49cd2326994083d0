/* A model's tensors across one safetensors file or an index + shards (Hugging Face layout).
 *
 * model.safetensors.index.json is untrusted like every file: duplicate keys are refused,
 * weight_map must map non-empty names to plain shard file names (no '/', no ".."), every shard
 * it names is opened once and fully validated, and the map and the shards must agree exactly:
 * each listed tensor is in the shard the map names, each tensor of a shard is listed for that
 * shard. A tensor name may appear once across all files.
 */
#include "io/io.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define LT_ST_INDEX_NAME "model.safetensors.index.json"
#define LT_ST_SINGLE_NAME "model.safetensors"
#define LT_ST_MAX_INDEX_BYTES (100LL * 1000 * 1000) /* ~100 bytes per entry: room for 1M tensors */
#define LT_ST_MAX_SHARD_NAME 255                    /* a file name on common filesystems */
#define LT_ST_MAX_SHARDS 99999                      /* the -%05d-of-%05d naming */

struct lt_st_set {
    lt_st_file **files; /* nfiles; shards sorted by file name */
    int64_t nfiles;
    const lt_st_tensor **all; /* n: file by file, each file's own (offset) order */
    const lt_st_tensor **by_name; /* n, sorted by name */
    int64_t n;
};

static int lt_st_cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int lt_st_cmp_tensor_name(const void *a, const void *b) {
    const lt_st_tensor *x = *(const lt_st_tensor *const *)a, *y = *(const lt_st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

/* Index of s in the sorted unique array names[0..n), or -1. */
static int64_t lt_st_bsearch_str(char *const *names, int64_t n, const char *s) {
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s, names[mid]);
        if (c == 0) return mid;
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return -1;
}

/* A shard name from the index must be a plain file name inside the model directory. */
static bool lt_st_plain_name(const char *s) {
    size_t n = strlen(s);
    return n > 0 && n <= LT_ST_MAX_SHARD_NAME && !strchr(s, '/') && !strchr(s, '\\') && !strstr(s, "..");
}

/* Copies an untrusted name for a message: at most 100 bytes, control bytes as '?'. */
static const char *lt_st_q(const char *s, char *buf) {
    size_t j = 0;
    for (; s[j] && j < 100; j++) buf[j] = ((unsigned char)s[j] < 0x20 || s[j] == 0x7F) ? '?' : s[j];
    buf[j] = '\0';
    return buf;
}

void lt_st_set_close(lt_st_set *s) {
    if (!s) return;
    for (int64_t i = 0; i < s->nfiles; i++) lt_st_close(s->files[i]);
    free(s->files);
    free(s->all);
    free(s->by_name);
    free(s);
}

/* Fills s->all / s->by_name from the opened files; refuses a name present in two files. */
static lt_status lt_st_set_build(lt_st_set *s, const char *where) {
    int64_t n = 0;
    for (int64_t i = 0; i < s->nfiles; i++) n += lt_st_count(s->files[i]); /* each <= 1e6: no overflow */
    s->all = malloc(sizeof *s->all * (size_t)(n ? n : 1));
    s->by_name = malloc(sizeof *s->by_name * (size_t)(n ? n : 1));
    if (!s->all || !s->by_name) return lt_errorf(LT_ERR_NOMEM, "%s: out of memory for %lld tensors", where, (long long)n);
    int64_t k = 0;
    for (int64_t i = 0; i < s->nfiles; i++)
        for (int64_t j = 0; j < lt_st_count(s->files[i]); j++) s->all[k++] = lt_st_get(s->files[i], j);
    s->n = n;
    memcpy(s->by_name, s->all, sizeof *s->all * (size_t)n);
    qsort(s->by_name, (size_t)n, sizeof *s->by_name, lt_st_cmp_tensor_name);
    for (int64_t i = 1; i < n; i++)
        if (!strcmp(s->by_name[i - 1]->name, s->by_name[i]->name)) {
            char q[104];
            return lt_errorf(LT_ERR_FORMAT,
                             "%s: tensor \"%s\" appears in more than one file; each tensor must be stored once; "
                             "re-export the model",
                             where, lt_st_q(s->by_name[i]->name, q));
        }
    return NULL;
}

/* Parses the index, opens every shard it names and checks that map and shards agree. */
static lt_status lt_st_set_open_index(lt_st_set *s, const char *dir, const char *ipath) {
    char *text = NULL;
    int64_t len = 0;
    lt_status st = lt_read_file(ipath, LT_ST_MAX_INDEX_BYTES, &text, &len);
    if (st) return st;
    json_error_t jerr;
    json_t *root = json_loadb(text, (size_t)len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    char **names = NULL; /* unique shard names, sorted */
    int64_t nnames = 0;
    char q[104], q2[104];
    if (!root) {
        st = lt_errorf(LT_ERR_FORMAT, "%s: not valid JSON (%s, line %d column %d); re-download or re-export the model",
                       ipath, lt_st_q(jerr.text, q), jerr.line, jerr.column);
        goto done;
    }
    json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(root) || !json_is_object(wm)) {
        st = lt_errorf(LT_ERR_FORMAT,
                       "%s: expected an object with \"weight_map\": {tensor name: shard file name}; re-download or "
                       "re-export the model",
                       ipath);
        goto done;
    }
    size_t nmap = json_object_size(wm);
    names = malloc(sizeof *names * (nmap ? nmap : 1));
    if (!names) {
        st = lt_errorf(LT_ERR_NOMEM, "%s: out of memory", ipath);
        goto done;
    }
    const char *key;
    json_t *val;
    json_object_foreach(wm, key, val) {
        if (!key[0] || !json_is_string(val) || !lt_st_plain_name(json_string_value(val))) {
            st = lt_errorf(LT_ERR_FORMAT,
                           "%s: weight_map entry \"%s\" must map a non-empty tensor name to a plain shard file name "
                           "(a string without '/' or \"..\", at most %d bytes) in the same directory; re-download or "
                           "re-export the model",
                           ipath, lt_st_q(key, q), LT_ST_MAX_SHARD_NAME);
            goto done;
        }
        names[nnames++] = (char *)json_string_value(val); /* owned by root, which outlives names */
    }
    qsort(names, (size_t)nnames, sizeof *names, lt_st_cmp_str);
    int64_t u = 0;
    for (int64_t i = 0; i < nnames; i++)
        if (u == 0 || strcmp(names[u - 1], names[i])) names[u++] = names[i];
    nnames = u;
    if (nnames > LT_ST_MAX_SHARDS) {
        st = lt_errorf(LT_ERR_FORMAT, "%s: weight_map names %lld shard files, more than %d; re-export the model", ipath,
                       (long long)nnames, LT_ST_MAX_SHARDS);
        goto done;
    }
    s->files = calloc((size_t)(nnames ? nnames : 1), sizeof *s->files);
    if (!s->files) {
        st = lt_errorf(LT_ERR_NOMEM, "%s: out of memory", ipath);
        goto done;
    }
    for (int64_t i = 0; i < nnames; i++) {
        char *path = lt_path_join(dir, names[i]);
        if (!path) {
            st = lt_errorf(LT_ERR_NOMEM, "%s: out of memory", ipath);
            goto done;
        }
        struct stat sb;
        if (stat(path, &sb) != 0 && errno == ENOENT) {
            st = lt_errorf(LT_ERR_FORMAT,
                           "%s: weight_map names shard \"%s\", but %s is missing; every shard is needed: "
                           "re-download the model",
                           ipath, lt_st_q(names[i], q), path);
            free(path);
            goto done;
        }
        st = lt_st_open(path, &s->files[i]);
        free(path);
        if (st) {
            st = lt_status_wrapf(st, "%s: shard \"%s\"", ipath, lt_st_q(names[i], q));
            goto done;
        }
        s->nfiles++;
    }
    /* the map and the shards must agree, both ways */
    json_object_foreach(wm, key, val) {
        int64_t i = lt_st_bsearch_str(names, nnames, json_string_value(val));
        LT_ASSERT(i >= 0);
        if (!lt_st_find(s->files[i], key)) {
            st = lt_errorf(LT_ERR_FORMAT,
                           "%s: weight_map puts tensor \"%s\" in \"%s\", but that shard has no such tensor; the index "
                           "and the shards do not match: re-download or re-export the model",
                           ipath, lt_st_q(key, q), lt_st_q(names[i], q2));
            goto done;
        }
    }
    for (int64_t i = 0; i < nnames; i++)
        for (int64_t j = 0; j < lt_st_count(s->files[i]); j++) {
            const char *tn = lt_st_get(s->files[i], j)->name;
            json_t *v = json_object_get(wm, tn);
            if (!v) {
                st = lt_errorf(LT_ERR_FORMAT,
                               "%s: shard \"%s\" holds tensor \"%s\", which weight_map does not list; the index and "
                               "the shards do not match: re-download or re-export the model",
                               ipath, lt_st_q(names[i], q), lt_st_q(tn, q2));
                goto done;
            }
            if (strcmp(json_string_value(v), names[i])) {
                st = lt_errorf(LT_ERR_FORMAT,
                               "%s: tensor \"%s\" is stored in shard \"%s\" but weight_map assigns it to another "
                               "shard (a tensor may be stored once); re-download or re-export the model",
                               ipath, lt_st_q(tn, q), lt_st_q(names[i], q2));
                goto done;
            }
        }
    st = lt_st_set_build(s, ipath);
done:
    free(names);
    json_decref(root);
    return st;
}

lt_status lt_st_set_open_dir(const char *dir, lt_st_set **out) {
    *out = NULL;
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return lt_errorf(LT_ERR_IO, "%s: not a directory; give a Hugging Face model directory", dir);
    lt_st_set *s = calloc(1, sizeof *s);
    char *ipath = lt_path_join(dir, LT_ST_INDEX_NAME), *spath = lt_path_join(dir, LT_ST_SINGLE_NAME);
    lt_status st = NULL;
    if (!s || !ipath || !spath) {
        st = lt_errorf(LT_ERR_NOMEM, "%s: out of memory", dir);
    } else if (stat(ipath, &sb) == 0) {
        st = lt_st_set_open_index(s, dir, ipath);
    } else if (stat(spath, &sb) == 0) {
        s->files = calloc(1, sizeof *s->files);
        if (!s->files) st = lt_errorf(LT_ERR_NOMEM, "%s: out of memory", dir);
        else if (!(st = lt_st_open(spath, &s->files[0]))) {
            s->nfiles = 1;
            st = lt_st_set_build(s, spath);
        }
    } else {
        st = lt_errorf(LT_ERR_FORMAT,
                       "%s: has neither %s nor %s; a model directory must contain model.safetensors, or "
                       "model.safetensors.index.json plus every shard it names (the Hugging Face layout)",
                       dir, LT_ST_INDEX_NAME, LT_ST_SINGLE_NAME);
    }
    free(ipath);
    free(spath);
    if (st) {
        lt_st_set_close(s);
        return st;
    }
    *out = s;
    return NULL;
}

int64_t lt_st_set_count(const lt_st_set *s) { return s->n; }

const lt_st_tensor *lt_st_set_get(const lt_st_set *s, int64_t i) { return (i >= 0 && i < s->n) ? s->all[i] : NULL; }

const lt_st_tensor *lt_st_set_find(const lt_st_set *s, const char *name) {
    int64_t lo = 0, hi = s->n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, s->by_name[mid]->name);
        if (c == 0) return s->by_name[mid];
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

int64_t lt_st_set_nfiles(const lt_st_set *s) { return s->nfiles; }

const lt_st_file *lt_st_set_file(const lt_st_set *s, int64_t i) {
    return (i >= 0 && i < s->nfiles) ? s->files[i] : NULL;
}
