/* train/data — JSONL datasets -> tokenized examples with loss masks (cached), and the deterministic
 * loader that shuffles, packs and hands out training rows.
 *
 * Usage:
 *   lt_data_opts o = {.path = "datasets/arith/train.jsonl", .format = LT_DATA_AUTO, .tok = tok,
 *                     .chat = tmpl, .train_on_completions = true, .max_seq_len = 512, .skip_bad_lines = true};
 *   lt_dataset *ds; lt_data_report rep; st = lt_dataset_load(&o, &ds, &rep);
 *   lt_loader *ld; st = lt_loader_create(ds, &(lt_loader_opts){.max_seq_len = 512, .packing = true,
 *                                                             .shuffle = true, .seed = 42}, &ld);
 *   lt_row row; st = lt_loader_next(ld, &row);  // row.ids / labels / doc valid until the next call
 *
 * Formats (one JSON object per line; docs in datasets/README.md):
 *   text        {"text": s}                          every token carries loss; BOS as the tokenizer adds it,
 *                                                    EOS appended so the model learns to stop
 *   alpaca      {"instruction", "input"?, "output"}  rendered as a chat (user = instruction + "\n\n" + input,
 *                                                    assistant = output) with the chat template
 *   chat        {"messages": [{"role", "content"}]}  roles system / user / assistant
 *   completion  {"prompt", "completion"}              chat of one user + one assistant turn when the
 *                                                    tokenizer has a chat template, else prompt + completion
 *                                                    as plain text (+ EOS)
 * With a chat template and train_on_completions, only the tokens of assistant turns carry loss —
 * including the template's end-of-turn tokens after each assistant message (so the model learns to stop)
 * — found by rendering the conversation prefix by prefix (render(messages[:i]) is a prefix of
 * render(messages[:i+1])): the characters each assistant message adds. Without train_on_completions
 * every token carries loss. Examples longer than max_seq_len are truncated (counted in the report;
 * text examples are split into max_seq_len pieces instead).
 *
 * Bad lines (not JSON, not an object, missing/mistyped keys, unknown role, invalid UTF-8, no token
 * with loss): with skip_bad_lines counted per reason (the first few quoted with file:line), else the
 * first one fails the load with "FILE:LINE: expected ..., got ...".
 *
 * The tokenized dataset is cached as zstd-compressed shards in cache_dir/<key>/ where key = SHA-256 of
 * (loft data version, the data file bytes, tokenizer.json bytes, chat template text, format, flags,
 * max_seq_len, system prompt): a second run loads it without tokenizing. A damaged cache entry is
 * reported and rebuilt, never trusted.
 */
#ifndef LT_TRAIN_DATA_H
#define LT_TRAIN_DATA_H

#include "core/core.h"
#include "tok/chat.h"
#include "tok/tok.h"
#include "train/recipe.h"

typedef struct lt_data_opts {
    const char *path;
    lt_data_format format;
    const lt_tokenizer *tok;
    const lt_chat_template *chat; /* NULL: the tokenizer has none (chat/alpaca data then refused) */
    const char *tokenizer_json_path; /* for the cache key (bytes hashed) */
    bool train_on_completions;
    int64_t max_seq_len;
    bool skip_bad_lines;
    const char *system_prompt;   /* NULL = none */
    const char *cache_dir;       /* NULL = no cache */
    int32_t eos_id;              /* appended to text examples; -1 = none */
} lt_data_opts;

typedef struct lt_data_report {
    int64_t lines, examples, bad_lines, truncated, tokens, loss_tokens;
    bool from_cache;
    char key[65];          /* the cache key (hex) */
    char first_bad[512];   /* "FILE:LINE: why" of the first skipped line, "" when none */
} lt_data_report;

typedef struct lt_dataset lt_dataset;

lt_status lt_dataset_load(const lt_data_opts *o, lt_dataset **out, lt_data_report *rep);
void lt_dataset_free(lt_dataset *ds);
int64_t lt_dataset_size(const lt_dataset *ds);
/* Example i: its tokens and labels (label = token id where it carries loss, -100 where not; aligned
 * with ids, not shifted: lt_train_targets_from_hf shifts). Pointers owned by ds. */
void lt_dataset_get(const lt_dataset *ds, int64_t i, const int32_t **ids, const int32_t **labels, int64_t *n);
/* Splits off the last `fraction` of the examples (in file order) as a new dataset; ds keeps the rest. */
lt_status lt_dataset_split(lt_dataset *ds, double fraction, lt_dataset **held_out);

typedef struct lt_loader_opts {
    int64_t max_seq_len;
    bool packing; /* greedy: examples in (shuffled) order fill a row until the next does not fit */
    bool shuffle; /* a new permutation each epoch from the counter RNG keyed by (seed, epoch) */
    uint64_t seed;
} lt_loader_opts;

/* One training row: T tokens of one or more whole examples (doc ids 0, 1, ... per example). */
typedef struct lt_row {
    int64_t T;
    const int32_t *ids, *labels, *doc; /* [T] each, owned by the loader */
    int64_t epoch;                     /* the epoch this row belongs to */
} lt_row;

/* Where the loader is: the next row starts at example `cursor` of epoch `epoch`'s order. Saved in
 * checkpoints; restoring it reproduces the remaining rows exactly. */
typedef struct lt_loader_state {
    int64_t epoch, cursor;
} lt_loader_state;

typedef struct lt_loader lt_loader;
lt_status lt_loader_create(const lt_dataset *ds, const lt_loader_opts *o, lt_loader **out);
void lt_loader_free(lt_loader *ld);
/* The next row; rolls into the next epoch at the end of one. Fails only on an empty dataset. */
lt_status lt_loader_next(lt_loader *ld, lt_row *row);
lt_loader_state lt_loader_get_state(const lt_loader *ld);
lt_status lt_loader_set_state(lt_loader *ld, lt_loader_state s); /* refuses a cursor past the epoch */
/* Rows that epoch e yields (packing depends on the order), for step counts and ETAs. */
int64_t lt_loader_rows_in_epoch(lt_loader *ld, int64_t epoch);

#endif
