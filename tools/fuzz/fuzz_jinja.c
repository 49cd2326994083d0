/* libFuzzer target: a chat template and its context into the Jinja engine. The input is split at
 * the first NUL byte: before it the template source, after it a JSON object used as the context
 * (when it does not parse, a fixed two-message conversation is used instead, so the fuzzer still
 * exercises rendering). Any template must parse and render, or be refused with a message that
 * names a position; never crash, hang, leak or read outside the input. */
#include <stdlib.h>
#include <string.h>

#include "tok/chat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t tlen = nul ? (size_t)(nul - data) : size;
    json_t *ctx = NULL;
    if (nul && size > tlen + 1)
        ctx = json_loadb((const char *)nul + 1, size - tlen - 1, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
    if (!ctx || !json_is_object(ctx)) {
        json_decref(ctx);
        ctx = json_loads("{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                         "{\"role\":\"user\",\"content\":\"Hi <think>x</think>\"}],"
                         "\"bos_token\":\"<s>\",\"eos_token\":\"</s>\",\"add_generation_prompt\":true}",
                         0, NULL);
    }
    lt_jinja *t = NULL;
    lt_status st = lt_jinja_parse((const char *)data, tlen, "fuzz.jinja", &t);
    if (!st) {
        char *out = NULL;
        st = lt_jinja_render(t, ctx, &out);
        if (!st && !out) abort(); /* success always yields a string */
        free(out);
        lt_jinja_free(t);
    }
    if (st) {
        if (!lt_status_msg(st)[0]) abort(); /* every refusal says something */
        lt_status_free(st);
    }
    json_decref(ctx);
    return 0;
}
