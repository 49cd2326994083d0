/* model — the Llama-family stack (Llama 2/3, Mistral, Qwen2/2.5, Qwen3): weight layout, forward
 * with a KV cache, sampling and generation, and random-weight model directories for tests.
 *
 * Usage:
 *   lt_model *m; lt_status st = lt_model_load("models/tiny", pool, lt_backend_cpu(), &m);
 *   lt_kv_cache *kv; st = lt_kv_create(m, pool, 512, &kv);
 *   st = lt_model_forward(m, kv, ids, n, logits, true);     // logits [n, vocab]
 *   lt_kv_free(kv); lt_model_free(m);
 *
 * Ownership: the model holds its weights in the pool (tag WEIGHTS) and frees them in
 * lt_model_free; the KV cache holds tag KV; per-call activations use tag ACTIVATIONS.
 * The model never calls CUDA directly: all math goes through the backend vtable.
 */
#ifndef LT_MODEL_H
#define LT_MODEL_H

#include "backend/backend.h"
#include "core/core.h"
#include "io/io.h"
#include "pool/pool.h"
#include "quant/quant.h"

/* ---------------------------------------------------------------- weight layout */

typedef enum lt_weight_kind {
    LT_W_MATRIX = 0, /* Linear weight or embedding: random normal(0, initializer_range) */
    LT_W_NORM,       /* RMSNorm gain: ones */
    LT_W_BIAS,       /* bias: zeros in HF init; make-model draws normal so tests exercise it */
} lt_weight_kind;

typedef struct lt_weight_spec {
    char name[96];
    int ndim;
    int64_t shape[2];
    lt_weight_kind kind;
} lt_weight_spec;

/* Every tensor an HF checkpoint of this config holds, in a fixed order (embedding, layers,
 * final norm, lm_head unless tied). Returns the count; fills at most cap specs (specs may be
 * NULL to count). */
int64_t lt_model_weight_specs(const lt_model_config *cfg, lt_weight_spec *specs, int64_t cap);

/* ---------------------------------------------------------------- loading and forward */

typedef struct lt_model lt_model;
typedef struct lt_kv_cache lt_kv_cache;

/* Loads config.json and the safetensors weights of dir (F32/BF16/F16 accepted, converted to f32
 * in the pool). Every expected tensor must be present with the expected shape; unexpected
 * tensors are refused by name. */
lt_status lt_model_load(const char *dir, lt_pool *pool, const lt_backend *be, lt_model **out);

/* How the weights are held. Default (zeroed struct): every weight f32. With quantize, each
 * Linear weight (q/k/v/o, gate/up/down; the embedding and lm_head only when asked) is quantized
 * into the pool as it is read — one tensor at a time through an f32 scratch buffer, so the peak
 * is the quantized model plus one tensor — and the forward pass reads it with the backend's
 * qlinear. Norms, biases and weights whose input size is not a multiple of the format's block
 * stay f32 (the latter are counted in lt_model_quant_summary). */
typedef struct lt_load_opts {
    bool quantize;
    lt_qformat format;
    bool quantize_embeddings; /* the token embedding table (and lm_head when tied) */
    bool quantize_lm_head;    /* an untied lm_head */
    /* With quantize: a quantized-cache directory (see lt_model_quantize_dir). Loaded by mmap when it
       exists and was made from this source with these options; written first when absent; a cache
       made from a different source or with other options is refused. NULL: no cache. */
    const char *cache_dir;
} lt_load_opts;

lt_status lt_model_load_opts(const char *dir, lt_pool *pool, const lt_backend *be, const lt_load_opts *opts,
                             lt_model **out);
/* (added) A copy of loaded model src in another backend's memory: every weight (f32 or quantized, the
 * same formats) allocated from pool and filled with be->copy_in, the RoPE table too. For the GPU:
 * pool is the pool lt_cuda_init made device memory, be = lt_backend_cuda(). Free with lt_model_free. */
lt_status lt_model_copy(const lt_model *src, lt_pool *pool, const lt_backend *be, lt_model **out);
/* (added) Parameters of every weight (embedding, Linears, norms, lm_head unless tied). */
int64_t lt_model_n_params(const lt_model *m);
/* (added) Weight i (0 <= i < lt_model_n_qweights) when held quantized, else NULL (benchmarks). */
int64_t lt_model_n_qweights(const lt_model *m);
const lt_qtensor *lt_model_qweight(const lt_model *m, int64_t i);
/* Loads a GGUF v3 file (llama, qwen2, qwen3; F32/F16/BF16/Q8_0/Q4_0/Q4_1/Q4_K/Q6_K tensors), or
 * the only *.gguf of a directory, held as opts says: f32, or quantized to opts->format (a Q8_0
 * tensor with format Q8_0 keeps its blocks byte for byte; others are dequantized and quantized
 * again). llama q/k rows are put back in HF order. lt_model_load_opts calls this when its dir is
 * a file or a directory without config.json. */
lt_status lt_model_load_gguf(const char *path, lt_pool *pool, const lt_backend *be, const lt_load_opts *opts,
                             lt_model **out);
/* Counts of weights held quantized and kept f32 (matrices only), and their bytes in the pool. */
typedef struct lt_quant_summary {
    int64_t n_quantized, n_kept, n_unaligned; /* n_unaligned: wanted but input size not a block multiple */
    int64_t quantized_bytes, f32_bytes;
} lt_quant_summary;
lt_quant_summary lt_model_quant_summary(const lt_model *m);
/* Writes the weights the forward pass actually uses (quantized ones dequantized) as an f32 HF
 * model directory (config.json + safetensors), one tensor in memory at a time: for reference
 * checks and for measuring quantization error with other tools. */
lt_status lt_model_save_effective(const lt_model *m, const char *dir);
void lt_model_free(lt_model *m);
const lt_model_config *lt_model_get_config(const lt_model *m);
int64_t lt_model_weight_bytes(const lt_model *m);

lt_status lt_kv_create(const lt_model *m, lt_pool *pool, int64_t max_tokens, lt_kv_cache **out);
void lt_kv_free(lt_kv_cache *kv);
void lt_kv_reset(lt_kv_cache *kv);
int64_t lt_kv_len(const lt_kv_cache *kv);
/* Forgets every row from len on (no-op when len >= the current length): a chat keeps the cached
 * prefix its next prompt shares with the previous one. */
void lt_kv_truncate(lt_kv_cache *kv, int64_t len);
int64_t lt_kv_capacity(const lt_kv_cache *kv);

/* Feeds n tokens at positions kv_len..kv_len+n-1 and appends them to the cache.
 * logits: [n, vocab] when all_logits, else [vocab] for the last token; may be NULL.
 * Refuses ids outside [0, vocab) and n that would overflow the cache. */
lt_status lt_model_forward(lt_model *m, lt_kv_cache *kv, const int32_t *ids, int64_t n, float *logits,
                           bool all_logits);

/* ---------------------------------------------------------------- quantized model directories */

/* (added) `loft quantize` output, also the quantized cache of lt_load_opts.cache_dir (qcache.c,
 * qcache_write.c). An HF-style directory: config.json (the source's bytes) and the tokenizer /
 * generation files copied, safetensors files (model.safetensors, or shards + index) in which every
 * weight lt_model_want_quant picks is stored already quantized, as its components
 * "<weight>.<component>" (e.g. "model.layers.0.mlp.up_proj.weight.codes", ".absmax_q", ".absmax2",
 * ".offset"; names, dtypes and byte sizes from lt_qlayout_get; codes and block scales shaped
 * [rows, n / rows], the rest 1-D), and every other tensor in its source dtype. Each file's
 * __metadata__ holds loft.version ("1"), loft.format ("nf4", ...), loft.block (elements per
 * block), loft.quantize_embeddings and loft.quantize_lm_head ("true"/"false"),
 * loft.source_sha256 (see lt_quantize_stats), loft.source_fingerprint
 * (lt_model_source_fingerprint) and loft.source (the source path, for messages).
 * Every component starts at a file offset that is a multiple of its dtype size (the largest run
 * of them at 64 bytes), so loading maps the files and points the quantized weights into the
 * mapping: no re-quantization, no copy; the mapped bytes are charged to the pool (tag WEIGHTS). */

typedef struct lt_quantize_stats {
    int64_t n_tensors;        /* tensors written (each component counts once) */
    int64_t n_quantized;      /* weights stored quantized */
    int64_t n_kept;           /* matrices kept in their source dtype (embedding, lm_head, unaligned) */
    int64_t n_unaligned;      /* of those: wanted, but the input size is not a block multiple */
    int64_t params_quantized; /* elements of the quantized weights */
    int64_t quantized_bytes;  /* their stored bytes */
    int64_t kept_bytes;       /* bytes of every tensor kept in its source dtype */
    int64_t source_bytes;     /* bytes of the source's safetensors files */
    int64_t out_bytes;        /* bytes of the written safetensors files */
    int64_t n_files;          /* safetensors files written */
    /* SHA-256 over config.json's bytes followed by every source safetensors file's bytes, whole,
       in shard-name order (computed on a second thread while quantizing) */
    char source_sha256[LT_SHA256_HEX];
    char source_fingerprint[LT_SHA256_HEX];
    double seconds;
} lt_quantize_stats;

/* Called after each source tensor: done of total tensors, bytes of the source read so far. */
typedef void (*lt_quantize_progress)(void *ctx, int64_t done, int64_t total, const char *name, int64_t bytes_done,
                                     int64_t bytes_total);

typedef struct lt_quantize_dir_opts {
    bool force;          /* replace an existing non-empty out_dir (it must hold only files) */
    int64_t shard_bytes; /* largest output file; <= 0: 5 GB as HF */
    lt_quantize_progress progress;
    void *progress_ctx;
} lt_quantize_dir_opts;

/* Quantizes the HF model in src_dir (validated as lt_model_load_opts does) with opts (quantize
 * must be set; cache_dir is ignored) into out_dir, reading the source once, one tensor at a time:
 * the pool holds one f32 tensor and its quantized form (tag SCRATCH), never the model. The output
 * is written into a temporary directory next to out_dir and renamed into place at the end, so a
 * failure (bad tensor, budget, disk full, crash) never leaves a partial out_dir. Refuses an
 * existing non-empty out_dir unless qo->force, an out_dir that is or contains src_dir, and a
 * source that is itself a quantized directory. qo and stats may be NULL. */
lt_status lt_model_quantize_dir(const char *src_dir, const lt_load_opts *opts, const char *out_dir,
                                const lt_quantize_dir_opts *qo, lt_pool *pool, lt_quantize_stats *stats);

/* Whether dir is a directory whose safetensors metadata says it is a quantized model directory
 * (false on any problem: the normal loader then reports it). */
bool lt_model_dir_is_quantized(const char *dir);
/* Loads a quantized model directory by mmap (lt_model_load_opts calls this for such a dir). Every
 * tensor is checked against the layout its config.json and metadata imply (no missing, no
 * unexpected, exact dtypes and shapes; scales finite by lt_qtensor_validate). opts may be NULL;
 * when opts->quantize is set, its format and flags must be the stored ones (a quantized model is
 * never re-quantized). A component whose mapped address is not a multiple of its dtype size is
 * copied into the pool instead of being used in place. */
lt_status lt_model_load_quantized(const char *dir, lt_pool *pool, const lt_backend *be, const lt_load_opts *opts,
                                  lt_model **out);
/* lt_model_load_opts with opts->quantize and opts->cache_dir: loads the cache when it was made
 * from this source (same fingerprint) with these options; builds it first (lt_model_quantize_dir)
 * when it is absent or an empty directory; refuses (LT_ERR_INVALID_ARG) a cache made from another
 * source or with other options, and a cache_dir that is not a quantized model directory. */
lt_status lt_model_load_cached(const char *dir, lt_pool *pool, const lt_backend *be, const lt_load_opts *opts,
                               lt_model **out);
/* A cheap identity of an HF model directory, reading a few MB whatever its size: SHA-256 over
 * config.json's bytes and, per safetensors file, its name, header (every tensor's name, dtype,
 * shape and offsets, and the metadata), up to 4 KiB at the start, middle and end of every tensor,
 * and 64 KiB at 16 evenly spaced offsets of its data. Tells apart checkpoints of one architecture
 * (different seeds, a fine-tune that changed any tensor as a whole); a change of a few bytes
 * inside a tensor is only caught by the full source_sha256. */
lt_status lt_model_source_fingerprint(const char *dir, char hex[LT_SHA256_HEX]);

/* ---------------------------------------------------------------- sampling and generation */

typedef struct lt_sampler {
    float temperature; /* 0 = greedy (argmax, lowest id on ties) */
    int top_k;         /* 0 = off */
    float top_p;       /* 1 = off */
    lt_rng rng;
} lt_sampler;

void lt_sampler_init(lt_sampler *s, float temperature, int top_k, float top_p, uint64_t seed);
/* Picks a token from logits[vocab]; scratch holds 2*vocab floats (pool-owned by the caller). */
int32_t lt_sample(lt_sampler *s, const float *logits, int64_t vocab, float *scratch);

/* Called with each new token; return false to stop. */
typedef bool (*lt_token_cb)(void *ctx, int32_t token);

/* Prefills prompt, then samples up to max_new tokens (stops early at an EOS id of the config
 * when stop_at_eos). out receives the new tokens (capacity max_new); *n_out their count. */
lt_status lt_generate(lt_model *m, lt_pool *pool, const int32_t *prompt, int64_t n_prompt, int64_t max_new,
                      lt_sampler *s, bool stop_at_eos, int32_t *out, int64_t *n_out, lt_token_cb cb, void *ctx);

/* Continues the sequence held in kv: feeds tokens[n] (n >= 1), then samples up to max_new tokens,
 * feeding each back except the last, so kv ends holding the prompt and every new token but the
 * last. Stops after a token in stop[n_stop] (it is still reported and stored in out) or when cb
 * returns false. out has room for max_new tokens. */
lt_status lt_generate_cont(lt_model *m, lt_kv_cache *kv, lt_pool *pool, const int32_t *tokens, int64_t n,
                           int64_t max_new, lt_sampler *s, const int32_t *stop, int n_stop, int32_t *out,
                           int64_t *n_out, lt_token_cb cb, void *ctx);

/* What generation_config.json says (every field optional): stop ids and sampling defaults. */
#define LT_MAX_STOP 16
typedef struct lt_gen_config {
    int32_t eos[LT_MAX_STOP];
    int n_eos;
    bool has_sampling;  /* do_sample given */
    bool do_sample;
    double temperature; /* < 0 when absent */
    double top_p;       /* < 0 when absent */
    int64_t top_k;      /* < 0 when absent */
} lt_gen_config;

/* Reads dir/generation_config.json; a missing file (or dir not a directory: a GGUF model) gives an empty config (not an error), a
 * malformed one an error naming the key. Ids are checked against vocab. */
lt_status lt_gen_config_load(const char *dir, int64_t vocab, lt_gen_config *out);
/* Adds id to a stop list of capacity LT_MAX_STOP unless present or negative. */
void lt_stop_add(int32_t *stop, int *n, int32_t id);

/* ---------------------------------------------------------------- random models */

typedef struct lt_make_opts {
    uint64_t seed;
    lt_dtype dtype;           /* F32 or BF16 (or F16) */
    int64_t shard_bytes;      /* <= 0: 5 GB */
    const char *tokenizer_dir; /* copies tokenizer.json, tokenizer_config.json, ... when set */
} lt_make_opts;

/* Writes config.json, generation_config.json and random weights (normal, std =
 * initializer_range; norms = 1) as an HF model directory. Weights are drawn per tensor from
 * the counter-based RNG keyed by (seed, tensor index), so the result does not depend on dtype
 * or sharding. */
lt_status lt_model_make_random(const lt_model_config *cfg, const lt_make_opts *opts, const char *out_dir);

#endif
