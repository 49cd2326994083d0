/* Model copies and adapter mirrors (lt_model_copy, lt_lora_mirror_*) on the CPU backend: a training step
 * on the copies (another pool, every index array passed through the backend's copy_in, gradients
 * pulled back with copy_out) gives the same loss and gradients, bit for bit, as the step on the
 * originals, with and without checkpointing, and the AdamW step after it the same masters. This is the
 * plumbing the GPU runs through (tests/gpu/test_cuda_step.c does the same with bf16 tolerances); on
 * the CPU any difference is a bug in the copy. Inference (prefill + decode with a KV cache in the copy's
 * pool) gives the same logits too. Negative control: a mirror not pushed (A = 0 there)
 * gives different gradients. */
#include "mirror_step.h"

int main(void) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/test_mirror", lt_test_tmpdir());
    lt_pool *hp, *cp;
    CHECK_OK(lt_pool_create(1LL << 30, &hp));
    CHECK_OK(lt_pool_create(1LL << 30, &cp));
    for (int ck = 0; ck <= 1; ck++) {
        mirror_result r;
        if (!mirror_run(dir, hp, cp, lt_backend_cpu(), ck == 1, true, &r)) return 1;
        printf("checkpointing %d: loss %.9g / %.9g over %lld / %lld tokens, %lld params\n", ck, r.loss_ref,
               r.loss_copy, (long long)r.n_ref, (long long)r.n_copy, (long long)r.n_params);
        CHECK(r.loss_ref == r.loss_copy && r.n_ref == r.n_copy && r.n_ref == 76);
        CHECK(!memcmp(r.g_ref, r.g_copy, (size_t)r.n_params * sizeof(float)));
        CHECK(!memcmp(r.p_ref, r.p_copy, (size_t)r.n_params * sizeof(float)));
        double gn = 0;
        for (int64_t i = 0; i < r.n_params; i++) gn += (double)r.g_ref[i] * r.g_ref[i];
        CHECK(gn > 0); /* the comparison is of something */
        mirror_free(&r);
        CHECK(lt_pool_get_stats(cp).used == 0); /* the copies gave everything back */
    }
    /* inference (prefill + decode with a KV cache) through a copy: the same logits, bit for bit */
    float *lr = malloc(4 * 300 * sizeof(float)), *lc = malloc(4 * 300 * sizeof(float));
    int64_t V = 0;
    if (!mirror_forward(dir, hp, cp, lt_backend_cpu(), lr, lc, &V)) return 1;
    CHECK(V == 300 && !memcmp(lr, lc, (size_t)(4 * V) * sizeof(float)));
    free(lr);
    free(lc);
    CHECK(lt_pool_get_stats(cp).used == 0);
    mirror_result r;
    if (!mirror_run(dir, hp, cp, lt_backend_cpu(), false, false, &r)) return 1;
    CHECK(memcmp(r.g_ref, r.g_copy, (size_t)r.n_params * sizeof(float)) != 0);
    mirror_free(&r);
    lt_pool_destroy(cp);
    lt_pool_destroy(hp);
    TEST_MAIN_END();
}
