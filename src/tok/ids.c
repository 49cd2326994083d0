/* lt_ids: the growable id array the tokenizer pieces append to. */
#include <stdlib.h>

#include "tok/tok_internal.h"

bool lt_ids_push(lt_ids *a, int32_t id) {
    if (a->n == a->cap) {
        int64_t cap = a->cap ? a->cap * 2 : 64;
        int32_t *v = realloc(a->v, (size_t)cap * sizeof *v);
        if (!v) return false;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = id;
    return true;
}
