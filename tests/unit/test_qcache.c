/* Quantized model directories (lt_model_quantize_dir) and the quantized cache (cache_dir):
 *   - SHA-256 against the FIPS 180-4 example vectors;
 *   - per format: quantize to a directory, load it, logits bit-identical to quantize-on-load of the
 *     same source (so nothing was quantized differently or again); the loaded weights point into
 *     the mapping (no pool block), the pool's high-water mark is exactly the mapped quantized bytes
 *     plus the f32 plain tensors (no f32 copy of any quantized weight, no scratch); the quantizer's
 *     own peak is one f32 tensor plus its quantized form;
 *   - the cache: built once, then loaded with no SCRATCH use; refused for another source of the
 *     same config (message names both), for other options, for a directory that is not a cache;
 *   - damaged directories refused with a message (truncated file, NaN scale, missing, unexpected
 *     or retyped tensors); a misaligned component is copied, not read in place;
 *   - atomic writes: a NaN source tensor, a too-small budget, an existing non-empty output leave no
 *     output and no temporary directory behind. */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/model_internal.h"
#include "test.h"

static const char *CONFIG = "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 384, \"hidden_size\": 256,"
                            " \"intermediate_size\": 512, \"num_hidden_layers\": 2, \"num_attention_heads\": 8,"
                            " \"num_key_value_heads\": 2, \"initializer_range\": 0.1, \"tie_word_embeddings\": false,"
                            " \"bos_token_id\": 1, \"eos_token_id\": 2}";
/* tied embeddings, q/k norms, and an intermediate size (96) that is not a multiple of 64 */
static const char *CONFIG_QWEN3 =
    "{\"architectures\": [\"Qwen3ForCausalLM\"], \"vocab_size\": 256, \"hidden_size\": 128,"
    " \"intermediate_size\": 96, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"head_dim\": 32,"
    " \"num_key_value_heads\": 2, \"initializer_range\": 0.1, \"tie_word_embeddings\": true}";

#define NIDS 12
static char g_tmp[2048];

static void path_of(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", g_tmp, name); }

static void rm_rf(const char *p) {
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
    if (system(cmd) != 0) fprintf(stderr, "warning: %s failed\n", cmd);
}

static bool exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* Whether g_tmp holds an entry starting with prefix (a leftover temporary directory). */
static bool leftover(const char *prefix) {
    DIR *d = opendir(g_tmp);
    bool found = false;
    for (struct dirent *e; d && (e = readdir(d));)
        if (!strncmp(e->d_name, prefix, strlen(prefix))) found = true;
    if (d) closedir(d);
    return found;
}

static void make_model(const char *json, const char *name, uint64_t seed, char *dir, size_t cap) {
    path_of(dir, cap, name);
    lt_model_config cfg;
    CHECK_OK(lt_config_parse(json, "test config", &cfg));
    lt_make_opts mo = {.seed = seed, .dtype = LT_DTYPE_BF16};
    CHECK_OK(lt_model_make_random(&cfg, &mo, dir));
}

/* Loads dir with lo, runs NIDS tokens, writes logits; returns the pool stats after loading (the
 * load's high-water marks) through ps when non-NULL. */
static bool logits_of(const char *dir, const lt_load_opts *lo, float *out, lt_pool_stats *ps) {
    lt_pool *pool = NULL;
    lt_model *m = NULL;
    lt_kv_cache *kv = NULL;
    CHECK_OK(lt_pool_create(1LL << 30, &pool));
    lt_status st = lt_model_load_opts(dir, pool, lt_backend_cpu(), lo, &m);
    CHECK_OK(st);
    bool ok = m != NULL;
    if (m) {
        if (ps) *ps = lt_pool_get_stats(pool);
        int64_t V = lt_model_get_config(m)->vocab_size;
        int32_t ids[NIDS];
        for (int i = 0; i < NIDS; i++) ids[i] = (int32_t)((i * 37 + 5) % V);
        CHECK_OK(lt_kv_create(m, pool, NIDS, &kv));
        CHECK_OK(lt_model_forward(m, kv, ids, NIDS, out, true));
    }
    lt_kv_free(kv);
    lt_model_free(m);
    if (pool) CHECK(lt_pool_get_stats(pool).used == 0); /* the mapped charge is given back too */
    lt_pool_destroy(pool);
    return ok;
}

/* ---------------------------------------------------------------- SHA-256 */

static void check_sha(const void *msg, size_t n, const char *want) {
    uint8_t d[LT_SHA256_BYTES];
    char hex[LT_SHA256_HEX];
    lt_sha256(msg, n, d);
    lt_sha256_hex(d, hex);
    CHECKF(!strcmp(hex, want), "sha256 of %zu bytes: %s, expected %s", n, hex, want);
    /* the same message fed in uneven pieces (1, 2, 3, ... bytes) gives the same digest */
    lt_sha256_ctx s;
    lt_sha256_init(&s);
    size_t off = 0;
    for (size_t k = 1; off < n; k = k % 131 + 1) {
        size_t c = n - off < k ? n - off : k;
        lt_sha256_update(&s, (const uint8_t *)msg + off, c);
        off += c;
    }
    lt_sha256_final(&s, d);
    lt_sha256_hex(d, hex);
    CHECKF(!strcmp(hex, want), "sha256 streamed, %zu bytes: %s", n, hex);
}

static void test_sha256_vectors(void) {
    /* FIPS 180-4 examples (NIST CSRC "SHA256.pdf", "SHA2_Additional.pdf") */
    check_sha("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    check_sha("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    check_sha(m448, strlen(m448), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    check_sha(a, 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);
    /* lengths around the padding boundary: 55 bytes fit one block, 56 need two */
    char b[64];
    memset(b, 'b', sizeof b);
    uint8_t d55[32], d56[32];
    lt_sha256(b, 55, d55);
    lt_sha256(b, 56, d56);
    CHECK(memcmp(d55, d56, 32) != 0);
}

/* The vectors on the CPU's SHA instructions (when it has them) and on the portable code, and both
 * agreeing on pseudo-random messages of every length class (partial blocks, many blocks). */
static void test_sha256(void) {
    printf("sha256: %s\n", lt_sha256_impl());
    test_sha256_vectors();
    lt_sha256_set_accel(false);
    CHECK(!strcmp(lt_sha256_impl(), "portable"));
    test_sha256_vectors();
    lt_sha256_set_accel(true);
    enum { N = 1 << 16 };
    uint8_t *buf = malloc(N);
    uint32_t x = 12345;
    for (int i = 0; i < N; i++) buf[i] = (uint8_t)((x = x * 1664525u + 1013904223u) >> 24);
    int mismatches = 0;
    for (size_t len = 0; len <= N; len = len < 300 ? len + 1 : len * 2 + 13) {
        uint8_t a[32], b[32];
        lt_sha256_set_accel(true);
        lt_sha256(buf, len, a);
        lt_sha256_set_accel(false);
        lt_sha256(buf, len, b);
        mismatches += memcmp(a, b, 32) != 0;
    }
    lt_sha256_set_accel(true);
    CHECKF(mismatches == 0, "%d lengths hash differently on %s and portable", mismatches, lt_sha256_impl());
    free(buf);
}

/* lt_pool_charge counts like an allocation (budget, high-water, tag) without making a block. */
static void test_pool_charge(void) {
    lt_pool *p;
    CHECK_OK(lt_pool_create(1000, &p));
    void *blk = NULL;
    CHECK_OK(lt_pool_alloc(p, LT_POOL_KV, 300, "kv", &blk));
    CHECK_OK(lt_pool_charge(p, LT_POOL_WEIGHTS, 600, "mapped"));
    lt_pool_stats s = lt_pool_get_stats(p);
    CHECK(s.used == 900 && s.high_water == 900 && s.tag_used[LT_POOL_WEIGHTS] == 600 && s.n_allocs == 1);
    CHECK_ERR(lt_pool_charge(p, LT_POOL_WEIGHTS, 101, "more mapped"), "memory budget exceeded");
    CHECK_ERR(lt_pool_alloc(p, LT_POOL_SCRATCH, 101, "scratch", &blk), "weights 600 B");
    lt_pool_uncharge(p, LT_POOL_WEIGHTS, 600);
    s = lt_pool_get_stats(p);
    CHECK(s.used == 300 && s.high_water == 900 && s.tag_high_water[LT_POOL_WEIGHTS] == 600);
    lt_pool_destroy(p);
}

/* ---------------------------------------------------------------- formats */

/* SHA-256 of config.json followed by model.safetensors (a single-file source), computed here
 * independently of the quantizer's streaming thread. */
static void source_sha(const char *dir, char hex[LT_SHA256_HEX]) {
    lt_sha256_ctx s;
    lt_sha256_init(&s);
    const char *names[] = {"config.json", "model.safetensors"};
    for (int i = 0; i < 2; i++) {
        char p[4096], *buf = NULL;
        int64_t len = 0;
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        CHECK_OK(lt_read_file(p, 1LL << 30, &buf, &len));
        if (buf) lt_sha256_update(&s, buf, (size_t)len);
        free(buf);
    }
    uint8_t d[32];
    lt_sha256_final(&s, d);
    lt_sha256_hex(d, hex);
}

static void test_format(const char *src, lt_qformat f, bool emb, int64_t shard_bytes, const char *tag) {
    const char *fname = lt_qformat_name(f);
    char qdir[4096];
    snprintf(qdir, sizeof qdir, "%s/q_%s_%s", g_tmp, tag, fname);
    rm_rf(qdir);
    lt_load_opts lo = {.quantize = true, .format = f, .quantize_embeddings = emb};
    lt_quantize_dir_opts qo = {.shard_bytes = shard_bytes};
    lt_quantize_stats qs;
    lt_pool *pool;
    CHECK_OK(lt_pool_create(1LL << 30, &pool));
    CHECK_OK(lt_model_quantize_dir(src, &lo, qdir, &qo, pool, &qs));
    /* the quantizer's peak: one f32 tensor and its quantized form, exactly (the pool counts the
       bytes asked for), whatever the model size */
    lt_model_config cfg;
    char cpath[4096];
    snprintf(cpath, sizeof cpath, "%s/config.json", src);
    CHECK_OK(lt_config_load(cpath, &cfg));
    int64_t n = lt_model_weight_specs(&cfg, NULL, 0), max_f32 = 0, max_q = 0;
    lt_weight_spec *specs = calloc((size_t)n, sizeof *specs);
    lt_model_weight_specs(&cfg, specs, n);
    for (int64_t i = 0; i < n; i++) {
        const lt_weight_spec *s = &specs[i];
        bool is_emb = !strcmp(s->name, "model.embed_tokens.weight"), is_lm = !strcmp(s->name, "lm_head.weight");
        if (s->kind != LT_W_MATRIX || (is_emb && !emb) || is_lm || s->shape[1] % lt_qformat_block(f)) continue;
        lt_qlayout L;
        CHECK_OK(lt_qlayout_get(f, s->shape[0], s->shape[1], &L));
        if (L.numel * 4 > max_f32) max_f32 = L.numel * 4;
        if (L.alloc_bytes > max_q) max_q = L.alloc_bytes;
    }
    free(specs);
    lt_pool_stats ps = lt_pool_get_stats(pool);
    CHECKF(ps.high_water == max_f32 + max_q, "%s %s: quantize peak %lld, expected %lld + %lld", tag, fname,
           (long long)ps.high_water, (long long)max_f32, (long long)max_q);
    CHECK(ps.used == 0);
    lt_pool_destroy(pool);
    char tmp_prefix[256];
    snprintf(tmp_prefix, sizeof tmp_prefix, "q_%s_%s.", tag, fname); /* "<out>.tmp-..." */
    CHECK(exists(qdir) && !leftover(tmp_prefix));
    CHECKF(qs.n_files >= 1 && (shard_bytes == 0 || qs.n_files > 1), "%s: %lld files", fname, (long long)qs.n_files);
    if (shard_bytes == 0) { /* one source file: the streamed hash equals the hash of the bytes */
        char want[LT_SHA256_HEX], fp[LT_SHA256_HEX];
        source_sha(src, want);
        CHECKF(!strcmp(qs.source_sha256, want), "%s: source sha %s, expected %s", fname, qs.source_sha256, want);
        CHECK_OK(lt_model_source_fingerprint(src, fp));
        CHECK(!strcmp(fp, qs.source_fingerprint));
    }
    CHECK(lt_model_dir_is_quantized(qdir) && !lt_model_dir_is_quantized(src));

    /* load it: weights in place, the pool holds the charge + plain f32 tensors only */
    CHECK_OK(lt_pool_create(1LL << 30, &pool));
    lt_model *m = NULL;
    const lt_load_opts plain = {.quantize = false};
    CHECK_OK(lt_model_load_opts(qdir, pool, lt_backend_cpu(), &plain, &m));
    if (m) {
        ps = lt_pool_get_stats(pool);
        int64_t n_plain = 0, n_q = 0, n_q64 = 0;
        for (int64_t i = 0; i < m->n_weights; i++) {
            if (m->qw[i].comp[LT_QC_CODES]) {
                n_q++;
                CHECKF(m->qw[i].block == NULL, "%s: %s is not in the mapping", fname, m->specs[i].name);
                n_q64 += (uintptr_t)m->qw[i].comp[LT_QC_CODES] % 64 == 0;
            } else {
                n_plain++;
            }
        }
        CHECKF(n_q == qs.n_quantized && n_q > 0, "%s: %lld quantized loaded, %lld written", fname, (long long)n_q,
               (long long)qs.n_quantized);
        /* every codes size of these configs is a multiple of 64, so the writer's order gives them
           all 64-byte aligned file offsets (and the mapping is page-aligned) */
        CHECKF(n_q64 == n_q, "%s: %lld of %lld codes 64-byte aligned", fname, (long long)n_q64, (long long)n_q);
        CHECKF(ps.n_allocs == n_plain, "%s: %lld pool blocks for %lld plain tensors", fname, (long long)ps.n_allocs,
               (long long)n_plain);
        CHECKF(ps.high_water == lt_model_weight_bytes(m) && ps.tag_high_water[LT_POOL_SCRATCH] == 0,
               "%s: load high-water %lld, weights %lld, scratch %lld", fname, (long long)ps.high_water,
               (long long)lt_model_weight_bytes(m), (long long)ps.tag_high_water[LT_POOL_SCRATCH]);
        lt_quant_summary q = lt_model_quant_summary(m);
        CHECKF(q.quantized_bytes == qs.quantized_bytes && q.n_quantized == qs.n_quantized && q.n_kept == qs.n_kept &&
                   q.n_unaligned == qs.n_unaligned,
               "%s: summary %lld/%lld/%lld vs written %lld/%lld/%lld", fname, (long long)q.n_quantized,
               (long long)q.n_kept, (long long)q.n_unaligned, (long long)qs.n_quantized, (long long)qs.n_kept,
               (long long)qs.n_unaligned);
    }
    lt_model_free(m);
    CHECK(lt_pool_get_stats(pool).used == 0);
    lt_pool_destroy(pool);

    /* bit-identical logits: the directory holds exactly what quantize-on-load computes */
    int64_t V = cfg.vocab_size;
    float *a = malloc(sizeof(float) * NIDS * (size_t)V), *b = malloc(sizeof(float) * NIDS * (size_t)V);
    if (logits_of(src, &lo, a, NULL) && logits_of(qdir, &plain, b, NULL))
        CHECKF(!memcmp(a, b, sizeof(float) * NIDS * (size_t)V), "%s %s: logits differ from quantize-on-load", tag,
               fname);
    /* asking for the stored options works; asking for others is refused */
    lt_load_opts other = {.quantize = true, .format = f == LT_Q_NF4 ? LT_Q_Q8_0 : LT_Q_NF4};
    if (logits_of(qdir, &lo, b, NULL))
        CHECKF(!memcmp(a, b, sizeof(float) * NIDS * (size_t)V), "%s %s: logits with opts differ", tag, fname);
    CHECK_OK(lt_pool_create(1LL << 30, &pool));
    m = NULL;
    CHECK_ERR(lt_model_load_opts(qdir, pool, lt_backend_cpu(), &other, &m), "never quantized again");
    lt_pool_destroy(pool);
    printf("%-6s %-9s %lld files, %lld quantized (%.3f bits/param), %lld kept, source %lld B -> %lld B\n", tag, fname,
           (long long)qs.n_files, (long long)qs.n_quantized,
           qs.params_quantized ? (double)qs.quantized_bytes * 8.0 / (double)qs.params_quantized : 0.0,
           (long long)qs.n_kept, (long long)qs.source_bytes, (long long)qs.out_bytes);
    free(a);
    free(b);
}

/* ---------------------------------------------------------------- the cache */

static void test_cache(const char *src_a, const char *src_b) {
    char cache[4096], junk[4096];
    path_of(cache, sizeof cache, "cache_nf4");
    path_of(junk, sizeof junk, "not_a_cache");
    rm_rf(cache);
    float *a = malloc(sizeof(float) * NIDS * 384), *b = malloc(sizeof(float) * NIDS * 384);
    lt_load_opts on_load = {.quantize = true, .format = LT_Q_NF4};
    lt_load_opts cached = {.quantize = true, .format = LT_Q_NF4, .cache_dir = cache};
    lt_pool_stats ps;
    logits_of(src_a, &on_load, a, NULL);
    /* first use builds the cache (quantizing: SCRATCH used) */
    if (logits_of(src_a, &cached, b, &ps)) {
        CHECK(!memcmp(a, b, sizeof(float) * NIDS * 384));
        CHECK(ps.tag_high_water[LT_POOL_SCRATCH] > 0);
    }
    CHECK(lt_model_dir_is_quantized(cache) && !leftover("cache_nf4.tmp"));
    /* second use maps it: no quantization at all (no SCRATCH), same logits */
    if (logits_of(src_a, &cached, b, &ps)) {
        CHECK(!memcmp(a, b, sizeof(float) * NIDS * 384));
        CHECKF(ps.tag_high_water[LT_POOL_SCRATCH] == 0, "cache reload used %lld scratch bytes",
               (long long)ps.tag_high_water[LT_POOL_SCRATCH]);
    }
    lt_pool *pool;
    lt_model *m = NULL;
    CHECK_OK(lt_pool_create(1LL << 30, &pool));
    /* another source of the same config: refused, naming both */
    lt_status st = lt_model_load_opts(src_b, pool, lt_backend_cpu(), &cached, &m);
    CHECK(st && lt_status_code(st) == LT_ERR_INVALID_ARG);
    if (st) {
        const char *msg = lt_status_msg(st);
        CHECKF(strstr(msg, "/src_a") && strstr(msg, src_b) && strstr(msg, "delete"), "message: %s", msg);
        lt_status_free(st);
    }
    CHECK(m == NULL);
    /* other options: refused */
    lt_load_opts other = cached;
    other.format = LT_Q_MXFP4;
    CHECK_ERR(lt_model_load_opts(src_a, pool, lt_backend_cpu(), &other, &m), "but mxfp4 was asked");
    other = cached;
    other.quantize_embeddings = true;
    CHECK_ERR(lt_model_load_opts(src_a, pool, lt_backend_cpu(), &other, &m), "embeddings: yes");
    /* a directory that is not a cache: refused, untouched */
    rm_rf(junk);
    CHECK_OK(lt_mkdir_p(junk));
    char jf[4200];
    snprintf(jf, sizeof jf, "%s/notes.txt", junk);
    CHECK_OK(lt_write_file_atomic(jf, "x", 1));
    other = cached;
    other.cache_dir = junk;
    CHECK_ERR(lt_model_load_opts(src_a, pool, lt_backend_cpu(), &other, &m), "not a loft quantized model");
    CHECK(exists(jf));
    /* an empty directory is a cache to build */
    rm_rf(junk);
    CHECK_OK(lt_mkdir_p(junk));
    CHECK_OK(lt_model_load_opts(src_a, pool, lt_backend_cpu(), &other, &m));
    lt_model_free(m);
    m = NULL;
    CHECK(lt_model_dir_is_quantized(junk));
    /* the source changed after its cache was built (same path, new weights): refused */
    char src_c[4096];
    make_model(CONFIG, "src_c", 11, src_c, sizeof src_c);
    other.cache_dir = junk;
    rm_rf(junk);
    CHECK_OK(lt_model_load_opts(src_c, pool, lt_backend_cpu(), &other, &m));
    lt_model_free(m);
    m = NULL;
    make_model(CONFIG, "src_c", 12, src_c, sizeof src_c);
    CHECK_ERR(lt_model_load_opts(src_c, pool, lt_backend_cpu(), &other, &m), "it is another model or it changed");
    CHECK(m == NULL);
    rm_rf(junk);
    lt_pool_destroy(pool);
    free(a);
    free(b);
}

/* ---------------------------------------------------------------- damaged directories */

static void copy_dir(const char *from, const char *to) {
    char cmd[9000];
    rm_rf(to);
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", from, to);
    CHECK(system(cmd) == 0);
}

/* Overwrites bytes of tensor name inside dir/model.safetensors. */
static void patch_tensor(const char *dir, const char *name, int64_t at, const void *bytes, size_t n) {
    char p[4200];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    lt_st_file *f = NULL;
    CHECK_OK(lt_st_open(p, &f));
    if (!f) return;
    const lt_st_tensor *t = lt_st_find(f, name);
    CHECKF(t != NULL, "no tensor %s", name);
    int64_t last = lt_st_get(f, lt_st_count(f) - 1)->end;
    struct stat sb;
    stat(p, &sb);
    int64_t off = t ? (int64_t)sb.st_size - last + t->begin + at : 0;
    lt_st_close(f);
    int fd = open(p, O_WRONLY);
    CHECK(fd >= 0 && pwrite(fd, bytes, n, off) == (ssize_t)n);
    if (fd >= 0) close(fd);
}

/* Rewrites dir/model.safetensors (a copy of src_dir) with a generic writer, from the tensors and
 * metadata of src_dir's file, changed by mode: 0 drops "model.layers.0.mlp.up_proj.weight.absmax",
 * 1 adds "extra.weight", 2 declares "model.norm.weight" as I16 (same bytes), 3 sets loft.version
 * to "2", 4 writes "model.layers.0.input_layernorm.weight" first and the F32 tensors after it. */
static void rewrite(const char *src_dir, const char *dir, int mode) {
    copy_dir(src_dir, dir);
    char p[4200];
    snprintf(p, sizeof p, "%s/model.safetensors", src_dir);
    lt_st_file *f = NULL;
    CHECK_OK(lt_st_open(p, &f));
    if (!f) return;
    int64_t n = lt_st_count(f), k = 0, nm = lt_st_metadata_count(f);
    lt_st_entry *e = calloc((size_t)n + 1, sizeof *e);
    lt_st_meta *meta = calloc((size_t)nm, sizeof *meta);
    static const uint8_t odd[3] = {1, 2, 3};
    for (int pass = 0; pass < 3; pass++) /* mode 4: the norm, then F32, then the rest; else one pass */
        for (int64_t i = 0; i < n; i++) {
            const lt_st_tensor *t = lt_st_get(f, i);
            int group = !strcmp(t->name, "model.layers.0.input_layernorm.weight") ? 0
                        : !strcmp(t->dtype_name, "F32")                           ? 1
                                                                                  : 2;
            if ((mode == 4 ? group : 0) != pass) continue;
            if (mode == 0 && !strcmp(t->name, "model.layers.0.mlp.up_proj.weight.absmax")) continue;
            e[k] = (lt_st_entry){.name = t->name, .dtype_name = t->dtype_name, .ndim = t->ndim, .data = t->data};
            for (int d = 0; d < t->ndim; d++) e[k].shape[d] = t->shape[d];
            if (mode == 2 && !strcmp(t->name, "model.norm.weight")) e[k].dtype_name = "I16";
            k++;
        }
    if (mode == 1)
        e[k++] = (lt_st_entry){.name = "extra.weight", .dtype_name = "U8", .ndim = 1, .shape = {3}, .data = odd};
    for (int64_t i = 0; i < nm; i++) {
        lt_st_metadata_get(f, i, &meta[i].key, &meta[i].value);
        if (mode == 3 && !strcmp(meta[i].key, "loft.version")) meta[i].value = "2";
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    CHECK_OK(lt_st_write(p, e, k, meta, nm));
    free(e);
    free(meta);
    lt_st_close(f);
}

static void test_damaged(const char *src) {
    char qdir[4096], bad[4096];
    path_of(qdir, sizeof qdir, "q_dmg");
    path_of(bad, sizeof bad, "q_bad");
    rm_rf(qdir);
    lt_load_opts lo = {.quantize = true, .format = LT_Q_NF4_NODQ};
    lt_pool *pool;
    lt_model *m = NULL;
    CHECK_OK(lt_pool_create(1LL << 30, &pool));
    CHECK_OK(lt_model_quantize_dir(src, &lo, qdir, NULL, pool, NULL));
    const lt_load_opts plain = {.quantize = false};

    /* truncated: the reader refuses it naming the file */
    copy_dir(qdir, bad);
    char p[4200];
    snprintf(p, sizeof p, "%s/model.safetensors", bad);
    struct stat sb;
    CHECK(stat(p, &sb) == 0 && truncate(p, sb.st_size - 100) == 0);
    CHECK_ERR(lt_model_load_opts(bad, pool, lt_backend_cpu(), &plain, &m), "model.safetensors");
    /* a NaN block scale: lt_qtensor_validate names the weight */
    copy_dir(qdir, bad);
    const float nan = NAN;
    patch_tensor(bad, "model.layers.1.self_attn.v_proj.weight.absmax", 4 * 3, &nan, 4);
    CHECK_ERR(lt_model_load_opts(bad, pool, lt_backend_cpu(), &plain, &m), "model.layers.1.self_attn.v_proj.weight");
    /* a missing component, an unexpected tensor, a wrong dtype, a newer layout */
    rewrite(qdir, bad, 0);
    CHECK_ERR(lt_model_load_opts(bad, pool, lt_backend_cpu(), &plain, &m), "up_proj.weight.absmax\" (F32");
    rewrite(qdir, bad, 1);
    CHECK_ERR(lt_model_load_opts(bad, pool, lt_backend_cpu(), &plain, &m), "unexpected tensor \"extra.weight\"");
    rewrite(qdir, bad, 2);
    CHECK_ERR(lt_model_load_opts(bad, pool, lt_backend_cpu(), &plain, &m), "has dtype I16");
    rewrite(qdir, bad, 3);
    CHECK_ERR(lt_model_load_opts(bad, pool, lt_backend_cpu(), &plain, &m), "layout version 2");
    CHECK(m == NULL && lt_pool_get_stats(pool).used == 0);
    lt_pool_destroy(pool);
    rm_rf(bad);
}

/* A generic writer's order can leave an F32 component at an address that is not a multiple of 4
 * (here after a 126-byte bf16 norm of a model with hidden size 63): that weight is copied into the
 * pool, the others stay mapped, and the logits do not change. */
static void test_misaligned(void) {
    static const char *odd_cfg =
        "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 64, \"hidden_size\": 63,"
        " \"intermediate_size\": 128, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"head_dim\": 32,"
        " \"num_key_value_heads\": 2, \"initializer_range\": 0.1, \"tie_word_embeddings\": false}";
    char src[4096], qdir[4096], bad[4096];
    make_model(odd_cfg, "src_odd", 9, src, sizeof src);
    path_of(qdir, sizeof qdir, "q_odd");
    path_of(bad, sizeof bad, "q_odd_moved");
    rm_rf(qdir);
    lt_load_opts lo = {.quantize = true, .format = LT_Q_NF4};
    lt_pool *pool;
    CHECK_OK(lt_pool_create(1LL << 30, &pool));
    CHECK_OK(lt_model_quantize_dir(src, &lo, qdir, NULL, pool, NULL));
    rewrite(qdir, bad, 4);
    const lt_load_opts plain = {.quantize = false};
    lt_model *m = NULL;
    CHECK_OK(lt_model_load_opts(bad, pool, lt_backend_cpu(), &plain, &m));
    int64_t copied = 0, mapped = 0;
    for (int64_t i = 0; m && i < m->n_weights; i++) {
        if (!m->qw[i].comp[LT_QC_CODES]) continue;
        if (m->qw[i].block)
            copied++;
        else
            mapped++;
        for (int s = 0; s < LT_QC_COUNT; s++) /* the F32 components: absmax2, offset */
            if (m->qw[i].comp[s] && (s == LT_QC_SCALES2 || s == LT_QC_TENSOR))
                CHECK((uintptr_t)m->qw[i].comp[s] % 4 == 0);
    }
    /* o_proj [63, 64] and down_proj [63, 128] are the only block-aligned Linears: both have F32
       components placed after the odd norm */
    CHECKF(copied == 2 && mapped == 0, "%lld copied, %lld mapped", (long long)copied, (long long)mapped);
    lt_model_free(m);
    lt_pool_destroy(pool);
    float a[NIDS * 64], b[NIDS * 64];
    if (logits_of(qdir, &plain, a, NULL) && logits_of(bad, &plain, b, NULL)) CHECK(!memcmp(a, b, sizeof a));
    if (logits_of(src, &lo, b, NULL)) CHECK(!memcmp(a, b, sizeof a));
}

/* ---------------------------------------------------------------- atomic writes */

static void test_atomic(const char *src) {
    char nan_src[4096], out[4096], p[4200];
    path_of(out, sizeof out, "q_atomic");
    rm_rf(out);
    lt_load_opts lo = {.quantize = true, .format = LT_Q_NF4};
    lt_pool *pool;
    CHECK_OK(lt_pool_create(1LL << 30, &pool));
    /* a NaN in a source weight: the error names it, nothing is left behind */
    make_model(CONFIG, "src_nan", 3, nan_src, sizeof nan_src);
    const uint16_t bf16_nan = 0x7FC0;
    patch_tensor(nan_src, "model.layers.1.mlp.down_proj.weight", 2 * 1000, &bf16_nan, 2);
    CHECK_ERR(lt_model_quantize_dir(nan_src, &lo, out, NULL, pool, NULL), "model.layers.1.mlp.down_proj.weight");
    CHECK(!exists(out) && !leftover("q_atomic."));
    /* the same through the cache: no cache is left */
    lt_load_opts cached = lo;
    cached.cache_dir = out;
    lt_model *m = NULL;
    CHECK_ERR(lt_model_load_opts(nan_src, pool, lt_backend_cpu(), &cached, &m), "is NaN");
    CHECK(!exists(out) && !leftover("q_atomic."));
    lt_pool_destroy(pool);
    /* a budget too small for one f32 tensor */
    CHECK_OK(lt_pool_create(100000, &pool));
    CHECK_ERR(lt_model_quantize_dir(src, &lo, out, NULL, pool, NULL), "memory budget exceeded");
    CHECK(!exists(out) && !leftover("q_atomic."));
    lt_pool_destroy(pool);
    /* an existing non-empty output: refused, untouched; replaced with force */
    CHECK_OK(lt_pool_create(1LL << 30, &pool));
    CHECK_OK(lt_mkdir_p(out));
    snprintf(p, sizeof p, "%s/old.txt", out);
    CHECK_OK(lt_write_file_atomic(p, "old", 3));
    CHECK_ERR(lt_model_quantize_dir(src, &lo, out, NULL, pool, NULL), "not empty; pass --force");
    CHECK(exists(p));
    lt_quantize_dir_opts force = {.force = true};
    CHECK_OK(lt_model_quantize_dir(src, &lo, out, &force, pool, NULL));
    CHECK(!exists(p) && lt_model_dir_is_quantized(out) && !leftover("q_atomic."));
    /* the source itself, or a quantized directory as a source: refused */
    CHECK_ERR(lt_model_quantize_dir(src, &lo, src, &force, pool, NULL), "is the source");
    char out2[4096];
    path_of(out2, sizeof out2, "q_atomic2");
    CHECK_ERR(lt_model_quantize_dir(out, &lo, out2, NULL, pool, NULL), "already a loft quantized model");
    CHECK(!exists(out2));
    lt_pool_destroy(pool);
    rm_rf(out);
    rm_rf(nan_src);
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "%s/test_qcache", lt_test_tmpdir());
    rm_rf(g_tmp);
    CHECK_OK(lt_mkdir_p(g_tmp));
    test_sha256();
    test_pool_charge();

    char src_a[4096], src_b[4096], src_q3[4096];
    make_model(CONFIG, "src_a", 5, src_a, sizeof src_a);
    make_model(CONFIG, "src_b", 6, src_b, sizeof src_b); /* same config, other weights */
    make_model(CONFIG_QWEN3, "src_q3", 7, src_q3, sizeof src_q3);
    {
        char a[LT_SHA256_HEX], b[LT_SHA256_HEX], a2[LT_SHA256_HEX];
        CHECK_OK(lt_model_source_fingerprint(src_a, a));
        CHECK_OK(lt_model_source_fingerprint(src_b, b));
        CHECK_OK(lt_model_source_fingerprint(src_a, a2));
        CHECK(strcmp(a, b) != 0 && !strcmp(a, a2));
    }
    const lt_qformat formats[] = {LT_Q_NF4, LT_Q_NF4_NODQ, LT_Q_MXFP4, LT_Q_NVFP4, LT_Q_Q8_0, LT_Q_BF16};
    for (size_t k = 0; k < sizeof formats / sizeof formats[0]; k++) test_format(src_a, formats[k], false, 0, "llama");
    /* shards + index; embeddings quantized */
    test_format(src_a, LT_Q_Q8_0, true, 300 * 1000, "shards");
    /* tied embeddings quantized, an unaligned intermediate size kept */
    test_format(src_q3, LT_Q_NF4, true, 0, "qwen3");
    test_cache(src_a, src_b);
    test_damaged(src_a);
    test_misaligned();
    test_atomic(src_a);
    TEST_MAIN_END();
}
