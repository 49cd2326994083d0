/* Driver for tests/reference/lora.sh: loft's side of the comparison with
 * tools/reference/lora_ref.py (a PEFT-equivalent LoRA Linear in torch, float64 autograd).
 *
 *   lora_driver MODULE R ALPHA RSLORA T SEED OUTDIR
 *
 * Model shape: hidden 300, intermediate 200, 4 heads of 16, 2 KV heads (so q [64, 300],
 * k/v [32, 300], o [300, 64], gate/up [200, 300], down [300, 200]), 2 layers. MODULE (q_proj ...)
 * is adapted with rank R, alpha ALPHA, rsLoRA when RSLORA is 1, seed SEED. Layer 1's module:
 *   init_a.f32, init_b.f32   A and B masters as lt_lora_create initialised them
 * then A and B masters are set to U(-0.1, 0.1) values from loft's Philox RNG and re-rounded
 * (lt_lora_sync_bf16); with a random base weight W [out, in], x [T, in] and dy [T, out]:
 *   y  = x W^T (be->linear) + LoRA forward
 *   dx = dy W (be->matmul_nn) + LoRA backward's dx;  ga, gb the LoRA gradients
 * Written to OUTDIR (raw little-endian f32): a.f32, b.f32 (the BF16 values forward uses), w.f32,
 * x.f32, dy.f32, y.f32, dx.f32, ga.f32, gb.f32, and meta.txt "in out r T scale".
 */
#include "backend/backend.h"
#include "core/core.h"
#include "pool/pool.h"
#include "train/lora.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int write_f32(const char *dir, const char *name, const float *data, int64_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, sizeof(float), (size_t)n, f) != (size_t)n || fclose(f) != 0) {
        fprintf(stderr, "lora_driver: cannot write %s\n", path);
        return 1;
    }
    return 0;
}

static float *rand_f32(lt_rng *g, int64_t n, float amp) {
    float *p = malloc((size_t)n * sizeof(float));
    if (!p) {
        fprintf(stderr, "lora_driver: out of memory\n");
        exit(1);
    }
    for (int64_t i = 0; i < n; i++) p[i] = amp * (2.0f * lt_rng_uniform(g) - 1.0f);
    return p;
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: lora_driver MODULE R ALPHA RSLORA T SEED OUTDIR\n");
        return 1;
    }
    lt_lora_module mod;
    if (!lt_lora_module_from_name(argv[1], &mod)) {
        fprintf(stderr, "lora_driver: unknown module %s\n", argv[1]);
        return 1;
    }
    const int64_t T = atoll(argv[5]);
    const char *dir = argv[7];
    lt_model_config mc;
    memset(&mc, 0, sizeof mc);
    mc.hidden_size = 300;
    mc.intermediate_size = 200;
    mc.n_layers = 2;
    mc.n_heads = 4;
    mc.n_kv_heads = 2;
    mc.head_dim = 16;
    mc.vocab_size = 100;
    lt_lora_cfg c = {.targets = 1u << mod,
                     .r = atoi(argv[2]),
                     .alpha = atof(argv[3]),
                     .rslora = atoi(argv[4]) != 0,
                     .seed = strtoull(argv[6], NULL, 10)};
    lt_pool *pool = NULL;
    lt_lora *a = NULL;
    lt_status st = lt_pool_create(LT_POOL_DEFAULT_BUDGET, &pool);
    if (!st) st = lt_lora_create(&mc, &c, pool, &a);
    if (st) {
        fprintf(stderr, "lora_driver: %s\n", lt_status_msg(st));
        lt_status_free(st);
        return 1;
    }
    lt_lora_mod *m = lt_lora_get_mut(a, 1, mod);
    const int64_t in = m->in, out = m->out, r = m->r;
    int rc = write_f32(dir, "init_a.f32", m->a, r * in) | write_f32(dir, "init_b.f32", m->b, out * r);

    lt_rng g;
    lt_rng_init(&g, c.seed + 1000);
    float *ra = rand_f32(&g, r * in, 0.1f), *rb = rand_f32(&g, out * r, 0.1f);
    memcpy(m->a, ra, (size_t)(r * in) * sizeof(float));
    memcpy(m->b, rb, (size_t)(out * r) * sizeof(float));
    lt_lora_sync_bf16(a);
    for (int64_t i = 0; i < r * in; i++) ra[i] = lt_bf16_to_f32(m->a_bf16[i]);
    for (int64_t i = 0; i < out * r; i++) rb[i] = lt_bf16_to_f32(m->b_bf16[i]);
    float *w = rand_f32(&g, out * in, 0.05f), *x = rand_f32(&g, T * in, 1.0f), *dy = rand_f32(&g, T * out, 1.0f);
    float *y = calloc((size_t)(T * out), sizeof(float)), *dx = calloc((size_t)(T * in), sizeof(float)),
          *xa = calloc((size_t)(T * r), sizeof(float)), *scratch = calloc((size_t)(T * r), sizeof(float));
    if (!y || !dx || !xa || !scratch) {
        fprintf(stderr, "lora_driver: out of memory\n");
        return 1;
    }
    const lt_backend *be = lt_backend_cpu();
    be->linear(x, w, NULL, y, T, in, out);
    lt_lora_forward(be, m, x, y, T, xa);
    be->matmul_nn(dy, w, dx, T, out, in, 0.0f);
    lt_lora_zero_grad(a);
    lt_lora_backward(be, m, x, dy, xa, dx, T, scratch);

    rc |= write_f32(dir, "a.f32", ra, r * in) | write_f32(dir, "b.f32", rb, out * r) |
          write_f32(dir, "w.f32", w, out * in) | write_f32(dir, "x.f32", x, T * in) |
          write_f32(dir, "dy.f32", dy, T * out) | write_f32(dir, "y.f32", y, T * out) |
          write_f32(dir, "dx.f32", dx, T * in) | write_f32(dir, "ga.f32", m->ga, r * in) |
          write_f32(dir, "gb.f32", m->gb, out * r);
    char path[4096];
    snprintf(path, sizeof path, "%s/meta.txt", dir);
    FILE *f = fopen(path, "w");
    if (!f ||
        fprintf(f, "%lld %lld %lld %lld %.9g\n", (long long)in, (long long)out, (long long)r, (long long)T,
                (double)m->scale) < 0 ||
        fclose(f) != 0) {
        fprintf(stderr, "lora_driver: cannot write %s\n", path);
        rc = 1;
    }
    free(ra);
    free(rb);
    free(w);
    free(x);
    free(dy);
    free(y);
    free(dx);
    free(xa);
    free(scratch);
    lt_lora_free(a);
    lt_pool_destroy(pool);
    return rc;
}
