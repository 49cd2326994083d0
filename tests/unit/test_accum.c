/* Gradient accumulation: k micro-batches of b rows, each row run with the accumulation window's total of
 * scored tokens as its loss denominator, give the same AdamW update as one batch of k*b rows — bit for
 * bit, because rows are processed in the same order into the same gradient buffers whatever the
 * grouping (k=4,b=1 / k=2,b=2 / k=1,b=4 below). The rows have very different numbers of scored tokens,
 * so the old convention (mean per micro-batch, then the mean over micro-batches) gives a measurably
 * different update: the test checks that too, so it can tell the conventions apart. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "train/lora.h"
#include "train/step.h"
#include "test.h"

static const char *tiny = "{\"architectures\":[\"Qwen2ForCausalLM\"],\"hidden_size\":32,\"intermediate_size\":48,"
                          "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
                          "\"vocab_size\":71,\"initializer_range\":0.12,\"bos_token_id\":1,\"eos_token_id\":2}";

#define N_ROWS 4
static const int row_len[N_ROWS] = {30, 12, 40, 9};
static const int row_scored_from[N_ROWS] = {0, 9, 20, 2}; /* labels before this position are -100 */

typedef struct rows {
    int32_t ids[N_ROWS][40], tgt[N_ROWS][40], pos[N_ROWS][40];
    int64_t n_scored[N_ROWS];
} rows;

static void make_rows(rows *r, int64_t V) {
    uint32_t s = 4242;
    for (int i = 0; i < N_ROWS; i++) {
        int32_t labels[40];
        for (int t = 0; t < row_len[i]; t++) {
            s = s * 1664525u + 1013904223u;
            r->ids[i][t] = (int32_t)((s >> 8) % (uint32_t)V);
            labels[t] = t < row_scored_from[i] ? -100 : r->ids[i][t];
        }
        lt_status st = lt_train_targets_from_hf(row_len[i], labels, NULL, r->tgt[i], r->pos[i]);
        CHECK(!st);
        r->n_scored[i] = 0;
        for (int t = 0; t < row_len[i]; t++) r->n_scored[i] += r->tgt[i][t] != -100;
    }
}

/* One optimizer step over N_ROWS rows cut into micro-batches of b rows. new_convention: every row's
 * denominator is the window total; else each micro-batch is its own mean, divided by k. */
static void one_step(lt_model *m, lt_lora *a, const rows *r, int b, bool new_convention) {
    int64_t total = 0;
    for (int i = 0; i < N_ROWS; i++) total += r->n_scored[i];
    const int k = N_ROWS / b;
    lt_lora_zero_grad(a);
    for (int mb = 0; mb < k; mb++) {
        int64_t n_mb = 0;
        for (int j = 0; j < b; j++) n_mb += r->n_scored[mb * b + j];
        for (int j = 0; j < b; j++) {
            const int i = mb * b + j;
            lt_train_batch bt = {.T = row_len[i], .ids = r->ids[i], .targets = r->tgt[i], .pos = r->pos[i]};
            double sum;
            int64_t n;
            CHECK_OK(lt_train_step_grads(m, a, &bt, new_convention ? (double)total : (double)(n_mb * k), true, &sum, &n));
            CHECK(n == r->n_scored[i]);
        }
    }
    lt_adamw_cfg ac = {.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.0};
    double norm;
    CHECK_OK(lt_lora_optimizer_step(a, &ac, 1e-2, 1, 0.0, &norm));
}

static float *snapshot(const lt_lora *a, int64_t L, int64_t *n_out) {
    int64_t n = 0;
    for (int64_t l = 0; l < L; l++)
        for (int mo = 0; mo < LT_LORA_N_MODULES; mo++) {
            const lt_lora_mod *x = lt_lora_get(a, l, (lt_lora_module)mo);
            if (x) n += x->r * (x->in + x->out);
        }
    float *v = malloc((size_t)n * sizeof(float));
    int64_t o = 0;
    for (int64_t l = 0; l < L; l++)
        for (int mo = 0; mo < LT_LORA_N_MODULES; mo++) {
            const lt_lora_mod *x = lt_lora_get(a, l, (lt_lora_module)mo);
            if (!x) continue;
            memcpy(v + o, x->a, (size_t)(x->r * x->in) * sizeof(float));
            o += x->r * x->in;
            memcpy(v + o, x->b, (size_t)(x->r * x->out) * sizeof(float));
            o += x->r * x->out;
        }
    *n_out = n;
    return v;
}

int main(void) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/test_accum", lt_test_tmpdir());
    lt_model_config cfg;
    CHECK_OK(lt_config_parse(tiny, "tiny", &cfg));
    CHECK_OK(lt_model_make_random(&cfg, &(lt_make_opts){.seed = 9, .dtype = LT_DTYPE_F32}, dir));
    lt_pool *pool;
    CHECK_OK(lt_pool_create(1LL << 30, &pool));
    lt_model *m = NULL;
    CHECK_OK(lt_model_load_opts(dir, pool, lt_backend_cpu(), &(lt_load_opts){.quantize = true, .format = LT_Q_NF4}, &m));
    if (!m) return 1;
    rows r;
    make_rows(&r, cfg.vocab_size);
    CHECK(r.n_scored[0] >= 4 * r.n_scored[3]); /* very different token counts per row (29 vs 6) */
    const int bs[3] = {1, 2, 4}; /* k = 4, 2, 1 */
    float *snap[4];
    int64_t n = 0;
    for (int v = 0; v < 4; v++) {
        lt_lora_cfg lc = {.targets = LT_LORA_ALL_LINEAR, .r = 4, .alpha = 8, .seed = 17};
        lt_lora *a = NULL;
        CHECK_OK(lt_lora_create(&cfg, &lc, pool, &a));
        if (!a) return 1;
        for (int64_t l = 0; l < cfg.n_layers; l++) /* B != 0 so that A gets gradients too */
            for (int mo = 0; mo < LT_LORA_N_MODULES; mo++) {
                lt_lora_mod *x = lt_lora_get_mut(a, l, (lt_lora_module)mo);
                for (int64_t i = 0; i < x->out * x->r; i++) x->b[i] = 0.01f * (float)((i * 5 + mo) % 7 - 3);
            }
        lt_lora_sync_bf16(a);
        if (v < 3)
            one_step(m, a, &r, bs[v], true);
        else
            one_step(m, a, &r, 1, false); /* k = 4 micro-batches of 1 row, the old convention */
        snap[v] = snapshot(a, cfg.n_layers, &n);
        lt_lora_free(a);
    }
    CHECK(!memcmp(snap[0], snap[1], (size_t)n * sizeof(float)));
    CHECK(!memcmp(snap[0], snap[2], (size_t)n * sizeof(float)));
    /* the old convention weighs each of row 3's 6 tokens ~5x more than each of row 0's 29: the gradient
       direction changes, and so does the update (AdamW's first step is about lr * g / |g| elementwise).
       Require the updates to differ by >= 1% (relative L2): bit-identical results would show 0 */
    double diff = 0, ref = 0;
    float *init = NULL;
    {
        lt_lora_cfg lc = {.targets = LT_LORA_ALL_LINEAR, .r = 4, .alpha = 8, .seed = 17};
        lt_lora *a = NULL;
        CHECK_OK(lt_lora_create(&cfg, &lc, pool, &a));
        for (int64_t l = 0; a && l < cfg.n_layers; l++)
            for (int mo = 0; mo < LT_LORA_N_MODULES; mo++) {
                lt_lora_mod *x = lt_lora_get_mut(a, l, (lt_lora_module)mo);
                for (int64_t i = 0; i < x->out * x->r; i++) x->b[i] = 0.01f * (float)((i * 5 + mo) % 7 - 3);
            }
        int64_t n2;
        init = snapshot(a, cfg.n_layers, &n2);
        lt_lora_free(a);
    }
    for (int64_t i = 0; i < n; i++) {
        const double u0 = (double)snap[0][i] - init[i], u3 = (double)snap[3][i] - init[i];
        diff += (u0 - u3) * (u0 - u3);
        ref += u0 * u0;
    }
    const double rel = sqrt(diff / ref);
    printf("accumulation: k=4,b=1 / k=2,b=2 / k=1,b=4 bit-identical; old per-micro-batch mean differs by %.3g "
           "(relative, in the update)\n", rel);
    CHECKF(rel > 1e-2, "the two conventions give the same update (%.3g): the test cannot tell them apart", rel);
    for (int v = 0; v < 4; v++) free(snap[v]);
    free(init);
    lt_model_free(m);
    lt_pool_destroy(pool);
    TEST_MAIN_END();
}
