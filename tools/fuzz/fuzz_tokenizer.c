/* libFuzzer target: a tokenizer.json and a text in one input, split at the first NUL byte (no NUL:
 * the whole input is tokenizer.json and the text is empty), into lt_tok_load_buffer, then
 * lt_tok_encode (with and without the post-processor) and lt_tok_decode of the ids.
 *
 * A tokenizer must load or be refused with a message; a loaded one must refuse invalid UTF-8 with
 * LT_ERR_INVALID_ARG, and for text it encodes give the same ids twice, ids inside its vocabulary,
 * and decode them. */
#include <stdlib.h>
#include <string.h>

#include "tok/tok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool lt_fuzz_valid_utf8(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k = c < 0x80                 ? 1
                   : c >= 0xC2 && c <= 0xDF ? 2
                   : c >= 0xE0 && c <= 0xEF ? 3
                   : c >= 0xF0 && c <= 0xF4 ? 4
                                            : 0;
        if (!k || n - i < k) return false;
        uint32_t cp = k == 1 ? c : (uint32_t)(c & (0x7F >> k));
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if ((k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += k;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t jlen = nul ? (size_t)(nul - data) : size;
    const char *text = nul ? (const char *)nul + 1 : "";
    size_t tlen = nul ? size - jlen - 1 : 0;
    lt_tokenizer *t = NULL;
    lt_status st = lt_tok_load_buffer((const char *)data, jlen, NULL, 0, "fuzz.json", &t);
    if (st) {
        if (!lt_status_msg(st)[0]) abort(); /* every refusal says something */
        lt_status_free(st);
        return 0;
    }
    bool valid = lt_fuzz_valid_utf8((const uint8_t *)text, tlen);
    for (int special = 0; special < 2; special++) {
        int32_t *a = NULL, *b = NULL;
        int64_t na = 0, nb = 0;
        st = lt_tok_encode(t, text, tlen, special, &a, &na);
        if (st) {
            /* invalid UTF-8 must be refused as such; valid text may be refused with a reason (a
             * pattern's backtracking limit, an unk_token the model lacks, ...) */
            if (!lt_status_msg(st)[0]) abort();
            if (!valid && (lt_status_code(st) != LT_ERR_INVALID_ARG || !strstr(lt_status_msg(st), "not valid UTF-8")))
                abort();
            lt_status_free(st);
            continue;
        }
        if (!valid || !a) abort();
        lt_status st2 = lt_tok_encode(t, text, tlen, special, &b, &nb);
        if (st2 || na != nb || (na && memcmp(a, b, (size_t)na * sizeof *a))) abort(); /* deterministic */
        for (int64_t i = 0; i < na; i++)
            if (a[i] < 0 || a[i] >= lt_tok_vocab_size(t) || !lt_tok_id_to_token(t, a[i])) abort();
        for (int skip = 0; skip < 2; skip++) {
            char *out = NULL;
            size_t olen = 0;
            lt_status d = lt_tok_decode(t, a, na, skip, &out, &olen);
            if (d || !out || out[olen] != 0) abort();
            free(out);
        }
        free(a);
        free(b);
    }
    lt_tok_free(t);
    return 0;
}
