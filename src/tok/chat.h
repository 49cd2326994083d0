/* chat — the model's own chat template: the Jinja subset real chat templates use, rendered
 * byte for byte like @huggingface/jinja (and transformers' apply_chat_template).
 *
 * Usage:
 *   lt_chat_template *ct; lt_status st = lt_chat_template_load("models/qwen3", NULL, &ct);
 *   json_t *msgs = json_loads("[{\"role\":\"user\",\"content\":\"Hi\"}]", 0, NULL);
 *   lt_chat_opts o = {.add_generation_prompt = true, .enable_thinking = -1};
 *   char *prompt; st = lt_chat_render(ct, msgs, &o, &prompt);
 *   free(prompt); json_decref(msgs); lt_chat_template_free(ct);
 *
 * Lower level: lt_jinja_parse compiles any template; lt_jinja_render renders it with a JSON
 * object as the context. A construct the engine does not implement is refused at parse time (or,
 * for a filter/method/test applied to a value it does not handle, at render time) with the
 * template's line and column: never rendered wrongly in silence. raise_exception(msg) in a template
 * becomes an LT_ERR_INVALID_ARG status carrying msg.
 */
#ifndef LT_CHAT_H
#define LT_CHAT_H

#include <jansson.h>

#include "core/core.h"

typedef struct lt_jinja lt_jinja;

/* Compiles src[len]; name (e.g. "models/qwen3/tokenizer_config.json:chat_template") is used in
 * messages, which give line:column within the template. */
lt_status lt_jinja_parse(const char *src, size_t len, const char *name, lt_jinja **out);
/* Renders with the variables of the JSON object ctx; *out is malloc'ed and NUL-terminated. */
lt_status lt_jinja_render(const lt_jinja *t, const json_t *ctx, char **out);
void lt_jinja_free(lt_jinja *t);

typedef struct lt_chat_template lt_chat_template;

/* Reads tokenizer_dir/tokenizer_config.json: chat_template (a string, or the list-of-named-
 * templates form, where "default" is used), bos_token and eos_token (strings or AddedToken
 * objects). override_path (may be NULL) is a template file that replaces the config's. Without
 * either, LT_ERR_UNSUPPORTED with a message saying how to give one (--chat-template FILE or the
 * recipe's chat_template key); loft never guesses a template. */
lt_status lt_chat_template_load(const char *tokenizer_dir, const char *override_path, lt_chat_template **out);
void lt_chat_template_free(lt_chat_template *t);

typedef struct lt_chat_opts {
    bool add_generation_prompt;
    int enable_thinking;  /* -1: leave undefined in the context; 0: false; 1: true */
    const json_t *tools;  /* may be NULL: a JSON list passed as `tools` */
    const json_t *extra;  /* may be NULL: a JSON object whose keys are added to the context */
} lt_chat_opts;

/* Renders messages (a JSON list of {role, content, ...} objects) with context variables
 * messages, bos_token, eos_token, add_generation_prompt and, when set, enable_thinking, tools and
 * the keys of extra. */
lt_status lt_chat_render(const lt_chat_template *t, const json_t *messages, const lt_chat_opts *o, char **out);

#endif
