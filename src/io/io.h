/* io — model files: safetensors (validated mmap reader, writer, sharded directories),
 * Hugging Face config.json for the Llama family, and GGUF v3 input (its own section at the end).
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

/* ---------------------------------------------------------------- GGUF (v3) */

/* A validated GGUF v3 reader (specs/files.md §4) over an mmap or a caller's buffer, the
 * Llama-family metadata -> lt_model_config, and the GGUF -> HF tensor name mapping.
 *
 * Usage:
 *   lt_gguf_file *g; lt_status st = lt_gguf_open("model.gguf", &g);
 *   lt_model_config cfg; st = lt_gguf_to_config(g, &cfg);
 *   const lt_gguf_tensor *t = lt_gguf_find_tensor(g, "blk.0.attn_q.weight");
 *   // t->type (ggml id), t->ne[0] (contiguous dim = HF in_features), t->data points into the mmap
 *   char hf[128]; lt_gguf_name_to_hf(t->name, hf, sizeof hf);   // "model.layers.0.self_attn.q_proj.weight"
 *   int64_t nh = lt_gguf_permuted_heads(&cfg, hf);                // Llama q/k: undo the converter's permute
 *   if (nh) st = lt_gguf_unpermute_rows(src_rows, dst_rows, t->ne[1], row_bytes, nh);
 *   lt_gguf_close(g);
 *
 * Ownership: lt_gguf_file owns its mmap, keys and names; every pointer it returns (kv, tensor,
 * string views, data) stays valid until lt_gguf_close. With lt_gguf_open_buffer the caller's
 * buffer must outlive the file.
 *
 * Every file is untrusted. lt_gguf_open checks, before anything is used (each refusal is an
 * LT_ERR_FORMAT or LT_ERR_UNSUPPORTED status naming the file, the byte offset, the key or tensor
 * and what to do):
 *   magic "GGUF"; version 3 (0 invalid, 1 and 2 unsupported, > 3 too new; a byte-swapped version
 *   means a big-endian file); tensor and kv counts <= the caps below AND <= what the rest of the
 *   file can hold (a kv is >= 14 bytes, a tensor info >= 33); every read inside the file; keys
 *   1..65535 bytes of printable ASCII, no duplicates; value types 0..12; strings <= 2^30 bytes;
 *   arrays: element type known and not ARRAY (nested arrays refused), count <= 2^30 and
 *   count * element size inside the file; BOOL bytes 0 or 1; general.alignment (if present) a
 *   UINT32 power of two in [8, 1 MiB] (default 32); tensor names 1..63 bytes (ggml's
 *   GGML_MAX_NAME), printable ASCII, no duplicates; n_dims 1..4; each dim >= 1 (an empty
 *   tensor has no use as a weight, and a 0 dim is the divide-by-zero class of bug) with the
 *   product checked for int64 overflow; type a known, not removed ggml id; ne[0] a multiple of
 *   the type's block size; byte size checked; offset a multiple of the alignment; data start +
 *   offset + size inside the file (checked adds); tensors do not overlap.
 * Tensors of types loft cannot dequantize (Q5_K, IQ*, ...) are still listed: the file is valid,
 * and the loader says which tensor it cannot use.
 */

#define LT_GGUF_MAX_TENSORS (1 << 20) /* real models: ~300 to ~10,000 */
#define LT_GGUF_MAX_KV (1 << 20)      /* real files: ~20 to ~60 keys */
#define LT_GGUF_MAX_KEY 65535         /* spec */
#define LT_GGUF_MAX_STRING (1 << 30)  /* ggml's GGUF_MAX_STRING_LENGTH; also bounded by the file */
#define LT_GGUF_MAX_ARRAY (1 << 30)   /* ggml's GGUF_MAX_ARRAY_ELEMENTS; also bounded by the file */
#define LT_GGUF_MAX_NAME 63           /* tensor name bytes: ggml's GGML_MAX_NAME (64) minus the NUL */
#define LT_GGUF_MAX_DIMS 4
#define LT_GGUF_MAX_ALIGNMENT (1 << 20)
#define LT_GGUF_DEFAULT_ALIGNMENT 32

/* Metadata value types (ids as in the file). */
typedef enum lt_gguf_vtype {
    LT_GGUF_UINT8 = 0,
    LT_GGUF_INT8 = 1,
    LT_GGUF_UINT16 = 2,
    LT_GGUF_INT16 = 3,
    LT_GGUF_UINT32 = 4,
    LT_GGUF_INT32 = 5,
    LT_GGUF_FLOAT32 = 6,
    LT_GGUF_BOOL = 7,
    LT_GGUF_STRING = 8,
    LT_GGUF_ARRAY = 9,
    LT_GGUF_UINT64 = 10,
    LT_GGUF_INT64 = 11,
    LT_GGUF_FLOAT64 = 12,
    LT_GGUF_VTYPE_COUNT
} lt_gguf_vtype;

/* ggml tensor type ids (ggml.h enum ggml_type). Ids 4, 5, 31-33 and 36-38 were removed from
 * ggml and are refused. */
typedef enum lt_ggml_type {
    LT_GGML_F32 = 0,
    LT_GGML_F16 = 1,
    LT_GGML_Q4_0 = 2,
    LT_GGML_Q4_1 = 3,
    LT_GGML_Q5_0 = 6,
    LT_GGML_Q5_1 = 7,
    LT_GGML_Q8_0 = 8,
    LT_GGML_Q8_1 = 9,
    LT_GGML_Q2_K = 10,
    LT_GGML_Q3_K = 11,
    LT_GGML_Q4_K = 12,
    LT_GGML_Q5_K = 13,
    LT_GGML_Q6_K = 14,
    LT_GGML_Q8_K = 15,
    LT_GGML_IQ2_XXS = 16,
    LT_GGML_IQ2_XS = 17,
    LT_GGML_IQ3_XXS = 18,
    LT_GGML_IQ1_S = 19,
    LT_GGML_IQ4_NL = 20,
    LT_GGML_IQ3_S = 21,
    LT_GGML_IQ2_S = 22,
    LT_GGML_IQ4_XS = 23,
    LT_GGML_I8 = 24,
    LT_GGML_I16 = 25,
    LT_GGML_I32 = 26,
    LT_GGML_I64 = 27,
    LT_GGML_F64 = 28,
    LT_GGML_IQ1_M = 29,
    LT_GGML_BF16 = 30,
    LT_GGML_TQ1_0 = 34,
    LT_GGML_TQ2_0 = 35,
    LT_GGML_MXFP4 = 39,
    LT_GGML_TYPE_END = 40 /* first id loft does not know */
} lt_ggml_type;

typedef struct lt_ggml_type_info {
    const char *name;  /* "Q4_K" */
    int64_t block;     /* elements per block */
    int64_t bytes;     /* bytes per block */
} lt_ggml_type_info;

/* NULL for an unknown or removed id. */
const lt_ggml_type_info *lt_ggml_type_get(uint32_t type);

/* A string inside the file: NOT NUL-terminated, may contain any bytes. */
typedef struct lt_gguf_str {
    const char *s;
    int64_t len;
} lt_gguf_str;

typedef struct lt_gguf_kv {
    const char *key;        /* NUL-terminated copy */
    lt_gguf_vtype type;
    lt_gguf_vtype arr_type; /* element type when type == LT_GGUF_ARRAY */
    int64_t n;              /* array element count; 1 for a scalar */
    const uint8_t *data;    /* scalar or array-element bytes in the file (unaligned: read with the
                               accessors); for STRING the string's bytes */
    lt_gguf_str str;        /* type == STRING */
    const lt_gguf_str *strs; /* type == ARRAY of STRING: n views */
} lt_gguf_kv;

typedef struct lt_gguf_tensor {
    const char *name;   /* NUL-terminated copy */
    uint32_t type;      /* lt_ggml_type */
    int n_dims;         /* 1..4 */
    int64_t ne[LT_GGUF_MAX_DIMS]; /* ne[0] contiguous (HF's last dim); unused dims are 1 */
    int64_t numel;
    int64_t nbytes;
    int64_t offset;     /* relative to the data section */
    const void *data;   /* points into the mapping; not necessarily aligned beyond 8 bytes */
} lt_gguf_tensor;

typedef struct lt_gguf_file lt_gguf_file;

lt_status lt_gguf_open(const char *path, lt_gguf_file **out);
/* Same validation on an in-memory image (tests, fuzzers); name is used in messages. */
lt_status lt_gguf_open_buffer(const void *buf, int64_t len, const char *name, lt_gguf_file **out);
void lt_gguf_close(lt_gguf_file *f);
const char *lt_gguf_path(const lt_gguf_file *f);
int64_t lt_gguf_alignment(const lt_gguf_file *f);
int64_t lt_gguf_data_start(const lt_gguf_file *f); /* file offset of the data section */

/* Metadata in file order, and lookup by key (binary search). */
int64_t lt_gguf_kv_count(const lt_gguf_file *f);
const lt_gguf_kv *lt_gguf_kv_at(const lt_gguf_file *f, int64_t i);
const lt_gguf_kv *lt_gguf_find_kv(const lt_gguf_file *f, const char *key);
const char *lt_gguf_vtype_name(lt_gguf_vtype t); /* "UINT32", "ARRAY", ... */

/* Typed getters: the key must exist and have exactly that type, else an LT_ERR_FORMAT status
 * naming the file, the key, the expected and the found type. (For optional keys test
 * lt_gguf_find_kv first.) */
lt_status lt_gguf_get_u32(const lt_gguf_file *f, const char *key, uint32_t *out);
lt_status lt_gguf_get_u64(const lt_gguf_file *f, const char *key, uint64_t *out);
lt_status lt_gguf_get_i32(const lt_gguf_file *f, const char *key, int32_t *out);
lt_status lt_gguf_get_f32(const lt_gguf_file *f, const char *key, float *out);
lt_status lt_gguf_get_bool(const lt_gguf_file *f, const char *key, bool *out);
lt_status lt_gguf_get_str(const lt_gguf_file *f, const char *key, lt_gguf_str *out);
/* Any integer type (gguf-py writes counts as UINT32, the spec says UINT64), value in [lo, hi]. */
lt_status lt_gguf_get_int(const lt_gguf_file *f, const char *key, int64_t lo, int64_t hi, int64_t *out);
/* FLOAT32 or FLOAT64. */
lt_status lt_gguf_get_real(const lt_gguf_file *f, const char *key, double *out);
/* An ARRAY whose elements have type elem (LT_GGUF_VTYPE_COUNT: any element type). */
lt_status lt_gguf_get_array(const lt_gguf_file *f, const char *key, lt_gguf_vtype elem, const lt_gguf_kv **out);
/* Element i of an array kv (i in [0, n), asserted): any integer element type -> int64 (UINT64
 * above INT64_MAX returns false); FLOAT32/FLOAT64 -> double; STRING -> view. False when the
 * element type does not fit the accessor. */
bool lt_gguf_arr_int(const lt_gguf_kv *kv, int64_t i, int64_t *out);
bool lt_gguf_arr_real(const lt_gguf_kv *kv, int64_t i, double *out);
bool lt_gguf_arr_str(const lt_gguf_kv *kv, int64_t i, lt_gguf_str *out);

/* Tensors in file order, and lookup by name (binary search). */
int64_t lt_gguf_tensor_count(const lt_gguf_file *f);
const lt_gguf_tensor *lt_gguf_tensor_at(const lt_gguf_file *f, int64_t i);
const lt_gguf_tensor *lt_gguf_find_tensor(const lt_gguf_file *f, const char *name);

/* Llama-family metadata -> config. general.architecture "llama" (Llama 1-3 and Mistral, which
 * llama.cpp writes as llama), "qwen2" or "qwen3"; {arch}.embedding_length, .block_count,
 * .feed_forward_length, .attention.head_count, .context_length, .attention.layer_norm_rms_epsilon
 * are required; .attention.head_count_kv (default head_count), .attention.key_length (default
 * embedding/heads; value_length and rope.dimension_count must agree with it), .rope.freq_base
 * (default 10000), .vocab_size (else the length of tokenizer.ggml.tokens, else token_embd's
 * ne[1]; all present ones must agree with token_embd.weight). Tied embeddings when output.weight
 * is absent. Biases and q/k norms from the tensors of block 0. Llama-3 rope scaling comes as the
 * tensor rope_freqs.weight (head_dim/2 F32 divisors): its parameters are recovered from the
 * divisors (factor = the largest; the band edges from the interpolated ones, or Meta's
 * low 1 / high 4 with {arch}.rope.scaling.original_context_length or 8192) and the divisors are
 * recomputed and must match, else LT_ERR_UNSUPPORTED. Linear/YaRN rope scaling is unsupported.
 * bos from tokenizer.ggml.bos_token_id; eos ids: tokenizer.ggml.eos_token_id, .eot_token_id and
 * .eom_token_id (llama.cpp stops on each of them); pad from .padding_token_id. The result passes
 * lt_config_validate. */
lt_status lt_gguf_to_config(const lt_gguf_file *f, lt_model_config *out);

/* GGUF tensor name <-> HF name (specs/files.md §2 table), e.g. "blk.3.ffn_up.weight" <->
 * "model.layers.3.mlp.up_proj.weight". False (out = "") for names without a counterpart
 * (rope_freqs.weight, unknown names) or when cap is too small. */
bool lt_gguf_name_to_hf(const char *gguf_name, char *out, size_t cap);
bool lt_gguf_name_from_hf(const char *hf_name, char *out, size_t cap);
/* convert_hf_to_gguf permutes the rows of Llama/Mistral q_proj (n_heads) and k_proj (n_kv_heads),
 * weight and bias: GGUF row h*hd + 2i + s = HF row h*hd + s*hd/2 + i (s in {0,1}, i < hd/2).
 * Returns the head count to unpermute hf_name with, or 0 when it is not permuted (Qwen, other
 * tensors). */
int64_t lt_gguf_permuted_heads(const lt_model_config *cfg, const char *hf_name);
/* dst = the HF row order of src (GGUF order), rows of row_bytes bytes (a quantized row is whole
 * blocks, so this works for every type); src and dst must not overlap. Fails when rows is not
 * n_head * an even head_dim. */
lt_status lt_gguf_unpermute_rows(const void *src, void *dst, int64_t rows, int64_t row_bytes, int64_t n_head);
/* The converter's direction (HF -> GGUF); for tests and export. */
lt_status lt_gguf_permute_rows(const void *src, void *dst, int64_t rows, int64_t row_bytes, int64_t n_head);

#endif
