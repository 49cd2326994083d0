/* train/lora: PEFT-style init, validation, forward/backward against a naive float64 version,
 * finite differences, thread-count bit-identity and gradient accumulation. */
#include "test.h"

#include <math.h>

#include "backend/backend.h"
#include "train/lora.h"

/* A small Llama shape whose Linear sizes go up to 300: q [64, 300], k/v [32, 300], o [300, 64],
 * gate/up [200, 300], down [300, 200]. */
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

static void fill(lt_rng *g, float *p, int64_t n, float amp) {
    for (int64_t i = 0; i < n; i++) p[i] = amp * (2.0f * lt_rng_uniform(g) - 1.0f);
}

static double max_abs(const double *r, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(r[i]));
    return m;
}

/* max |got - ref| / max |ref| */
static double rel_err(const float *got, const double *ref, int64_t n) {
    double e = 0;
    for (int64_t i = 0; i < n; i++) e = fmax(e, fabs((double)got[i] - ref[i]));
    const double m = max_abs(ref, n);
    return m > 0 ? e / m : e;
}

static void test_names(void) {
    lt_lora_module m;
    CHECK(strcmp(lt_lora_module_name(LT_LORA_Q), "q_proj") == 0);
    CHECK(strcmp(lt_lora_module_name(LT_LORA_DOWN), "down_proj") == 0);
    CHECK(lt_lora_module_name(LT_LORA_N_MODULES) == NULL);
    CHECK(lt_lora_module_from_name("gate", &m) && m == LT_LORA_GATE);
    CHECK(lt_lora_module_from_name("o_proj", &m) && m == LT_LORA_O);
    CHECK(!lt_lora_module_from_name("lm_head", &m));
    CHECK(!lt_lora_module_from_name("", &m));
}

static void test_validation(lt_pool *pool) {
    const lt_model_config mc = small_cfg();
    lt_lora *a = NULL;
    lt_lora_cfg c = {.targets = LT_LORA_ALL_LINEAR, .r = 8, .alpha = 16, .seed = 1};
    lt_lora_cfg b = c;
    b.r = 0;
    CHECK_ERR(lt_lora_create(&mc, &b, pool, &a), "lora.r");
    b = c;
    b.r = 33; /* k_proj is [32, 300] */
    CHECK_ERR(lt_lora_create(&mc, &b, pool, &a), "lora.r");
    b.targets = 1u << LT_LORA_Q; /* q [64, 300] takes 33 */
    CHECK_OK(lt_lora_create(&mc, &b, pool, &a));
    lt_lora_free(a);
    a = NULL;
    b = c;
    b.alpha = 0;
    CHECK_ERR(lt_lora_create(&mc, &b, pool, &a), "lora.alpha");
    b.alpha = NAN;
    CHECK_ERR(lt_lora_create(&mc, &b, pool, &a), "lora.alpha");
    b = c;
    b.dropout = 1.0;
    CHECK_ERR(lt_lora_create(&mc, &b, pool, &a), "lora.dropout");
    b.dropout = -0.1;
    CHECK_ERR(lt_lora_create(&mc, &b, pool, &a), "lora.dropout");
    b = c;
    b.targets = 0;
    CHECK_ERR(lt_lora_create(&mc, &b, pool, &a), "lora.targets");
    b.targets = 1u << LT_LORA_N_MODULES;
    CHECK_ERR(lt_lora_create(&mc, &b, pool, &a), "lora.targets");
    b = c;
    b.r_module[LT_LORA_V] = -1;
    CHECK_ERR(lt_lora_create(&mc, &b, pool, &a), "lora.r_module.v_proj");
    b.r_module[LT_LORA_V] = 40;
    CHECK_ERR(lt_lora_create(&mc, &b, pool, &a), "lora.r_module.v_proj");
    b = c;
    b.alpha_module[LT_LORA_UP] = -2;
    CHECK_ERR(lt_lora_create(&mc, &b, pool, &a), "lora.alpha_module.up_proj");
    CHECK(a == NULL);
    /* a budget too small for the adapters: a pool error, nothing leaked */
    lt_pool *tiny = NULL;
    CHECK_OK(lt_pool_create(100000, &tiny));
    lt_status st = lt_lora_create(&mc, &c, tiny, &a);
    CHECK(st != NULL && a == NULL);
    lt_status_free(st);
    CHECK(lt_pool_get_stats(tiny).used == 0);
    lt_pool_destroy(tiny);
}

static void test_init(lt_pool *pool) {
    const lt_model_config mc = small_cfg();
    lt_lora_cfg c = {.targets = LT_LORA_ALL_LINEAR, .r = 8, .alpha = 16, .seed = 7};
    lt_lora *a = NULL, *a2 = NULL, *only = NULL, *other = NULL;
    CHECK_OK(lt_lora_create(&mc, &c, pool, &a));
    CHECK_OK(lt_lora_create(&mc, &c, pool, &a2));
    lt_lora_cfg cq = c;
    cq.targets = (1u << LT_LORA_V) | (1u << LT_LORA_DOWN);
    CHECK_OK(lt_lora_create(&mc, &cq, pool, &only));
    lt_lora_cfg cs = c;
    cs.seed = 8;
    CHECK_OK(lt_lora_create(&mc, &cs, pool, &other));
    if (!a || !a2 || !only || !other) return;
    CHECK(lt_lora_get(only, 0, LT_LORA_Q) == NULL);
    CHECK(lt_lora_get(a, 3, LT_LORA_Q) == NULL && lt_lora_get(a, -1, LT_LORA_Q) == NULL);
    CHECK(lt_lora_n_params(a) == 3 * 8 * ((300 + 64) * 2 + (300 + 32) * 2 + (300 + 200) * 3));
    CHECK(lt_lora_n_params(only) == 3 * 8 * ((300 + 32) + (300 + 200)));
    for (int64_t l = 0; l < 3; l++) {
        for (int m = 0; m < LT_LORA_N_MODULES; m++) {
            const lt_lora_mod *md = lt_lora_get(a, l, (lt_lora_module)m);
            CHECK(md && md->layer == l && md->module == (lt_lora_module)m && md->r == 8);
            if (!md) continue;
            CHECK(md->scale == 2.0f);
            const int64_t na = md->r * md->in, nb = md->out * md->r;
            /* kaiming_uniform_(a=sqrt(5)) on [r, in]: U(-1/sqrt(in), 1/sqrt(in)) */
            const float bound = (float)(1.0 / sqrt((double)md->in));
            double s = 0, s2 = 0, mx = 0;
            bool in_bound = true, bf_ok = true;
            for (int64_t i = 0; i < na; i++) {
                s += md->a[i];
                s2 += (double)md->a[i] * md->a[i];
                mx = fmax(mx, fabs(md->a[i]));
                in_bound &= fabsf(md->a[i]) <= bound;
                bf_ok &= md->a_bf16[i] == lt_f32_to_bf16(md->a[i]);
            }
            const double mean = s / (double)na, var = s2 / (double)na - mean * mean;
            const double sd = bound / sqrt(3.0); /* std of U(-b, b) */
            /* 5 standard errors of the mean: a false failure has probability ~6e-7 per module */
            CHECKF(fabs(mean) < 5 * sd / sqrt((double)na), "layer %lld %s mean %g", (long long)l,
                   lt_lora_module_name(md->module), mean);
            /* the variance estimate of >= 256 uniforms is within 15% (> 5 standard errors) */
            CHECKF(fabs(var / (sd * sd) - 1) < 0.15, "var ratio %g", var / (sd * sd));
            /* with >= 256 draws the largest |a| comes within 3% of the bound (miss prob. 0.97^256 ~ 4e-4) */
            CHECKF(in_bound && mx > 0.97 * bound, "max %g bound %g", mx, (double)bound);
            CHECK(bf_ok);
            bool b_zero = true;
            for (int64_t i = 0; i < nb; i++) b_zero &= md->b[i] == 0.0f && md->b_bf16[i] == 0;
            CHECK(b_zero);
            const lt_lora_mod *md2 = lt_lora_get(a2, l, (lt_lora_module)m);
            CHECK(memcmp(md->a, md2->a, (size_t)na * 4) == 0); /* same seed, same bits */
            const lt_lora_mod *mo = lt_lora_get(other, l, (lt_lora_module)m);
            CHECK(memcmp(md->a, mo->a, (size_t)na * 4) != 0); /* another seed differs */
            const lt_lora_mod *mq = lt_lora_get(only, l, (lt_lora_module)m);
            if (mq) CHECK(memcmp(md->a, mq->a, (size_t)na * 4) == 0); /* independent of the other targets */
        }
    }
    /* layers and modules of equal shape draw different values */
    const lt_lora_mod *q0 = lt_lora_get(a, 0, LT_LORA_Q), *q1 = lt_lora_get(a, 1, LT_LORA_Q);
    const lt_lora_mod *k0 = lt_lora_get(a, 0, LT_LORA_K), *v0 = lt_lora_get(a, 0, LT_LORA_V);
    const lt_lora_mod *g0 = lt_lora_get(a, 0, LT_LORA_GATE), *u0 = lt_lora_get(a, 0, LT_LORA_UP);
    CHECK(memcmp(q0->a, q1->a, (size_t)(q0->r * q0->in) * 4) != 0);
    CHECK(memcmp(k0->a, v0->a, (size_t)(k0->r * k0->in) * 4) != 0);
    CHECK(memcmp(g0->a, u0->a, (size_t)(g0->r * g0->in) * 4) != 0);
    lt_lora_free(a);
    lt_lora_free(a2);
    lt_lora_free(only);
    lt_lora_free(other);

    /* scale: alpha / r and rsLoRA alpha / sqrt(r), rounded to f32 once */
    lt_lora_cfg cr = {.targets = 1u << LT_LORA_Q, .r = 6, .alpha = 16, .seed = 1, .rslora = true};
    cr.r_module[LT_LORA_Q] = 5;
    cr.alpha_module[LT_LORA_Q] = 7;
    CHECK_OK(lt_lora_create(&mc, &cr, pool, &a));
    if (a)
        CHECK(lt_lora_get(a, 0, LT_LORA_Q)->scale == (float)(7.0 / sqrt(5.0)) && lt_lora_get(a, 0, LT_LORA_Q)->r == 5);
    lt_lora_free(a);
    cr.rslora = false;
    CHECK_OK(lt_lora_create(&mc, &cr, pool, &a));
    if (a) CHECK(lt_lora_get(a, 0, LT_LORA_Q)->scale == (float)(7.0 / 5.0));
    lt_lora_free(a);
}

/* Naive float64 forward + backward with the BF16 weights. */
typedef struct ref_out {
    double *y, *dx, *ga, *gb;
} ref_out;

static void naive(const lt_lora_mod *m, const float *x, const float *y0, const float *dy, int64_t T, ref_out *o) {
    const int64_t r = m->r, in = m->in, out = m->out;
    const double s = m->scale;
    double *xa = calloc((size_t)(T * r), 8), *dxa = calloc((size_t)(T * r), 8);
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < r; j++) {
            double acc = 0;
            for (int64_t i = 0; i < in; i++) acc += (double)x[t * in + i] * lt_bf16_to_f32(m->a_bf16[j * in + i]);
            xa[t * r + j] = acc;
        }
    for (int64_t t = 0; t < T; t++)
        for (int64_t k = 0; k < out; k++) {
            double acc = 0;
            for (int64_t j = 0; j < r; j++) acc += xa[t * r + j] * lt_bf16_to_f32(m->b_bf16[k * r + j]);
            o->y[t * out + k] = y0[t * out + k] + s * acc;
        }
    for (int64_t k = 0; k < out; k++)
        for (int64_t j = 0; j < r; j++) {
            double acc = 0;
            for (int64_t t = 0; t < T; t++) acc += dy[t * out + k] * xa[t * r + j];
            o->gb[k * r + j] = s * acc;
        }
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < r; j++) {
            double acc = 0;
            for (int64_t k = 0; k < out; k++) acc += dy[t * out + k] * (double)lt_bf16_to_f32(m->b_bf16[k * r + j]);
            dxa[t * r + j] = s * acc;
        }
    for (int64_t j = 0; j < r; j++)
        for (int64_t i = 0; i < in; i++) {
            double acc = 0;
            for (int64_t t = 0; t < T; t++) acc += dxa[t * r + j] * x[t * in + i];
            o->ga[j * in + i] = acc;
        }
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < in; i++) {
            double acc = 0;
            for (int64_t j = 0; j < r; j++) acc += dxa[t * r + j] * lt_bf16_to_f32(m->a_bf16[j * in + i]);
            o->dx[t * in + i] = acc;
        }
    free(xa);
    free(dxa);
}

/* Random masters in A and B, then sync. */
static void randomize(lt_lora *a, lt_rng *g) {
    for (int64_t l = 0; l < 3; l++)
        for (int m = 0; m < LT_LORA_N_MODULES; m++) {
            lt_lora_mod *md = lt_lora_get_mut(a, l, (lt_lora_module)m);
            if (!md) continue;
            fill(g, md->a, md->r * md->in, 0.1f);
            fill(g, md->b, md->out * md->r, 0.1f);
        }
    lt_lora_sync_bf16(a);
}

typedef struct run_out {
    float *y, *dx, *xa, *ga, *gb;
} run_out;

static void run_once(const lt_lora_mod *cm, lt_lora_mod *m, const float *x, const float *y0, const float *dy, int64_t T,
                     bool with_xa, run_out *o, float *scratch) {
    const lt_backend *be = lt_backend_cpu();
    memcpy(o->y, y0, (size_t)(T * m->out) * 4);
    memset(o->dx, 0, (size_t)(T * m->in) * 4);
    memset(m->ga, 0, (size_t)(m->r * m->in) * 4);
    memset(m->gb, 0, (size_t)(m->out * m->r) * 4);
    lt_lora_forward(be, cm, x, o->y, T, with_xa ? o->xa : NULL);
    lt_lora_backward(be, m, x, dy, with_xa ? o->xa : NULL, o->dx, T, scratch);
    memcpy(o->ga, m->ga, (size_t)(m->r * m->in) * 4);
    memcpy(o->gb, m->gb, (size_t)(m->out * m->r) * 4);
}

static void run_alloc(run_out *o, int64_t T, int64_t in, int64_t out, int64_t r) {
    o->y = malloc((size_t)(T * out) * 4);
    o->dx = malloc((size_t)(T * in) * 4);
    o->xa = malloc((size_t)(T * r) * 4);
    o->ga = malloc((size_t)(r * in) * 4);
    o->gb = malloc((size_t)(out * r) * 4);
}

static void run_free(run_out *o) {
    free(o->y);
    free(o->dx);
    free(o->xa);
    free(o->ga);
    free(o->gb);
}

static bool run_same(const run_out *p, const run_out *q, int64_t T, int64_t in, int64_t out, int64_t r) {
    return memcmp(p->y, q->y, (size_t)(T * out) * 4) == 0 && memcmp(p->dx, q->dx, (size_t)(T * in) * 4) == 0 &&
           memcmp(p->ga, q->ga, (size_t)(r * in) * 4) == 0 && memcmp(p->gb, q->gb, (size_t)(out * r) * 4) == 0;
}

static void test_numerics(lt_pool *pool) {
    const lt_model_config mc = small_cfg();
    const lt_backend *be = lt_backend_cpu();
    lt_rng g;
    lt_rng_init(&g, 99);
    static const int ranks[2] = {1, 8};
    static const int64_t Ts[4] = {1, 5, 70, 200}; /* 200 > 128: forward without xa runs in two chunks */
    static const lt_lora_module mods[4] = {LT_LORA_Q, LT_LORA_O, LT_LORA_DOWN, LT_LORA_K};
    double worst = 0;
    for (int ri = 0; ri < 2; ri++) {
        lt_lora_cfg c = {.targets = LT_LORA_ALL_LINEAR, .r = ranks[ri], .alpha = 3, .seed = 5};
        lt_lora *a = NULL;
        CHECK_OK(lt_lora_create(&mc, &c, pool, &a));
        if (!a) return;

        /* B = 0: forward leaves y unchanged, bit for bit */
        {
            const lt_lora_mod *m = lt_lora_get(a, 1, LT_LORA_GATE);
            const int64_t T = 5;
            float *x = malloc((size_t)(T * m->in) * 4), *y = malloc((size_t)(T * m->out) * 4),
                  *y0 = malloc((size_t)(T * m->out) * 4);
            fill(&g, x, T * m->in, 1);
            fill(&g, y0, T * m->out, 1);
            memcpy(y, y0, (size_t)(T * m->out) * 4);
            lt_lora_forward(be, m, x, y, T, NULL);
            CHECK(memcmp(y, y0, (size_t)(T * m->out) * 4) == 0);
            free(x);
            free(y);
            free(y0);
        }

        randomize(a, &g);
        for (int mi = 0; mi < 4; mi++) {
            for (int ti = 0; ti < 4; ti++) {
                lt_lora_mod *m = lt_lora_get_mut(a, 2, mods[mi]);
                const int64_t T = Ts[ti], in = m->in, out = m->out, r = m->r;
                float *x = malloc((size_t)(T * in) * 4), *y0 = malloc((size_t)(T * out) * 4),
                      *dy = malloc((size_t)(T * out) * 4), *scratch = malloc((size_t)(T * r) * 4);
                fill(&g, x, T * in, 1);
                fill(&g, y0, T * out, 0.05f); /* the base output, comparable to the branch's */
                fill(&g, dy, T * out, 1);
                ref_out ro = {calloc((size_t)(T * out), 8), calloc((size_t)(T * in), 8), calloc((size_t)(r * in), 8),
                              calloc((size_t)(out * r), 8)};
                naive(m, x, y0, dy, T, &ro);
                run_out p, q;
                run_alloc(&p, T, in, out, r);
                run_alloc(&q, T, in, out, r);
                lt_threads_set(1);
                run_once(m, m, x, y0, dy, T, true, &p, scratch);
                /* f32 GEMMs of <= 300-term sums whose blocked error grows ~sqrt(K) * 6e-8 relative to
                 * the largest output (the worst measured is printed below: 7.6e-7); 1e-5 leaves over
                 * 10x headroom yet catches any wrong scale, transpose or missing term (>= 1e-3). */
                const double ey = rel_err(p.y, ro.y, T * out), edx = rel_err(p.dx, ro.dx, T * in),
                             ega = rel_err(p.ga, ro.ga, r * in), egb = rel_err(p.gb, ro.gb, out * r);
                worst = fmax(worst, fmax(fmax(ey, edx), fmax(ega, egb)));
                CHECKF(ey <= 1e-5 && edx <= 1e-5 && ega <= 1e-5 && egb <= 1e-5,
                       "%s r %lld T %lld: y %.3g dx %.3g ga %.3g gb %.3g", lt_lora_module_name(m->module), (long long)r,
                       (long long)T, ey, edx, ega, egb);
                /* xa NULL (recomputed) gives the same bits; so do 2 and 3 threads */
                run_once(m, m, x, y0, dy, T, false, &q, scratch);
                CHECKF(run_same(&p, &q, T, in, out, r), "xa NULL differs: %s T %lld", lt_lora_module_name(m->module),
                       (long long)T);
                for (int nt = 2; nt <= 3; nt++) {
                    lt_threads_set(nt);
                    run_once(m, m, x, y0, dy, T, ti % 2 == 0, &q, scratch);
                    CHECKF(run_same(&p, &q, T, in, out, r), "%d threads differ: %s T %lld", nt,
                           lt_lora_module_name(m->module), (long long)T);
                }
                lt_threads_set(1);
                /* dx == NULL: the weight gradients alone, unchanged */
                memset(m->ga, 0, (size_t)(r * in) * 4);
                memset(m->gb, 0, (size_t)(out * r) * 4);
                lt_lora_backward(be, m, x, dy, p.xa, NULL, T, scratch);
                CHECK(memcmp(m->ga, p.ga, (size_t)(r * in) * 4) == 0 &&
                      memcmp(m->gb, p.gb, (size_t)(out * r) * 4) == 0);
                /* accumulation: a second backward with another dy adds its gradients */
                float *dy2 = malloc((size_t)(T * out) * 4);
                fill(&g, dy2, T * out, 1);
                run_once(m, m, x, y0, dy2, T, true, &q, scratch); /* q: grads of dy2 alone */
                memset(m->ga, 0, (size_t)(r * in) * 4);
                memset(m->gb, 0, (size_t)(out * r) * 4);
                lt_lora_backward(be, m, x, dy, p.xa, NULL, T, scratch);
                lt_lora_backward(be, m, x, dy2, p.xa, NULL, T, scratch);
                double eacc = 0, macc = 0;
                for (int64_t i = 0; i < r * in; i++) {
                    eacc = fmax(eacc, fabs((double)m->ga[i] - ((double)p.ga[i] + q.ga[i])));
                    macc = fmax(macc, fabs((double)p.ga[i] + q.ga[i]));
                }
                for (int64_t i = 0; i < out * r; i++) {
                    eacc = fmax(eacc, fabs((double)m->gb[i] - ((double)p.gb[i] + q.gb[i])));
                    macc = fmax(macc, fabs((double)p.gb[i] + q.gb[i]));
                }
                /* one f32 rounding of the sum (and possibly a regrouped GEMM accumulation): 1e-6 of
                 * the largest gradient; a dropped or overwritten call is off by ~50% */
                CHECKF(eacc <= 1e-6 * macc, "accumulation err %g of %g", eacc, macc);
                free(dy2);
                run_free(&p);
                run_free(&q);
                free(ro.y);
                free(ro.dx);
                free(ro.ga);
                free(ro.gb);
                free(x);
                free(y0);
                free(dy);
                free(scratch);
            }
        }
        lt_lora_free(a);
    }
    printf("forward/backward vs float64: worst relative error %.3g\n", worst);
}

/* Loss L = sum(w .* y) in float64 with A, B the BF16 values, perturbed in double. */
static double loss_d(const double *A, const double *B, const float *x, const float *w, int64_t T, int64_t in,
                     int64_t out, int64_t r, double s) {
    double L = 0;
    for (int64_t t = 0; t < T; t++) {
        double xa[8];
        for (int64_t j = 0; j < r; j++) {
            xa[j] = 0;
            for (int64_t i = 0; i < in; i++) xa[j] += x[t * in + i] * A[j * in + i];
        }
        for (int64_t k = 0; k < out; k++) {
            double acc = 0;
            for (int64_t j = 0; j < r; j++) acc += xa[j] * B[k * r + j];
            L += w[t * out + k] * s * acc;
        }
    }
    return L;
}

/* Central differences of L w.r.t. every A and B entry against loft's f32 ga/gb (dy = w). */
static void test_finite_diff(lt_pool *pool) {
    const lt_model_config mc = small_cfg();
    lt_lora_cfg c = {.targets = 1u << LT_LORA_K, .r = 8, .alpha = 5, .seed = 3};
    lt_lora *a = NULL;
    CHECK_OK(lt_lora_create(&mc, &c, pool, &a));
    if (!a) return;
    lt_rng g;
    lt_rng_init(&g, 4);
    randomize(a, &g);
    lt_lora_mod *m = lt_lora_get_mut(a, 0, LT_LORA_K);
    const int64_t T = 7, in = m->in, out = m->out, r = m->r;
    float *x = malloc((size_t)(T * in) * 4), *w = malloc((size_t)(T * out) * 4), *y = calloc((size_t)(T * out), 4),
          *xa = malloc((size_t)(T * r) * 4), *scratch = malloc((size_t)(T * r) * 4);
    fill(&g, x, T * in, 1);
    fill(&g, w, T * out, 1);
    lt_lora_zero_grad(a);
    lt_lora_forward(lt_backend_cpu(), m, x, y, T, xa);
    lt_lora_backward(lt_backend_cpu(), m, x, w, xa, NULL, T, scratch);
    double *A = malloc((size_t)(r * in) * 8), *B = malloc((size_t)(out * r) * 8);
    for (int64_t i = 0; i < r * in; i++) A[i] = lt_bf16_to_f32(m->a_bf16[i]);
    for (int64_t i = 0; i < out * r; i++) B[i] = lt_bf16_to_f32(m->b_bf16[i]);
    /* L is linear in each entry, so the central difference is exact up to float64 rounding
     * (~1e-16 |L| / h ~ 1e-13 with h = 1e-3); loft's f32 gradients carry ~1e-7 relative error, so
     * 1e-5 of the largest gradient separates them from any wrong formula. */
    const double h = 1e-3, s = m->scale;
    double e = 0, mx = 0;
    for (int64_t i = 0; i < r * in; i += 3) { /* every third entry keeps the run short */
        const double keep = A[i];
        A[i] = keep + h;
        const double lp = loss_d(A, B, x, w, T, in, out, r, s);
        A[i] = keep - h;
        const double lm = loss_d(A, B, x, w, T, in, out, r, s);
        A[i] = keep;
        const double fd = (lp - lm) / (2 * h);
        e = fmax(e, fabs(fd - m->ga[i]));
        mx = fmax(mx, fabs(fd));
    }
    CHECKF(e <= 1e-5 * mx, "ga vs finite differences: %g of %g", e, mx);
    double eb = 0, mxb = 0;
    for (int64_t i = 0; i < out * r; i++) {
        const double keep = B[i];
        B[i] = keep + h;
        const double lp = loss_d(A, B, x, w, T, in, out, r, s);
        B[i] = keep - h;
        const double lm = loss_d(A, B, x, w, T, in, out, r, s);
        B[i] = keep;
        const double fd = (lp - lm) / (2 * h);
        eb = fmax(eb, fabs(fd - m->gb[i]));
        mxb = fmax(mxb, fabs(fd));
    }
    CHECKF(eb <= 1e-5 * mxb, "gb vs finite differences: %g of %g", eb, mxb);
    printf("finite differences: ga err %.3g of %.3g, gb err %.3g of %.3g\n", e, mx, eb, mxb);
    /* zero_grad clears */
    lt_lora_zero_grad(a);
    bool z = true;
    for (int64_t i = 0; i < r * in; i++) z &= m->ga[i] == 0.0f;
    for (int64_t i = 0; i < out * r; i++) z &= m->gb[i] == 0.0f;
    CHECK(z);
    free(A);
    free(B);
    free(x);
    free(w);
    free(y);
    free(xa);
    free(scratch);
    lt_lora_free(a);
}

int main(void) {
    lt_pool *pool = NULL;
    CHECK_OK(lt_pool_create(LT_POOL_DEFAULT_BUDGET, &pool));
    if (!pool) TEST_MAIN_END();
    test_names();
    test_validation(pool);
    test_init(pool);
    test_numerics(pool);
    test_finite_diff(pool);
    CHECK(lt_pool_get_stats(pool).used == 0); /* every adapter freed its blocks */
    lt_pool_destroy(pool);
    TEST_MAIN_END();
}
