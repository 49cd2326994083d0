/* The tokenized-data cache: one zstd-compressed file per key in cache_dir, "<key>.tokens.zst":
 *   header (little-endian): magic "LOFTTOK1", u64 raw bytes, u64 examples, u64 tokens, 32-byte SHA-256 of the
 *   raw payload, then the report counters (lines, examples, bad_lines, truncated, tokens, loss_tokens) and
 *   the first bad line (512 bytes); then zstd(raw), raw = int64 offsets[n + 1] | int32 ids[T] | int32 labels[T].
 * The key (SHA-256 of everything the tokens depend on: loft's data format version, the data file's bytes, the
 * tokenizer.json's bytes, a probe conversation rendered by the chat template, the format, the flags,
 * max_seq_len, the system prompt, the EOS id) makes a stale entry impossible to hit; a damaged one (bad
 * magic, sizes, checksum, zstd error) is reported and rebuilt. Written to a temporary and renamed. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "train/data_internal.h"

#define LT_DATA_VERSION "loft-data-1"
#define LT_CACHE_MAGIC "LOFTTOK1"
#define LT_CACHE_HDR (8 + 8 * 3 + 32 + 8 * 6 + 512)

static lt_status hash_file(lt_sha256_ctx *h, const char *path, const char *what) {
    FILE *f = fopen(path, "rb");
    if (!f) return lt_errorf(LT_ERR_IO, "%s: cannot read the %s", path, what);
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) lt_sha256_update(h, buf, n);
    fclose(f);
    return NULL;
}

lt_status lt_data_cache_key(const lt_data_opts *o, char key[65]) {
    lt_sha256_ctx h;
    lt_sha256_init(&h);
    lt_sha256_update(&h, LT_DATA_VERSION, sizeof LT_DATA_VERSION);
    lt_status st = hash_file(&h, o->path, "dataset");
    if (!st && o->tokenizer_json_path) st = hash_file(&h, o->tokenizer_json_path, "tokenizer");
    if (st) return st;
    if (o->chat) { /* how the template renders a probe conversation stands for the template */
        json_t *m = json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s}]", "role", "system", "content", "S", "role", "user",
                              "content", "U", "role", "assistant", "content", "A");
        char *r = NULL;
        lt_chat_opts co = {.add_generation_prompt = false, .enable_thinking = -1};
        lt_status rs = lt_chat_render(o->chat, m, &co, &r);
        if (!rs) lt_sha256_update(&h, r, strlen(r) + 1);
        lt_status_free(rs);
        free(r);
        json_decref(m);
    }
    char flags[512];
    snprintf(flags, sizeof flags, "fmt=%d toc=%d max=%lld eos=%d chat=%d sys=", (int)o->format, (int)o->train_on_completions,
             (long long)o->max_seq_len, (int)o->eos_id, o->chat != NULL);
    lt_sha256_update(&h, flags, strlen(flags));
    if (o->system_prompt) lt_sha256_update(&h, o->system_prompt, strlen(o->system_prompt) + 1);
    uint8_t d[LT_SHA256_BYTES];
    lt_sha256_final(&h, d);
    lt_sha256_hex(d, key);
    return NULL;
}

static char *entry_path(const lt_data_opts *o, const char *key) {
    char name[128];
    snprintf(name, sizeof name, "%s.tokens.zst", key);
    return lt_path_join(o->cache_dir, name);
}

lt_status lt_data_cache_save(const lt_data_opts *o, const char *key, const lt_dataset *ds, const lt_data_report *rep) {
    lt_status st = lt_mkdir_p(o->cache_dir);
    if (st) return st;
    const int64_t n = ds->n, T = ds->n ? ds->off[ds->n] : 0;
    const size_t raw_len = (size_t)(n + 1) * 8 + (size_t)T * 8;
    uint8_t *raw = malloc(raw_len ? raw_len : 1);
    if (!raw) return lt_errorf(LT_ERR_NOMEM, "out of memory");
    const int64_t zero = 0;
    memcpy(raw, n ? (const void *)ds->off : (const void *)&zero, (size_t)(n + 1) * 8);
    if (T) {
        memcpy(raw + (n + 1) * 8, ds->ids, (size_t)T * 4);
        memcpy(raw + (n + 1) * 8 + T * 4, ds->labels, (size_t)T * 4);
    }
    const size_t zcap = ZSTD_compressBound(raw_len);
    uint8_t *buf = malloc(LT_CACHE_HDR + zcap);
    if (!buf) {
        free(raw);
        return lt_errorf(LT_ERR_NOMEM, "out of memory");
    }
    const size_t z = ZSTD_compress(buf + LT_CACHE_HDR, zcap, raw, raw_len, 3);
    if (ZSTD_isError(z)) {
        free(raw);
        free(buf);
        return lt_errorf(LT_ERR_INTERNAL, "data cache: zstd: %s", ZSTD_getErrorName(z));
    }
    memset(buf, 0, LT_CACHE_HDR);
    memcpy(buf, LT_CACHE_MAGIC, 8);
    const uint64_t h3[3] = {raw_len, (uint64_t)n, (uint64_t)T};
    memcpy(buf + 8, h3, sizeof h3);
    lt_sha256(raw, raw_len, buf + 32);
    const int64_t c6[6] = {rep->lines, rep->examples, rep->bad_lines, rep->truncated, rep->tokens, rep->loss_tokens};
    memcpy(buf + 64, c6, sizeof c6);
    memcpy(buf + 112, rep->first_bad, sizeof rep->first_bad);
    free(raw);
    char *p = entry_path(o, key);
    st = p ? lt_write_file_atomic(p, buf, (int64_t)(LT_CACHE_HDR + z)) : lt_errorf(LT_ERR_NOMEM, "out of memory");
    free(p);
    free(buf);
    return st;
}

lt_status lt_data_cache_load(const lt_data_opts *o, const char *key, lt_dataset **out, lt_data_report *rep) {
    *out = NULL;
    char *p = entry_path(o, key);
    if (!p) return lt_errorf(LT_ERR_NOMEM, "out of memory");
    FILE *f = fopen(p, "rb");
    if (!f) { /* no entry: not an error */
        free(p);
        return NULL;
    }
    fclose(f);
    char *buf = NULL;
    int64_t len = 0;
    lt_status st = lt_read_file(p, (int64_t)1 << 40, &buf, &len);
    if (st) {
        free(p);
        return st;
    }
    uint64_t h3[3];
    uint8_t *raw = NULL;
    lt_dataset *ds = NULL;
    if (len < LT_CACHE_HDR || memcmp(buf, LT_CACHE_MAGIC, 8)) {
        st = lt_errorf(LT_ERR_FORMAT, "%s: not a loft token cache (bad header)", p);
        goto done;
    }
    memcpy(h3, buf + 8, sizeof h3);
    const uint64_t n = h3[1], T = h3[2];
    if (n > ((uint64_t)1 << 40) || T > ((uint64_t)1 << 40) || h3[0] != (n + 1) * 8 + T * 8) {
        st = lt_errorf(LT_ERR_FORMAT, "%s: inconsistent sizes", p);
        goto done;
    }
    raw = malloc(h3[0] ? h3[0] : 1);
    if (!raw) {
        st = lt_errorf(LT_ERR_NOMEM, "out of memory");
        goto done;
    }
    const size_t got = ZSTD_decompress(raw, h3[0], buf + LT_CACHE_HDR, (size_t)len - LT_CACHE_HDR);
    uint8_t d[LT_SHA256_BYTES];
    if (ZSTD_isError(got) || got != h3[0]) {
        st = lt_errorf(LT_ERR_FORMAT, "%s: damaged (zstd: %s)", p, ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short");
        goto done;
    }
    lt_sha256(raw, h3[0], d);
    if (memcmp(d, buf + 32, 32)) {
        st = lt_errorf(LT_ERR_FORMAT, "%s: damaged (checksum mismatch)", p);
        goto done;
    }
    ds = calloc(1, sizeof *ds);
    if (!ds || !(ds->off = malloc((n + 1) * 8)) || !(ds->ids = malloc(T ? T * 4 : 4)) ||
        !(ds->labels = malloc(T ? T * 4 : 4))) {
        st = lt_errorf(LT_ERR_NOMEM, "out of memory");
        goto done;
    }
    memcpy(ds->off, raw, (n + 1) * 8);
    memcpy(ds->ids, raw + (n + 1) * 8, T * 4);
    memcpy(ds->labels, raw + (n + 1) * 8 + T * 4, T * 4);
    ds->n = ds->cap_ex = (int64_t)n;
    ds->cap_tok = (int64_t)T;
    for (uint64_t i = 0; i < n; i++) /* offsets must be monotone and in range */
        if (ds->off[i] < 0 || ds->off[i] > ds->off[i + 1] || (uint64_t)ds->off[i + 1] > T) {
            st = lt_errorf(LT_ERR_FORMAT, "%s: damaged (offsets)", p);
            goto done;
        }
    int64_t c6[6];
    memcpy(c6, buf + 64, sizeof c6);
    rep->lines = c6[0], rep->examples = c6[1], rep->bad_lines = c6[2], rep->truncated = c6[3], rep->tokens = c6[4],
    rep->loss_tokens = c6[5];
    memcpy(rep->first_bad, buf + 112, sizeof rep->first_bad);
    rep->first_bad[sizeof rep->first_bad - 1] = 0;
done:
    free(raw);
    free(buf);
    free(p);
    if (st) {
        lt_dataset_free(ds);
        return st;
    }
    *out = ds;
    return NULL;
}
