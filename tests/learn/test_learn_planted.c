/* The planted-adapter task (docs/design.md): does QLoRA training actually learn?
 *
 *   base     a random Llama-shaped model (f32 on disk): vocab 256, hidden 64, intermediate 128, 2 layers, 4
 *            query heads sharing 2 KV heads (GQA), ~0.1 M parameters. Hidden 64 is the smallest size at which
 *            every Linear's input is a multiple of NF4's 64-element block, so all 14 are really quantized;
 *            vocab 256 gives high-entropy next-token distributions (5.2 nats) whose lm_head stays cheap.
 *   teacher  base + a random rank-4 delta (an lt_lora with PEFT-initialised A and B ~ U(-3, 3)) merged into
 *            an f32 copy with lt_lora_merge, on v_proj, o_proj and down_proj of both layers
 *   data     sequences of 64 tokens sampled from the teacher at temperature 1 (lt_generate_cont), a fresh
 *            batch of 8 every step, 64 held out (the teacher is the data source: reusing a fixed set of
 *            1024 sequences overfits measurably; PLANTED_REUSE shows it)
 *   student  the BASE loaded as NF4 (double quantization) + a FRESH rank-8 adapter (alpha 16) on every Linear
 *            (B = 0: it starts equal to the base; rank 8 > 4 so capacity is not what limits it), trained with
 *            the engine: lt_train_step_grads + lt_lora_optimizer_step, AdamW (lr 5e-3, no weight decay,
 *            cosine schedule with 5% warmup, no clipping), 3000 steps (1.5 M tokens)
 *
 * On the 64 held-out sequences (4032 predicted positions), per position:
 *   KL(teacher || student) = sum_v p_t(v) (log p_t(v) - log p_s(v))   (full distributions)
 *   the student's eval loss = mean -log p_s(next token); the teacher's own = mean -log p_t(next token), an
 *   unbiased estimate of the teacher's entropy (printed next to the exact mean entropy, as a check that the
 *   samples really come from the teacher).
 * The student's p_s comes from the model as it would be served: the dequantized NF4 base (written by
 * lt_model_save_effective, loaded as f32) with the adapter merged by lt_lora_merge, through lt_model_forward.
 * Before and after training it is also computed unmerged (lt_train_logits on the NF4 model: the training
 * forward) and the two KLs must agree.
 * The floor: KL(teacher || dequantized NF4 base + the TRUE delta merged) — what a student that found the delta
 * exactly would reach without compensating the quantization error; the best a "recover the delta" fit gets.
 *
 * Asserted, and why these numbers:
 *   - initial KL >= 20x the floor: else a 10x cut would be asking for more than NF4 allows (it is ~47x);
 *   - KL falls by >= 10x (the factor; measured 14x, final KL ~3x the floor);
 *   - eval loss within 5% of the teacher's entropy estimate (the bound; at the start it is 11% above,
 *     measured 0.65% at the end; the estimate itself is 0.1% from the exact mean entropy, so it is not the
 *     estimate's noise that the bound measures);
 *   - within 3 minutes of 2 cores = 360 CPU-seconds (robust to a shared machine, where wall time is not).
 *
 * Why this teacher: the initial KL must be far above the NF4 floor (else a 10x cut is impossible) while the
 * base's weights stay small enough (init 0.1) that NF4 error is not amplified (at init 0.3 the floor alone
 * is 0.9 nats). A delta on all seven Linears of this size (B scale 1..2) leaves a plateau at ~60% of the
 * initial KL for any learning rate or data size tried (f32 base too): a hard non-convex fit of the
 * attention maps from high-entropy data, not an engine error (started at the true delta, training stays
 * at the floor). The v/o/down delta is still a random low-rank change of the function (KL 0.58 nats per
 * token at the start, floor 0.012): measured 0.041 after 3000 steps (14x).
 * Diagnostics (not used by the test): PLANTED_{STEPS,LR,B_SCALE,TT,R,ROWS,CLIP,INIT,NTRAIN} change the setup,
 * PLANTED_REUSE trains on a fixed set of PLANTED_NTRAIN sequences, PLANTED_ORACLE starts the student at the
 * true delta, PLANTED_F32 trains on the f32 base. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "model/model.h"
#include "train/lora.h"
#include "train/optim.h"
#include "train/step.h"
#include "test.h"

static const char *cfg_fmt =
    "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"vocab_size\":256,\"max_position_embeddings\":256,"
    "\"initializer_range\":%g,\"tie_word_embeddings\":false,\"bos_token_id\":0,\"eos_token_id\":1}";

#define SEQ 64
static int N_TRAIN = 1024; /* only with PLANTED_REUSE: a fixed training set */
#define N_EVAL 64
#define ROWS_MAX 64
#define CHUNK 64 /* training steps whose fresh rows are sampled at once (CHUNK * ROWS_PER_STEP <= N_TRAIN) */
static int ROWS_PER_STEP = 8;

static double env_d(const char *name, double def) {
    const char *s = getenv(name);
    return s ? atof(s) : def;
}

/* CPU seconds of this process (all threads): unlike wall time, not inflated when other work shares the cores. */
static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
           1e-6 * (double)ru.ru_stime.tv_usec;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Sequences from the teacher: token 0 (BOS) then SEQ-1 tokens sampled at temperature 1. */
static void sample(lt_model *teacher, lt_pool *pool, int32_t *seqs, int n, uint64_t seed) {
    int32_t *out = malloc(SEQ * sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        lt_sampler s;
        lt_sampler_init(&s, 1.0f, 0, 1.0f, seed + (uint64_t)i);
        int32_t bos = 0;
        int64_t n_out = 0;
        lt_kv_cache *kv = NULL;
        CHECK_OK(lt_kv_create(teacher, pool, SEQ + 1, &kv));
        CHECK_OK(lt_generate_cont(teacher, kv, pool, &bos, 1, SEQ - 1, &s, NULL, 0, out, &n_out, NULL, NULL));
        lt_kv_free(kv);
        CHECK(n_out == SEQ - 1);
        seqs[i * SEQ] = 0;
        memcpy(seqs + i * SEQ + 1, out, (SEQ - 1) * sizeof(int32_t));
    }
    free(out);
}

static void log_softmax(const float *l, double *out, int64_t V) {
    double mx = -INFINITY, s = 0;
    for (int64_t v = 0; v < V; v++) mx = fmax(mx, l[v]);
    for (int64_t v = 0; v < V; v++) s += exp((double)l[v] - mx);
    const double lse = mx + log(s);
    for (int64_t v = 0; v < V; v++) out[v] = (double)l[v] - lse;
}

typedef struct eval_res {
    double kl, student_ce, teacher_ce, teacher_h;
} eval_res;

/* Held-out metrics of a student against the teacher: student = a merged f32 model (a == NULL: its own
 * lt_model_forward, as served), or the quantized base + adapter a unmerged (the training forward). */
static eval_res evaluate(lt_model *teacher, lt_model *student, lt_lora *a, lt_pool *pool, const int32_t *seqs,
                         int n, int64_t V) {
    eval_res r = {0, 0, 0, 0};
    float *lt = malloc((size_t)(SEQ * V) * sizeof(float)), *ls = malloc((size_t)(SEQ * V) * sizeof(float));
    double *pt = malloc((size_t)V * sizeof(double)), *ps = malloc((size_t)V * sizeof(double));
    int32_t tgt[SEQ], pos[SEQ];
    for (int t = 0; t < SEQ; t++) tgt[t] = -100, pos[t] = t;
    int64_t count = 0;
    for (int i = 0; i < n; i++) {
        const int32_t *ids = seqs + i * SEQ;
        lt_kv_cache *kv = NULL;
        CHECK_OK(lt_kv_create(teacher, pool, SEQ, &kv));
        CHECK_OK(lt_model_forward(teacher, kv, ids, SEQ, lt, true));
        lt_kv_free(kv);
        if (a) {
            lt_train_batch b = {.T = SEQ, .ids = ids, .targets = tgt, .pos = pos};
            CHECK_OK(lt_train_logits(student, a, &b, ls));
        } else {
            CHECK_OK(lt_kv_create(student, pool, SEQ, &kv));
            CHECK_OK(lt_model_forward(student, kv, ids, SEQ, ls, true));
            lt_kv_free(kv);
        }
        for (int t = 0; t + 1 < SEQ; t++) {
            log_softmax(lt + t * V, pt, V);
            log_softmax(ls + t * V, ps, V);
            double kl = 0;
            for (int64_t v = 0; v < V; v++) kl += exp(pt[v]) * (pt[v] - ps[v]);
            for (int64_t v = 0; v < V; v++) r.teacher_h -= exp(pt[v]) * pt[v];
            r.kl += kl;
            r.teacher_ce -= pt[ids[t + 1]];
            r.student_ce -= ps[ids[t + 1]];
            count++;
        }
    }
    r.kl /= (double)count;
    r.teacher_ce /= (double)count;
    r.student_ce /= (double)count;
    r.teacher_h /= (double)count;
    free(lt);
    free(ls);
    free(pt);
    free(ps);
    return r;
}

static void randomize_b(lt_lora *a, int64_t L, float scale, uint32_t seed) {
    uint32_t s = seed;
    for (int64_t l = 0; l < L; l++)
        for (int mo = 0; mo < LT_LORA_N_MODULES; mo++) {
            lt_lora_mod *x = lt_lora_get_mut(a, l, (lt_lora_module)mo);
            if (!x) continue;
            for (int64_t i = 0; i < x->out * x->r; i++) {
                s = s * 1664525u + 1013904223u;
                x->b[i] = ((float)(s >> 8) / 16777216.0f * 2.0f - 1.0f) * scale;
            }
        }
    lt_lora_sync_bf16(a);
}

/* The student as it would be served: the dequantized NF4 base (the f32 directory lt_model_save_effective
 * wrote) with adapter a merged into it by lt_lora_merge, evaluated through lt_model_forward. A fresh copy each
 * time (merging adds into the weights; the model is 0.4 MB, loading it costs milliseconds). */
static eval_res evaluate_merged(lt_model *teacher, const char *deq_dir, lt_lora *a, lt_pool *pool,
                                const int32_t *seqs, int n, int64_t V) {
    lt_model *mm = NULL;
    CHECK_OK(lt_model_load(deq_dir, pool, lt_backend_cpu(), &mm));
    if (!mm) exit(1);
    CHECK_OK(lt_lora_merge(a, mm));
    const eval_res r = evaluate(teacher, mm, NULL, pool, seqs, n, V);
    lt_model_free(mm);
    return r;
}

int main(void) {
    const double t_start = now_s();
    const double b_scale = env_d("PLANTED_B_SCALE", 3.0), lr = env_d("PLANTED_LR", 5e-3);
    const int steps = (int)env_d("PLANTED_STEPS", 3000);
    N_TRAIN = (int)env_d("PLANTED_NTRAIN", N_TRAIN);
    ROWS_PER_STEP = (int)env_d("PLANTED_ROWS", ROWS_PER_STEP);
    if (ROWS_PER_STEP < 1 || ROWS_PER_STEP > ROWS_MAX || N_TRAIN < ROWS_PER_STEP * CHUNK || steps < 8) {
        fprintf(stderr, "PLANTED_ROWS must be 1..%d, PLANTED_NTRAIN >= %d times it, PLANTED_STEPS >= 8\n", ROWS_MAX,
                CHUNK);
        return 2;
    }
    char dir[4200], qdir[4200];
    snprintf(dir, sizeof dir, "%s/planted_base", lt_test_tmpdir());
    snprintf(qdir, sizeof qdir, "%s/planted_base_nf4_dequantized", lt_test_tmpdir());
    lt_model_config cfg;
    char cfg_json[1024];
    snprintf(cfg_json, sizeof cfg_json, cfg_fmt, env_d("PLANTED_INIT", 0.1));
    CHECK_OK(lt_config_parse(cfg_json, "planted", &cfg));
    CHECK_OK(lt_model_make_random(&cfg, &(lt_make_opts){.seed = 2024, .dtype = LT_DTYPE_F32}, dir));
    lt_pool *pool;
    CHECK_OK(lt_pool_create(4LL << 30, &pool));
    const int64_t V = cfg.vocab_size;

    /* teacher = base + s B A with a random rank-4 adapter (A as PEFT's init, B uniform), merged into f32 */
    lt_model *teacher = NULL, *student = NULL;
    CHECK_OK(lt_model_load(dir, pool, lt_backend_cpu(), &teacher));
    lt_lora_cfg tc = {.targets = (uint32_t)env_d("PLANTED_TT", (1u << LT_LORA_V) | (1u << LT_LORA_O) | (1u << LT_LORA_DOWN)),
                      .r = 4, .alpha = 4, .seed = 77};
    lt_lora *delta = NULL;
    CHECK_OK(lt_lora_create(&cfg, &tc, pool, &delta));
    if (!teacher || !delta) return 1;
    randomize_b(delta, cfg.n_layers, (float)b_scale, 99);
    CHECK_OK(lt_lora_merge(delta, teacher));

    int32_t *train = malloc((size_t)N_TRAIN * SEQ * sizeof(int32_t)), *held = malloc((size_t)N_EVAL * SEQ * sizeof(int32_t));
    if (getenv("PLANTED_REUSE")) sample(teacher, pool, train, N_TRAIN, 1000);
    sample(teacher, pool, held, N_EVAL, 900000);

    /* the student's base: NF4 (double quantization) of the BASE, not of the teacher; its dequantized weights
       written as an f32 directory for the merged evaluation */
    lt_load_opts q = {.quantize = !getenv("PLANTED_F32"), .format = LT_Q_NF4};
    CHECK_OK(lt_model_load_opts(dir, pool, lt_backend_cpu(), &q, &student));
    if (!student) return 1;
    const lt_quant_summary qs = lt_model_quant_summary(student);
    /* every Linear of every layer (7 x 2) is held in NF4 (all input sizes, 64 and 128, are block multiples) */
    CHECKF(getenv("PLANTED_F32") || qs.n_quantized == 7 * cfg.n_layers, "%lld weights quantized",
           (long long)qs.n_quantized);
    CHECK_OK(lt_model_save_effective(student, qdir));
    /* the floor: dequantized NF4 base + the true delta merged — what a student that found the delta exactly,
       without compensating the quantization error, would reach */
    const eval_res fl = evaluate_merged(teacher, qdir, delta, pool, held, N_EVAL, V);

    lt_lora_cfg sc = {.targets = LT_LORA_ALL_LINEAR, .r = (int)env_d("PLANTED_R", 8), .alpha = 2 * env_d("PLANTED_R", 8), .seed = 5};
    lt_lora *a = NULL;
    CHECK_OK(lt_lora_create(&cfg, &sc, pool, &a));
    if (!a) return 1;
    if (getenv("PLANTED_ORACLE")) { /* experiment: start from the true delta */
        lt_lora_free(a);
        a = NULL;
        CHECK_OK(lt_lora_create(&cfg, &tc, pool, &a));
        for (int64_t l = 0; l < cfg.n_layers; l++)
            for (int mo = 0; mo < LT_LORA_N_MODULES; mo++) {
                lt_lora_mod *x = lt_lora_get_mut(a, l, (lt_lora_module)mo);
                const lt_lora_mod *y = lt_lora_get(delta, l, (lt_lora_module)mo);
                if (!x) continue;
                memcpy(x->a, y->a, (size_t)(x->r * x->in) * sizeof(float));
                memcpy(x->b, y->b, (size_t)(x->r * x->out) * sizeof(float));
            }
        lt_lora_sync_bf16(a);
    }
    double t_eval = now_s();
    const eval_res e0 = evaluate_merged(teacher, qdir, a, pool, held, N_EVAL, V);
    const eval_res u0 = evaluate(teacher, student, a, pool, held, N_EVAL, V);
    t_eval = now_s() - t_eval;
    printf("planted adapter: vocab %lld, hidden %lld, %lld layers; teacher delta rank 4 (B scale %.2f), student "
           "rank %d on an NF4 base; %d fresh teacher sequences of %d tokens per step, %d held out\n",
           (long long)V, (long long)cfg.hidden_size, (long long)cfg.n_layers, b_scale, sc.r, ROWS_PER_STEP, SEQ, N_EVAL);
    printf("teacher: mean entropy of its distributions %.4f, its CE on the held-out tokens %.4f (the entropy "
           "estimate); floor (dequantized NF4 base + true delta, merged): KL %.4f, CE %.4f\n",
           e0.teacher_h, e0.teacher_ce, fl.kl, fl.student_ce);
    printf("held-out KL(teacher || student): merged dequantized f32 %.6f, unmerged on NF4 (training forward) %.6f\n",
           e0.kl, u0.kl);
    printf("| step | train loss | held-out KL | held-out CE |\n|---|---|---|---|\n");
    printf("| 0 | - | %.4f | %.4f |\n", e0.kl, e0.student_ce);

    lt_adamw_cfg ac = {.lr = lr, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.0};
    lt_lr_sched sched = {.kind = LT_LR_COSINE, .lr = lr, .warmup_steps = steps / 20, .total_steps = steps,
                         .num_cycles = 0.5};
    int32_t tgt[ROWS_MAX][SEQ], pos[ROWS_MAX][SEQ];
    int next = 0;
    eval_res e = e0;
    double t_sample = 0, t_train = 0, c_sample = 0;
    const int threads = lt_threads_get(), blas_threads = openblas_get_num_threads();
    for (int step = 0; step < steps; step++) {
        lt_lora_zero_grad(a);
        double sum = 0;
        int64_t n_tok = 0;
        double t0 = now_s();
        if (!getenv("PLANTED_REUSE") && step % CHUNK == 0) {
            /* fresh samples from the teacher (no data reuse), CHUNK steps' worth at a time on ONE thread:
               decoding one token of a hidden-64 model is far less work than waking a second thread for each
               of its matmuls (loft's and OpenBLAS's: measured 3x less sampling time). The rows and
               their seeds are the same as sampling step by step, and every result is independent of the
               thread count, so this only changes the time. */
            const int n_rows = ROWS_PER_STEP * (steps - step < CHUNK ? steps - step : CHUNK);
            const double c0 = cpu_s();
            lt_threads_set(1);
            openblas_set_num_threads(1); /* the teacher's f32 matmuls go to OpenBLAS, with its own threads */
            sample(teacher, pool, train, n_rows, 5000000 + (uint64_t)step * ROWS_PER_STEP);
            lt_threads_set(threads);
            openblas_set_num_threads(blas_threads);
            c_sample += cpu_s() - c0;
            next = 0;
        }
        const double t1 = now_s();
        t_sample += t1 - t0;
        for (int j = 0; j < ROWS_PER_STEP; j++) { /* every next token scored: (SEQ-1) per row */
            const int32_t *ids = train + (size_t)next * SEQ;
            CHECK_OK(lt_train_targets_from_hf(SEQ, ids, NULL, tgt[j], pos[j]));
            lt_train_batch b = {.T = SEQ, .ids = ids, .targets = tgt[j], .pos = pos[j]};
            double s;
            int64_t n;
            CHECK_OK(lt_train_step_grads(student, a, &b, (double)(ROWS_PER_STEP * (SEQ - 1)), false, &s, &n));
            sum += s;
            n_tok += n;
            next = (next + 1) % N_TRAIN;
        }
        double norm;
        CHECK_OK(lt_lora_optimizer_step(a, &ac, lt_lr_at(&sched, step), step + 1, env_d("PLANTED_CLIP", 0.0), &norm));
        t0 = now_s();
        t_train += t0 - t1;
        if ((step + 1) % (steps / 8) == 0 || step + 1 == steps) {
            e = evaluate_merged(teacher, qdir, a, pool, held, N_EVAL, V);
            printf("| %d | %.4f | %.4f | %.4f |\n", step + 1, sum / (double)n_tok, e.kl, e.student_ce);
            fflush(stdout);
            t_eval += now_s() - t0;
        }
    }
    const eval_res u = evaluate(teacher, student, a, pool, held, N_EVAL, V);
    const double secs = now_s() - t_start, cpu = cpu_s();
    printf("held-out KL after training: merged dequantized f32 %.6f, unmerged on NF4 %.6f\n", e.kl, u.kl);
    printf("KL %.4f -> %.4f (%.1fx lower; floor %.4f); eval CE %.4f vs teacher entropy %.4f (%.2f%% above); "
           "%.1f s wall (sampling %.1f, training %.1f, evaluation %.1f), %.1f CPU-s (sampling %.1f)\n",
           e0.kl, e.kl, e0.kl / e.kl, fl.kl, e.student_ce, e.teacher_ce, 100.0 * (e.student_ce / e.teacher_ce - 1.0),
           secs, t_sample, t_train, t_eval, cpu, c_sample);
    /* the merged model (dequantized NF4 + s B A in f32) and the training forward (NF4 dequantized on the fly +
       the unmerged LoRA branch) are one function computed two ways: their logits differ by f32 rounding
       (~1e-6, test_lora_update), which moves a KL of ~0.5 nats by ~1e-6. 1e-4 nats is 100x that and still
       0.25% of the final KL: a merge that dropped or doubled a module would move it by > 0.01. */
    CHECKF(fabs(e0.kl - u0.kl) <= 1e-4 && fabs(e.kl - u.kl) <= 1e-4,
           "merged and unmerged students disagree: KL %.6f vs %.6f before, %.6f vs %.6f after", e0.kl, u0.kl, e.kl,
           u.kl);
    /* the initial KL must be far above the floor, or a 10x cut could not be asked for */
    CHECKF(e0.kl >= 20.0 * fl.kl, "the task is too easy: initial KL %.4f vs floor %.4f", e0.kl, fl.kl);
    CHECKF(e0.kl >= 10.0 * e.kl, "the KL to the teacher fell only from %.4f to %.4f", e0.kl, e.kl);
    CHECKF(e.student_ce <= 1.05 * e.teacher_ce, "eval loss %.4f is more than 5%% above the teacher's %.4f",
           e.student_ce, e.teacher_ce);
    /* the budget the issue sets for CI: 3 minutes on 2 cores = 360 CPU-seconds. CPU time rather than wall time:
       a machine shared with other work (a parallel build) stretches the wall clock, not the work done */
    CHECKF(cpu < 360.0, "the planted-adapter run used %.1f CPU-s (budget: 3 minutes on 2 cores = 360)", cpu);
    free(train);
    free(held);
    lt_lora_free(a);
    lt_lora_free(delta);
    lt_model_free(teacher);
    lt_model_free(student);
    lt_pool_destroy(pool);
    TEST_MAIN_END();
}
