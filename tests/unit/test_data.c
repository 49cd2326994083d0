/* train/data + loader, with a small byte-level tokenizer and a tiny chat template written here (no network):
 * the label masks of each format (chat: assistant content + end-of-turn only), EOS on text, splitting and
 * truncation, bad lines counted with file:line or fatal, the token cache (hit, identical contents, damage
 * reported and rebuilt), and the loader: seeded order, packing never splits an example nor exceeds
 * max_seq_len, every example once per epoch, rows_in_epoch, and a restored state giving the same rows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "tok/chat.h"
#include "tok/tok.h"
#include "tok/pipeline.h"
#include "tok/tok_internal.h"
#include "train/data.h"

#define BOS 256
#define SEP 257
#define EOT 258

static void write_tokenizer(const char *dir) {
    size_t cap = 65536, n = 0;
    char *s = malloc(cap);
    n += (size_t)snprintf(s + n, cap - n,
                          "{\"version\":\"1.0\",\"added_tokens\":["
                          "{\"id\":256,\"content\":\"<|bos|>\",\"special\":true,\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false},"
                          "{\"id\":257,\"content\":\"<|s|>\",\"special\":true,\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false},"
                          "{\"id\":258,\"content\":\"<|eot|>\",\"special\":true,\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false}],"
                          "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true},"
                          "\"post_processor\":null,\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true},"
                          "\"model\":{\"type\":\"BPE\",\"vocab\":{");
    for (int b = 0; b < 256; b++) {
        char u[4];
        size_t k = lt_utf8_put(lt_bytelevel_cp[b], u);
        n += (size_t)snprintf(s + n, cap - n, "%s\"%s%.*s\":%d", b ? "," : "", (u[0] == '"' || u[0] == '\\') ? "\\" : "",
                              (int)k, u, b);
    }
    n += (size_t)snprintf(s + n, cap - n, "},\"merges\":[]}}");
    char p[4300];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    CHECK_OK(lt_write_file_atomic(p, s, (int64_t)n));
    free(s);
    const char *cfg = "{\"bos_token\": \"<|bos|>\", \"eos_token\": \"<|eot|>\", \"chat_template\": "
                      "\"{{ bos_token }}{% for m in messages %}<|s|>{{ m.role }}\\n{{ m.content }}<|eot|>{% endfor %}"
                      "{% if add_generation_prompt %}<|s|>assistant\\n{% endif %}\"}";
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    CHECK_OK(lt_write_file_atomic(p, cfg, (int64_t)strlen(cfg)));
}

static void write_lines(const char *path, const char *text) { CHECK_OK(lt_write_file_atomic(path, text, (int64_t)strlen(text))); }

/* The labelled text of example i: each label byte as a char, '_' where no loss, '#' for a special. */
static void labelled(const lt_dataset *ds, int64_t i, char *out, size_t cap) {
    const int32_t *ids, *lab;
    int64_t n;
    lt_dataset_get(ds, i, &ids, &lab, &n);
    size_t k = 0;
    for (int64_t t = 0; t < n && k + 1 < cap; t++) out[k++] = lab[t] == -100 ? '_' : lab[t] >= 256 ? '#' : (char)lab[t];
    out[k] = 0;
}

int main(void) {
    char dir[4200], data[4300], cache[4300];
    snprintf(dir, sizeof dir, "%s/test_data", lt_test_tmpdir());
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    CHECK(system(cmd) == 0);
    write_tokenizer(dir);
    lt_tokenizer *tok = NULL;
    lt_chat_template *ct = NULL;
    CHECK_OK(lt_tok_load(dir, &tok));
    CHECK_OK(lt_chat_template_load(dir, NULL, &ct));
    if (!tok || !ct) return 1;
    snprintf(data, sizeof data, "%s/d.jsonl", dir);
    snprintf(cache, sizeof cache, "%s/cache", dir);
    write_lines(data,
                "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"yo\"}]}\n"
                "\n"
                "{\"instruction\": \"add\", \"input\": \"1 2\", \"output\": \"3\"}\n"
                "{\"prompt\": \"p\", \"completion\": \"c\"}\n"
                "{\"text\": \"abc\"}\n"
                "not json\n"
                "{\"messages\": [{\"role\": \"robot\", \"content\": \"x\"}]}\n"
                "{\"prompt\": \"p\"}\n"
                "{\"text\": \"\\u00ff\\ud800\"}\n"
                "{\"text\": \"0123456789abcdefghij\"}\n");
    char tj[4300];
    snprintf(tj, sizeof tj, "%s/tokenizer.json", dir);
    lt_data_opts o = {.path = data, .format = LT_DATA_AUTO, .tok = tok, .chat = ct, .tokenizer_json_path = tj,
                      .train_on_completions = true, .max_seq_len = 8, .skip_bad_lines = true, .cache_dir = cache,
                      .eos_id = EOT};
    lt_dataset *ds = NULL;
    lt_data_report rep;
    o.max_seq_len = 64;
    CHECK_OK(lt_dataset_load(&o, &ds, &rep));
    if (!ds) return 1;
    char lb[256];
    /* chat: "<|bos|><|s|>user\nhi<|eot|><|s|>assistant\nyo<|eot|>": loss on "yo<|eot|>" only */
    labelled(ds, 0, lb, sizeof lb);
    CHECKF(!strcmp(lb, "_____________________yo#"), "chat labels %s", lb);
    labelled(ds, 1, lb, sizeof lb); /* alpaca: user "add\n\n1 2", assistant "3" */
    CHECKF(!strcmp(lb, "___________________________3#"), "alpaca labels %s", lb);
    labelled(ds, 2, lb, sizeof lb);
    CHECKF(!strcmp(lb, "____________________c#"), "completion labels %s", lb);
    labelled(ds, 3, lb, sizeof lb); /* text: every token and the EOS */
    CHECKF(!strcmp(lb, "abc#"), "text labels %s", lb);
    CHECK(rep.examples == 5 && rep.lines == 10 && rep.bad_lines == 4 && !rep.from_cache);
    CHECKF(strstr(rep.first_bad, "d.jsonl:6: not JSON") != NULL, "first bad: %s", rep.first_bad);
    /* the cache: a second load hits and gives the same examples */
    lt_dataset *ds2 = NULL;
    lt_data_report rep2;
    CHECK_OK(lt_dataset_load(&o, &ds2, &rep2));
    CHECK(rep2.from_cache && rep2.examples == 5 && rep2.bad_lines == 4 && !strcmp(rep.key, rep2.key));
    for (int64_t i = 0; ds2 && i < lt_dataset_size(ds); i++) {
        const int32_t *a, *b, *la, *lb2;
        int64_t na, nb;
        lt_dataset_get(ds, i, &a, &la, &na);
        lt_dataset_get(ds2, i, &b, &lb2, &nb);
        CHECK(na == nb && !memcmp(a, b, (size_t)na * 4) && !memcmp(la, lb2, (size_t)na * 4));
    }
    lt_dataset_free(ds2);
    /* damage the entry: reported (stderr), rebuilt, not trusted */
    snprintf(cmd, sizeof cmd, "for f in '%s'/*.tokens.zst; do printf 'XXXX' | dd of=\"$f\" bs=1 seek=700 conv=notrunc 2>/dev/null; done", cache);
    CHECK(system(cmd) == 0);
    CHECK_OK(lt_dataset_load(&o, &ds2, &rep2));
    CHECK(!rep2.from_cache && rep2.examples == 5);
    lt_dataset_free(ds2);
    /* another setting, another key */
    o.max_seq_len = 65;
    CHECK_OK(lt_dataset_load(&o, &ds2, &rep2));
    CHECK(!rep2.from_cache && strcmp(rep.key, rep2.key));
    lt_dataset_free(ds2);
    /* max_seq_len 8: the 20-char text is cut into pieces (trained), chat examples are truncated */
    o.max_seq_len = 8;
    o.cache_dir = NULL;
    CHECK_OK(lt_dataset_load(&o, &ds2, &rep2));
    CHECK(rep2.truncated >= 1);
    for (int64_t i = 0; ds2 && i < lt_dataset_size(ds2); i++) {
        const int32_t *a, *la;
        int64_t na;
        lt_dataset_get(ds2, i, &a, &la, &na);
        CHECK(na <= 8);
    }
    lt_dataset_free(ds2);
    /* fatal mode names the line */
    o.max_seq_len = 64;
    o.skip_bad_lines = false;
    CHECK_ERR(lt_dataset_load(&o, &ds2, &rep2), "d.jsonl:6: not JSON");
    o.skip_bad_lines = true;
    /* no template: chat lines are bad lines with a reason */
    o.chat = NULL;
    CHECK_OK(lt_dataset_load(&o, &ds2, &rep2));
    CHECKF(rep2.examples == 4 && strstr(rep2.first_bad, "d.jsonl:1: chat data needs a chat template"), "%lld: %s",
           (long long)rep2.examples, rep2.first_bad);
    lt_dataset_free(ds2);
    lt_dataset_free(ds);

    /* the loader, on 200 examples of lengths 3..40 */
    snprintf(data, sizeof data, "%s/many.jsonl", dir);
    FILE *f = fopen(data, "w");
    for (int i = 0; i < 200; i++) {
        fprintf(f, "{\"text\": \"");
        for (int k = 0; k < 2 + (i * 37) % 39; k++) fputc('a' + (i + k) % 26, f);
        fprintf(f, "\"}\n");
    }
    fclose(f);
    o = (lt_data_opts){.path = data, .tok = tok, .max_seq_len = 64, .skip_bad_lines = true, .eos_id = EOT};
    CHECK_OK(lt_dataset_load(&o, &ds, &rep));
    CHECK(ds && lt_dataset_size(ds) == 200);
    lt_loader_opts lo = {.max_seq_len = 64, .packing = true, .shuffle = true, .seed = 9};
    lt_loader *a = NULL, *b = NULL;
    CHECK_OK(lt_loader_create(ds, &lo, &a));
    CHECK_OK(lt_loader_create(ds, &lo, &b));
    const int64_t rows0 = lt_loader_rows_in_epoch(a, 0);
    int64_t tokens = 0, rows = 0;
    lt_loader_state mid = {0, 0};
    int32_t saved[64 * 3];
    int64_t saved_T = 0;
    bool ok = true;
    for (; rows < rows0; rows++) {
        lt_row ra, rb;
        CHECK_OK(lt_loader_next(a, &ra));
        CHECK_OK(lt_loader_next(b, &rb));
        ok &= ra.T == rb.T && !memcmp(ra.ids, rb.ids, (size_t)ra.T * 4) && ra.T <= 64 && ra.epoch == 0;
        for (int64_t t = 1; t < ra.T; t++) ok &= ra.doc[t] == ra.doc[t - 1] || ra.doc[t] == ra.doc[t - 1] + 1;
        tokens += ra.T;
        if (rows == 7) mid = lt_loader_get_state(a);
        if (rows >= 8 && rows < 11) memcpy(saved + 64 * (rows - 8), ra.ids, (size_t)ra.T * 4), saved_T += ra.T;
    }
    CHECK(ok);
    CHECK(tokens == rep.tokens); /* every example exactly once in epoch 0 */
    lt_row r1;
    CHECK_OK(lt_loader_next(a, &r1));
    CHECK(r1.epoch == 1 && lt_loader_get_state(a).epoch == 1);
    /* restore the state after row 7 in a new loader: rows 8..10 come again */
    lt_loader *c = NULL;
    CHECK_OK(lt_loader_create(ds, &lo, &c));
    CHECK_OK(lt_loader_set_state(c, mid));
    int64_t again_T = 0;
    for (int k = 0; k < 3; k++) {
        lt_row rc;
        CHECK_OK(lt_loader_next(c, &rc));
        CHECK(!memcmp(saved + 64 * k, rc.ids, (size_t)rc.T * 4));
        again_T += rc.T;
    }
    CHECK(again_T == saved_T);
    CHECK_ERR(lt_loader_set_state(c, (lt_loader_state){0, 201}), "outside the dataset");
    /* another seed: another order; no shuffle and no packing: one example per row in file order */
    lt_loader *d = NULL;
    lt_loader_opts lo2 = {.max_seq_len = 64, .packing = false, .shuffle = false, .seed = 9};
    CHECK_OK(lt_loader_create(ds, &lo2, &d));
    CHECK(lt_loader_rows_in_epoch(d, 0) == 200 && rows0 < 200);
    lt_row rd;
    CHECK_OK(lt_loader_next(d, &rd));
    const int32_t *i0, *l0;
    int64_t n0;
    lt_dataset_get(ds, 0, &i0, &l0, &n0);
    CHECK(rd.T == n0 && !memcmp(rd.ids, i0, (size_t)n0 * 4));
    printf("loader: %lld packed rows for 200 examples (%lld tokens) at max_seq_len 64\n", (long long)rows0, (long long)tokens);
    lt_loader_free(a);
    lt_loader_free(b);
    lt_loader_free(c);
    lt_loader_free(d);
    lt_dataset_free(ds);
    lt_chat_template_free(ct);
    lt_tok_free(tok);
    TEST_MAIN_END();
}
