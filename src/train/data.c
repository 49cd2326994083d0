/* JSONL datasets -> tokenized examples with labels (see data.h); the token cache is data_cache.c. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/data.h"
#include "train/data_internal.h"

/* ---------------------------------------------------------------- the dataset */

lt_status lt_ds_push(lt_dataset *ds, const int32_t *ids, const int32_t *labels, int64_t n) {
    if (ds->n + 1 >= ds->cap_ex) {
        const int64_t cap = ds->cap_ex ? ds->cap_ex * 2 : 1024;
        int64_t *o = realloc(ds->off, (size_t)(cap + 1) * sizeof *o);
        if (!o) return lt_errorf(LT_ERR_NOMEM, "data: out of memory");
        ds->off = o;
        ds->cap_ex = cap;
        if (ds->n == 0) ds->off[0] = 0;
    }
    const int64_t need = ds->off[ds->n] + n;
    if (need > ds->cap_tok) {
        int64_t cap = ds->cap_tok ? ds->cap_tok : 65536;
        while (cap < need) cap *= 2;
        int32_t *a = realloc(ds->ids, (size_t)cap * sizeof *a);
        if (!a) return lt_errorf(LT_ERR_NOMEM, "data: out of memory for %lld tokens", (long long)cap);
        ds->ids = a;
        int32_t *b = realloc(ds->labels, (size_t)cap * sizeof *b);
        if (!b) return lt_errorf(LT_ERR_NOMEM, "data: out of memory for %lld tokens", (long long)cap);
        ds->labels = b;
        ds->cap_tok = cap;
    }
    memcpy(ds->ids + ds->off[ds->n], ids, (size_t)n * sizeof *ids);
    memcpy(ds->labels + ds->off[ds->n], labels, (size_t)n * sizeof *labels);
    ds->off[ds->n + 1] = need;
    ds->n++;
    return NULL;
}

void lt_dataset_free(lt_dataset *ds) {
    if (!ds) return;
    free(ds->off);
    free(ds->ids);
    free(ds->labels);
    free(ds);
}

int64_t lt_dataset_size(const lt_dataset *ds) { return ds ? ds->n : 0; }

void lt_dataset_get(const lt_dataset *ds, int64_t i, const int32_t **ids, const int32_t **labels, int64_t *n) {
    LT_ASSERT(i >= 0 && i < ds->n);
    *ids = ds->ids + ds->off[i];
    *labels = ds->labels + ds->off[i];
    *n = ds->off[i + 1] - ds->off[i];
}

lt_status lt_dataset_split(lt_dataset *ds, double fraction, lt_dataset **held_out) {
    *held_out = NULL;
    if (!(fraction > 0 && fraction < 1)) return lt_errorf(LT_ERR_INVALID_ARG, "data: split fraction %g", fraction);
    int64_t k = (int64_t)((double)ds->n * fraction + 0.5);
    if (k < 1) k = 1;
    if (k >= ds->n)
        return lt_errorf(LT_ERR_INVALID_ARG, "data.eval_fraction %g of %lld examples leaves nothing to train on",
                         fraction, (long long)ds->n);
    lt_dataset *h = calloc(1, sizeof *h);
    if (!h) return lt_errorf(LT_ERR_NOMEM, "out of memory");
    lt_status st = NULL;
    for (int64_t i = ds->n - k; !st && i < ds->n; i++)
        st = lt_ds_push(h, ds->ids + ds->off[i], ds->labels + ds->off[i], ds->off[i + 1] - ds->off[i]);
    if (st) {
        lt_dataset_free(h);
        return st;
    }
    ds->n -= k;
    *held_out = h;
    return NULL;
}

/* ---------------------------------------------------------------- one example */

typedef struct tokbuf {
    int32_t *ids, *labels;
    int64_t n, cap;
} tokbuf;

static lt_status tb_add(tokbuf *b, const lt_tokenizer *tok, const char *text, size_t len, bool add_special, bool loss) {
    int32_t *ids = NULL;
    int64_t n = 0;
    lt_status st = lt_tok_encode(tok, text, len, add_special, &ids, &n);
    if (st) return st;
    if (b->n + n > b->cap) {
        int64_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        int32_t *a = realloc(b->ids, (size_t)cap * sizeof *a), *l = a ? realloc(b->labels, (size_t)cap * sizeof *l) : NULL;
        if (a) b->ids = a;
        if (!a || !l) {
            free(ids);
            return lt_errorf(LT_ERR_NOMEM, "out of memory");
        }
        b->labels = l;
        b->cap = cap;
    }
    for (int64_t i = 0; i < n; i++) {
        b->ids[b->n + i] = ids[i];
        b->labels[b->n + i] = loss ? ids[i] : LT_DATA_IGNORE;
    }
    b->n += n;
    free(ids);
    return NULL;
}

static lt_status tb_add_id(tokbuf *b, int32_t id, bool loss) {
    if (b->n + 1 > b->cap) {
        const int64_t cap = b->cap ? b->cap * 2 : 256;
        int32_t *a = realloc(b->ids, (size_t)cap * sizeof *a), *l = a ? realloc(b->labels, (size_t)cap * sizeof *l) : NULL;
        if (a) b->ids = a;
        if (!a || !l) return lt_errorf(LT_ERR_NOMEM, "out of memory");
        b->labels = l;
        b->cap = cap;
    }
    b->ids[b->n] = id;
    b->labels[b->n++] = loss ? id : LT_DATA_IGNORE;
    return NULL;
}

/* Tokenizes F[from, to) where the tokens up to and including the first special token (<|eot_id|>,
 * <|im_end|>, </s>: the end-of-turn after an assistant message) carry loss and the rest do not. */
static lt_status add_turn_end(const lt_data_opts *o, tokbuf *b, const char *text, size_t len) {
    const int64_t before = b->n;
    lt_status st = tb_add(b, o->tok, text, len, false, true);
    bool after = false;
    for (int64_t t = before; !st && t < b->n; t++) {
        if (after) b->labels[t] = LT_DATA_IGNORE;
        after |= lt_tok_is_special(o->tok, b->ids[t]);
    }
    return st;
}

/* A chat conversation: tokens of the rendered template F, loss on what each assistant message adds: the text
 * from its generation prompt to the end of its content (Qwen3's template puts an empty think block there
 * for the last answer: that is part of the answer), then the end-of-turn up to and including the first
 * special token (<|eot_id|>, <|im_end|>, </s>), so the model learns to stop. Where a turn starts comes from
 * rendering the messages before it with the generation prompt, which must be a prefix of F (templates that
 * rewrite earlier turns when later ones come are refused for the line); its content is then located in F.
 * Segments are tokenized separately; every cut is right after a generation prompt, at the end of a content
 * before its end-of-turn special token, or at the next generation prompt: places no BPE merge crosses for
 * these templates (tests/reference/data_mask.sh checks the ids equal tokenizing F whole, Llama 3 and Qwen3). */
static lt_status chat_tokens(const lt_data_opts *o, const json_t *msgs, tokbuf *b, const char **why) {
    *why = NULL;
    if (!o->chat) {
        *why = "chat data needs a chat template (the tokenizer has none: set data.chat_template)";
        return NULL;
    }
    const size_t nm = json_array_size(msgs);
    char *full = NULL;
    lt_chat_opts co = {.add_generation_prompt = false, .enable_thinking = -1};
    lt_status st = lt_chat_render(o->chat, msgs, &co, &full);
    if (st) return st;
    const size_t flen = strlen(full);
    size_t done = 0;       /* characters of full already tokenized */
    bool in_turn = false;  /* full[done..] starts right after an assistant content: an end-of-turn comes */
    json_t *prefix = json_array();
    for (size_t i = 0; !st && !*why && i < nm; i++) {
        json_t *m = json_array_get(msgs, i);
        const bool assistant = !strcmp(json_string_value(json_object_get(m, "role")), "assistant");
        if (!(assistant && o->train_on_completions)) {
            json_array_append(prefix, m);
            continue;
        }
        char *p = NULL;
        co.add_generation_prompt = true;
        st = lt_chat_render(o->chat, prefix, &co, &p);
        json_array_append(prefix, m);
        if (st) break;
        const size_t pl = strlen(p);
        const char *content = json_string_value(json_object_get(m, "content"));
        const char *at = pl >= done && pl <= flen && !strncmp(full, p, pl) ? strstr(full + pl, content) : NULL;
        free(p);
        if (!at) {
            *why = "the chat template does not render this conversation prefix by prefix, or rewrites the assistant's "
                   "content: train_on_completions cannot find the assistant tokens";
            break;
        }
        st = in_turn ? add_turn_end(o, b, full + done, pl - done) : tb_add(b, o->tok, full + done, pl - done, false, false);
        const size_t c_end = (size_t)(at - full) + strlen(content);
        if (!st) st = tb_add(b, o->tok, full + pl, c_end - pl, false, true);
        done = c_end;
        in_turn = true;
    }
    if (!st && !*why && done < flen)
        st = in_turn ? add_turn_end(o, b, full + done, flen - done)
                     : tb_add(b, o->tok, full + done, flen - done, false, !o->train_on_completions);
    json_decref(prefix);
    free(full);
    return st;
}

static const char *json_str(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

/* Parses and tokenizes one line into b; *why set (and nothing else) for a bad line. */
static lt_status line_tokens(const lt_data_opts *o, const char *line, size_t len, tokbuf *b, const char **why,
                             char *detail, size_t dcap, bool *is_text) {
    *why = NULL;
    *is_text = false;
    detail[0] = 0;
    json_error_t je;
    json_t *j = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        snprintf(detail, dcap, "not JSON (column %d: %s)", je.column, je.text);
        *why = detail;
        return NULL;
    }
    lt_status st = NULL;
    if (!json_is_object(j)) {
        *why = "expected a JSON object per line";
        goto out;
    }
    lt_data_format f = o->format;
    if (f == LT_DATA_AUTO)
        f = json_object_get(j, "messages") ? LT_DATA_CHAT
            : json_object_get(j, "instruction") ? LT_DATA_ALPACA
            : json_object_get(j, "prompt") ? LT_DATA_COMPLETION
            : json_object_get(j, "text") ? LT_DATA_TEXT
                                         : LT_DATA_AUTO;
    *is_text = f == LT_DATA_TEXT;
    switch (f) {
    case LT_DATA_AUTO:
        *why = "no known keys: expected \"text\", \"messages\", \"instruction\"/\"output\" or \"prompt\"/\"completion\"";
        break;
    case LT_DATA_TEXT: {
        const char *t = json_str(j, "text");
        if (!t) {
            *why = "expected a string \"text\"";
            break;
        }
        st = tb_add(b, o->tok, t, strlen(t), true, true);
        if (!st && o->eos_id >= 0) st = tb_add_id(b, o->eos_id, true);
        break;
    }
    case LT_DATA_CHAT: {
        json_t *msgs = json_object_get(j, "messages");
        if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
            *why = "expected \"messages\": a non-empty list of {\"role\", \"content\"}";
            break;
        }
        size_t i;
        json_t *m;
        bool any_assistant = false;
        json_array_foreach(msgs, i, m) {
            const char *role = json_str(m, "role");
            if (!json_is_object(m) || !role || !json_is_string(json_object_get(m, "content"))) {
                snprintf(detail, dcap, "messages[%zu]: expected {\"role\": ..., \"content\": \"...\"}", i);
                *why = detail;
                break;
            }
            if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant")) {
                snprintf(detail, dcap, "messages[%zu]: unknown role '%.40s' (system, user, assistant)", i, role);
                *why = detail;
                break;
            }
            any_assistant |= !strcmp(role, "assistant");
        }
        if (!*why && !any_assistant && o->train_on_completions) *why = "no assistant message: nothing to learn";
        if (!*why) st = chat_tokens(o, msgs, b, why);
        break;
    }
    case LT_DATA_ALPACA:
    case LT_DATA_COMPLETION: {
        const bool alp = f == LT_DATA_ALPACA;
        const char *q = json_str(j, alp ? "instruction" : "prompt"), *a = json_str(j, alp ? "output" : "completion");
        const char *in = alp ? json_str(j, "input") : NULL;
        if (!q || !a) {
            *why = alp ? "expected strings \"instruction\" and \"output\" (and optionally \"input\")"
                       : "expected strings \"prompt\" and \"completion\"";
            break;
        }
        size_t ql = strlen(q) + (in && in[0] ? strlen(in) + 2 : 0);
        char *user = malloc(ql + 1);
        if (!user) {
            st = lt_errorf(LT_ERR_NOMEM, "out of memory");
            break;
        }
        snprintf(user, ql + 1, "%s%s%s", q, in && in[0] ? "\n\n" : "", in && in[0] ? in : "");
        if (o->chat) {
            json_t *msgs = json_array();
            if (o->system_prompt)
                json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "system", "content", o->system_prompt));
            json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "user", "content", user));
            json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "assistant", "content", a));
            st = chat_tokens(o, msgs, b, why);
            json_decref(msgs);
        } else { /* no template: prompt then completion as plain text, EOS closing the completion */
            st = tb_add(b, o->tok, user, strlen(user), true, !o->train_on_completions);
            if (!st) st = tb_add(b, o->tok, a, strlen(a), false, true);
            if (!st && o->eos_id >= 0) st = tb_add_id(b, o->eos_id, true);
        }
        free(user);
        break;
    }
    }
out:
    json_decref(j);
    if (st && lt_status_code(st) == LT_ERR_FORMAT) { /* e.g. invalid UTF-8: a property of the line */
        snprintf(detail, dcap, "%s", lt_status_msg(st));
        lt_status_free(st);
        *why = detail;
        return NULL;
    }
    return st;
}

/* ---------------------------------------------------------------- the file */

lt_status lt_data_tokenize_file(const lt_data_opts *o, lt_dataset *ds, lt_data_report *rep) {
    FILE *f = fopen(o->path, "r");
    if (!f) return lt_errorf(LT_ERR_IO, "%s: cannot open the dataset (data.train / data.eval)", o->path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    tokbuf b = {0};
    lt_status st = NULL;
    char detail[512];
    while (!st && (len = getline(&line, &cap, f)) >= 0) {
        rep->lines++;
        size_t l = (size_t)len;
        while (l > 0 && (line[l - 1] == '\n' || line[l - 1] == '\r')) l--;
        size_t s = 0;
        while (s < l && (line[s] == ' ' || line[s] == '\t')) s++;
        if (s == l) continue; /* blank lines are allowed */
        b.n = 0;
        const char *why = NULL;
        bool is_text = false;
        st = line_tokens(o, line + s, l - s, &b, &why, detail, sizeof detail, &is_text);
        if (st) break;
        if (!why && b.n > o->max_seq_len) {
            if (is_text) {
                /* raw text: pieces of max_seq_len, each trained */
                for (int64_t p = 0; !st && p < b.n; p += o->max_seq_len) {
                    const int64_t k = b.n - p < o->max_seq_len ? b.n - p : o->max_seq_len;
                    if (k < 2) break;
                    st = lt_ds_push(ds, b.ids + p, b.labels + p, k);
                    rep->examples++, rep->tokens += k;
                    for (int64_t i = 0; i < k; i++) rep->loss_tokens += b.labels[p + i] != LT_DATA_IGNORE;
                }
                rep->truncated++;
                continue;
            }
            b.n = o->max_seq_len;
            rep->truncated++;
        }
        int64_t n_loss = 0;
        for (int64_t i = 1; !why && i < b.n; i++) n_loss += b.labels[i] != LT_DATA_IGNORE; /* label 0 is never scored */
        if (!why && n_loss == 0) why = "no token carries loss (after truncation to data.max_seq_len?)";
        if (why) {
            rep->bad_lines++;
            if (!rep->first_bad[0])
                snprintf(rep->first_bad, sizeof rep->first_bad, "%s:%lld: %s", o->path, (long long)rep->lines, why);
            if (!o->skip_bad_lines)
                st = lt_errorf(LT_ERR_FORMAT, "%s:%lld: %s (data.on_bad_line: fail; set it to skip to count and skip such "
                                              "lines)", o->path, (long long)rep->lines, why);
            continue;
        }
        st = lt_ds_push(ds, b.ids, b.labels, b.n);
        rep->examples++;
        rep->tokens += b.n;
        rep->loss_tokens += n_loss;
    }
    free(line);
    free(b.ids);
    free(b.labels);
    fclose(f);
    return st;
}

lt_status lt_dataset_load(const lt_data_opts *o, lt_dataset **out, lt_data_report *rep) {
    *out = NULL;
    memset(rep, 0, sizeof *rep);
    if (o->max_seq_len < 2) return lt_errorf(LT_ERR_INVALID_ARG, "data: max_seq_len %lld < 2", (long long)o->max_seq_len);
    lt_status st = lt_data_cache_key(o, rep->key);
    if (st) return st;
    lt_dataset *ds = NULL;
    if (o->cache_dir) {
        st = lt_data_cache_load(o, rep->key, &ds, rep);
        if (st) { /* damaged or unreadable: rebuilt below, the reason reported */
            fprintf(stderr, "loft: data cache: %s; tokenizing again\n", lt_status_msg(st));
            lt_status_free(st);
            ds = NULL;
        }
        if (ds) {
            rep->from_cache = true;
            *out = ds;
            return NULL;
        }
    }
    ds = calloc(1, sizeof *ds);
    if (!ds) return lt_errorf(LT_ERR_NOMEM, "out of memory");
    st = lt_data_tokenize_file(o, ds, rep);
    if (st) {
        lt_dataset_free(ds);
        return st;
    }
    if (o->cache_dir) {
        lt_status cs = lt_data_cache_save(o, rep->key, ds, rep);
        if (cs) { /* the run goes on without a cache */
            fprintf(stderr, "loft: data cache not written: %s\n", lt_status_msg(cs));
            lt_status_free(cs);
        }
    }
    *out = ds;
    return NULL;
}
