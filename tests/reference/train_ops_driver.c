/* Driver for tests/reference/train_ops.sh: writes random inputs and loft's outputs of the CPU
 * training (backward) ops for several shapes, for tools/reference/train_ops_ref.py to recompute
 * with torch autograd in float64.
 *
 *   train_ops_driver OUT_DIR
 *
 * OUT_DIR/cases.txt has one line per case: "op name M K N" (the meaning of M K N per op below);
 * every tensor is OUT_DIR/<name>.<tensor>.f32 (raw little-endian f32, row-major; pos is i32):
 *   matmul_nn  a[M,K] b[K,N] c0[M,N] -> out0 = a@b (beta 0), out1 = c0 + a@b (beta 1)
 *   matmul_tn  a[K,M] b[K,N] c0[M,N] -> out0 = a^T@b, out1 = c0 + a^T@b
 *   qlinear_dx dy[M,N] wd[N,K] (the NF4 / Q8_0 weight dequantized by lt_dequantize_rows) dx0[M,K]
 *              -> out0 = dy@wd, out1 = dx0 + dy@wd
 *   rmsnorm    x[M,K] g[K] dy[M,K] (eps = 1e-5) -> out0 = dx
 *   rope       d[M tokens, N heads, K head_dim] pos[M] (i32) inv_freq[K/2] -> out0 = rope_bwd(d)
 *   swiglu     g[M] u[M] d[M] -> out0 = dgate, out1 = dup
 * Exit status: 0 done, 1 usage or I/O error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_internal.h"
#include "pool/pool.h"

static const char *g_dir;
static FILE *g_cases;
static lt_rng g_rng;

static float *rnd(int64_t n, float scale) {
    float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!p) {
        fprintf(stderr, "train_ops_driver: out of memory\n");
        exit(1);
    }
    for (int64_t i = 0; i < n; i++) p[i] = lt_rng_normal(&g_rng) * scale;
    return p;
}

static void put(const char *name, const char *tensor, const void *data, int64_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.%s.f32", g_dir, name, tensor);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 4, (size_t)n, f) != (size_t)n || fclose(f) != 0) {
        fprintf(stderr, "train_ops_driver: cannot write %s\n", path);
        exit(1);
    }
}

static void gemm_case(int tn, int64_t M, int64_t K, int64_t N) {
    char name[64];
    snprintf(name, sizeof name, "%s_%lldx%lldx%lld", tn ? "tn" : "nn", (long long)M, (long long)K, (long long)N);
    float *a = rnd(M * K, 1.0f), *b = rnd(K * N, 1.0f), *c0 = rnd(M * N, 1.0f), *c = rnd(M * N, 0.0f);
    void (*mm)(const float *, const float *, float *, int64_t, int64_t, int64_t, float) =
        tn ? lt_cpu_matmul_tn : lt_cpu_matmul_nn;
    put(name, "a", a, M * K), put(name, "b", b, K * N), put(name, "c0", c0, M * N);
    mm(a, b, c, M, K, N, 0.0f);
    put(name, "out0", c, M * N);
    memcpy(c, c0, sizeof(float) * (size_t)(M * N));
    mm(a, b, c, M, K, N, 1.0f);
    put(name, "out1", c, M * N);
    fprintf(g_cases, "%s %s %lld %lld %lld\n", tn ? "matmul_tn" : "matmul_nn", name, (long long)M, (long long)K,
            (long long)N);
    free(a), free(b), free(c0), free(c);
}

static void qdx_case(lt_pool *pool, lt_qformat f, int64_t M, int64_t K, int64_t N) {
    char name[64];
    snprintf(name, sizeof name, "qdx_%s_%lldx%lldx%lld", lt_qformat_name(f), (long long)M, (long long)K, (long long)N);
    float *w = rnd(N * K, 0.05f), *wd = rnd(N * K, 0.0f), *dy = rnd(M * N, 1.0f), *dx0 = rnd(M * K, 1.0f);
    float *dx = rnd(M * K, 0.0f), *scratch = NULL;
    lt_qtensor q;
    lt_status st = lt_qtensor_alloc(pool, LT_POOL_WEIGHTS, f, N, K, "ref.weight", &q);
    if (!st) st = lt_quantize(w, "ref.weight", &q);
    if (!st)
        st = lt_pool_alloc(pool, LT_POOL_SCRATCH, lt_qlinear_dx_scratch(M, K, N) * 4, "qdx scratch", (void **)&scratch);
    if (st) {
        fprintf(stderr, "train_ops_driver: %s: %s\n", name, lt_status_msg(st));
        exit(1);
    }
    lt_dequantize_rows(&q, 0, N, wd);
    put(name, "dy", dy, M * N), put(name, "wd", wd, N * K), put(name, "dx0", dx0, M * K);
    lt_cpu_qlinear_dx(dy, &q, dx, M, K, N, 0.0f, scratch);
    put(name, "out0", dx, M * K);
    memcpy(dx, dx0, sizeof(float) * (size_t)(M * K));
    lt_cpu_qlinear_dx(dy, &q, dx, M, K, N, 1.0f, scratch);
    put(name, "out1", dx, M * K);
    fprintf(g_cases, "qlinear_dx %s %lld %lld %lld\n", name, (long long)M, (long long)K, (long long)N);
    lt_pool_free(pool, scratch);
    lt_qtensor_free(pool, &q);
    free(w), free(wd), free(dy), free(dx0), free(dx);
}

static void rms_case(int64_t rows, int64_t dim) {
    char name[64];
    snprintf(name, sizeof name, "rms_%lldx%lld", (long long)rows, (long long)dim);
    float *x = rnd(rows * dim, 1.0f), *g = rnd(dim, 0.3f), *dy = rnd(rows * dim, 1.0f), *dx = rnd(rows * dim, 0.0f);
    for (int64_t i = 0; i < dim; i++) g[i] += 1.0f;
    put(name, "x", x, rows * dim), put(name, "g", g, dim), put(name, "dy", dy, rows * dim);
    lt_cpu_rmsnorm_bwd(x, g, dy, dx, rows, dim, 1e-5f, 0.0f);
    put(name, "out0", dx, rows * dim);
    fprintf(g_cases, "rmsnorm %s %lld %lld 1\n", name, (long long)rows, (long long)dim);
    free(x), free(g), free(dy), free(dx);
}

static void rope_case(int64_t T, int64_t H, int64_t hd) {
    char name[64];
    snprintf(name, sizeof name, "rope_%lldx%lldx%lld", (long long)T, (long long)H, (long long)hd);
    float *d = rnd(T * H * hd, 1.0f), *inv = rnd(hd / 2, 0.0f);
    int32_t *pos = malloc(sizeof(int32_t) * (size_t)T);
    if (!pos) exit(1);
    for (int64_t t = 0; t < T; t++) pos[t] = (int32_t)(t * 37 % 5000); /* up to 5000: large angles too */
    lt_rope_params rp = {.theta = 10000.0, .head_dim = hd};
    lt_rope_inv_freq(&rp, inv);
    put(name, "d", d, T * H * hd), put(name, "pos", pos, T), put(name, "inv_freq", inv, hd / 2);
    lt_cpu_rope_bwd(d, pos, T, H, hd, inv);
    put(name, "out0", d, T * H * hd);
    fprintf(g_cases, "rope %s %lld %lld %lld\n", name, (long long)T, (long long)hd, (long long)H);
    free(d), free(inv), free(pos);
}

static void swiglu_case(int64_t n) {
    char name[64];
    snprintf(name, sizeof name, "swiglu_%lld", (long long)n);
    float *g = rnd(n, 4.0f), *u = rnd(n, 1.0f), *d = rnd(n, 1.0f), *dg = rnd(n, 0.0f), *du = rnd(n, 0.0f);
    put(name, "g", g, n), put(name, "u", u, n), put(name, "d", d, n);
    lt_cpu_swiglu_bwd(g, u, d, dg, du, n);
    put(name, "out0", dg, n), put(name, "out1", du, n);
    fprintf(g_cases, "swiglu %s %lld 1 1\n", name, (long long)n);
    free(g), free(u), free(d), free(dg), free(du);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: train_ops_driver OUT_DIR\n");
        return 1;
    }
    g_dir = argv[1];
    char path[4096];
    snprintf(path, sizeof path, "%s/cases.txt", g_dir);
    g_cases = fopen(path, "w");
    if (!g_cases) {
        fprintf(stderr, "train_ops_driver: cannot write %s\n", path);
        return 1;
    }
    lt_rng_init(&g_rng, 2026);
    lt_backend_cpu();
    /* (M, K, N): odd sizes, single rows, tile edges (GEMM tiles 128 x 256) */
    const int64_t shapes[][3] = {{1, 3, 5}, {7, 300, 65}, {65, 129, 257}, {7, 17, 300}, {130, 64, 3}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int tn = 0; tn <= 1; tn++) gemm_case(tn, shapes[s][0], shapes[s][1], shapes[s][2]);
    lt_pool *pool;
    lt_status st = lt_pool_create(1LL << 30, &pool);
    if (st) {
        fprintf(stderr, "train_ops_driver: %s\n", lt_status_msg(st));
        return 1;
    }
    /* (M, K, N): K a multiple of 64 (the NF4 block), crossing the 128-column tiles; N the
     * 256-row panels */
    const int64_t qs[][3] = {{1, 64, 7}, {7, 320, 300}, {65, 192, 257}};
    for (size_t s = 0; s < sizeof qs / sizeof qs[0]; s++) {
        qdx_case(pool, LT_Q_NF4, qs[s][0], qs[s][1], qs[s][2]);
        qdx_case(pool, LT_Q_Q8_0, qs[s][0], qs[s][1], qs[s][2]);
    }
    lt_pool_destroy(pool);
    rms_case(1, 3), rms_case(7, 300), rms_case(65, 129);
    rope_case(1, 1, 2), rope_case(7, 3, 64), rope_case(65, 4, 128);
    swiglu_case(1), swiglu_case(7), swiglu_case(65 * 300);
    if (fclose(g_cases) != 0) {
        fprintf(stderr, "train_ops_driver: cannot write %s\n", path);
        return 1;
    }
    return 0;
}
