/* safetensors: writer -> reader round trips (one file and sharded), a corpus of malformed files
 * that must each be refused with a specific message, bad model directories, and a deterministic
 * mutation fuzz loop over lt_st_open_buffer. */
#include <dirent.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/io.h"
#include "test.h"

static const char *BUFNAME = "bad.safetensors";
static char g_dir[4096]; /* this test's scratch directory */

/* ---------------------------------------------------------------- helpers */

/* splitmix64: a fixed-seed generator so the fuzz loop is the same on every run */
static uint64_t g_rng = 0x5eed1234abcdULL;
static uint64_t rnd(void) {
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* A file image: 8-byte N (= strlen(header) unless n_override), header, data_len bytes 0..255. */
static uint8_t *image(const char *header, int64_t data_len, const uint64_t *n_override, int64_t *len) {
    int64_t h = (int64_t)strlen(header);
    *len = 8 + h + data_len;
    uint8_t *b = malloc((size_t)*len);
    put_u64(b, n_override ? *n_override : (uint64_t)h);
    memcpy(b + 8, header, (size_t)h);
    for (int64_t i = 0; i < data_len; i++) b[8 + h + i] = (uint8_t)i;
    return b;
}

/* Opens an image, closes it again; returns the status. */
static lt_status open_image(const char *header, int64_t data_len, const uint64_t *n_override) {
    int64_t len;
    uint8_t *b = image(header, data_len, n_override, &len);
    lt_st_file *f = NULL;
    lt_status st = lt_st_open_buffer(b, len, BUFNAME, &f);
    lt_st_close(f);
    free(b);
    return st;
}

/* An expected format error: its code, the needle and the file name must all be in it. */
static void expect_bad_at(lt_status st, lt_err_code code, const char *name, const char *needle, int line) {
    lt_test_checks++;
    if (!st) {
        lt_test_failures++;
        fprintf(stderr, "FAIL line %d: accepted, expected an error with \"%s\"\n", line, needle);
        return;
    }
    const char *msg = lt_status_msg(st);
    if (!strstr(msg, needle) || !strstr(msg, name) || lt_status_code(st) != code) {
        lt_test_failures++;
        fprintf(stderr, "FAIL line %d: message \"%s\" (code %d) lacks \"%s\" or \"%s\" or code %d\n", line, msg,
                (int)lt_status_code(st), needle, name, (int)code);
    }
    lt_status_free(st);
}
#define BAD(hdr, dlen, needle) expect_bad_at(open_image(hdr, dlen, NULL), LT_ERR_FORMAT, BUFNAME, needle, __LINE__)
#define BADN(hdr, dlen, n, needle)                                                                                 \
    do {                                                                                                           \
        uint64_t n_ = (n);                                                                                         \
        expect_bad_at(open_image(hdr, dlen, &n_), LT_ERR_FORMAT, BUFNAME, needle, __LINE__);                       \
    } while (0)

static void path_in(char *out, size_t cap, const char *sub, const char *name) {
    snprintf(out, cap, "%s/%s/%s", g_dir, sub, name);
}

static void fresh_dir(const char *sub) {
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/%s' && mkdir -p '%s/%s'", g_dir, sub, g_dir, sub);
    if (system(cmd) != 0) fprintf(stderr, "warning: %s failed\n", cmd);
}

static void write_text(const char *path, const char *text) {
    FILE *fp = fopen(path, "wb");
    CHECKF(fp != NULL, "cannot write %s", path);
    if (!fp) return;
    fputs(text, fp);
    fclose(fp);
}

/* Number of names in dir containing needle. */
static int count_files(const char *dir, const char *needle) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, needle)) n++;
    closedir(d);
    return n;
}

/* ---------------------------------------------------------------- round trip: one file */

static uint8_t g_data[4096]; /* source bytes for every test tensor */

static lt_st_entry E(const char *name, const char *dt, int ndim, int64_t d0, int64_t d1, int64_t off) {
    lt_st_entry e = {.name = name, .dtype_name = dt, .ndim = ndim, .shape = {d0, d1}, .data = g_data + off};
    return e;
}

/* Producer entries: bytes made by a callback when the writer reaches the tensor. */
static int g_fill_calls;
static lt_status fill_pattern(void *ctx, void *buf, int64_t nbytes) {
    const uint8_t *seed = ctx;
    for (int64_t i = 0; i < nbytes; i++) ((uint8_t *)buf)[i] = (uint8_t)(*seed + i * 13);
    g_fill_calls++;
    return NULL;
}
static lt_status fill_fail(void *ctx, void *buf, int64_t nbytes) {
    (void)ctx, (void)buf;
    return lt_errorf(LT_ERR_IO, "producer failed after %lld bytes were asked", (long long)nbytes);
}

static void test_producer_entries(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/producer.safetensors", lt_test_tmpdir());
    static uint8_t seeds[3] = {1, 50, 200};
    lt_st_entry es[3] = {
        {.name = "a", .dtype_name = "F32", .ndim = 2, .shape = {3, 5}, .fill = fill_pattern, .fill_ctx = &seeds[0]},
        {.name = "b", .dtype_name = "U8", .ndim = 1, .shape = {1000}, .fill = fill_pattern, .fill_ctx = &seeds[1]},
        {.name = "c", .dtype_name = "BF16", .ndim = 1, .shape = {7}, .fill = fill_pattern, .fill_ctx = &seeds[2]},
    };
    g_fill_calls = 0;
    CHECK_OK(lt_st_write(path, es, 3, NULL, 0));
    CHECK(g_fill_calls == 3);
    lt_st_file *f = NULL;
    CHECK_OK(lt_st_open(path, &f));
    for (int k = 0; f && k < 3; k++) {
        const lt_st_tensor *t = lt_st_find(f, es[k].name);
        CHECK(t != NULL);
        bool same = t != NULL;
        for (int64_t i = 0; t && i < t->nbytes; i++)
            if (((const uint8_t *)t->data)[i] != (uint8_t)(seeds[k] + i * 13)) same = false;
        CHECKF(same, "tensor %s bytes differ from what its producer made", es[k].name);
    }
    lt_st_close(f);
    /* a failing producer fails the write and leaves the earlier file untouched */
    es[1].fill = fill_fail;
    CHECK_ERR(lt_st_write(path, es, 3, NULL, 0), "producer failed");
    CHECK_OK(lt_st_open(path, &f));
    lt_st_close(f);
}

static void test_round_trip(void) {
    for (int i = 0; i < (int)sizeof g_data; i++) g_data[i] = (uint8_t)(i * 7 + 3);
    /* every dtype family, a scalar, an empty tensor, sub-byte types, a UTF-8 name */
    lt_st_entry es[] = {
        E("w.f32", "F32", 2, 3, 5, 0),     E("w.bf16", "BF16", 1, 4, 0, 60), E("scalar", "F32", 0, 0, 0, 68),
        E("empty", "F16", 2, 0, 7, 72),    E("flags", "BOOL", 1, 3, 0, 72),  E("f4", "F4", 1, 6, 0, 75),
        E("u16", "U16", 1, 2, 0, 78),      E("c64", "C64", 1, 1, 0, 82),     E("i64", "I64", 1, 2, 0, 90),
        E("f8", "F8_E4M3", 1, 5, 0, 106),  E("e8m0", "F8_E8M0", 1, 3, 0, 111), E("f6", "F6_E2M3", 1, 4, 0, 114),
        E("\xe6\xa8\xa1\xe5\x9e\x8b.weight", "F64", 2, 1, 2, 117),
    };
    const int n = (int)(sizeof es / sizeof es[0]);
    const int64_t nbytes[] = {60, 8, 4, 0, 3, 3, 4, 8, 16, 5, 3, 3, 16};
    const bool computable[] = {true, true, true, true, false, false, false, false, true, true, true, false, true};
    lt_st_meta meta[] = {{"format", "pt"}, {"note", "h\xc3\xa9llo"}};
    char path[8400];
    path_in(path, sizeof path, "one", "t.safetensors");
    fresh_dir("one");
    write_text(path, "old contents that the writer must replace");
    CHECK_OK(lt_st_write(path, es, n, meta, 2));
    char dir[8400];
    snprintf(dir, sizeof dir, "%s/one", g_dir);
    CHECK(count_files(dir, ".tmp.") == 0); /* the temp file was renamed away */

    /* raw bytes: N % 8 == 0 (data 8-aligned), padding is spaces, __metadata__ first, tensors in order */
    char *raw;
    int64_t rlen;
    CHECK_OK(lt_read_file(path, 1 << 20, &raw, &rlen));
    uint64_t hn = 0;
    for (int i = 7; i >= 0; i--) hn = (hn << 8) | (uint8_t)raw[i];
    CHECK(hn % 8 == 0);
    CHECK(raw[8 + hn - 1] == '}' || raw[8 + hn - 1] == ' ');
    CHECK(!strncmp(raw + 8, "{\"__metadata__\":{\"format\":\"pt\",\"note\":", 38));
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += nbytes[i];
    CHECK((int64_t)(8 + hn) + total == rlen);
    const char *prev = raw + 8;
    for (int i = 0; i < n; i++) {
        char key[64];
        snprintf(key, sizeof key, "\"%s\":{", es[i].name);
        const char *at = strstr(raw + 8, key);
        CHECKF(at && at > prev, "tensor %s out of header order", es[i].name);
        if (at) prev = at;
    }

    lt_st_file *f = NULL;
    CHECK_OK(lt_st_open(path, &f));
    if (f) {
        CHECK(lt_st_count(f) == n);
        CHECK(!strcmp(lt_st_path(f), path));
        int64_t off = 0;
        for (int i = 0; i < n; i++) {
            const lt_st_tensor *t = lt_st_find(f, es[i].name);
            CHECKF(t != NULL, "tensor %s not found", es[i].name);
            if (!t) continue;
            CHECK(lt_st_get(f, i) == t); /* contiguous in the order given, so get() keeps it */
            CHECK(!strcmp(t->dtype_name, es[i].dtype_name));
            CHECK(t->ndim == es[i].ndim);
            for (int d = 0; d < t->ndim; d++) CHECK(t->shape[d] == es[i].shape[d]);
            CHECKF(t->nbytes == nbytes[i], "%s: nbytes %lld", t->name, (long long)t->nbytes);
            CHECK(t->begin == off && t->end == off + nbytes[i]);
            CHECK(t->has_dtype == computable[i]);
            CHECK(memcmp(t->data, es[i].data, (size_t)nbytes[i]) == 0);
            off += nbytes[i];
        }
        const lt_st_tensor *t0 = lt_st_get(f, 0);
        CHECK(((uintptr_t)t0->data & 7) == 0); /* mmap is page-aligned, header keeps 8-alignment */
        const lt_st_tensor *sc = lt_st_find(f, "scalar");
        CHECK(sc && sc->ndim == 0 && sc->numel == 1);
        const lt_st_tensor *em = lt_st_find(f, "empty");
        CHECK(em && em->numel == 0 && em->begin == em->end);
        const lt_st_tensor *wf = lt_st_find(f, "w.f32");
        CHECK(wf && wf->has_dtype && wf->dtype == LT_DTYPE_F32 && wf->numel == 15);
        CHECK(lt_st_find(f, "nope") == NULL && lt_st_find(f, "") == NULL && lt_st_get(f, n) == NULL);
        CHECK(lt_st_metadata_count(f) == 2);
        const char *k, *v;
        CHECK(lt_st_metadata_get(f, 1, &k, &v) && !strcmp(k, "note") && !strcmp(v, "h\xc3\xa9llo"));
        CHECK(!lt_st_metadata_get(f, 2, &k, &v));
        CHECK(lt_st_metadata_find(f, "format") && !strcmp(lt_st_metadata_find(f, "format"), "pt"));
        CHECK(lt_st_metadata_find(f, "missing") == NULL);
        lt_st_close(f);
    }
    /* the same bytes through the buffer API */
    CHECK_OK(lt_st_open_buffer(raw, rlen, "mem", &f));
    if (f) {
        CHECK(lt_st_count(f) == n && (const char *)lt_st_get(f, 0)->data == raw + 8 + hn);
        lt_st_close(f);
    }
    free(raw);

    /* bit sizes of every dtype name in the spec */
    const char *names[] = {"BOOL",        "F4",          "F6_E2M3", "F6_E3M2", "U8",  "I8",  "F8_E5M2", "F8_E4M3",
                           "F8_E8M0",     "F8_E4M3FNUZ", "F8_E5M2FNUZ", "I16", "U16", "F16", "BF16",    "I32",
                           "U32",         "F32",         "C64",     "F64",     "I64", "U64"};
    const int bits[] = {8, 4, 6, 6, 8, 8, 8, 8, 8, 8, 8, 16, 16, 16, 16, 32, 32, 32, 64, 64, 64, 64};
    for (int i = 0; i < 22; i++) CHECKF(lt_st_dtype_bits(names[i]) == bits[i], "%s", names[i]);
    CHECK(lt_st_dtype_bits("f32") == 0 && lt_st_dtype_bits("F17") == 0 && lt_st_dtype_bits(NULL) == 0);

    /* writer refusals: caller errors, nothing left behind */
    char p2[8400];
    path_in(p2, sizeof p2, "one", "bad.safetensors");
    lt_st_entry bad1[] = {E("a", "F17", 1, 2, 0, 0)};
    CHECK_ERR(lt_st_write(p2, bad1, 1, NULL, 0), "unknown safetensors dtype \"F17\"");
    lt_st_entry bad2[] = {E("a", "F32", 1, 2, 0, 0), E("a", "F32", 1, 2, 0, 0)};
    CHECK_ERR(lt_st_write(p2, bad2, 2, NULL, 0), "given twice");
    lt_st_entry bad3[] = {E("a", "F4", 1, 3, 0, 0)};
    CHECK_ERR(lt_st_write(p2, bad3, 1, NULL, 0), "whole number of bytes");
    lt_st_entry bad4[] = {E("__metadata__", "F32", 1, 2, 0, 0)};
    CHECK_ERR(lt_st_write(p2, bad4, 1, NULL, 0), "invalid");
    CHECK(access(p2, F_OK) != 0 && count_files(dir, ".tmp.") == 0);
    char p3[8400];
    path_in(p3, sizeof p3, "no-such-dir", "x.safetensors");
    CHECK_ERR(lt_st_write(p3, es, 1, NULL, 0), "cannot create");
}

/* Many tensors: find() is a binary search over names; check every one is found. */
static void test_many(void) {
    enum { N = 3000 };
    static lt_st_entry es[N];
    static char names[N][24];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "layer.%d.w", (i * 7919) % N); /* not in name order */
        es[i] = E(names[i], "U8", 1, 1, 0, i % 100);
    }
    char path[8400];
    fresh_dir("many");
    path_in(path, sizeof path, "many", "m.safetensors");
    CHECK_OK(lt_st_write(path, es, N, NULL, 0));
    lt_st_file *f = NULL;
    CHECK_OK(lt_st_open(path, &f));
    if (!f) return;
    int found = 0;
    for (int i = 0; i < N; i++) {
        const lt_st_tensor *t = lt_st_find(f, names[i]);
        found += t && !strcmp(t->name, names[i]) && *(const uint8_t *)t->data == g_data[i % 100];
    }
    CHECK(found == N && lt_st_count(f) == N && lt_st_metadata_count(f) == 0);
    lt_st_close(f);
}

/* ---------------------------------------------------------------- malformed files */

static void test_malformed(void) {
    /* 1. shorter than the length field */
    lt_st_file *f = NULL;
    expect_bad_at(lt_st_open_buffer("abc", 3, BUFNAME, &f), LT_ERR_FORMAT, BUFNAME, "shorter than the 8-byte", __LINE__);
    expect_bad_at(lt_st_open_buffer(NULL, 0, BUFNAME, &f), LT_ERR_FORMAT, BUFNAME, "shorter than the 8-byte", __LINE__);
    /* 2. header too large: 2^64-1 (8+N would overflow) and just over 100 MB */
    BADN("{}", 0, UINT64_MAX, "larger than the 100000000-byte limit");
    BADN("{}", 0, 100000001, "larger than the 100000000-byte limit");
    /* 3. header length past EOF */
    BADN("{}", 0, 3, "runs past the end of the 10-byte file");
    BADN("{}", 0, 100000000, "runs past the end");
    /* header must be a JSON object starting with '{' */
    BAD("", 0, "does not start with '{'");
    BAD(" {}", 0, "does not start with '{'");
    BAD("[1, 2]  ", 0, "does not start with '{'"); /* JSON, but not an object */
    /* 4. UTF-8, JSON */
    BAD("{\"a\xff\":1}", 0, "not valid UTF-8 (bad byte 0xff at header offset 3)");
    BAD("{\"\xc0\xaf\":1}", 0, "not valid UTF-8"); /* overlong '/' */
    BAD("{\"\xed\xa0\x80\":1}", 0, "not valid UTF-8"); /* a surrogate */
    BAD("{\"a\":", 0, "not valid JSON");
    BAD("{} {}", 0, "not valid JSON");
    BAD("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
        "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
        2, "duplicate");
    /* entries */
    BAD("{\"a\":{\"dtype\":\"F17\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "tensor \"a\": unknown dtype \"F17\"");
    BAD("{\"a\":{\"dtype\":1,\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "dtype is not a string");
    BAD("{\"a\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,1]}}", 1, "shape[0] is not a non-negative integer");
    BAD("{\"a\":{\"dtype\":\"U8\",\"shape\":[1,\"2\"],\"data_offsets\":[0,1]}}", 1, "shape[1] is not a non-negative");
    BAD("{\"a\":{\"dtype\":\"U8\",\"shape\":[1.0],\"data_offsets\":[0,1]}}", 1, "shape[0] is not a non-negative");
    BAD("{\"a\":{\"dtype\":\"U8\",\"shape\":1,\"data_offsets\":[0,1]}}", 1, "shape is not an array");
    BAD("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", 1, "data_offsets must be [BEGIN, END]");
    BAD("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}", 1, "data_offsets must be");
    BAD("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,-1]}}", 1, "data_offsets must be");
    BAD("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[4,0]}}", 1, "its end is before its begin");
    BAD("{\"a\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1, "exactly the keys dtype, shape and data_offsets");
    BAD("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"x\":0}}", 1, "exactly the keys");
    BAD("{\"a\":[]}", 0, "entry is not an object");
    BAD("{\"\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "is empty");
    {
        char h[1200];
        snprintf(h, sizeof h, "{\"%01025d\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 7);
        BAD(h, 1, "too long");
    }
    expect_bad_at(open_image("{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
                             NULL),
                  LT_ERR_UNSUPPORTED, BUFNAME, "9 dimensions", __LINE__);
    /* 5. layout */
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
        12, "tensor \"b\": data_offsets [8, 12] are invalid (there is a gap before it");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}",
        6, "it overlaps the previous tensor");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        8, "overlaps");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "the first tensor must start at offset 0");
    /* 6. sizes */
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
        "data_offsets span 4 bytes but dtype F32 and shape [2] need 8");
    BAD("{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", 0,
        "the product of its shape overflows 64 bits");
    BAD("{\"a\":{\"dtype\":\"F64\",\"shape\":[1152921504606846976],\"data_offsets\":[0,0]}}", 0,
        "its size in bits overflows");
    BAD("{\"a\":{\"dtype\":\"U8\",\"shape\":[99999999999999999999],\"data_offsets\":[0,0]}}", 0,
        "not valid JSON"); /* beyond 64 bits: jansson refuses the number */
    BAD("{\"a\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,1]}}", 1, "not a whole number of bytes");
    /* 7. the buffer must end exactly at the last tensor */
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 5,
        "there are trailing bytes after the last tensor");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 3, "the file is truncated");
    BAD("{}", 1, "trailing bytes");
    /* __metadata__ */
    BAD("{\"__metadata__\":{\"format\":\"pt\",\"n\":1}}", 0, "\"__metadata__\" entry \"n\" is not a string");
    BAD("{\"__metadata__\":[\"pt\"]}", 0, "\"__metadata__\" must be an object");
    BAD("{\"__metadata__\":{\"a\":\"\\u0000\"}}", 0, "not valid JSON"); /* NUL in a string */

    /* accepted: whitespace padding, empty header, zero-size tensors sharing an offset */
    CHECK_OK(open_image("{}      ", 0, NULL));
    CHECK_OK(open_image("{}\t\n\r ", 0, NULL));
    CHECK_OK(open_image("{\"__metadata__\":{}}", 0, NULL));
    CHECK_OK(open_image("{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]},"
                        "\"b\":{\"dtype\":\"U8\",\"shape\":[2,0],\"data_offsets\":[0,0]},"
                        "\"c\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,1]}}",
                        1, NULL));
    /* a NUL byte inside the header (after '{') is not JSON */
    {
        int64_t len;
        uint8_t *b = image("{}xx", 0, NULL, &len);
        b[10] = 0;
        expect_bad_at(lt_st_open_buffer(b, len, BUFNAME, &f), LT_ERR_FORMAT, BUFNAME, "not valid JSON", __LINE__);
        free(b);
    }
    /* known dtypes that loft cannot compute on still open */
    {
        int64_t len;
        uint8_t *b = image("{\"a\":{\"dtype\":\"F8_E5M2\",\"shape\":[2],\"data_offsets\":[0,2]},"
                           "\"b\":{\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[2,10]}}",
                           10, NULL, &len);
        CHECK_OK(lt_st_open_buffer(b, len, "ok", &f));
        if (f) {
            CHECK(!lt_st_find(f, "a")->has_dtype && !lt_st_find(f, "b")->has_dtype);
            CHECK(lt_st_find(f, "b")->data == b + 8 + (len - 8 - 10) + 2);
            lt_st_close(f);
        }
        free(b);
    }
    /* files on disk: missing, a directory, an empty file */
    char path[8400];
    CHECK_ERR(lt_st_open("/nonexistent/x.safetensors", &f), "cannot open");
    CHECK_ERR(lt_st_open(g_dir, &f), "not a regular file");
    fresh_dir("files");
    path_in(path, sizeof path, "files", "empty.safetensors");
    write_text(path, "");
    CHECK_ERR(lt_st_open(path, &f), "empty.safetensors: file is 0 bytes, shorter than the 8-byte");
}

/* ---------------------------------------------------------------- sharded directories */

/* Tensor sizes 64, 64, 64, 300, 8, 8, 100 bytes with shard_bytes 150 give the greedy shards
 * {64,64} {64} {300 alone: bigger than a shard} {8,8,100}. */
static void test_sharded(void) {
    lt_st_entry es[] = {
        E("a", "F32", 1, 16, 0, 0),   E("b", "F32", 1, 16, 0, 64),  E("c", "BF16", 2, 4, 8, 128),
        E("big", "U8", 1, 300, 0, 200), E("d", "F64", 0, 0, 0, 500), E("e", "I64", 1, 1, 0, 508),
        E("f", "F16", 2, 5, 10, 516),
    };
    const int n = 7, shard_of[] = {0, 0, 1, 2, 3, 3, 3};
    lt_st_meta meta[] = {{"producer", "loft-test"}};
    char dir[8400], path[8400];
    fresh_dir("sharded");
    snprintf(dir, sizeof dir, "%s/sharded", g_dir);
    /* a stale single file from an earlier write must not survive next to the index */
    path_in(path, sizeof path, "sharded", "model.safetensors");
    write_text(path, "stale");
    CHECK_OK(lt_st_write_model(dir, es, n, meta, 1, 150));
    CHECK(access(path, F_OK) != 0);
    CHECK(count_files(dir, "-of-00004.safetensors") == 4 && count_files(dir, ".tmp.") == 0);

    path_in(path, sizeof path, "sharded", "model.safetensors.index.json");
    json_error_t jerr;
    json_t *idx = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    CHECKF(idx != NULL, "index: %s", jerr.text);
    if (idx) {
        json_t *ts = json_object_get(json_object_get(idx, "metadata"), "total_size");
        CHECK(json_integer_value(ts) == 64 + 64 + 64 + 300 + 8 + 8 + 100);
        json_t *wm = json_object_get(idx, "weight_map");
        CHECK(json_object_size(wm) == (size_t)n);
        for (int i = 0; i < n; i++) {
            char want[64];
            snprintf(want, sizeof want, "model-%05d-of-00004.safetensors", shard_of[i] + 1);
            const char *got = json_string_value(json_object_get(wm, es[i].name));
            CHECKF(got && !strcmp(got, want), "%s in %s, want %s", es[i].name, got ? got : "(none)", want);
        }
        json_decref(idx);
    }
    lt_st_set *s = NULL;
    CHECK_OK(lt_st_set_open_dir(dir, &s));
    if (s) {
        CHECK(lt_st_set_nfiles(s) == 4 && lt_st_set_count(s) == n);
        for (int64_t k = 0; k < lt_st_set_nfiles(s); k++) {
            const lt_st_file *f = lt_st_set_file(s, k);
            CHECK(lt_st_metadata_find(f, "format") && !strcmp(lt_st_metadata_find(f, "format"), "pt"));
            CHECK(lt_st_metadata_find(f, "producer") && !strcmp(lt_st_metadata_find(f, "producer"), "loft-test"));
            char want[64];
            snprintf(want, sizeof want, "model-%05d-of-00004.safetensors", (int)k + 1);
            CHECK(strstr(lt_st_path(f), want) != NULL);
        }
        for (int i = 0; i < n; i++) {
            const lt_st_tensor *t = lt_st_set_find(s, es[i].name);
            CHECKF(t != NULL, "%s not found in the set", es[i].name);
            if (t) CHECK(memcmp(t->data, es[i].data, (size_t)t->nbytes) == 0 && lt_st_set_get(s, i) == t);
        }
        CHECK(lt_st_set_find(s, "zz") == NULL && lt_st_set_get(s, n) == NULL && lt_st_set_file(s, 4) == NULL);
        lt_st_set_close(s);
    }
    /* the same tensors fit one shard: model.safetensors, and the stale index is removed */
    CHECK_OK(lt_st_write_model(dir, es, n, NULL, 0, 0));
    CHECK(access(path, F_OK) != 0);
    CHECK_OK(lt_st_set_open_dir(dir, &s));
    if (s) {
        CHECK(lt_st_set_nfiles(s) == 1 && lt_st_set_count(s) == n);
        const lt_st_file *f = lt_st_set_file(s, 0);
        CHECK(lt_st_metadata_count(f) == 1 && !strcmp(lt_st_metadata_find(f, "format"), "pt"));
        CHECK(strstr(lt_st_path(f), "/model.safetensors") != NULL);
        lt_st_set_close(s);
    }
    /* one tensor over the shard size plus a zero-size one: still one shard, so model.safetensors */
    lt_st_entry over[] = {E("x", "U8", 1, 300, 0, 0), E("z", "F16", 1, 0, 0, 0)};
    fresh_dir("sharded2");
    snprintf(dir, sizeof dir, "%s/sharded2", g_dir);
    CHECK_OK(lt_st_write_model(dir, over, 2, NULL, 0, 100));
    CHECK(count_files(dir, ".safetensors") == 1 && count_files(dir, "model.safetensors") == 1);
    lt_st_meta twice[] = {{"k", "1"}, {"k", "2"}};
    CHECK_ERR(lt_st_write_model(dir, over, 2, twice, 2, 100), "metadata key \"k\" is given twice");
}

/* Bad model directories, built by hand. */
static void test_bad_dirs(void) {
    lt_st_entry es[] = {E("a", "F32", 1, 16, 0, 0), E("b", "F32", 1, 16, 0, 64), E("c", "F32", 1, 16, 0, 128)};
    char dir[8400], path[8400];
    lt_st_set *s = NULL;
    /* neither file */
    fresh_dir("d0");
    snprintf(dir, sizeof dir, "%s/d0", g_dir);
    CHECK_ERR(lt_st_set_open_dir(dir, &s), "has neither model.safetensors.index.json nor model.safetensors");
    CHECK_ERR(lt_st_set_open_dir("/nonexistent-dir", &s), "not a directory");

    /* two shards {a, b} {c}, then break it in several ways */
    fresh_dir("d1");
    snprintf(dir, sizeof dir, "%s/d1", g_dir);
    CHECK_OK(lt_st_write_model(dir, es, 3, NULL, 0, 128));
    path_in(path, sizeof path, "d1", "model.safetensors.index.json");
    const char *s1 = "model-00001-of-00002.safetensors", *s2 = "model-00002-of-00002.safetensors";
    char text[2048];
    /* tensor listed in the wrong shard */
    snprintf(text, sizeof text, "{\"weight_map\":{\"a\":\"%s\",\"b\":\"%s\",\"c\":\"%s\"}}", s1, s2, s2);
    write_text(path, text);
    CHECK_ERR(lt_st_set_open_dir(dir, &s), "weight_map puts tensor \"b\" in \"model-00002-of-00002.safetensors\", but "
                                          "that shard has no such tensor");
    /* tensor in a shard but not in the map */
    snprintf(text, sizeof text, "{\"weight_map\":{\"a\":\"%s\",\"c\":\"%s\"}}", s1, s2);
    write_text(path, text);
    CHECK_ERR(lt_st_set_open_dir(dir, &s), "holds tensor \"b\", which weight_map does not list");
    /* a shard path that leaves the directory */
    snprintf(text, sizeof text, "{\"weight_map\":{\"a\":\"../d1/%s\"}}", s1);
    write_text(path, text);
    CHECK_ERR(lt_st_set_open_dir(dir, &s), "plain shard file name");
    snprintf(text, sizeof text, "{\"weight_map\":{\"a\":\"/etc/passwd\"}}");
    write_text(path, text);
    CHECK_ERR(lt_st_set_open_dir(dir, &s), "plain shard file name");
    /* malformed index JSON */
    write_text(path, "{\"weight_map\":{\"a\":\"x\",\"a\":\"y\"}}");
    CHECK_ERR(lt_st_set_open_dir(dir, &s), "duplicate");
    write_text(path, "{\"metadata\":{}}");
    CHECK_ERR(lt_st_set_open_dir(dir, &s), "expected an object with \"weight_map\"");
    write_text(path, "{\"weight_map\":{\"a\":1}}");
    CHECK_ERR(lt_st_set_open_dir(dir, &s), "weight_map entry \"a\" must map");
    /* a missing shard */
    snprintf(text, sizeof text, "{\"weight_map\":{\"a\":\"%s\",\"b\":\"%s\",\"c\":\"model-00009.safetensors\"}}", s1,
             s1);
    write_text(path, text);
    CHECK_ERR(lt_st_set_open_dir(dir, &s), "names shard \"model-00009.safetensors\", but");
    /* a damaged shard: its own error, wrapped with the index name */
    snprintf(text, sizeof text, "{\"weight_map\":{\"a\":\"%s\",\"b\":\"%s\",\"c\":\"junk.safetensors\"}}", s1, s1);
    write_text(path, text);
    char junk[8400];
    path_in(junk, sizeof junk, "d1", "junk.safetensors");
    write_text(junk, "hello");
    CHECK_ERR(lt_st_set_open_dir(dir, &s), "shard \"junk.safetensors\": ");
    /* the same tensor stored in two shards: shard 2 = {a, c} while the map puts a in shard 1 */
    lt_st_entry dup[] = {E("a", "F32", 1, 16, 0, 0), E("c", "F32", 1, 16, 0, 128)};
    char p2[8400];
    path_in(p2, sizeof p2, "d1", s2);
    CHECK_OK(lt_st_write(p2, dup, 2, NULL, 0));
    snprintf(text, sizeof text, "{\"weight_map\":{\"a\":\"%s\",\"b\":\"%s\",\"c\":\"%s\"}}", s1, s1, s2);
    write_text(path, text);
    CHECK_ERR(lt_st_set_open_dir(dir, &s), "tensor \"a\" is stored in shard \"model-00002-of-00002.safetensors\" but "
                                          "weight_map assigns it to another shard");
    /* a shard the map does not name is not opened (as transformers does) */
    snprintf(text, sizeof text, "{\"weight_map\":{\"a\":\"%s\",\"b\":\"%s\"}}", s1, s1);
    write_text(path, text);
    CHECK_OK(lt_st_set_open_dir(dir, &s));
    if (s) {
        CHECK(lt_st_set_nfiles(s) == 1 && lt_st_set_count(s) == 2);
        lt_st_set_close(s);
    }
}

/* ---------------------------------------------------------------- mutation fuzz */

/* 20,000 mutants of a valid small file (fixed seed): each open must fail with a message or
 * succeed with every tensor inside the buffer. Run under ASan to catch stray reads. */
static void test_mutations(void) {
    lt_st_entry es[] = {E("model.w", "BF16", 2, 2, 3, 0), E("model.b", "F32", 1, 2, 0, 12), E("s", "U8", 0, 0, 0, 20),
                        E("z", "F16", 1, 0, 0, 21)};
    lt_st_meta meta[] = {{"format", "pt"}};
    char path[8400];
    fresh_dir("fuzz");
    path_in(path, sizeof path, "fuzz", "seed.safetensors");
    CHECK_OK(lt_st_write(path, es, 4, meta, 1));
    char *seed;
    int64_t slen;
    CHECK_OK(lt_read_file(path, 1 << 20, &seed, &slen));
    if (!seed) return;
    static const char alphabet[] = "0123456789{}[],:\" -.eE\\uF8\x00\xff\x80";
    int ok = 0, refused = 0, bad = 0;
    for (int it = 0; it < 20000; it++) {
        int64_t len = slen;
        uint8_t *b = malloc((size_t)slen + 64); /* room for appends */
        memcpy(b, seed, (size_t)slen);
        int nmut = 1 + (int)(rnd() % 4);
        for (int m = 0; m < nmut; m++) {
            uint64_t r = rnd();
            int64_t pos = len > 0 ? (int64_t)(rnd() % (uint64_t)len) : 0;
            switch (r % 6) {
            case 0: if (len > 0) b[pos] ^= (uint8_t)(1u << (rnd() % 8)); break;
            case 1: if (len > 0) b[pos] = (uint8_t)alphabet[rnd() % (sizeof alphabet - 1)]; break;
            case 2: len = (int64_t)(rnd() % (uint64_t)(len + 1)); break;
            case 3: { /* nudge the header length */
                uint64_t n = 0;
                if (len < 8) break;
                for (int i = 7; i >= 0; i--) n = (n << 8) | b[i];
                n += (rnd() % 33) - 16;
                if (rnd() % 16 == 0) n = rnd();
                put_u64(b, n);
                break;
            }
            case 4: { /* append a few bytes */
                int64_t k = 1 + (int64_t)(rnd() % 16);
                if (len + k > slen + 64) break;
                for (int64_t i = 0; i < k; i++) b[len + i] = (uint8_t)rnd();
                len += k;
                break;
            }
            default: { /* copy a slice over another place */
                if (len < 2) break;
                int64_t src = (int64_t)(rnd() % (uint64_t)len), k = 1 + (int64_t)(rnd() % 12);
                if (src + k > len) k = len - src;
                if (pos + k > len) k = len - pos;
                memmove(b + pos, b + src, (size_t)k);
                break;
            }
            }
        }
        /* an exact-size block, so that any read past len is an ASan error */
        uint8_t *exact = malloc((size_t)(len ? len : 1));
        memcpy(exact, b, (size_t)len);
        free(b);
        lt_st_file *f = NULL;
        lt_status st = lt_st_open_buffer(exact, len, "mutant", &f);
        if (st) {
            refused++;
            if (!strstr(lt_status_msg(st), "mutant")) bad++;
            lt_status_free(st);
        } else {
            ok++;
            for (int64_t i = 0; i < lt_st_count(f); i++) {
                const lt_st_tensor *t = lt_st_get(f, i);
                const uint8_t *d = t->data;
                bool inside = d >= exact + 8 && t->nbytes >= 0 && t->end - t->begin == t->nbytes &&
                              d + t->nbytes <= exact + len && lt_st_find(f, t->name) == t && t->name[0];
                if (!inside) bad++;
            }
            lt_st_close(f);
        }
        free(exact);
    }
    free(seed);
    printf("mutation fuzz: %d opened, %d refused, %d bad\n", ok, refused, bad);
    CHECK(bad == 0);
    CHECK(ok > 0 && refused > 0); /* both paths were exercised */
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "%s/test_safetensors", lt_test_tmpdir());
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: cannot create %s\n", g_dir);
    test_round_trip();
    test_producer_entries();
    test_many();
    test_malformed();
    test_sharded();
    test_bad_dirs();
    test_mutations();
    TEST_MAIN_END();
}
