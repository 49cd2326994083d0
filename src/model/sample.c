/* Sampling (greedy, temperature, top-k, top-p) and the generation loop.
 *
 * lt_sample with temperature > 0, on logits l[vocab]:
 *   1. candidates: all ids, or the top_k largest logits (ties broken towards the lower id);
 *   2. weights w_i = exp((l_i - max) / T) over the candidates (the softmax numerators);
 *   3. top_p < 1: sort candidates by weight (descending, lower id first on ties) and keep the
 *      shortest prefix whose probability mass reaches top_p (at least one token);
 *   4. one draw u = lt_rng_uniform in [0, 1): the first candidate (in that order) whose
 *      cumulative weight exceeds u * total.
 * Exactly one uniform is consumed per sampled token (none when greedy), so a seed fixes the
 * whole sequence. Sums are in double: 150k weights summed in float lose ~1e-4 of the mass.
 *
 * scratch (2*vocab floats, caller-owned): [0, vocab) weights, [vocab, 2*vocab) candidate ids
 * stored as int32. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

void lt_sampler_init(lt_sampler *s, float temperature, int top_k, float top_p, uint64_t seed) {
    s->temperature = temperature;
    s->top_k = top_k;
    s->top_p = top_p;
    lt_rng_init(&s->rng, seed);
}

/* Greedy: the largest logit, the lowest id among equal ones; NaN logits never win. */
static int32_t lt_argmax(const float *logits, int64_t vocab) {
    int64_t best = -1;
    for (int64_t i = 0; i < vocab; i++)
        if (!isnan(logits[i]) && (best < 0 || logits[i] > logits[best])) best = i;
    return (int32_t)(best < 0 ? 0 : best);
}

/* Order by key descending, then id ascending: a strict total order, so results never depend on
 * the sort algorithm. */
static bool lt_before(float ka, int32_t a, float kb, int32_t b) { return ka > kb || (ka == kb && a < b); }

/* Sift-down for a min-heap (the "worst" candidate at the root) of ids keyed by key[id]. */
static void lt_heap_down(int32_t *h, int64_t n, int64_t i, const float *key) {
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && lt_before(key[h[w]], h[w], key[h[l]], h[l])) w = l;
        if (r < n && lt_before(key[h[w]], h[w], key[h[r]], h[r])) w = r;
        if (w == i) return;
        int32_t t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

/* Sorts ids[0..n) best first by key: heap sort on the worst-at-root heap, each step moving the
 * worst remaining id to the back (O(n log n), no recursion, no qsort context pointer needed). */
static void lt_sort_ids(int32_t *ids, int64_t n, const float *key) {
    for (int64_t i = n / 2 - 1; i >= 0; i--) lt_heap_down(ids, n, i, key);
    for (int64_t end = n - 1; end > 0; end--) {
        int32_t t = ids[0]; /* root = worst of the remaining: move it to the back */
        ids[0] = ids[end];
        ids[end] = t;
        lt_heap_down(ids, end, 0, key);
    }
}

/* The k best ids by key, best first, into ids[0..k). */
static void lt_top_k(const float *key, int64_t vocab, int64_t k, int32_t *ids) {
    for (int64_t i = 0; i < k; i++) ids[i] = (int32_t)i;
    for (int64_t i = k / 2 - 1; i >= 0; i--) lt_heap_down(ids, k, i, key);
    for (int64_t i = k; i < vocab; i++) {
        if (lt_before(key[i], (int32_t)i, key[ids[0]], ids[0])) {
            ids[0] = (int32_t)i;
            lt_heap_down(ids, k, 0, key);
        }
    }
    lt_sort_ids(ids, k, key);
}

int32_t lt_sample(lt_sampler *s, const float *logits, int64_t vocab, float *scratch) {
    LT_ASSERT(vocab > 0);
    if (!(s->temperature > 0.0f)) return lt_argmax(logits, vocab);
    float *w = scratch;
    int32_t *ids = (int32_t *)(scratch + vocab);

    /* logits with NaN are treated as -inf: they get weight 0 */
    float mx = -INFINITY;
    for (int64_t i = 0; i < vocab; i++)
        if (logits[i] > mx) mx = logits[i];
    if (mx == -INFINITY) return lt_argmax(logits, vocab);
    const float inv_t = 1.0f / s->temperature;
    for (int64_t i = 0; i < vocab; i++) w[i] = isnan(logits[i]) ? 0.0f : expf((logits[i] - mx) * inv_t);

    const bool use_k = s->top_k > 0 && s->top_k < vocab;
    const bool use_p = s->top_p < 1.0f;
    int64_t n = vocab;
    bool ordered = false; /* ids[0..n) holds the candidates, best first */
    double total = 0.0;   /* the mass top_p is a fraction of: all tokens, or the top-k */
    if (use_k) {
        n = s->top_k;
        lt_top_k(w, vocab, n, ids); /* w is monotone in the logit, so this is top-k of the logits */
        ordered = true;
        for (int64_t i = 0; i < n; i++) total += w[ids[i]];
    } else {
        for (int64_t i = 0; i < vocab; i++) total += w[i];
    }
    if (use_p && !use_k) {
        /* Only weights >= eps can be in the nucleus: the tokens below it (each lighter than every
         * token above it) hold less than vocab * eps = (1 - top_p) * total / 2 of the mass, so the
         * heavier ones alone reach top_p * total and the sorted prefix never gets to the lighter
         * ones. The kept set and its order are those of a full sort; the sort is just shorter. */
        const double eps = 0.5 * (1.0 - (double)s->top_p) * total / (double)vocab;
        n = 0;
        for (int64_t i = 0; i < vocab; i++)
            if ((double)w[i] >= eps) ids[n++] = (int32_t)i;
        lt_sort_ids(ids, n, w);
        ordered = true;
    }
    if (use_p) { /* the shortest best-first prefix holding top_p of the mass, at least one token */
        const double need = (double)s->top_p * total;
        double cum = 0.0;
        int64_t keep = 0;
        while (keep < n) {
            cum += w[ids[keep]];
            keep++;
            if (cum >= need) break;
        }
        n = keep;
        total = cum;
    }

    const double target = (double)lt_rng_uniform(&s->rng) * total;
    double cum = 0.0;
    int32_t last = -1;
    for (int64_t i = 0; i < n; i++) {
        const int32_t id = ordered ? ids[i] : (int32_t)i;
        if (w[id] <= 0.0f) continue;
        cum += w[id];
        last = id;
        if (cum > target) return id;
    }
    return last >= 0 ? last : lt_argmax(logits, vocab); /* rounding left target at the very end */
}

/* ---------------------------------------------------------------- generation */

static bool lt_in(const int32_t *v, int n, int32_t x) {
    for (int i = 0; i < n; i++)
        if (v[i] == x) return true;
    return false;
}

void lt_stop_add(int32_t *stop, int *n, int32_t id) {
    if (id >= 0 && *n < LT_MAX_STOP && !lt_in(stop, *n, id)) stop[(*n)++] = id;
}

lt_status lt_generate_cont(lt_model *m, lt_kv_cache *kv, lt_pool *pool, const int32_t *tokens, int64_t n,
                           int64_t max_new, lt_sampler *s, const int32_t *stop, int n_stop, int32_t *out,
                           int64_t *n_out, lt_token_cb cb, void *ctx) {
    *n_out = 0;
    if (n < 1) return lt_errorf(LT_ERR_INVALID_ARG, "generate: the prompt is empty; give at least one token");
    if (max_new < 0)
        return lt_errorf(LT_ERR_INVALID_ARG, "generate: max_new is %lld, expected >= 0", (long long)max_new);
    const lt_model_config *c = lt_model_get_config(m);
    int64_t need, floats, bytes;
    if (!lt_add_i64(lt_kv_len(kv), n, &need) || !lt_add_i64(need, max_new > 0 ? max_new - 1 : 0, &need) ||
        !lt_mul_i64(c->vocab_size, 3, &floats) || !lt_mul_i64(floats, (int64_t)sizeof(float), &bytes))
        return lt_errorf(LT_ERR_INVALID_ARG, "generate: %lld + %lld tokens overflow", (long long)n, (long long)max_new);
    if (need > lt_kv_capacity(kv))
        return lt_errorf(LT_ERR_INVALID_ARG,
                         "generate: the context would reach %lld tokens but holds at most %lld; start a new "
                         "conversation or raise the context length",
                         (long long)need, (long long)lt_kv_capacity(kv));
    float *buf = NULL; /* logits [vocab] then sampler scratch [2*vocab] */
    lt_status st = lt_pool_alloc(pool, LT_POOL_ACTIVATIONS, bytes, "generate logits + sampler scratch", (void **)&buf);
    if (st) return lt_status_wrapf(st, "generate");
    float *logits = buf, *scratch = buf + c->vocab_size;
    st = lt_model_forward(m, kv, tokens, n, logits, false);
    for (int64_t i = 0; !st && i < max_new; i++) {
        int32_t tok = lt_sample(s, logits, c->vocab_size, scratch);
        out[i] = tok;
        *n_out = i + 1;
        if (cb && !cb(ctx, tok)) break;
        if (lt_in(stop, n_stop, tok) || i + 1 == max_new) break;
        st = lt_model_forward(m, kv, &tok, 1, logits, false);
    }
    lt_pool_free(pool, buf);
    return st ? lt_status_wrapf(st, "generate") : NULL;
}

lt_status lt_generate(lt_model *m, lt_pool *pool, const int32_t *prompt, int64_t n_prompt, int64_t max_new,
                      lt_sampler *s, bool stop_at_eos, int32_t *out, int64_t *n_out, lt_token_cb cb, void *ctx) {
    *n_out = 0;
    if (n_prompt < 1) return lt_errorf(LT_ERR_INVALID_ARG, "generate: the prompt is empty; give at least one token");
    if (max_new < 0)
        return lt_errorf(LT_ERR_INVALID_ARG, "generate: max_new is %lld, expected >= 0", (long long)max_new);
    if (max_new == 0) return NULL;
    const lt_model_config *c = lt_model_get_config(m);
    int32_t stop[LT_MAX_STOP];
    int n_stop = 0;
    for (int i = 0; stop_at_eos && i < c->n_eos; i++) lt_stop_add(stop, &n_stop, (int32_t)c->eos_token_ids[i]);
    int64_t cap;
    if (!lt_add_i64(n_prompt, max_new, &cap))
        return lt_errorf(LT_ERR_INVALID_ARG, "generate: %lld prompt + %lld new tokens overflow", (long long)n_prompt,
                         (long long)max_new);
    lt_kv_cache *kv = NULL;
    lt_status st = lt_kv_create(m, pool, cap, &kv);
    if (st) return lt_status_wrapf(st, "generate");
    st = lt_generate_cont(m, kv, pool, prompt, n_prompt, max_new, s, stop, n_stop, out, n_out, cb, ctx);
    lt_kv_free(kv);
    return st;
}
