/* A whole training step on the GPU against the CPU (label gpu): tests/unit/mirror_step.h runs one step
 * of a tiny Qwen2-shaped model (NF4 base, biases, GQA, all seven LoRA modules with dropout 0.1, a packed
 * row of two documents with unscored prefixes) on the CPU backend, and on copies of the model and the
 * adapter in GPU memory through the CUDA backend; then one AdamW step on each host adapter. Checked,
 * with and without activation checkpointing:
 *  - the summed CE loss within 1e-2 relative: every GEMM runs on bf16-rounded operands (unit roundoff
 *    2^-9, nmse ~2.5e-6 per GEMM); ~25 GEMMs in sequence through 2 layers and the lm_head leave each
 *    activation ~0.5% rms off at most, and the loss, a sum over 76 tokens, moves less than that;
 *  - the LoRA gradients: nmse <= 5e-3 (the backward adds the same order of bf16 noise again; a
 *    transposed operand or a wrong LoRA scale gives nmse >= 0.1);
 *  - the adapter updates (masters after - before): nmse <= 0.05. The first AdamW update is about
 *    lr * sign(g) per entry, so this bounds the share of entries whose gradient sign the bf16 noise
 *    flips to ~1%;
 *  - the same scored-token count.
 * Then inference: a prefill and 3 decode steps with the KV cache in GPU memory, logits nmse <= 1e-3.
 * Without a GPU: SKIPPED with the reason, exit 77. */
#include "mirror_step.h"

#include <math.h>

#include "gpu_test.h"

int main(void) {
    lt_pool *hp, *dp;
    if (!gpu_start(4LL << 30, &dp)) return 77;
    CHECK_OK(lt_pool_create(2LL << 30, &hp));
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/test_cuda_step", lt_test_tmpdir());
    for (int ck = 0; ck <= 1; ck++) {
        mirror_result r;
        if (!mirror_run(dir, hp, dp, lt_backend_cuda(), ck == 1, true, &r)) return 1;
        CHECK_OK(lt_cuda_check("training step"));
        float *u_ref = malloc((size_t)r.n_params * sizeof(float)), *u_gpu = malloc((size_t)r.n_params * sizeof(float));
        for (int64_t i = 0; i < r.n_params; i++) {
            u_ref[i] = r.p_ref[i] - r.p0[i];
            u_gpu[i] = r.p_copy[i] - r.p0[i];
        }
        const double rel = fabs(r.loss_copy - r.loss_ref) / fabs(r.loss_ref);
        const double eg = gpu_nmse(r.g_copy, r.g_ref, r.n_params), eu = gpu_nmse(u_gpu, u_ref, r.n_params);
        printf("checkpointing %d: loss gpu %.6f cpu %.6f (rel %.2e, limit 1e-2); grads nmse %.3e (limit 5e-3); "
               "updates nmse %.3e (limit 5e-2); scored %lld / %lld\n",
               ck, r.loss_copy, r.loss_ref, rel, eg, eu, (long long)r.n_copy, (long long)r.n_ref);
        CHECK(rel <= 1e-2);
        CHECK(eg <= 5e-3);
        CHECK(eu <= 5e-2);
        CHECK(r.n_copy == r.n_ref);
        free(u_ref);
        free(u_gpu);
        mirror_free(&r);
    }
    /* inference on the GPU: prefill 20 tokens + 3 decode steps (KV cache in GPU memory, the decode GEMV
       path for one token), last logits of each call: nmse <= 1e-3 (bf16 GEMM operands in the prefill;
       the decode GEMV reads the exact weights and x in f32, so most of the error is the prefill's) */
    float *lr = malloc(4 * 300 * sizeof(float)), *lg = malloc(4 * 300 * sizeof(float));
    int64_t V = 0;
    if (mirror_forward(dir, hp, dp, lt_backend_cuda(), lr, lg, &V)) {
        CHECK_OK(lt_cuda_check("forward"));
        for (int s = 0; s < 4; s++) {
            const double e = gpu_nmse(lg + s * V, lr + s * V, V);
            printf("forward %s: logits nmse %.3e (limit 1e-3)\n", s ? "decode step" : "prefill", e);
            CHECK(e <= 1e-3);
        }
    }
    free(lr);
    free(lg);
    lt_cuda_shutdown();
    lt_pool_destroy(dp);
    lt_pool_destroy(hp);
    TEST_MAIN_END();
}
