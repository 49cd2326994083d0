/* The BPE model (bpe.c) and the decoders (decoder.c) on hand-written tokenizer.json pieces, with
 * expected ids worked out from tokenizers' rules (merges by rank then leftmost position, unk/byte
 * fallback per character, prefix/suffix handling), every refusal, and a multi-threaded run against
 * the single-threaded result (the word cache). With LOFT_TOKENIZERS_DIR set (a directory with
 * llama3/, qwen3/, llama2/ tokenizer.json), real vocabularies are spot-checked against ids taken
 * from @huggingface/tokenizers. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "tok/tok_internal.h"

static json_t *parse(const char *text) {
    json_error_t e;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &e);
    if (!j) fprintf(stderr, "bad test JSON: %s (line %d): %s\n", e.text, e.line, text);
    return j;
}

static lt_status load_bpe(const char *model_json, lt_bpe **b) {
    json_t *j = parse(model_json);
    if (!j) return lt_errorf(LT_ERR_INTERNAL, "test JSON does not parse");
    lt_status st = lt_bpe_load(j, "t.json", b);
    json_decref(j);
    return st;
}

/* Encodes word and compares with want[nwant]; prints both on a mismatch. */
static int enc_eq(const lt_bpe *b, const char *word, const int32_t *want, int nwant) {
    lt_ids out = {0};
    lt_status st = lt_bpe_encode_word(b, word, strlen(word), &out);
    int ok = !st && out.n == nwant;
    for (int i = 0; ok && i < nwant; i++) ok = out.v[i] == want[i];
    if (!ok) {
        fprintf(stderr, "  encode \"%s\": %s got", word, st ? lt_status_msg(st) : "");
        for (int64_t i = 0; i < out.n; i++) fprintf(stderr, " %d", out.v[i]);
        fprintf(stderr, ", want");
        for (int i = 0; i < nwant; i++) fprintf(stderr, " %d", want[i]);
        fprintf(stderr, "\n");
    }
    lt_status_free(st);
    free(out.v);
    return ok;
}

#define ENC(b, word, ...)                                                                                              \
    do {                                                                                                               \
        const int32_t want_[] = {__VA_ARGS__};                                                                         \
        CHECKF(enc_eq(b, word, want_, (int)(sizeof want_ / sizeof want_[0])), "%s", word);                             \
    } while (0)

static lt_status enc_status(const lt_bpe *b, const char *word) {
    lt_ids out = {0};
    lt_status st = lt_bpe_encode_word(b, word, strlen(word), &out);
    free(out.v);
    return st;
}

/* ---------------------------------------------------------------- merges */

static void test_ranks_and_ties(void) {
    const char *vocab = "\"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2, \"ab\": 3, \"bc\": 4, \"abc\": 5, \"aa\": 6, "
                        "\"aaaa\": 7}";
    char js[1024];
    lt_bpe *b;
    /* a b first (rank 0), then ab c */
    snprintf(js, sizeof js, "{\"type\": \"BPE\", %s, \"merges\": [\"a b\", \"b c\", \"ab c\", \"a a\", \"aa aa\"]}",
             vocab);
    CHECK_OK(load_bpe(js, &b));
    ENC(b, "abc", 5);
    ENC(b, "cab", 2, 3);
    /* equal ranks: the leftmost pair merges first ("aaa" -> aa a, not a aa) */
    ENC(b, "aaa", 6, 0);
    ENC(b, "aaaa", 7);
    ENC(b, "aaaaa", 7, 0);
    ENC(b, "a", 0);
    CHECK(lt_bpe_vocab_size(b) == 8);
    CHECK(lt_bpe_token_to_id(b, "bc", 2) == 4);
    CHECK(lt_bpe_token_to_id(b, "zz", 2) == -1);
    CHECK(strcmp(lt_bpe_id_to_token(b, 5), "abc") == 0);
    CHECK(lt_bpe_id_to_token(b, 8) == NULL && lt_bpe_id_to_token(b, -1) == NULL);
    /* a word longer than the on-stack scratch (128 symbols): 1001 a's -> 250 aaaa, a */
    char longw[1002];
    memset(longw, 'a', 1001);
    longw[1001] = 0;
    lt_ids out = {0};
    CHECK_OK(lt_bpe_encode_word(b, longw, 1001, &out));
    bool ok = out.n == 251 && out.v[250] == 0;
    for (int i = 0; ok && i < 250; i++) ok = out.v[i] == 7;
    CHECKF(ok, "1001 a's gave %lld ids", (long long)out.n);
    free(out.v);
    lt_bpe_free(b);

    /* b c first (rank 0): a bc has no merge */
    snprintf(js, sizeof js, "{%s, \"merges\": [\"b c\", \"a b\", \"ab c\"]}", vocab);
    CHECK_OK(load_bpe(js, &b));
    ENC(b, "abc", 0, 4);
    lt_bpe_free(b);

    /* the pair form gives the same ranks as the string form */
    snprintf(js, sizeof js, "{%s, \"merges\": [[\"b\", \"c\"], [\"a\", \"b\"], [\"ab\", \"c\"]]}", vocab);
    CHECK_OK(load_bpe(js, &b));
    ENC(b, "abc", 0, 4);
    ENC(b, "ab", 3);
    lt_bpe_free(b);

    /* a repeated merge takes its last rank: "b c" moves behind "a b" */
    snprintf(js, sizeof js, "{%s, \"merges\": [\"b c\", \"a b\", \"ab c\", \"b c\"]}", vocab);
    CHECK_OK(load_bpe(js, &b));
    ENC(b, "abc", 5);
    lt_bpe_free(b);

    /* ids with holes: vocab_size is max id + 1 */
    CHECK_OK(load_bpe("{\"vocab\": {\"a\": 0, \"b\": 9}, \"merges\": []}", &b));
    CHECK(lt_bpe_vocab_size(b) == 10);
    CHECK(lt_bpe_id_to_token(b, 3) == NULL);
    ENC(b, "ba", 9, 0);
    lt_bpe_free(b);
}

static void test_ignore_merges(void) {
    const char *fmt = "{\"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2, \"abc\": 3, \"ab\": 4}, \"merges\": [\"a b\"], "
                      "\"ignore_merges\": %s}";
    char js[256];
    lt_bpe *b;
    snprintf(js, sizeof js, fmt, "true");
    CHECK_OK(load_bpe(js, &b));
    ENC(b, "abc", 3); /* whole word in the vocab: its id, merges or not */
    ENC(b, "abca", 4, 2, 0);
    lt_bpe_free(b);
    snprintf(js, sizeof js, fmt, "false");
    CHECK_OK(load_bpe(js, &b));
    ENC(b, "abc", 4, 2);
    lt_bpe_free(b);
}

static void test_unk_and_byte_fallback(void) {
    lt_bpe *b;
    /* byte fallback: é (C3 A9) is not in the vocab, its byte tokens are */
    CHECK_OK(load_bpe("{\"vocab\": {\"<unk>\": 0, \"a\": 1, \"<0xC3>\": 2, \"<0xA9>\": 3, \"<0xE2>\": 4}, "
                      "\"merges\": [], \"unk_token\": \"<unk>\", \"byte_fallback\": true, \"fuse_unk\": true}",
                      &b));
    ENC(b, "a\xC3\xA9", 1, 2, 3);
    /* € (E2 82 AC): <0x82> is missing, so the whole char becomes unk; two such chars fuse */
    ENC(b,
        "\xE2\x82\xAC\xE2\x82\xAC"
        "a",
        0, 1);
    /* the crate adds byte-fallback tokens before flushing a pending unk */
    ENC(b,
        "\xE2\x82\xAC\xC3\xA9"
        "a",
        2, 3, 0, 1);
    lt_bpe_free(b);

    /* unk with and without fuse_unk */
    const char *fmt = "{\"vocab\": {\"<unk>\": 0, \"a\": 1}, \"merges\": [], \"unk_token\": \"<unk>\", "
                      "\"fuse_unk\": %s}";
    char js[256];
    snprintf(js, sizeof js, fmt, "true");
    CHECK_OK(load_bpe(js, &b));
    ENC(b, "xya", 0, 1);
    ENC(b, "axxa", 1, 0, 1);
    lt_bpe_free(b);
    snprintf(js, sizeof js, fmt, "false");
    CHECK_OK(load_bpe(js, &b));
    ENC(b, "xya", 0, 0, 1);
    lt_bpe_free(b);

    /* no unk and no byte fallback: refused (the reference would drop the char silently) */
    CHECK_OK(load_bpe("{\"vocab\": {\"a\": 0}, \"merges\": []}", &b));
    CHECK_ERR(enc_status(b, "ab"), "not in the vocabulary");
    CHECK_ERR(enc_status(b, "a\xFF"), "not valid UTF-8");
    lt_bpe_free(b);
    /* an unk_token missing from the vocab is an error when it is needed (as the crate) */
    CHECK_OK(load_bpe("{\"vocab\": {\"a\": 0}, \"merges\": [], \"unk_token\": \"<unk>\"}", &b));
    ENC(b, "aa", 0, 0);
    CHECK_ERR(enc_status(b, "ab"), "unk_token");
    lt_bpe_free(b);
}

static void test_prefix_suffix(void) {
    lt_bpe *b;
    /* WordPiece-style prefix: non-first chars are looked up as "##x"; merged = left + right[2..] */
    CHECK_OK(load_bpe("{\"vocab\": {\"<unk>\": 0, \"a\": 1, \"##b\": 2, \"##c\": 3, \"ab\": 4, \"abc\": 5, "
                      "\"b\": 6}, \"merges\": [\"a ##b\", \"ab ##c\"], \"unk_token\": \"<unk>\", "
                      "\"continuing_subword_prefix\": \"##\"}",
                      &b));
    ENC(b, "abc", 5);
    ENC(b, "ab", 4);
    ENC(b, "ba", 6, 0); /* "##a" is unknown */
    ENC(b, "bb", 6, 2);
    lt_bpe_free(b);
    /* suffix on the last char */
    CHECK_OK(load_bpe("{\"vocab\": {\"a\": 0, \"b</w>\": 1, \"ab</w>\": 2, \"b\": 3, \"a</w>\": 4}, "
                      "\"merges\": [\"a b</w>\"], \"end_of_word_suffix\": \"</w>\"}",
                      &b));
    ENC(b, "ab", 2);
    ENC(b, "ba", 3, 4);
    ENC(b, "a", 4);
    lt_bpe_free(b);
    /* empty prefix/suffix strings (Qwen3 writes "") change nothing */
    CHECK_OK(load_bpe("{\"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [[\"a\", \"b\"]], "
                      "\"continuing_subword_prefix\": \"\", \"end_of_word_suffix\": \"\", \"dropout\": null}",
                      &b));
    ENC(b, "abab", 2, 2);
    lt_bpe_free(b);
}

/* U+2581 "▁" words are split into segments before each "▁" when no merge can span it: the result
 * must equal the whole-word merge; with a merge "a ▁" the split must not happen. */
static void test_marker_split(void) {
#define M "\xE2\x96\x81"
    lt_bpe *b;
    CHECK_OK(load_bpe("{\"vocab\": {\"" M "\": 0, \"h\": 1, \"i\": 2, \"" M "h\": 3, \"" M "hi\": 4, \"" M M "\": 5}, "
                      "\"merges\": [\"" M " h\", \"" M "h i\", \"" M " " M "\"]}",
                      &b));
    ENC(b, M "hi" M "hi" M M "hi" M, 4, 4, 0, 4, 0);
    ENC(b, "hi" M M M "h", 1, 2, 5, 3);
    lt_bpe_free(b);
    CHECK_OK(load_bpe("{\"vocab\": {\"" M "\": 0, \"a\": 1, \"a" M "\": 2}, \"merges\": [\"a " M "\"]}", &b));
    ENC(b, "a" M "a" M, 2, 2);
    lt_bpe_free(b);
#undef M
}

/* ---------------------------------------------------------------- refusals */

static void test_bpe_refusals(void) {
    lt_bpe *b = NULL;
    CHECK_ERR(load_bpe("{\"merges\": []}", &b), "model.vocab");
    CHECK_ERR(load_bpe("{\"vocab\": [1], \"merges\": []}", &b), "model.vocab");
    CHECK_ERR(load_bpe("{\"vocab\": {\"a\": \"0\"}, \"merges\": []}", &b), "model.vocab[\"a\"]");
    CHECK_ERR(load_bpe("{\"vocab\": {\"a\": -1}, \"merges\": []}", &b), "model.vocab[\"a\"]");
    CHECK_ERR(load_bpe("{\"vocab\": {\"a\": 1.5}, \"merges\": []}", &b), "model.vocab[\"a\"]");
    CHECK_ERR(load_bpe("{\"vocab\": {\"a\": 16777216}, \"merges\": []}", &b), "outside [0, 16777216)");
    CHECK_ERR(load_bpe("{\"vocab\": {\"a\": 1, \"b\": 1}, \"merges\": []}", &b), "id 1 is also given to");
    CHECK_ERR(load_bpe("{\"vocab\": {\"a\": 0}}", &b), "model.merges");
    CHECK_ERR(load_bpe("{\"vocab\": {\"a\": 0}, \"merges\": {}}", &b), "model.merges");
    CHECK_ERR(load_bpe("{\"vocab\": {\"a\": 0, \"aa\": 1}, \"merges\": [\"a a\", \"a b\"]}", &b),
              "model.merges[1]: token \"b\" is not in model.vocab");
    CHECK_ERR(load_bpe("{\"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}", &b),
              "model.merges[0]: the merged token \"ab\"");
    CHECK_ERR(load_bpe("{\"vocab\": {\"a\": 0, \"aa\": 1}, \"merges\": [\"a a a\"]}", &b), "model.merges[0]");
    CHECK_ERR(load_bpe("{\"vocab\": {\"a\": 0, \"aa\": 1}, \"merges\": [\"aa\"]}", &b), "model.merges[0]");
    CHECK_ERR(load_bpe("{\"vocab\": {\"a\": 0, \"aa\": 1}, \"merges\": [\"a a\", [\"a\", \"a\"]]}", &b),
              "model.merges[1]");
    CHECK_ERR(load_bpe("{\"vocab\": {\"a\": 0, \"aa\": 1}, \"merges\": [[\"a\", \"a\"], \"a a\"]}", &b),
              "model.merges[1]");
    CHECK_ERR(load_bpe("{\"vocab\": {\"a\": 0, \"aa\": 1}, \"merges\": [[\"a\", \"a\", \"a\"]]}", &b),
              "model.merges[0]");
    CHECK_ERR(load_bpe("{\"vocab\": {\"a\": 0, \"aa\": 1}, \"continuing_subword_prefix\": \"##\", "
                       "\"unk_token\": null, \"x\": 1, \"merges\": [\"a a\"]}",
                       &b),
              "shorter than model.continuing_subword_prefix");
    CHECK_ERR(load_bpe("{\"vocab\": {}, \"merges\": [], \"fuse_unk\": \"yes\"}", &b), "model.fuse_unk");
    CHECK_ERR(load_bpe("{\"vocab\": {}, \"merges\": [], \"unk_token\": 3}", &b), "model.unk_token");
    CHECK_ERR(load_bpe("{\"vocab\": {}, \"merges\": [], \"dropout\": 2}", &b), "model.dropout");
    lt_status st = load_bpe("{\"vocab\": {}, \"merges\": [], \"dropout\": 0.1}", &b);
    CHECK(st && lt_status_code(st) == LT_ERR_UNSUPPORTED && strstr(lt_status_msg(st), "model.dropout"));
    lt_status_free(st);
    st = load_bpe("{\"type\": \"Unigram\", \"vocab\": {}, \"merges\": []}", &b);
    CHECK(st && lt_status_code(st) == LT_ERR_UNSUPPORTED && strstr(lt_status_msg(st), "model.type \"Unigram\""));
    lt_status_free(st);
    st = load_bpe("{\"vocab\": {\"a\": -1}, \"merges\": []}", &b);
    CHECK(st && lt_status_code(st) == LT_ERR_FORMAT && strstr(lt_status_msg(st), "t.json"));
    lt_status_free(st);
    CHECK(b == NULL);
    /* dropout 0 is deterministic and accepted */
    CHECK_OK(load_bpe("{\"vocab\": {}, \"merges\": [], \"dropout\": 0}", &b));
    lt_ids out = {0};
    CHECK_OK(lt_bpe_encode_word(b, "", 0, &out));
    CHECK(out.n == 0);
    free(out.v);
    lt_bpe_free(b);
}

/* ---------------------------------------------------------------- threads and the cache */

#define NWORDS 4000
typedef struct work {
    const lt_bpe *b;
    char (*words)[24];
    lt_ids *want;
    int bad;
} work;

static void *worker(void *arg) {
    work *w = arg;
    for (int rep = 0; rep < 5; rep++)
        for (int i = 0; i < NWORDS; i++) {
            int k = (i * 7919 + rep * 31) % NWORDS;
            lt_ids out = {0};
            lt_status st = lt_bpe_encode_word(w->b, w->words[k], strlen(w->words[k]), &out);
            if (st || out.n != w->want[k].n || memcmp(out.v, w->want[k].v, (size_t)out.n * 4) != 0) w->bad++;
            lt_status_free(st);
            free(out.v);
        }
    return NULL;
}

static void test_threads(void) {
    const char *js = "{\"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2, \"ab\": 3, \"bc\": 4, \"abc\": 5, \"ca\": 6, "
                     "\"cab\": 7, \"aa\": 8}, \"merges\": [\"a b\", \"b c\", \"ab c\", \"c a\", \"ca b\", \"a a\"]}";
    lt_bpe *ref, *b;
    CHECK_OK(load_bpe(js, &ref));
    CHECK_OK(load_bpe(js, &b));
    if (!ref || !b) return;
    static char words[NWORDS][24];
    static lt_ids want[NWORDS];
    uint64_t s = 12345;
    for (int i = 0; i < NWORDS; i++) {
        int len = 1 + (int)(i % 20);
        for (int k = 0; k < len; k++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            words[i][k] = "abc"[(s >> 33) % 3];
        }
        words[i][len] = 0;
        want[i] = (lt_ids){0};
        CHECK_OK(lt_bpe_encode_word(ref, words[i], (size_t)len, &want[i]));
    }
    pthread_t th[4];
    work w[4];
    for (int t = 0; t < 4; t++) {
        w[t] = (work){b, words, want, 0};
        pthread_create(&th[t], NULL, worker, &w[t]);
    }
    int bad = 0;
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        bad += w[t].bad;
    }
    CHECKF(bad == 0, "%d words differ between threads and the single-threaded result", bad);
    for (int i = 0; i < NWORDS; i++) free(want[i].v);
    lt_bpe_free(ref);
    lt_bpe_free(b);
}

/* ---------------------------------------------------------------- decoders */

static lt_status load_dec(const char *json, lt_decoder **d) {
    json_t *j = json ? parse(json) : NULL;
    if (json && !j) return lt_errorf(LT_ERR_INTERNAL, "test JSON does not parse");
    lt_status st = lt_decoder_load(j, "t.json", d);
    json_decref(j);
    return st;
}

/* Runs decoder json over the NULL-terminated token list and compares with want. */
static int dec_eq(const char *json, const char *const *toks, const char *want) {
    lt_decoder *d;
    lt_status st = load_dec(json, &d);
    if (st) {
        fprintf(stderr, "  %s\n", lt_status_msg(st));
        lt_status_free(st);
        return 0;
    }
    int64_t n = 0;
    size_t lens[16];
    while (toks[n]) {
        lens[n] = strlen(toks[n]);
        n++;
    }
    char *text;
    size_t len;
    st = lt_decoder_run(d, toks, lens, n, &text, &len);
    int ok = !st && len == strlen(want) && memcmp(text, want, len) == 0 && text[len] == 0;
    if (!ok) fprintf(stderr, "  decoder %s: got \"%s\", want \"%s\"\n", json, st ? lt_status_msg(st) : text, want);
    lt_status_free(st);
    if (!st) free(text);
    lt_decoder_free(d);
    return ok;
}

#define DEC(json, want, ...)                                                                                           \
    do {                                                                                                               \
        const char *toks_[] = {__VA_ARGS__, NULL};                                                                     \
        CHECKF(dec_eq(json, toks_, want), "%s", want);                                                                 \
    } while (0)

#define FFFD "\xEF\xBF\xBD"
#define SP "\xE2\x96\x81" /* U+2581 */

static void test_decoders(void) {
    const char *bl = "{\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true}";
    DEC(bl, " hello world", "\xC4\xA0hello", "\xC4\xA0w", "orld"); /* Ġ = U+0120 = space */
    DEC(bl, "\n\xC3\xA9", "\xC4\x8A", "\xC3\x83", "\xC2\xA9");     /* Ċ; é split over two tokens: Ã © */
    /* C3 then a space: one U+FFFD for the lone lead byte */
    DEC(bl, FFFD " ", "\xC3\x83", "\xC4\xA0");
    /* E2 82 ("âĤ") then 'a': a truncated 3-byte sequence is one maximal invalid subpart -> one U+FFFD */
    DEC(bl, FFFD "a", "\xC3\xA2\xC4\xA4", "a");
    /* a token with a char outside the byte map keeps its own UTF-8 (here €) */
    DEC(bl, "x\xE2\x82\xAC", "x", "\xE2\x82\xAC");
    DEC(bl, "", "");

    const char *llama2 = "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\", \"pattern\": {\"String\": "
                         "\"" SP "\"}, \"content\": \" \"}, {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}, "
                         "{\"type\": \"Strip\", \"content\": \" \", \"start\": 1, \"stop\": 0}]}";
    DEC(llama2, "Hello\n world", SP "Hello", "<0x0A>", SP "world");
    DEC(llama2, "\xE2\x82\xAC!", SP, "<0xE2>", "<0x82>", "<0xAC>", "!"); /* leading space stripped */
    /* an invalid run: one U+FFFD per byte of the run */
    DEC(llama2, FFFD FFFD "a", "<0xE2>", "<0x82>", "a");
    DEC(llama2, " x", SP SP "x");

    const char *bf = "{\"type\": \"ByteFallback\"}";
    DEC(bf, "\nab", "<0x0a>", "a", "b"); /* lowercase hex is accepted (u8::from_str_radix) */
    DEC(bf, "\n", "<0x+A>");             /* and so is a '+' sign */
    DEC(bf, "<0xZZ><0x0>", "<0xZZ>", "<0x0>");
    DEC(bf, FFFD, "<0xFF>");

    DEC("{\"type\": \"Fuse\"}", "abc", "a", "b", "c");
    DEC("{\"type\": \"Replace\", \"pattern\": {\"String\": \"ab\"}, \"content\": \"X\"}", "XaX|aXb", "abaab", "|",
        "aabb");
    DEC("{\"type\": \"Replace\", \"pattern\": {\"Regex\": \"ab\"}, \"content\": \"\"}", "a", "aab");

    const char *strip = "{\"type\": \"Strip\", \"content\": \" \", \"start\": 2, \"stop\": 1}";
    DEC(strip, " abx ", "   a ", " b ", "x  ");
    DEC(strip, "", " "); /* the cuts cross: the crate panics here, we give "" */

    const char *ms = "{\"type\": \"Metaspace\", \"replacement\": \"" SP "\", \"prepend_scheme\": \"always\", "
                     "\"split\": true}";
    DEC(ms, "Hey friend", SP "Hey", SP "friend");
    DEC(ms, "ab c", SP "a" SP "b", SP "c"); /* in the first token every "▁" goes (as the crate) */
    DEC("{\"type\": \"Metaspace\", \"replacement\": \"" SP "\", \"prepend_scheme\": \"never\"}", " Hey", SP "Hey");
    DEC("{\"type\": \"Metaspace\", \"replacement\": \"" SP "\", \"add_prefix_space\": true}", "Hey", SP "Hey");

    DEC(NULL, "a b c", "a", "b", "c"); /* no decoder: tokens joined with " " (Tokenizer::decode) */
    DEC("{\"type\": \"Sequence\", \"decoders\": []}", "abc", "a", "bc");
}

static void test_decoder_refusals(void) {
    lt_decoder *d = NULL;
    lt_status st = load_dec("{\"type\": \"WordPiece\", \"prefix\": \"##\"}", &d);
    CHECK(st && lt_status_code(st) == LT_ERR_UNSUPPORTED);
    CHECKF(st && strstr(lt_status_msg(st), "t.json: decoder.type \"WordPiece\" is not supported by loft"), "%s",
           st ? lt_status_msg(st) : "");
    lt_status_free(st);
    st = load_dec("{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Fuse\"}, {\"type\": \"CTC\"}]}", &d);
    CHECK(st && lt_status_code(st) == LT_ERR_UNSUPPORTED && strstr(lt_status_msg(st), "decoder.decoders[1].type"));
    lt_status_free(st);
    st = load_dec("{\"type\": \"Replace\", \"pattern\": {\"Regex\": \"\\\\s+\"}, \"content\": \" \"}", &d);
    CHECK(st && lt_status_code(st) == LT_ERR_UNSUPPORTED && strstr(lt_status_msg(st), "decoder.pattern"));
    lt_status_free(st);
    CHECK_ERR(load_dec("{\"type\": \"Replace\", \"pattern\": \"x\", \"content\": \" \"}", &d), "decoder.pattern");
    CHECK_ERR(load_dec("{\"type\": \"Replace\", \"pattern\": {\"String\": \"x\"}}", &d), "decoder.content");
    CHECK_ERR(load_dec("{\"type\": \"Strip\", \"start\": 1, \"stop\": 0}", &d), "decoder.content");
    CHECK_ERR(load_dec("{\"type\": \"Strip\", \"content\": \"ab\", \"start\": 1, \"stop\": 0}", &d), "decoder.content");
    CHECK_ERR(load_dec("{\"type\": \"Strip\", \"content\": \" \", \"start\": -1, \"stop\": 0}", &d), "decoder.start");
    CHECK_ERR(load_dec("{\"type\": \"Metaspace\", \"replacement\": \"" SP "\", \"add_prefix_space\": false}", &d),
              "add_prefix_space");
    CHECK_ERR(load_dec("{\"type\": \"Metaspace\", \"replacement\": \"" SP "\", \"prepend_scheme\": \"sometimes\"}", &d),
              "decoder.prepend_scheme");
    CHECK_ERR(load_dec("{\"type\": \"Sequence\", \"decoders\": {}}", &d), "decoder.decoders");
    CHECK_ERR(load_dec("{\"decoders\": []}", &d), "decoder.type");
    CHECK_ERR(load_dec("[1]", &d), "decoder");
    CHECK(d == NULL);
}

/* ---------------------------------------------------------------- real files (optional) */

static lt_bpe *load_real(const char *dir, const char *name, json_t **root) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s/tokenizer.json", dir, name);
    json_error_t e;
    *root = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    CHECKF(*root != NULL, "%s: %s", path, e.text);
    if (!*root) return NULL;
    lt_bpe *b = NULL;
    CHECK_OK(lt_bpe_load(json_object_get(*root, "model"), path, &b));
    return b;
}

static void test_real_files(void) {
    const char *dir = getenv("LOFT_TOKENIZERS_DIR");
    if (!dir || !*dir) {
        printf("SKIPPED: LOFT_TOKENIZERS_DIR not set (real tokenizer.json spot checks)\n");
        return;
    }
    /* ids from @huggingface/tokenizers 0.2.0: model([pre-token]) on the same files */
    json_t *root;
    lt_bpe *b = load_real(dir, "llama3", &root);
    if (b) {
        CHECK(lt_bpe_vocab_size(b) == 128000);
        ENC(b, "\xC4\xA0hello", 24748);
        ENC(b, "Hello", 9906);
        ENC(b, "\xC4\xA0tokenization", 4037, 2065);
        ENC(b, "\xC4\xA0supercalifragilisticexpialidocious", 2307, 5531, 333, 4193, 321, 4633, 4683, 532, 307, 78287);
        ENC(b, "\xC4\xA0\xC4\xA0\xC4\xA0\xC4\xA0", 257);
        ENC(b, "\xC4\xA0\xC3\x83\xC2\xA9t\xC3\x83\xC2\xA9", 24560); /* " été" */
        ENC(b, "\xC4\xA0\xC3\xA6\xC4\xB9\xC2\xA5\xC3\xA6\xC4\xBE\xC2\xAC\xC3\xA8\xC2\xAA\xC5\x80", 105180,
            102158);                                                        /* 日本語 */
        ENC(b, "\xC4\xA0\xC3\xB0\xC5\x81\xC2\xA4\xC4\xB9", 11410, 97, 245); /* " 🤗" */
        lt_bpe_free(b);
    }
    json_decref(root);
    b = load_real(dir, "qwen3", &root);
    if (b) {
        ENC(b, "\xC4\xA0hello", 23811);
        ENC(b, "\xC4\xA0tokenization", 3950, 2022);
        ENC(b, "\xC4\xA0supercalifragilisticexpialidocious", 2256, 5416, 333, 4101, 321, 4532, 4580, 530, 307, 77187);
        ENC(b, "\xC4\xA0\xC3\x83\xC2\xA9t\xC3\x83\xC2\xA9", 23639);
        ENC(b, "\xC4\xA0\xC3\xA6\xC4\xB9\xC2\xA5\xC3\xA6\xC4\xBE\xC2\xAC\xC3\xA8\xC2\xAA\xC5\x80", 75402, 21894,
            102819);
        lt_bpe_free(b);
    }
    json_decref(root);
    b = load_real(dir, "llama2", &root);
    if (b) {
        ENC(b, SP "Hello" SP "world", 22557, 1526);
        ENC(b, SP "tokenization", 6029, 1837);
        ENC(b, SP "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", 28705, 29142, 29119, 30321); /* ▁日本語 */
        ENC(b, SP "\xF0\x9F\xA4\x97" SP "x", 28705, 243, 162, 167, 154, 1318);         /* byte fallback */
        lt_decoder *d = NULL;
        CHECK_OK(lt_decoder_load(json_object_get(root, "decoder"), "llama2", &d));
        if (d) {
            const int32_t ids[] = {22557, 1526, 243, 162, 167, 154};
            const char *toks[6];
            size_t lens[6];
            for (int i = 0; i < 6; i++) {
                toks[i] = lt_bpe_id_to_token(b, ids[i]);
                lens[i] = toks[i] ? strlen(toks[i]) : 0;
            }
            char *text = NULL;
            size_t len = 0;
            CHECK_OK(lt_decoder_run(d, toks, lens, 6, &text, &len));
            CHECKF(text && strcmp(text, "Hello world\xF0\x9F\xA4\x97") == 0, "%s", text ? text : "");
            free(text);
            lt_decoder_free(d);
        }
        lt_bpe_free(b);
    }
    json_decref(root);
}

int main(void) {
    test_ranks_and_ties();
    test_ignore_merges();
    test_unk_and_byte_fallback();
    test_prefix_suffix();
    test_marker_split();
    test_bpe_refusals();
    test_threads();
    test_decoders();
    test_decoder_refusals();
    test_real_files();
    TEST_MAIN_END();
}
