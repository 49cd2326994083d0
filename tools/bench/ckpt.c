/* bench_ckpt [DIR]: checkpoint save and load of a Llama-3.1-8B-sized adapter (r 16 on every Linear: 41.9 M
 * parameters; each checkpoint holds BF16 weights, FP32 masters and both FP32 AdamW moments = 14 bytes per
 * parameter, 587 MB raw) through the trainer's own item list: write (HDF5 + zstd, fsync, rename, latest),
 * open (read + SHA-256 verify) and restore into the adapter. Prints MB/s and the file size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "train/ckpt.h"
#include "train/lora.h"
#include "train/trainer_internal.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/tmp/loft-bench-ckpt";
    const char *json = "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":4096,\"intermediate_size\":14336,"
                       "\"num_hidden_layers\":32,\"num_attention_heads\":32,\"num_key_value_heads\":8,"
                       "\"vocab_size\":128256,\"bos_token_id\":128000,\"eos_token_id\":128001}";
    lt_model_config mc;
    lt_pool *pool;
    lt_lora *a;
    lt_status st = lt_config_parse(json, "llama-3.1-8b", &mc);
    if (!st) st = lt_pool_create((int64_t)8 << 30, &pool);
    lt_lora_cfg lc = {.targets = LT_LORA_ALL_LINEAR, .r = 16, .alpha = 32, .seed = 1};
    if (!st) st = lt_lora_create(&mc, &lc, pool, &a);
    if (st) {
        fprintf(stderr, "bench_ckpt: %s\n", lt_status_msg(st));
        return 1;
    }
    /* trained-looking values: B nonzero, moments nonzero (zeros would compress unrealistically well) */
    uint32_t s = 1;
    for (int64_t l = 0; l < mc.n_layers; l++)
        for (int m = 0; m < LT_LORA_N_MODULES; m++) {
            lt_lora_mod *x = lt_lora_get_mut(a, l, (lt_lora_module)m);
            float *bufs[5] = {x->b, x->ma, x->va, x->mb, x->vb};
            const int64_t ns[5] = {x->out * x->r, x->r * x->in, x->r * x->in, x->out * x->r, x->out * x->r};
            for (int k = 0; k < 5; k++)
                for (int64_t i = 0; i < ns[k]; i++) {
                    s = s * 1664525u + 1013904223u;
                    const float u = ((float)(s >> 8) / 16777216.0f - 0.5f) * 1e-3f;
                    bufs[k][i] = k == 2 || k == 4 ? u * u : u;
                }
        }
    lt_lora_sync_bf16(a);
    const double n_params = (double)lt_lora_n_params(a), raw = n_params * 14.0;
    lt_ckpt_item *items;
    char *names;
    const int64_t n = lt_trainer_ckpt_items(a, &items, &names);
    const lt_ckpt_attr attrs[] = {{.name = "step", .kind = LT_CKPT_INT, .i = 100}};
    printf("adapter: Llama-3.1-8B shape, r 16 all-linear: %.1f M parameters, %lld tensors, %.0f MB raw per "
           "checkpoint\n| operation | seconds | MB/s (raw) |\n|---|---|---|\n",
           n_params / 1e6, (long long)n, raw / 1e6);
    for (int rep = 0; rep < 2; rep++) {
        char *path = NULL;
        double t0 = now_s();
        st = lt_ckpt_dir_save(dir, 100 + rep, items, n, attrs, 1, 1, &path);
        const double t_save = now_s() - t0;
        if (st) {
            fprintf(stderr, "bench_ckpt: %s\n", lt_status_msg(st));
            return 1;
        }
        struct stat sb;
        stat(path, &sb);
        t0 = now_s();
        lt_ckpt *c = NULL;
        st = lt_ckpt_open(path, &c);
        const double t_open = now_s() - t0;
        t0 = now_s();
        if (!st) st = lt_trainer_ckpt_restore_lora(c, a, true);
        const double t_restore = now_s() - t0;
        lt_ckpt_close(c);
        if (st) {
            fprintf(stderr, "bench_ckpt: %s\n", lt_status_msg(st));
            return 1;
        }
        printf("| save #%d (HDF5 + zstd 1, fsync, rename; file %.0f MB = %.0f%% of raw) | %.2f | %.0f |\n", rep + 1,
               (double)sb.st_size / 1e6, 100.0 * (double)sb.st_size / raw, t_save, raw / 1e6 / t_save);
        printf("| load #%d (read + SHA-256 verify) | %.2f | %.0f |\n", rep + 1, t_open, raw / 1e6 / t_open);
        printf("| restore #%d (into the adapter, BF16 re-derived and compared) | %.2f | %.0f |\n", rep + 1, t_restore,
               raw / 1e6 / t_restore);
        free(path);
    }
    free(items);
    free(names);
    lt_lora_free(a);
    lt_pool_destroy(pool);
    return 0;
}
