/* Internal to src/tok: the pieces of a tokenizer and how tokenizer.c (the pipeline: added tokens,
 * normalizer, pre-tokenizer, post-processor) talks to bpe.c (the BPE model) and decoder.c (the
 * decoders). Strings are UTF-8 byte ranges (pointer + length), never assumed NUL-terminated. */
#ifndef LT_TOK_INTERNAL_H
#define LT_TOK_INTERNAL_H

#include <jansson.h>

#include "tok/tok.h"

/* A growable id array (malloc'ed). */
typedef struct lt_ids {
    int32_t *v;
    int64_t n, cap;
} lt_ids;
/* false when out of memory (nothing changed). */
bool lt_ids_push(lt_ids *a, int32_t id);

/* ---------------------------------------------------------------- BPE model (bpe.c) */

typedef struct lt_bpe lt_bpe;

/* Builds the model from tokenizer.json's "model" object (type "BPE"): vocab (token -> id),
 * merges ("a b" strings or ["a", "b"] pairs; an unknown token in a merge is refused naming the
 * merge's index), dropout (null or 0 only), unk_token, continuing_subword_prefix,
 * end_of_word_suffix, fuse_unk, byte_fallback, ignore_merges. file names the file in messages
 * ("<file>: model.merges[12]: ..."). Duplicate ids and absurd sizes are refused. */
lt_status lt_bpe_load(const json_t *model, const char *file, lt_bpe **out);
void lt_bpe_free(lt_bpe *b);

/* Appends the ids of one pre-token word[len] (already normalized and pre-tokenized: e.g. the
 * byte-level-mapped "Ġhello") to out, exactly as tokenizers' BPE::tokenize does: ignore_merges
 * (whole word in vocab -> its id), merges by rank, unknown pieces -> byte fallback <0xXX> tokens or
 * unk (fused when fuse_unk). Safe to call from several threads (the word cache is guarded). */
lt_status lt_bpe_encode_word(const lt_bpe *b, const char *word, size_t len, lt_ids *out);

int64_t lt_bpe_vocab_size(const lt_bpe *b);                   /* max vocab id + 1 */
const char *lt_bpe_id_to_token(const lt_bpe *b, int32_t id);   /* NULL when absent */
int32_t lt_bpe_token_to_id(const lt_bpe *b, const char *tok, size_t len); /* -1 when absent */

/* ---------------------------------------------------------------- decoders (decoder.c) */

typedef struct lt_decoder lt_decoder;

/* Builds the decoder chain from tokenizer.json's "decoder" value (null -> tokens joined with " ",
 * as tokenizers' Tokenizer::decode does without a decoder). Types: ByteLevel, Replace (String pattern; Regex pattern refused unless it is
 * handled), ByteFallback, Fuse, Strip, Metaspace, Sequence. Others are refused by name. */
lt_status lt_decoder_load(const json_t *decoder, const char *file, lt_decoder **out);
void lt_decoder_free(lt_decoder *d);
/* Runs the chain over tokens[n] (token strings, as the vocabulary spells them, lens[i] bytes each)
 * and returns the malloc'ed, NUL-terminated text. Bytes that do not form valid UTF-8 after
 * ByteLevel/ByteFallback decoding become U+FFFD, as the reference does (String::from_utf8_lossy). */
lt_status lt_decoder_run(const lt_decoder *d, const char *const *tokens, const size_t *lens, int64_t n, char **out,
                         size_t *out_len);

/* The GPT-2 byte <-> unicode map shared by the ByteLevel pre-tokenizer and decoder: byte b maps to
 * the code point lt_bytelevel_cp[b]; the reverse map covers those 256 code points. */
extern const uint16_t lt_bytelevel_cp[256];
/* The byte a code point stands for, or -1 when cp is not in the map. */
int lt_bytelevel_byte(uint32_t cp);

#endif
