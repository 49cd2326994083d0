// test_emu_kernels: every CUDA kernel family of kernels/ except the cuBLAS GEMMs (gemm.cu), run on the
// host by the emulator of tests/emu (unmodified kernel sources, see include/emu.h) and compared in the
// same process with the CPU reference (backend cpu, quant, optim). Needs no GPU and no nvcc.
//
// Each check prints one line: what was compared, the measured error and the limit (a tolerance's
// reason is in a comment where it is computed). The emulator's own checks (races, out-of-bounds,
// uninitialised shared memory, barrier divergence, ...) must report no fault for any real kernel;
// the self-test section first shows that each of those checks, and the comparison functions, do fire
// on planted errors.
//
// Environment: LOFT_EMU_SEED sets the scheduling seed (default 1); LOFT_EMU_ONLY=name runs one section
// (selftest, device, dequant, ops, ce, adamw, attention).
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "test.h"

std::mt19937 g_rng(20240611);
static const int WATCHDOG_S = 500; // below the ctest TIMEOUT of 600

bool emu_check(bool ok, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    printf("  [%s] %s\n", ok ? "ok" : "FAIL", msg);
    fflush(stdout);
    CHECKF(ok, "%s", msg);
    return ok;
}

bool report(const char *what, double err, double limit, const char *unit) {
    const bool ok = err <= limit; // NaN fails
    return emu_check(ok, "%s: %.3e (limit %.3e%s%s)", what, err, limit, unit && *unit ? " " : "", unit ? unit : "");
}

bool report_bits(const char *what, long mismatches, long n) {
    return emu_check(mismatches == 0, "%s: %ld of %ld differ (bit-identical required)", what, mismatches, n);
}

bool check_rc(int rc, const char *call) {
    if (rc == 0) return true;
    return emu_check(false, "%s returned %d (%s)", call, rc, lt_cuda_strerror(rc));
}

bool check_no_faults(const char *sect, long before) {
    const long n = emu::faults() - before;
    return emu_check(n == 0, "%s: %ld emulator faults (races, bad accesses, divergence; limit 0)", sect, n);
}

void section(const char *name) {
    printf("\n== %s\n", name);
    fflush(stdout);
}

long bit_mismatches(const void *a, const void *b, size_t elem, size_t n) {
    long d = 0;
    for (size_t i = 0; i < n; i++) d += memcmp((const char *)a + i * elem, (const char *)b + i * elem, elem) != 0;
    return d;
}

double nmse(const float *g, const float *r, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)g[i] - (double)r[i];
        num += d * d;
        den += (double)r[i] * r[i];
    }
    return den > 0 ? num / den : num;
}

int64_t ulp_distance(float a, float b) {
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    // map to a monotonic integer line (negative floats reversed)
    const int64_t la = ia < 0 ? (int64_t)INT32_MIN - ia : ia, lb = ib < 0 ? (int64_t)INT32_MIN - ib : ib;
    return la > lb ? la - lb : lb - la;
}

std::vector<float> randn(size_t n, float scale) {
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (auto &x : v) x = d(g_rng);
    return v;
}

// A kernel that never reaches its next synchronisation point (an endless loop) would hang the test
// until ctest's timeout without saying where: name the kernel and stop first.
static void watchdog(int) {
    const char *k = emu::current_kernel();
    char msg[300];
    const int n = snprintf(msg, sizeof msg, "test_emu_kernels: watchdog: still running after %d s (in kernel %s)\n",
                           WATCHDOG_S, k ? k : "none");
    if (write(2, msg, n > 0 ? (size_t)n : 0) < 0) _exit(3);
    _exit(2);
}

int main() {
    signal(SIGALRM, watchdog);
    alarm(WATCHDOG_S);
    if (const char *s = getenv("LOFT_EMU_SEED")) emu::set_seed((unsigned)strtoul(s, nullptr, 10));
    const char *only = getenv("LOFT_EMU_ONLY");
    lt_threads_set(1); // the CPU reference single-threaded: the emulator is the slow side anyway
    printf("test_emu_kernels: kernels/*.cu on the CUDA emulator (tests/emu), scheduling seed %u\n", emu::seed());
    struct {
        const char *name;
        void (*fn)();
    } sections[] = {{"selftest", test_selftest}, {"device", test_device}, {"dequant", test_dequant},
                    {"ops", test_ops},           {"ce", test_ce},         {"adamw", test_adamw},
                    {"attention", test_attention}};
    const clock_t t_all = clock();
    for (auto &s : sections) {
        if (only && *only && strcmp(only, s.name) != 0) continue;
        const clock_t t0 = clock();
        const long f0 = emu::faults();
        s.fn();
        if (strcmp(s.name, "selftest") != 0) check_no_faults(s.name, f0);
        printf("  (%s: %.1f s)\n", s.name, (double)(clock() - t0) / CLOCKS_PER_SEC);
    }
    const emu::Stats st = emu::stats();
    printf("\nemulator: %ld launches, %ld blocks, %ld threads, %ld barriers, %ld warp shuffles, %ld checked accesses; "
           "%.1f s CPU\n",
           st.launches, st.blocks, st.threads, st.barriers, st.shuffles, st.accesses,
           (double)(clock() - t_all) / CLOCKS_PER_SEC);
    TEST_MAIN_END();
}
