// Causal GQA attention on the GPU, tiled with an online softmax: the T x T scores never exist.
// Same semantics as backend/cpu/cpu_attention{,_train}.c: query t sees key s iff s <= t (cached form:
// s <= n_past + t) and, with a document map, doc[s] == doc[t]; scale = f32(1/sqrt(hd)); lse is the
// natural-log sum-exp of the scaled scores; query head h reads KV head h / (n_heads / n_kv_heads).
//
// Layout of the work (f32 SIMT; a tensor-core version is the next step once this one is measured):
//   a "row group" is 8 consecutive threads of a warp owning one row (a query, or a key in dk/dv):
//   thread j of the group holds dims j, j+8, j+16, ... of that row's vectors in registers (DPT =
//   ceil(hd/8) dims each, DPT <= 32, so hd <= 256). A dot product is 8 partial sums combined by a
//   fixed butterfly (xor 4, 2, 1) inside the group: every thread ends with the same value.
//   - forward: block = 16 queries of one head (128 threads); key tiles of 16 rows of K and V staged
//     in shared memory; per tile the 16 scores, one max, one rescale of the running (m, l, o).
//   - backward: delta[t,h] = dout . out first (one row group per (t,h)); then
//       dq:    block = 16 queries of one head, key tiles in order: p = exp(s - lse), ds = p (dp - delta),
//              dq += ds k; dq *= scale at the end;
//       dk/dv: block = 16 keys of one KV head; for each query head of the group in order and each
//              query tile in order (from the key tile on: causal), with Q, dOut, lse, delta staged:
//              dv += p dout, dk += ds q; dk *= scale at the end.
//     Each output element is owned by one thread and summed in a fixed order: no atomics, the bits
//     do not depend on scheduling (the `deterministic` contract).
// Shared memory: forward and dq stage 2 * 16 * hd floats (K and V tiles), dk/dv 2 * 16 * hd (Q and
// dOut) + 32: at hd = 256 that is 32 KiB, under the 48 KiB default.
#include <cuda_runtime.h>
#include <math.h>

#include "attention.cuh"

#define ROWS 16       // rows (queries or keys) per block
#define TILE 16       // rows per staged tile
#define GROUP 8       // threads per row
#define THREADS (ROWS * GROUP)

static cudaStream_t S(void *s) { return (cudaStream_t)s; }

// The sum over the 8 threads of a row group (lanes aligned to multiples of 8).
__device__ __forceinline__ float group_sum(float v) {
    v += __shfl_xor_sync(0xFFFFFFFFu, v, 4);
    v += __shfl_xor_sync(0xFFFFFFFFu, v, 2);
    v += __shfl_xor_sync(0xFFFFFFFFu, v, 1);
    return v;
}

struct att_args {
    const float *q, *k, *v;
    const int32_t *doc;
    float *out, *lse;
    int64_t Tq;     // queries
    int64_t q_off;  // absolute position of query 0 (n_past in the cached form)
    int64_t Tk;     // keys
    int64_t n_heads, group, hd;
    float scale;
};

__device__ __forceinline__ bool visible(const int32_t *doc, int64_t tq_abs, int64_t s) {
    return s <= tq_abs && (!doc || doc[s] == doc[tq_abs]);
}

// ---------------------------------------------------------------- forward
template <int DPT> __global__ void __launch_bounds__(THREADS) fwd_kernel(att_args a) {
    extern __shared__ float sm[];
    float *Ks = sm, *Vs = sm + TILE * a.hd;
    const int64_t h = blockIdx.y, kvh = h / a.group, hd = a.hd;
    const int row = threadIdx.x / GROUP, j = threadIdx.x % GROUP;
    const int64_t t = (int64_t)blockIdx.x * ROWS + row; // query index (relative)
    const bool live = t < a.Tq;
    const int64_t tabs = a.q_off + (live ? t : a.Tq - 1);
    const int64_t qs = a.n_heads * hd, ks = (a.n_heads / a.group) * hd;
    float q[DPT], o[DPT];
#pragma unroll
    for (int i = 0; i < DPT; i++) {
        const int64_t d = j + GROUP * i;
        q[i] = live && d < hd ? a.q[t * qs + h * hd + d] : 0.0f;
        o[i] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    // keys that any query of the block can see: 0 .. q_off + last query
    const int64_t last = a.q_off + min((int64_t)(blockIdx.x + 1) * ROWS, a.Tq) - 1;
    const int64_t nk = min(last + 1, a.Tk);
    for (int64_t s0 = 0; s0 < nk; s0 += TILE) {
        const int64_t tn = min((int64_t)TILE, nk - s0);
        __syncthreads();
        for (int64_t e = threadIdx.x; e < tn * hd; e += THREADS) {
            const int64_t r = e / hd, d = e - r * hd;
            Ks[r * hd + d] = a.k[(s0 + r) * ks + kvh * hd + d];
            Vs[r * hd + d] = a.v[(s0 + r) * ks + kvh * hd + d];
        }
        __syncthreads();
        float sc[TILE];
        float mt = -INFINITY;
#pragma unroll
        for (int r = 0; r < TILE; r++) {
            float part = 0.0f;
            if (r < tn) {
#pragma unroll
                for (int i = 0; i < DPT; i++) {
                    const int64_t d = j + GROUP * i;
                    if (d < hd) part = fmaf(q[i], Ks[r * hd + d], part);
                }
            }
            const float dot = group_sum(part);
            sc[r] = r < tn && live && visible(a.doc, tabs, s0 + r) ? dot * a.scale : -INFINITY;
            mt = fmaxf(mt, sc[r]);
        }
        if (mt == -INFINITY) continue; // nothing visible to this row in this tile (uniform per group)
        const float mn = fmaxf(m, mt), alpha = expf(m - mn); // m = -inf: alpha = 0
        l *= alpha;
#pragma unroll
        for (int i = 0; i < DPT; i++) o[i] *= alpha;
#pragma unroll
        for (int r = 0; r < TILE; r++) {
            const float p = expf(sc[r] - mn);
            if (p == 0.0f) continue;
            l += p;
#pragma unroll
            for (int i = 0; i < DPT; i++) {
                const int64_t d = j + GROUP * i;
                if (d < hd) o[i] = fmaf(p, Vs[r * hd + d], o[i]);
            }
        }
        m = mn;
    }
    if (!live) return;
    const float inv = 1.0f / l; // l >= 1: the query always sees itself
#pragma unroll
    for (int i = 0; i < DPT; i++) {
        const int64_t d = j + GROUP * i;
        if (d < hd) a.out[t * qs + h * hd + d] = o[i] * inv;
    }
    if (a.lse && j == 0) a.lse[t * a.n_heads + h] = m + logf(l);
}

static int check(int64_t T, int64_t n_heads, int64_t n_kv_heads, int64_t hd) {
    if (n_heads <= 0 || n_kv_heads <= 0 || n_heads % n_kv_heads != 0 || hd <= 0 || hd > 256)
        return (int)cudaErrorInvalidValue;
    if ((T + ROWS - 1) / ROWS > 0x7FFFFFFF || n_heads > 65535) return (int)cudaErrorInvalidValue;
    return 0;
}

template <int DPT> static int launch_fwd(const att_args &a, cudaStream_t s) {
    dim3 grid((unsigned)((a.Tq + ROWS - 1) / ROWS), (unsigned)a.n_heads);
    fwd_kernel<DPT><<<grid, THREADS, 2 * TILE * a.hd * sizeof(float), s>>>(a);
    return (int)cudaGetLastError();
}

static int dispatch_fwd(const att_args &a, cudaStream_t s) {
    if (a.hd <= 32) return launch_fwd<4>(a, s);
    if (a.hd <= 64) return launch_fwd<8>(a, s);
    if (a.hd <= 128) return launch_fwd<16>(a, s);
    return launch_fwd<32>(a, s);
}

extern "C" int lt_cuda_attention_fwd(const float *q, const float *k, const float *v, const int32_t *doc, float *out,
                                     float *lse, int64_t T, int64_t n_heads, int64_t n_kv_heads, int64_t hd,
                                     void *stream) {
    if (T <= 0) return 0;
    int rc = check(T, n_heads, n_kv_heads, hd);
    if (rc) return rc;
    att_args a = {q, k, v, doc, out, lse, T, 0, T, n_heads, n_heads / n_kv_heads, hd, (float)(1.0 / sqrt((double)hd))};
    return dispatch_fwd(a, S(stream));
}

extern "C" int lt_cuda_attention_cached(const float *q, const float *k, const float *v, float *out, int64_t T,
                                        int64_t n_past, int64_t n_heads, int64_t n_kv_heads, int64_t hd,
                                        void *stream) {
    if (T <= 0) return 0;
    int rc = check(T, n_heads, n_kv_heads, hd);
    if (rc || n_past < 0) return rc ? rc : (int)cudaErrorInvalidValue;
    att_args a = {q,     k, v, NULL, out, NULL, T, n_past, n_past + T, n_heads, n_heads / n_kv_heads, hd,
                  (float)(1.0 / sqrt((double)hd))};
    return dispatch_fwd(a, S(stream));
}

// ---------------------------------------------------------------- backward
struct bwd_args {
    const float *q, *k, *v, *out, *lse, *dout;
    const int32_t *doc;
    float *dq, *dk, *dv, *delta;
    int64_t T, n_heads, n_kv, group, hd;
    float scale;
};

// delta[t, h] = dout[t,h,:] . out[t,h,:], one row group per (t, h).
template <int DPT> __global__ void __launch_bounds__(THREADS) delta_kernel(bwd_args a) {
    const int64_t rowid = (int64_t)blockIdx.x * ROWS + threadIdx.x / GROUP; // t * n_heads + h
    const int j = threadIdx.x % GROUP;
    const bool live = rowid < a.T * a.n_heads;
    float part = 0.0f;
    if (live)
#pragma unroll
        for (int i = 0; i < DPT; i++) {
            const int64_t d = j + GROUP * i;
            if (d < a.hd) part = fmaf(a.dout[rowid * a.hd + d], a.out[rowid * a.hd + d], part);
        }
    const float s = group_sum(part);
    if (live && j == 0) a.delta[rowid] = s;
}

template <int DPT> __global__ void __launch_bounds__(THREADS) dq_kernel(bwd_args a) {
    extern __shared__ float sm[];
    float *Ks = sm, *Vs = sm + TILE * a.hd;
    const int64_t h = blockIdx.y, kvh = h / a.group, hd = a.hd;
    const int row = threadIdx.x / GROUP, j = threadIdx.x % GROUP;
    const int64_t t = (int64_t)blockIdx.x * ROWS + row;
    const bool live = t < a.T;
    const int64_t tt = live ? t : a.T - 1;
    const int64_t qs = a.n_heads * hd, ks = a.n_kv * hd;
    float q[DPT], g[DPT], dq[DPT];
#pragma unroll
    for (int i = 0; i < DPT; i++) {
        const int64_t d = j + GROUP * i;
        q[i] = d < hd ? a.q[tt * qs + h * hd + d] : 0.0f;
        g[i] = d < hd ? a.dout[tt * qs + h * hd + d] : 0.0f;
        dq[i] = 0.0f;
    }
    const float lse = a.lse[tt * a.n_heads + h], delta = a.delta[tt * a.n_heads + h];
    const int64_t nk = min((int64_t)(blockIdx.x + 1) * ROWS, a.T);
    for (int64_t s0 = 0; s0 < nk; s0 += TILE) {
        const int64_t tn = min((int64_t)TILE, nk - s0);
        __syncthreads();
        for (int64_t e = threadIdx.x; e < tn * hd; e += THREADS) {
            const int64_t r = e / hd, d = e - r * hd;
            Ks[r * hd + d] = a.k[(s0 + r) * ks + kvh * hd + d];
            Vs[r * hd + d] = a.v[(s0 + r) * ks + kvh * hd + d];
        }
        __syncthreads();
        for (int r = 0; r < tn; r++) {
            float ps = 0.0f, pd = 0.0f;
#pragma unroll
            for (int i = 0; i < DPT; i++) {
                const int64_t d = j + GROUP * i;
                if (d < hd) {
                    ps = fmaf(q[i], Ks[r * hd + d], ps);
                    pd = fmaf(g[i], Vs[r * hd + d], pd);
                }
            }
            const float sdot = group_sum(ps), dp = group_sum(pd);
            if (!live || !visible(a.doc, t, s0 + r)) continue;
            const float p = expf(sdot * a.scale - lse), ds = p * (dp - delta);
#pragma unroll
            for (int i = 0; i < DPT; i++) {
                const int64_t d = j + GROUP * i;
                if (d < hd) dq[i] = fmaf(ds, Ks[r * hd + d], dq[i]);
            }
        }
    }
    if (!live) return;
#pragma unroll
    for (int i = 0; i < DPT; i++) {
        const int64_t d = j + GROUP * i;
        if (d < hd) a.dq[t * qs + h * hd + d] = dq[i] * a.scale;
    }
}

template <int DPT> __global__ void __launch_bounds__(THREADS) dkdv_kernel(bwd_args a) {
    extern __shared__ float sm[];
    float *Qs = sm, *Gs = sm + TILE * a.hd, *Ls = Gs + TILE * a.hd, *Ds = Ls + TILE;
    const int64_t g = blockIdx.y, hd = a.hd;
    const int row = threadIdx.x / GROUP, j = threadIdx.x % GROUP;
    const int64_t s = (int64_t)blockIdx.x * ROWS + row; // key index
    const bool live = s < a.T;
    const int64_t ss = live ? s : a.T - 1;
    const int64_t qs = a.n_heads * hd, ks = a.n_kv * hd;
    float k[DPT], v[DPT], dk[DPT], dv[DPT];
#pragma unroll
    for (int i = 0; i < DPT; i++) {
        const int64_t d = j + GROUP * i;
        k[i] = d < hd ? a.k[ss * ks + g * hd + d] : 0.0f;
        v[i] = d < hd ? a.v[ss * ks + g * hd + d] : 0.0f;
        dk[i] = 0.0f;
        dv[i] = 0.0f;
    }
    const int64_t first_q = (int64_t)blockIdx.x * ROWS; // causal: no query before the tile's first key
    for (int64_t h = g * a.group; h < (g + 1) * a.group; h++) {
        for (int64_t t0 = first_q; t0 < a.T; t0 += TILE) {
            const int64_t tn = min((int64_t)TILE, a.T - t0);
            __syncthreads();
            for (int64_t e = threadIdx.x; e < tn * hd; e += THREADS) {
                const int64_t r = e / hd, d = e - r * hd;
                Qs[r * hd + d] = a.q[(t0 + r) * qs + h * hd + d];
                Gs[r * hd + d] = a.dout[(t0 + r) * qs + h * hd + d];
            }
            for (int64_t r = threadIdx.x; r < tn; r += THREADS) {
                Ls[r] = a.lse[(t0 + r) * a.n_heads + h];
                Ds[r] = a.delta[(t0 + r) * a.n_heads + h];
            }
            __syncthreads();
            for (int r = 0; r < tn; r++) {
                float ps = 0.0f, pd = 0.0f;
#pragma unroll
                for (int i = 0; i < DPT; i++) {
                    const int64_t d = j + GROUP * i;
                    if (d < hd) {
                        ps = fmaf(k[i], Qs[r * hd + d], ps);
                        pd = fmaf(v[i], Gs[r * hd + d], pd);
                    }
                }
                const float sdot = group_sum(ps), dp = group_sum(pd);
                if (!live || !visible(a.doc, t0 + r, s)) continue;
                const float p = expf(sdot * a.scale - Ls[r]), ds = p * (dp - Ds[r]);
#pragma unroll
                for (int i = 0; i < DPT; i++) {
                    const int64_t d = j + GROUP * i;
                    if (d < hd) {
                        dv[i] = fmaf(p, Gs[r * hd + d], dv[i]);
                        dk[i] = fmaf(ds, Qs[r * hd + d], dk[i]);
                    }
                }
            }
        }
    }
    if (!live) return;
#pragma unroll
    for (int i = 0; i < DPT; i++) {
        const int64_t d = j + GROUP * i;
        if (d < hd) {
            a.dk[s * ks + g * hd + d] = dk[i] * a.scale;
            a.dv[s * ks + g * hd + d] = dv[i];
        }
    }
}

template <int DPT> static int launch_bwd(const bwd_args &a, cudaStream_t s) {
    const int64_t rows = a.T * a.n_heads;
    delta_kernel<DPT><<<(unsigned)((rows + ROWS - 1) / ROWS), THREADS, 0, s>>>(a);
    int rc = (int)cudaGetLastError();
    if (rc) return rc;
    const size_t smem = 2 * TILE * a.hd * sizeof(float);
    dq_kernel<DPT><<<dim3((unsigned)((a.T + ROWS - 1) / ROWS), (unsigned)a.n_heads), THREADS, smem, s>>>(a);
    rc = (int)cudaGetLastError();
    if (rc) return rc;
    dkdv_kernel<DPT><<<dim3((unsigned)((a.T + ROWS - 1) / ROWS), (unsigned)a.n_kv), THREADS,
                       smem + 2 * TILE * sizeof(float), s>>>(a);
    return (int)cudaGetLastError();
}

extern "C" int64_t lt_cuda_attention_bwd_scratch(int64_t T, int64_t n_heads) { return T * n_heads; }

extern "C" int lt_cuda_attention_bwd(const float *q, const float *k, const float *v, const int32_t *doc,
                                     const float *out, const float *lse, const float *dout, float *dq, float *dk,
                                     float *dv, int64_t T, int64_t n_heads, int64_t n_kv_heads, int64_t hd,
                                     float *scratch, void *stream) {
    if (T <= 0) return 0;
    int rc = check(T, n_heads, n_kv_heads, hd);
    if (rc) return rc;
    if (!scratch || T * n_heads / ROWS + 1 > 0x7FFFFFFF) return (int)cudaErrorInvalidValue;
    bwd_args a = {q,  k,  v,  out,     lse, dout,       doc, dq, dk, dv, scratch, T, n_heads, n_kv_heads,
                  n_heads / n_kv_heads, hd, (float)(1.0 / sqrt((double)hd))};
    cudaStream_t s = S(stream);
    if (hd <= 32) return launch_bwd<4>(a, s);
    if (hd <= 64) return launch_bwd<8>(a, s);
    if (hd <= 128) return launch_bwd<16>(a, s);
    return launch_bwd<32>(a, s);
}
