/* `loft eval --model DIR [--adapter A] --data FILE.jsonl`: exact-match accuracy of greedy answers on a chat
 * dataset whose last message is the reference assistant reply (the checkable tasks in datasets/). Each line:
 * {"messages": [..., {"role": "assistant", "content": ANSWER}], "task": "add"?}; the model gets the messages
 * before the answer (rendered with its chat template, generation prompt added) and its reply, decoded
 * without special tokens and trimmed, must equal ANSWER trimmed. */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "model/model.h"
#include "tok/chat.h"
#include "tok/tok.h"

static lt_opt eval_opts[] = {
    {"model", "DIR", "HF model directory (required)", NULL},
    {"data", "FILE", "chat JSONL whose last message is the reference answer (required)", NULL},
    {"adapter", "CKPT|DIR", "a training checkpoint / run dir / PEFT adapter, merged into the base first", NULL},
    {"limit", "N", "evaluate the first N examples (default all)", NULL},
    {"max-tokens", "N", "most tokens per answer (default 32)", NULL},
    {"show", "N", "print the first N answers with their references (default 3)", NULL},
    {"json", NULL, "print the result as one JSON object", NULL},
    LT_MODEL_LOAD_OPTS,
    {NULL, NULL, NULL, NULL},
};
static const lt_cmd_info eval_cmd = {"eval", "exact-match accuracy of greedy answers on a chat dataset",
                                     "--model DIR --data FILE.jsonl [--adapter CKPT|DIR] [--limit N]", eval_opts};

static void trim(char *s) {
    size_t n = strlen(s), b = 0;
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    while (s[b] && isspace((unsigned char)s[b])) b++;
    memmove(s, s + b, n - b + 1);
}

typedef struct task_acc {
    char name[32];
    int64_t n, ok;
} task_acc;

int lt_cmd_eval(int argc, char **argv) {
    const char *pos[1];
    int n_pos = 0;
    int rc = lt_args_parse(&eval_cmd, argc, argv, pos, 1, &n_pos);
    if (rc >= 0) return rc;
    const char *model = lt_opt_get(&eval_cmd, "model"), *data = lt_opt_get(&eval_cmd, "data"),
               *adapter = lt_opt_get(&eval_cmd, "adapter");
    if (!model || !data || n_pos) {
        fprintf(stderr, "loft eval: --model and --data are required; see 'loft eval --help'\n");
        return 2;
    }
    int64_t limit, max_new, show;
    if (!lt_opt_int(&eval_cmd, "limit", INT64_MAX, 1, INT64_MAX, &limit) ||
        !lt_opt_int(&eval_cmd, "max-tokens", 32, 1, 4096, &max_new) ||
        !lt_opt_int(&eval_cmd, "show", 3, 0, 1 << 20, &show))
        return 2;
    lt_pool *pool = NULL;
    lt_model *m = NULL;
    rc = adapter ? lt_cli_open_model_adapter(&eval_cmd, adapter, &pool, &m) : lt_cli_open_model(&eval_cmd, &pool, &m);
    if (rc) return rc;
    lt_tokenizer *tok = NULL;
    lt_chat_template *tmpl = NULL;
    lt_status st = lt_tok_load(model, &tok);
    if (!st) st = lt_chat_template_load(model, NULL, &tmpl);
    const lt_model_config *mc = lt_model_get_config(m);
    int32_t stop[LT_MAX_STOP];
    int n_stop = 0;
    lt_gen_config gc;
    if (!st) st = lt_gen_config_load(model, mc->vocab_size, &gc);
    if (!st) {
        for (int i = 0; i < mc->n_eos; i++) lt_stop_add(stop, &n_stop, (int32_t)mc->eos_token_ids[i]);
        for (int i = 0; i < gc.n_eos; i++) lt_stop_add(stop, &n_stop, gc.eos[i]);
        lt_stop_add(stop, &n_stop, lt_tok_get_specials(tok).eos_id);
    }
    FILE *f = st ? NULL : fopen(data, "r");
    if (!st && !f) st = lt_errorf(LT_ERR_IO, "%s: cannot open the eval data", data);
    task_acc tasks[16];
    int n_tasks = 0;
    int64_t n = 0, ok = 0, lineno = 0;
    char *line = NULL;
    size_t cap = 0;
    int32_t *out = malloc((size_t)max_new * sizeof(int32_t));
    while (!st && n < limit && getline(&line, &cap, f) > 0) {
        lineno++;
        json_error_t je;
        json_t *root = json_loads(line, JSON_REJECT_DUPLICATES, &je);
        json_t *msgs = root ? json_object_get(root, "messages") : NULL;
        size_t nm = json_is_array(msgs) ? json_array_size(msgs) : 0;
        json_t *last = nm ? json_array_get(msgs, nm - 1) : NULL;
        const char *role = last ? json_string_value(json_object_get(last, "role")) : NULL;
        const char *ref = last ? json_string_value(json_object_get(last, "content")) : NULL;
        if (!role || strcmp(role, "assistant") || !ref) {
            st = lt_errorf(LT_ERR_FORMAT, "%s:%lld: expected {\"messages\": [..., {\"role\": \"assistant\", "
                                          "\"content\": ANSWER}]}", data, (long long)lineno);
            json_decref(root);
            break;
        }
        json_t *prompt_msgs = json_array();
        for (size_t i = 0; i + 1 < nm; i++) json_array_append(prompt_msgs, json_array_get(msgs, i));
        lt_chat_opts co = {.add_generation_prompt = true, .enable_thinking = -1};
        char *text = NULL, *reply = NULL;
        int32_t *ids = NULL;
        int64_t n_ids = 0, n_out = 0;
        st = lt_chat_render(tmpl, prompt_msgs, &co, &text);
        if (!st) st = lt_tok_encode(tok, text, strlen(text), false, &ids, &n_ids);
        lt_sampler smp;
        lt_sampler_init(&smp, 0.0f, 0, 1.0f, 0);
        lt_kv_cache *kv = NULL;
        if (!st) st = lt_kv_create(m, pool, n_ids + max_new, &kv);
        if (!st) st = lt_generate_cont(m, kv, pool, ids, n_ids, max_new, &smp, stop, n_stop, out, &n_out, NULL, NULL);
        lt_kv_free(kv);
        int64_t n_keep = n_out;
        while (n_keep > 0) { /* the stop token itself is not part of the answer */
            bool is_stop = false;
            for (int i = 0; i < n_stop; i++) is_stop |= out[n_keep - 1] == stop[i];
            if (!is_stop) break;
            n_keep--;
        }
        size_t reply_len = 0;
        if (!st) st = lt_tok_decode(tok, out, n_keep, true, &reply, &reply_len);
        if (!st) {
            char *want = strdup(ref);
            trim(reply);
            trim(want);
            const bool good = !strcmp(reply, want);
            ok += good;
            const char *task = json_string_value(json_object_get(root, "task"));
            if (!task) task = "all";
            int k = 0;
            while (k < n_tasks && strcmp(tasks[k].name, task)) k++;
            if (k == n_tasks && n_tasks < 16) snprintf(tasks[n_tasks++].name, sizeof tasks[0].name, "%s", task);
            if (k < n_tasks) {
                tasks[k].n++;
                tasks[k].ok += good;
            }
            if (n < show) {
                for (char *c = reply; *c; c++) /* one line per answer */
                    if (*c == '\n' || *c == '\t' || *c == '\r') *c = ' ';
                printf("  [%s] reference '%s', answer '%s'\n", good ? "ok" : "  ", want, reply);
            }
            free(want);
            n++;
        }
        free(text);
        free(reply);
        free(ids);
        json_decref(prompt_msgs);
        json_decref(root);
    }
    free(line);
    free(out);
    if (f) fclose(f);
    if (!st) {
        if (lt_opt_get(&eval_cmd, "json")) {
            printf("{\"examples\": %lld, \"correct\": %lld, \"accuracy\": %.6f", (long long)n, (long long)ok,
                   n ? (double)ok / (double)n : 0.0);
            for (int k = 0; k < n_tasks; k++)
                printf(", \"%s\": %.6f", tasks[k].name, tasks[k].n ? (double)tasks[k].ok / (double)tasks[k].n : 0.0);
            printf("}\n");
        } else {
            printf("accuracy: %lld/%lld = %.1f%%", (long long)ok, (long long)n, n ? 100.0 * (double)ok / (double)n : 0.0);
            for (int k = 0; k < n_tasks; k++)
                printf("%s %s %lld/%lld", k ? "," : " (", tasks[k].name, (long long)tasks[k].ok, (long long)tasks[k].n);
            printf("%s\n", n_tasks ? ")" : "");
        }
    }
    lt_chat_template_free(tmpl);
    lt_tok_free(tok);
    lt_model_free(m);
    lt_pool_destroy(pool);
    return st ? lt_cli_fail("eval", st) : 0;
}
