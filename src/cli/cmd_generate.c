/* `loft generate`: text in, text out. A prompt as text (--prompt, tokenized with the model's own
 * tokenizer.json), as ids (--prompt-ids, prints ids), or an interactive chat (--chat) that renders
 * the conversation with the model's chat template, keeps the KV cache of what the next prompt
 * shares with the last one, and streams the reply as it is generated.
 *
 * Stop ids: config.json's eos_token_id, generation_config.json's eos_token_id (end-of-turn ids
 * such as <|eot_id|> and <|im_end|> live there) and tokenizer_config.json's eos_token. Sampling
 * defaults come from generation_config.json unless given on the command line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "model/model.h"
#include "tok/chat.h"
#include "tok/tok.h"

static lt_opt generate_opts[] = {
    {"model", "DIR", "HF model directory or .gguf file (required)", NULL},
    {"prompt", "TEXT", "prompt text, tokenized with the model's tokenizer (prints text)", NULL},
    {"prompt-ids", "1,2,3", "prompt token ids (prints the new ids on one line)", NULL},
    {"chat", NULL, "interactive chat on stdin/stdout with the model's chat template (/reset, /quit)", NULL},
    {"system", "TEXT", "with --chat or --prompt --use-template: a system message", NULL},
    {"use-template", NULL, "with --prompt: wrap the prompt as one user turn with the chat template", NULL},
    {"tokenizer", "DIR", "directory with tokenizer.json and tokenizer_config.json (default: the model's)", NULL},
    {"chat-template", "FILE", "a Jinja chat template file replacing tokenizer_config.json's", NULL},
    {"enable-thinking", "true|false", "passed to the chat template (Qwen3 reasoning switch)", NULL},
    {"max-tokens", "N", "most tokens to generate per reply (default 256; 32 with --prompt-ids)", NULL},
    {"context", "N", "most tokens a chat may hold (default 4096 or the model's maximum if smaller)", NULL},
    {"temperature", "T", "0 = greedy (default: generation_config.json's, else 0)", NULL},
    {"top-k", "K", "sample from the K most likely tokens (0 = off)", NULL},
    {"top-p", "P", "nucleus sampling threshold (1 = off)", NULL},
    {"seed", "S", "sampling seed (default 0); the same seed gives the same tokens", NULL},
    {"ignore-eos", NULL, "keep generating after an end-of-sequence token", NULL},
    {"adapter", "CKPT|DIR", "a LoRA adapter (training checkpoint, run dir or PEFT dir) merged into the base first",
     NULL},
    LT_MODEL_LOAD_OPTS,
    {NULL, NULL, NULL, NULL},
};
static const lt_cmd_info generate_cmd = {
    "generate", "generate text (or ids) from a prompt, or chat interactively",
    "--model DIR (--prompt TEXT | --prompt-ids 1,2,3 | --chat) [--max-tokens N] [--temperature T] [--seed S]",
    generate_opts};

/* ---------------------------------------------------------------- streaming */

/* Streams the decoded text of the tokens generated so far: each new token re-decodes the reply
 * (decoders such as Metaspace and ByteFallback depend on neighbours) and prints what was not
 * printed yet, holding back a trailing U+FFFD that may be a UTF-8 sequence still incomplete. */
typedef struct lt_streamer {
    const lt_tokenizer *tok;
    int32_t *ids;
    int64_t n, cap;
    size_t printed;
    bool print_ids; /* --prompt-ids: print ids, not text */
    const int32_t *stop;
    int n_stop;
    double t_first;
    lt_status err;
    char *text; /* the last decode of ids[0..n): after the final flush, the whole reply */
    size_t text_len;
} lt_streamer;

static bool lt_is_stop(const lt_streamer *s, int32_t t) {
    for (int i = 0; i < s->n_stop; i++)
        if (s->stop[i] == t) return true;
    return false;
}

static void lt_stream_flush(lt_streamer *s, bool final) {
    if (s->print_ids || s->err) return;
    char *text = NULL;
    size_t len = 0;
    s->err = lt_tok_decode(s->tok, s->ids, s->n, true, &text, &len);
    if (s->err) return;
    size_t show = len;
    if (!final && show >= 3 && !memcmp(text + show - 3, "\xEF\xBF\xBD", 3)) show -= 3;
    if (show > s->printed) {
        fwrite(text + s->printed, 1, show - s->printed, stdout);
        fflush(stdout);
        s->printed = show;
    }
    free(s->text);
    s->text = text;
    s->text_len = len;
}

static bool lt_stream_token(void *ctx, int32_t token) {
    lt_streamer *s = ctx;
    if (s->n == 0) s->t_first = lt_time_sec();
    if (s->n == s->cap) {
        int64_t cap = s->cap ? s->cap * 2 : 256;
        int32_t *v = realloc(s->ids, (size_t)cap * sizeof *v);
        if (!v) {
            s->err = lt_errorf(LT_ERR_NOMEM, "out of memory");
            return false;
        }
        s->ids = v;
        s->cap = cap;
    }
    s->ids[s->n++] = token;
    if (s->print_ids) {
        printf(s->n > 1 ? " %d" : "%d", token);
        fflush(stdout);
    } else if (!lt_is_stop(s, token)) {
        lt_stream_flush(s, false);
    } else {
        s->n--; /* the stop token is not part of the reply's text */
    }
    return s->err == NULL;
}

static void lt_stream_reset(lt_streamer *s) {
    s->n = 0;
    s->printed = 0;
}

/* ---------------------------------------------------------------- setup */

typedef struct lt_gen_session {
    lt_pool *pool;
    lt_model *m;
    lt_tokenizer *tok;
    lt_chat_template *tmpl;
    lt_sampler sampler;
    int32_t stop[LT_MAX_STOP];
    int n_stop;
    int64_t max_new;
    int enable_thinking;
} lt_gen_session;

static void lt_gen_session_free(lt_gen_session *g) {
    lt_chat_template_free(g->tmpl);
    lt_tok_free(g->tok);
    lt_model_free(g->m);
    if (g->pool) lt_pool_destroy(g->pool);
}

/* Sampling: the command line wins; otherwise generation_config.json's defaults when it samples. */
static int lt_gen_sampling(const lt_gen_config *gc, lt_sampler *s) {
    const lt_cmd_info *cmd = &generate_cmd;
    bool user = lt_opt_get(cmd, "temperature") || lt_opt_get(cmd, "top-k") || lt_opt_get(cmd, "top-p");
    double t0 = 0.0, p0 = 1.0;
    int64_t k0 = 0;
    if (!user && gc->has_sampling && gc->do_sample) {
        t0 = gc->temperature >= 0 ? gc->temperature : 1.0;
        p0 = gc->top_p > 0 ? gc->top_p : 1.0;
        k0 = gc->top_k >= 0 ? gc->top_k : 0;
        fprintf(stderr,
                "loft generate: sampling with temperature %g, top-k %lld, top-p %g from generation_config.json "
                "(--temperature 0 for greedy)\n",
                t0, (long long)k0, p0);
    }
    int64_t top_k, seed;
    double temp, top_p;
    if (!lt_opt_int(cmd, "top-k", k0, 0, 1 << 30, &top_k) || !lt_opt_int(cmd, "seed", 0, 0, INT64_MAX, &seed) ||
        !lt_opt_float(cmd, "temperature", t0, 0.0, 100.0, &temp) || !lt_opt_float(cmd, "top-p", p0, 1e-6, 1.0, &top_p))
        return 2;
    lt_sampler_init(s, (float)temp, (int)top_k, (float)top_p, (uint64_t)seed);
    return 0;
}

static int lt_gen_setup(lt_gen_session *g, bool need_tok, bool need_template) {
    const lt_cmd_info *cmd = &generate_cmd;
    const char *model_dir = lt_opt_get(cmd, "model");
    const char *adapter = lt_opt_get(cmd, "adapter");
    int rc = adapter ? lt_cli_open_model_adapter(cmd, adapter, &g->pool, &g->m) : lt_cli_open_model(cmd, &g->pool, &g->m);
    if (rc) return rc;
    const lt_model_config *c = lt_model_get_config(g->m);
    const char *tok_dir = lt_opt_get(cmd, "tokenizer") ? lt_opt_get(cmd, "tokenizer") : model_dir;
    lt_gen_config gc;
    lt_status st = lt_gen_config_load(model_dir, c->vocab_size, &gc);
    if (st) return lt_cli_fail(cmd->name, st);
    if ((rc = lt_gen_sampling(&gc, &g->sampler))) return rc;
    if (need_tok) {
        char *tj = lt_path_join(tok_dir, "tokenizer.json");
        bool have = tj && access(tj, R_OK) == 0;
        free(tj);
        if (!have) {
            fprintf(stderr,
                    "loft generate: %s has no tokenizer.json: give --tokenizer DIR (a directory with the model's "
                    "tokenizer.json and tokenizer_config.json), or --prompt-ids to skip tokenization\n",
                    tok_dir);
            return 1;
        }
        if ((st = lt_tok_load(tok_dir, &g->tok))) return lt_cli_fail(cmd->name, st);
        if (lt_tok_vocab_size(g->tok) > c->vocab_size)
            fprintf(stderr, "loft generate: warning: the tokenizer has %lld ids but the model only %lld\n",
                    (long long)lt_tok_vocab_size(g->tok), (long long)c->vocab_size);
    }
    if (need_template && (st = lt_chat_template_load(tok_dir, lt_opt_get(cmd, "chat-template"), &g->tmpl)))
        return lt_cli_fail(cmd->name, st);
    if (!lt_opt_get(cmd, "ignore-eos")) {
        for (int i = 0; i < c->n_eos; i++) lt_stop_add(g->stop, &g->n_stop, (int32_t)c->eos_token_ids[i]);
        for (int i = 0; i < gc.n_eos; i++) lt_stop_add(g->stop, &g->n_stop, gc.eos[i]);
        if (g->tok) lt_stop_add(g->stop, &g->n_stop, lt_tok_get_specials(g->tok).eos_id);
    }
    const char *et = lt_opt_get(cmd, "enable-thinking");
    g->enable_thinking = -1;
    if (et && !strcmp(et, "true")) g->enable_thinking = 1;
    else if (et && !strcmp(et, "false")) g->enable_thinking = 0;
    else if (et) {
        fprintf(stderr, "loft generate: --enable-thinking: expected true or false, got '%s'\n", et);
        return 2;
    }
    return 0;
}

/* Renders messages with the template and tokenizes the result (the template writes BOS itself, so
 * no special tokens are added, as apply_chat_template does). */
static lt_status lt_render_ids(lt_gen_session *g, const json_t *msgs, int32_t **ids, int64_t *n) {
    lt_chat_opts o = {.add_generation_prompt = true, .enable_thinking = g->enable_thinking};
    char *prompt = NULL;
    lt_status st = lt_chat_render(g->tmpl, msgs, &o, &prompt);
    if (!st) st = lt_tok_encode(g->tok, prompt, strlen(prompt), false, ids, n);
    free(prompt);
    return st;
}

static void lt_report_speed(int64_t n_prompt, int64_t n_out, double t0, double t_first, double t_end) {
    if (n_out <= 0) return;
    double t_pre = t_first - t0, t_dec = t_end - t_first;
    fprintf(stderr, "loft generate: prompt %lld tokens in %.3f s (%.1f tok/s), %lld new tokens at %.1f tok/s\n",
            (long long)n_prompt, t_pre, t_pre > 0 ? (double)n_prompt / t_pre : 0.0, (long long)n_out,
            n_out > 1 && t_dec > 0 ? (double)(n_out - 1) / t_dec : 0.0);
}

/* ---------------------------------------------------------------- one prompt */

static int lt_gen_once(lt_gen_session *g, int32_t *prompt, int64_t n_prompt, bool print_ids) {
    lt_streamer s = {.tok = g->tok, .print_ids = print_ids, .stop = g->stop, .n_stop = g->n_stop};
    int32_t *out = malloc((size_t)g->max_new * sizeof *out);
    int64_t n_out = 0;
    double t0 = lt_time_sec();
    lt_kv_cache *kv = NULL;
    lt_status st = out ? NULL : lt_errorf(LT_ERR_NOMEM, "out of memory for %lld tokens", (long long)g->max_new);
    if (!st) st = lt_kv_create(g->m, g->pool, n_prompt + g->max_new, &kv);
    if (!st)
        st = lt_generate_cont(g->m, kv, g->pool, prompt, n_prompt, g->max_new, &g->sampler, g->stop, g->n_stop, out,
                              &n_out, lt_stream_token, &s);
    if (!st && s.err) st = s.err;
    if (!st) lt_stream_flush(&s, true);
    if (!st && s.err) st = s.err;
    printf("\n");
    fflush(stdout);
    if (!st) lt_report_speed(n_prompt, n_out, t0, s.t_first, lt_time_sec());
    lt_kv_free(kv);
    free(out);
    free(s.ids);
    free(s.text);
    return st ? lt_cli_fail("generate", st) : 0;
}

/* ---------------------------------------------------------------- chat */

static int lt_gen_chat(lt_gen_session *g) {
    const lt_model_config *c = lt_model_get_config(g->m);
    int64_t ctx_def = c->max_position_embeddings > 0 && c->max_position_embeddings < 4096 ? c->max_position_embeddings
                                                                                             : 4096;
    int64_t ctx;
    if (!lt_opt_int(&generate_cmd, "context", ctx_def, 16, 1 << 24, &ctx)) return 2;
    lt_kv_cache *kv = NULL;
    lt_status st = lt_kv_create(g->m, g->pool, ctx, &kv);
    if (st) return lt_cli_fail("generate", st);
    json_t *msgs = json_array();
    const char *sys = lt_opt_get(&generate_cmd, "system");
    if (sys) json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "system", "content", sys));
    int32_t *cached = NULL; /* the tokens whose keys/values kv holds */
    int64_t n_cached = 0;
    int32_t *out = malloc((size_t)g->max_new * sizeof *out);
    lt_streamer s = {.tok = g->tok, .stop = g->stop, .n_stop = g->n_stop};
    bool tty = isatty(0);
    char *line = NULL;
    size_t line_cap = 0;
    if (tty) fprintf(stderr, "chat with %s: type a message; /reset starts over, /quit (or Ctrl-D) ends\n",
                     lt_opt_get(&generate_cmd, "model"));
    while (!st && out) {
        if (tty) fprintf(stderr, "> ");
        ssize_t len = getline(&line, &line_cap, stdin);
        if (len < 0) break;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (!strcmp(line, "/quit") || !strcmp(line, "/exit")) break;
        if (!strcmp(line, "/reset")) {
            json_array_clear(msgs);
            if (sys) json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "system", "content", sys));
            continue;
        }
        if (len == 0) continue;
        json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "user", "content", line));
        int32_t *ids = NULL;
        int64_t n = 0;
        if ((st = lt_render_ids(g, msgs, &ids, &n))) break;
        /* keep the cached prefix the new prompt shares; at least one token must be fed */
        int64_t keep = 0;
        while (keep < n_cached && keep < n - 1 && cached[keep] == ids[keep]) keep++;
        lt_kv_truncate(kv, keep);
        int64_t n_out = 0;
        lt_stream_reset(&s);
        double t0 = lt_time_sec();
        st = lt_generate_cont(g->m, kv, g->pool, ids + keep, n - keep, g->max_new, &g->sampler, g->stop, g->n_stop,
                              out, &n_out, lt_stream_token, &s);
        if (!st && s.err) st = s.err;
        if (!st) lt_stream_flush(&s, true);
        if (!st && s.err) st = s.err;
        printf("\n");
        fflush(stdout);
        if (!st) lt_report_speed(n - keep, n_out, t0, s.t_first, lt_time_sec());
        /* what kv now holds: the prompt and every new token but the last */
        int32_t *nc = st ? NULL : realloc(cached, (size_t)(n + n_out) * sizeof *nc);
        if (nc) {
            cached = nc;
            memcpy(cached, ids, (size_t)n * sizeof *ids);
            memcpy(cached + n, out, (size_t)(n_out > 0 ? n_out - 1 : 0) * sizeof *out);
            n_cached = n + (n_out > 0 ? n_out - 1 : 0);
        } else if (!st) {
            st = lt_errorf(LT_ERR_NOMEM, "out of memory");
        }
        free(ids);
        if (st) break;
        /* the final flush decoded the whole reply: it goes into the history as it was printed */
        json_array_append_new(msgs, json_pack("{s:s, s:s%}", "role", "assistant", "content", s.text, s.text_len));
    }
    if (!out && !st) st = lt_errorf(LT_ERR_NOMEM, "out of memory");
    free(line);
    free(out);
    free(cached);
    free(s.ids);
    free(s.text);
    json_decref(msgs);
    lt_kv_free(kv);
    return st ? lt_cli_fail("generate", st) : 0;
}

/* ---------------------------------------------------------------- entry */

int lt_cmd_generate(int argc, char **argv) {
    const char *pos[1];
    int npos;
    const lt_cmd_info *cmd = &generate_cmd;
    int rc = lt_args_parse(cmd, argc, argv, pos, 0, &npos);
    if (rc >= 0) return rc;
    const char *text = lt_opt_get(cmd, "prompt"), *ids_s = lt_opt_get(cmd, "prompt-ids");
    bool chat = lt_opt_get(cmd, "chat") != NULL, use_tmpl = lt_opt_get(cmd, "use-template") != NULL;
    if (!lt_opt_get(cmd, "model") || (!!text + !!ids_s + chat) != 1) {
        fprintf(stderr, "loft generate: --model and exactly one of --prompt, --prompt-ids or --chat are required; "
                        "see 'loft generate --help'\n");
        return 2;
    }
    if (use_tmpl && !text) {
        fprintf(stderr, "loft generate: --use-template goes with --prompt\n");
        return 2;
    }
    lt_gen_session g = {0};
    if (!lt_opt_int(cmd, "max-tokens", ids_s ? 32 : 256, 1, 1 << 24, &g.max_new)) return 2;
    const lt_gen_config none = {.temperature = -1, .top_p = -1, .top_k = -1};
    if (lt_gen_sampling(&none, &g.sampler)) return 2; /* bad values are usage errors, before any loading */
    int32_t *prompt = NULL;
    int64_t n_prompt = 0;
    if (ids_s && !lt_parse_ids("generate", "prompt-ids", ids_s, &prompt, &n_prompt)) return 2;
    rc = lt_gen_setup(&g, !ids_s, chat || use_tmpl);
    lt_status st = NULL;
    if (!rc && text && use_tmpl) {
        json_t *msgs = json_array();
        const char *sys = lt_opt_get(cmd, "system");
        if (sys) json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "system", "content", sys));
        json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "user", "content", text));
        st = lt_render_ids(&g, msgs, &prompt, &n_prompt);
        json_decref(msgs);
    } else if (!rc && text) {
        st = lt_tok_encode(g.tok, text, strlen(text), true, &prompt, &n_prompt);
    }
    if (!rc && st) rc = lt_cli_fail("generate", st);
    if (!rc && !chat && n_prompt == 0) {
        fprintf(stderr, "loft generate: the prompt is empty after tokenization; give some text\n");
        rc = 2;
    }
    if (!rc) rc = chat ? lt_gen_chat(&g) : lt_gen_once(&g, prompt, n_prompt, ids_s != NULL);
    free(prompt);
    lt_gen_session_free(&g);
    return rc;
}
