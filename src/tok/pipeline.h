/* Internal to the tokenizer pipeline (not part of the tok API): tokenizer.c (load, encode, decode,
 * post-processor), added.c (added tokens), normalize.c (normalizers), pretok.c (pre-tokenizers),
 * regex.c (tokenizer.json patterns on PCRE2), fastmatch.c (hand-written matchers for the GPT-2,
 * Llama-3 and Qwen2 pre-tokenizer patterns), unicode.c (UTF-8 and the character classes those use).
 *
 * Where the reference (@huggingface/tokenizers, npm) and the Rust crate differ, the pipeline
 * follows the reference for everything the Llama 3 / Qwen / Llama 2 files use (they agree there)
 * and the crate elsewhere: Split behaviours MergedWithPrevious/MergedWithNext/Contiguous and invert,
 * Metaspace split, single_word, normalized added tokens matched in a second pass, \s as
 * White_Space in the ByteLevel GPT-2 pattern (JavaScript's \s adds U+FEFF and lacks U+0085).
 * Decode applies transformers' clean_up_tokenization when tokenizer_config.json sets
 * clean_up_tokenization_spaces (the reference does; the crate has no such step).
 *
 * Strings are byte ranges (pointer + length), never assumed NUL-terminated. Every *_scratch struct
 * is per call (one encode on one thread): buffers grow and are reused across pieces, so the inner
 * loops do not allocate. */
#ifndef LT_TOK_PIPELINE_H
#define LT_TOK_PIPELINE_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tok/tok_internal.h"

/* Caps on what a tokenizer.json may hold (real files are far below; beyond is a broken file). */
#define LT_TOK_MAX_PATTERN 65536   /* bytes of one regex or string pattern */
#define LT_TOK_MAX_STRING 65536    /* bytes of one added token, prepend, replacement, ... */
#define LT_TOK_MAX_ADDED (1 << 20) /* added tokens */
#define LT_TOK_MAX_COMPONENTS 64   /* items of one Sequence / template */
#define LT_TOK_MAX_DEPTH 8         /* Sequence nesting */

/* ---------------------------------------------------------------- small containers */

typedef struct lt_buf {
    char *p;
    size_t n, cap;
} lt_buf;
/* Makes room for extra more bytes; false when out of memory (nothing changed). */
bool lt_buf_reserve(lt_buf *b, size_t extra);
bool lt_buf_put(lt_buf *b, const void *s, size_t n);
void lt_buf_free(lt_buf *b);

/* A piece of a string: [start, end), match: whether a pattern matched it (for split behaviours);
 * id: an added token's id, or -1 for plain text (added-token splitting). */
typedef struct lt_span {
    size_t start, end;
    int32_t id;
    bool match;
} lt_span;
typedef struct lt_spans {
    lt_span *v;
    size_t n, cap;
} lt_spans;
bool lt_spans_push(lt_spans *s, size_t start, size_t end, bool match, int32_t id);
void lt_spans_free(lt_spans *s);

/* "<file>: <path>: <message>" as a status of that code; path is a JSON key path. A message that
 * starts with "key: " extends the path instead: "<file>: <path>.key: ...". */
lt_status lt_tok_errf(lt_err_code code, const char *file, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Type name of a JSON value for messages ("a string", "null", ...). */
const char *lt_json_kind(const json_t *v);
/* The "type" string of a component object at path, or an error naming path.type. */
lt_status lt_json_type(const json_t *obj, const char *file, const char *path, const char **type);
/* Optional members: absent or null -> def; wrong type -> error naming path.key. */
lt_status lt_json_opt_bool(const json_t *obj, const char *key, bool def, const char *file, const char *path, bool *out);
/* A string member (required when def_absent is false). *out points into the JSON (valid while it
 * lives); lengths above LT_TOK_MAX_STRING are refused. */
lt_status lt_json_str(const json_t *obj, const char *key, bool required, const char *file, const char *path,
                      const char **out, size_t *len);

/* ---------------------------------------------------------------- UTF-8 and classes (unicode.c) */

/* -1 when s[len] is valid UTF-8 (shortest forms, no surrogates, at most U+10FFFF), else the offset
 * of the first byte of the first invalid sequence. */
int64_t lt_utf8_check(const char *s, size_t len);
/* The code point at s (valid UTF-8, at least one byte left); returns its length in bytes. */
size_t lt_utf8_next(const char *s, uint32_t *cp);
/* The start of the code point that ends at s[end - 1] (end > 0, valid UTF-8). */
size_t lt_utf8_prev(const char *s, size_t end);
/* Writes cp as UTF-8 to out (room for 4); returns the length. */
size_t lt_utf8_put(uint32_t cp, char *out);

/* The classes the pre-tokenizer patterns use, from the same Unicode data as the reference
 * (@huggingface/tokenizers on node: \p{L}, \p{N}, \p{White_Space}); the three are disjoint. */
enum { LT_UC_OTHER = 0, LT_UC_LETTER = 1, LT_UC_NUMBER = 2, LT_UC_SPACE = 3 };
int lt_uc_class(uint32_t cp);
bool lt_uc_is_space(uint32_t cp);
/* \w as the crates' regexes have it: Alphabetic, marks, Nd, Pc, Join_Control. */
bool lt_uc_is_word(uint32_t cp);
/* tokenizers' is_punc: ASCII punctuation or a P* general category. */
bool lt_uc_is_punct(uint32_t cp);
/* General category M* (combining marks; StripAccents). */
bool lt_uc_is_mark(uint32_t cp);

/* ---------------------------------------------------------------- patterns (regex.c) */

typedef struct lt_regex lt_regex;
/* Compiles a tokenizer.json pattern: literal (a "String" pattern) or Oniguruma syntax (a "Regex"
 * pattern, translated to PCRE2 as the reference translates it to JavaScript: \s is White_Space,
 * (?i:...) folds ASCII only, ^ and $ are line anchors, possessive quantifiers are greedy, ...).
 * The GPT-2, Llama-3 and Qwen2 pre-tokenizer patterns get hand-written matchers. where names the
 * key ("pre_tokenizer.pattern") in messages; unsupported constructs are refused by name. */
lt_status lt_regex_new(const char *pat, size_t len, bool literal, const char *file, const char *where, lt_regex **out);
/* The patterns with hand-written matchers (fastmatch.c): which one pat[len] is, and the end of its
 * match at p (p < len; the match is never empty). */
enum { LT_FAST_NONE = 0, LT_FAST_GPT2, LT_FAST_LLAMA3, LT_FAST_QWEN2 };
int lt_fast_kind(const char *pat, size_t len);
size_t lt_fast_match(int kind, const char *s, size_t len, size_t p);
/* The {"String": s} or {"Regex": s} pattern at obj.key (path names obj), through lt_regex_new. */
lt_status lt_tok_pattern(const json_t *obj, const char *key, const char *file, const char *path, lt_regex **out);
/* The GPT-2 pattern of the ByteLevel pre-tokenizer (use_regex). */
lt_status lt_regex_gpt2(lt_regex **out);
void lt_regex_free(lt_regex *re);

/* Per-call matching state (PCRE2 match data, created on first use). */
typedef struct lt_rx_scratch {
    pcre2_match_data *md;
} lt_rx_scratch;
void lt_rx_scratch_free(lt_rx_scratch *sc);

/* Appends to out the spans covering s[len] in order, matches and the text between them, as
 * tokenizers' Pattern::find_matches over onig's find_iter (an empty match right after the previous
 * match is skipped; an empty string gives one empty non-match span). Refuses (LT_ERR_INVALID_ARG)
 * a text that drives a pattern past its backtracking limit. */
lt_status lt_regex_spans(const lt_regex *re, lt_rx_scratch *sc, const char *s, size_t len, lt_spans *out);

/* ---------------------------------------------------------------- split behaviours (pretok.c) */

typedef enum lt_split_behavior {
    LT_SPLIT_REMOVED,
    LT_SPLIT_ISOLATED,
    LT_SPLIT_MERGED_WITH_PREVIOUS,
    LT_SPLIT_MERGED_WITH_NEXT,
    LT_SPLIT_CONTIGUOUS,
} lt_split_behavior;
/* Rewrites spans[from..] in place into the pieces NormalizedString::split keeps for behavior
 * (invert flips every match flag first); drops empty pieces. */
void lt_split_apply(lt_spans *sp, size_t from, lt_split_behavior behavior, bool invert);

/* ---------------------------------------------------------------- normalizers (normalize.c) */

typedef struct lt_norm lt_norm;
/* j absent or null -> *out = NULL (no normalizer). path names j ("normalizer"). */
lt_status lt_norm_load(const json_t *j, const char *file, const char *path, lt_norm **out);
void lt_norm_free(lt_norm *n);

typedef struct lt_norm_scratch {
    lt_buf a, b;
    lt_buf u32; /* code points for utf8proc */
    lt_spans spans;
    lt_rx_scratch rx;
} lt_norm_scratch;
void lt_norm_scratch_free(lt_norm_scratch *sc);
/* Normalizes s[len]. *out points at s (nothing changed) or into the scratch, valid until the next
 * call with the same scratch. */
lt_status lt_norm_run(const lt_norm *n, lt_norm_scratch *sc, const char *s, size_t len, const char **out,
                      size_t *out_len);

/* ---------------------------------------------------------------- pre-tokenizers (pretok.c) */

typedef struct lt_pretok lt_pretok;
lt_status lt_pretok_load(const json_t *j, const char *file, const char *path, lt_pretok **out);
void lt_pretok_free(lt_pretok *p);

typedef struct lt_pretok_stage_scratch {
    lt_buf a, b;
    lt_spans spans;
} lt_pretok_stage_scratch;
typedef struct lt_pretok_scratch {
    lt_pretok_stage_scratch *st; /* one per stage, allocated on first use */
    int n_st;
    lt_rx_scratch rx;
} lt_pretok_scratch;
void lt_pretok_scratch_free(lt_pretok_scratch *sc);

/* Called with every final pre-token (a word for the model). */
typedef lt_status (*lt_word_fn)(void *ctx, const char *w, size_t n);
/* Pre-tokenizes s[len] (p may be NULL: s is one word). at_origin: s starts at offset 0 of the
 * original text (Metaspace prepend_scheme "first"). */
lt_status lt_pretok_run(const lt_pretok *p, lt_pretok_scratch *sc, const char *s, size_t len, bool at_origin,
                        lt_word_fn fn, void *ctx);

/* ---------------------------------------------------------------- added tokens (added.c) */

typedef struct lt_added_tok {
    const char *content; /* NUL-terminated, in the added vocabulary's arena */
    size_t len;
    int32_t id;
    bool special, single_word, lstrip, rstrip, normalized;
} lt_added_tok;

typedef struct lt_added lt_added;
/* Reads tokenizer.json's "added_tokens" (j absent or null: none). Normalized tokens are matched
 * by their normalized content, so norm (may be NULL) is applied to them here. */
lt_status lt_added_load(const json_t *j, const char *file, const lt_norm *norm, lt_added **out);
void lt_added_free(lt_added *a);
/* Appends to out the splits of s[len] by the non-normalized (normalized=false) or the normalized
 * tokens, as AddedVocabulary::find_matches: leftmost-longest matches, single_word boundaries,
 * lstrip/rstrip swallowing whitespace; spans with id >= 0 are tokens, the rest text (never empty). */
lt_status lt_added_split(const lt_added *a, bool normalized, const char *s, size_t len, lt_spans *out);
/* Whether there are tokens of that kind at all (no split needed otherwise). */
bool lt_added_has(const lt_added *a, bool normalized);
const lt_added_tok *lt_added_by_id(const lt_added *a, int32_t id);
const lt_added_tok *lt_added_by_content(const lt_added *a, const char *s, size_t len);
int32_t lt_added_max_id(const lt_added *a); /* -1 when none */

#endif
