/* Recipes (see recipe.h): one table of keys drives parsing, --set, validation, defaults and the canonical
 * text, so a key cannot be parsed without being printed, compared on resume and documented. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "train/recipe.h"
#include "train/recipe_internal.h"

typedef enum key_kind { K_STR, K_INT, K_FLOAT, K_BOOL, K_ENUM, K_TARGETS, K_QFORMAT, K_BADLINE } key_kind;

static const char *const k_formats[] = {"auto", "text", "alpaca", "chat", "completion"};
static const char *const k_sched[] = {"constant", "linear", "cosine"};
static const char *const k_backend[] = {"auto", "cpu", "cuda"};

typedef struct key_def {
    const char *path;
    key_kind kind;
    size_t off;
    double lo, hi;    /* numbers: the accepted range */
    bool lo_open;     /* lo itself refused (a positive number) */
    bool hi_open;     /* hi itself refused (a probability < 1) */
    const char *const *names; /* K_ENUM */
    int n_names;
    bool resume_may_differ; /* does not change the trained function */
} key_def;

#define OFF(f) offsetof(lt_recipe, f)
#define BIG 9.2e18
static const key_def k_keys[] = {
    {"model.path", K_STR, OFF(model.path), 0, 0, false, false, NULL, 0, true},
    {"model.architecture", K_STR, OFF(model.architecture), 0, 0, false, false, NULL, 0, false},
    {"model.tokenizer", K_STR, OFF(model.tokenizer), 0, 0, false, false, NULL, 0, true},
    {"quantization.format", K_QFORMAT, 0, 0, 0, false, false, NULL, 0, false},
    {"quantization.double_quant", K_BOOL, OFF(quant.double_quant), 0, 0, false, false, NULL, 0, false},
    {"quantization.embeddings", K_BOOL, OFF(quant.embeddings), 0, 0, false, false, NULL, 0, false},
    {"quantization.lm_head", K_BOOL, OFF(quant.lm_head), 0, 0, false, false, NULL, 0, false},
    {"quantization.cache_dir", K_STR, OFF(quant.cache_dir), 0, 0, false, false, NULL, 0, true},
    {"lora.r", K_INT, OFF(lora.r), 1, 65536, false, false, NULL, 0, false},
    {"lora.alpha", K_FLOAT, OFF(lora.alpha), 0, 1e9, true, false, NULL, 0, false},
    {"lora.dropout", K_FLOAT, OFF(lora.dropout), 0, 1, false, true, NULL, 0, false},
    {"lora.targets", K_TARGETS, OFF(lora.targets), 0, 0, false, false, NULL, 0, false},
    {"lora.rslora", K_BOOL, OFF(lora.rslora), 0, 0, false, false, NULL, 0, false},
    {"lora.init_from", K_STR, OFF(lora_init), 0, 0, false, false, NULL, 0, false},
    {"data.train", K_STR, OFF(data.train), 0, 0, false, false, NULL, 0, false},
    {"data.eval", K_STR, OFF(data.eval), 0, 0, false, false, NULL, 0, true},
    {"data.format", K_ENUM, OFF(data.format), 0, 0, false, false, k_formats, 5, false},
    {"data.chat_template", K_STR, OFF(data.chat_template), 0, 0, false, false, NULL, 0, false},
    {"data.train_on_completions", K_BOOL, OFF(data.train_on_completions), 0, 0, false, false, NULL, 0, false},
    {"data.packing", K_BOOL, OFF(data.packing), 0, 0, false, false, NULL, 0, false},
    {"data.max_seq_len", K_INT, OFF(data.max_seq_len), 2, 1 << 24, false, false, NULL, 0, false},
    {"data.shuffle", K_BOOL, OFF(data.shuffle), 0, 0, false, false, NULL, 0, false},
    {"data.on_bad_line", K_BADLINE, OFF(data.skip_bad_lines), 0, 0, false, false, NULL, 0, false},
    {"data.eval_fraction", K_FLOAT, OFF(data.eval_fraction), 0, 0.5, false, false, NULL, 0, false},
    {"data.cache_dir", K_STR, OFF(data.cache_dir), 0, 0, false, false, NULL, 0, true},
    {"data.system_prompt", K_STR, OFF(data.system_prompt), 0, 0, false, false, NULL, 0, false},
    {"training.micro_batch", K_INT, OFF(training.micro_batch), 1, 1 << 20, false, false, NULL, 0, false},
    {"training.grad_accum", K_INT, OFF(training.grad_accum), 1, 1 << 20, false, false, NULL, 0, false},
    {"training.lr", K_FLOAT, OFF(training.lr), 0, 10, true, false, NULL, 0, false},
    {"training.schedule", K_ENUM, OFF(training.schedule), 0, 0, false, false, k_sched, 3, false},
    {"training.warmup_steps", K_INT, OFF(training.warmup_steps), 0, BIG, false, false, NULL, 0, false},
    {"training.warmup_ratio", K_FLOAT, OFF(training.warmup_ratio), 0, 1, false, false, NULL, 0, false},
    {"training.max_steps", K_INT, OFF(training.max_steps), 0, BIG, false, false, NULL, 0, true},
    {"training.epochs", K_FLOAT, OFF(training.epochs), 0, 1e6, true, false, NULL, 0, true},
    {"training.weight_decay", K_FLOAT, OFF(training.weight_decay), 0, 10, false, false, NULL, 0, false},
    {"training.beta1", K_FLOAT, OFF(training.beta1), 0, 1, false, true, NULL, 0, false},
    {"training.beta2", K_FLOAT, OFF(training.beta2), 0, 1, false, true, NULL, 0, false},
    {"training.eps", K_FLOAT, OFF(training.eps), 0, 1, true, false, NULL, 0, false},
    {"training.max_grad_norm", K_FLOAT, OFF(training.max_grad_norm), 0, 1e9, false, false, NULL, 0, false},
    {"training.activation_checkpointing", K_BOOL, OFF(training.activation_checkpointing), 0, 0, false, false, NULL, 0,
     true},
    {"training.seed", K_INT, OFF(training.seed), 0, BIG, false, false, NULL, 0, false},
    {"training.threads", K_INT, OFF(training.threads), 0, 4096, false, false, NULL, 0, true},
    {"checkpoint.dir", K_STR, OFF(checkpoint.dir), 0, 0, false, false, NULL, 0, true},
    {"checkpoint.every_n_steps", K_INT, OFF(checkpoint.every_n_steps), 0, BIG, false, false, NULL, 0, true},
    {"checkpoint.keep_last", K_INT, OFF(checkpoint.keep_last), 0, BIG, false, false, NULL, 0, true},
    {"eval.every_n_steps", K_INT, OFF(eval.every_n_steps), 0, BIG, false, false, NULL, 0, true},
    {"eval.max_batches", K_INT, OFF(eval.max_batches), 0, BIG, false, false, NULL, 0, true},
    {"memory.budget_gb", K_FLOAT, OFF(memory.budget_gb), 0, 1e7, true, false, NULL, 0, true},
    {"memory.reserve_gb", K_FLOAT, OFF(memory.reserve_gb), 0, 1e7, false, false, NULL, 0, true},
    {"backend", K_ENUM, OFF(backend), 0, 0, false, false, k_backend, 3, true},
    {"output_dir", K_STR, OFF(output_dir), 0, 0, false, false, NULL, 0, true},
};
#define N_KEYS (sizeof k_keys / sizeof k_keys[0])
static const char *const k_sections[] = {"model", "quantization", "lora", "data", "training", "checkpoint", "eval",
                                         "memory"};

/* Which fields are integers of which width: lora.r and training.threads are int, the seed uint64, the
   rest int64. */
static bool is_int32_field(size_t off) { return off == OFF(lora.r) || off == OFF(training.threads); }

const char *lt_data_format_name(lt_data_format f) {
    return (int)f >= 0 && (int)f < 5 ? k_formats[f] : "?";
}

/* ---------------------------------------------------------------- messages */

static int edit_distance(const char *a, const char *b) {
    const size_t n = strlen(a), m = strlen(b);
    if (n > 64 || m > 64) return 99;
    int d[65][65];
    for (size_t i = 0; i <= n; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    return d[n][m];
}

/* " (did you mean 'x'?)" for the closest known path, or "". */
static void suggest(const char *path, char *buf, size_t cap) {
    int best = 4;
    const char *bk = NULL;
    for (size_t i = 0; i < N_KEYS; i++) {
        const int d = edit_distance(path, k_keys[i].path);
        if (d < best) best = d, bk = k_keys[i].path;
    }
    for (size_t i = 0; i < sizeof k_sections / sizeof *k_sections; i++) {
        const int d = edit_distance(path, k_sections[i]);
        if (d < best) best = d, bk = k_sections[i];
    }
    if (bk)
        snprintf(buf, cap, " (did you mean '%s'?)", bk);
    else
        buf[0] = 0;
}

typedef struct src {
    const char *where; /* the file, or "--set a.b" */
    bool is_set;
} src;

static lt_status key_err(const src *s, const lt_ynode *n, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static lt_status key_err(const src *s, const lt_ynode *n, const char *path, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (s->is_set) return lt_errorf(LT_ERR_INVALID_ARG, "%s: %s", s->where, msg);
    return lt_errorf(LT_ERR_INVALID_ARG, "%s:%d:%d: key %s: %s", s->where, n ? n->line : 0, n ? n->col : 0, path, msg);
}

/* ---------------------------------------------------------------- scalar values */

static const char *got(const lt_ynode *n) {
    return n->kind == LT_Y_MAP ? "a mapping" : n->kind == LT_Y_SEQ ? "a list" : n->str;
}

static bool is_null(const lt_ynode *n) {
    return n->kind == LT_Y_SCALAR && !n->quoted && (!strcmp(n->str, "null") || !strcmp(n->str, "~") || !n->str[0]);
}

static lt_status set_str(const src *s, const key_def *k, const lt_ynode *n, lt_recipe *r) {
    char **dst = (char **)((char *)r + k->off);
    if (n->kind != LT_Y_SCALAR) return key_err(s, n, k->path, "expected a string, got %s", got(n));
    free(*dst);
    *dst = NULL;
    if (is_null(n)) return NULL;
    *dst = strdup(n->str);
    return *dst ? NULL : lt_errorf(LT_ERR_NOMEM, "out of memory");
}

static lt_status range_err(const src *s, const key_def *k, const lt_ynode *n, const char *what) {
    char lo[32], hi[32];
    snprintf(lo, sizeof lo, "%g", k->lo);
    snprintf(hi, sizeof hi, k->hi >= BIG ? "inf" : "%g", k->hi);
    return key_err(s, n, k->path, "expected %s in %s%s, %s%s, got '%s'", what, k->lo_open ? "(" : "[", lo, hi,
                   k->hi_open ? ")" : "]", got(n));
}

static lt_status set_num(const src *s, const key_def *k, const lt_ynode *n, lt_recipe *r) {
    const bool integer = k->kind == K_INT;
    const char *what = integer ? "an integer" : "a number";
    if (n->kind != LT_Y_SCALAR || n->quoted || is_null(n))
        return key_err(s, n, k->path, "expected %s, got %s%s%s", what, n->quoted ? "the string '" : "",
                       is_null(n) ? "nothing" : got(n), n->quoted ? "'" : "");
    errno = 0;
    char *end = NULL;
    double v;
    long long iv = 0;
    if (integer) {
        iv = strtoll(n->str, &end, 10);
        v = (double)iv;
    } else {
        v = strtod(n->str, &end);
    }
    if (end == n->str || *end || errno || !isfinite(v))
        return key_err(s, n, k->path, "expected %s, got '%s'", what, n->str);
    if (v < k->lo || v > k->hi || (k->lo_open && v == k->lo) || (k->hi_open && v == k->hi)) return range_err(s, k, n, what);
    void *dst = (char *)r + k->off;
    if (!integer)
        *(double *)dst = v;
    else if (is_int32_field(k->off))
        *(int *)dst = (int)iv;
    else if (k->off == OFF(training.seed))
        *(uint64_t *)dst = (uint64_t)iv;
    else
        *(int64_t *)dst = (int64_t)iv;
    return NULL;
}

static lt_status parse_bool(const src *s, const char *path, const lt_ynode *n, bool *out) {
    if (n->kind == LT_Y_SCALAR && !n->quoted) {
        if (!strcmp(n->str, "true")) return *out = true, NULL;
        if (!strcmp(n->str, "false")) return *out = false, NULL;
        if (!strcasecmp(n->str, "yes") || !strcasecmp(n->str, "no") || !strcasecmp(n->str, "on") ||
            !strcasecmp(n->str, "off"))
            return key_err(s, n, path, "expected true or false, got '%s' (YAML 1.1's yes/no/on/off are ambiguous; "
                                       "write true or false)", n->str);
    }
    return key_err(s, n, path, "expected true or false, got '%s'", got(n));
}

static lt_status set_enum(const src *s, const char *path, const lt_ynode *n, const char *const *names, int count,
                          int *out) {
    if (n->kind == LT_Y_SCALAR)
        for (int i = 0; i < count; i++)
            if (!strcmp(n->str, names[i])) return *out = i, NULL;
    char list[256] = "";
    for (int i = 0; i < count; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", names[i]);
    return key_err(s, n, path, "expected one of %s, got '%s'", list, got(n));
}

static lt_status set_targets(const src *s, const key_def *k, const lt_ynode *n, lt_recipe *r) {
    uint32_t mask = 0;
    if (n->kind == LT_Y_SCALAR && !strcmp(n->str, "all-linear")) {
        r->lora.targets = LT_LORA_ALL_LINEAR;
        return NULL;
    }
    if (n->kind != LT_Y_SEQ || n->n == 0)
        return key_err(s, n, k->path, "expected all-linear or a list of modules such as [q_proj, v_proj], got '%s'",
                       got(n));
    for (int i = 0; i < n->n; i++) {
        const lt_ynode *it = n->items[i];
        lt_lora_module m;
        if (it->kind != LT_Y_SCALAR || !lt_lora_module_from_name(it->str, &m))
            return key_err(s, it, k->path,
                           "expected module names among q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, "
                           "got '%s'", got(it));
        if (mask & (1u << m)) return key_err(s, it, k->path, "'%s' is listed twice", it->str);
        mask |= 1u << m;
    }
    r->lora.targets = mask;
    return NULL;
}

static lt_status set_qformat(const src *s, const key_def *k, const lt_ynode *n, lt_recipe *r) {
    if (n->kind == LT_Y_SCALAR && !strcmp(n->str, "none")) {
        r->quant.enabled = false;
        return NULL;
    }
    lt_qformat f;
    if (n->kind != LT_Y_SCALAR || !lt_qformat_from_name(n->str, &f))
        return key_err(s, n, k->path, "expected one of nf4, nf4_nodq, mxfp4, nvfp4, q8_0, bf16, none, got '%s'",
                       got(n));
    r->quant.enabled = true;
    r->quant.format = f;
    return NULL;
}

static lt_status apply_key(const src *s, const key_def *k, const lt_ynode *n, lt_recipe *r) {
    switch (k->kind) {
    case K_STR:
        return set_str(s, k, n, r);
    case K_INT:
    case K_FLOAT:
        return set_num(s, k, n, r);
    case K_BOOL:
        return parse_bool(s, k->path, n, (bool *)((char *)r + k->off));
    case K_ENUM: {
        int v = 0;
        lt_status st = set_enum(s, k->path, n, k->names, k->n_names, &v);
        if (!st) *(int *)((char *)r + k->off) = v;
        return st;
    }
    case K_TARGETS:
        return set_targets(s, k, n, r);
    case K_QFORMAT:
        return set_qformat(s, k, n, r);
    case K_BADLINE: {
        static const char *const v[] = {"skip", "fail"};
        int i = 0;
        lt_status st = set_enum(s, k->path, n, v, 2, &i);
        if (!st) r->data.skip_bad_lines = i == 0;
        return st;
    }
    }
    return NULL;
}

/* lora.modules.<module>.{r,alpha} */
static lt_status apply_module_override(const src *s, const char *module, const char *field, const lt_ynode *n,
                                       const lt_ynode *at, lt_recipe *r) {
    char path[128];
    snprintf(path, sizeof path, "lora.modules.%s.%s", module, field);
    lt_lora_module m;
    if (!lt_lora_module_from_name(module, &m))
        return key_err(s, at, path, "'%s' is not a module (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, "
                                    "down_proj)", module);
    const key_def kr = {path, K_INT, 0, 1, 65536, false, false, NULL, 0, false};
    const key_def ka = {path, K_FLOAT, 0, 0, 1e9, true, false, NULL, 0, false};
    lt_recipe tmp = *r; /* parse into scratch fields, then copy the one value */
    if (!strcmp(field, "r")) {
        lt_status st = set_num(s, &(key_def){path, K_INT, OFF(lora.r), kr.lo, kr.hi, false, false, NULL, 0, false}, n,
                               &tmp);
        if (st) return st;
        r->lora.r_module[m] = tmp.lora.r;
        return NULL;
    }
    if (!strcmp(field, "alpha")) {
        lt_status st = set_num(s, &(key_def){path, K_FLOAT, OFF(lora.alpha), ka.lo, ka.hi, true, false, NULL, 0, false},
                               n, &tmp);
        if (st) return st;
        r->lora.alpha_module[m] = tmp.lora.alpha;
        return NULL;
    }
    return key_err(s, at, path, "unknown key '%s' (a module takes r and alpha)", field);
}

static const key_def *find_key(const char *path) {
    for (size_t i = 0; i < N_KEYS; i++)
        if (!strcmp(k_keys[i].path, path)) return &k_keys[i];
    return NULL;
}

static lt_status unknown(const src *s, const lt_ynode *at, const char *path) {
    char sug[96];
    suggest(path, sug, sizeof sug);
    if (s->is_set) return lt_errorf(LT_ERR_INVALID_ARG, "%s: unknown key '%s'%s; see docs/recipes.md", s->where, path, sug);
    return lt_errorf(LT_ERR_INVALID_ARG, "%s:%d:%d: unknown key '%s'%s; see docs/recipes.md for the keys", s->where,
                     at->line, at->col, path, sug);
}

/* Applies value n at a dotted path (from the file or --set). */
static lt_status apply_path(const src *s, const char *path, const lt_ynode *n, const lt_ynode *at, lt_recipe *r) {
    if (!strncmp(path, "lora.modules.", 13)) {
        char mod[64], field[64];
        const char *rest = path + 13, *dot = strchr(rest, '.');
        if (!dot || (size_t)(dot - rest) >= sizeof mod || strlen(dot + 1) >= sizeof field || strchr(dot + 1, '.'))
            return unknown(s, at, path);
        memcpy(mod, rest, (size_t)(dot - rest));
        mod[dot - rest] = 0;
        strcpy(field, dot + 1);
        return apply_module_override(s, mod, field, n, at, r);
    }
    const key_def *k = find_key(path);
    if (!k) return unknown(s, at, path);
    return apply_key(s, k, n, r);
}

static lt_status apply_tree(const src *s, const lt_ynode *root, lt_recipe *r) {
    if (!root) return lt_errorf(LT_ERR_INVALID_ARG, "%s: the recipe is empty; it needs at least model.path and data.train",
                                s->where);
    if (root->kind != LT_Y_MAP)
        return lt_errorf(LT_ERR_INVALID_ARG, "%s:%d:%d: expected a mapping of sections (model:, data:, training:, ...), "
                                             "got %s", s->where, root->line, root->col, got(root));
    for (int i = 0; i < root->n; i++) {
        const lt_ynode *key = root->keys[i], *val = root->items[i];
        const char *sec = key->str;
        const key_def *top = find_key(sec);
        if (top) { /* backend, output_dir */
            lt_status st = apply_key(s, top, val, r);
            if (st) return st;
            continue;
        }
        bool known = false;
        for (size_t j = 0; j < sizeof k_sections / sizeof *k_sections; j++) known |= !strcmp(sec, k_sections[j]);
        if (!known) return unknown(s, key, sec);
        if (is_null(val)) continue; /* "eval:" with nothing under it */
        if (val->kind != LT_Y_MAP)
            return lt_errorf(LT_ERR_INVALID_ARG, "%s:%d:%d: section %s: expected a mapping of keys, got '%s'", s->where,
                             val->line, val->col, sec, got(val));
        for (int j = 0; j < val->n; j++) {
            char path[256];
            snprintf(path, sizeof path, "%s.%s", sec, val->keys[j]->str);
            if (!strcmp(path, "lora.modules")) {
                const lt_ynode *mods = val->items[j];
                if (mods->kind != LT_Y_MAP)
                    return key_err(s, mods, path, "expected a mapping such as {q_proj: {r: 8, alpha: 16}}, got '%s'",
                                   got(mods));
                for (int q = 0; q < mods->n; q++) {
                    const lt_ynode *fields = mods->items[q];
                    if (fields->kind != LT_Y_MAP)
                        return key_err(s, fields, path, "expected {r: N, alpha: X} under %s, got '%s'", mods->keys[q]->str,
                                       got(fields));
                    for (int f = 0; f < fields->n; f++) {
                        lt_status st = apply_module_override(s, mods->keys[q]->str, fields->keys[f]->str,
                                                             fields->items[f], fields->keys[f], r);
                        if (st) return st;
                    }
                }
                continue;
            }
            lt_status st = apply_path(s, path, val->items[j], val->keys[j], r);
            if (st) return st;
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------- defaults and the whole recipe */

static void defaults(lt_recipe *r) {
    r->quant.enabled = true;
    r->quant.format = LT_Q_NF4;
    r->quant.double_quant = true;
    r->lora.r = 16;
    r->lora.alpha = 32;
    r->lora.dropout = 0.05;
    r->lora.targets = LT_LORA_ALL_LINEAR;
    r->data.format = LT_DATA_AUTO;
    r->data.train_on_completions = true;
    r->data.packing = true;
    r->data.max_seq_len = 2048;
    r->data.shuffle = true;
    r->data.skip_bad_lines = true;
    r->training.micro_batch = 1;
    r->training.grad_accum = 1;
    r->training.lr = 2e-4;
    r->training.schedule = LT_LR_COSINE;
    r->training.epochs = 1;
    r->training.beta1 = 0.9;
    r->training.beta2 = 0.999;
    r->training.eps = 1e-8;
    r->training.max_grad_norm = 1.0;
    r->training.activation_checkpointing = true;
    r->training.seed = 42;
    r->checkpoint.every_n_steps = 100;
    r->checkpoint.keep_last = 3;
    r->eval.every_n_steps = -1; /* = checkpoint.every_n_steps unless given */
    r->memory.budget_gb = 128;
    r->backend = LT_BACKEND_AUTO;
}

void lt_recipe_free(lt_recipe *r) {
    if (!r) return;
    char **strs[] = {&r->path, &r->text, &r->overrides, &r->model.path, &r->model.architecture, &r->model.tokenizer,
                     &r->quant.cache_dir, &r->lora_init, &r->data.train, &r->data.eval, &r->data.chat_template,
                     &r->data.cache_dir, &r->data.system_prompt, &r->checkpoint.dir, &r->output_dir};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++) free(*strs[i]);
    memset(r, 0, sizeof *r);
}

static lt_status finish(lt_recipe *r) {
    if (!r->model.path)
        return lt_errorf(LT_ERR_INVALID_ARG, "%s: model.path is required (the HF model directory to fine-tune)", r->path);
    if (!r->data.train)
        return lt_errorf(LT_ERR_INVALID_ARG, "%s: data.train is required (a JSONL file; see datasets/README.md)", r->path);
    if (r->quant.enabled && r->quant.format == LT_Q_NF4 && !r->quant.double_quant) r->quant.format = LT_Q_NF4_NODQ;
    if (r->eval.every_n_steps < 0) r->eval.every_n_steps = r->checkpoint.every_n_steps;
    if (r->memory.reserve_gb >= r->memory.budget_gb)
        return lt_errorf(LT_ERR_INVALID_ARG, "%s: memory.reserve_gb (%g) must be below memory.budget_gb (%g)", r->path,
                         r->memory.reserve_gb, r->memory.budget_gb);
    r->lora.seed = r->training.seed;
    if (!r->output_dir) { /* runs/<recipe file stem> */
        const char *base = strrchr(r->path, '/');
        base = base ? base + 1 : r->path;
        char stem[256];
        snprintf(stem, sizeof stem, "%s", base);
        char *dot = strrchr(stem, '.');
        if (dot && dot != stem) *dot = 0;
        char buf[300];
        snprintf(buf, sizeof buf, "runs/%s", stem);
        r->output_dir = strdup(buf);
    }
    if (!r->checkpoint.dir) {
        char *p = lt_path_join(r->output_dir, "checkpoints");
        r->checkpoint.dir = p;
    }
    return r->output_dir && r->checkpoint.dir ? NULL : lt_errorf(LT_ERR_NOMEM, "out of memory");
}

static lt_status apply_set(const char *set, lt_recipe *r) {
    const char *eq = strchr(set, '=');
    char where[300];
    snprintf(where, sizeof where, "--set %.*s", eq ? (int)(eq - set) : (int)strlen(set), set);
    if (!eq || eq == set)
        return lt_errorf(LT_ERR_INVALID_ARG, "--set %s: expected KEY=VALUE, e.g. --set training.lr=1e-4", set);
    char path[256];
    if ((size_t)(eq - set) >= sizeof path) return lt_errorf(LT_ERR_INVALID_ARG, "%s: the key is too long", where);
    memcpy(path, set, (size_t)(eq - set));
    path[eq - set] = 0;
    const src s = {.where = where, .is_set = true};
    lt_ynode *n = NULL;
    lt_status st = lt_yaml_parse(eq + 1, strlen(eq + 1), where, &n);
    if (st) return st;
    if (!n) { /* "--set data.eval=" : null */
        n = calloc(1, sizeof *n);
        if (!n || !(n->str = strdup(""))) {
            lt_ynode_free(n);
            return lt_errorf(LT_ERR_NOMEM, "out of memory");
        }
    }
    st = apply_path(&s, path, n, n, r);
    lt_ynode_free(n);
    return st;
}

lt_status lt_recipe_parse(const char *text, size_t len, const char *path, const char *const *sets, int n_sets,
                          lt_recipe *out) {
    memset(out, 0, sizeof *out);
    lt_recipe r;
    memset(&r, 0, sizeof r);
    defaults(&r);
    r.path = strdup(path ? path : "recipe");
    r.text = malloc(len + 1);
    size_t ol = 1;
    for (int i = 0; i < n_sets; i++) ol += strlen(sets[i]) + 1;
    r.overrides = calloc(ol, 1);
    if (!r.path || !r.text || !r.overrides) {
        lt_recipe_free(&r);
        return lt_errorf(LT_ERR_NOMEM, "out of memory");
    }
    memcpy(r.text, text, len);
    r.text[len] = 0;
    for (int i = 0; i < n_sets; i++) {
        if (strchr(sets[i], '\n')) {
            lt_recipe_free(&r);
            return lt_errorf(LT_ERR_INVALID_ARG, "--set: a value may not contain a line break");
        }
        strcat(r.overrides, sets[i]);
        if (i + 1 < n_sets) strcat(r.overrides, "\n");
    }
    lt_ynode *root = NULL;
    lt_status st = memchr(text, 0, len) ? lt_errorf(LT_ERR_FORMAT, "%s: contains a NUL byte: not a YAML text file", r.path)
                                        : lt_yaml_parse(text, len, r.path, &root);
    const src s = {.where = r.path, .is_set = false};
    if (!st) st = apply_tree(&s, root, &r);
    lt_ynode_free(root);
    for (int i = 0; !st && i < n_sets; i++) st = apply_set(sets[i], &r);
    if (!st) st = finish(&r);
    if (st) {
        lt_recipe_free(&r);
        return st;
    }
    *out = r;
    return NULL;
}

lt_status lt_recipe_load(const char *path, const char *const *sets, int n_sets, lt_recipe *out) {
    memset(out, 0, sizeof *out);
    char *buf = NULL;
    int64_t n = 0;
    lt_status st = lt_read_file(path, 16 << 20, &buf, &n);
    if (st) return lt_status_wrapf(st, "reading the recipe");
    st = lt_recipe_parse(buf, (size_t)n, path, sets, n_sets, out);
    free(buf);
    return st;
}

/* ---------------------------------------------------------------- canonical text and resume */

static void put_value(const lt_recipe *r, const key_def *k, char *buf, size_t cap) {
    const void *p = (const char *)r + k->off;
    switch (k->kind) {
    case K_STR: {
        const char *v = *(char *const *)p;
        snprintf(buf, cap, "%s", v ? v : "null");
        break;
    }
    case K_INT:
        if (is_int32_field(k->off))
            snprintf(buf, cap, "%d", *(const int *)p);
        else if (k->off == OFF(training.seed))
            snprintf(buf, cap, "%llu", (unsigned long long)*(const uint64_t *)p);
        else
            snprintf(buf, cap, "%lld", (long long)*(const int64_t *)p);
        break;
    case K_FLOAT:
        snprintf(buf, cap, "%.17g", *(const double *)p);
        break;
    case K_BOOL:
        snprintf(buf, cap, "%s", *(const bool *)p ? "true" : "false");
        break;
    case K_ENUM:
        snprintf(buf, cap, "%s", k->names[*(const int *)p]);
        break;
    case K_TARGETS: {
        buf[0] = 0;
        for (int m = 0; m < LT_LORA_N_MODULES; m++)
            if (r->lora.targets & (1u << m))
                snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", buf[0] ? "," : "",
                         lt_lora_module_name((lt_lora_module)m));
        break;
    }
    case K_QFORMAT:
        snprintf(buf, cap, "%s", r->quant.enabled ? lt_qformat_name(r->quant.format) : "none");
        break;
    case K_BADLINE:
        snprintf(buf, cap, "%s", r->data.skip_bad_lines ? "skip" : "fail");
        break;
    }
}

char *lt_recipe_canonical(const lt_recipe *r) {
    size_t cap = 16384, len = 0;
    char *out = malloc(cap);
    if (!out) return NULL;
    out[0] = 0;
    char val[4200];
    for (size_t i = 0; i <= N_KEYS + LT_LORA_N_MODULES; i++) {
        char line[4400];
        if (i < N_KEYS) {
            put_value(r, &k_keys[i], val, sizeof val);
            snprintf(line, sizeof line, "%s: %s\n", k_keys[i].path, val);
        } else if (i < N_KEYS + LT_LORA_N_MODULES) {
            const int m = (int)(i - N_KEYS);
            if (!r->lora.r_module[m] && r->lora.alpha_module[m] == 0.0) continue;
            snprintf(line, sizeof line, "lora.modules.%s: r %d alpha %.17g\n", lt_lora_module_name((lt_lora_module)m),
                     r->lora.r_module[m], r->lora.alpha_module[m]);
        } else {
            continue;
        }
        const size_t l = strlen(line);
        if (len + l + 1 > cap) {
            cap = (len + l + 1) * 2;
            char *g = realloc(out, cap);
            if (!g) {
                free(out);
                return NULL;
            }
            out = g;
        }
        memcpy(out + len, line, l + 1);
        len += l;
    }
    return out;
}

lt_status lt_recipe_check_resume(const lt_recipe *now, const lt_recipe *saved) {
    char a[4200], b[4200];
    for (size_t i = 0; i < N_KEYS; i++) {
        if (k_keys[i].resume_may_differ) continue;
        put_value(now, &k_keys[i], a, sizeof a);
        put_value(saved, &k_keys[i], b, sizeof b);
        if (strcmp(a, b))
            return lt_errorf(LT_ERR_INVALID_ARG,
                             "key %s: the checkpoint was trained with '%s', the recipe now says '%s'; a resumed run "
                             "must train the same function (only max_steps/epochs, checkpoint.*, eval.*, memory.*, "
                             "backend, threads, paths of the model/cache may change): restore the value, or start a "
                             "new run in another output_dir",
                             k_keys[i].path, b, a);
    }
    for (int m = 0; m < LT_LORA_N_MODULES; m++)
        if (now->lora.r_module[m] != saved->lora.r_module[m] || now->lora.alpha_module[m] != saved->lora.alpha_module[m])
            return lt_errorf(LT_ERR_INVALID_ARG, "key lora.modules.%s: differs from the checkpoint's (r %d alpha %g "
                                                 "there, r %d alpha %g now)",
                             lt_lora_module_name((lt_lora_module)m), saved->lora.r_module[m], saved->lora.alpha_module[m],
                             now->lora.r_module[m], now->lora.alpha_module[m]);
    return NULL;
}
