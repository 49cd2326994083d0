/* Philox4x32-10 against the Random123 known-answer vectors, the stream layout, save/load resuming
 * mid-block, and the uniform and normal distributions.
 *
 * The statistical checks use fixed seeds, so they are deterministic; their limits are 5 standard
 * errors of the statistic for the sample size, which a correct generator exceeds with probability
 * ~6e-7 per check (for any seed), while a biased one (wrong scale, missing factor, one-sided
 * uniform) misses them by orders of magnitude. */
#include "core/core.h"
#include "test.h"

#include <math.h>

static void test_kat(void) {
    /* Random123 kat_vectors, "philox4x32 10": counter[4] key[2] -> expected[4] */
    static const struct {
        uint32_t ctr[4], key[2], want[4];
    } kat[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
         {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
         {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        lt_philox4x32_raw(kat[i].ctr, kat[i].key, out);
        CHECKF(memcmp(out, kat[i].want, sizeof out) == 0, "KAT %d: got %08x %08x %08x %08x", i, out[0], out[1], out[2],
               out[3]);
    }
    /* the 64-bit wrapper: counter {lo, hi, 0, 0}, key {lo, hi} */
    uint32_t a[4], b[4];
    lt_philox4x32(0, 0, a);
    CHECK(memcmp(a, kat[0].want, sizeof a) == 0);
    const uint64_t seed = 0x0123456789ABCDEFULL, ctr = 0xFEDCBA9876543210ULL;
    lt_philox4x32(seed, ctr, a);
    lt_philox4x32_raw((const uint32_t[4]){0x76543210, 0xFEDCBA98, 0, 0}, (const uint32_t[2]){0x89ABCDEF, 0x01234567},
                      b);
    CHECK(memcmp(a, b, sizeof a) == 0);
    /* high words of seed and counter matter */
    lt_philox4x32(1, 0, a);
    lt_philox4x32(1 + (1ULL << 32), 0, b);
    CHECK(memcmp(a, b, sizeof a) != 0);
    lt_philox4x32(1, 0, a);
    lt_philox4x32(1, 1ULL << 32, b);
    CHECK(memcmp(a, b, sizeof a) != 0);
}

static void test_stream_layout(void) {
    lt_rng r;
    lt_rng_init(&r, 42);
    for (uint64_t blk = 0; blk < 3; blk++) {
        uint32_t want[4];
        lt_philox4x32(42, blk, want);
        for (int j = 0; j < 4; j++) {
            uint32_t got = lt_rng_u32(&r);
            CHECKF(got == want[j], "block %llu word %d: %08x != %08x", (unsigned long long)blk, j, got, want[j]);
        }
    }
    CHECK(r.counter == 3 && r.used == 4);
}

/* Draws a mix of all three kinds of values, so a resumed stream is compared on all of them. */
static void draw_mix(lt_rng *r, uint32_t *out, int n) {
    for (int i = 0; i < n; i++) {
        float f;
        switch (i % 3) {
        case 0: out[i] = lt_rng_u32(r); break;
        case 1: f = lt_rng_uniform(r); memcpy(&out[i], &f, 4); break;
        default: f = lt_rng_normal(r); memcpy(&out[i], &f, 4); break;
        }
    }
}

static void test_save_load(void) {
    /* resume after 0..9 single draws: covers a fresh state, every position inside a block
     * (used = 1, 2, 3) and exact block boundaries (used = 4) */
    for (int skip = 0; skip < 10; skip++) {
        lt_rng r;
        lt_rng_init(&r, 0xC0FFEEULL + (uint64_t)skip);
        for (int i = 0; i < skip; i++) (void)lt_rng_u32(&r);
        uint8_t st[LT_RNG_STATE_BYTES];
        lt_rng_save(&r, st);
        uint32_t a[200], b[200];
        draw_mix(&r, a, 200);
        lt_rng q;
        memset(&q, 0xAB, sizeof q); /* garbage that load must overwrite */
        CHECK(lt_rng_load(&q, st));
        draw_mix(&q, b, 200);
        CHECKF(memcmp(a, b, sizeof a) == 0, "stream differs after save/load at position %d", skip);
    }
    /* the byte layout is little-endian seed | counter | used | 4 zero bytes */
    lt_rng r;
    lt_rng_init(&r, 0x1122334455667788ULL);
    for (int i = 0; i < 6; i++) (void)lt_rng_u32(&r); /* block 1, 2 words used */
    uint8_t st[LT_RNG_STATE_BYTES];
    lt_rng_save(&r, st);
    static const uint8_t want[LT_RNG_STATE_BYTES] = {0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 2, 0, 0, 0,
                                                     0,    0,    0,    0,    2,    0,    0,    0,    0, 0, 0, 0};
    CHECK(memcmp(st, want, sizeof st) == 0);
    /* corrupt states are refused */
    lt_rng q;
    uint8_t bad[LT_RNG_STATE_BYTES];
    memcpy(bad, st, sizeof bad);
    bad[16] = 5; /* used > 4 */
    CHECK(!lt_rng_load(&q, bad));
    memcpy(bad, st, sizeof bad);
    memset(bad + 8, 0, 8); /* a partly used block before any block was drawn */
    CHECK(!lt_rng_load(&q, bad));
    memcpy(bad, st, sizeof bad);
    bad[23] = 1; /* reserved bytes must be zero */
    CHECK(!lt_rng_load(&q, bad));
    CHECK(lt_rng_load(&q, st));
}

static void test_uniform(void) {
    enum { N = 1000000, BINS = 100 };
    lt_rng r;
    lt_rng_init(&r, 7);
    double sum = 0;
    int64_t hist[BINS] = {0};
    int out_of_range = 0, off_grid = 0;
    for (int i = 0; i < N; i++) {
        float u = lt_rng_uniform(&r);
        if (!(u >= 0.0f && u < 1.0f)) out_of_range++;
        if ((double)u * 0x1p24 != floor((double)u * 0x1p24)) off_grid++;
        sum += u;
        hist[(int)(u * BINS)]++;
    }
    CHECKF(out_of_range == 0, "%d uniforms outside [0, 1)", out_of_range);
    CHECKF(off_grid == 0, "%d uniforms not a multiple of 2^-24", off_grid);
    /* mean: sd of the mean of U(0,1) is sqrt(1/12/N) = 2.9e-4; 5 sd */
    double mean = sum / N;
    CHECKF(fabs(mean - 0.5) < 5 * sqrt(1.0 / 12 / N), "uniform mean %.6f", mean);
    /* chi-square with 99 degrees of freedom: mean 99, sd sqrt(2*99) = 14.1; limit mean + 5 sd */
    double chi2 = 0, e = (double)N / BINS;
    for (int i = 0; i < BINS; i++) chi2 += (hist[i] - e) * (hist[i] - e) / e;
    CHECKF(chi2 < 99 + 5 * sqrt(2.0 * 99), "uniform chi-square %.1f over %d bins", chi2, BINS);
}

static void test_normal(void) {
    enum { N = 1000000 };
    lt_rng r;
    lt_rng_init(&r, 11);
    double s1 = 0, s2 = 0, s4 = 0;
    int64_t within1 = 0, nonfinite = 0;
    for (int i = 0; i < N; i++) {
        double z = lt_rng_normal(&r);
        if (!isfinite(z)) nonfinite++;
        s1 += z;
        s2 += z * z;
        s4 += z * z * z * z;
        if (fabs(z) < 1) within1++;
    }
    CHECK(nonfinite == 0);
    double mean = s1 / N, var = s2 / N - mean * mean, kurt = s4 / N;
    /* mean: sd 1/sqrt(N) = 0.001; 5 sd */
    CHECKF(fabs(mean) < 5 / sqrt((double)N), "normal mean %.5f", mean);
    /* variance: sd of the sample variance of N(0,1) is sqrt(2/N) = 0.0014; 5 sd */
    CHECKF(fabs(var - 1) < 5 * sqrt(2.0 / N), "normal variance %.5f", var);
    /* fourth moment 3: sd of the mean of z^4 is sqrt((105 - 9)/N) = 0.0098; 5 sd */
    CHECKF(fabs(kurt - 3) < 5 * sqrt(96.0 / N), "normal fourth moment %.4f", kurt);
    /* P(|z| < 1) = 0.682689; binomial sd sqrt(p(1-p)/N) = 4.7e-4; 5 sd */
    double p = (double)within1 / N, p0 = 0.6826894921370859;
    CHECKF(fabs(p - p0) < 5 * sqrt(p0 * (1 - p0) / N), "P(|z|<1) = %.5f", p);
    CHECK(r.counter == (uint64_t)N * 2 / 4); /* two words per normal: the sine half is discarded */
}

static void test_seeds_differ(void) {
    lt_rng a, b, c;
    lt_rng_init(&a, 1);
    lt_rng_init(&b, 2);
    lt_rng_init(&c, 1);
    int same_ab = 0, same_ac = 0;
    for (int i = 0; i < 1000; i++) {
        uint32_t x = lt_rng_u32(&a), y = lt_rng_u32(&b), z = lt_rng_u32(&c);
        same_ab += x == y;
        same_ac += x == z;
    }
    /* two independent streams agree on a 32-bit word with probability 2^-32 per word */
    CHECKF(same_ab == 0, "seeds 1 and 2 share %d of 1000 words", same_ab);
    CHECK(same_ac == 1000);
}

int main(void) {
    test_kat();
    test_stream_layout();
    test_save_load();
    test_uniform();
    test_normal();
    test_seeds_differ();
    TEST_MAIN_END();
}
