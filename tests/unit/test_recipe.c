/* train/recipe: defaults, every class of refusal with its exact line:column, --set overrides, the
 * canonical text, the resume-compatibility rule, the shipped recipes/, and truncated files (no crash). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/recipe.h"
#include "test.h"

static const char *minimal = "model:\n  path: models/x\ndata:\n  train: d.jsonl\n";

static lt_status parse(const char *text, const char *const *sets, int n, lt_recipe *r) {
    return lt_recipe_parse(text, strlen(text), "r.yaml", sets, n, r);
}

/* the message of a failing parse must contain needle */
static void refused(const char *text, const char *set, const char *needle) {
    lt_recipe r;
    const char *sets[1] = {set};
    lt_status st = parse(text, sets, set ? 1 : 0, &r);
    CHECKF(st != NULL, "accepted: %s / %s", text, set ? set : "");
    if (st) {
        CHECKF(strstr(lt_status_msg(st), needle) != NULL, "message \"%s\" lacks \"%s\"", lt_status_msg(st), needle);
        lt_status_free(st);
    } else {
        lt_recipe_free(&r);
    }
}

int main(void) {
    lt_recipe r;
    CHECK_OK(parse(minimal, NULL, 0, &r));
    CHECK(r.lora.r == 16 && r.lora.alpha == 32 && r.lora.targets == LT_LORA_ALL_LINEAR && r.quant.enabled &&
          r.quant.format == LT_Q_NF4 && r.training.lr == 2e-4 && r.training.schedule == LT_LR_COSINE &&
          r.memory.budget_gb == 128 && r.data.max_seq_len == 2048 && r.data.skip_bad_lines &&
          r.eval.every_n_steps == 100 && r.training.seed == 42 && r.lora.seed == 42);
    CHECK(!strcmp(r.output_dir, "runs/r") && !strcmp(r.checkpoint.dir, "runs/r/checkpoints"));
    lt_recipe_free(&r);

    const char *full =
        "# a comment\n"
        "model: {path: m, architecture: LlamaForCausalLM}\n"
        "quantization:\n  format: nf4\n  double_quant: false\n"
        "lora:\n  r: 8\n  alpha: 16\n  dropout: 0.1\n  targets: [q_proj, v_proj]\n  rslora: true\n"
        "  modules:\n    v_proj: {r: 4, alpha: 8}\n"
        "data:\n  train: t.jsonl\n  format: chat\n  on_bad_line: fail\n  max_seq_len: 512\n"
        "training:\n  lr: 1.0e-4\n  schedule: linear\n  max_steps: 50\n  seed: 7\n  grad_accum: 4\n"
        "checkpoint: {every_n_steps: 10, keep_last: 2}\n"
        "eval:\n"
        "memory: {budget_gb: 64}\n"
        "backend: cpu\noutput_dir: out/run1\n";
    CHECK_OK(parse(full, NULL, 0, &r));
    CHECK(r.quant.format == LT_Q_NF4_NODQ && r.lora.r == 8 && r.lora.rslora && r.lora.dropout == 0.1 &&
          r.lora.targets == ((1u << LT_LORA_Q) | (1u << LT_LORA_V)) && r.lora.r_module[LT_LORA_V] == 4 &&
          r.lora.alpha_module[LT_LORA_V] == 8 && r.data.format == LT_DATA_CHAT && !r.data.skip_bad_lines &&
          r.training.schedule == LT_LR_LINEAR && r.training.seed == 7 && r.eval.every_n_steps == 10 &&
          r.backend == LT_BACKEND_CPU && !strcmp(r.checkpoint.dir, "out/run1/checkpoints"));
    char *canon = lt_recipe_canonical(&r);
    CHECK(canon && strstr(canon, "lora.targets: q_proj,v_proj\n") && strstr(canon, "quantization.format: nf4_nodq\n") &&
          strstr(canon, "lora.modules.v_proj: r 4 alpha 8\n") && strstr(canon, "training.lr: 0.0001"));
    /* resume: max_steps and checkpointing may change, lr may not */
    lt_recipe r2;
    const char *ok_sets[] = {"training.max_steps=80", "checkpoint.every_n_steps=5", "training.threads=1"};
    CHECK_OK(parse(full, ok_sets, 3, &r2));
    CHECK(r2.training.max_steps == 80 && r2.training.threads == 1);
    CHECK_OK(lt_recipe_check_resume(&r2, &r));
    lt_recipe_free(&r2);
    const char *bad_sets[] = {"training.lr=3e-4"};
    CHECK_OK(parse(full, bad_sets, 1, &r2));
    CHECK_ERR(lt_recipe_check_resume(&r2, &r), "key training.lr: the checkpoint was trained with '0.0001'");
    lt_recipe_free(&r2);
    const char *list_set[] = {"lora.targets=[q_proj, k_proj]", "lora.modules.q_proj.alpha=3"};
    CHECK_OK(parse(full, list_set, 2, &r2));
    CHECK(r2.lora.targets == 3u && r2.lora.alpha_module[LT_LORA_Q] == 3);
    CHECK(!strcmp(r2.overrides, "lora.targets=[q_proj, k_proj]\nlora.modules.q_proj.alpha=3"));
    CHECK_ERR(lt_recipe_check_resume(&r2, &r), "lora.targets");
    lt_recipe_free(&r2);
    free(canon);
    lt_recipe_free(&r);

    /* refusals, each with its position */
    refused("model:\n  path: m\ndata:\n  train: t\ntraining:\n  lr: -1\n", NULL,
            "r.yaml:6:7: key training.lr: expected a number in (0, 10], got '-1'");
    refused("model:\n  path: m\ndata:\n  train: t\ntraining:\n  lr: abc\n", NULL, "r.yaml:6:7: key training.lr: expected a number, got 'abc'");
    refused("model:\n  path: m\ndata:\n  train: t\ntraining:\n  lr: \"1e-4\"\n", NULL, "got the string '1e-4'");
    refused("model:\n  path: m\ndata:\n  train: t\ntraining:\n  leraning_rate: 1\n", NULL,
            "r.yaml:6:3: unknown key 'training.leraning_rate'");
    refused("model:\n  path: m\ndata:\n  train: t\ntrainng:\n  lr: 1\n", NULL, "(did you mean 'training'?)");
    refused("model:\n  path: m\ndata:\n  train: t\ntraining:\n  lr: 1e-4\n  lr: 2e-4\n", NULL,
            "r.yaml:7:3: key 'lr' appears twice (first at line 6)");
    refused("model:\n  path: m\ndata:\n  train: t\nlora:\n  r: 0\n", NULL, "r.yaml:6:6: key lora.r: expected an integer in [1, 65536]");
    refused("model:\n  path: m\ndata:\n  train: t\nlora:\n  r: 8.5\n", NULL, "expected an integer, got '8.5'");
    refused("model:\n  path: m\ndata:\n  train: t\nlora:\n  dropout: 1\n", NULL, "expected a number in [0, 1), got '1'");
    refused("model:\n  path: m\ndata:\n  train: t\nlora:\n  targets: [q_proj, qq]\n", NULL, "r.yaml:6:21: key lora.targets");
    refused("model:\n  path: m\ndata:\n  train: t\ndata:\n  shuffle: yes\n", NULL, "key 'data' appears twice");
    refused("model:\n  path: m\ndata:\n  train: t\n  shuffle: yes\n", NULL, "YAML 1.1's yes/no/on/off are ambiguous");
    refused("model:\n  path: m\ndata:\n  train: t\nquantization:\n  format: nf5\n", NULL, "expected one of nf4, nf4_nodq");
    refused("model:\n  path: &p m\ndata:\n  train: t\n", NULL, "anchors");
    refused("model:\n  path: m\ndata:\n  train: !!str t\n", NULL, "explicit tags");
    refused("model:\n  path: m\ndata:\n  train: t\n---\nx: 1\n", NULL, "a second YAML document");
    refused("- a\n- b\n", NULL, "expected a mapping of sections");
    refused("", NULL, "the recipe is empty");
    refused("data:\n  train: t\n", NULL, "model.path is required");
    refused("model:\n  path: m\n", NULL, "data.train is required");
    refused("model:\n  path: [m\n", NULL, "r.yaml:");
    refused("model: 3\ndata:\n  train: t\n", NULL, "r.yaml:1:8: section model: expected a mapping of keys");
    refused(minimal, "training.lr", "expected KEY=VALUE");
    refused(minimal, "training.lrr=1", "--set training.lrr: unknown key 'training.lrr' (did you mean 'training.lr'?)");
    refused(minimal, "training.lr=0", "--set training.lr: expected a number in (0, 10]");
    refused(minimal, "lora.modules.qq.r=3", "'qq' is not a module");
    refused(minimal, "memory.reserve_gb=200", "must be below memory.budget_gb");

    /* every prefix of a valid recipe: parsed or refused, never a crash (run under ASan in CI) */
    const size_t n = strlen(full);
    int accepted = 0;
    for (size_t i = 0; i <= n; i++) {
        char *t = malloc(i + 1);
        memcpy(t, full, i);
        t[i] = 0;
        lt_status st = parse(t, NULL, 0, &r);
        if (st)
            lt_status_free(st);
        else
            accepted++, lt_recipe_free(&r);
        free(t);
    }
    CHECK(accepted > 0);

    /* the shipped recipes parse */
    const char *src = getenv("LOFT_SRC");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/recipes", src ? src : ".");
    DIR *d = opendir(dir);
    int n_rec = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        const size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".yaml")) continue;
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        lt_status st = lt_recipe_load(p, NULL, 0, &r);
        CHECKF(!st, "%s: %s", p, st ? lt_status_msg(st) : "");
        if (st)
            lt_status_free(st);
        else
            lt_recipe_free(&r);
        n_rec++;
    }
    if (d) closedir(d);
    CHECKF(n_rec >= 5, "found %d recipes in %s, expected the 5 shipped ones", n_rec, dir);
    TEST_MAIN_END();
}
