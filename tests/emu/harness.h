// tests/emu: helpers shared by the test files of test_emu_kernels (main.cpp holds the CHECK counters
// of tests/unit/test.h; the family files report through emu_check / report_*).
#ifndef LT_EMU_HARNESS_H
#define LT_EMU_HARNESS_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <random>
#include <vector>

extern "C" {
#include "backend/backend.h"
#include "core/core.h"
#include "quant/quant.h"
#include "train/optim.h"
}
#include "lt_cuda.cuh"

#include "emu.h"

// One check: prints "  [ok|FAIL] line" (to stdout) and records it like CHECKF.
bool emu_check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// "what: <err> (limit <limit> <unit>)", ok when err <= limit (and err is not NaN).
bool report(const char *what, double err, double limit, const char *unit);
// "what: <mismatches> of <n> differ (bit-identical required)".
bool report_bits(const char *what, long mismatches, long n);
// A CUDA return code that must be 0.
bool check_rc(int rc, const char *call);
// No emulator fault since `before` (emu::faults() taken at the start of a section).
bool check_no_faults(const char *section, long before);
void section(const char *name);

// Elements whose bits differ.
long bit_mismatches(const void *a, const void *b, size_t elem_bytes, size_t n);
// sum (g - r)^2 / sum r^2 (double accumulation).
double nmse(const float *g, const float *r, size_t n);
// Distance in units in the last place between two finite floats of the same sign (or across 0).
int64_t ulp_distance(float a, float b);

extern std::mt19937 g_rng;
std::vector<float> randn(size_t n, float scale = 1.0f);

// A device buffer (lt_cuda_malloc, which goes through the emulated runtime), freed on scope exit.
template <class T> struct Dev {
    T *p = nullptr;
    size_t n = 0;
    explicit Dev(size_t count) : n(count) { check_rc(lt_cuda_malloc((void **)&p, count * sizeof(T)), "lt_cuda_malloc"); }
    Dev(const std::vector<T> &h) : Dev(h.size()) { up(h); }
    ~Dev() { lt_cuda_free(p); }
    Dev(const Dev &) = delete;
    Dev &operator=(const Dev &) = delete;
    void up(const T *h, size_t count) { check_rc(lt_cuda_memcpy_h2d(p, h, count * sizeof(T), nullptr), "h2d"); }
    void up(const std::vector<T> &h) { up(h.data(), h.size()); }
    std::vector<T> down() const {
        std::vector<T> h(n);
        check_rc(lt_cuda_memcpy_d2h(h.data(), p, n * sizeof(T), nullptr), "d2h");
        return h;
    }
    void fill_bytes(int v) { check_rc(lt_cuda_memset(p, v, n * sizeof(T), nullptr), "memset"); }
};

// The family tests (one file each).
void test_selftest();
void test_device();
void test_dequant();
void test_ops();
void test_ce();
void test_adamw();
void test_attention();

#endif
