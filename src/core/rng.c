/* Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3",
 * SC'11) and the serialisable stream built on it.
 *
 * Block b of the stream for seed s is philox(counter = {lo32(b), hi32(b), 0, 0},
 * key = {lo32(s), hi32(s)}); its four words are handed out in order. The state is therefore
 * (seed, next block, words of the current block used): 20 bytes, saved in 24 with 4 reserved.
 *
 * Normals: Box-Muller on two 32-bit words, keeping only the cosine half. Keeping the sine half too
 * would need a cached value in the state, which would then no longer be the 24 bytes above; one
 * normal per two words is cheap enough for weight init and noise (not an inner-loop sampler). */
#include "core/core.h"

#include <math.h>
#include <string.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u /* golden ratio */
#define PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1 */

void lt_philox4x32_raw(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        if (round > 0) { /* the key is bumped between rounds, not before the first */
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

void lt_philox4x32(uint64_t seed, uint64_t counter, uint32_t out[4]) {
    const uint32_t ctr[4] = {(uint32_t)counter, (uint32_t)(counter >> 32), 0, 0};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    lt_philox4x32_raw(ctr, key, out);
}

void lt_rng_init(lt_rng *r, uint64_t seed) {
    memset(r, 0, sizeof *r);
    r->seed = seed;
    r->counter = 0;
    r->used = 4; /* empty: the first draw computes block 0 */
}

uint32_t lt_rng_u32(lt_rng *r) {
    if (r->used >= 4) {
        lt_philox4x32(r->seed, r->counter, r->buf);
        r->counter++;
        r->used = 0;
    }
    return r->buf[r->used++];
}

float lt_rng_uniform(lt_rng *r) {
    /* the top 24 bits: every value k * 2^-24 for k in [0, 2^24) is an exact float, so the result
     * is uniform on that grid and never reaches 1 */
    return (float)(lt_rng_u32(r) >> 8) * 0x1p-24f;
}

float lt_rng_normal(lt_rng *r) {
    /* u1 in (0, 1] so log(u1) is finite: the largest |z| is sqrt(2 ln 2^32) ~ 6.66, i.e. the tail
     * is cut at a probability of ~3e-11, far below anything a float training run can see. Double
     * precision keeps the transform itself from adding error at the float result. */
    double u1 = ((double)lt_rng_u32(r) + 1.0) * 0x1p-32;
    double u2 = (double)lt_rng_u32(r) * 0x1p-32;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Layout: seed u64 LE | counter u64 LE | used u32 LE | 4 reserved bytes, zero. */
void lt_rng_save(const lt_rng *r, uint8_t out[LT_RNG_STATE_BYTES]) {
    memset(out, 0, LT_RNG_STATE_BYTES);
    put_u64(out, r->seed);
    put_u64(out + 8, r->counter);
    for (int i = 0; i < 4; i++) out[16 + i] = (uint8_t)(r->used >> (8 * i));
}

bool lt_rng_load(lt_rng *r, const uint8_t in[LT_RNG_STATE_BYTES]) {
    uint64_t seed = get_u64(in), counter = get_u64(in + 8);
    uint32_t used = 0;
    for (int i = 0; i < 4; i++) used |= (uint32_t)in[16 + i] << (8 * i);
    for (int i = 20; i < LT_RNG_STATE_BYTES; i++)
        if (in[i] != 0) return false;
    /* a partly used block must have been drawn, i.e. counter >= 1 */
    if (used > 4 || (used < 4 && counter == 0)) return false;
    lt_rng_init(r, seed);
    r->counter = counter;
    r->used = used;
    if (used < 4) lt_philox4x32(seed, counter - 1, r->buf); /* recompute the current block */
    return true;
}
