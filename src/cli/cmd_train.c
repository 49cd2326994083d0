/* `loft train RECIPE.yaml [--set key=value]... [--resume latest|PATH]`: runs a recipe (train/trainer.h).
 * Ctrl-C once: the run stops at the next micro-batch, keeps the last completed step as a checkpoint and
 * exits 130; a second Ctrl-C exits at once (the newest complete checkpoint is intact either way). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "train/recipe.h"
#include "train/trainer.h"

static volatile sig_atomic_t g_stop = 0;

static void on_sigint(int sig) {
    (void)sig;
    if (g_stop) _exit(130); /* second Ctrl-C: the checkpoint on disk is complete or untouched */
    g_stop = 1;
    static const char m[] = "\nloft train: stopping after this micro-batch; saving a checkpoint (Ctrl-C again to "
                            "quit now)\n";
    ssize_t w = write(STDERR_FILENO, m, sizeof m - 1);
    (void)w;
}

static lt_opt train_opts[] = {
    {"set", "KEY=VALUE", "override a recipe key, e.g. --set training.lr=1e-4 (repeatable)", NULL},
    {"resume", "latest|PATH", "continue from the run's newest valid checkpoint, or from a checkpoint file", NULL},
    {"threads", "N", "CPU threads (default: training.threads, else all cores)", NULL},
    {"quiet", NULL, "no progress bar or per-step lines (messages and errors still printed)", NULL},
    {"stop-after", "STEP", "stop as if interrupted once STEP is done (tests, time-boxed runs)", NULL},
    {"print-recipe", NULL, "print the effective recipe (every key, defaults filled in) and exit", NULL},
    {NULL, NULL, NULL, NULL},
};
static const lt_cmd_info train_cmd = {
    "train", "fine-tune a LoRA adapter on a frozen (quantized) base model, as a YAML recipe says",
    "RECIPE.yaml [--set KEY=VALUE]... [--resume latest|PATH] [--threads N]\n\n"
    "Writes into the recipe's output_dir: checkpoints/ (every checkpoint.every_n_steps and at the end),\n"
    "metrics.jsonl, loss.svg and adapter/ (the final adapter in PEFT format). See docs/recipes.md.",
    train_opts};

int lt_cmd_train(int argc, char **argv) {
    /* --set repeats: collect them and hand the rest to the common parser */
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    if (!sets || !rest) {
        free(sets);
        free(rest);
        fprintf(stderr, "loft train: out of memory\n");
        return 1;
    }
    int n_sets = 0, n_rest = 0;
    for (int i = 0; i < argc; i++) {
        if (i > 0 && !strcmp(argv[i], "--set")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "loft train: --set needs KEY=VALUE, e.g. --set training.lr=1e-4\n");
                free(sets);
                free(rest);
                return 2;
            }
            sets[n_sets++] = argv[++i];
        } else if (i > 0 && !strncmp(argv[i], "--set=", 6)) {
            sets[n_sets++] = argv[i] + 6;
        } else {
            rest[n_rest++] = argv[i];
        }
    }
    const char *pos[2];
    int n_pos = 0;
    int rc = lt_args_parse(&train_cmd, n_rest, rest, pos, 2, &n_pos);
    if (rc >= 0 || n_pos != 1) {
        if (rc < 0) fprintf(stderr, "loft train: expected one recipe file; see 'loft train --help'\n");
        free(sets);
        free(rest);
        return rc >= 0 ? rc : 2;
    }
    int64_t threads = 0, stop_after = 0;
    if (!lt_opt_int(&train_cmd, "threads", 0, 1, 1024, &threads) ||
        !lt_opt_int(&train_cmd, "stop-after", 0, 1, INT64_MAX, &stop_after)) {
        free(sets);
        free(rest);
        return 2;
    }
    lt_recipe r;
    lt_status st = lt_recipe_load(pos[0], sets, n_sets, &r);
    free(sets);
    if (st) {
        free(rest);
        return lt_cli_fail("train", st);
    }
    if (threads > 0) r.training.threads = (int)threads;
    if (lt_opt_get(&train_cmd, "print-recipe")) {
        char *c = lt_recipe_canonical(&r);
        fputs(c ? c : "", stdout);
        free(c);
        lt_recipe_free(&r);
        free(rest);
        return 0;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    lt_train_opts o = {.recipe = &r, .resume = lt_opt_get(&train_cmd, "resume"), .log = stderr, .stop = &g_stop,
                       .stop_after_step = stop_after, .quiet = lt_opt_get(&train_cmd, "quiet") != NULL};
    lt_train_result res;
    st = lt_train_run(&o, &res);
    lt_recipe_free(&r);
    free(rest);
    if (st) return lt_cli_fail("train", st);
    if (res.stopped) return g_stop ? 130 : 0;
    printf("trained %lld steps (from step %lld); final loss %.4f%s; adapter: %s\n",
           (long long)(res.steps_done - res.start_step), (long long)res.start_step, res.last_loss,
           res.last_eval_loss == res.last_eval_loss ? "" : "", res.adapter_dir);
    return 0;
}
