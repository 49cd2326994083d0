/* tok — Hugging Face tokenizer.json (BPE: byte-level like Llama 3 / Qwen, SentencePiece-style
 * with byte fallback like Llama 2), producing exactly the ids @huggingface/tokenizers produces.
 *
 * Usage:
 *   lt_tokenizer *t; lt_status st = lt_tok_load("models/llama3", &t);   // dir with tokenizer.json
 *   int32_t *ids; int64_t n; st = lt_tok_encode(t, "Hello world", 11, true, &ids, &n);
 *   char *text; size_t len; st = lt_tok_decode(t, ids, n, false, &text, &len);
 *   free(ids); free(text); lt_tok_free(t);
 *
 * Pipeline (as tokenizers' TokenizerImpl): added tokens are split out of the raw text first (their
 * special/lstrip/rstrip/single_word/normalized flags honoured); each remaining piece goes through
 * the normalizer, the pre-tokenizer and the BPE model; the post-processor adds BOS/EOS when
 * add_special is set. Unsupported component types in tokenizer.json are refused by name.
 *
 * Input text must be valid UTF-8: invalid input is refused (LT_ERR_INVALID_ARG naming the byte
 * offset) rather than silently replaced, because a replacement changes the ids a user trains on.
 *
 * Threads: a loaded tokenizer is immutable apart from an internal cache of recent pre-tokens,
 * which is guarded, so encode and decode may be called from several threads at once.
 * Ownership: arrays and strings returned are malloc'ed; the caller free()s them.
 */
#ifndef LT_TOK_H
#define LT_TOK_H

#include "core/core.h"

typedef struct lt_tokenizer lt_tokenizer;

/* Loads path/tokenizer.json (path a directory) or path itself (a .json file); when a
 * tokenizer_config.json sits beside it, its bos/eos/pad tokens and add_bos_token/add_eos_token
 * are read too. Sizes are checked; messages name the file and the JSON key. */
lt_status lt_tok_load(const char *path, lt_tokenizer **out);
/* The same from memory: json[len] is tokenizer.json, config (may be NULL) tokenizer_config.json.
 * name is used in messages. */
lt_status lt_tok_load_buffer(const char *json, size_t len, const char *config, size_t config_len,
                             const char *name, lt_tokenizer **out);
void lt_tok_free(lt_tokenizer *t);

/* Encodes text[len] (UTF-8). add_special: apply the post-processor (BOS etc.), as
 * encode(text, add_special_tokens=True) does. *ids is malloc'ed (non-NULL even when *n == 0). */
lt_status lt_tok_encode(const lt_tokenizer *t, const char *text, size_t len, bool add_special, int32_t **ids,
                        int64_t *n);
/* Decodes ids with the tokenizer's decoder, as decode(ids, skip_special_tokens) does. Ids outside
 * the vocabulary are refused. *text is malloc'ed and NUL-terminated; *len excludes the NUL. */
lt_status lt_tok_decode(const lt_tokenizer *t, const int32_t *ids, int64_t n, bool skip_special, char **text,
                        size_t *len);

/* Size of the id space (model vocab + added tokens: max id + 1). */
int64_t lt_tok_vocab_size(const lt_tokenizer *t);
/* The token string of id (as in tokenizer.json, e.g. "Ġthe"); NULL when out of range. */
const char *lt_tok_id_to_token(const lt_tokenizer *t, int32_t id);
/* The id of a token string (vocab or added token); -1 when absent. */
int32_t lt_tok_token_to_id(const lt_tokenizer *t, const char *token);
/* Whether id is an added token marked special. */
bool lt_tok_is_special(const lt_tokenizer *t, int32_t id);

/* Special tokens from tokenizer_config.json (NULL when not given): bos_token, eos_token, pad_token,
 * as strings (an AddedToken object's "content"), with their ids (-1 when absent). */
typedef struct lt_tok_specials {
    const char *bos, *eos, *pad;
    int32_t bos_id, eos_id, pad_id;
} lt_tok_specials;
lt_tok_specials lt_tok_get_specials(const lt_tokenizer *t);

#endif
