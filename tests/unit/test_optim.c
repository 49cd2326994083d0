/* Unit tests for src/train/optim.c: LR schedules against their closed forms, gradient clipping,
 * one AdamW step on a hand example, non-finite norms and determinism. The bit-exact comparison
 * with torch is tests/reference/optim.sh. */
#include "core/core.h"
#include "train/optim.h"

#include "test.h"

#include <math.h>

/* Schedules are a few double operations each: a relative 1e-15 (~4 ulps) allows for the closed
 * forms below being written in a different (but equivalent) order. */
static int close_d(double a, double b) { return fabs(a - b) <= 1e-15 * fabs(b) || a == b; }

static void test_schedules(void) {
    const double peak = 2e-4, pi = 3.141592653589793;
    /* warmup 10, decay over the 100 steps 10..110. */
    lt_lr_sched lin = {.kind = LT_LR_LINEAR, .lr = peak, .warmup_steps = 10, .total_steps = 110};
    lt_lr_sched cos_s = {.kind = LT_LR_COSINE, .lr = peak, .warmup_steps = 10, .total_steps = 110, .num_cycles = 0.5};
    lt_lr_sched con = {.kind = LT_LR_CONSTANT, .lr = peak, .warmup_steps = 10, .total_steps = 110};
    const lt_lr_sched *all[3] = {&lin, &cos_s, &con};
    for (int i = 0; i < 3; i++) {
        CHECKF(lt_lr_at(all[i], 0) == 0.0, "kind %d step 0: %g", i, lt_lr_at(all[i], 0));
        CHECKF(close_d(lt_lr_at(all[i], 1), peak * 0.1), "kind %d step 1", i);
        CHECKF(close_d(lt_lr_at(all[i], 9), peak * 0.9), "kind %d warmup-1", i);
        CHECKF(close_d(lt_lr_at(all[i], 10), peak), "kind %d warmup: %.17g", i, lt_lr_at(all[i], 10));
    }
    /* Middle (progress 1/2), a quarter, end, beyond the end. */
    CHECK(close_d(lt_lr_at(&lin, 60), peak * 0.5));
    CHECK(close_d(lt_lr_at(&lin, 35), peak * 0.75));
    CHECK(lt_lr_at(&lin, 110) == 0.0);
    CHECK(lt_lr_at(&lin, 150) == 0.0); /* clamped at 0 */
    CHECK(close_d(lt_lr_at(&cos_s, 60), peak * 0.5 * (1.0 + cos(pi * 0.5))));
    CHECK(fabs(lt_lr_at(&cos_s, 60) - peak * 0.5) <= 1e-20); /* cos(pi/2) is 6e-17, not 0 */
    CHECK(close_d(lt_lr_at(&cos_s, 35), peak * 0.5 * (1.0 + cos(pi * 0.25))));
    CHECK(lt_lr_at(&cos_s, 110) == 0.0); /* cos(pi) is exactly -1 */
    /* transformers' cosine goes on past the end: progress 1.1 -> 0.5 (1 + cos(1.1 pi)) > 0. */
    CHECK(close_d(lt_lr_at(&cos_s, 120), peak * 0.5 * (1.0 + cos(pi * 1.1))));
    CHECK(lt_lr_at(&cos_s, 120) > 0.0);
    CHECK(lt_lr_at(&con, 60) == peak && lt_lr_at(&con, 110) == peak && lt_lr_at(&con, 1000) == peak);

    /* No warmup: the peak from step 0; a two-cycle cosine is back at the peak half-way. */
    lt_lr_sched con0 = {.kind = LT_LR_CONSTANT, .lr = peak};
    CHECK(lt_lr_at(&con0, 0) == peak);
    lt_lr_sched lin0 = {.kind = LT_LR_LINEAR, .lr = peak, .total_steps = 4};
    CHECK(lt_lr_at(&lin0, 0) == peak && close_d(lt_lr_at(&lin0, 1), peak * 0.75));
    lt_lr_sched cos2 = {.kind = LT_LR_COSINE, .lr = peak, .total_steps = 100, .num_cycles = 2.0};
    CHECK(close_d(lt_lr_at(&cos2, 50), peak));
    /* warmup == total: max(1, total - warmup) keeps the division finite. */
    lt_lr_sched deg = {.kind = LT_LR_LINEAR, .lr = peak, .warmup_steps = 5, .total_steps = 5};
    CHECK(lt_lr_at(&deg, 5) == 0.0 && close_d(lt_lr_at(&deg, 4), peak * 0.8));

    lt_lr_kind k = LT_LR_COSINE;
    CHECK(lt_lr_kind_from_name("constant", &k) && k == LT_LR_CONSTANT);
    CHECK(lt_lr_kind_from_name("linear", &k) && k == LT_LR_LINEAR);
    CHECK(lt_lr_kind_from_name("cosine", &k) && k == LT_LR_COSINE);
    CHECK(!lt_lr_kind_from_name("Linear", &k) && !lt_lr_kind_from_name("", &k) && !lt_lr_kind_from_name(NULL, &k));
}

static void test_clip(void) {
    /* Two tensors {3, 4} and {12}: global norm 13 exactly. */
    float a[2] = {3.0f, 4.0f}, b[1] = {12.0f};
    float *grads[2] = {a, b};
    int64_t sizes[2] = {2, 1};
    double norm = lt_clip_grad_norm(grads, sizes, 2, 100.0); /* no clipping */
    CHECKF(norm == 13.0, "norm %.17g", norm);
    CHECK(a[0] == 3.0f && a[1] == 4.0f && b[0] == 12.0f);
    norm = lt_clip_grad_norm(grads, sizes, 2, 0.0); /* 0 = measure only */
    CHECK(norm == 13.0 && a[0] == 3.0f && b[0] == 12.0f);
    norm = lt_clip_grad_norm(grads, sizes, 2, 1.0);
    CHECK(norm == 13.0);
    /* Scaled by 1 / (13 + 1e-6), computed in f32 like torch: each value is within 2 f32
     * roundings (2.4e-7 relative) of the exact scaling; 1e-6 relative is loose but catches any
     * wrong coefficient (a missing 1e-6 term alone would be 1e-6/13 = 7.7e-8, so that needs the
     * exact-coefficient check below). */
    const double s = 1.0 / (13.0 + 1e-6);
    CHECKF(fabs(a[0] - 3.0 * s) <= 1e-6 * 3.0 * s, "a0 %.9g", a[0]);
    CHECKF(fabs(a[1] - 4.0 * s) <= 1e-6 * 4.0 * s, "a1 %.9g", a[1]);
    CHECKF(fabs(b[0] - 12.0 * s) <= 1e-6 * 12.0 * s, "b0 %.9g", b[0]);
    /* The f32 coefficient exactly as clip_grad_norm_ forms it: reciprocal(norm + 1e-6) * max_norm. */
    float coef = (1.0f / (13.0f + (float)1e-6)) * 1.0f;
    CHECK(a[0] == 3.0f * coef && a[1] == 4.0f * coef && b[0] == 12.0f * coef);
    /* After clipping the norm is max_norm up to the f32 roundings (same reasoning, 1e-6). */
    norm = lt_clip_grad_norm(grads, sizes, 2, 100.0);
    CHECKF(fabs(norm - 1.0) <= 1e-6, "norm after clipping %.9g", norm);
    /* Empty input: norm 0. */
    CHECK(lt_clip_grad_norm(NULL, NULL, 0, 1.0) == 0.0);

    /* Non-finite gradients: the norm says so and nothing is scaled (the caller skips the step). */
    float c[3] = {1.0f, INFINITY, 2.0f}, d[2] = {5.0f, 6.0f};
    float *g2[2] = {c, d};
    int64_t s2[2] = {3, 2};
    norm = lt_clip_grad_norm(g2, s2, 2, 1.0);
    CHECK(isinf(norm) && norm > 0);
    CHECK(c[0] == 1.0f && d[0] == 5.0f && d[1] == 6.0f);
    c[1] = NAN;
    norm = lt_clip_grad_norm(g2, s2, 2, 1.0);
    CHECK(isnan(norm));
    CHECK(c[0] == 1.0f && c[2] == 2.0f && d[1] == 6.0f);
    /* f32 values whose squares overflow f32 but not double: a finite norm, still clipped. */
    float e[2] = {3e30f, 4e30f};
    float *g3[1] = {e};
    int64_t s3[1] = {2};
    norm = lt_clip_grad_norm(g3, s3, 1, 1.0);
    CHECKF(fabs(norm - 5e30) <= 1e-6 * 5e30, "norm %g", norm); /* f32 inputs: 1e-7 relative */
    CHECKF(fabs(e[0] - 0.6f) <= 1e-6f && fabs(e[1] - 0.8f) <= 1e-6f, "%g %g", e[0], e[1]);
}

static void test_adamw(void) {
    /* wd = 0, t = 1: m = (1-b1) g, v = (1-b2) g^2, bias corrections undo the factors, so
     * p -= lr * g / (|g| + eps) = lr * sign(g) * (1 - eps/|g|). */
    lt_adamw_cfg c = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.0};
    float p[3] = {1.0f, -2.0f, 0.5f}, g[3] = {0.5f, -0.25f, 0.0f}, m[3] = {0}, v[3] = {0};
    lt_adamw_step(&c, 0.1, 1, p, g, m, v, 3);
    /* f32 arithmetic in a handful of roundings: 1e-6 relative (~8 ulps). */
    CHECKF(fabs(p[0] - (1.0 - 0.1 * (1.0 - 1e-8 / 0.5))) <= 1e-6, "p0 %.9g", p[0]);
    CHECKF(fabs(p[1] - (-2.0 + 0.1 * (1.0 - 1e-8 / 0.25))) <= 2e-6, "p1 %.9g", p[1]);
    CHECK(p[2] == 0.5f); /* zero gradient, zero moments: 0 / eps = 0 */
    CHECKF(fabs(m[0] - 0.05) <= 1e-6 * 0.05 && fabs(m[1] + 0.025) <= 1e-6 * 0.025, "m %.9g %.9g", m[0], m[1]);
    CHECKF(fabs(v[0] - 0.00025) <= 1e-6 * 0.00025 && fabs(v[1] - 0.0000625) <= 1e-6 * 0.0000625, "v %.9g %.9g", v[0],
           v[1]);
    CHECK(m[2] == 0.0f && v[2] == 0.0f);

    /* Second step with the same gradient: m_hat = g, v_hat = g^2 again, so the same update. */
    float p0 = p[0];
    lt_adamw_step(&c, 0.1, 2, p, g, m, v, 3);
    CHECKF(fabs((p0 - p[0]) - 0.1) <= 1e-6, "second update %.9g", p0 - p[0]);

    /* Decoupled weight decay alone (zero gradient): p *= 1 - lr*wd, the factor rounded to f32. */
    lt_adamw_cfg cw = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.1};
    float pw[2] = {3.0f, -1.5f}, gw[2] = {0}, mw[2] = {0}, vw[2] = {0};
    lt_adamw_step(&cw, 0.1, 1, pw, gw, mw, vw, 2);
    CHECK(pw[0] == 3.0f * (float)0.99 && pw[1] == -1.5f * (float)0.99);
    /* lr 0 (first warmup step): parameters unchanged, moments updated. */
    float pz[1] = {0.75f}, gz[1] = {2.0f}, mz[1] = {0}, vz[1] = {0};
    lt_adamw_step(&cw, 0.0, 1, pz, gz, mz, vz, 1);
    CHECK(pz[0] == 0.75f && mz[0] != 0.0f && vz[0] != 0.0f);
    lt_adamw_step(&cw, 0.1, 1, pz, gz, mz, vz, 0); /* n = 0: nothing */
    CHECK(pz[0] == 0.75f);
}

static void test_determinism(void) {
    enum { N = 4099 };
    static float p1[N], p2[N], g1[N], g2[N], m1[N], m2[N], v1[N], v2[N];
    lt_rng r;
    lt_rng_init(&r, 5);
    for (int i = 0; i < N; i++) {
        p1[i] = p2[i] = lt_rng_normal(&r);
        m1[i] = m2[i] = v1[i] = v2[i] = 0.0f;
    }
    lt_adamw_cfg c = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-6, .weight_decay = 0.1};
    lt_lr_sched s = {.kind = LT_LR_COSINE, .lr = 1e-3, .warmup_steps = 2, .total_steps = 8, .num_cycles = 0.5};
    int64_t sizes[1] = {N};
    int same_norms = 1;
    for (int k = 0; k < 8; k++) {
        for (int i = 0; i < N; i++) g1[i] = g2[i] = lt_rng_normal(&r);
        float *a[1] = {g1}, *b[1] = {g2};
        double n1 = lt_clip_grad_norm(a, sizes, 1, 1.0), n2 = lt_clip_grad_norm(b, sizes, 1, 1.0);
        same_norms &= n1 == n2;
        lt_adamw_step(&c, lt_lr_at(&s, k), k + 1, p1, g1, m1, v1, N);
        lt_adamw_step(&c, lt_lr_at(&s, k), k + 1, p2, g2, m2, v2, N);
    }
    CHECK(same_norms);
    CHECK(memcmp(p1, p2, sizeof p1) == 0 && memcmp(m1, m2, sizeof m1) == 0 && memcmp(v1, v2, sizeof v1) == 0);
    /* ...and the parameters did move. */
    lt_rng_init(&r, 5);
    int moved = 0;
    for (int i = 0; i < N; i++) moved += p1[i] != lt_rng_normal(&r);
    CHECKF(moved > N / 2, "only %d of %d parameters moved", moved, N);
}

int main(void) {
    test_schedules();
    test_clip();
    test_adamw();
    test_determinism();
    TEST_MAIN_END();
}
