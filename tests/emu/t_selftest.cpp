// Negative controls: the emulator's checks and the comparison functions must catch planted errors
// (tests/emu/planted.cu), and a correct kernel must pass cleanly.
#include <stdio.h>

#include "harness.h"
#include "planted.cuh"

// Runs one planted kernel: it must produce at least one emulator fault.
static void expect_fault(const char *what, int (*fn)(float *), float *out) {
    const long f0 = emu::faults();
    emu::set_fault_echo(false);
    emu::clear_fault_message();
    const int rc = fn(out);
    emu::set_fault_echo(true);
    const long n = emu::faults() - f0;
    emu_check(n > 0 && rc == 0, "planted %s: %ld fault(s), e.g. \"%s\"", what, n, n ? emu::fault_message() : "-");
}

static float *g_out;
static int oob(float *o) { return planted_oob_global(o, 64); }
static const float *g_host;
static int host_ptr(float *o) { return planted_host_pointer(g_host, o); }

void test_selftest() {
    section("selftest: the emulator's checks and the comparisons catch planted errors");
    Dev<float> out(64);
    g_out = out.p;
    const long f0 = emu::faults();
    out.fill_bytes(0);
    check_rc(planted_ok(out.p), "planted_ok");
    std::vector<float> h = out.down();
    emu_check(emu::faults() == f0 && h[0] == 2016.0f && h[1] == 2016.0f,
              "control kernel (shared memory + barrier, correct): no fault, sums %g %g (expected 2016)", h[0], h[1]);

    {
        // the kernel copies' arithmetic: a = 1 + 2^-12, c = -(1 + 2^-11): a*a + c is 2^-24 exactly, which
        // a fused multiply-add keeps and the two-rounding form loses (a*a rounds to 1 + 2^-11)
        std::vector<float> in = {1.0f + 0x1p-12f, -(1.0f + 0x1p-11f), 0.0f, 0.0f};
        Dev<float> d(in);
        check_rc(planted_fma(d.p), "planted_fma");
        std::vector<float> r = d.down();
        emu_check(r[2] == 0x1p-24f && r[3] == 0.0f, "kernel arithmetic: fmaf fused (%g, want 2^-24), a*a+c not "
                                                     "contracted (%g, want 0)", r[2], r[3]);
    }
    expect_fault("shared-memory race (missing __syncthreads)", planted_shared_race, out.p);
    expect_fault("read of uninitialised shared memory", planted_uninit_shared, out.p);
    expect_fault("two blocks writing one element", planted_global_race, out.p);
    expect_fault("device write one past the end", oob, out.p);
    expect_fault("dynamic shared memory past the launch's size", planted_oob_shared, out.p);
    expect_fault("__syncthreads in divergent code", planted_barrier_divergence, out.p);
    expect_fault("warp shuffle after lanes exited", planted_shuffle_exit, out.p);
    std::vector<float> host(32, 1.0f);
    g_host = host.data();
    expect_fault("kernel reading a host pointer", host_ptr, out.p);
    expect_fault("misaligned 4-byte load", planted_misaligned, out.p);
    expect_fault("device write to __constant__ memory", planted_const_write, out.p);
    expect_fault("__ldg (read-only cache) of data the kernel wrote", planted_ldg_written, out.p);
    {
        std::vector<float> h2(16), r2(16);
        const long f1 = emu::faults();
        emu::set_fault_echo(false);
        const int rc = lt_cuda_memcpy_h2d(h2.data(), r2.data(), 16, nullptr); // dst is host memory
        emu::set_fault_echo(true);
        emu_check(rc == 1 && emu::faults() == f1 + 1, "planted host-to-device copy into host memory: refused (rc %d) "
                                                      "and one fault", rc);
    }
    emu_check(planted_too_many_threads(out.p) == 9, "planted launch of 2048 threads per block: launch error 9 "
                                                    "(cudaErrorInvalidConfiguration), as the runtime returns");
    emu_check(planted_too_much_smem(out.p) == 1, "planted launch with 64 KiB dynamic shared memory: launch error 1 "
                                                 "(cudaErrorInvalidValue)");

    // The comparison functions: a reference perturbed by one ulp in one element, or by 1e-4 relative
    // noise, must fail the comparisons the family tests use.
    std::vector<float> a = randn(1000), b = a;
    b[517] = nextafterf(b[517], INFINITY);
    const long mm = bit_mismatches(a.data(), b.data(), 4, a.size());
    emu_check(mm == 1, "bit-identical comparison against a reference with one element moved by 1 ulp: %ld "
                       "mismatch found (expected 1)", mm);
    std::vector<float> c = a;
    for (auto &x : c) x *= 1.0f + 1e-4f * (float)((int)(g_rng() % 2001) - 1000) / 1000.0f;
    const double e = nmse(a.data(), c.data(), a.size());
    emu_check(e > 1e-10, "nmse comparison against a reference with 1e-4 relative noise: %.3e > the 1e-10 limit the "
                         "attention checks use (so it would fail)", e);
    emu_check(ulp_distance(1.0f, nextafterf(1.0f, 2.0f)) == 1 && ulp_distance(-0.0f, 0.0f) == 0 &&
                  ulp_distance(nextafterf(0.0f, -1.0f), nextafterf(0.0f, 1.0f)) == 2,
              "ulp_distance: neighbours 1 apart, -0 == +0, across zero");
}
