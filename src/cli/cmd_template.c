/* `loft template`: renders a conversation with the model's chat template and prints the prompt. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "tok/chat.h"

static lt_opt template_opts[] = {
    {"tokenizer", "DIR", "tokenizer directory: tokenizer_config.json gives chat_template, bos_token, eos_token", NULL},
    {"template", "FILE", "a Jinja template file to use instead of the config's chat_template", NULL},
    {"add-generation-prompt", NULL, "end with the assistant's header (add_generation_prompt=true)", NULL},
    {"enable-thinking", "true|false", "set enable_thinking (default: left undefined)", NULL},
    {"tools", "FILE", "a JSON list of tool definitions, passed as `tools`", NULL},
    {NULL, NULL, NULL, NULL},
};
static const lt_cmd_info template_cmd = {
    "template", "render a conversation with a chat template; the prompt goes to stdout exactly, without a newline",
    "--tokenizer DIR [--template FILE] [--add-generation-prompt] [--enable-thinking true|false] [--tools FILE] "
    "< messages.json\n\n"
    "messages.json is a JSON list of {\"role\", \"content\", ...} objects, or an object with \"messages\",\n"
    "optionally \"tools\", and any other keys as extra template variables (e.g. \"date_string\").\n"
    "strftime_now() in a template uses the local time: pass date_string to pin dates.",
    template_opts};

#define MAX_INPUT_BYTES ((size_t)256 << 20) /* a conversation file; real ones are KiB to a few MiB */

static lt_status read_stdin(char **out, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return lt_errorf(LT_ERR_NOMEM, "out of memory");
    for (;;) {
        if (n == cap) {
            if (cap >= MAX_INPUT_BYTES) {
                free(buf);
                return lt_errorf(LT_ERR_INVALID_ARG, "<stdin>: more than %zu MiB of input", MAX_INPUT_BYTES >> 20);
            }
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                return lt_errorf(LT_ERR_NOMEM, "out of memory");
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, stdin);
        n += r;
        if (r == 0) break;
    }
    if (ferror(stdin)) {
        free(buf);
        return lt_errorf(LT_ERR_IO, "<stdin>: read failed");
    }
    *out = buf;
    *len = n;
    return NULL;
}

/* Integers as doubles (JSON_DECODE_INT_AS_REAL), as JavaScript's JSON.parse reads them: the
 * reference template engine sees the same numbers. */
static lt_status parse_json(const char *what, const char *text, size_t len, json_t **out) {
    json_error_t err;
    *out = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &err);
    if (!*out) return lt_errorf(LT_ERR_FORMAT, "%s:%d:%d: invalid JSON: %s", what, err.line, err.column, err.text);
    return NULL;
}

static lt_status load_input(const char *tools_path, json_t **messages, json_t **tools, json_t **extra) {
    char *text = NULL;
    size_t len = 0;
    lt_status st = read_stdin(&text, &len);
    if (st) return st;
    json_t *root;
    st = parse_json("<stdin>", text, len, &root);
    free(text);
    if (st) return st;
    if (json_is_array(root)) {
        *messages = root;
    } else if (json_is_object(root) && json_is_array(json_object_get(root, "messages"))) {
        *messages = json_incref(json_object_get(root, "messages"));
        json_t *t = json_object_get(root, "tools");
        if (t) *tools = json_incref(t);
        *extra = json_deep_copy(root);
        json_object_del(*extra, "messages");
        json_object_del(*extra, "tools");
        json_decref(root);
    } else {
        json_decref(root);
        return lt_errorf(LT_ERR_INVALID_ARG, "<stdin>: expected a JSON list of messages, or an object with a "
                                             "\"messages\" list");
    }
    if (tools_path) {
        if (*tools)
            return lt_errorf(LT_ERR_INVALID_ARG, "tools are given twice: in --tools and in the input's \"tools\"");
        int64_t n;
        if ((st = lt_read_file(tools_path, (int64_t)MAX_INPUT_BYTES, &text, &n))) return st;
        st = parse_json(tools_path, text, (size_t)n, tools);
        free(text);
        if (st) return st;
    }
    if (*tools && !json_is_array(*tools)) return lt_errorf(LT_ERR_INVALID_ARG, "tools: expected a JSON list");
    return NULL;
}

int lt_cmd_template(int argc, char **argv) {
    const char *pos[1];
    int npos;
    int rc = lt_args_parse(&template_cmd, argc, argv, pos, 0, &npos);
    if (rc >= 0) return rc;
    const char *dir = lt_opt_get(&template_cmd, "tokenizer"), *file = lt_opt_get(&template_cmd, "template");
    if (!dir && !file) {
        fprintf(stderr,
                "loft template: --tokenizer DIR (or --template FILE) is required; see 'loft template --help'\n");
        return 2;
    }
    lt_chat_opts o = {.add_generation_prompt = lt_opt_get(&template_cmd, "add-generation-prompt") != NULL,
                      .enable_thinking = -1};
    const char *think = lt_opt_get(&template_cmd, "enable-thinking");
    if (think) {
        if (!strcmp(think, "true"))
            o.enable_thinking = 1;
        else if (!strcmp(think, "false"))
            o.enable_thinking = 0;
        else {
            fprintf(stderr, "loft template: --enable-thinking: expected true or false, got '%s'\n", think);
            return 2;
        }
    }
    json_t *messages = NULL, *tools = NULL, *extra = NULL;
    lt_chat_template *ct = NULL;
    char *prompt = NULL;
    lt_status st = lt_chat_template_load(dir, file, &ct);
    if (!st) st = load_input(lt_opt_get(&template_cmd, "tools"), &messages, &tools, &extra);
    if (!st) {
        o.tools = tools;
        o.extra = extra;
        st = lt_chat_render(ct, messages, &o, &prompt);
    }
    if (!st) {
        size_t n = strlen(prompt);
        if (fwrite(prompt, 1, n, stdout) != n || fflush(stdout) != 0)
            st = lt_errorf(LT_ERR_IO, "<stdout>: write failed");
    }
    free(prompt);
    json_decref(messages);
    json_decref(tools);
    json_decref(extra);
    lt_chat_template_free(ct);
    return st ? lt_cli_fail("template", st) : 0;
}
