/* core — tensors, dtypes and conversions, status/errors, logging, RNG, threads.
 *
 * Usage:
 *   lt_status st = lt_errorf(LT_ERR_FORMAT, "%s: expected an object", path);
 *   if (st) { fprintf(stderr, "%s\n", lt_status_msg(st)); lt_status_free(st); }
 *   uint16_t h = lt_f32_to_bf16(1.5f);  float f = lt_bf16_to_f32(h);
 *   lt_rng r; lt_rng_init(&r, 42); float z = lt_rng_normal(&r);
 *
 * Ownership: an lt_status (non-NULL means failure) belongs to whoever receives it and must be
 * passed on or freed with lt_status_free. lt_tensor does not own its data: the pool (or an mmap)
 * does. Nothing here knows about models.
 */
#ifndef LT_CORE_H
#define LT_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LT_VERSION_STRING "0.1.0"

/* ---------------------------------------------------------------- status and errors */

typedef enum lt_err_code {
    LT_OK = 0,
    LT_ERR_IO,          /* open/read/write/mmap failed */
    LT_ERR_FORMAT,      /* a file or input is malformed */
    LT_ERR_INVALID_ARG, /* a caller or user passed a bad value */
    LT_ERR_UNSUPPORTED, /* valid, but not something loft does (yet) */
    LT_ERR_BUDGET,      /* the memory pool refused: request exceeds the budget */
    LT_ERR_NOMEM,       /* the operating system refused memory */
    LT_ERR_INTERNAL,
} lt_err_code;

/* NULL means success. A non-NULL status carries a code and a human-readable message. */
typedef struct lt_status_s *lt_status;

lt_status lt_errorf(lt_err_code code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes context to an existing error ("loading model X: <old message>"); returns st. */
lt_status lt_status_wrapf(lt_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
lt_err_code lt_status_code(lt_status st);
const char *lt_status_msg(lt_status st);
void lt_status_free(lt_status st);

/* Bugs (not bad input): print the statement, file and line, then abort. */
#define LT_ASSERT(cond)                                                                                                \
    do {                                                                                                               \
        if (!(cond)) lt_assert_fail(#cond, __FILE__, __LINE__);                                                        \
    } while (0)
void lt_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

/* Checked arithmetic for sizes computed from untrusted input: return false on overflow. */
bool lt_mul_i64(int64_t a, int64_t b, int64_t *out);
bool lt_add_i64(int64_t a, int64_t b, int64_t *out);

/* ---------------------------------------------------------------- logging */

typedef enum lt_log_level { LT_LOG_DEBUG, LT_LOG_INFO, LT_LOG_WARN, LT_LOG_ERROR } lt_log_level;
/* Level comes from LOFT_LOG=debug|info|warn|error (default info); messages go to stderr. */
void lt_log(lt_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lt_log_set_level(lt_log_level level);
#define LT_DEBUG(...) lt_log(LT_LOG_DEBUG, __VA_ARGS__)
#define LT_INFO(...) lt_log(LT_LOG_INFO, __VA_ARGS__)
#define LT_WARN(...) lt_log(LT_LOG_WARN, __VA_ARGS__)

double lt_time_sec(void); /* monotonic clock, seconds */

/* ---------------------------------------------------------------- dtypes */

typedef enum lt_dtype {
    LT_DTYPE_F32 = 0,
    LT_DTYPE_BF16,
    LT_DTYPE_F16,
    LT_DTYPE_F8_E4M3, /* OCP E4M3 "fn": no Inf, NaN = 0x7F/0xFF, max 448 */
    LT_DTYPE_E8M0,    /* unsigned power-of-two scale, 2^(e-127), 0xFF = NaN */
    LT_DTYPE_F64,
    LT_DTYPE_I8,
    LT_DTYPE_U8,
    LT_DTYPE_I16,
    LT_DTYPE_I32,
    LT_DTYPE_I64,
    LT_DTYPE_COUNT
} lt_dtype;

const char *lt_dtype_name(lt_dtype t); /* safetensors spelling: "F32", "BF16", "F8_E4M3", ... */
int64_t lt_dtype_size(lt_dtype t);     /* bytes per element */
/* Parses a safetensors dtype name; false when loft has no compute dtype for it. */
bool lt_dtype_from_name(const char *name, lt_dtype *out);

/* Conversions: round-to-nearest-even everywhere.
 * f32->bf16: NaN -> 0x7FC0 | sign (quiet NaN, as PyTorch c10), overflow carries to Inf.
 * f32->f16: IEEE binary16 with subnormals, NaN -> quiet NaN keeping sign, overflow -> Inf.
 * f32->e4m3: saturating to +-448 (as torchao/Transformer Engine clamp before casting), NaN -> 0x7F|sign.
 * f32->e8m0: nearest power of two is NOT implied: returns floor(log2(|x|)) + 127 clamped to
 *            [0, 254]; NaN/Inf -> 0xFF. (Scale selection policies live in quant/.) */
static inline float lt_bf16_to_f32(uint16_t h);
uint16_t lt_f32_to_bf16(float f);
float lt_f16_to_f32(uint16_t h);
uint16_t lt_f32_to_f16(float f);
float lt_e4m3_to_f32(uint8_t b);
uint8_t lt_f32_to_e4m3(float f);
float lt_e8m0_to_f32(uint8_t b);
uint8_t lt_f32_to_e8m0(float f);

/* Bulk conversion of n elements of src (dtype src_t) into f32. */
void lt_convert_to_f32(const void *src, lt_dtype src_t, float *dst, int64_t n);
/* Bulk conversion of n f32 elements into dst_t (F32, BF16, F16, F8_E4M3). */
void lt_convert_from_f32(const float *src, void *dst, lt_dtype dst_t, int64_t n);

static inline float lt_bf16_to_f32(uint16_t h) {
    union {
        uint32_t u;
        float f;
    } v = {.u = (uint32_t)h << 16};
    return v.f;
}

/* ---------------------------------------------------------------- tensor */

#define LT_MAX_DIMS 4

/* A view: dtype, shape (row-major, last dim contiguous) and a data pointer it does not own. */
typedef struct lt_tensor {
    lt_dtype dtype;
    int ndim;
    int64_t shape[LT_MAX_DIMS];
    void *data;
} lt_tensor;

lt_tensor lt_tensor_make(lt_dtype dtype, int ndim, const int64_t *shape, void *data);
int64_t lt_tensor_numel(const lt_tensor *t);
int64_t lt_tensor_nbytes(const lt_tensor *t);
/* Writes "[4096, 11008]" into buf. */
const char *lt_shape_str(const int64_t *shape, int ndim, char *buf, size_t cap);

/* ---------------------------------------------------------------- RNG */

/* Philox4x32-10 (Salmon et al., SC'11): a counter-based generator. The whole state is the key
 * (seed) and a 64-bit counter of blocks drawn, so it serialises to 24 bytes and any stream
 * position can be reached in O(1). Each block yields four 32-bit outputs. */
typedef struct lt_rng {
    uint64_t seed;
    uint64_t counter; /* next block index */
    uint32_t buf[4];  /* current block */
    uint32_t used;    /* outputs of buf already consumed (4 = empty) */
} lt_rng;

#define LT_RNG_STATE_BYTES 24
void lt_rng_init(lt_rng *r, uint64_t seed);
void lt_philox4x32(uint64_t seed, uint64_t counter, uint32_t out[4]); /* the raw bijection */
/* The bijection on a full 128-bit counter and 64-bit key (lt_philox4x32 uses counter
 * {lo, hi, 0, 0} and key {lo, hi} of the seed); for the Random123 known-answer tests. */
void lt_philox4x32_raw(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);
uint32_t lt_rng_u32(lt_rng *r);
float lt_rng_uniform(lt_rng *r); /* [0, 1), 24 random bits */
float lt_rng_normal(lt_rng *r);  /* N(0, 1) via Box-Muller on two uniforms */
/* Serialise/restore: little-endian seed, counter, used (the buffer is recomputed). */
void lt_rng_save(const lt_rng *r, uint8_t out[LT_RNG_STATE_BYTES]);
bool lt_rng_load(lt_rng *r, const uint8_t in[LT_RNG_STATE_BYTES]);

/* ---------------------------------------------------------------- threads */

/* Runs fn(ctx, begin, end) over [0, n) split into contiguous chunks, one per worker, with a
 * static partition (the split depends only on n and the thread count, so results are
 * reproducible). Blocks until all chunks are done. Nested calls run serially. */
typedef void (*lt_range_fn)(void *ctx, int64_t begin, int64_t end);
void lt_parallel_for(int64_t n, lt_range_fn fn, void *ctx);
/* Thread count: LOFT_THREADS, else the number of online CPUs. Set before first use. */
void lt_threads_set(int n);
int lt_threads_get(void);

/* ---------------------------------------------------------------- small utilities */

/* Reads a whole file into a NUL-terminated heap buffer (free with free()); refuses > max_bytes. */
lt_status lt_read_file(const char *path, int64_t max_bytes, char **out, int64_t *out_len);
/* Writes data to path atomically: path.tmp, fsync, rename, fsync the directory. */
lt_status lt_write_file_atomic(const char *path, const void *data, int64_t len);
bool lt_is_little_endian(void);
/* Maps a whole regular file read-only. *base is valid even for an empty file (callers never read
 * past *len); *mapped says whether lt_unmap_file has anything to release. kind says what the file
 * should be, for messages ("a .safetensors file"). */
lt_status lt_map_file(const char *path, const char *kind, const uint8_t **base, int64_t *len, bool *mapped);
void lt_unmap_file(const uint8_t *base, int64_t len, bool mapped);
/* "dir/name" in a new heap string (free()); NULL when out of memory. */
char *lt_path_join(const char *dir, const char *name);
/* Creates path and its missing parents (like mkdir -p); refuses a path that exists as a file. */
lt_status lt_mkdir_p(const char *path);

/* (added) SHA-256 (FIPS 180-4), for identifying model files: the source of a quantized cache, the
 * base model of a checkpoint. Streaming: init, update any number of times, final. */
#define LT_SHA256_BYTES 32
#define LT_SHA256_HEX 65 /* 64 lowercase hex digits + NUL */
typedef struct lt_sha256_ctx {
    uint32_t h[8];
    uint64_t nbytes; /* message bytes so far */
    uint8_t buf[64]; /* a partial block */
    uint32_t nbuf;
} lt_sha256_ctx;
void lt_sha256_init(lt_sha256_ctx *s);
void lt_sha256_update(lt_sha256_ctx *s, const void *data, size_t n);
void lt_sha256_final(lt_sha256_ctx *s, uint8_t out[LT_SHA256_BYTES]);
void lt_sha256(const void *data, size_t n, uint8_t out[LT_SHA256_BYTES]); /* one shot */
void lt_sha256_hex(const uint8_t digest[LT_SHA256_BYTES], char out[LT_SHA256_HEX]);
/* The block function in use: "x86 sha extensions", "armv8 sha2" (when the CPU has them) or
 * "portable" (also when LOFT_SHA256=portable). lt_sha256_set_accel(false) forces the portable
 * one, true goes back to detecting (tests, benchmarks; both compute the same state, so switching
 * while another thread hashes is harmless). */
const char *lt_sha256_impl(void);
void lt_sha256_set_accel(bool on);

#endif
