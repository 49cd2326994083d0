/* io — model files: safetensors (validated mmap reader, writer, sharded directories) and
 * Hugging Face config.json for the Llama family.
 *
 * Usage:
 *   lt_st_file *f; lt_status st = lt_st_open("model.safetensors", &f);
 *   const lt_st_tensor *t = lt_st_find(f, "model.norm.weight");   // t->data points into the mmap
 *   lt_st_close(f);
 *
 *   lt_st_set *m; st = lt_st_set_open_dir("models/tiny", &m);       // one file or index + shards
 *   lt_model_config cfg; st = lt_config_load("models/tiny/config.json", &cfg);
 *
 * Ownership: lt_st_file/lt_st_set own their mmaps; tensor views stay valid until close. Every
 * file is untrusted: sizes are checked before use and errors name the file and the problem.
 */
#ifndef LT_IO_H
#define LT_IO_H

#include "core/core.h"

/* ---------------------------------------------------------------- safetensors */

#define LT_ST_MAX_HEADER (100 * 1000 * 1000) /* reference reader's MAX_HEADER_SIZE */
#define LT_ST_MAX_DIMS 8

typedef struct lt_st_tensor {
    char *name;
    char dtype_name[16]; /* as written in the header, e.g. "BF16", "F8_E8M0" */
    bool has_dtype;      /* dtype below is valid (loft can compute on it) */
    lt_dtype dtype;
    int ndim;
    int64_t shape[LT_ST_MAX_DIMS];
    int64_t numel;
    int64_t nbytes;
    int64_t begin, end; /* offsets into the data buffer */
    const void *data;   /* points into the mapping */
} lt_st_tensor;

typedef struct lt_st_file lt_st_file;

lt_status lt_st_open(const char *path, lt_st_file **out);
/* Same validation on an in-memory image (used by tests and fuzzers); buf must outlive the file. */
lt_status lt_st_open_buffer(const void *buf, int64_t len, const char *name, lt_st_file **out);
void lt_st_close(lt_st_file *f);
int64_t lt_st_count(const lt_st_file *f);
const lt_st_tensor *lt_st_get(const lt_st_file *f, int64_t i); /* header order is not kept: sorted by offset */
const lt_st_tensor *lt_st_find(const lt_st_file *f, const char *name);
int64_t lt_st_metadata_count(const lt_st_file *f);
/* The i-th __metadata__ entry; returns false when out of range. */
bool lt_st_metadata_get(const lt_st_file *f, int64_t i, const char **key, const char **value);
const char *lt_st_metadata_find(const lt_st_file *f, const char *key);
const char *lt_st_path(const lt_st_file *f);

/* Writer input: one tensor. dtype_name is a safetensors dtype string. */
typedef struct lt_st_entry {
    const char *name;
    const char *dtype_name;
    int ndim;
    int64_t shape[LT_ST_MAX_DIMS];
    const void *data; /* nbytes = product(shape) * bits / 8 */
    /* Instead of data (data NULL): a producer the writer calls just before the tensor's bytes
     * are written, to fill buf[nbytes]. The writer reuses one buffer, so a model larger than
     * memory is written holding one tensor at a time. */
    lt_status (*fill)(void *ctx, void *buf, int64_t nbytes);
    void *fill_ctx;
} lt_st_entry;

typedef struct lt_st_meta {
    const char *key, *value;
} lt_st_meta;

/* Writes one safetensors file atomically (temp file, fsync, rename). The header is padded with
 * spaces to a multiple of 8; tensors are laid out in the order given. */
lt_status lt_st_write(const char *path, const lt_st_entry *entries, int64_t n, const lt_st_meta *meta,
                      int64_t n_meta);

/* Writes a model's tensors into dir: "model.safetensors" when the total fits in shard_bytes,
 * else "model-0000i-of-0000K.safetensors" shards plus "model.safetensors.index.json"
 * (weight_map + metadata.total_size). shard_bytes <= 0 means 5 GB (the HF default). */
lt_status lt_st_write_model(const char *dir, const lt_st_entry *entries, int64_t n, const lt_st_meta *meta,
                            int64_t n_meta, int64_t shard_bytes);

/* A model's tensors across one or more files. */
typedef struct lt_st_set lt_st_set;
/* dir holds model.safetensors.index.json (every shard it names is opened, every tensor must be
 * in the shard the index says) or a single model.safetensors. */
lt_status lt_st_set_open_dir(const char *dir, lt_st_set **out);
void lt_st_set_close(lt_st_set *s);
int64_t lt_st_set_count(const lt_st_set *s);
const lt_st_tensor *lt_st_set_get(const lt_st_set *s, int64_t i);
const lt_st_tensor *lt_st_set_find(const lt_st_set *s, const char *name);
int64_t lt_st_set_nfiles(const lt_st_set *s);
const lt_st_file *lt_st_set_file(const lt_st_set *s, int64_t i);

/* Bit size of a safetensors dtype name (BOOL 8, F4 4, F6_* 6, ...); 0 when unknown. */
int lt_st_dtype_bits(const char *name);

/* ---------------------------------------------------------------- HF config.json */

typedef enum lt_arch { LT_ARCH_LLAMA = 0, LT_ARCH_MISTRAL, LT_ARCH_QWEN2, LT_ARCH_QWEN3 } lt_arch;

typedef enum lt_rope_kind { LT_ROPE_DEFAULT = 0, LT_ROPE_LLAMA3 } lt_rope_kind;

#define LT_MAX_EOS 8

typedef struct lt_model_config {
    lt_arch arch;
    char architecture[64]; /* "LlamaForCausalLM" */
    char model_type[32];   /* "llama" */
    int64_t vocab_size;
    int64_t hidden_size;
    int64_t intermediate_size;
    int64_t n_layers;
    int64_t n_heads;
    int64_t n_kv_heads;
    int64_t head_dim;
    int64_t max_position_embeddings;
    double rms_norm_eps;
    double rope_theta;
    lt_rope_kind rope_kind;
    double rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int64_t rope_original_max_position;
    bool tie_word_embeddings;
    bool qkv_bias; /* Qwen2 always; Llama when attention_bias */
    bool o_bias;   /* Llama attention_bias */
    bool mlp_bias; /* Llama mlp_bias */
    bool qk_norm;  /* Qwen3 */
    int64_t bos_token_id; /* -1 when absent */
    int64_t eos_token_ids[LT_MAX_EOS];
    int n_eos;
    int64_t pad_token_id; /* -1 when absent */
    double initializer_range;
    char torch_dtype[16]; /* "bfloat16", "float32", ... or "" */
} lt_model_config;

const char *lt_arch_name(lt_arch a); /* "LlamaForCausalLM" */

/* Parses config.json text; source names the file in messages. Missing optional keys take the
 * transformers defaults for that architecture; every present key is type-checked; sizes must be
 * positive, heads must divide as GQA requires. */
lt_status lt_config_parse(const char *json_text, const char *source, lt_model_config *out);
lt_status lt_config_load(const char *path, lt_model_config *out);
/* Writes cfg as an HF config.json (atomic). */
lt_status lt_config_save(const lt_model_config *cfg, const char *path);
/* Parameter count of the model described by cfg (embedding + layers + norm + lm_head if untied). */
int64_t lt_config_n_params(const lt_model_config *cfg);
/* (added) Checks a config built in code: size bounds, GQA divisibility, even head_dim, rope
 * parameters, token ids, and that the bias/norm flags are ones the architecture can express.
 * source names it in messages. lt_config_parse and lt_config_save call it. (lt_config_n_params
 * returns -1 when the sizes are outside these bounds.) */
lt_status lt_config_validate(const lt_model_config *cfg, const char *source);

#endif
