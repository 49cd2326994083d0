/* libFuzzer harness for the GGUF reader: every input is opened with lt_gguf_open_buffer. A
 * refusal must come back as a status naming the input; an accepted file must have every string,
 * array and tensor inside the input, findable by key/name, usable through the typed accessors,
 * dequantizable (first row, for the supported types) and convertible to a config or refused.
 * Build and run: see tools/fuzz/README.md. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/io.h"
#include "quant/gguf_blocks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static float g_row[1 << 16];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lt_gguf_file *f = NULL;
    lt_status st = lt_gguf_open_buffer(data, (int64_t)size, "fuzz.gguf", &f);
    if (st) {
        LT_ASSERT(f == NULL && strstr(lt_status_msg(st), "fuzz.gguf") != NULL);
        lt_status_free(st);
        return 0;
    }
    for (int64_t i = 0; i < lt_gguf_kv_count(f); i++) {
        const lt_gguf_kv *kv = lt_gguf_kv_at(f, i);
        LT_ASSERT(kv->key[0] && lt_gguf_find_kv(f, kv->key) == kv);
        int64_t v;
        double r;
        lt_gguf_str s;
        lt_status_free(lt_gguf_get_int(f, kv->key, INT64_MIN, INT64_MAX, &v));
        lt_status_free(lt_gguf_get_real(f, kv->key, &r));
        if (!(st = lt_gguf_get_str(f, kv->key, &s)))
            LT_ASSERT(s.len == 0 || ((const uint8_t *)s.s >= data && (const uint8_t *)s.s + s.len <= data + size));
        lt_status_free(st);
        if (kv->type != LT_GGUF_ARRAY) continue;
        for (int64_t j = 0; j < kv->n; j++) {
            (void)lt_gguf_arr_int(kv, j, &v);
            (void)lt_gguf_arr_real(kv, j, &r);
            if (lt_gguf_arr_str(kv, j, &s) && s.len > 0) {
                volatile char c = s.s[0] ^ s.s[s.len - 1]; /* ASan checks both ends */
                (void)c;
            }
        }
    }
    for (int64_t i = 0; i < lt_gguf_tensor_count(f); i++) {
        const lt_gguf_tensor *t = lt_gguf_tensor_at(f, i);
        const uint8_t *d = t->data;
        LT_ASSERT(lt_gguf_find_tensor(f, t->name) == t && t->nbytes > 0);
        LT_ASSERT(d >= data + lt_gguf_data_start(f) && d + t->nbytes <= data + size);
        volatile uint8_t sink = d[0] ^ d[t->nbytes - 1];
        (void)sink;
        if (lt_gguf_can_dequant(t->type) && t->ne[0] <= (int64_t)(sizeof g_row / sizeof g_row[0]))
            lt_status_free(lt_gguf_dequant_rows(t, t->ne[1] * t->ne[2] * t->ne[3] - 1, 1, g_row));
        char hf[128], back[128];
        if (lt_gguf_name_to_hf(t->name, hf, sizeof hf))
            LT_ASSERT(lt_gguf_name_from_hf(hf, back, sizeof back) && !strcmp(back, t->name));
    }
    lt_model_config cfg;
    if (!(st = lt_gguf_to_config(f, &cfg))) {
        LT_ASSERT(lt_config_validate(&cfg, "fuzz") == NULL && lt_config_n_params(&cfg) > 0);
    }
    lt_status_free(st);
    lt_gguf_close(f);
    return 0;
}
