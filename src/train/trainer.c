/* The training loop (see trainer.h). One optimizer step s:
 *   rows   = the next grad_accum * micro_batch rows from the loader (copied: loader rows are transient)
 *   n      = scored targets over all of them (the window's denominator: HF's num_items_in_batch)
 *   grads  = sum over rows of d(sum CE(row) / n)     (lt_train_step_grads, rows in order)
 *   lr     = schedule(s); AdamW at t = s + 1 over every adapter tensor (clipped by max_grad_norm)
 * then metrics, eval every N, checkpoint every N. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/cuda/cuda.h"
#include "model/model.h"
#include "tok/chat.h"
#include "tok/tok.h"
#include "train/ckpt.h"
#include "train/data.h"
#include "train/lora.h"
#include "train/peft.h"
#include "train/report.h"
#include "train/step.h"
#include "train/trainer.h"
#include "train/trainer_internal.h"

#define LT_CKPT_FORMAT "loft-train-checkpoint"
#define LT_CKPT_FORMAT_VERSION 1

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------- the memory plan */

static int64_t lora_params(const lt_recipe *r, const lt_model_config *mc) {
    const int64_t H = mc->hidden_size, I = mc->intermediate_size, qd = mc->n_heads * mc->head_dim,
                  kvd = mc->n_kv_heads * mc->head_dim;
    const int64_t io[LT_LORA_N_MODULES][2] = {{H, qd}, {H, kvd}, {H, kvd}, {qd, H}, {H, I}, {H, I}, {I, H}};
    int64_t n = 0;
    for (int m = 0; m < LT_LORA_N_MODULES; m++) {
        if (!(r->lora.targets & (1u << m))) continue;
        const int64_t rk = r->lora.r_module[m] ? r->lora.r_module[m] : r->lora.r;
        n += rk * (io[m][0] + io[m][1]);
    }
    return n * mc->n_layers;
}

lt_train_plan lt_train_plan_make(const lt_recipe *r, const lt_model_config *mc, int64_t data_bytes) {
    lt_train_plan p = {0};
    const int64_t H = mc->hidden_size, I = mc->intermediate_size, V = mc->vocab_size, NL = mc->n_layers;
    const int64_t qd = mc->n_heads * mc->head_dim, kvd = mc->n_kv_heads * mc->head_dim;
    const int64_t lin = NL * (H * qd + 2 * H * kvd + qd * H + 3 * H * I);
    const double bits = r->quant.enabled ? lt_qformat_bits_per_param(r->quant.format) : 32.0;
    const double ebits = r->quant.enabled && r->quant.embeddings ? bits : 32.0;
    const double hbits = r->quant.enabled && r->quant.lm_head ? bits : 32.0;
    p.weights = (int64_t)((double)lin * bits / 8.0) + (int64_t)((double)(V * H) * ebits / 8.0) +
                (mc->tie_word_embeddings ? 0 : (int64_t)((double)(V * H) * hbits / 8.0)) + (2 * NL + 1) * H * 4;
    const int64_t np = lora_params(r, mc);
    p.adapter = np * 18; /* BF16 2 + master 4 + grad 4 + f32 compute copies 8 (lora.h) */
    p.optimizer = np * 8;
    /* activations of one row of max_seq_len (the step's own allocations, step.c): layer inputs for
       every layer, one (checkpointing) or every layer's saved set, the backward buffers, and a
       scratch as large as the biggest of attention / CE chunk / qlinear panels (bounded by T*max) */
    const int64_t T = r->data.max_seq_len;
    const int64_t saved = T * (4 * H + 3 * qd + 4 * kvd + 3 * I + 7 * 64);
    const int64_t bwd = T * (2 * H + I + 2 * qd + 3 * kvd);
    const int64_t scratch = T * (I > 4096 ? I : 4096);
    const int64_t n_saved = r->training.activation_checkpointing ? 1 : NL;
    p.activations = 4 * ((NL + 2) * T * H + n_saved * saved + bwd + scratch);
    p.data = data_bytes;
    p.total = p.weights + p.adapter + p.optimizer + p.activations + p.data;
    p.budget = (int64_t)((r->memory.budget_gb - r->memory.reserve_gb) * 1073741824.0);
    return p;
}

/* ---------------------------------------------------------------- helpers */

typedef struct run_row {
    int64_t T;
    int32_t *ids, *labels, *doc, *targets, *pos;
} run_row;

static void rows_free(run_row *rows, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        free(rows[i].ids);
        free(rows[i].labels);
        free(rows[i].doc);
        free(rows[i].targets);
        free(rows[i].pos);
    }
}

static lt_status row_copy(const int32_t *ids, const int32_t *labels, const int32_t *doc, int64_t T, run_row *out) {
    memset(out, 0, sizeof *out);
    out->T = T;
    const size_t b = (size_t)T * sizeof(int32_t);
    out->ids = malloc(b);
    out->labels = malloc(b);
    out->doc = malloc(b);
    out->targets = malloc(b);
    out->pos = malloc(b);
    if (!out->ids || !out->labels || !out->doc || !out->targets || !out->pos)
        return lt_errorf(LT_ERR_NOMEM, "train: out of memory for a row of %lld tokens", (long long)T);
    memcpy(out->ids, ids, b);
    memcpy(out->labels, labels, b);
    if (doc)
        memcpy(out->doc, doc, b);
    else
        memset(out->doc, 0, b);
    return lt_train_targets_from_hf(T, out->labels, out->doc, out->targets, out->pos);
}

static uint64_t dropout_key(uint64_t seed, int64_t step, int64_t micro, int64_t row) {
    const uint32_t ctr[4] = {(uint32_t)step, (uint32_t)((uint64_t)step >> 32), (uint32_t)micro, (uint32_t)row};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t out[4];
    lt_philox4x32_raw(ctr, key, out);
    return (uint64_t)out[0] | (uint64_t)out[1] << 32;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_tree(const char *path) { nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

static bool dir_has_checkpoints(const char *dir) {
    char p[4200];
    snprintf(p, sizeof p, "%s/latest", dir);
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* SHA-256 of the tokenizer files and the chat template text: what the token ids mean. */
static lt_status tokenizer_hash(const char *dir, const char *template_text, char hex[LT_SHA256_HEX]) {
    lt_sha256_ctx h;
    lt_sha256_init(&h);
    const char *files[2] = {"tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 2; i++) {
        char *p = lt_path_join(dir, files[i]);
        char *buf = NULL;
        int64_t n = 0;
        lt_status st = lt_read_file(p, (int64_t)1 << 31, &buf, &n);
        free(p);
        if (st) {
            if (i == 0) return st;
            lt_status_free(st);
            continue;
        }
        lt_sha256_update(&h, files[i], strlen(files[i]) + 1);
        lt_sha256_update(&h, buf, (size_t)n);
        free(buf);
    }
    if (template_text) lt_sha256_update(&h, template_text, strlen(template_text));
    uint8_t d[LT_SHA256_BYTES];
    lt_sha256_final(&h, d);
    lt_sha256_hex(d, hex);
    return NULL;
}

/* ---------------------------------------------------------------- the run */

typedef struct trainer {
    const lt_train_opts *o;
    const lt_recipe *r;
    FILE *log;
    lt_pool *pool;
    lt_model *m;
    lt_model_config mc;
    lt_tokenizer *tok;
    lt_chat_template *chat;
    char *template_text;
    lt_dataset *train, *eval;
    lt_loader *ld;
    lt_lora *a;
    lt_metrics *metrics;
    lt_progress prog;
    char run_dir[4096], ckpt_dir[4096];
    char base_fp[LT_SHA256_HEX], tok_hash[LT_SHA256_HEX];
    char stop_ids[256];
    int64_t total_steps, step, last_saved_step;
    lt_loader_state boundary; /* the loader at the last step boundary */
    lt_adamw_cfg adamw;
    lt_lr_sched sched;
    double last_loss, last_eval, last_lr, last_norm;
    double t_data, t_opt, t_ckpt, t_eval;
    /* backend: cuda: the model and the adapter's compute state in GPU memory (gpool); the host adapter
       keeps the masters, AdamW and the checkpoints */
    lt_pool *gpool;
    lt_model *gm;
    lt_lora *gmir;
} trainer;

/* The model and adapter the steps run on: the GPU copies under backend: cuda, else the host ones. */
static lt_model *step_model(trainer *t) { return t->gm ? t->gm : t->m; }
static lt_lora *step_adapter(trainer *t) { return t->gmir ? t->gmir : t->a; }


static void msg(trainer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void msg(trainer *t, const char *fmt, ...) {
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (t->prog.f)
        lt_progress_message(&t->prog, "%s", buf);
    else if (t->log)
        fprintf(t->log, "%s\n", buf);
}

/* backend: cuda: device memory under the same budget, the model copied, the adapter mirrored. */
static lt_status gpu_setup(trainer *t, int64_t budget) {
    lt_status st = lt_pool_create(budget, &t->gpool);
    const lt_cuda_opts co = {.device = 0, .deterministic = true};
    if (!st) st = lt_cuda_init(t->gpool, &co);
    if (st) return lt_status_wrapf(st, "backend: cuda");
    const double t0 = now_s();
    st = lt_model_copy(t->m, t->gpool, lt_backend_cuda(), &t->gm);
    if (!st) st = lt_lora_mirror_create(t->a, t->gpool, &t->gmir);
    if (!st) st = lt_cuda_check("copying the model to the GPU");
    if (st) return lt_status_wrapf(st, "backend: cuda");
    msg(t, "backend: cuda on %s; model and adapter copied in %.2f s", lt_cuda_describe(), now_s() - t0);
    return NULL;
}

static void warn_cb(void *ctx, const char *m) { msg(ctx, "warning: %s", m); }

static lt_status save_checkpoint(trainer *t, char *path_out, size_t cap) {
    lt_ckpt_item *items = NULL;
    char *names = NULL;
    const int64_t n_items = lt_trainer_ckpt_items(t->a, &items, &names);
    if (n_items < 0) return lt_errorf(LT_ERR_NOMEM, "checkpoint: out of memory");
    char *canon = lt_recipe_canonical(t->r);
    const lt_recipe *r = t->r;
    const lt_ckpt_attr attrs[] = {
        {.name = "format", .kind = LT_CKPT_STR, .s = LT_CKPT_FORMAT},
        {.name = "format_version", .kind = LT_CKPT_INT, .i = LT_CKPT_FORMAT_VERSION},
        {.name = "loft_version", .kind = LT_CKPT_STR, .s = LT_VERSION_STRING},
        {.name = "step", .kind = LT_CKPT_INT, .i = t->step},
        {.name = "total_steps", .kind = LT_CKPT_INT, .i = t->total_steps},
        {.name = "loader_epoch", .kind = LT_CKPT_INT, .i = t->boundary.epoch},
        {.name = "loader_cursor", .kind = LT_CKPT_INT, .i = t->boundary.cursor},
        {.name = "seed", .kind = LT_CKPT_INT, .i = (int64_t)r->training.seed},
        {.name = "rng", .kind = LT_CKPT_STR,
         .s = "philox4x32-10: shuffle keyed by (seed, epoch); dropout key of (step, micro-batch, row) keyed by seed; "
              "no other random state"},
        {.name = "lr_schedule_total_steps", .kind = LT_CKPT_INT, .i = t->sched.total_steps},
        {.name = "lr_schedule_warmup_steps", .kind = LT_CKPT_INT, .i = t->sched.warmup_steps},
        {.name = "last_lr", .kind = LT_CKPT_FLOAT, .f = t->last_lr},
        {.name = "last_loss", .kind = LT_CKPT_FLOAT, .f = t->last_loss},
        {.name = "recipe_text", .kind = LT_CKPT_STR, .s = r->text},
        {.name = "recipe_overrides", .kind = LT_CKPT_STR, .s = r->overrides ? r->overrides : ""},
        {.name = "recipe_path", .kind = LT_CKPT_STR, .s = r->path ? r->path : ""},
        {.name = "recipe_canonical", .kind = LT_CKPT_STR, .s = canon ? canon : ""},
        {.name = "base_model", .kind = LT_CKPT_STR, .s = r->model.path},
        {.name = "base_fingerprint", .kind = LT_CKPT_STR, .s = t->base_fp},
        {.name = "tokenizer_sha256", .kind = LT_CKPT_STR, .s = t->tok_hash},
        {.name = "chat_template", .kind = LT_CKPT_STR, .s = t->template_text ? t->template_text : ""},
        {.name = "stop_token_ids", .kind = LT_CKPT_STR, .s = t->stop_ids},
    };
    char *written = NULL;
    const double t0 = now_s();
    lt_status st = lt_ckpt_dir_save(t->ckpt_dir, t->step, items, n_items, attrs, (int64_t)(sizeof attrs / sizeof *attrs),
                                    r->checkpoint.keep_last, &written);
    free(canon);
    free(items);
    free(names);
    if (st) return lt_status_wrapf(st, "saving the checkpoint of step %lld", (long long)t->step);
    t->last_saved_step = t->step;
    t->t_ckpt += now_s() - t0;
    if (path_out) snprintf(path_out, cap, "%s", written ? written : "");
    msg(t, "checkpoint: step %lld -> %s (%.2f s)", (long long)t->step, written ? written : "?", now_s() - t0);
    free(written);
    return NULL;
}

static lt_status resume_from(trainer *t, const char *which) {
    char path[4096];
    lt_status st = lt_ckpt_dir_resolve(t->ckpt_dir, which, path, sizeof path, warn_cb, t);
    if (st) return lt_status_wrapf(st, "--resume %s", which);
    lt_ckpt *c = NULL;
    st = lt_ckpt_open(path, &c);
    if (st) return lt_status_wrapf(st, "--resume %s", which);
    const char *fmt = NULL, *fp = NULL, *th = NULL, *text = NULL, *ov = NULL, *rp = NULL, *bm = NULL;
    int64_t step = 0, ep = 0, cur = 0, fv = 0;
    st = lt_ckpt_attr_str(c, "format", &fmt);
    if (!st && strcmp(fmt, LT_CKPT_FORMAT))
        st = lt_errorf(LT_ERR_FORMAT, "%s: not a loft training checkpoint (format '%s')", path, fmt);
    if (!st) st = lt_ckpt_attr_int(c, "format_version", &fv);
    if (!st && fv != LT_CKPT_FORMAT_VERSION)
        st = lt_errorf(LT_ERR_UNSUPPORTED, "%s: checkpoint format version %lld, this loft reads %d", path,
                       (long long)fv, LT_CKPT_FORMAT_VERSION);
    if (!st) st = lt_ckpt_attr_str(c, "base_fingerprint", &fp);
    if (!st) st = lt_ckpt_attr_str(c, "base_model", &bm);
    if (!st && strcmp(fp, t->base_fp))
        st = lt_errorf(LT_ERR_INVALID_ARG,
                       "%s was trained on another base model: its fingerprint %.16s... (%s) differs from %.16s... "
                       "(%s); resume with the same model.path, or start a new run (another output_dir)",
                       path, fp, bm, t->base_fp, t->r->model.path);
    if (!st) st = lt_ckpt_attr_str(c, "tokenizer_sha256", &th);
    if (!st && strcmp(th, t->tok_hash))
        st = lt_errorf(LT_ERR_INVALID_ARG,
                       "%s was trained with another tokenizer or chat template (sha256 %.16s... vs now %.16s...); "
                       "resume with the same tokenizer files and data.chat_template",
                       path, th, t->tok_hash);
    if (!st) st = lt_ckpt_attr_str(c, "recipe_text", &text);
    if (!st) st = lt_ckpt_attr_str(c, "recipe_overrides", &ov);
    if (!st) st = lt_ckpt_attr_str(c, "recipe_path", &rp);
    if (!st) {
        lt_recipe saved;
        st = lt_trainer_recipe_from_saved(text, ov, rp, &saved);
        if (!st) {
            st = lt_recipe_check_resume(t->r, &saved);
            if (st) st = lt_status_wrapf(st, "the recipe differs from the one %s was trained with", path);
            lt_recipe_free(&saved);
        }
    }
    if (!st) st = lt_ckpt_attr_int(c, "step", &step);
    if (!st) st = lt_ckpt_attr_int(c, "loader_epoch", &ep);
    if (!st) st = lt_ckpt_attr_int(c, "loader_cursor", &cur);
    if (!st) st = lt_trainer_ckpt_restore_lora(c, t->a, true);
    if (!st) {
        t->boundary = (lt_loader_state){.epoch = ep, .cursor = cur};
        st = lt_loader_set_state(t->ld, t->boundary);
    }
    lt_ckpt_close(c);
    if (st) return lt_status_wrapf(st, "resuming from %s", path);
    if (step < 0 || step > t->total_steps)
        return lt_errorf(LT_ERR_FORMAT, "%s: step %lld is outside this run's 0..%lld steps", path, (long long)step,
                         (long long)t->total_steps);
    t->step = t->last_saved_step = step;
    msg(t, "resumed from %s at step %lld/%lld", path, (long long)step, (long long)t->total_steps);
    return NULL;
}

/* Mean eval loss over the eval set (each example its own row), or NaN without eval data. */
static lt_status run_eval(trainer *t, double *out) {
    *out = NAN;
    if (!t->eval) return NULL;
    int64_t n_ex = lt_dataset_size(t->eval);
    if (t->r->eval.max_batches > 0 && n_ex > t->r->eval.max_batches) n_ex = t->r->eval.max_batches;
    double sum = 0;
    int64_t n = 0;
    for (int64_t i = 0; i < n_ex; i++) {
        const int32_t *ids, *labels;
        int64_t T;
        lt_dataset_get(t->eval, i, &ids, &labels, &T);
        if (T < 2) continue;
        run_row row;
        lt_status st = row_copy(ids, labels, NULL, T, &row);
        double s = 0;
        int64_t k = 0;
        if (!st) {
            lt_train_batch b = {.T = T, .ids = row.ids, .targets = row.targets, .doc = NULL, .pos = row.pos};
            st = lt_train_eval_loss(step_model(t), step_adapter(t), &b, &s, &k);
            if (!st && t->gm) st = lt_cuda_check("eval");
        }
        rows_free(&row, 1);
        if (st) return lt_status_wrapf(st, "eval example %lld", (long long)i);
        sum += s;
        n += k;
    }
    *out = n > 0 ? sum / (double)n : NAN;
    return NULL;
}

static lt_status setup(trainer *t) {
    const lt_recipe *r = t->r;
    lt_status st = NULL;
    if (r->training.threads > 0) lt_threads_set(r->training.threads);
    if (r->backend == LT_BACKEND_CUDA) { /* before anything is loaded: say at once when there is no GPU */
        char desc[300];
        if (!lt_cuda_built())
            return lt_errorf(LT_ERR_UNSUPPORTED, "backend: cuda: this loft was built without the CUDA backend (nvcc "
                                                 "was not found at build time); use backend: cpu, or install the "
                                                 "CUDA toolkit and rebuild");
        if (lt_cuda_device_count(desc, sizeof desc) <= 0)
            return lt_errorf(LT_ERR_UNSUPPORTED, "backend: cuda: %s; use backend: cpu (or auto)", desc);
    }
    snprintf(t->run_dir, sizeof t->run_dir, "%s", r->output_dir);
    snprintf(t->ckpt_dir, sizeof t->ckpt_dir, "%s", r->checkpoint.dir);
    st = lt_mkdir_p(t->run_dir);
    if (st) return lt_status_wrapf(st, "output_dir");
    if (!t->o->resume && dir_has_checkpoints(t->ckpt_dir))
        return lt_errorf(LT_ERR_INVALID_ARG,
                         "%s already holds checkpoints of a run: continue it with --resume latest, or give this run "
                         "another output_dir (--set output_dir=...) so nothing is overwritten",
                         t->ckpt_dir);

    char *cfg_path = lt_path_join(r->model.path, "config.json");
    st = lt_config_load(cfg_path, &t->mc);
    free(cfg_path);
    if (st) return lt_status_wrapf(st, "model.path");
    if (r->model.architecture && strcmp(r->model.architecture, t->mc.architecture) &&
        strcmp(r->model.architecture, t->mc.model_type))
        return lt_errorf(LT_ERR_INVALID_ARG, "model.architecture: the recipe expects '%s', %s/config.json has '%s' (%s)",
                         r->model.architecture, r->model.path, t->mc.architecture, t->mc.model_type);

    /* tokenizer, template, stop ids */
    const char *tdir = r->model.tokenizer ? r->model.tokenizer : r->model.path;
    char *tpath = lt_path_join(tdir, "tokenizer.json");
    st = lt_tok_load(tpath, &t->tok);
    if (st) {
        free(tpath);
        return lt_status_wrapf(st, "the tokenizer (model.tokenizer or model.path)");
    }
    lt_status cst = lt_chat_template_load(tdir, r->data.chat_template, &t->chat);
    if (cst) {
        if (r->data.chat_template) {
            free(tpath);
            return lt_status_wrapf(cst, "data.chat_template");
        }
        lt_status_free(cst); /* no template: chat-style data will be refused by the loader */
        t->chat = NULL;
    }
    if (r->data.chat_template) {
        int64_t n;
        lt_status rs = lt_read_file(r->data.chat_template, 1 << 24, &t->template_text, &n);
        if (rs) lt_status_free(rs);
    } else {
        char *cp = lt_path_join(tdir, "tokenizer_config.json");
        int64_t n;
        lt_status rs = lt_read_file(cp, 1 << 26, &t->template_text, &n); /* the template lives in it */
        if (rs) lt_status_free(rs);
        free(cp);
    }
    st = tokenizer_hash(tdir, r->data.chat_template ? t->template_text : NULL, t->tok_hash);
    if (st) {
        free(tpath);
        return st;
    }
    int32_t stop[LT_MAX_STOP];
    int n_stop = 0;
    for (int i = 0; i < t->mc.n_eos; i++) lt_stop_add(stop, &n_stop, (int32_t)t->mc.eos_token_ids[i]);
    lt_gen_config gc;
    lt_status gs = lt_gen_config_load(r->model.path, t->mc.vocab_size, &gc);
    if (!gs)
        for (int i = 0; i < gc.n_eos; i++) lt_stop_add(stop, &n_stop, gc.eos[i]);
    lt_status_free(gs);
    size_t off = 0;
    t->stop_ids[0] = 0;
    for (int i = 0; i < n_stop && off + 16 < sizeof t->stop_ids; i++)
        off += (size_t)snprintf(t->stop_ids + off, sizeof t->stop_ids - off, "%s%d", i ? "," : "", stop[i]);

    /* data */
    const int32_t eos = n_stop > 0 ? stop[0] : -1;
    lt_data_opts dopt = {.path = r->data.train, .format = r->data.format, .tok = t->tok, .chat = t->chat,
                         .tokenizer_json_path = tpath, .train_on_completions = r->data.train_on_completions,
                         .max_seq_len = r->data.max_seq_len, .skip_bad_lines = r->data.skip_bad_lines,
                         .system_prompt = r->data.system_prompt, .cache_dir = r->data.cache_dir, .eos_id = eos};
    lt_data_report rep;
    const double t0 = now_s();
    st = lt_dataset_load(&dopt, &t->train, &rep);
    if (st) {
        free(tpath);
        return lt_status_wrapf(st, "data.train");
    }
    msg(t, "data: %s: %lld examples, %lld tokens (%lld with loss)%s in %.2f s%s%s", r->data.train,
        (long long)rep.examples, (long long)rep.tokens, (long long)rep.loss_tokens,
        rep.from_cache ? " from the token cache" : "", now_s() - t0, rep.bad_lines ? "; skipped bad lines: " : "",
        rep.bad_lines ? rep.first_bad : "");
    if (rep.bad_lines) msg(t, "data: %lld bad lines skipped in all", (long long)rep.bad_lines);
    if (rep.truncated) msg(t, "data: %lld examples truncated to max_seq_len %lld", (long long)rep.truncated,
                           (long long)r->data.max_seq_len);
    int64_t data_bytes = rep.tokens * 8;
    if (r->data.eval) {
        dopt.path = r->data.eval;
        st = lt_dataset_load(&dopt, &t->eval, &rep);
        if (st) {
            free(tpath);
            return lt_status_wrapf(st, "data.eval");
        }
        data_bytes += rep.tokens * 8;
        msg(t, "data: %s: %lld eval examples", r->data.eval, (long long)rep.examples);
    } else if (r->data.eval_fraction > 0) {
        st = lt_dataset_split(t->train, r->data.eval_fraction, &t->eval);
        if (st) {
            free(tpath);
            return lt_status_wrapf(st, "data.eval_fraction");
        }
    }
    free(tpath);
    if (lt_dataset_size(t->train) == 0)
        return lt_errorf(LT_ERR_INVALID_ARG, "data.train: %s holds no usable example", r->data.train);

    /* plan, then the pool */
    lt_train_plan p = lt_train_plan_make(r, &t->mc, data_bytes);
    char b[7][32];
    msg(t, "memory plan: weights %s + adapter %s + optimizer %s + activations %s + data %s = %s of %s budget",
        lt_fmt_bytes(p.weights, b[0], 32), lt_fmt_bytes(p.adapter, b[1], 32), lt_fmt_bytes(p.optimizer, b[2], 32),
        lt_fmt_bytes(p.activations, b[3], 32), lt_fmt_bytes(p.data, b[4], 32), lt_fmt_bytes(p.total, b[5], 32),
        lt_fmt_bytes(p.budget, b[6], 32));
    if (p.budget <= 0)
        return lt_errorf(LT_ERR_INVALID_ARG, "memory: budget_gb %g minus reserve_gb %g leaves nothing",
                         r->memory.budget_gb, r->memory.reserve_gb);
    if (p.total > p.budget)
        return lt_errorf(LT_ERR_BUDGET,
                         "memory: this run needs about %s but the budget is %s (memory.budget_gb - reserve_gb): "
                         "lower data.max_seq_len, turn on training.activation_checkpointing, quantize the base "
                         "(quantization.format nf4), lower lora.r, or raise memory.budget_gb",
                         lt_fmt_bytes(p.total, b[1], 32), lt_fmt_bytes(p.budget, b[2], 32));
    st = lt_pool_create(p.budget, &t->pool);
    if (st) return st;

    /* model */
    lt_load_opts lo = {.quantize = r->quant.enabled, .format = r->quant.format,
                       .quantize_embeddings = r->quant.embeddings, .quantize_lm_head = r->quant.lm_head,
                       .cache_dir = r->quant.cache_dir};
    const double t1 = now_s();
    st = lt_model_load_opts(r->model.path, t->pool, lt_backend_cpu(), &lo, &t->m);
    if (st) return lt_status_wrapf(st, "model.path");
    st = lt_model_source_fingerprint(r->model.path, t->base_fp);
    if (st) return lt_status_wrapf(st, "fingerprinting model.path");
    msg(t, "model: %s (%s, %lld layers, hidden %lld, vocab %lld), base %s, loaded in %.2f s", r->model.path,
        t->mc.architecture, (long long)t->mc.n_layers, (long long)t->mc.hidden_size, (long long)t->mc.vocab_size,
        r->quant.enabled ? lt_qformat_name(r->quant.format) : "f32", now_s() - t1);

    /* adapter */
    lt_lora_cfg lc = r->lora;
    lc.seed = r->training.seed;
    st = lt_lora_create(&t->mc, &lc, t->pool, &t->a);
    if (st) return lt_status_wrapf(st, "lora");
    if (r->lora_init && !t->o->resume) {
        lt_lora *init = NULL;
        st = lt_peft_import(r->lora_init, &t->mc, lc.seed, t->pool, &init);
        if (!st) st = lt_lora_copy_weights(t->a, init);
        lt_lora_free(init);
        if (st) return lt_status_wrapf(st, "lora.init_from");
        msg(t, "lora: starting from the PEFT adapter %s", r->lora_init);
    }

    /* loader and the step count */
    lt_loader_opts lopt = {.max_seq_len = r->data.max_seq_len, .packing = r->data.packing,
                           .shuffle = r->data.shuffle, .seed = r->training.seed};
    st = lt_loader_create(t->train, &lopt, &t->ld);
    if (st) return st;
    const int64_t rows_per_step = r->training.micro_batch * r->training.grad_accum;
    if (r->training.max_steps > 0) {
        t->total_steps = r->training.max_steps;
    } else {
        double rows = 0;
        const int64_t full = (int64_t)floor(r->training.epochs);
        for (int64_t e = 0; e < full; e++) rows += (double)lt_loader_rows_in_epoch(t->ld, e);
        const double frac = r->training.epochs - (double)full;
        if (frac > 0) rows += frac * (double)lt_loader_rows_in_epoch(t->ld, full);
        t->total_steps = (int64_t)ceil(rows / (double)rows_per_step);
        if (t->total_steps < 1) t->total_steps = 1;
    }
    t->adamw = (lt_adamw_cfg){.lr = r->training.lr, .beta1 = r->training.beta1, .beta2 = r->training.beta2,
                              .eps = r->training.eps, .weight_decay = r->training.weight_decay};
    int64_t warm = r->training.warmup_steps;
    if (r->training.warmup_ratio > 0) warm = (int64_t)ceil(r->training.warmup_ratio * (double)t->total_steps);
    t->sched = (lt_lr_sched){.kind = r->training.schedule, .lr = r->training.lr, .warmup_steps = warm,
                             .total_steps = t->total_steps, .num_cycles = 0.5};
    t->boundary = lt_loader_get_state(t->ld);
    msg(t, "lora: %lld trainable parameters (r %d, alpha %g%s, dropout %g); %lld steps of %lld rows x %lld tokens max",
        (long long)lt_lora_n_params(t->a), lc.r, lc.alpha, lc.rslora ? ", rsLoRA" : "", lc.dropout,
        (long long)t->total_steps, (long long)rows_per_step, (long long)r->data.max_seq_len);
    if (t->o->resume) {
        st = resume_from(t, t->o->resume);
        if (st) return st;
    }
    /* backend: auto stays on the CPU until the CUDA backend has passed its GPU parity tests on real
       hardware (docs/cuda.md); cuda asks for it explicitly */
    if (r->backend == LT_BACKEND_CUDA) {
        st = gpu_setup(t, p.budget);
        if (st) return st;
        lt_lora_mirror_push(t->a, t->gmir, lt_backend_cuda());
    }
    char mpath[4200];
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", t->run_dir);
    st = lt_metrics_open(mpath, t->step, &t->metrics);
    return st;
}

static void teardown(trainer *t) {
    lt_metrics_close(t->metrics);
    lt_lora_free(t->gmir);
    lt_model_free(t->gm);
    if (t->gpool) {
        lt_cuda_shutdown();
        lt_pool_destroy(t->gpool);
    }
    lt_loader_free(t->ld);
    lt_lora_free(t->a);
    lt_dataset_free(t->train);
    lt_dataset_free(t->eval);
    lt_model_free(t->m);
    lt_chat_template_free(t->chat);
    lt_tok_free(t->tok);
    free(t->template_text);
    if (t->pool) lt_pool_destroy(t->pool);
}

/* One optimizer step. *interrupted: the stop flag was seen inside the window (nothing applied). */
static lt_status one_step(trainer *t, bool *interrupted, int64_t *tokens_out) {
    const lt_recipe *r = t->r;
    const int64_t n_micro = r->training.grad_accum, mb = r->training.micro_batch, n_rows = n_micro * mb;
    *interrupted = false;
    *tokens_out = 0;
    run_row *rows = calloc((size_t)n_rows, sizeof *rows);
    if (!rows) return lt_errorf(LT_ERR_NOMEM, "train: out of memory");
    lt_status st = NULL;
    int64_t n_items = 0, got = 0;
    const double td = now_s();
    for (; got < n_rows && !st; got++) {
        lt_row row;
        st = lt_loader_next(t->ld, &row);
        if (!st) st = row_copy(row.ids, row.labels, row.doc, row.T, &rows[got]);
        if (!st) {
            for (int64_t i = 0; i < row.T; i++) n_items += rows[got].targets[i] != LT_IGNORE_INDEX;
            *tokens_out += row.T;
        }
    }
    t->t_data += now_s() - td;
    double sum_ce = 0;
    if (!st) {
        lt_lora_zero_grad(t->a);
        if (t->gmir) lt_lora_mirror_zero_grad(t->gmir, lt_backend_cuda());
        const double denom = n_items > 0 ? (double)n_items : 1.0;
        for (int64_t i = 0; i < n_rows && !st; i++) {
            if (t->o->stop && *t->o->stop) {
                *interrupted = true;
                break;
            }
            lt_train_batch b = {.T = rows[i].T, .ids = rows[i].ids, .targets = rows[i].targets, .doc = rows[i].doc,
                                .pos = rows[i].pos,
                                .dropout_key = dropout_key(r->training.seed, t->step, i / mb, i % mb)};
            double s = 0;
            int64_t k = 0;
            st = lt_train_step_grads(step_model(t), step_adapter(t), &b, denom, r->training.activation_checkpointing, &s,
                                     &k);
            if (st) st = lt_status_wrapf(st, "step %lld, row %lld", (long long)t->step + 1, (long long)i);
            sum_ce += s;
        }
    }
    rows_free(rows, got);
    free(rows);
    if (st || *interrupted) {
        lt_status rs = lt_loader_set_state(t->ld, t->boundary); /* the window is redone on resume */
        if (rs) lt_status_free(rs);
        return st;
    }
    if (t->gmir) { /* the window's gradients to the host adapter (copy_out waits for the GPU) */
        lt_lora_mirror_pull_grads(t->gmir, t->a, lt_backend_cuda());
        st = lt_cuda_check("training step");
        if (st) {
            lt_status rs = lt_loader_set_state(t->ld, t->boundary);
            if (rs) lt_status_free(rs);
            return lt_status_wrapf(st, "step %lld", (long long)t->step + 1);
        }
    }
    const double lr = lt_lr_at(&t->sched, t->step);
    double norm = 0;
    const double to = now_s();
    st = lt_lora_optimizer_step(t->a, &t->adamw, lr, t->step + 1, r->training.max_grad_norm, &norm);
    if (t->gmir) lt_lora_mirror_push(t->a, t->gmir, lt_backend_cuda()); /* the updated compute copies */
    t->t_opt += now_s() - to;
    if (st) {
        msg(t, "warning: step %lld skipped: %s", (long long)t->step + 1, lt_status_msg(st));
        lt_status_free(st);
        st = NULL;
    }
    t->step++;
    t->boundary = lt_loader_get_state(t->ld);
    t->last_loss = n_items > 0 ? sum_ce / (double)n_items : NAN;
    t->last_lr = lr;
    t->last_norm = norm;
    return NULL;
}

lt_status lt_train_run(const lt_train_opts *o, lt_train_result *res) {
    LT_ASSERT(o && o->recipe && res);
    memset(res, 0, sizeof *res);
    res->last_loss = res->last_eval_loss = NAN;
    trainer t = {.o = o, .r = o->recipe, .log = o->log, .last_loss = NAN, .last_eval = NAN};
    const double t_begin = now_s();
    const lt_step_times st0 = lt_train_step_times();
    lt_status st = setup(&t);
    res->t_setup = now_s() - t_begin;
    snprintf(res->run_dir, sizeof res->run_dir, "%s", t.run_dir);
    res->total_steps = t.total_steps;
    res->start_step = t.step;
    if (st) {
        teardown(&t);
        return st;
    }
    const lt_recipe *r = t.r;
    if (!o->quiet) lt_progress_init(&t.prog, t.total_steps, t.step, o->log ? o->log : stderr);
    const double t_start = now_s();
    double tok_window = 0, time_window = 0;
    bool stopped = false;
    while (t.step < t.total_steps) {
        bool intr = false;
        int64_t toks = 0;
        const double t0 = now_s();
        st = one_step(&t, &intr, &toks);
        if (st) break;
        if (intr) {
            stopped = true;
            break;
        }
        const double dt = now_s() - t0;
        res->tokens += toks;
        tok_window = 0.7 * tok_window + (double)toks;
        time_window = 0.7 * time_window + dt;
        const lt_pool_stats ps = lt_pool_get_stats(t.pool);
        char line[1024];
        snprintf(line, sizeof line,
                 "{\"step\": %lld, \"loss\": %.17g, \"lr\": %.17g, \"grad_norm\": %.17g, \"tokens\": %lld, "
                 "\"tokens_per_s\": %.1f, \"step_s\": %.4f, \"elapsed_s\": %.3f, \"pool_bytes\": %lld, "
                 "\"pool_peak\": %lld}",
                 (long long)t.step, t.last_loss, t.last_lr, t.last_norm, (long long)toks,
                 dt > 0 ? (double)toks / dt : 0.0, dt, now_s() - t_start, (long long)ps.used, (long long)ps.high_water);
        st = lt_metrics_write(t.metrics, line);
        if (st) break;
        const bool last = t.step == t.total_steps;
        const int64_t ev = r->eval.every_n_steps;
        if (t.eval && ((ev > 0 && t.step % ev == 0) || last)) {
            const double te = now_s();
            st = run_eval(&t, &t.last_eval);
            t.t_eval += now_s() - te;
            if (st) break;
            snprintf(line, sizeof line, "{\"step\": %lld, \"eval_loss\": %.17g}", (long long)t.step, t.last_eval);
            st = lt_metrics_write(t.metrics, line);
            if (st) break;
            msg(&t, "eval: step %lld, loss %.4f", (long long)t.step, t.last_eval);
        }
        if (!o->quiet)
            lt_progress_update(&t.prog, &(lt_progress_info){.step = t.step, .loss = t.last_loss, .lr = t.last_lr,
                                                            .grad_norm = t.last_norm,
                                                            .tokens_per_s = time_window > 0 ? tok_window / time_window : 0,
                                                            .pool_bytes = ps.used, .pool_peak = ps.high_water,
                                                            .budget_bytes = ps.budget, .eval_loss = t.last_eval});
        const int64_t every = r->checkpoint.every_n_steps;
        if ((every > 0 && t.step % every == 0) || last) {
            st = save_checkpoint(&t, res->last_checkpoint, sizeof res->last_checkpoint);
            if (st) break;
        }
        if ((o->stop && *o->stop) || (o->stop_after_step > 0 && t.step >= o->stop_after_step)) {
            stopped = t.step < t.total_steps;
            break;
        }
    }
    /* whatever happened, the last completed step is kept (unless it already is) */
    if (t.step > t.last_saved_step && t.a) {
        lt_status cs = save_checkpoint(&t, res->last_checkpoint, sizeof res->last_checkpoint);
        if (cs) {
            if (!st)
                st = cs;
            else
                lt_status_free(cs);
        }
    }
    if (!o->quiet) lt_progress_finish(&t.prog);
    if (stopped && !st) msg(&t, "stopped at step %lld/%lld; continue with --resume latest", (long long)t.step,
                            (long long)t.total_steps);
    if (!st && !stopped) {
        /* the finished adapter, as PEFT reads it, and the loss plot */
        char ad[4200], old[4300];
        snprintf(ad, sizeof ad, "%s/adapter", t.run_dir);
        snprintf(old, sizeof old, "%s/adapter.old-%ld", t.run_dir, (long)getpid());
        struct stat sb;
        bool moved = stat(ad, &sb) == 0 && rename(ad, old) == 0;
        lt_peft_export_opts eo = {.base_model = r->model.path, .dtype = LT_DTYPE_BF16};
        st = lt_peft_export(t.a, &t.mc, &eo, ad);
        if (moved) rm_tree(old);
        if (!st) {
            memcpy(res->adapter_dir, ad, strnlen(ad, sizeof res->adapter_dir - 1));
            msg(&t, "adapter: %s (PEFT format)", ad);
            char svg[4200];
            snprintf(svg, sizeof svg, "%s/loss.svg", t.run_dir);
            lt_status ps = lt_plot_run(t.run_dir, svg);
            if (ps) {
                msg(&t, "warning: no loss plot: %s", lt_status_msg(ps));
                lt_status_free(ps);
            } else {
                msg(&t, "plot: %s", svg);
            }
        }
    }
    const lt_step_times st1 = lt_train_step_times();
    res->t_forward = st1.forward - st0.forward;
    res->t_ce = st1.ce - st0.ce;
    res->t_backward = st1.backward - st0.backward;
    res->t_data = t.t_data;
    res->t_optimizer = t.t_opt;
    res->t_checkpoint = t.t_ckpt;
    res->t_eval = t.t_eval;
    res->t_total = now_s() - t_begin;
    if (t.pool) res->pool_peak = lt_pool_get_stats(t.pool).high_water;
    res->steps_done = t.step;
    res->last_loss = t.last_loss;
    res->last_eval_loss = t.last_eval;
    res->stopped = stopped;
    teardown(&t);
    return st;
}
