/* Generation that continues a cached sequence (the chat loop's primitive), stop ids, and
 * generation_config.json. Greedy decoding makes every run a deterministic function of the cache
 * contents, so "continuing" and "starting over" must give identical tokens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "test.h"

static const char *cfg_json =
    "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"vocab_size\":131,\"initializer_range\":0.3,"
    "\"bos_token_id\":1,\"eos_token_id\":2}";

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static void test_continue(const char *dir) {
    lt_pool *pool;
    lt_model *m;
    CHECK_OK(lt_pool_create(1LL << 30, &pool));
    CHECK_OK(lt_model_load(dir, pool, lt_backend_cpu(), &m));
    const int32_t prompt[] = {1, 17, 42, 99, 5, 64};
    const int64_t np = 6, max_new = 10;
    int32_t ref[10], got[10];
    int64_t n_ref = 0, n_got = 0;
    lt_sampler s;
    lt_sampler_init(&s, 0.0f, 0, 1.0f, 0);
    CHECK_OK(lt_generate(m, pool, prompt, np, max_new, &s, false, ref, &n_ref, NULL, NULL));
    CHECK(n_ref == max_new);

    /* the prompt fed in two pieces, the second one generating */
    lt_kv_cache *kv;
    CHECK_OK(lt_kv_create(m, pool, 64, &kv));
    CHECK_OK(lt_generate_cont(m, kv, pool, prompt, 4, 0, &s, NULL, 0, got, &n_got, NULL, NULL));
    CHECK(n_got == 0 && lt_kv_len(kv) == 4);
    CHECK_OK(lt_generate_cont(m, kv, pool, prompt + 4, 2, max_new, &s, NULL, 0, got, &n_got, NULL, NULL));
    CHECK(n_got == max_new && !memcmp(got, ref, sizeof ref));
    /* every new token but the last is in the cache */
    CHECK(lt_kv_len(kv) == np + max_new - 1);

    /* truncating back to the prompt minus two and re-feeding those two: the same tokens again */
    lt_kv_truncate(kv, np - 2);
    CHECK(lt_kv_len(kv) == np - 2);
    CHECK_OK(lt_generate_cont(m, kv, pool, prompt + np - 2, 2, max_new, &s, NULL, 0, got, &n_got, NULL, NULL));
    CHECK(n_got == max_new && !memcmp(got, ref, sizeof ref));

    /* a stop id ends generation at its first occurrence, reporting it */
    int64_t first = 0;
    while (first < max_new && ref[first] != ref[3]) first++;
    lt_kv_truncate(kv, 0);
    const int32_t stop[] = {ref[3]};
    CHECK_OK(lt_generate_cont(m, kv, pool, prompt, np, max_new, &s, stop, 1, got, &n_got, NULL, NULL));
    CHECKF(n_got == first + 1 && got[n_got - 1] == ref[3], "stopped after %lld tokens, expected %lld",
           (long long)n_got, (long long)first + 1);

    /* a context that cannot hold the request is refused before any work, naming both sizes */
    lt_kv_truncate(kv, 0);
    CHECK_ERR(lt_generate_cont(m, kv, pool, prompt, np, 60, &s, NULL, 0, got, &n_got, NULL, NULL), "at most 64");
    lt_kv_free(kv);
    lt_model_free(m);
    lt_pool_destroy(pool);
}

static void test_gen_config(const char *dir) {
    char path[800];
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    lt_gen_config g;
    remove(path);
    CHECK_OK(lt_gen_config_load(dir, 131, &g)); /* absent: empty, not an error */
    CHECK(g.n_eos == 0 && !g.has_sampling && g.temperature < 0 && g.top_k < 0);

    write_text(path, "{\"eos_token_id\":[2,7,2],\"do_sample\":true,\"temperature\":0.6,\"top_p\":0.95,\"top_k\":20}");
    CHECK_OK(lt_gen_config_load(dir, 131, &g));
    CHECK(g.n_eos == 2 && g.eos[0] == 2 && g.eos[1] == 7); /* duplicates dropped */
    CHECK(g.has_sampling && g.do_sample && g.temperature == 0.6 && g.top_p == 0.95 && g.top_k == 20);

    write_text(path, "{\"eos_token_id\":5}");
    CHECK_OK(lt_gen_config_load(dir, 131, &g));
    CHECK(g.n_eos == 1 && g.eos[0] == 5);

    write_text(path, "{\"eos_token_id\":[2,131]}");
    CHECK_ERR(lt_gen_config_load(dir, 131, &g), "eos_token_id[1]");
    write_text(path, "{\"top_p\":\"high\"}");
    CHECK_ERR(lt_gen_config_load(dir, 131, &g), "\"top_p\"");
    write_text(path, "{\"do_sample\":1}");
    CHECK_ERR(lt_gen_config_load(dir, 131, &g), "do_sample");
    write_text(path, "{\"eos_token_id\":2,");
    CHECK_ERR(lt_gen_config_load(dir, 131, &g), "generation_config.json:");
    write_text(path, "{\"eos_token_id\":2,\"eos_token_id\":3}");
    CHECK_ERR(lt_gen_config_load(dir, 131, &g), "duplicate");
}

int main(void) {
    char dir[700];
    snprintf(dir, sizeof dir, "%s/generate", lt_test_tmpdir());
    lt_model_config cfg;
    CHECK_OK(lt_config_parse(cfg_json, "test", &cfg));
    lt_make_opts mo = {.seed = 3, .dtype = LT_DTYPE_F32};
    CHECK_OK(lt_model_make_random(&cfg, &mo, dir));
    test_continue(dir);
    test_gen_config(dir);
    TEST_MAIN_END();
}
