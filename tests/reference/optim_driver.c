/* Driver for tests/reference/optim.sh: loft's side of the comparison with
 * tools/reference/optim_ref.py (torch.optim.AdamW + clip_grad_norm_ + transformers' schedules).
 *
 *   optim_driver KIND WEIGHT_DECAY WARMUP TOTAL STEPS SEED OUTDIR
 *
 * Three f32 tensors of 1, 7 and 1000 elements (sizes that exercise torch's scalar tail and its
 * 16-wide vector loop) start from N(0, 1) values drawn from loft's Philox RNG. For each step
 * k = 0..STEPS-1 the gradients are N(0, 1) x scale_k (0.1 every third step, so the global norm is
 * ~3 and max_norm 1.0 clips it; 0.01 otherwise, ~0.3, no clipping), then
 *   norm = lt_clip_grad_norm(grads, 1.0); lr = lt_lr_at(sched, k); lt_adamw_step(lr, t = k + 1)
 * with lr peak 1e-2, betas 0.9/0.999, eps 1e-8. Written to OUTDIR (raw little-endian f32, the
 * tensors concatenated in order):
 *   init.f32          parameters before step 0
 *   grad_KK.f32       gradients of step KK before clipping
 *   param_KK.f32      parameters after step KK
 *   steps.txt         one line per step: KK norm lr (%.17g)
 */
#include "core/core.h"
#include "train/optim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N_TENSORS = 3 };
static const int64_t k_sizes[N_TENSORS] = {1, 7, 1000};

static int write_f32(const char *dir, const char *name, const float *data, int64_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, sizeof(float), (size_t)n, f) != (size_t)n || fclose(f) != 0) {
        fprintf(stderr, "optim_driver: cannot write %s\n", path);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: optim_driver KIND WEIGHT_DECAY WARMUP TOTAL STEPS SEED OUTDIR\n");
        return 1;
    }
    lt_lr_sched sched = {.lr = 1e-2, .num_cycles = 0.5};
    if (!lt_lr_kind_from_name(argv[1], &sched.kind)) {
        fprintf(stderr, "optim_driver: unknown schedule %s (expected constant, linear or cosine)\n", argv[1]);
        return 1;
    }
    lt_adamw_cfg cfg = {.lr = sched.lr, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = atof(argv[2])};
    sched.warmup_steps = atoll(argv[3]);
    sched.total_steps = atoll(argv[4]);
    int64_t steps = atoll(argv[5]);
    uint64_t seed = strtoull(argv[6], NULL, 10);
    const char *dir = argv[7];
    if (steps < 1 || steps > 1000 || sched.warmup_steps < 0 || sched.total_steps < 0) {
        fprintf(stderr, "optim_driver: bad step counts\n");
        return 1;
    }

    int64_t total = 0;
    for (int i = 0; i < N_TENSORS; i++) total += k_sizes[i];
    /* One block each for params, grads, m, v: [total] floats, tensor i at offset off[i]. */
    float *buf = calloc((size_t)(4 * total), sizeof(float));
    if (!buf) return 1;
    float *p = buf, *g = buf + total, *m = buf + 2 * total, *v = buf + 3 * total;
    float *grads[N_TENSORS];
    int64_t off[N_TENSORS];
    for (int i = 0, o = 0; i < N_TENSORS; o += (int)k_sizes[i], i++) {
        off[i] = o;
        grads[i] = g + o;
    }

    lt_rng rng;
    lt_rng_init(&rng, seed);
    for (int64_t i = 0; i < total; i++) p[i] = lt_rng_normal(&rng);
    int rc = write_f32(dir, "init.f32", p, total);

    char path[4096];
    snprintf(path, sizeof path, "%s/steps.txt", dir);
    FILE *log = fopen(path, "w");
    if (!log) {
        fprintf(stderr, "optim_driver: cannot write %s\n", path);
        free(buf);
        return 1;
    }
    for (int64_t k = 0; k < steps && rc == 0; k++) {
        float scale = (k % 3 == 0) ? 0.1f : 0.01f;
        for (int64_t i = 0; i < total; i++) g[i] = lt_rng_normal(&rng) * scale;
        char name[64];
        snprintf(name, sizeof name, "grad_%02d.f32", (int)k);
        rc |= write_f32(dir, name, g, total);
        double norm = lt_clip_grad_norm(grads, k_sizes, N_TENSORS, 1.0);
        double lr = lt_lr_at(&sched, k);
        for (int i = 0; i < N_TENSORS; i++)
            lt_adamw_step(&cfg, lr, k + 1, p + off[i], g + off[i], m + off[i], v + off[i], k_sizes[i]);
        snprintf(name, sizeof name, "param_%02d.f32", (int)k);
        rc |= write_f32(dir, name, p, total);
        fprintf(log, "%02d %.17g %.17g\n", (int)k, norm, lr);
    }
    if (fclose(log) != 0) rc = 1;
    free(buf);
    return rc;
}
