/* train/peft: PEFT adapter directories.
 *   - round trip: export F32 -> import gives bit-identical masters and cfg; export BF16 -> import gives the
 *     BF16 values (masters = the BF16 copies, BF16 copies identical); metadata {"format": "pt"}; the
 *     adapter_config.json keys and JSON types PEFT writes;
 *   - the export target: a non-empty directory or a file is refused, an empty directory is filled;
 *     a bad dtype and an adapter made for another model are refused;
 *   - adapter_config.json as PEFT reads it: regex / suffix / "all-linear" target_modules, exclude_modules,
 *     rank_pattern keys as regexes; refusals naming the key (DoRA, bias, modules_to_save, lm_head,
 *     per-layer selections or ranks, PiSSA init, bad types, duplicate keys, not JSON);
 *   - the weights: wrong shapes, missing, extra (DoRA magnitude, full weights, untargeted modules), NaN,
 *     integer dtypes are refused naming the tensor; F16 loads; a model with fewer layers is refused;
 *   - lt_lora_copy_weights: copies; refuses other ranks / targets and leaves dst unchanged. */
#include "test.h"

#include <jansson.h>
#include <math.h>

#include "train/peft.h"

/* q [64, 300], k/v [32, 300], o [300, 64], gate/up [200, 300], down [300, 200]; 3 layers */
static lt_model_config small_cfg(void) {
    lt_model_config mc;
    memset(&mc, 0, sizeof mc);
    mc.hidden_size = 300;
    mc.intermediate_size = 200;
    mc.n_layers = 3;
    mc.n_heads = 4;
    mc.n_kv_heads = 2;
    mc.head_dim = 16;
    mc.vocab_size = 100;
    return mc;
}

static const uint32_t QVD = (1u << LT_LORA_Q) | (1u << LT_LORA_V) | (1u << LT_LORA_DOWN);

/* q, v, down adapted; down with its own rank and alpha; random masters (B is 0 after init: make it not) */
static lt_lora *make_adapter(lt_pool *pool, uint64_t seed) {
    const lt_model_config mc = small_cfg();
    lt_lora_cfg c = {.targets = QVD, .r = 4, .alpha = 8, .rslora = true, .dropout = 0.05, .seed = seed};
    c.r_module[LT_LORA_DOWN] = 2;
    c.alpha_module[LT_LORA_DOWN] = 3.5;
    lt_lora *a = NULL;
    CHECK_OK(lt_lora_create(&mc, &c, pool, &a));
    if (!a) return NULL;
    lt_rng g;
    lt_rng_init(&g, seed);
    for (int64_t l = 0; l < mc.n_layers; l++)
        for (int m = 0; m < LT_LORA_N_MODULES; m++) {
            lt_lora_mod *md = lt_lora_get_mut(a, l, (lt_lora_module)m);
            if (!md) continue;
            for (int64_t i = 0; i < md->r * md->in; i++) md->a[i] = 0.1f * (2 * lt_rng_uniform(&g) - 1);
            for (int64_t i = 0; i < md->r * md->out; i++) md->b[i] = 0.1f * (2 * lt_rng_uniform(&g) - 1);
        }
    lt_lora_sync_bf16(a);
    return a;
}

/* 0 when every module's masters (and BF16 copies) agree bit for bit; want_bf16_masters: y's masters must be
 * x's BF16 values. */
static int compare(const lt_lora *x, const lt_lora *y, bool want_bf16_masters) {
    int bad = 0;
    for (int64_t l = 0; l < lt_lora_n_layers(x); l++)
        for (int m = 0; m < LT_LORA_N_MODULES; m++) {
            const lt_lora_mod *p = lt_lora_get(x, l, (lt_lora_module)m), *q = lt_lora_get(y, l, (lt_lora_module)m);
            if (!p || !q) {
                bad += (p != NULL) != (q != NULL);
                continue;
            }
            if (p->r != q->r || p->in != q->in || p->out != q->out || p->scale != q->scale) {
                bad++;
                continue;
            }
            const int64_t na = p->r * p->in, nb = p->r * p->out;
            for (int64_t i = 0; i < na; i++) {
                const float want = want_bf16_masters ? lt_bf16_to_f32(p->a_bf16[i]) : p->a[i];
                bad += memcmp(&want, &q->a[i], 4) != 0 || p->a_bf16[i] != q->a_bf16[i];
            }
            for (int64_t i = 0; i < nb; i++) {
                const float want = want_bf16_masters ? lt_bf16_to_f32(p->b_bf16[i]) : p->b[i];
                bad += memcmp(&want, &q->b[i], 4) != 0 || p->b_bf16[i] != q->b_bf16[i];
            }
        }
    return bad;
}

static char g_root[4096];

static const char *sub(const char *name) {
    static char buf[8][4400];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, sizeof buf[0], "%s/%s", g_root, name);
    return b;
}

static void rm_dir(const char *d) {
    char cmd[4500];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    if (system(cmd) != 0) fprintf(stderr, "warning: %s failed\n", cmd);
}

static void test_round_trip(lt_pool *pool) {
    const lt_model_config mc = small_cfg();
    lt_lora *a = make_adapter(pool, 11), *b = NULL;
    if (!a) return;
    /* F32: the masters exactly */
    CHECK_OK(lt_peft_export(a, &mc, &(lt_peft_export_opts){.base_model = "tiny/base", .dtype = LT_DTYPE_F32},
                            sub("f32")));
    CHECK_OK(lt_peft_import(sub("f32"), &mc, 5, pool, &b));
    if (b) {
        const lt_lora_cfg *ca = lt_lora_get_cfg(a), *cb = lt_lora_get_cfg(b);
        CHECK(cb->targets == QVD && cb->r == 4 && cb->alpha == 8 && cb->rslora && cb->dropout == 0.05 && cb->seed == 5);
        CHECK(cb->r_module[LT_LORA_DOWN] == 2 && cb->alpha_module[LT_LORA_DOWN] == 3.5);
        CHECK(!memcmp(ca->r_module, cb->r_module, sizeof ca->r_module));
        CHECKF(compare(a, b, false) == 0, "%d values differ after the F32 round trip", compare(a, b, false));
        lt_lora_free(b);
        b = NULL;
    }
    /* BF16 (the default, as trained): the BF16 values */
    CHECK_OK(lt_peft_export(a, &mc, NULL, sub("bf16")));
    CHECK_OK(lt_peft_import(sub("bf16"), &mc, 5, pool, &b));
    if (b) CHECKF(compare(a, b, true) == 0, "%d values differ after the BF16 round trip", compare(a, b, true));
    lt_lora_free(b);
    b = NULL;

    /* the files as PEFT writes them */
    lt_st_file *f = NULL;
    CHECK_OK(lt_st_open(sub("bf16/adapter_model.safetensors"), &f));
    if (f) {
        CHECK(lt_st_count(f) == 3 * 3 * 2);
        const char *fmt = lt_st_metadata_find(f, "format");
        CHECK(fmt && !strcmp(fmt, "pt") && lt_st_metadata_count(f) == 1);
        const lt_st_tensor *t = lt_st_find(f, "base_model.model.model.layers.2.mlp.down_proj.lora_A.weight");
        CHECK(t && t->dtype == LT_DTYPE_BF16 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 200);
        t = lt_st_find(f, "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight");
        CHECK(t && t->ndim == 2 && t->shape[0] == 32 && t->shape[1] == 4);
        lt_st_close(f);
    }
    char *text = NULL;
    int64_t n = 0;
    CHECK_OK(lt_read_file(sub("f32/adapter_config.json"), 1 << 20, &text, &n));
    json_t *j = text ? json_loadb(text, (size_t)n, JSON_REJECT_DUPLICATES, NULL) : NULL;
    free(text);
    CHECK(j != NULL);
    if (j) {
        CHECK(!strcmp(json_string_value(json_object_get(j, "peft_type")), "LORA"));
        CHECK(!strcmp(json_string_value(json_object_get(j, "task_type")), "CAUSAL_LM"));
        CHECK(!strcmp(json_string_value(json_object_get(j, "base_model_name_or_path")), "tiny/base"));
        CHECK(json_is_integer(json_object_get(j, "r")) && json_integer_value(json_object_get(j, "r")) == 4);
        CHECK(json_is_integer(json_object_get(j, "lora_alpha"))); /* integral alpha: an int, as PEFT configs hold */
        CHECK(json_is_real(json_object_get(j, "lora_dropout")));
        CHECK(json_is_true(json_object_get(j, "use_rslora")) && json_is_false(json_object_get(j, "use_dora")));
        CHECK(json_is_true(json_object_get(j, "inference_mode")) && json_is_false(json_object_get(j, "fan_in_fan_out")));
        CHECK(json_is_null(json_object_get(j, "modules_to_save")));
        CHECK(!strcmp(json_string_value(json_object_get(j, "bias")), "none"));
        json_t *tm = json_object_get(j, "target_modules");
        CHECK(json_is_array(tm) && json_array_size(tm) == 3 &&
              !strcmp(json_string_value(json_array_get(tm, 0)), "q_proj") &&
              !strcmp(json_string_value(json_array_get(tm, 2)), "down_proj"));
        json_t *rp = json_object_get(j, "rank_pattern"), *ap = json_object_get(j, "alpha_pattern");
        CHECK(json_is_object(rp) && json_object_size(rp) == 1 &&
              json_integer_value(json_object_get(rp, "down_proj")) == 2);
        CHECK(json_is_object(ap) && json_object_size(ap) == 1 && json_real_value(json_object_get(ap, "down_proj")) == 3.5);
        json_decref(j);
    }

    /* the target: existing non-empty dir / file refused, empty dir filled; bad dtype, other model refused */
    CHECK_ERR(lt_peft_export(a, &mc, NULL, sub("f32")), "not empty");
    CHECK_OK(lt_write_file_atomic(sub("afile"), "x", 1));
    CHECK_ERR(lt_peft_export(a, &mc, NULL, sub("afile")), "not a directory");
    CHECK_OK(lt_mkdir_p(sub("empty")));
    CHECK_OK(lt_peft_export(a, &mc, NULL, sub("empty")));
    CHECK_OK(lt_peft_import(sub("empty"), &mc, 5, pool, &b));
    lt_lora_free(b);
    b = NULL;
    CHECK_ERR(lt_peft_export(a, &mc, &(lt_peft_export_opts){.dtype = LT_DTYPE_F16}, sub("f16")), "dtype F16");
    lt_model_config other = mc;
    other.intermediate_size = 100;
    CHECK_ERR(lt_peft_export(a, &other, NULL, sub("other")), "layers.0.down_proj is [300, 200]");
    other = mc;
    other.n_layers = 2;
    CHECK_ERR(lt_peft_export(a, &other, NULL, sub("other")), "3 layers");

    /* a model with fewer layers: layer 2's tensors are not the model's */
    CHECK_ERR(lt_peft_import(sub("f32"), &other, 5, pool, &b), "layers.2.");
    other = mc;
    other.hidden_size = 320; /* q: [64, 320]: the file's A is [4, 300] */
    CHECK_ERR(lt_peft_import(sub("f32"), &other, 5, pool, &b), "expected [4, 320]");
    CHECK(b == NULL);
    lt_lora_free(a);
}

/* ---------------------------------------------------------------- adapter_config.json variants */

/* dir gets the f32 export's weights and its config with `key` set to the JSON `value` ("-" deletes it). */
static const char *variant(const char *name, const char *key, const char *value) {
    const char *dir = sub(name);
    rm_dir(dir);
    CHECK_OK(lt_mkdir_p(dir));
    char *text = NULL;
    int64_t n = 0;
    char p[4500];
    CHECK_OK(lt_read_file(sub("f32/adapter_model.safetensors"), 1 << 26, &text, &n));
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    if (text) CHECK_OK(lt_write_file_atomic(p, text, n));
    free(text);
    CHECK_OK(lt_read_file(sub("f32/adapter_config.json"), 1 << 20, &text, &n));
    json_t *j = text ? json_loadb(text, (size_t)n, 0, NULL) : NULL;
    free(text);
    if (!j) return dir;
    if (!strcmp(value, "-")) json_object_del(j, key);
    else json_object_set_new(j, key, json_loads(value, JSON_DECODE_ANY, NULL));
    char *out = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    snprintf(p, sizeof p, "%s/adapter_config.json", dir);
    if (out) CHECK_OK(lt_write_file_atomic(p, out, (int64_t)strlen(out)));
    free(out);
    return dir;
}

static void expect_refused(lt_pool *pool, const char *key, const char *value, const char *needle) {
    const lt_model_config mc = small_cfg();
    lt_lora *b = NULL;
    lt_status st = lt_peft_import(variant("v", key, value), &mc, 0, pool, &b);
    CHECKF(st && strstr(lt_status_msg(st), needle) && strstr(lt_status_msg(st), "v/adapter"),
           "%s = %s: %s (wanted \"%s\")", key, value, st ? lt_status_msg(st) : "accepted", needle);
    lt_status_free(st);
    CHECK(b == NULL);
    lt_lora_free(b);
}

/* Accepted, with the given targets and down_proj rank. */
static void expect_loaded(lt_pool *pool, const char *key, const char *value, uint32_t targets, int r_down) {
    const lt_model_config mc = small_cfg();
    lt_lora *b = NULL;
    lt_status st = lt_peft_import(variant("v", key, value), &mc, 0, pool, &b);
    CHECKF(!st, "%s = %s refused: %s", key, value, lt_status_msg(st));
    lt_status_free(st);
    if (b) {
        const lt_lora_cfg *c = lt_lora_get_cfg(b);
        const int rd = c->r_module[LT_LORA_DOWN] ? c->r_module[LT_LORA_DOWN] : c->r;
        CHECKF(c->targets == targets && rd == r_down, "%s = %s: targets 0x%x, down rank %d", key, value, c->targets, rd);
    }
    lt_lora_free(b);
}

static void test_config(lt_pool *pool) {
    /* what PEFT accepts and means the same adapter */
    expect_loaded(pool, "target_modules", "\".*\\\\.(q_proj|v_proj|down_proj)\"", QVD, 2); /* re.fullmatch */
    expect_loaded(pool, "target_modules", "[\"self_attn.q_proj\", \"v_proj\", \"mlp.down_proj\", \"c_attn\"]", QVD, 2);
    expect_loaded(pool, "rank_pattern", "{\"mlp\\\\.down_.*\": 2, \"down_proj\": 3}", QVD, 2); /* first match wins */
    expect_loaded(pool, "lora_dropout", "-", QVD, 2);
    expect_loaded(pool, "task_type", "null", QVD, 2);
    expect_loaded(pool, "layers_to_transform", "[2, 1, 0]", QVD, 2);
    expect_loaded(pool, "init_lora_weights", "\"gaussian\"", QVD, 2);
    expect_loaded(pool, "modules_to_save", "[]", QVD, 2);
    /* what it cannot represent */
    expect_refused(pool, "use_dora", "true", "key use_dora: DoRA");
    expect_refused(pool, "bias", "\"all\"", "key bias");
    expect_refused(pool, "bias", "3", "key bias");
    expect_refused(pool, "lora_bias", "true", "key lora_bias");
    expect_refused(pool, "modules_to_save", "[\"lm_head\"]", "key modules_to_save");
    expect_refused(pool, "peft_type", "\"PREFIX_TUNING\"", "key peft_type");
    expect_refused(pool, "peft_type", "-", "key peft_type");
    expect_refused(pool, "task_type", "\"SEQ_CLS\"", "key task_type");
    expect_refused(pool, "fan_in_fan_out", "true", "key fan_in_fan_out");
    expect_refused(pool, "target_modules", "[\"q_proj\", \"v_proj\", \"down_proj\", \"lm_head\"]", "selects lm_head");
    expect_refused(pool, "target_modules", "[\"embed_tokens\", \"q_proj\"]", "selects model.embed_tokens");
    expect_refused(pool, "target_modules", "[\"layers.0.self_attn.q_proj\"]", "in some layers only");
    expect_refused(pool, "target_modules", "\"model\\\\.layers\\\\.[01]\\\\..*_proj\"", "in some layers only");
    expect_refused(pool, "target_modules", "\"(unclosed\"", "does not compile");
    expect_refused(pool, "target_modules", "[\"foo\"]", "selects none");
    expect_refused(pool, "target_modules", "\"q_proj\"", "selects none"); /* a string is re.fullmatch'ed */
    expect_refused(pool, "target_modules", "[1]", "entry 0 is not a string");
    expect_refused(pool, "target_modules", "-", "key target_modules: missing");
    expect_refused(pool, "exclude_modules", "[\"layers.1.self_attn.q_proj\"]", "in some layers only");
    expect_refused(pool, "layers_to_transform", "[0, 1]", "key layers_to_transform");
    expect_refused(pool, "layers_to_transform", "[0, 1, 2, 3]", "key layers_to_transform");
    expect_refused(pool, "rank_pattern", "{\"model.layers.0.mlp.down_proj\": 2}", "different ranks");
    expect_refused(pool, "rank_pattern", "{\"down_proj\": 2.5}", "key rank_pattern");
    expect_refused(pool, "alpha_pattern", "{\"q_proj\": -1}", "key alpha_pattern");
    expect_refused(pool, "alpha_pattern", "[1]", "key alpha_pattern");
    expect_refused(pool, "init_lora_weights", "\"pissa\"", "key init_lora_weights");
    expect_refused(pool, "layer_replication", "[[0, 2]]", "key layer_replication");
    expect_refused(pool, "r", "\"4\"", "key r");
    expect_refused(pool, "r", "0", "key r");
    expect_refused(pool, "lora_alpha", "0", "key lora_alpha");
    expect_refused(pool, "lora_dropout", "1.5", "key lora_dropout");
    expect_refused(pool, "use_rslora", "\"yes\"", "key use_rslora");
    /* rank 5 in the config, rank 4 in the file */
    expect_refused(pool, "r", "5", "expected [5, 300]");
    /* exclude_modules takes q_proj out: its tensors are then extra */
    expect_refused(pool, "exclude_modules", "[\"q_proj\"]", "does not select");

    const lt_model_config mc = small_cfg();
    lt_lora *b = NULL;
    const char *d = variant("v", "r", "4");
    char p[4500];
    snprintf(p, sizeof p, "%s/adapter_config.json", d);
    CHECK_OK(lt_write_file_atomic(p, "{\"r\": 4, \"r\": 5}", 16));
    CHECK_ERR(lt_peft_import(d, &mc, 0, pool, &b), "not valid JSON");
    CHECK_OK(lt_write_file_atomic(p, "[1]", 3));
    CHECK_ERR(lt_peft_import(d, &mc, 0, pool, &b), "expected a JSON object");
    CHECK_ERR(lt_peft_import(sub("nowhere"), &mc, 0, pool, &b), "adapter_config.json");
    CHECK(b == NULL);
}

/* ---------------------------------------------------------------- weights variants */

enum { W_OK, W_F16, W_SHAPE, W_MISSING, W_DORA, W_FULL, W_NAN, W_I32, W_LAYER };

/* Writes adapter_model.safetensors for a (F32 masters) into dir, changed as `how` says. */
static void write_weights(const lt_lora *a, const char *dir, int how) {
    lt_st_entry e[64];
    static char names[64][160];
    static float nanbuf[4 * 300], mag[64];
    static uint16_t half[4 * 300];
    static int32_t ints[4 * 300];
    int n = 0;
    for (int64_t l = 0; l < lt_lora_n_layers(a); l++)
        for (int m = 0; m < LT_LORA_N_MODULES; m++) {
            const lt_lora_mod *md = lt_lora_get(a, l, (lt_lora_module)m);
            if (!md) continue;
            for (int w = 0; w < 2; w++) {
                const bool first = l == 0 && m == LT_LORA_Q && w == 0; /* q's A [4, 300] in layer 0 */
                if (how == W_MISSING && first) continue;
                snprintf(names[n], sizeof names[n], "base_model.model.model.layers.%lld.%s.%s.lora_%c.weight",
                         (long long)l, m <= LT_LORA_O ? "self_attn" : "mlp", lt_lora_module_name((lt_lora_module)m),
                         w ? 'B' : 'A');
                e[n] = (lt_st_entry){.name = names[n], .dtype_name = "F32", .ndim = 2,
                                     .shape = {w ? md->out : md->r, w ? md->r : md->in}, .data = w ? md->b : md->a};
                if (first && how == W_SHAPE) e[n].shape[0] = 3, e[n].shape[1] = 400; /* 1200 values, same bytes */
                if (first && how == W_NAN) {
                    memcpy(nanbuf, md->a, sizeof nanbuf);
                    nanbuf[77] = NAN;
                    e[n].data = nanbuf;
                }
                if (first && how == W_I32) {
                    e[n].dtype_name = "I32";
                    e[n].data = ints;
                }
                if (first && how == W_F16) {
                    for (int i = 0; i < 4 * 300; i++) half[i] = 0x3C00; /* 1.0 */
                    e[n].dtype_name = "F16";
                    e[n].data = half;
                }
                n++;
            }
        }
    if (how == W_DORA)
        e[n++] = (lt_st_entry){.name = "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector",
                               .dtype_name = "F32", .ndim = 1, .shape = {64}, .data = mag};
    if (how == W_FULL)
        e[n++] = (lt_st_entry){.name = "base_model.model.lm_head.weight", .dtype_name = "F32", .ndim = 2,
                               .shape = {8, 8}, .data = mag};
    if (how == W_LAYER)
        e[n++] = (lt_st_entry){.name = "base_model.model.model.layers.7.self_attn.q_proj.lora_A.weight",
                               .dtype_name = "F32", .ndim = 2, .shape = {8, 8}, .data = mag};
    char p[4500];
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    CHECK_OK(lt_st_write(p, e, n, NULL, 0));
}

static void test_weights(lt_pool *pool) {
    const lt_model_config mc = small_cfg();
    lt_lora *a = make_adapter(pool, 11), *b = NULL;
    if (!a) return;
    const char *d = variant("w", "r", "4");
    write_weights(a, d, W_OK);
    CHECK_OK(lt_peft_import(d, &mc, 0, pool, &b)); /* the driver of this test is right */
    if (b) CHECK(compare(a, b, false) == 0);
    lt_lora_free(b);
    b = NULL;
    write_weights(a, d, W_F16);
    CHECK_OK(lt_peft_import(d, &mc, 0, pool, &b));
    if (b) CHECK(lt_lora_get(b, 0, LT_LORA_Q)->a[123] == 1.0f && lt_lora_get(b, 0, LT_LORA_Q)->a_bf16[5] == 0x3F80);
    lt_lora_free(b);
    b = NULL;
    write_weights(a, d, W_SHAPE);
    CHECK_ERR(lt_peft_import(d, &mc, 0, pool, &b), "layers.0.self_attn.q_proj.lora_A.weight is [3, 400], expected [4, 300]");
    write_weights(a, d, W_MISSING);
    CHECK_ERR(lt_peft_import(d, &mc, 0, pool, &b), "layers.0.self_attn.q_proj.lora_A.weight is missing");
    write_weights(a, d, W_DORA);
    CHECK_ERR(lt_peft_import(d, &mc, 0, pool, &b), "lora_magnitude_vector is not one loft can load: a DoRA");
    write_weights(a, d, W_FULL);
    CHECK_ERR(lt_peft_import(d, &mc, 0, pool, &b), "lm_head.weight is not one loft can load: not a LoRA weight");
    write_weights(a, d, W_LAYER);
    CHECK_ERR(lt_peft_import(d, &mc, 0, pool, &b), "layers.7.self_attn.q_proj.lora_A.weight is not one loft can load");
    write_weights(a, d, W_NAN);
    CHECK_ERR(lt_peft_import(d, &mc, 0, pool, &b), "q_proj.lora_A.weight holds a NaN or infinity (element 77)");
    write_weights(a, d, W_I32);
    CHECK_ERR(lt_peft_import(d, &mc, 0, pool, &b), "has dtype I32");
    char p[4500];
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", d);
    CHECK_OK(lt_write_file_atomic(p, "garbage!", 8));
    CHECK_ERR(lt_peft_import(d, &mc, 0, pool, &b), "adapter_model.safetensors");
    remove(p);
    snprintf(p, sizeof p, "%s/adapter_model.bin", d);
    CHECK_OK(lt_write_file_atomic(p, "PK", 2));
    CHECK_ERR(lt_peft_import(d, &mc, 0, pool, &b), "pickled");
    CHECK(b == NULL);
    CHECK(lt_pool_get_stats(pool).used > 0); /* a is still there; failed imports freed theirs (checked below) */
    lt_lora_free(a);
}

static void test_copy(lt_pool *pool) {
    const lt_model_config mc = small_cfg();
    lt_lora *src = make_adapter(pool, 3), *dst = make_adapter(pool, 4), *other = NULL;
    if (!src || !dst) return;
    CHECK(compare(src, dst, false) != 0);
    CHECK_OK(lt_lora_copy_weights(dst, src));
    CHECK(compare(src, dst, false) == 0);
    lt_lora_cfg c = *lt_lora_get_cfg(src);
    c.r_module[LT_LORA_DOWN] = 3;
    CHECK_OK(lt_lora_create(&mc, &c, pool, &other));
    if (other) {
        const float before = lt_lora_get(other, 0, LT_LORA_Q)->a[0];
        CHECK_ERR(lt_lora_copy_weights(other, src), "layers.0.down_proj has rank 2 on [300, 200], the recipe's rank 3");
        CHECK(lt_lora_get(other, 0, LT_LORA_Q)->a[0] == before); /* nothing copied */
    }
    lt_lora_free(other);
    other = NULL;
    c = *lt_lora_get_cfg(src);
    c.targets |= 1u << LT_LORA_K;
    CHECK_OK(lt_lora_create(&mc, &c, pool, &other));
    if (other) CHECK_ERR(lt_lora_copy_weights(other, src), "does not adapt layers.0.k_proj");
    lt_lora_free(other);
    lt_lora_free(src);
    lt_lora_free(dst);
}

int main(void) {
    snprintf(g_root, sizeof g_root, "%s/test_peft", lt_test_tmpdir());
    rm_dir(g_root);
    CHECK_OK(lt_mkdir_p(g_root));
    lt_pool *pool = NULL;
    CHECK_OK(lt_pool_create(LT_POOL_DEFAULT_BUDGET, &pool));
    if (!pool) TEST_MAIN_END();
    test_round_trip(pool);
    test_config(pool);
    test_weights(pool);
    test_copy(pool);
    CHECK(lt_pool_get_stats(pool).used == 0); /* every refused import freed what it allocated */
    lt_pool_destroy(pool);
    TEST_MAIN_END();
}
