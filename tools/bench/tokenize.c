/* Benchmark (not a test): encode throughput of loft's tokenizer on one text file, one thread,
 * without special tokens, exactly as tools/bench/tokenize_peer.mjs does it in node.
 *   lines (default): every non-empty line is one lt_tok_encode call (the newline not included),
 *                    the way a dataset's documents/messages are encoded;
 *   whole:           the whole file is one call. Llama 2's tokenizer has no pre-tokenizer, so the
 *                    whole file is one BPE word: a stress test, quadratic-ish in some BPEs.
 * The tokenizer is loaded once; the first pass over the text is timed apart (cold pre-token
 * cache), then the best of RUNS more passes is reported, so loft and the peer are compared warm.
 *
 * usage: bench_tokenize TOKENIZER_DIR TEXT_FILE [runs=5] [lines|whole]
 * prints one line:
 *   bench_tokenize: bytes=B tokens=T calls=C load_s=L first_s=F best_s=S mb_per_s=M tokens_per_s=K
 * (MB = 10^6 bytes; bytes counts the whole file). Run with LOFT_THREADS=1 (tokenize.sh does). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok/tok.h"

/* Text files larger than this are refused: the benchmark holds the text and its ids in memory. */
#define BENCH_MAX_TEXT_BYTES (1LL << 30)

/* One pass over the text; returns its seconds, the total token count and the number of calls. */
static double encode_once(const lt_tokenizer *t, const char *text, int64_t len, bool whole, int64_t *n_tokens,
                          int64_t *n_calls, lt_status *st) {
    int64_t total = 0, calls = 0;
    *st = NULL;
    double t0 = lt_time_sec();
    for (int64_t b = 0; b < len && !*st;) {
        int64_t e = len;
        if (!whole) {
            const char *nl = memchr(text + b, '\n', (size_t)(len - b));
            e = nl ? nl - text : len;
        }
        if (e > b) {
            int32_t *ids = NULL;
            int64_t n = 0;
            *st = lt_tok_encode(t, text + b, (size_t)(e - b), false, &ids, &n);
            free(ids);
            total += n;
            calls++;
        }
        b = e + 1;
    }
    double dt = lt_time_sec() - t0;
    *n_tokens = total;
    *n_calls = calls;
    return dt;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 5 || !strcmp(argv[1], "--help")) {
        fprintf(stderr, "usage: %s TOKENIZER_DIR TEXT_FILE [runs=5] [lines|whole]\n", argv[0]);
        return 2;
    }
    bool whole = argc > 4 && !strcmp(argv[4], "whole");
    if (argc > 4 && !whole && strcmp(argv[4], "lines")) {
        fprintf(stderr, "bench_tokenize: mode must be lines or whole, got '%s'\n", argv[4]);
        return 2;
    }
    int runs = argc > 3 ? atoi(argv[3]) : 5;
    if (runs < 1 || runs > 1000) {
        fprintf(stderr, "bench_tokenize: runs must be 1..1000, got '%s'\n", argv[3]);
        return 2;
    }
    lt_tokenizer *t = NULL;
    char *text = NULL;
    int64_t len = 0;
    double t_load = lt_time_sec();
    lt_status st = lt_tok_load(argv[1], &t);
    t_load = lt_time_sec() - t_load;
    if (!st) st = lt_read_file(argv[2], BENCH_MAX_TEXT_BYTES, &text, &len);
    if (st) {
        fprintf(stderr, "bench_tokenize: %s\n", lt_status_msg(st));
        lt_status_free(st);
        lt_tok_free(t);
        return 1;
    }
    int64_t n_tokens = 0, n_again = 0, n_calls = 0;
    double first = encode_once(t, text, len, whole, &n_tokens, &n_calls, &st), best = 1e30;
    for (int r = 0; r < runs && !st; r++) {
        double dt = encode_once(t, text, len, whole, &n_again, &n_calls, &st);
        if (dt < best) best = dt;
        /* the same text must give the same ids count every time (the cache must not change ids) */
        if (!st && n_again != n_tokens) {
            fprintf(stderr, "bench_tokenize: run %d gave %lld tokens, the first %lld\n", r + 1, (long long)n_again,
                    (long long)n_tokens);
            free(text);
            lt_tok_free(t);
            return 1;
        }
    }
    if (st) {
        fprintf(stderr, "bench_tokenize: encoding %s: %s\n", argv[2], lt_status_msg(st));
        lt_status_free(st);
        free(text);
        lt_tok_free(t);
        return 1;
    }
    if (best <= 0) best = 1e-9; /* a clock too coarse for a tiny file: avoid dividing by zero */
    printf("bench_tokenize: bytes=%lld tokens=%lld calls=%lld load_s=%.3f first_s=%.4f best_s=%.4f mb_per_s=%.2f "
           "tokens_per_s=%.0f\n",
           (long long)len, (long long)n_tokens, (long long)n_calls, t_load, first, best, (double)len / best / 1e6,
           (double)n_tokens / best);
    free(text);
    lt_tok_free(t);
    return 0;
}
