/* Driver for tests/reference/train_step.sh: one LoRA training step (loss + the gradient of every
 * LoRA tensor) with loft's CPU backend, on a batch in lora_model_ref.py's JSON format.
 *
 *   train_step_driver MODEL_DIR ADAPTER_IN R ALPHA BATCH_JSON ADAPTER_OUT GRADS_OUT CKPT(0|1)
 *
 * ADAPTER_IN: PEFT-named lora_A / lora_B (F32), every module of every layer, rank R. loft computes
 * with BF16 A/B, so the values are rounded to BF16 and that adapter (exactly what loft computes
 * with) is written to ADAPTER_OUT (F32) for the reference. GRADS_OUT gets d loss / d tensor (F32,
 * PEFT names). Prints "sum_ce S loss L num_items N num_scored K".
 *
 * Environment (all optional):
 *   LOFT_DROPOUT=p, LOFT_DROPOUT_MASKS=FILE   LoRA dropout; FILE receives the masks loft drew.
 *   LOFT_GRAD_PERTURB=rel                     negative control for the checks of GRADS_OUT: adds rel times
 *       the tensor's largest |gradient| to entry 3 of one tensor (the middle one in PEFT-name order) after
 *       the step, as a wrong backward term would; a check that still passes cannot see errors.
 *   LOFT_ACCUM="K B STEPS LR WD CLIP CONV", LOFT_ACCUM_OUT=FILE   gradient accumulation (train_accum.sh):
 *       the batch's rows are STEPS windows of K micro-batches of B rows, in order. Per window: zero the
 *       gradients, run every row with the loss denominator CONV=window: the window's total of scored
 *       targets (loft's convention), CONV=micro: its micro-batch's count times K (the old per-micro-batch
 *       mean, for the negative control); then lt_lora_optimizer_step (AdamW betas 0.9/0.999, eps 1e-8,
 *       weight decay WD, constant LR, global-norm clipping to CLIP, t = window + 1). GRADS_OUT gets the
 *       first window's gradients before clipping, FILE the FP32 masters after the last step (PEFT names);
 *       prints "step S loss L grad_norm G" per window. num_items_in_batch must be absent. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/io.h"
#include "model/model.h"
#include "train/lora.h"
#include "train/step.h"

static const char *parent_of(int mo) { return mo <= LT_LORA_O ? "self_attn" : "mlp"; }

static void peft_name(char *buf, size_t cap, int64_t layer, int mo, char which) {
    snprintf(buf, cap, "base_model.model.model.layers.%lld.%s.%s.lora_%c.weight", (long long)layer, parent_of(mo),
             lt_lora_module_name((lt_lora_module)mo), which);
}

static int fail(lt_status st, const char *what) {
    fprintf(stderr, "train_step_driver: %s: %s\n", what, st ? lt_status_msg(st) : "failed");
    lt_status_free(st);
    return 1;
}

/* ints of a JSON array into out[n]; false when not an array of n ints */
static bool json_ints(json_t *arr, int32_t *out, size_t n) {
    if (!json_is_array(arr) || json_array_size(arr) != n) return false;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_integer(v)) return false;
        out[i] = (int32_t)json_integer_value(v);
    }
    return true;
}

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr,
                "usage: train_step_driver MODEL_DIR ADAPTER_IN R ALPHA BATCH_JSON ADAPTER_OUT GRADS_OUT CKPT\n");
        return 2;
    }
    const char *model_dir = argv[1], *ad_in = argv[2], *batch_path = argv[5], *ad_out = argv[6], *g_out = argv[7];
    const int r = atoi(argv[3]);
    const double alpha = atof(argv[4]);
    const bool ckpt = atoi(argv[8]) != 0;

    lt_pool *pool;
    lt_status st = lt_pool_create(4LL << 30, &pool);
    if (st) return fail(st, "pool");
    lt_model *m;
    if ((st = lt_model_load(model_dir, pool, lt_backend_cpu(), &m))) return fail(st, "model");
    const lt_model_config *mc = lt_model_get_config(m);
    /* LOFT_DROPOUT=p: LoRA dropout with row i's key 1000 + i; LOFT_DROPOUT_MASKS=FILE receives every mask
       (the scaled keep pattern, "row<i>.model.layers.<l>.<parent>.<module>" [T, in]) for the reference */
    const char *env_p = getenv("LOFT_DROPOUT"), *env_masks = getenv("LOFT_DROPOUT_MASKS");
    const double p_drop = env_p ? atof(env_p) : 0.0;
    lt_lora_cfg lc = {.targets = LT_LORA_ALL_LINEAR, .r = r, .alpha = alpha, .seed = 1, .dropout = p_drop};
    lt_lora *a;
    if ((st = lt_lora_create(mc, &lc, pool, &a))) return fail(st, "lora");

    /* adapter: read, round to BF16, keep as the masters */
    lt_st_file *f;
    if ((st = lt_st_open(ad_in, &f))) return fail(st, ad_in);
    const int64_t NL = mc->n_layers, n_t = NL * LT_LORA_N_MODULES * 2;
    lt_st_entry *ea = calloc((size_t)n_t, sizeof *ea), *eg = calloc((size_t)n_t, sizeof *eg);
    char(*names)[160] = calloc((size_t)n_t, sizeof *names);
    int64_t k = 0;
    for (int64_t l = 0; l < NL; l++)
        for (int mo = 0; mo < LT_LORA_N_MODULES; mo++) {
            lt_lora_mod *md = lt_lora_get_mut(a, l, (lt_lora_module)mo);
            for (int w = 0; w < 2; w++, k++) {
                peft_name(names[k], sizeof names[k], l, mo, w ? 'B' : 'A');
                const lt_st_tensor *t = lt_st_find(f, names[k]);
                float *dst = w ? md->b : md->a;
                const int64_t rows = w ? md->out : md->r, cols = w ? md->r : md->in;
                if (!t || t->dtype != LT_DTYPE_F32 || t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols) {
                    fprintf(stderr, "train_step_driver: %s: missing or not F32 [%lld, %lld]\n", names[k],
                            (long long)rows, (long long)cols);
                    return 1;
                }
                memcpy(dst, t->data, (size_t)(rows * cols) * sizeof(float));
                for (int64_t i = 0; i < rows * cols; i++) dst[i] = lt_bf16_to_f32(lt_f32_to_bf16(dst[i]));
                ea[k] = (lt_st_entry){.name = names[k], .dtype_name = "F32", .ndim = 2, .shape = {rows, cols},
                                      .data = dst};
                eg[k] = ea[k];
                eg[k].data = w ? md->gb : md->ga;
            }
        }
    lt_st_close(f);
    lt_lora_sync_bf16(a);
    if ((st = lt_st_write(ad_out, ea, n_t, NULL, 0))) return fail(st, ad_out);

    /* batch */
    json_error_t je;
    json_t *root = json_load_file(batch_path, JSON_REJECT_DUPLICATES, &je);
    json_t *rows = root ? json_object_get(root, "rows") : NULL;
    if (!json_is_array(rows) || json_is_true(json_object_get(root, "labels_shifted"))) {
        fprintf(stderr, "train_step_driver: %s: expected rows (unshifted labels)\n", batch_path);
        return 1;
    }
    const size_t nr = json_array_size(rows);
    lt_train_batch *bs = calloc(nr, sizeof *bs);
    int64_t n_scored_all = 0;
    for (size_t i = 0; i < nr; i++) {
        json_t *row = json_array_get(rows, i), *jd = json_object_get(row, "doc");
        const size_t T = json_array_size(json_object_get(row, "ids"));
        int32_t *buf = calloc(5 * T + 1, sizeof *buf);
        int32_t *ids = buf, *lab = buf + T, *doc = buf + 2 * T, *tgt = buf + 3 * T, *pos = buf + 4 * T;
        if (!T || !json_ints(json_object_get(row, "ids"), ids, T) ||
            !json_ints(json_object_get(row, "labels"), lab, T) || (jd && !json_ints(jd, doc, T))) {
            fprintf(stderr, "train_step_driver: %s: rows[%zu] malformed\n", batch_path, i);
            return 1;
        }
        if ((st = lt_train_targets_from_hf((int64_t)T, lab, jd ? doc : NULL, tgt, pos))) return fail(st, batch_path);
        for (size_t t = 0; t < T; t++) n_scored_all += tgt[t] != LT_IGNORE_INDEX;
        bs[i] = (lt_train_batch){.T = (int64_t)T, .ids = ids, .targets = tgt, .doc = jd ? doc : NULL, .pos = pos,
                                 .dropout_key = 1000 + (uint64_t)i};
    }
    json_t *jn = json_object_get(root, "num_items_in_batch");
    const double denom = jn ? json_number_value(jn) : (double)n_scored_all;

    const char *env_accum = getenv("LOFT_ACCUM");
    if (env_accum) {
        int K = 0, B = 0, S = 0;
        double lr = 0, wd = 0, clip = 0;
        char conv[16] = "";
        if (sscanf(env_accum, "%d %d %d %lf %lf %lf %15s", &K, &B, &S, &lr, &wd, &clip, conv) != 7 || K < 1 ||
            B < 1 || S < 1 || (size_t)K * (size_t)B * (size_t)S != nr || jn || !getenv("LOFT_ACCUM_OUT") ||
            (strcmp(conv, "window") && strcmp(conv, "micro"))) {
            fprintf(stderr, "train_step_driver: LOFT_ACCUM=\"%s\": expected \"K B STEPS LR WD CLIP window|micro\" with "
                            "K*B*STEPS = the batch's %zu rows, no num_items_in_batch, and LOFT_ACCUM_OUT set\n",
                    env_accum, nr);
            return 1;
        }
        const lt_adamw_cfg ac = {.lr = lr, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = wd};
        for (int s = 0; s < S; s++) {
            const size_t w0 = (size_t)s * (size_t)(K * B);
            int64_t n_win = 0, n_row[4096];
            if (K * B > 4096) return fail(NULL, "more than 4096 rows in a window");
            for (int j = 0; j < K * B; j++) {
                n_row[j] = 0;
                for (int64_t t = 0; t < bs[w0 + (size_t)j].T; t++)
                    n_row[j] += bs[w0 + (size_t)j].targets[t] != LT_IGNORE_INDEX;
                n_win += n_row[j];
            }
            lt_lora_zero_grad(a);
            double sum_win = 0;
            for (int mb = 0; mb < K; mb++) {
                int64_t n_mb = 0;
                for (int j = 0; j < B; j++) n_mb += n_row[mb * B + j];
                const double d = strcmp(conv, "window") ? (double)(n_mb * K) : (double)n_win;
                for (int j = 0; j < B; j++) {
                    double sce;
                    int64_t n;
                    lt_train_batch rb = bs[w0 + (size_t)(mb * B + j)];
                    rb.dropout_key = 0;
                    if ((st = lt_train_step_grads(m, a, &rb, d, ckpt, &sce, &n))) return fail(st, "step");
                    sum_win += sce;
                }
            }
            if (s == 0 && (st = lt_st_write(g_out, eg, n_t, NULL, 0))) return fail(st, g_out);
            double norm;
            if ((st = lt_lora_optimizer_step(a, &ac, lr, s + 1, clip, &norm))) return fail(st, "optimizer step");
            printf("step %d loss %.17g grad_norm %.17g\n", s, sum_win / (double)n_win, norm);
        }
        /* ea[] points at the masters md->a / md->b */
        if ((st = lt_st_write(getenv("LOFT_ACCUM_OUT"), ea, n_t, NULL, 0))) return fail(st, "LOFT_ACCUM_OUT");
        goto done;
    }

    lt_lora_zero_grad(a);
    double total = 0;
    int64_t scored = 0;
    for (size_t i = 0; i < nr; i++) {
        double s;
        int64_t n;
        if ((st = lt_train_step_grads(m, a, &bs[i], denom, ckpt, &s, &n))) return fail(st, "step");
        total += s;
        scored += n;
    }
    const char *env_perturb = getenv("LOFT_GRAD_PERTURB");
    if (env_perturb) { /* the negative control: one entry off by rel x its tensor's largest |gradient| */
        int64_t kk = 0; /* the middle tensor in PEFT-name (sorted) order, as the checks list them */
        for (int64_t j = 0; j < n_t; j++) {
            int64_t below = 0;
            for (int64_t q = 0; q < n_t; q++) below += strcmp(names[q], names[j]) < 0;
            if (below == n_t / 2) kk = j;
        }
        float *g = (float *)eg[kk].data, mx = 0;
        const int64_t cnt = eg[kk].shape[0] * eg[kk].shape[1];
        for (int64_t i = 0; i < cnt; i++) mx = fmaxf(mx, fabsf(g[i]));
        g[3 % cnt] += (float)atof(env_perturb) * mx;
        fprintf(stderr, "train_step_driver: LOFT_GRAD_PERTURB: %s[3] += %g x %g\n", names[kk], atof(env_perturb), mx);
    }
    if ((st = lt_st_write(g_out, eg, n_t, NULL, 0))) return fail(st, g_out);
    if (p_drop > 0 && env_masks) {
        const int64_t n_m = (int64_t)nr * NL * LT_LORA_N_MODULES;
        lt_st_entry *em = calloc((size_t)n_m, sizeof *em);
        char(*mn)[160] = calloc((size_t)n_m, sizeof *mn);
        float **bufs = calloc((size_t)n_m, sizeof *bufs);
        int64_t q = 0;
        for (size_t i = 0; i < nr; i++)
            for (int64_t l = 0; l < NL; l++)
                for (int mo = 0; mo < LT_LORA_N_MODULES; mo++, q++) {
                    const lt_lora_mod *md = lt_lora_get(a, l, (lt_lora_module)mo);
                    const int64_t n = bs[i].T * md->in;
                    float *ones = malloc((size_t)n * sizeof(float));
                    for (int64_t e = 0; e < n; e++) ones[e] = 1.0f;
                    lt_train_dropout(bs[i].dropout_key, l, mo, p_drop, ones, ones, n);
                    bufs[q] = ones;
                    snprintf(mn[q], sizeof mn[q], "row%zu.model.layers.%lld.%s.%s", i, (long long)l,
                             mo <= LT_LORA_O ? "self_attn" : "mlp", lt_lora_module_name((lt_lora_module)mo));
                    em[q] = (lt_st_entry){.name = mn[q], .dtype_name = "F32", .ndim = 2, .shape = {bs[i].T, md->in},
                                          .data = ones};
                }
        if ((st = lt_st_write(env_masks, em, n_m, NULL, 0))) return fail(st, env_masks);
        for (int64_t j = 0; j < n_m; j++) free(bufs[j]);
        free(bufs);
        free(em);
        free(mn);
    }
    printf("sum_ce %.17g loss %.17g num_items %.17g num_scored %lld\n", total, total / denom, denom, (long long)scored);
done:

    for (size_t i = 0; i < nr; i++) free((void *)bs[i].ids);
    free(bs);
    json_decref(root);
    free(ea);
    free(eg);
    free(names);
    lt_lora_free(a);
    lt_model_free(m);
    lt_pool_destroy(pool);
    return 0;
}
