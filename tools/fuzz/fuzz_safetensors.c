/* libFuzzer harness for the safetensors reader: every input is opened with lt_st_open_buffer.
 * A refusal must come back as a status; an accepted file must have every tensor inside the
 * input and findable by name. Build and run: see tools/fuzz/README.md. */
#include <stdint.h>
#include <stdlib.h>

#include "io/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lt_st_file *f = NULL;
    lt_status st = lt_st_open_buffer(data, (int64_t)size, "fuzz", &f);
    if (st) {
        LT_ASSERT(f == NULL && lt_status_msg(st)[0] != '\0');
        lt_status_free(st);
        return 0;
    }
    for (int64_t i = 0; i < lt_st_count(f); i++) {
        const lt_st_tensor *t = lt_st_get(f, i);
        const uint8_t *d = t->data;
        LT_ASSERT(t->name[0] && lt_st_find(f, t->name) == t);
        LT_ASSERT(t->nbytes == t->end - t->begin && d >= data + 8 && d + t->nbytes <= data + size);
        volatile uint8_t sink = 0; /* touch the first and last byte: ASan checks the bounds */
        if (t->nbytes > 0) sink ^= d[0] ^ d[t->nbytes - 1];
        (void)sink;
    }
    for (int64_t i = 0; i < lt_st_metadata_count(f); i++) {
        const char *k, *v;
        LT_ASSERT(lt_st_metadata_get(f, i, &k, &v) && lt_st_metadata_find(f, k) != NULL);
    }
    lt_st_close(f);
    return 0;
}
