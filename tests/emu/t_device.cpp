// kernels/device.cu: the runtime wrappers (through the emulated runtime) and the bf16 <-> f32
// conversion kernels against core/dtype.c.
#include <stdio.h>
#include <string.h>

#include "harness.h"

void test_device() {
    section("device.cu: runtime wrappers, bf16 <-> f32 conversions");
    char desc[300];
    const int n_dev = lt_cuda_query(desc, sizeof desc);
    emu_check(n_dev == 1 && strstr(desc, "emulator") != nullptr, "lt_cuda_query: %d device: %s", n_dev, desc);
    lt_cuda_devinfo info;
    const int rc_info = lt_cuda_devinfo_get(0, &info);
    emu_check(rc_info == 0 && info.major == 9 && info.integrated == 0,
              "lt_cuda_devinfo_get: sm_%d%d, integrated %d", info.major, info.minor, info.integrated);
    emu_check(strcmp(lt_cuda_strerror(1), "invalid argument") == 0 &&
                  strstr(lt_cuda_strerror(LT_CUDA_BLAS_ERR_BASE + 7), "invalid value") != nullptr,
              "lt_cuda_strerror: \"%s\", \"%s\"", lt_cuda_strerror(1), lt_cuda_strerror(LT_CUDA_BLAS_ERR_BASE + 7));
    void *stream = nullptr;
    check_rc(lt_cuda_stream_create(&stream), "lt_cuda_stream_create");
    {
        // memset / d2d / h2d / d2h round trip on a stream, and pinned host memory
        Dev<uint32_t> a(1000), b(1000);
        std::vector<uint32_t> h(1000);
        for (size_t i = 0; i < h.size(); i++) h[i] = (uint32_t)(i * 2654435761u);
        check_rc(lt_cuda_memcpy_h2d(a.p, h.data(), 4000, stream), "h2d");
        check_rc(lt_cuda_memset(b.p, 0x5A, 4000, stream), "memset");
        check_rc(lt_cuda_memcpy_d2d(b.p + 10, a.p + 10, 400, stream), "d2d");
        check_rc(lt_cuda_sync(stream), "sync");
        std::vector<uint32_t> r(1000);
        check_rc(lt_cuda_memcpy_d2h(r.data(), b.p, 4000, stream), "d2h");
        long bad = 0;
        for (size_t i = 0; i < r.size(); i++) bad += r[i] != (i >= 10 && i < 110 ? h[i] : 0x5A5A5A5Au);
        report_bits("memset + d2d + d2h round trip", bad, 1000);
        void *pinned = nullptr;
        check_rc(lt_cuda_host_alloc(&pinned, 4096), "lt_cuda_host_alloc");
        check_rc(lt_cuda_host_free(pinned), "lt_cuda_host_free");
    }
    check_rc(lt_cuda_stream_destroy(stream), "lt_cuda_stream_destroy");

    // bf16 -> f32 over all 65536 patterns: exact (the bits on top), NaN payloads included.
    {
        std::vector<uint16_t> h(65536);
        for (size_t i = 0; i < h.size(); i++) h[i] = (uint16_t)i;
        Dev<uint16_t> d(h);
        Dev<float> o(65536);
        check_rc(lt_cuda_bf16_to_f32(d.p, o.p, 65536, nullptr), "lt_cuda_bf16_to_f32");
        std::vector<float> got = o.down(), ref(65536);
        for (size_t i = 0; i < h.size(); i++) ref[i] = lt_bf16_to_f32(h[i]);
        report_bits("lt_cuda_bf16_to_f32, all 65536 bf16 patterns vs lt_bf16_to_f32", bit_mismatches(got.data(), ref.data(), 4, 65536), 65536);
    }
    // f32 -> bf16 (round to nearest even) on special values, ties, subnormals, overflow and random
    // bit patterns: identical to lt_f32_to_bf16 except NaN, where CUDA returns its canonical NaN
    // 0x7FFF and the CPU 0x7FC0|sign (both NaN: checked as NaN).
    {
        std::vector<uint32_t> bits = {0x00000000u, 0x80000000u, 0x3F800000u, 0x3F808000u, 0x3F818000u, 0x3F80FFFFu,
                                      0x3F807FFFu, 0x7F7FFFFFu, 0x7F7F8000u, 0x7F7F7FFFu, 0xFF7F8000u, 0x7F800000u,
                                      0xFF800000u, 0x00000001u, 0x00008000u, 0x00018000u, 0x80008001u, 0x007FFFFFu,
                                      0x7FC00000u, 0xFFC00001u, 0x7F800001u, 0x7FBFFFFFu};
        for (int i = 0; i < 60000; i++) bits.push_back((uint32_t)g_rng());
        const size_t n = bits.size();
        std::vector<float> h(n);
        memcpy(h.data(), bits.data(), n * 4);
        Dev<float> d(h);
        Dev<uint16_t> o(n);
        check_rc(lt_cuda_f32_to_bf16(d.p, o.p, (int64_t)n, nullptr), "lt_cuda_f32_to_bf16");
        std::vector<uint16_t> got = o.down();
        long bad = 0, nans = 0, nan_bad = 0;
        for (size_t i = 0; i < n; i++) {
            if (isnan(h[i])) {
                nans++;
                nan_bad += got[i] != 0x7FFF;
            } else {
                bad += got[i] != lt_f32_to_bf16(h[i]);
            }
        }
        report_bits("lt_cuda_f32_to_bf16 vs lt_f32_to_bf16 (non-NaN inputs)", bad, (long)(n - (size_t)nans));
        emu_check(nan_bad == 0, "lt_cuda_f32_to_bf16 of %ld NaN inputs: canonical NaN 0x7FFF (%ld differ; the CPU "
                                "gives 0x7FC0|sign, also a NaN)", nans, nan_bad);
    }
    emu_check(lt_cuda_bf16_to_f32(nullptr, nullptr, 0, nullptr) == 0, "n = 0 launches nothing and returns 0");
}
