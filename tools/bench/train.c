/* bench_train RECIPE.yaml [STEPS] [--set KEY=VALUE]...: runs a recipe for a fixed number of optimizer steps
 * (default 5) into a scratch output_dir and prints where the time went — data / forward / CE / backward /
 * optimizer / checkpoint — tokens per second and the pool's high-water mark. tools/bench/train.sh runs it on
 * the shipped quickstart recipe and times checkpoint save/load for an 8B-sized adapter (bench_ckpt). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "train/recipe.h"
#include "train/trainer.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_train RECIPE.yaml [STEPS] [--set KEY=VALUE]...\n");
        return 2;
    }
    long steps = 5;
    const char *sets[64];
    int n = 0;
    char buf[2][128];
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--set") && i + 1 < argc && n < 60)
            sets[n++] = argv[++i];
        else
            steps = strtol(argv[i], NULL, 10);
    }
    char outdir[] = "/tmp/loft-bench-train-XXXXXX";
    if (!mkdtemp(outdir)) return 1;
    snprintf(buf[0], sizeof buf[0], "training.max_steps=%ld", steps);
    snprintf(buf[1], sizeof buf[1], "output_dir=%s", outdir);
    sets[n++] = buf[0];
    sets[n++] = buf[1];
    lt_recipe r;
    lt_status st = lt_recipe_load(argv[1], sets, n, &r);
    if (st) {
        fprintf(stderr, "bench_train: %s\n", lt_status_msg(st));
        return 1;
    }
    lt_train_opts o = {.recipe = &r, .log = stderr, .quiet = true};
    lt_train_result res;
    st = lt_train_run(&o, &res);
    if (st) {
        fprintf(stderr, "bench_train: %s\n", lt_status_msg(st));
        return 1;
    }
    const double loop = res.t_total - res.t_setup;
    printf("recipe %s, %lld steps, %lld tokens, %d threads\n", argv[1], (long long)res.steps_done,
           (long long)res.tokens, r.training.threads);
    printf("| phase | seconds | share of the loop |\n|---|---|---|\n");
    const char *names[] = {"data", "forward", "lm_head + CE", "backward (+recompute)", "optimizer", "checkpoint",
                           "eval"};
    const double v[] = {res.t_data, res.t_forward, res.t_ce, res.t_backward, res.t_optimizer, res.t_checkpoint,
                        res.t_eval};
    for (int i = 0; i < 7; i++) printf("| %s | %.3f | %.1f%% |\n", names[i], v[i], loop > 0 ? 100 * v[i] / loop : 0);
    printf("| setup (load model + data) | %.3f | |\n", res.t_setup);
    printf("tokens/s %.1f (loop %.3f s), %.3f s/step, pool high-water %.1f MB\n", loop > 0 ? res.tokens / loop : 0,
           loop, res.steps_done ? loop / (double)res.steps_done : 0, res.pool_peak / 1e6);
    lt_recipe_free(&r);
    return 0;
}
