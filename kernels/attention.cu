// Causal GQA attention on the GPU (f32 SIMT, flash-attention style): the T x T scores never exist in
// memory. Same semantics as backend/cpu/cpu_attention{,_train}.c: query t sees key s iff s <= t
// (cached form: s <= n_past + t) and, with a document map, doc[s] == doc[t]; scale = f32(1/sqrt(hd));
// lse = natural-log sum-exp of the scaled scores; query head h reads KV head h / (n_heads / n_kv_heads).
// Everything is computed and accumulated in f32 (expf/logf, no fast-math intrinsics).
//
// Tiling (all kernels): a block is 256 threads seen as a 16 x 16 grid (ty = tid / 16, tx = tid % 16);
// tiles are 64 rows. A 64 x 64 score tile is register-blocked: thread (ty, tx) owns rows ty + 16 i and
// columns tx + 16 j (i, j < 4), so one k-step costs 8 shared loads for 16 FMAs. A 64 x hd accumulator
// (out, dq, dk, dv) is owned the same way: rows ty + 16 i, dims tx + 16 j (j < HD / 16), where HD is hd
// rounded up to a compile-time class (16, 32, 64, 96, 128, 192, 256); dims >= hd are zero padding. The
// two rows a warp touches share every broadcast load, and the 16 columns are consecutive words (or
// rows of stride 17 / 33 / 65 floats), so the shared loads are free of bank conflicts.
//
//  - forward (and the cached inference form, which is the same kernel with a query position offset,
//    no doc map and no lse): block = (head, 64-query tile); heavy (late) tiles are launched first.
//    For each key tile up to the causal diagonal: S = Q K^T over hd in chunks of DK = min(32, HD)
//    (Q and K chunks staged [64][DK+1]); mask and scale; per row a running max m, running sum l and
//    rescaled accumulator o (online softmax; the row max is a butterfly over the 16 lanes of a
//    half-warp, l is kept per thread and summed over the 16 lanes once at the end); P goes to shared
//    [64][65] and o += P V with V staged in chunks of VR full rows [VR][HD] (VR = 64, 32 or 16 by HD).
//    out = o / l, lse = m + log(l).
//  - backward: delta[t,h] = dout[t,h] . out[t,h] first (one warp per row, into scratch). Then
//      dk/dv: block = (KV head, 64-key tile). For each query head of the group in order and each
//             64-query tile from the key tile on (causal) in order: S^T = K Q^T and dP^T = V dO^T
//             (K, V, Q, dO chunks of 16 dims staged [64][17]); p = exp(scale s - lse), ds = p (dp -
//             delta); P to shared, dv += P dO (dO staged [VR][HD]); then dS to shared, dk += dS Q.
//             dk *= scale at the end.
//      dq:    block = (head, 64-query tile), key tiles in order up to the diagonal: the same S and dP,
//             dS to shared, dq += dS K (K staged [VR][HD]); dq *= scale at the end.
//    Tile skipping: key (query) tiles past the causal diagonal are never visited. With a doc map a
//    tile pair is skipped when no key's doc (query's doc) lies inside the [min, max] doc range of the
//    block's own queries (keys): such a pair cannot contain an equal-doc pair, whatever the doc
//    order, so the skip is exact; other pairs are masked per element.
//
// Shared memory per block (dynamic, floats; 48 KiB default limit, no opt-in needed):
//   forward:   max(2*64*(DK+1), VR*HD) + 64*65 = 8384 floats (32.75 KiB) for HD >= 32, 6336 (24.75 KiB)
//              for HD = 16
//   dk/dv, dq: max(4*64*17, VR*HD) + 64*65     = 8512 floats (33.25 KiB) for every HD
//   delta:     none.
// Launches: 256 threads per block; forward and dq grid (n_heads, ceil(T/64)), dk/dv (n_kv_heads,
// ceil(T/64)), delta ceil(T*n_heads/8). ceil(T/64) <= 65535 (grid.y) is checked.
//
// Determinism: no atomics. Every output element (out, lse, dq, dk, dv, delta) is written by exactly
// one thread of one block, and its sum runs in a fixed order (hd chunks in order, key/query tiles in
// order, heads of a group in order, butterflies of fixed shape), so the bits depend only on the
// shapes, never on scheduling. No thread leaves a kernel early: every barrier and shuffle is reached
// by the whole block / warp.
#include <cuda_runtime.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>

#include "attention.cuh"

extern __shared__ float att_smem[];

namespace {

constexpr int BT = 64;       // rows (queries or keys) per tile
constexpr int NT = 256;      // threads per block: a 16 x 16 grid
constexpr int LDT = BT + 1;  // leading dimension of the shared P / dS tile
constexpr int DKB = 16;      // hd chunk of the backward score products
constexpr int LDKB = DKB + 1;

constexpr int cmax(int a, int b) { return a > b ? a : b; }

// Compile-time shape of one hd class.
template <int HD> struct Cfg {
    static constexpr int J = HD / 16;                                    // accumulator columns per thread
    static constexpr int DKF = HD < 32 ? HD : 32;                        // hd chunk of the forward S = Q K^T
    static constexpr int LDKF = DKF + 1;
    static constexpr int VR = HD <= 64 ? 64 : (HD <= 128 ? 32 : 16);     // full rows per [VR][HD] staging
    static constexpr int FWD_A = cmax(2 * BT * LDKF, VR * HD);           // Q/K chunks, or V rows
    static constexpr int BWD_A = cmax(4 * BT * LDKB, VR * HD);           // K/V/Q/dO chunks, or full rows
    static constexpr size_t FWD_SMEM = (size_t)(FWD_A + BT * LDT) * sizeof(float);
    static constexpr size_t BWD_SMEM = (size_t)(BWD_A + BT * LDT) * sizeof(float);
    static_assert(HD % 16 == 0 && HD <= 256, "hd class");
    static_assert(BT % VR == 0, "VR divides the tile");
    static_assert(FWD_SMEM <= 48 * 1024 && BWD_SMEM <= 48 * 1024, "shared memory over the default limit");
};

__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// Butterflies over the 16 lanes of a half-warp (lanes with the same ty): every lane ends with the
// same value (each step adds / maxes a commutative pair).
__device__ __forceinline__ float half_max(float v) {
#pragma unroll
    for (int off = 8; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, off));
    return v;
}
__device__ __forceinline__ float half_sum(float v) {
#pragma unroll
    for (int off = 8; off > 0; off >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, off);
    return v;
}

// dst[r * LD + c] = src[r * stride + c] for r < nrows, c < ncols; 0 in the rest of ROWS x COLS.
template <int ROWS, int COLS, int LD>
__device__ __forceinline__ void stage(float *dst, const float *__restrict__ src, int64_t stride, int nrows,
                                      int ncols, int tid) {
#pragma unroll 4
    for (int e = tid; e < ROWS * COLS; e += NT) {
        const int r = e / COLS, c = e - r * COLS;
        dst[r * LD + c] = (r < nrows && c < ncols) ? src[(int64_t)r * stride + c] : 0.0f;
    }
}

// ---------------------------------------------------------------- forward

struct FwdArgs {
    const float *q, *k, *v;
    const int32_t *doc; // NULL: one document
    float *out, *lse;   // lse NULL: not written (cached form)
    int64_t Tq;         // queries
    int64_t q_off;      // absolute position of query 0 (n_past in the cached form)
    int64_t n_heads, group, hd, kv_stride;
    int ntiles;         // query tiles
    float scale;
};

template <int HD> __global__ void __launch_bounds__(NT) att_fwd_kernel(const FwdArgs a) {
    using C = Cfg<HD>;
    constexpr int J = C::J, DK = C::DKF, LDK = C::LDKF, VR = C::VR;
    float *Qc = att_smem, *Kc = att_smem + BT * LDK; // S phase
    float *Vs = att_smem;                            // P V phase (same region)
    float *Ps = att_smem + C::FWD_A;

    const int tid = (int)threadIdx.x, ty = tid >> 4, tx = tid & 15;
    const int64_t h = blockIdx.x, kvh = h / a.group, hd = a.hd, qs = a.n_heads * hd, kvs = a.kv_stride;
    const int64_t qt0 = (int64_t)(a.ntiles - 1 - (int)blockIdx.y) * BT; // late (heavy) tiles first
    const int nq = (int)min64(BT, a.Tq - qt0);
    const int64_t qabs0 = a.q_off + qt0; // absolute position of the tile's first query
    const float *qbase = a.q + qt0 * qs + h * hd;
    const float *kbase = a.k + kvh * hd, *vbase = a.v + kvh * hd;

    int qd[4] = {0, 0, 0, 0};
    int qmin = INT_MAX, qmax = INT_MIN;
    if (a.doc) {
#pragma unroll
        for (int i = 0; i < 4; i++)
            if (ty + 16 * i < nq) qd[i] = a.doc[qabs0 + ty + 16 * i];
        for (int r = 0; r < nq; r++) {
            const int d = a.doc[qabs0 + r];
            qmin = min(qmin, d);
            qmax = max(qmax, d);
        }
    }

    float o[4][J], m[4], l[4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
#pragma unroll
        for (int j = 0; j < J; j++) o[i][j] = 0.0f;
    }

    const int64_t nkeys = qabs0 + nq; // keys 0 .. the tile's last query position
    for (int64_t s0 = 0; s0 < nkeys; s0 += BT) {
        const int kn = (int)min64(BT, nkeys - s0);
        int kd[4] = {0, 0, 0, 0};
        if (a.doc) { // uniform branch
            bool hit = false;
            if (tid < kn) {
                const int d = a.doc[s0 + tid];
                hit = d >= qmin && d <= qmax;
            }
            if (!__syncthreads_or(hit)) continue; // no key of this tile shares a doc with the queries
#pragma unroll
            for (int j = 0; j < 4; j++)
                if (tx + 16 * j < kn) kd[j] = a.doc[s0 + tx + 16 * j];
        }

        // S = Q K^T, hd in chunks of DK
        float s[4][4];
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) s[i][j] = 0.0f;
        for (int64_t d0 = 0; d0 < hd; d0 += DK) {
            const int dn = (int)min64(DK, hd - d0);
            __syncthreads(); // previous readers of the region are done
            stage<BT, DK, LDK>(Qc, qbase + d0, qs, nq, dn, tid);
            stage<BT, DK, LDK>(Kc, kbase + s0 * kvs + d0, kvs, kn, dn, tid);
            __syncthreads();
#pragma unroll
            for (int dd = 0; dd < DK; dd++) {
                float av[4], bv[4];
#pragma unroll
                for (int i = 0; i < 4; i++) av[i] = Qc[(ty + 16 * i) * LDK + dd];
#pragma unroll
                for (int j = 0; j < 4; j++) bv[j] = Kc[(tx + 16 * j) * LDK + dd];
#pragma unroll
                for (int i = 0; i < 4; i++)
#pragma unroll
                    for (int j = 0; j < 4; j++) s[i][j] = fmaf(av[i], bv[j], s[i][j]);
            }
        }

        // mask, scale, online softmax (row statistics shared by the 16 lanes of a half-warp)
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int r = ty + 16 * i;
            const int64_t tq = qabs0 + r;
            float mt = -INFINITY;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int c = tx + 16 * j;
                const bool vis = r < nq && c < kn && s0 + c <= tq && (!a.doc || kd[j] == qd[i]);
                s[i][j] = vis ? s[i][j] * a.scale : -INFINITY;
                mt = fmaxf(mt, s[i][j]);
            }
            mt = half_max(mt);
            const float mn = fmaxf(m[i], mt);
            // mn = -inf: nothing seen yet (o, l are 0); m = -inf < mn: expf(-inf) = 0
            const float alpha = mn == -INFINITY ? 1.0f : expf(m[i] - mn);
            float ls = 0.0f;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const float p = s[i][j] == -INFINITY ? 0.0f : expf(s[i][j] - mn);
                s[i][j] = p;
                ls += p;
            }
            l[i] = fmaf(l[i], alpha, ls);
#pragma unroll
            for (int j = 0; j < J; j++) o[i][j] *= alpha;
            m[i] = mn;
        }
        // Ps is free: its last readers (previous tile) passed the barriers of the S phase
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) Ps[(ty + 16 * i) * LDT + tx + 16 * j] = s[i][j];

        // o += P V, V in chunks of VR rows
        for (int c0 = 0; c0 < kn; c0 += VR) {
            __syncthreads(); // Q/K chunk (or previous V chunk) readers are done
            stage<VR, HD, HD>(Vs, vbase + (s0 + c0) * kvs, kvs, min(VR, kn - c0), (int)hd, tid);
            __syncthreads(); // V chunk and P visible
#pragma unroll 4
            for (int c = 0; c < VR; c++) {
                float pv[4], vv[J];
#pragma unroll
                for (int i = 0; i < 4; i++) pv[i] = Ps[(ty + 16 * i) * LDT + c0 + c];
#pragma unroll
                for (int j = 0; j < J; j++) vv[j] = Vs[c * HD + tx + 16 * j];
#pragma unroll
                for (int i = 0; i < 4; i++)
#pragma unroll
                    for (int j = 0; j < J; j++) o[i][j] = fmaf(pv[i], vv[j], o[i][j]);
            }
        }
    }

#pragma unroll
    for (int i = 0; i < 4; i++) {
        const float lt = half_sum(l[i]); // every lane of the half-warp: same bits
        const int r = ty + 16 * i;
        if (r < nq) {
            const float inv = lt > 0.0f ? 1.0f / lt : 0.0f; // lt >= 1: a query always sees itself
            float *orow = a.out + (qt0 + r) * qs + h * hd;
#pragma unroll
            for (int j = 0; j < J; j++)
                if (tx + 16 * j < hd) orow[tx + 16 * j] = o[i][j] * inv;
            if (a.lse && tx == 0) a.lse[(qt0 + r) * a.n_heads + h] = m[i] + logf(lt);
        }
    }
}

// ---------------------------------------------------------------- backward

struct BwdArgs {
    const float *q, *k, *v, *lse, *dout, *delta;
    const int32_t *doc;
    float *dq, *dk, *dv;
    int64_t T, n_heads, n_kv, group, hd;
    int ntiles;
    float scale;
};

// delta[row] = dout[row, :] . out[row, :], row = t * n_heads + h; one warp per row (8 per block).
__global__ void __launch_bounds__(NT) att_delta_kernel(const float *__restrict__ out, const float *__restrict__ dout,
                                                       float *__restrict__ delta, int64_t rows, int64_t hd) {
    const int lane = (int)threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * (NT / 32) + ((int)threadIdx.x >> 5);
    float acc = 0.0f;
    if (row < rows)
        for (int64_t d = lane; d < hd; d += 32) acc = fmaf(dout[row * hd + d], out[row * hd + d], acc);
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xFFFFFFFFu, acc, off);
    if (row < rows && lane == 0) delta[row] = acc;
}

// dk, dv of one (KV head, key tile): rows = keys, columns = queries (scores) or dims (accumulators).
template <int HD> __global__ void __launch_bounds__(NT) att_dkdv_kernel(const BwdArgs a) {
    using C = Cfg<HD>;
    constexpr int J = C::J, VR = C::VR;
    float *Kc = att_smem, *Vc = Kc + BT * LDKB, *Qc = Vc + BT * LDKB, *Gc = Qc + BT * LDKB; // score phase
    float *Rs = att_smem;                                                                // [VR][HD] rows
    float *Ps = att_smem + C::BWD_A;                                                     // P, then dS

    const int tid = (int)threadIdx.x, ty = tid >> 4, tx = tid & 15;
    const int64_t kvh = blockIdx.x, hd = a.hd, T = a.T;
    const int64_t qs = a.n_heads * hd, kvs = a.n_kv * hd;
    const int64_t s0 = (int64_t)blockIdx.y * BT; // key tile (early tiles, the heavy ones, first)
    const int kn = (int)min64(BT, T - s0);
    const float *kbase = a.k + s0 * kvs + kvh * hd, *vbase = a.v + s0 * kvs + kvh * hd;

    int kd[4] = {0, 0, 0, 0};
    int kmin = INT_MAX, kmax = INT_MIN;
    if (a.doc) {
#pragma unroll
        for (int i = 0; i < 4; i++)
            if (ty + 16 * i < kn) kd[i] = a.doc[s0 + ty + 16 * i];
        for (int r = 0; r < kn; r++) {
            const int d = a.doc[s0 + r];
            kmin = min(kmin, d);
            kmax = max(kmax, d);
        }
    }

    float dk[4][J], dv[4][J];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < J; j++) dk[i][j] = dv[i][j] = 0.0f;

    for (int64_t h = kvh * a.group; h < (kvh + 1) * a.group; h++) {
        const float *qhead = a.q + h * hd, *ghead = a.dout + h * hd;
        for (int64_t t0 = s0; t0 < T; t0 += BT) { // causal: no query before the tile's first key
            const int qn = (int)min64(BT, T - t0);
            int qd[4] = {0, 0, 0, 0};
            if (a.doc) { // uniform branch
                bool hit = false;
                if (tid < qn) {
                    const int d = a.doc[t0 + tid];
                    hit = d >= kmin && d <= kmax;
                }
                if (!__syncthreads_or(hit)) continue; // no query of this tile shares a doc with the keys
#pragma unroll
                for (int j = 0; j < 4; j++)
                    if (tx + 16 * j < qn) qd[j] = a.doc[t0 + tx + 16 * j];
            }
            float lse_c[4], del_c[4];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int c = tx + 16 * j;
                lse_c[j] = c < qn ? a.lse[(t0 + c) * a.n_heads + h] : 0.0f;
                del_c[j] = c < qn ? a.delta[(t0 + c) * a.n_heads + h] : 0.0f;
            }

            // S^T = K Q^T and dP^T = V dO^T, hd in chunks of DKB
            float s[4][4], dp[4][4];
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) s[i][j] = dp[i][j] = 0.0f;
            for (int64_t d0 = 0; d0 < hd; d0 += DKB) {
                const int dn = (int)min64(DKB, hd - d0);
                __syncthreads(); // previous readers of the region are done
                stage<BT, DKB, LDKB>(Kc, kbase + d0, kvs, kn, dn, tid);
                stage<BT, DKB, LDKB>(Vc, vbase + d0, kvs, kn, dn, tid);
                stage<BT, DKB, LDKB>(Qc, qhead + t0 * qs + d0, qs, qn, dn, tid);
                stage<BT, DKB, LDKB>(Gc, ghead + t0 * qs + d0, qs, qn, dn, tid);
                __syncthreads();
#pragma unroll
                for (int dd = 0; dd < DKB; dd++) {
                    float kv[4], vv[4], qv[4], gv[4];
#pragma unroll
                    for (int i = 0; i < 4; i++) {
                        kv[i] = Kc[(ty + 16 * i) * LDKB + dd];
                        vv[i] = Vc[(ty + 16 * i) * LDKB + dd];
                    }
#pragma unroll
                    for (int j = 0; j < 4; j++) {
                        qv[j] = Qc[(tx + 16 * j) * LDKB + dd];
                        gv[j] = Gc[(tx + 16 * j) * LDKB + dd];
                    }
#pragma unroll
                    for (int i = 0; i < 4; i++)
#pragma unroll
                        for (int j = 0; j < 4; j++) {
                            s[i][j] = fmaf(kv[i], qv[j], s[i][j]);
                            dp[i][j] = fmaf(vv[i], gv[j], dp[i][j]);
                        }
                }
            }

            // p = exp(scale s - lse), ds = p (dp - delta); masked entries 0
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    const int r = ty + 16 * i, c = tx + 16 * j;
                    const bool vis = r < kn && c < qn && s0 + r <= t0 + c && (!a.doc || kd[i] == qd[j]);
                    const float p = vis ? expf(s[i][j] * a.scale - lse_c[j]) : 0.0f;
                    dp[i][j] = vis ? p * (dp[i][j] - del_c[j]) : 0.0f;
                    s[i][j] = p;
                }

            // dv += P dO  (Ps free: its last readers passed the barriers of the score phase)
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) Ps[(ty + 16 * i) * LDT + tx + 16 * j] = s[i][j];
            for (int c0 = 0; c0 < qn; c0 += VR) {
                __syncthreads();
                stage<VR, HD, HD>(Rs, ghead + (t0 + c0) * qs, qs, min(VR, qn - c0), (int)hd, tid);
                __syncthreads();
#pragma unroll 4
                for (int c = 0; c < VR; c++) {
                    float pv[4], gv[J];
#pragma unroll
                    for (int i = 0; i < 4; i++) pv[i] = Ps[(ty + 16 * i) * LDT + c0 + c];
#pragma unroll
                    for (int j = 0; j < J; j++) gv[j] = Rs[c * HD + tx + 16 * j];
#pragma unroll
                    for (int i = 0; i < 4; i++)
#pragma unroll
                        for (int j = 0; j < J; j++) dv[i][j] = fmaf(pv[i], gv[j], dv[i][j]);
                }
            }

            // dk += dS Q
            __syncthreads(); // every reader of P is done
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) Ps[(ty + 16 * i) * LDT + tx + 16 * j] = dp[i][j];
            for (int c0 = 0; c0 < qn; c0 += VR) {
                __syncthreads();
                stage<VR, HD, HD>(Rs, qhead + (t0 + c0) * qs, qs, min(VR, qn - c0), (int)hd, tid);
                __syncthreads();
#pragma unroll 4
                for (int c = 0; c < VR; c++) {
                    float dsv[4], qv[J];
#pragma unroll
                    for (int i = 0; i < 4; i++) dsv[i] = Ps[(ty + 16 * i) * LDT + c0 + c];
#pragma unroll
                    for (int j = 0; j < J; j++) qv[j] = Rs[c * HD + tx + 16 * j];
#pragma unroll
                    for (int i = 0; i < 4; i++)
#pragma unroll
                        for (int j = 0; j < J; j++) dk[i][j] = fmaf(dsv[i], qv[j], dk[i][j]);
                }
            }
        }
    }

#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int r = ty + 16 * i;
        if (r < kn) {
            float *dkrow = a.dk + (s0 + r) * kvs + kvh * hd, *dvrow = a.dv + (s0 + r) * kvs + kvh * hd;
#pragma unroll
            for (int j = 0; j < J; j++)
                if (tx + 16 * j < hd) {
                    dkrow[tx + 16 * j] = dk[i][j] * a.scale;
                    dvrow[tx + 16 * j] = dv[i][j];
                }
        }
    }
}

// dq of one (head, query tile): rows = queries, columns = keys (scores) or dims (accumulator).
template <int HD> __global__ void __launch_bounds__(NT) att_dq_kernel(const BwdArgs a) {
    using C = Cfg<HD>;
    constexpr int J = C::J, VR = C::VR;
    float *Qc = att_smem, *Gc = Qc + BT * LDKB, *Kc = Gc + BT * LDKB, *Vc = Kc + BT * LDKB; // score phase
    float *Rs = att_smem;                                                                // [VR][HD] rows
    float *Ps = att_smem + C::BWD_A;                                                     // dS

    const int tid = (int)threadIdx.x, ty = tid >> 4, tx = tid & 15;
    const int64_t h = blockIdx.x, kvh = h / a.group, hd = a.hd, T = a.T;
    const int64_t qs = a.n_heads * hd, kvs = a.n_kv * hd;
    const int64_t t0 = (int64_t)(a.ntiles - 1 - (int)blockIdx.y) * BT; // late (heavy) tiles first
    const int qn = (int)min64(BT, T - t0);
    const float *qbase = a.q + t0 * qs + h * hd, *gbase = a.dout + t0 * qs + h * hd;
    const float *kbase = a.k + kvh * hd, *vbase = a.v + kvh * hd;

    int qd[4] = {0, 0, 0, 0};
    float lse_r[4], del_r[4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int r = ty + 16 * i;
        lse_r[i] = r < qn ? a.lse[(t0 + r) * a.n_heads + h] : 0.0f;
        del_r[i] = r < qn ? a.delta[(t0 + r) * a.n_heads + h] : 0.0f;
    }
    int qmin = INT_MAX, qmax = INT_MIN;
    if (a.doc) {
#pragma unroll
        for (int i = 0; i < 4; i++)
            if (ty + 16 * i < qn) qd[i] = a.doc[t0 + ty + 16 * i];
        for (int r = 0; r < qn; r++) {
            const int d = a.doc[t0 + r];
            qmin = min(qmin, d);
            qmax = max(qmax, d);
        }
    }

    float dq[4][J];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < J; j++) dq[i][j] = 0.0f;

    const int64_t nkeys = t0 + qn;
    for (int64_t s0 = 0; s0 < nkeys; s0 += BT) {
        const int kn = (int)min64(BT, nkeys - s0);
        int kd[4] = {0, 0, 0, 0};
        if (a.doc) { // uniform branch
            bool hit = false;
            if (tid < kn) {
                const int d = a.doc[s0 + tid];
                hit = d >= qmin && d <= qmax;
            }
            if (!__syncthreads_or(hit)) continue;
#pragma unroll
            for (int j = 0; j < 4; j++)
                if (tx + 16 * j < kn) kd[j] = a.doc[s0 + tx + 16 * j];
        }

        // S = Q K^T and dP = dO V^T, hd in chunks of DKB
        float s[4][4], dp[4][4];
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) s[i][j] = dp[i][j] = 0.0f;
        for (int64_t d0 = 0; d0 < hd; d0 += DKB) {
            const int dn = (int)min64(DKB, hd - d0);
            __syncthreads();
            stage<BT, DKB, LDKB>(Qc, qbase + d0, qs, qn, dn, tid);
            stage<BT, DKB, LDKB>(Gc, gbase + d0, qs, qn, dn, tid);
            stage<BT, DKB, LDKB>(Kc, kbase + s0 * kvs + d0, kvs, kn, dn, tid);
            stage<BT, DKB, LDKB>(Vc, vbase + s0 * kvs + d0, kvs, kn, dn, tid);
            __syncthreads();
#pragma unroll
            for (int dd = 0; dd < DKB; dd++) {
                float qv[4], gv[4], kv[4], vv[4];
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    qv[i] = Qc[(ty + 16 * i) * LDKB + dd];
                    gv[i] = Gc[(ty + 16 * i) * LDKB + dd];
                }
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    kv[j] = Kc[(tx + 16 * j) * LDKB + dd];
                    vv[j] = Vc[(tx + 16 * j) * LDKB + dd];
                }
#pragma unroll
                for (int i = 0; i < 4; i++)
#pragma unroll
                    for (int j = 0; j < 4; j++) {
                        s[i][j] = fmaf(qv[i], kv[j], s[i][j]);
                        dp[i][j] = fmaf(gv[i], vv[j], dp[i][j]);
                    }
            }
        }

        // ds = p (dp - delta) to shared (its last readers passed the barriers of the score phase)
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int r = ty + 16 * i, c = tx + 16 * j;
                const bool vis = r < qn && c < kn && s0 + c <= t0 + r && (!a.doc || kd[j] == qd[i]);
                const float p = vis ? expf(s[i][j] * a.scale - lse_r[i]) : 0.0f;
                Ps[r * LDT + c] = vis ? p * (dp[i][j] - del_r[i]) : 0.0f;
            }

        // dq += dS K, K in chunks of VR full rows
        for (int c0 = 0; c0 < kn; c0 += VR) {
            __syncthreads();
            stage<VR, HD, HD>(Rs, kbase + (s0 + c0) * kvs, kvs, min(VR, kn - c0), (int)hd, tid);
            __syncthreads();
#pragma unroll 4
            for (int c = 0; c < VR; c++) {
                float dsv[4], kv[J];
#pragma unroll
                for (int i = 0; i < 4; i++) dsv[i] = Ps[(ty + 16 * i) * LDT + c0 + c];
#pragma unroll
                for (int j = 0; j < J; j++) kv[j] = Rs[c * HD + tx + 16 * j];
#pragma unroll
                for (int i = 0; i < 4; i++)
#pragma unroll
                    for (int j = 0; j < J; j++) dq[i][j] = fmaf(dsv[i], kv[j], dq[i][j]);
            }
        }
    }

#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int r = ty + 16 * i;
        if (r < qn) {
            float *row = a.dq + (t0 + r) * qs + h * hd;
#pragma unroll
            for (int j = 0; j < J; j++)
                if (tx + 16 * j < hd) row[tx + 16 * j] = dq[i][j] * a.scale;
        }
    }
}

// ---------------------------------------------------------------- host side

cudaStream_t as_stream(void *s) { return (cudaStream_t)s; }

int64_t n_tiles(int64_t n) { return (n + BT - 1) / BT; }

// 0, or cudaErrorInvalidValue for shapes the kernels do not take (grid limits included).
int check_shape(int64_t T, int64_t n_heads, int64_t n_kv_heads, int64_t hd) {
    if (n_heads <= 0 || n_kv_heads <= 0 || n_heads % n_kv_heads != 0 || hd <= 0 || hd > 256)
        return (int)cudaErrorInvalidValue;
    if (n_heads > INT_MAX || n_tiles(T) > 65535) return (int)cudaErrorInvalidValue; // grid.x, grid.y
    return 0;
}

// hd -> its class: the smallest of 16, 32, 64, 96, 128, 192, 256 that holds it.
int hd_class(int64_t hd) {
    static const int classes[] = {16, 32, 64, 96, 128, 192, 256};
    for (int c : classes)
        if (hd <= c) return c;
    return 0;
}

template <int HD> int launch_fwd(const FwdArgs &a, cudaStream_t st) {
    const dim3 grid((unsigned)a.n_heads, (unsigned)a.ntiles);
    att_fwd_kernel<HD><<<grid, NT, Cfg<HD>::FWD_SMEM, st>>>(a);
    return (int)cudaGetLastError();
}

int dispatch_fwd(const FwdArgs &a, cudaStream_t st) {
    switch (hd_class(a.hd)) {
    case 16: return launch_fwd<16>(a, st);
    case 32: return launch_fwd<32>(a, st);
    case 64: return launch_fwd<64>(a, st);
    case 96: return launch_fwd<96>(a, st);
    case 128: return launch_fwd<128>(a, st);
    case 192: return launch_fwd<192>(a, st);
    case 256: return launch_fwd<256>(a, st);
    default: return (int)cudaErrorInvalidValue;
    }
}

template <int HD> int launch_bwd(const BwdArgs &a, cudaStream_t st) {
    const dim3 grid_kv((unsigned)a.n_kv, (unsigned)a.ntiles), grid_q((unsigned)a.n_heads, (unsigned)a.ntiles);
    att_dkdv_kernel<HD><<<grid_kv, NT, Cfg<HD>::BWD_SMEM, st>>>(a);
    int rc = (int)cudaGetLastError();
    if (rc) return rc;
    att_dq_kernel<HD><<<grid_q, NT, Cfg<HD>::BWD_SMEM, st>>>(a);
    return (int)cudaGetLastError();
}

int dispatch_bwd(const BwdArgs &a, cudaStream_t st) {
    switch (hd_class(a.hd)) {
    case 16: return launch_bwd<16>(a, st);
    case 32: return launch_bwd<32>(a, st);
    case 64: return launch_bwd<64>(a, st);
    case 96: return launch_bwd<96>(a, st);
    case 128: return launch_bwd<128>(a, st);
    case 192: return launch_bwd<192>(a, st);
    case 256: return launch_bwd<256>(a, st);
    default: return (int)cudaErrorInvalidValue;
    }
}

float att_scale(int64_t hd) { return (float)(1.0 / sqrt((double)hd)); } // rounded once, as the CPU

} // namespace

extern "C" int lt_cuda_attention_fwd(const float *q, const float *k, const float *v, const int32_t *doc, float *out,
                                     float *lse, int64_t T, int64_t n_heads, int64_t n_kv_heads, int64_t hd,
                                     void *stream) {
    if (T <= 0) return 0;
    const int rc = check_shape(T, n_heads, n_kv_heads, hd);
    if (rc) return rc;
    FwdArgs a;
    a.q = q, a.k = k, a.v = v, a.doc = doc, a.out = out, a.lse = lse;
    a.Tq = T, a.q_off = 0, a.n_heads = n_heads, a.group = n_heads / n_kv_heads, a.hd = hd;
    a.kv_stride = n_kv_heads * hd, a.ntiles = (int)n_tiles(T), a.scale = att_scale(hd);
    return dispatch_fwd(a, as_stream(stream));
}

extern "C" int lt_cuda_attention_cached(const float *q, const float *k, const float *v, float *out, int64_t T,
                                        int64_t n_past, int64_t n_heads, int64_t n_kv_heads, int64_t hd,
                                        void *stream) {
    if (T <= 0) return 0;
    const int rc = check_shape(T, n_heads, n_kv_heads, hd);
    if (rc) return rc;
    if (n_past < 0) return (int)cudaErrorInvalidValue;
    FwdArgs a;
    a.q = q, a.k = k, a.v = v, a.doc = NULL, a.out = out, a.lse = NULL;
    a.Tq = T, a.q_off = n_past, a.n_heads = n_heads, a.group = n_heads / n_kv_heads, a.hd = hd;
    a.kv_stride = n_kv_heads * hd, a.ntiles = (int)n_tiles(T), a.scale = att_scale(hd);
    return dispatch_fwd(a, as_stream(stream));
}

extern "C" int64_t lt_cuda_attention_bwd_scratch(int64_t T, int64_t n_heads) { return T * n_heads; }

extern "C" int lt_cuda_attention_bwd(const float *q, const float *k, const float *v, const int32_t *doc,
                                     const float *out, const float *lse, const float *dout, float *dq, float *dk,
                                     float *dv, int64_t T, int64_t n_heads, int64_t n_kv_heads, int64_t hd,
                                     float *scratch, void *stream) {
    if (T <= 0) return 0;
    const int rc0 = check_shape(T, n_heads, n_kv_heads, hd);
    if (rc0) return rc0;
    const int64_t rows = T * n_heads, dblocks = (rows + NT / 32 - 1) / (NT / 32);
    if (!scratch || dblocks > INT_MAX) return (int)cudaErrorInvalidValue;
    cudaStream_t st = as_stream(stream);
    att_delta_kernel<<<(unsigned)dblocks, NT, 0, st>>>(out, dout, scratch, rows, hd);
    const int rc = (int)cudaGetLastError();
    if (rc) return rc;
    BwdArgs a;
    a.q = q, a.k = k, a.v = v, a.lse = lse, a.dout = dout, a.delta = scratch, a.doc = doc;
    a.dq = dq, a.dk = dk, a.dv = dv;
    a.T = T, a.n_heads = n_heads, a.n_kv = n_kv_heads, a.group = n_heads / n_kv_heads, a.hd = hd;
    a.ntiles = (int)n_tiles(T), a.scale = att_scale(hd);
    return dispatch_bwd(a, st);
}
