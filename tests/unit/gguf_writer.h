/* A tiny GGUF v3 writer for tests: builds a file image in memory, independent of loft's reader
 * (written from specs/files.md §4, not from src/io/gguf.c). It records where each field landed
 * so that malformed-file tests can patch single fields of an otherwise valid file.
 *
 *   gw w; gw_init(&w, 32);
 *   gw_kv_str(&w, "general.architecture", "llama");
 *   gw_tensor(&w, "a", LT_GGML_F32, 2, (uint64_t[]){4, 3}, data, 48);
 *   size_t len; uint8_t *img = gw_build(&w, &len);   // malloc'd; w.pos_* filled
 *   ... free(img); gw_free(&w);
 */
#ifndef LT_TEST_GGUF_WRITER_H
#define LT_TEST_GGUF_WRITER_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GW_MAX_T 64

typedef struct gw_buf {
    uint8_t *b;
    size_t n, cap;
} gw_buf;

static inline void gw_put(gw_buf *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n) c *= 2;
        b->b = realloc(b->b, c);
        if (!b->b) abort();
        b->cap = c;
    }
    if (n) memcpy(b->b + b->n, p, n);
    b->n += n;
}
static inline void gw_u8(gw_buf *b, uint8_t v) { gw_put(b, &v, 1); }
static inline void gw_u32(gw_buf *b, uint32_t v) { gw_put(b, &v, 4); } /* little-endian host */
static inline void gw_u64(gw_buf *b, uint64_t v) { gw_put(b, &v, 8); }
static inline void gw_strn(gw_buf *b, const char *s, size_t n) {
    gw_u64(b, n);
    gw_put(b, s, n);
}
static inline void gw_str(gw_buf *b, const char *s) { gw_strn(b, s, strlen(s)); }

typedef struct gw_t {
    char name[128];
    uint32_t type;
    int nd;
    uint64_t ne[4];
    const void *data;
    size_t nbytes;
} gw_t;

typedef struct gw {
    gw_buf kv;
    uint64_t n_kv;
    gw_t t[GW_MAX_T];
    int n_t;
    uint64_t align; /* layout alignment (write general.alignment yourself when it is not 32) */
    uint32_t version;
    /* filled by gw_build: file offsets */
    size_t pos_kv;              /* first kv */
    size_t pos_tinfo[GW_MAX_T]; /* start of each tensor info (its name length) */
    size_t pos_ndims[GW_MAX_T], pos_dims[GW_MAX_T], pos_type[GW_MAX_T], pos_off[GW_MAX_T];
    size_t data_start;
    uint64_t off[GW_MAX_T]; /* data offsets (relative) */
    void *owned[GW_MAX_T];  /* tensor data allocated by gw_tensor_fill, freed by gw_free */
} gw;

static inline void gw_init(gw *w, uint64_t align) {
    memset(w, 0, sizeof *w);
    w->align = align;
    w->version = 3;
}
static inline void gw_free(gw *w) {
    free(w->kv.b);
    for (int i = 0; i < GW_MAX_T; i++) free(w->owned[i]);
}

static inline void gw_kv_head(gw *w, const char *key, uint32_t type) {
    gw_str(&w->kv, key);
    gw_u32(&w->kv, type);
    w->n_kv++;
}
static inline void gw_kv_u8(gw *w, const char *k, uint8_t v) { gw_kv_head(w, k, 0), gw_u8(&w->kv, v); }
static inline void gw_kv_i8(gw *w, const char *k, int8_t v) { gw_kv_head(w, k, 1), gw_put(&w->kv, &v, 1); }
static inline void gw_kv_u16(gw *w, const char *k, uint16_t v) { gw_kv_head(w, k, 2), gw_put(&w->kv, &v, 2); }
static inline void gw_kv_i16(gw *w, const char *k, int16_t v) { gw_kv_head(w, k, 3), gw_put(&w->kv, &v, 2); }
static inline void gw_kv_u32(gw *w, const char *k, uint32_t v) { gw_kv_head(w, k, 4), gw_u32(&w->kv, v); }
static inline void gw_kv_i32(gw *w, const char *k, int32_t v) { gw_kv_head(w, k, 5), gw_put(&w->kv, &v, 4); }
static inline void gw_kv_f32(gw *w, const char *k, float v) { gw_kv_head(w, k, 6), gw_put(&w->kv, &v, 4); }
static inline void gw_kv_bool(gw *w, const char *k, uint8_t v) { gw_kv_head(w, k, 7), gw_u8(&w->kv, v); }
static inline void gw_kv_str(gw *w, const char *k, const char *v) { gw_kv_head(w, k, 8), gw_str(&w->kv, v); }
static inline void gw_kv_u64(gw *w, const char *k, uint64_t v) { gw_kv_head(w, k, 10), gw_u64(&w->kv, v); }
static inline void gw_kv_i64(gw *w, const char *k, int64_t v) { gw_kv_head(w, k, 11), gw_put(&w->kv, &v, 8); }
static inline void gw_kv_f64(gw *w, const char *k, double v) { gw_kv_head(w, k, 12), gw_put(&w->kv, &v, 8); }
/* An array of fixed-size elements: n elements of esz bytes at p. */
static inline void gw_kv_arr(gw *w, const char *k, uint32_t elem, uint64_t n, const void *p, size_t esz) {
    gw_kv_head(w, k, 9);
    gw_u32(&w->kv, elem);
    gw_u64(&w->kv, n);
    gw_put(&w->kv, p, (size_t)n * esz);
}
static inline void gw_kv_arr_str(gw *w, const char *k, uint64_t n, const char *const *v) {
    gw_kv_head(w, k, 9);
    gw_u32(&w->kv, 8);
    gw_u64(&w->kv, n);
    for (uint64_t i = 0; i < n; i++) gw_str(&w->kv, v[i]);
}

static inline void gw_tensor(gw *w, const char *name, uint32_t type, int nd, const uint64_t *ne, const void *data,
                             size_t nbytes) {
    if (w->n_t >= GW_MAX_T) abort();
    gw_t *t = &w->t[w->n_t++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->type = type;
    t->nd = nd;
    for (int d = 0; d < nd && d < 4; d++) t->ne[d] = ne[d];
    t->data = data;
    t->nbytes = nbytes;
}

/* Bytes of a ggml tensor of ne (row = ne[0] elements of the type's blocks). */
static inline size_t gw_nbytes(uint32_t type, int nd, const uint64_t *ne) {
    static const struct {
        uint32_t type, block, bytes;
    } tt[] = {{0, 1, 4}, {1, 1, 2}, {2, 32, 18}, {3, 32, 20}, {8, 32, 34}, {12, 256, 144}, {14, 256, 210}, {30, 1, 2}};
    size_t n = 0;
    for (size_t i = 0; i < sizeof tt / sizeof tt[0]; i++)
        if (tt[i].type == type) n = (size_t)ne[0] / tt[i].block * tt[i].bytes;
    for (int d = 1; d < nd; d++) n *= (size_t)ne[d];
    return n;
}

/* A tensor whose data the writer owns: byte i = (i * 7 + seed) & 0xFF (arbitrary contents; scales
 * may be NaN: the parser does not look at values). */
static inline void gw_tensor_fill(gw *w, const char *name, uint32_t type, int nd, const uint64_t *ne, int seed) {
    size_t n = gw_nbytes(type, nd, ne);
    uint8_t *p = malloc(n ? n : 1);
    if (!p) abort();
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)((i * 7 + (size_t)seed) & 0xFF);
    w->owned[w->n_t] = p;
    gw_tensor(w, name, type, nd, ne, p, n);
}

/* rope_freqs.weight as llama.cpp's converter writes it for Llama-3 rope scaling: frequencies in
 * float32 (torch), wavelengths and divisors in double (Python), stored as float32. */
static inline void gw_llama3_freqs(float theta, int hd, double factor, double low, double high, double orig,
                                   float *out) {
    for (int i = 0; i < hd / 2; i++) {
        float fr = 1.0f / powf(theta, (float)(2 * i) / (float)hd);
        double wl = 2.0 * 3.141592653589793 / (double)fr, d;
        if (wl < orig / high)
            d = 1.0;
        else if (wl > orig / low)
            d = factor;
        else {
            double s = (orig / wl - low) / (high - low);
            d = 1.0 / ((1.0 - s) / factor + s);
        }
        out[i] = (float)d;
    }
}

/* A Llama-family model's metadata and tensors (contents arbitrary). */
typedef struct gw_model {
    const char *arch; /* "llama", "qwen2", "qwen3" */
    uint64_t hidden, inter, layers, heads, kv_heads, head_dim, vocab, ctx;
    bool tied, write_key_length, counts_u64, write_tokens, eps_f64;
    float eps, theta;
    uint32_t wtype;          /* type of 2-D weights (F32 for token_embd) */
    const float *rope_freqs; /* head_dim/2 divisors, or NULL */
    int64_t rope_orig;       /* > 0: {arch}.rope.scaling.original_context_length */
    int64_t bos, eos, eot;   /* -1: not written */
    const char *skip;        /* a metadata name ("block_count", ...) or tensor part not to write */
    bool no_extras;          /* leave out Qwen2's biases and Qwen3's q/k norms */
} gw_model;

static inline void gw_count(gw *w, const gw_model *m, const char *name, uint64_t v) {
    char k[128];
    if (m->skip && !strcmp(m->skip, name)) return;
    snprintf(k, sizeof k, "%s.%s", m->arch, name);
    if (m->counts_u64)
        gw_kv_u64(w, k, v);
    else
        gw_kv_u32(w, k, (uint32_t)v);
}

static inline void gw_model_build(gw *w, const gw_model *m) {
    char k[128];
    bool qwen2 = !strcmp(m->arch, "qwen2") && !m->no_extras, qwen3 = !strcmp(m->arch, "qwen3") && !m->no_extras;
    uint64_t hd = m->head_dim ? m->head_dim : m->hidden / m->heads;
    if (!(m->skip && !strcmp(m->skip, "general.architecture"))) gw_kv_str(w, "general.architecture", m->arch);
    gw_kv_str(w, "general.name", "tiny test model");
    gw_count(w, m, "embedding_length", m->hidden);
    gw_count(w, m, "block_count", m->layers);
    gw_count(w, m, "feed_forward_length", m->inter);
    gw_count(w, m, "attention.head_count", m->heads);
    gw_count(w, m, "attention.head_count_kv", m->kv_heads);
    gw_count(w, m, "context_length", m->ctx);
    if (m->write_key_length) gw_count(w, m, "attention.key_length", hd);
    snprintf(k, sizeof k, "%s.attention.layer_norm_rms_epsilon", m->arch);
    if (m->eps_f64)
        gw_kv_f64(w, k, m->eps);
    else
        gw_kv_f32(w, k, m->eps);
    snprintf(k, sizeof k, "%s.rope.freq_base", m->arch);
    if (!(m->skip && !strcmp(m->skip, "rope.freq_base"))) gw_kv_f32(w, k, m->theta);
    if (m->rope_orig > 0) gw_count(w, m, "rope.scaling.original_context_length", (uint64_t)m->rope_orig);
    gw_kv_str(w, "tokenizer.ggml.model", "gpt2");
    if (m->write_tokens) {
        const char **tok = malloc(m->vocab * sizeof *tok);
        char *store = malloc(m->vocab * 24);
        for (uint64_t i = 0; i < m->vocab; i++) {
            snprintf(store + 24 * i, 24, "t%llu", (unsigned long long)i);
            tok[i] = store + 24 * i;
        }
        gw_kv_arr_str(w, "tokenizer.ggml.tokens", m->vocab, tok);
        free(tok);
        free(store);
    }
    if (m->bos >= 0) gw_kv_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)m->bos);
    if (m->eos >= 0) gw_kv_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)m->eos);
    if (m->eot >= 0) gw_kv_u32(w, "tokenizer.ggml.eot_token_id", (uint32_t)m->eot);
    int seed = 1;
    if (!(m->skip && !strcmp(m->skip, "token_embd")))
        gw_tensor_fill(w, "token_embd.weight", 0, 2, (uint64_t[]){m->hidden, m->vocab}, seed++);
    gw_tensor_fill(w, "output_norm.weight", 0, 1, (uint64_t[]){m->hidden}, seed++);
    if (!m->tied) gw_tensor_fill(w, "output.weight", m->wtype, 2, (uint64_t[]){m->hidden, m->vocab}, seed++);
    if (m->rope_freqs) gw_tensor(w, "rope_freqs.weight", 0, 1, (uint64_t[]){hd / 2}, m->rope_freqs, hd / 2 * 4);
    for (uint64_t l = 0; l < m->layers; l++) {
        char n[96];
#define GW_T(part, type, nd, ...)                                                                                      \
    snprintf(n, sizeof n, "blk.%llu.%s", (unsigned long long)l, part);                                                 \
    gw_tensor_fill(w, n, type, nd, (uint64_t[]){__VA_ARGS__}, seed++)
        GW_T("attn_norm.weight", 0, 1, m->hidden);
        GW_T("attn_q.weight", m->wtype, 2, m->hidden, m->heads * hd);
        GW_T("attn_k.weight", m->wtype, 2, m->hidden, m->kv_heads * hd);
        GW_T("attn_v.weight", m->wtype, 2, m->hidden, m->kv_heads * hd);
        GW_T("attn_output.weight", m->wtype, 2, m->heads * hd, m->hidden);
        if (qwen2) {
            GW_T("attn_q.bias", 0, 1, m->heads * hd);
            GW_T("attn_k.bias", 0, 1, m->kv_heads * hd);
            GW_T("attn_v.bias", 0, 1, m->kv_heads * hd);
        }
        if (qwen3) {
            GW_T("attn_q_norm.weight", 0, 1, hd);
            GW_T("attn_k_norm.weight", 0, 1, hd);
        }
        GW_T("ffn_norm.weight", 0, 1, m->hidden);
        GW_T("ffn_gate.weight", m->wtype, 2, m->hidden, m->inter);
        GW_T("ffn_up.weight", m->wtype, 2, m->hidden, m->inter);
        GW_T("ffn_down.weight", m->wtype, 2, m->inter, m->hidden);
#undef GW_T
    }
}

static inline size_t gw_align_up(size_t x, uint64_t a) { return (x + (size_t)a - 1) / (size_t)a * (size_t)a; }

/* The whole image: header, kvs, tensor infos (offsets dense in order, each aligned), zero padding
 * to the alignment, data (zero padding between tensors). */
static inline uint8_t *gw_build(gw *w, size_t *len) {
    gw_buf b = {0};
    gw_put(&b, "GGUF", 4);
    gw_u32(&b, w->version);
    gw_u64(&b, (uint64_t)w->n_t);
    gw_u64(&b, w->n_kv);
    w->pos_kv = b.n;
    gw_put(&b, w->kv.b, w->kv.n);
    uint64_t off = 0;
    for (int i = 0; i < w->n_t; i++) {
        gw_t *t = &w->t[i];
        w->pos_tinfo[i] = b.n;
        gw_str(&b, t->name);
        w->pos_ndims[i] = b.n;
        gw_u32(&b, (uint32_t)t->nd);
        w->pos_dims[i] = b.n;
        for (int d = 0; d < t->nd; d++) gw_u64(&b, t->ne[d]);
        w->pos_type[i] = b.n;
        gw_u32(&b, t->type);
        w->pos_off[i] = b.n;
        gw_u64(&b, off);
        w->off[i] = off;
        off = gw_align_up((size_t)(off + t->nbytes), w->align);
    }
    size_t ds = gw_align_up(b.n, w->align);
    while (b.n < ds) gw_u8(&b, 0);
    w->data_start = ds;
    for (int i = 0; i < w->n_t; i++) {
        while (b.n < ds + w->off[i]) gw_u8(&b, 0);
        gw_put(&b, w->t[i].data, w->t[i].nbytes);
    }
    if (w->n_t)
        while (b.n < ds + off) gw_u8(&b, 0);
    *len = b.n;
    return b.b;
}

#endif
