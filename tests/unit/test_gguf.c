/* GGUF reader: round trips through an independent in-test writer (tests/unit/gguf_writer.h),
 * dequantization of every supported block type against hand-packed blocks, the malformed-file
 * corpus (one or more files per historical bug class of ggml's GGUF parser, each refused with a
 * specific message) and a fixed-seed mutation loop (run it under ASan+UBSan).
 *
 * Bug classes and where they come from (each is a `BAD(...)` case in test_malformed):
 *
 * | class                                              | history                                         |
 * |----------------------------------------------------|-------------------------------------------------|
 * | kv count wraps the allocation                      | CVE-2024-23605 (Talos, header.n_kv)             |
 * | tensor count wraps the allocation                  | CVE-2024-21836 (Talos, header.n_tensors)        |
 * | counts larger than the file can hold (alloc DoS)   | gguf-py PR llama.cpp#27188, ollama#16136        |
 * | string length + 1 wraps / unbounded string         | CVE-2024-23496 (Talos TALOS-2024-1913,          |
 * |                                                    | gguf_fread_str); ggml#1516; h1b_loader #1333    |
 * | string/array length past the end of the file       | mlx#4256, cortex.cpp#1985 (OOB reads)           |
 * | array count x element size wraps                   | CVE-2024-21825 (Talos, GGUF_TYPE_ARRAY/STRING)  |
 * | nested arrays (recursion, stack exhaustion)        | huggingface.js#2028, gguf-py nested-array DoS   |
 * | unknown kv / array element type                    | ggml#709 review ("should be default:")          |
 * | n_dims > 4 writes past ne[4]                       | CVE-2024-21802 (Talos, info->ne); ggml#709;     |
 * |                                                    | gguf-tools#25; huggingface.js#2028 (n_dims loop)|
 * | dims product overflows int64                       | ggml#709; gguf-rs (zackshen/gguf#15)            |
 * | zero dimension -> division by zero                 | GGUF div-by-zero PoC (ne[j] == 0)               |
 * | element count x type size overflows (byte size)    | CVE-2026-33298 / GHSA-96jg-mvhq-q7q7            |
 * | unknown / negative / removed tensor type id        | ggml#709 (type unchecked), llama.cpp#19856      |
 * |                                                    | ("fix negative tensor type oob")                |
 * | ne[0] not a multiple of the block size             | ggml gguf.cpp check (row size math)             |
 * | alignment 0 / not a power of two / unbounded       | llama.cpp#19856, ggml#1516, oss-sec 2026 V-01   |
 * | sum of padded sizes / padding wraps (offset+size)  | CVE-2025-53630 / GHSA-vgg9-87g3-85w8,           |
 * |                                                    | CVE-2026-27940, llama.cpp#24759 / #26978        |
 * | tensor data past the end of the file (OOB read)    | CVE-2026-7482 "Bleeding Llama" (ollama)         |
 * | offset not aligned; overlapping tensors            | ggml gguf.cpp offset checks                     |
 * | duplicate keys / duplicate tensor names            | llama.cpp#19856 (gguf-py duplicate keys), ggml  |
 * | empty key -> reachable assertion                   | huntr "gguf_kv empty key" (CWE-617)             |
 * | BOOL other than 0/1                                | spec; ggml gguf.cpp                             |
 * | truncated file anywhere                            | every reader above                              |
 * | element-type confusion (INT8 read as FLOAT32)      | llama.cpp#26690 (tokenizer.ggml.scores)         |
 * | big-endian / wrong version                         | ggml gguf.cpp version checks                    |
 * Config-level classes (unbounded block_count -> fixed arrays, acestep.cpp#98; vocabulary vs
 * token array) are in test_gguf_config.c.
 * The 2024 CVEs are Cisco Talos reports TALOS-2024-1912..1916 against llama.cpp commit 18c2e17
 * (published 2024-02-26; Databricks reported the same classes that January, fixed by ggml#709,
 * "gguf : add input validation, prevent integer overflows"). The CVE records of -23605 (header.n_kv)
 * and -21802 (info->ne), and TALOS-2024-1913 = gguf_fread_str, were checked; the pairing of
 * -21825, -21836 and -23496 with the other reports follows the report titles as cited elsewhere
 * and was not re-checked against the CVE records. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/core.h"
#include "gguf_writer.h"
#include "io/io.h"
#include "quant/gguf_blocks.h"
#include "test.h"

static char g_dir[4096];

/* splitmix64: a fixed-seed generator so the mutation loop is the same on every run */
static uint64_t g_rng = 0x6775756667677566ULL;
static uint64_t rnd(void) {
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* An expected refusal: code, file name and needle must all be in it. */
static void expect_bad_at(const uint8_t *img, size_t len, lt_err_code code, const char *needle, int line) {
    lt_gguf_file *f = NULL;
    lt_status st = lt_gguf_open_buffer(img, (int64_t)len, "bad.gguf", &f);
    lt_test_checks++;
    if (!st) {
        lt_test_failures++;
        fprintf(stderr, "FAIL line %d: accepted, expected an error with \"%s\"\n", line, needle);
        lt_gguf_close(f);
        return;
    }
    const char *msg = lt_status_msg(st);
    if (f != NULL || lt_status_code(st) != code || !strstr(msg, needle) || !strstr(msg, "bad.gguf")) {
        lt_test_failures++;
        fprintf(stderr, "FAIL line %d: code %d (want %d), message \"%s\" lacks \"%s\" or the file name\n", line,
                (int)lt_status_code(st), (int)code, msg, needle);
    }
    lt_status_free(st);
}
#define BAD(img, len, code, needle) expect_bad_at(img, len, code, needle, __LINE__)

static lt_gguf_file *open_ok(const uint8_t *img, size_t len) {
    lt_gguf_file *f = NULL;
    CHECK_OK(lt_gguf_open_buffer(img, (int64_t)len, "ok.gguf", &f));
    return f;
}

/* ---------------------------------------------------------------- hand-packed blocks */

/* Q4_K: 8 sub-blocks with 6-bit scales sc[8] and mins m[8], packed as quantize_row_q4_K_ref does
 * (specs §4 writer packing); q[256] 4-bit values. */
static void pack_q4k(uint8_t *b, uint16_t d, uint16_t dmin, const uint8_t *sc, const uint8_t *m, const uint8_t *q) {
    memcpy(b, &d, 2);
    memcpy(b + 2, &dmin, 2);
    uint8_t *s = b + 4, *qs = b + 16;
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)(sc[j] | ((sc[j + 4] >> 4) << 6));
        s[j + 4] = (uint8_t)(m[j] | ((m[j + 4] >> 4) << 6));
        s[j + 8] = (uint8_t)((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
    }
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) qs[32 * c + l] = (uint8_t)(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
}

/* Q6_K: q[256] 6-bit values, 16 int8 scales (one per 16 elements), d. */
static void pack_q6k(uint8_t *b, uint16_t d, const int8_t *sc, const uint8_t *q) {
    uint8_t *ql = b, *qh = b + 128;
    memset(b, 0, 210);
    for (int n = 0; n < 2; n++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *x = q + 128 * n + l;
            ql[64 * n + l] = (uint8_t)((x[0] & 0xF) | ((x[64] & 0xF) << 4));
            ql[64 * n + l + 32] = (uint8_t)((x[32] & 0xF) | ((x[96] & 0xF) << 4));
            qh[32 * n + l] = (uint8_t)((x[0] >> 4) | ((x[32] >> 4) << 2) | ((x[64] >> 4) << 4) | ((x[96] >> 4) << 6));
        }
    memcpy(b + 192, sc, 16);
    memcpy(b + 208, &d, 2);
}

/* Known tensors of every supported type, with the values each must dequantize to. */
typedef struct known {
    const char *name;
    uint32_t type;
    int nd;
    uint64_t ne[2];
    uint8_t data[1024];
    size_t nbytes;
    float want[512];
} known;

static int make_known(known *k) {
    int n = 0;
    /* F32 [8, 3]: i/4 - 2 */
    k[n] = (known){.name = "f32", .type = 0, .nd = 2, .ne = {8, 3}, .nbytes = 96};
    for (int i = 0; i < 24; i++) {
        float v = (float)i * 0.25f - 2.0f;
        memcpy(k[n].data + 4 * i, &v, 4);
        k[n].want[i] = v;
    }
    n++;
    /* F16 [4, 2]: normal, negative, max (65504), the smallest subnormal (2^-24), -0, 1/3 rounded */
    static const uint16_t h[8] = {0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001, 0x8000, 0x3555, 0x5640};
    static const float hv[8] = {1.0f, -2.0f, 0.5f, 65504.0f, 0x1p-24f, -0.0f, 0.333251953125f, 100.0f};
    k[n] = (known){.name = "f16", .type = 1, .nd = 2, .ne = {4, 2}, .nbytes = 16};
    memcpy(k[n].data, h, 16);
    memcpy(k[n].want, hv, sizeof hv);
    n++;
    /* BF16 [4]: 1, -3.5, the smallest subnormal 2^-133, -Inf */
    static const uint16_t bf[4] = {0x3F80, 0xC060, 0x0001, 0xFF80};
    k[n] = (known){.name = "bf16", .type = 30, .nd = 1, .ne = {4, 1}, .nbytes = 8};
    memcpy(k[n].data, bf, 8);
    k[n].want[0] = 1.0f, k[n].want[1] = -3.5f, k[n].want[2] = 0x1p-133f, k[n].want[3] = -1.0f / 0.0f;
    n++;
    /* Q8_0 [64, 2]: d = 0.25, -1.5, 2^-24 (subnormal f16), 1; qs = j - 16, with -128 and 127 */
    static const uint16_t d8[4] = {0x3400, 0xBE00, 0x0001, 0x3C00};
    static const float d8v[4] = {0.25f, -1.5f, 0x1p-24f, 1.0f};
    k[n] = (known){.name = "q8_0", .type = 8, .nd = 2, .ne = {64, 2}, .nbytes = 4 * 34};
    for (int b = 0; b < 4; b++) {
        memcpy(k[n].data + 34 * b, &d8[b], 2);
        for (int j = 0; j < 32; j++) {
            int q = j == 0 ? -128 : j == 31 ? 127 : j - 16 + b;
            k[n].data[34 * b + 2 + j] = (uint8_t)(int8_t)q;
            k[n].want[32 * b + j] = (float)q * d8v[b];
        }
    }
    n++;
    /* Q4_0 [32, 3]: d = 2, 0.5, -1; qs[j] = lo (j & 15) | hi (15 - j) */
    static const uint16_t d4[3] = {0x4000, 0x3800, 0xBC00};
    static const float d4v[3] = {2.0f, 0.5f, -1.0f};
    k[n] = (known){.name = "q4_0", .type = 2, .nd = 2, .ne = {32, 3}, .nbytes = 3 * 18};
    for (int b = 0; b < 3; b++) {
        memcpy(k[n].data + 18 * b, &d4[b], 2);
        for (int j = 0; j < 16; j++) {
            k[n].data[18 * b + 2 + j] = (uint8_t)((j & 15) | ((15 - j) << 4));
            k[n].want[32 * b + j] = (float)(j - 8) * d4v[b];
            k[n].want[32 * b + j + 16] = (float)(15 - j - 8) * d4v[b];
        }
    }
    n++;
    /* Q4_1 [32]: d = 0.5, m = -1: x = q/2 - 1 */
    k[n] = (known){.name = "q4_1", .type = 3, .nd = 1, .ne = {32, 1}, .nbytes = 20};
    uint16_t d41 = 0x3800, m41 = 0xBC00;
    memcpy(k[n].data, &d41, 2);
    memcpy(k[n].data + 2, &m41, 2);
    for (int j = 0; j < 16; j++) {
        k[n].data[4 + j] = (uint8_t)(((j * 3) & 15) | ((j ^ 5) << 4));
        k[n].want[j] = (float)((j * 3) & 15) * 0.5f - 1.0f;
        k[n].want[j + 16] = (float)(j ^ 5) * 0.5f - 1.0f;
    }
    n++;
    /* Q4_K [256]: d = 0.5, dmin = 0.25; 6-bit scales/mins >= 16 so the high bits matter */
    static const uint8_t sc[8] = {1, 63, 17, 32, 5, 48, 33, 62}, mn[8] = {0, 7, 63, 16, 40, 1, 31, 50};
    uint8_t q[256];
    for (int i = 0; i < 256; i++) q[i] = (uint8_t)((i * 5 + i / 7) & 15);
    q[0] = 10, q[32] = 3, q[128] = 9;
    k[n] = (known){.name = "q4_k", .type = 12, .nd = 1, .ne = {256, 1}, .nbytes = 144};
    pack_q4k(k[n].data, 0x3800, 0x3400, sc, mn, q);
    for (int i = 0; i < 256; i++) { /* sub-block i/32, value d*sc*q - dmin*m (exact here) */
        int j = i / 32;
        k[n].want[i] = (float)(0.5 * sc[j] * q[i] - 0.25 * mn[j]);
    }
    /* by hand: x[0] = 0.5*1*10 - 0.25*0 = 5; x[32] = 0.5*63*3 - 0.25*7 = 92.75;
     * x[128] (sub-block 4, scale and min from the packed high bits) = 0.5*5*9 - 0.25*40 = 12.5 */
    CHECK(k[n].want[0] == 5.0f && k[n].want[32] == 92.75f && k[n].want[128] == 12.5f);
    n++;
    /* Q6_K [256]: d = 0.125, scales -128..127, q 0..63 */
    static const int8_t s6[16] = {1, -1, 127, -128, 3, 64, -7, 2, 9, -30, 100, 5, -64, 33, 0, 12};
    uint8_t q6[256];
    for (int i = 0; i < 256; i++) q6[i] = (uint8_t)((i * 37 + 11) & 63);
    q6[0] = 0, q6[1] = 63, q6[200] = 32;
    k[n] = (known){.name = "q6_k", .type = 14, .nd = 1, .ne = {256, 1}, .nbytes = 210};
    pack_q6k(k[n].data, 0x3000, s6, q6);
    for (int i = 0; i < 256; i++) k[n].want[i] = (float)(0.125 * s6[i / 16] * (q6[i] - 32));
    /* by hand: x[0] = 0.125*1*(0-32) = -4; x[1] = 0.125*1*(63-32) = 3.875; x[200] = 0 */
    CHECK(k[n].want[0] == -4.0f && k[n].want[1] == 3.875f && k[n].want[200] == 0.0f);
    n++;
    return n;
}

/* ---------------------------------------------------------------- round trip */

static void test_roundtrip(uint64_t align, bool write_alignment) {
    gw w;
    gw_init(&w, align);
    if (write_alignment) gw_kv_u32(&w, "general.alignment", (uint32_t)align);
    gw_kv_u8(&w, "t.u8", 200);
    gw_kv_i8(&w, "t.i8", -100);
    gw_kv_u16(&w, "t.u16", 60000);
    gw_kv_i16(&w, "t.i16", -30000);
    gw_kv_u32(&w, "t.u32", 4000000000u);
    gw_kv_i32(&w, "t.i32", -2000000000);
    gw_kv_f32(&w, "t.f32", 1.5f);
    gw_kv_bool(&w, "t.bool", 1);
    gw_kv_str(&w, "t.str", "h\xc3\xa9llo");
    gw_kv_u64(&w, "t.u64", 1ULL << 40);
    gw_kv_i64(&w, "t.i64", -(1LL << 40));
    gw_kv_f64(&w, "t.f64", 0.1);
    gw_kv_str(&w, "t.empty", "");
    gw_kv_arr(&w, "a.u8", 0, 3, (uint8_t[]){1, 2, 3}, 1);
    gw_kv_arr(&w, "a.i32", 5, 3, (int32_t[]){-1, 0, 7}, 4);
    gw_kv_arr(&w, "a.f32", 6, 2, (float[]){0.5f, -2.0f}, 4);
    gw_kv_arr(&w, "a.bool", 7, 3, (uint8_t[]){0, 1, 1}, 1);
    gw_kv_arr(&w, "a.u64", 10, 2, (uint64_t[]){1ULL << 63, 5}, 8);
    gw_kv_arr(&w, "a.f64", 12, 1, (double[]){-0.25}, 8);
    gw_kv_arr(&w, "a.i16", 3, 0, NULL, 2);
    gw_kv_arr_str(&w, "a.str", 3, (const char *[]){"a", "", "ccc"});
    static known k[9];
    int nk = make_known(k);
    for (int i = 0; i < nk; i++) gw_tensor(&w, k[i].name, k[i].type, k[i].nd, k[i].ne, k[i].data, k[i].nbytes);
    static uint8_t q5k[176]; /* a valid type loft cannot dequantize */
    gw_tensor(&w, "q5_k", 13, 1, (uint64_t[]){256}, q5k, 176);
    size_t len;
    uint8_t *img = gw_build(&w, &len);
    lt_gguf_file *f = open_ok(img, len);
    if (!f) goto out;
    CHECK(lt_gguf_alignment(f) == (int64_t)align);
    CHECK(lt_gguf_data_start(f) == (int64_t)w.data_start && lt_gguf_data_start(f) % (int64_t)align == 0);
    CHECK(lt_gguf_kv_count(f) == (int64_t)w.n_kv);
    CHECK(!strcmp(lt_gguf_kv_at(f, write_alignment ? 1 : 0)->key, "t.u8")); /* file order */
    CHECK(lt_gguf_kv_at(f, lt_gguf_kv_count(f)) == NULL && lt_gguf_kv_at(f, -1) == NULL);
    /* typed getters */
    uint32_t u32;
    uint64_t u64;
    int32_t i32;
    float f32;
    bool b;
    double r;
    int64_t i;
    lt_gguf_str s;
    CHECK_OK(lt_gguf_get_u32(f, "t.u32", &u32));
    CHECK(u32 == 4000000000u);
    CHECK_OK(lt_gguf_get_u64(f, "t.u64", &u64));
    CHECK(u64 == 1ULL << 40);
    CHECK_OK(lt_gguf_get_i32(f, "t.i32", &i32));
    CHECK(i32 == -2000000000);
    CHECK_OK(lt_gguf_get_f32(f, "t.f32", &f32));
    CHECK(f32 == 1.5f);
    CHECK_OK(lt_gguf_get_bool(f, "t.bool", &b));
    CHECK(b);
    CHECK_OK(lt_gguf_get_str(f, "t.str", &s));
    CHECK(s.len == 6 && !memcmp(s.s, "h\xc3\xa9llo", 6));
    CHECK_OK(lt_gguf_get_str(f, "t.empty", &s));
    CHECK(s.len == 0);
    const struct {
        const char *key;
        int64_t v;
    } ints[] = {{"t.u8", 200},           {"t.i8", -100},         {"t.u16", 60000},     {"t.i16", -30000},
                {"t.u32", 4000000000LL}, {"t.i32", -2000000000}, {"t.u64", 1LL << 40}, {"t.i64", -(1LL << 40)}};
    for (size_t j = 0; j < sizeof ints / sizeof ints[0]; j++) {
        CHECK_OK(lt_gguf_get_int(f, ints[j].key, INT64_MIN, INT64_MAX, &i));
        CHECKF(i == ints[j].v, "%s: %lld", ints[j].key, (long long)i);
    }
    CHECK_OK(lt_gguf_get_real(f, "t.f32", &r));
    CHECK(r == 1.5);
    CHECK_OK(lt_gguf_get_real(f, "t.f64", &r));
    CHECK(r == 0.1);
    /* type checks */
    CHECK_ERR(lt_gguf_get_u32(f, "t.i32", &u32), "must be UINT32, found INT32");
    CHECK_ERR(lt_gguf_get_f32(f, "t.f64", &f32), "must be FLOAT32, found FLOAT64");
    CHECK_ERR(lt_gguf_get_str(f, "t.u8", &s), "must be STRING, found UINT8");
    CHECK_ERR(lt_gguf_get_bool(f, "t.u8", &b), "must be BOOL");
    CHECK_ERR(lt_gguf_get_int(f, "t.str", 0, 10, &i), "must be an integer");
    CHECK_ERR(lt_gguf_get_int(f, "t.f32", 0, 10, &i), "must be an integer");
    CHECK_ERR(lt_gguf_get_int(f, "t.u8", 0, 100, &i), "expected a value from 0 to 100");
    CHECK_ERR(lt_gguf_get_real(f, "t.i32", &r), "must be FLOAT32 or FLOAT64");
    CHECK_ERR(lt_gguf_get_u32(f, "no.such.key", &u32), "\"no.such.key\" is missing");
    /* arrays */
    const lt_gguf_kv *kv;
    CHECK_OK(lt_gguf_get_array(f, "a.i32", LT_GGUF_INT32, &kv));
    CHECK(kv->n == 3 && lt_gguf_arr_int(kv, 0, &i) && i == -1 && lt_gguf_arr_int(kv, 2, &i) && i == 7);
    CHECK(!lt_gguf_arr_real(kv, 0, &r) && !lt_gguf_arr_str(kv, 0, &s));
    CHECK_ERR(lt_gguf_get_array(f, "a.i32", LT_GGUF_FLOAT32, &kv),
              "must be an array of FLOAT32, found an array of INT32");
    CHECK_ERR(lt_gguf_get_array(f, "t.i32", LT_GGUF_INT32, &kv), "must be ARRAY");
    CHECK_OK(lt_gguf_get_array(f, "a.u8", LT_GGUF_VTYPE_COUNT, &kv));
    CHECK(kv->n == 3 && lt_gguf_arr_int(kv, 1, &i) && i == 2);
    CHECK_OK(lt_gguf_get_array(f, "a.f32", LT_GGUF_FLOAT32, &kv));
    CHECK(lt_gguf_arr_real(kv, 1, &r) && r == -2.0 && !lt_gguf_arr_int(kv, 0, &i));
    CHECK_OK(lt_gguf_get_array(f, "a.f64", LT_GGUF_FLOAT64, &kv));
    CHECK(lt_gguf_arr_real(kv, 0, &r) && r == -0.25);
    CHECK_OK(lt_gguf_get_array(f, "a.u64", LT_GGUF_UINT64, &kv));
    CHECK(!lt_gguf_arr_int(kv, 0, &i) && lt_gguf_arr_int(kv, 1, &i) && i == 5); /* 2^63 does not fit */
    CHECK_OK(lt_gguf_get_array(f, "a.bool", LT_GGUF_BOOL, &kv));
    CHECK(kv->n == 3 && kv->data[0] == 0 && kv->data[2] == 1 && !lt_gguf_arr_int(kv, 0, &i));
    CHECK_OK(lt_gguf_get_array(f, "a.i16", LT_GGUF_INT16, &kv));
    CHECK(kv->n == 0);
    CHECK_OK(lt_gguf_get_array(f, "a.str", LT_GGUF_STRING, &kv));
    CHECK(kv->n == 3 && lt_gguf_arr_str(kv, 0, &s) && s.len == 1 && s.s[0] == 'a');
    CHECK(lt_gguf_arr_str(kv, 1, &s) && s.len == 0 && lt_gguf_arr_str(kv, 2, &s) && s.len == 3 &&
          !memcmp(s.s, "ccc", 3));
    /* tensors */
    CHECK(lt_gguf_tensor_count(f) == nk + 1);
    static float out[512];
    for (int j = 0; j < nk; j++) {
        const lt_gguf_tensor *t = lt_gguf_find_tensor(f, k[j].name);
        CHECKF(t && t == lt_gguf_tensor_at(f, j), "%s", k[j].name);
        if (!t) continue;
        int64_t n = (int64_t)(k[j].ne[0] * (k[j].nd > 1 ? k[j].ne[1] : 1));
        CHECK(t->type == k[j].type && t->n_dims == k[j].nd && t->ne[0] == (int64_t)k[j].ne[0]);
        CHECK(t->ne[1] == (int64_t)(k[j].nd > 1 ? k[j].ne[1] : 1) && t->ne[2] == 1 && t->ne[3] == 1);
        CHECK(t->numel == n && t->nbytes == (int64_t)k[j].nbytes && t->offset % (int64_t)align == 0);
        CHECK((const uint8_t *)t->data == img + w.data_start + w.off[j]);
        CHECK(lt_gguf_can_dequant(t->type));
        memset(out, 0xAB, sizeof out);
        CHECK_OK(lt_gguf_dequant_rows(t, 0, t->ne[1], out));
        int bad = 0;
        for (int64_t e = 0; e < n; e++) bad += bits(out[e]) != bits(k[j].want[e]);
        CHECKF(bad == 0, "%s: %d of %lld values differ (first: %g vs %g)", k[j].name, bad, (long long)n, (double)out[0],
               (double)k[j].want[0]);
        if (t->ne[1] > 1) { /* the last row alone */
            int64_t r0 = t->ne[1] - 1;
            CHECK_OK(lt_gguf_dequant_rows(t, r0, 1, out));
            CHECK(bits(out[0]) == bits(k[j].want[r0 * t->ne[0]]));
        }
        CHECK_ERR(lt_gguf_dequant_rows(t, t->ne[1], 1, out), "outside its");
    }
    const lt_gguf_tensor *t5 = lt_gguf_find_tensor(f, "q5_k");
    CHECK(t5 && t5->nbytes == 176 && !lt_gguf_can_dequant(t5->type));
    if (t5) CHECK_ERR(lt_gguf_dequant_rows(t5, 0, 1, out), "ggml type Q5_K, which loft cannot read");
    CHECK(lt_gguf_find_tensor(f, "nope") == NULL && lt_gguf_tensor_at(f, 99) == NULL);
    lt_gguf_close(f);

    /* the same bytes from disk, through mmap */
    char path[4200];
    snprintf(path, sizeof path, "%s/rt_%llu.gguf", g_dir, (unsigned long long)align);
    CHECK_OK(lt_write_file_atomic(path, img, (int64_t)len));
    CHECK_OK(lt_gguf_open(path, &f));
    if (f) {
        const lt_gguf_tensor *t = lt_gguf_find_tensor(f, "q4_k");
        CHECK(t && !strcmp(lt_gguf_path(f), path));
        if (t) {
            CHECK_OK(lt_gguf_dequant_rows(t, 0, 1, out));
            CHECK(out[0] == 5.0f && out[32] == 92.75f);
        }
        lt_gguf_close(f);
    }
out:
    free(img);
    gw_free(&w);
}

static void test_type_table(void) {
    const lt_ggml_type_info *t = lt_ggml_type_get(LT_GGML_Q4_K);
    CHECK(t && t->block == 256 && t->bytes == 144 && !strcmp(t->name, "Q4_K"));
    t = lt_ggml_type_get(LT_GGML_Q6_K);
    CHECK(t && t->block == 256 && t->bytes == 210);
    t = lt_ggml_type_get(LT_GGML_Q8_0);
    CHECK(t && t->block == 32 && t->bytes == 34);
    t = lt_ggml_type_get(LT_GGML_BF16);
    CHECK(t && t->block == 1 && t->bytes == 2);
    static const uint32_t gone[] = {4, 5, 31, 32, 33, 36, 37, 38, 40, 41, 1000, 0xFFFFFFFFu};
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++) CHECKF(!lt_ggml_type_get(gone[i]), "%u", gone[i]);
    CHECK(!strcmp(lt_gguf_vtype_name(LT_GGUF_ARRAY), "ARRAY") && !strcmp(lt_gguf_vtype_name(99), "unknown"));
}

static void test_open_errors(void) {
    lt_gguf_file *f = NULL;
    char path[4200];
    snprintf(path, sizeof path, "%s/does-not-exist.gguf", g_dir);
    lt_status st = lt_gguf_open(path, &f);
    CHECK(st && lt_status_code(st) == LT_ERR_IO && strstr(lt_status_msg(st), "cannot open") && !f);
    lt_status_free(st);
    CHECK_ERR(lt_gguf_open(g_dir, &f), "not a regular file");
    snprintf(path, sizeof path, "%s/empty.gguf", g_dir);
    CHECK_OK(lt_write_file_atomic(path, "", 0));
    CHECK_ERR(lt_gguf_open(path, &f), "too short to be a GGUF file");
    CHECK_ERR(lt_gguf_open_buffer(NULL, 0, NULL, &f), "too short");
    CHECK_ERR(lt_gguf_open_buffer(NULL, 5, "x", &f), "bad buffer");
}

/* ---------------------------------------------------------------- malformed corpus */

/* A valid base: one kv, tensors a (F32 [8, 2]), b (Q8_0 [32, 2]), c (F32 [4]). */
static uint8_t base_a[64], base_b[68], base_c[16];
static uint8_t *base_file(gw *w, size_t *len) {
    gw_init(w, 32);
    gw_kv_str(w, "general.architecture", "llama");
    gw_tensor(w, "a", LT_GGML_F32, 2, (uint64_t[]){8, 2}, base_a, 64);
    gw_tensor(w, "b", LT_GGML_Q8_0, 2, (uint64_t[]){32, 2}, base_b, 68);
    gw_tensor(w, "c", LT_GGML_F32, 1, (uint64_t[]){4}, base_c, 16);
    return gw_build(w, len);
}

/* A file with one kv written by fn and no tensors; *vpos = where the value starts. */
typedef void (*kv_fn)(gw *w);
static uint8_t *one_kv(kv_fn fn, size_t keylen, size_t *len, size_t *vpos) {
    gw w;
    gw_init(&w, 32);
    fn(&w);
    uint8_t *img = gw_build(&w, len);
    *len = w.pos_kv + w.kv.n; /* no padding: a file without tensors may end after its metadata */
    *vpos = w.pos_kv + 8 + keylen + 4;
    gw_free(&w);
    return img;
}
static void kv_str3(gw *w) { gw_kv_str(w, "k", "abc"); }
static void kv_arr_u64(gw *w) { gw_kv_arr(w, "k", 10, 2, (uint64_t[]){1, 2}, 8); }
static void kv_arr_str(gw *w) { gw_kv_arr_str(w, "k", 2, (const char *[]){"x", "y"}); }
static void kv_bool2(gw *w) { gw_kv_bool(w, "k", 2); }
static void kv_boolarr(gw *w) { gw_kv_arr(w, "k", 7, 3, (uint8_t[]){1, 0, 7}, 1); }
static void kv_empty(gw *w) { gw_kv_str(w, "", "x"); }
static void kv_ctrl(gw *w) { gw_kv_str(w, "gen\x01ral", "x"); }
static void kv_dup(gw *w) { gw_kv_u32(w, "k", 1), gw_kv_str(w, "k", "again"); }
static void kv_type13(gw *w) { gw_kv_head(w, "k", 13), gw_u32(&w->kv, 0); }
static void kv_typemax(gw *w) { gw_kv_head(w, "k", 0xFFFFFFFFu), gw_u32(&w->kv, 0); }
static void kv_nested(gw *w) { gw_kv_head(w, "k", 9), gw_u32(&w->kv, 9), gw_u64(&w->kv, 1), gw_u32(&w->kv, 4); }
static void kv_elem13(gw *w) { gw_kv_head(w, "k", 9), gw_u32(&w->kv, 13), gw_u64(&w->kv, 0); }
static void kv_align0(gw *w) { gw_kv_u32(w, "general.alignment", 0); }
static void kv_align48(gw *w) { gw_kv_u32(w, "general.alignment", 48); }
static void kv_align4(gw *w) { gw_kv_u32(w, "general.alignment", 4); }
static void kv_align_big(gw *w) { gw_kv_u32(w, "general.alignment", 1u << 30); }
static void kv_align_u64(gw *w) { gw_kv_u64(w, "general.alignment", 32); }
static void kv_scores_i8(gw *w) { gw_kv_arr(w, "tokenizer.ggml.scores", 1, 4, (int8_t[]){1, 2, 3, 4}, 1); }

static void bad_kv(kv_fn fn, lt_err_code code, const char *needle, int line) {
    size_t len, vpos;
    uint8_t *img = one_kv(fn, 0, &len, &vpos);
    expect_bad_at(img, len, code, needle, line);
    free(img);
}
#define BAD_KV(fn, code, needle) bad_kv(fn, code, needle, __LINE__)

static void test_malformed(void) {
    const lt_err_code F = LT_ERR_FORMAT, U = LT_ERR_UNSUPPORTED;
    gw w;
    size_t len, vpos;
    uint8_t *img = base_file(&w, &len);
    uint8_t *m = malloc(len + 64);
    lt_gguf_file *f = open_ok(img, len);
    lt_gguf_close(f);
#define RESET() memcpy(m, img, len)

    /* header */
    RESET();
    BAD(m, 10, F, "the file ends");
    BAD(m, 3, F, "too short");
    RESET(), m[0] = 'X';
    BAD(m, len, F, "not a GGUF file");
    RESET(), memcpy(m, "tjgg", 4);
    BAD(m, len, U, "pre-GGUF ggml file");
    RESET(), put32(m + 4, 0);
    BAD(m, len, F, "version 0 is not a valid");
    RESET(), put32(m + 4, 1);
    BAD(m, len, U, "GGUF version 1 is not supported");
    RESET(), put32(m + 4, 2);
    BAD(m, len, U, "GGUF version 2 is not supported");
    RESET(), put32(m + 4, 4);
    BAD(m, len, U, "newer than the version 3");
    RESET(), put32(m + 4, 0x03000000u);
    BAD(m, len, U, "big-endian GGUF");
    /* counts: CVE-2024-21836 (tensors), CVE-2024-23605 (kvs), and counts the file cannot hold */
    RESET(), put64(m + 8, 1ULL << 63);
    BAD(m, len, F, "tensor count 9223372036854775808 is above");
    RESET(), put64(m + 8, 0xFFFFFFFFFFFFFFFFULL);
    BAD(m, len, F, "tensor count");
    RESET(), put64(m + 16, 0xFFFFFFFFFFFFFFFFULL);
    BAD(m, len, F, "key/value count 18446744073709551615 is above");
    RESET(), put64(m + 16, (1u << 20) + 1);
    BAD(m, len, F, "key/value count");
    RESET(), put64(m + 16, 100000);
    BAD(m, len, F, "need at least");
    RESET(), put64(m + 8, 1000);
    BAD(m, len, F, "need at least");

    /* strings: CVE-2024-23496 (gguf_fread_str length + 1 wraps), lengths past the file */
    RESET(), put64(m + w.pos_kv, 0xFFFFFFFFFFFFFFFFULL);
    BAD(m, len, F, "above the 65535-byte limit");
    RESET(), put64(m + w.pos_kv, 60000);
    BAD(m, len, F, "has length 60000 but only");
    img = (free(img), one_kv(kv_str3, 1, &len, &vpos));
    m = realloc(m, len + 64);
    RESET(), put64(m + vpos, 1ULL << 31);
    BAD(m, len, F, "above the 1073741824-byte limit");
    RESET(), put64(m + vpos, 4);
    BAD(m, len, F, "has length 4 but only 3");
    RESET();
    BAD(m, len - 1, F, "has length 3 but only 2 bytes are left");
    /* arrays: CVE-2024-21825 (count x size wraps), counts past the file */
    img = (free(img), one_kv(kv_arr_u64, 1, &len, &vpos));
    m = realloc(m, len + 64);
    RESET(), put64(m + vpos + 4, (1ULL << 30) + 1);
    BAD(m, len, F, "array length 1073741825 is above");
    RESET(), put64(m + vpos + 4, 0xFFFFFFFFFFFFFFFFULL);
    BAD(m, len, F, "array length");
    RESET(), put64(m + vpos + 4, 1ULL << 29);
    BAD(m, len, F, "4294967296 bytes but only 16");
    RESET(), put64(m + vpos + 4, 3);
    BAD(m, len, F, "need 24 bytes but only 16");
    img = (free(img), one_kv(kv_arr_str, 1, &len, &vpos));
    m = realloc(m, len + 64);
    RESET(), put64(m + vpos + 4, 1ULL << 28);
    BAD(m, len, F, "strings need at least");
    RESET(), put64(m + vpos + 4 + 8, 0xFFFFFFFFFFFFFFFFULL); /* first element's length */
    BAD(m, len, F, "string 0 of the array \"k\" has length");
    RESET(), put64(m + vpos + 4 + 8 + 9, 100); /* second element's length */
    BAD(m, len, F, "string 1 of the array \"k\" has length 100 but only");
    free(img);
    BAD_KV(kv_nested, U, "nested arrays");
    BAD_KV(kv_elem13, F, "unknown array element type 13");
    BAD_KV(kv_type13, F, "unknown value type 13");
    BAD_KV(kv_typemax, F, "unknown value type 4294967295");
    BAD_KV(kv_bool2, F, "BOOL value is 2; BOOL must be 0 or 1");
    BAD_KV(kv_boolarr, F, "BOOL value is 7");
    BAD_KV(kv_empty, F, "a metadata key is empty");
    BAD_KV(kv_ctrl, F, "not printable ASCII");
    BAD_KV(kv_dup, F, "metadata key \"k\" appears more than once");
    /* alignment: 0, not a power of two, below 8, unbounded, wrong type */
    BAD_KV(kv_align0, F, "\"general.alignment\" is 0; it must be a power of two");
    BAD_KV(kv_align48, F, "\"general.alignment\" is 48");
    BAD_KV(kv_align4, F, "\"general.alignment\" is 4");
    BAD_KV(kv_align_big, F, "\"general.alignment\" is 1073741824");
    BAD_KV(kv_align_u64, F, "\"general.alignment\" must be UINT32, found UINT64");

    /* tensor infos (base file again) */
    gw_free(&w);
    img = base_file(&w, &len);
    m = realloc(m, len + 64);
    /* n_dims: CVE-2024-21802 (ne[] written past GGML_MAX_DIMS) */
    RESET(), put32(m + w.pos_ndims[0], 5);
    BAD(m, len, F, "tensor \"a\": n_dims is 5");
    RESET(), put32(m + w.pos_ndims[1], 0xFFFFFFFFu);
    BAD(m, len, F, "tensor \"b\": n_dims is 4294967295");
    RESET(), put32(m + w.pos_ndims[2], 0);
    BAD(m, len, F, "n_dims is 0");
    /* dims: zero (divide-by-zero class), above int64, product overflow */
    RESET(), put64(m + w.pos_dims[0], 0);
    BAD(m, len, F, "tensor \"a\": dimension 0 is 0");
    RESET(), put64(m + w.pos_dims[0] + 8, 1ULL << 63);
    BAD(m, len, F, "dimension 1 is 9223372036854775808");
    RESET(), put64(m + w.pos_dims[0], 1ULL << 32), put64(m + w.pos_dims[0] + 8, 1ULL << 32);
    BAD(m, len, F, "product of its dimensions overflows");
    /* byte size: element count fits, x 4 bytes does not (CVE-2026-33298 class) */
    RESET(), put64(m + w.pos_dims[2], 1ULL << 62);
    BAD(m, len, F, "tensor \"c\": its size in bytes overflows");
    /* Q8_0: 31 x 2^58 elements fit in int64, 31 x 2^53 blocks x 34 bytes do not */
    RESET(), put64(m + w.pos_dims[1], 31ULL << 58), put64(m + w.pos_dims[1] + 8, 1);
    BAD(m, len, F, "tensor \"b\": its size in bytes overflows");
    /* size fits int64 but not the file */
    RESET(), put64(m + w.pos_dims[1], 1ULL << 40);
    BAD(m, len, F, "runs past the end");
    /* type ids: unknown, removed, "negative" */
    RESET(), put32(m + w.pos_type[0], 99);
    BAD(m, len, F, "type id 99 is not a ggml type loft knows");
    RESET(), put32(m + w.pos_type[0], 4);
    BAD(m, len, F, "type id 4 is a ggml type that was removed");
    RESET(), put32(m + w.pos_type[0], 37);
    BAD(m, len, F, "removed");
    RESET(), put32(m + w.pos_type[0], 0xFFFFFFFFu);
    BAD(m, len, F, "type id 4294967295");
    /* ne[0] not a multiple of the block: a (ne0 = 8) as Q4_0 */
    RESET(), put32(m + w.pos_type[0], LT_GGML_Q4_0);
    BAD(m, len, F, "ne[0] = 8 is not a multiple of Q4_0's block size 32");
    /* offsets: unaligned, beyond int64, past the file, wrapping with the size, overlapping */
    RESET(), put64(m + w.pos_off[1], w.off[1] + 4);
    BAD(m, len, F, "tensor \"b\": data offset 68 is not a multiple of the alignment");
    RESET(), put64(m + w.pos_off[1], 1ULL << 63);
    BAD(m, len, F, "is beyond any file");
    RESET(), put64(m + w.pos_off[2], w.off[2] + 32 * 1024);
    BAD(m, len, F, "tensor \"c\": its data (offset 32928, 16 bytes) runs past the end");
    RESET(), put64(m + w.pos_off[2], (uint64_t)INT64_MAX & ~31ULL);
    BAD(m, len, F, "runs past the end");
    RESET(), put64(m + w.pos_off[1], 32);
    BAD(m, len, F, "tensors \"a\" (offset 0, 64 bytes) and \"b\" (offset 32) overlap");
    RESET(), put64(m + w.pos_off[2], 0);
    BAD(m, len, F, "overlap");
    /* truncated inside the tensor infos, and before the data */
    BAD(img, w.pos_type[1] + 2, F, "the file ends");
    BAD(img, w.data_start + 70, F, "truncated");
    BAD(img, w.pos_off[2] + 8 + 1, F, "truncated");
    gw_free(&w);
    free(img);

    /* names: duplicate, empty, too long, not printable */
    gw_init(&w, 32);
    gw_tensor(&w, "a", 0, 1, (uint64_t[]){4}, base_c, 16);
    gw_tensor(&w, "a", 0, 1, (uint64_t[]){4}, base_c, 16);
    img = gw_build(&w, &len);
    BAD(img, len, F, "tensor name \"a\" appears more than once");
    free(img), gw_free(&w);
    const char *names[] = {"", "0123456789012345678901234567890123456789012345678901234567890123", "a\nb"};
    const char *why[] = {"is empty", "is too long", "not printable ASCII"};
    for (int i = 0; i < 3; i++) {
        gw_init(&w, 32);
        gw_tensor(&w, names[i], 0, 1, (uint64_t[]){4}, base_c, 16);
        img = gw_build(&w, &len);
        BAD(img, len, F, why[i]);
        free(img), gw_free(&w);
    }
    /* a 63-byte name is fine */
    gw_init(&w, 32);
    gw_tensor(&w, names[1] + 1, 0, 1, (uint64_t[]){4}, base_c, 16);
    img = gw_build(&w, &len);
    f = open_ok(img, len);
    CHECK(f && lt_gguf_find_tensor(f, names[1] + 1));
    lt_gguf_close(f);
    free(img), gw_free(&w);

    /* element-type confusion (llama.cpp#26690): the typed accessor refuses INT8 scores as FLOAT32 */
    img = one_kv(kv_scores_i8, strlen("tokenizer.ggml.scores"), &len, &vpos);
    f = open_ok(img, len);
    if (f) {
        const lt_gguf_kv *kv;
        CHECK_ERR(lt_gguf_get_array(f, "tokenizer.ggml.scores", LT_GGUF_FLOAT32, &kv),
                  "must be an array of FLOAT32, found an array of INT8");
        lt_gguf_close(f);
    }
    free(img);
    free(m);
#undef RESET
}

/* ---------------------------------------------------------------- mutation fuzz */

static const uint64_t interesting64[] = {0,
                                         1,
                                         2,
                                         3,
                                         4,
                                         7,
                                         8,
                                         31,
                                         32,
                                         63,
                                         64,
                                         255,
                                         0xFFFF,
                                         0x10000,
                                         0x7FFFFFFF,
                                         0x80000000,
                                         0xFFFFFFFF,
                                         1ULL << 32,
                                         1ULL << 62,
                                         1ULL << 63,
                                         ~0ULL,
                                         ~0ULL - 1,
                                         (uint64_t)INT64_MAX};

/* Everything an accepted file offers must be usable without reading outside it. */
static void exercise(lt_gguf_file *f, const uint8_t *img, size_t len) {
    for (int64_t i = 0; i < lt_gguf_kv_count(f); i++) {
        const lt_gguf_kv *kv = lt_gguf_kv_at(f, i);
        LT_ASSERT(kv && kv->key[0] && lt_gguf_find_kv(f, kv->key) == kv);
        int64_t v;
        double r;
        lt_gguf_str s;
        lt_status st = lt_gguf_get_int(f, kv->key, INT64_MIN, INT64_MAX, &v);
        lt_status_free(st);
        lt_status_free(lt_gguf_get_real(f, kv->key, &r));
        lt_status_free(lt_gguf_get_str(f, kv->key, &s));
        if (kv->type == LT_GGUF_ARRAY)
            for (int64_t j = 0; j < kv->n && j < 64; j++) {
                (void)lt_gguf_arr_int(kv, j, &v);
                (void)lt_gguf_arr_real(kv, j, &r);
                if (lt_gguf_arr_str(kv, j, &s) && s.len > 0)
                    LT_ASSERT((const uint8_t *)s.s >= img && (const uint8_t *)s.s + s.len <= img + len);
            }
    }
    static float row[4096];
    for (int64_t i = 0; i < lt_gguf_tensor_count(f); i++) {
        const lt_gguf_tensor *t = lt_gguf_tensor_at(f, i);
        const uint8_t *d = t->data;
        LT_ASSERT(lt_gguf_find_tensor(f, t->name) == t && d >= img && d + t->nbytes <= img + len);
        volatile uint8_t sink = d[0] ^ d[t->nbytes - 1]; /* ASan checks both ends */
        (void)sink;
        if (lt_gguf_can_dequant(t->type) && t->ne[0] <= 4096) lt_status_free(lt_gguf_dequant_rows(t, 0, 1, row));
        char hf[128];
        (void)lt_gguf_name_to_hf(t->name, hf, sizeof hf);
    }
    lt_model_config cfg;
    lt_status_free(lt_gguf_to_config(f, &cfg));
}

static void test_mutations(void) {
    gw w;
    gw_init(&w, 32);
    float freqs[4];
    gw_llama3_freqs(10000.0f, 8, 8.0, 1.0, 4.0, 64, freqs);
    gw_model m = {.arch = "llama",
                  .hidden = 32,
                  .inter = 64,
                  .layers = 1,
                  .heads = 4,
                  .kv_heads = 2,
                  .vocab = 6,
                  .ctx = 256,
                  .write_tokens = true,
                  .eps = 1e-5f,
                  .theta = 10000.0f,
                  .wtype = LT_GGML_Q8_0,
                  .rope_freqs = freqs,
                  .rope_orig = 64,
                  .bos = 1,
                  .eos = 2,
                  .eot = -1};
    gw_model_build(&w, &m);
    gw_kv_arr(&w, "x.bools", 7, 2, (uint8_t[]){0, 1}, 1);
    size_t slen;
    uint8_t *seed = gw_build(&w, &slen);
    lt_gguf_file *f = open_ok(seed, slen);
    if (f) {
        lt_model_config cfg;
        CHECK_OK(lt_gguf_to_config(f, &cfg)); /* the seed is a whole model: mutants reach the config code */
        exercise(f, seed, slen);
    }
    lt_gguf_close(f);
    char path[4200];
    snprintf(path, sizeof path, "%s/fuzz", g_dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/fuzz/seed.gguf", g_dir); /* seed corpus for tools/fuzz/fuzz_gguf.c */
    CHECK_OK(lt_write_file_atomic(path, seed, (int64_t)slen));
    int ok = 0, refused = 0, silent = 0;
    uint8_t *b = malloc(slen + 128);
    for (int it = 0; it < 20000; it++) {
        size_t n = slen;
        memcpy(b, seed, slen);
        int nmut = 1 + (int)(rnd() % 4);
        for (int k = 0; k < nmut; k++) {
            size_t pos = n ? (size_t)(rnd() % n) : 0;
            switch (rnd() % 7) {
            case 0:
                if (n) b[pos] ^= (uint8_t)(1u << (rnd() % 8));
                break;
            case 1:
                if (n) b[pos] = (uint8_t)rnd();
                break;
            case 2: /* an interesting 64-bit value on a field boundary (most fields are 4 or 8 bytes) */
                pos &= ~(size_t)3;
                if (pos + 8 <= n) put64(b + pos, interesting64[rnd() % (sizeof interesting64 / 8)]);
                break;
            case 3:
                if (pos + 4 <= n) put32(b + (pos & ~(size_t)3), (uint32_t)interesting64[rnd() % 12]);
                break;
            case 4:
                n = pos;
                break; /* truncate */
            case 5:    /* delete a few bytes */
                if (n) {
                    size_t k2 = 1 + rnd() % 8;
                    if (pos + k2 > n) k2 = n - pos;
                    memmove(b + pos, b + pos + k2, n - pos - k2);
                    n -= k2;
                }
                break;
            case 6: /* insert a few bytes */
                if (n + 8 <= slen + 128) {
                    size_t k2 = 1 + rnd() % 8;
                    memmove(b + pos + k2, b + pos, n - pos);
                    for (size_t j = 0; j < k2; j++) b[pos + j] = (uint8_t)rnd();
                    n += k2;
                }
                break;
            }
        }
        /* an exact-size copy, so ASan sees any read past the end */
        uint8_t *exact = malloc(n ? n : 1);
        memcpy(exact, b, n);
        lt_gguf_file *g = NULL;
        lt_status st = lt_gguf_open_buffer(exact, (int64_t)n, "mutant.gguf", &g);
        if (st) {
            refused++;
            if (!strstr(lt_status_msg(st), "mutant.gguf") || g) silent++;
            lt_status_free(st);
        } else {
            ok++;
            exercise(g, exact, n);
            lt_gguf_close(g);
        }
        free(exact);
    }
    free(b);
    printf("mutations: %d accepted, %d refused\n", ok, refused);
    CHECKF(silent == 0, "%d refusals without the file name", silent);
    CHECK(ok > 0 && refused > 0); /* the loop explores both sides */
    free(seed);
    gw_free(&w);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "%s/test_gguf", lt_test_tmpdir());
    mkdir(g_dir, 0755);
    test_type_table();
    test_roundtrip(32, false);
    test_roundtrip(32, true);
    test_roundtrip(64, true);
    test_open_errors();
    test_malformed();
    test_mutations();
    TEST_MAIN_END();
}
