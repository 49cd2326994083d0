// tests/emu/emu.cpp: the CUDA emulator behind include/cuda_runtime.h (see include/emu.h).
//
// Execution. A launch runs its blocks one after the other (x fastest, then y, z). Every thread of a
// block is a fiber with its own stack; the scheduler runs each runnable fiber up to its next
// synchronisation point (barrier, warp shuffle, exit), in a pseudo-random order that changes with
// the seed, then releases whatever can be released: a warp whose 32 lanes all wait in a shuffle,
// the block when all its threads wait in a barrier. Threads that exited while others wait at a
// barrier or in a shuffle, or threads waiting on different kinds of barrier, are faults (barrier
// divergence) and end the launch; so is a deadlock.
//
// Memory checks. The translated kernels are compiled with -fsanitize=thread, which makes the
// compiler call __tsan_readN / __tsan_writeN before every memory access; no ThreadSanitizer runtime
// is linked: the hooks below are the emulator's. While a kernel runs, an address must lie in
//   - the running thread's own stack (locals),
//   - the block's shared memory: the dynamic region of the launch or a static __shared__ variable
//     (anything else in the arena is out of bounds), poisoned with 0xFF bytes at block start;
//     reading a byte no thread of the block has written is a fault (uninitialised shared memory);
//   - a device allocation (cudaMalloc, cudaMallocHost), each surrounded by 256-byte red zones: an
//     access in a red zone is out of bounds; new allocations are filled with 0xFF (NaN) bytes;
//   - __constant__ memory, the kernel parameters or the built-in variables: read only;
// else it is a fault (e.g. a host pointer handed to a kernel). Naturally aligned access sizes are
// checked for alignment, as the GPU requires. __ldg (the non-coherent read-only path) is a fault on
// data the same launch writes, before or after the read.
// Races: every byte of shared and device memory has a shadow record of its last writer and last
// reader (thread, block, barrier epoch). Two accesses to a byte from different threads, at least one
// a write, race unless they are ordered: same block and separated by a __syncthreads. Accesses from
// different blocks of one launch are never ordered (no atomics, no grid sync), so any such pair with
// a write is a race. Warp shuffles exchange registers only and order no memory.
#define EMU_RUNTIME_IMPL 1
#include "cuda_runtime.h"

// Fiber switches: a few lines of assembly on x86-64, ucontext elsewhere (or with -DEMU_UCONTEXT).
#if defined(__x86_64__) && !defined(EMU_UCONTEXT)
#define EMU_ASM_SWITCH 1
#else
#define EMU_ASM_SWITCH 0
#endif

#include <stdarg.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <random>
#include <vector>

#if !EMU_ASM_SWITCH
#include <ucontext.h>
#endif

namespace emu {

Special sr;

namespace {

// ---------------------------------------------------------------- state
constexpr size_t RZ = 256;              // red zone each side of a device allocation
constexpr size_t STACK = 256 * 1024;    // fiber stack (plus one guard page)
constexpr size_t SMEM_LIMIT = 48 * 1024; // static + dynamic shared memory per block (no opt-in emulated)
constexpr size_t ARENA = 128 * 1024;    // the shared arena: regions with 64-byte gaps between them
constexpr size_t GAP = 64;
constexpr int MAX_ECHO = 40;

enum { RUN, WAIT_BLOCK, WAIT_WARP, DONE };

struct Rec { // shadow of one byte
    uint64_t w, r;      // thread keys of the last writer / reader (0: none)
    uint32_t wseg, rseg; // their barrier epochs
    uint32_t rflags;    // RF_SAMESEG / RF_CROSS: other readers unordered with r
    uint32_t pad;
};
enum { RF_SAMESEG = 1, RF_CROSS = 2, RF_LDG = 4 }; // RF_LDG: read through __ldg in this launch

struct Alloc {
    uintptr_t lo, hi; // user range
    char *base;       // malloc'd block, red zones included
    bool pinned;
    std::vector<Rec> shadow;
};

struct Fiber {
#if EMU_ASM_SWITCH
    void *sp = nullptr;
#else
    ucontext_t uc;
#endif
    char *stack = nullptr; // lowest usable byte
    int state = DONE;
    unsigned tid = 0;
    int op = 0, pred = 0, result = 0;                  // barrier
    uint64_t xval = 0, xres = 0;                       // shuffle
    unsigned xsize = 0, xmask = 0;
    int xmode = 0, xarg = 0, xwidth = 0;
};

struct Region {
    uintptr_t lo, hi;
};

long g_faults = 0;
int g_echoed = 0;
bool g_echo = true;
unsigned g_seed = 1;
Stats g_stats = {};
cudaError_t g_last_error = cudaSuccess;

std::map<uintptr_t, Alloc *> g_allocs; // by lo
Alloc *g_last_alloc = nullptr;

// the running launch / block / thread
bool g_active = false;
const char *g_kernel = "";
uint64_t g_block_serial = 0;     // serial number of the running block (from 1)
uint64_t g_launch_first = 1;     // serial of the launch's first block
uint32_t g_seg = 0;              // barrier epoch (global counter)
uint64_t g_key = 0;              // (block serial << 11) | thread
uintptr_t g_stk_lo = 0, g_stk_sz = 0;
Region g_params = {0, 0};
void (*g_thunk)(void *) = nullptr;
void *g_param_ptr = nullptr;
std::vector<Fiber> g_fibers;
Fiber *g_cur = nullptr;
#if EMU_ASM_SWITCH
void *g_sched_sp = nullptr;
#else
ucontext_t g_sched_uc;
#endif
unsigned g_nthreads = 0;
bool g_block_failed = false;

// shared memory
char *g_arena = nullptr;
std::vector<Rec> g_arena_shadow;
uintptr_t g_sm_lo = 0; // arena range
size_t g_dyn_bytes = 0;
size_t g_sm_used = 0;    // bytes of regions (the 48 KiB budget)
size_t g_sm_cursor = 0;  // next free offset in the arena
std::vector<Region> g_sm_regions; // [0] the dynamic region, then the static ones
std::vector<std::pair<const void *, void *>> g_sm_static;

} // namespace

extern "C" {
extern char __start_emu_const[] __attribute__((weak));
extern char __stop_emu_const[] __attribute__((weak));
}

// ---------------------------------------------------------------- faults
static void fault(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char g_last_msg[600];
static void fault(const char *fmt, ...) {
    g_faults++;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (g_last_msg[0] == 0 && g_active && g_cur)
        snprintf(g_last_msg, sizeof g_last_msg, "%s, block (%u,%u,%u) thread (%u,%u,%u): %s", g_kernel, sr.blockIdx.x,
                 sr.blockIdx.y, sr.blockIdx.z, sr.threadIdx.x, sr.threadIdx.y, sr.threadIdx.z, msg);
    else if (g_last_msg[0] == 0 && g_active)
        snprintf(g_last_msg, sizeof g_last_msg, "%s, block (%u,%u,%u): %s", g_kernel, sr.blockIdx.x, sr.blockIdx.y,
                 sr.blockIdx.z, msg);
    else if (g_last_msg[0] == 0)
        snprintf(g_last_msg, sizeof g_last_msg, "%s", msg);
    if (!g_echo || g_echoed >= MAX_ECHO) return;
    g_echoed++;
    if (g_active && g_cur)
        fprintf(stderr, "emu: FAULT in %s, block (%u,%u,%u) thread (%u,%u,%u): %s\n", g_kernel, sr.blockIdx.x,
                sr.blockIdx.y, sr.blockIdx.z, sr.threadIdx.x, sr.threadIdx.y, sr.threadIdx.z, msg);
    else if (g_active)
        fprintf(stderr, "emu: FAULT in %s, block (%u,%u,%u): %s\n", g_kernel, sr.blockIdx.x, sr.blockIdx.y,
                sr.blockIdx.z, msg);
    else
        fprintf(stderr, "emu: FAULT: %s\n", msg);
    if (g_echoed == MAX_ECHO) fprintf(stderr, "emu: (further fault messages suppressed)\n");
}

long faults() { return g_faults; }
void clear_fault_message() { g_last_msg[0] = 0; }
const char *fault_message() { return g_last_msg; }
void set_seed(unsigned s) { g_seed = s; }
unsigned seed() { return g_seed; }
void set_fault_echo(bool on) {
    g_echo = on;
    if (on) g_echoed = 0;
}
Stats stats() { return g_stats; }
const char *current_kernel() { return g_active ? g_kernel : nullptr; }

// ---------------------------------------------------------------- memory registry
static Alloc *find_alloc(uintptr_t a) {
    auto it = g_allocs.upper_bound(a + RZ);
    if (it == g_allocs.begin()) return nullptr;
    --it;
    Alloc *al = it->second;
    if (a + RZ >= al->lo && a < al->hi + RZ) return al;
    return nullptr;
}

// [p, p + n) inside one allocation
static bool device_range(const void *p, size_t n) {
    const uintptr_t a = (uintptr_t)p;
    Alloc *al = find_alloc(a);
    return al && a >= al->lo && a + n <= al->hi;
}

static cudaError_t do_alloc(void **p, size_t bytes, bool pinned) {
    if (!p) return cudaErrorInvalidValue;
    *p = nullptr;
    if (bytes == 0) return cudaSuccess;
    const size_t user = (bytes + 255) / 256 * 256;
    char *base = (char *)aligned_alloc(256, user + 2 * RZ);
    if (!base) return g_last_error = cudaErrorMemoryAllocation;
    memset(base, 0xFF, user + 2 * RZ); // uninitialised device memory reads as NaN
    Alloc *al = new Alloc;
    al->base = base;
    al->lo = (uintptr_t)base + RZ;
    al->hi = al->lo + bytes;
    al->pinned = pinned;
    g_allocs[al->lo] = al;
    *p = (void *)al->lo;
    return cudaSuccess;
}

static cudaError_t do_free(void *p, bool pinned) {
    if (!p) return cudaSuccess;
    auto it = g_allocs.find((uintptr_t)p);
    if (it == g_allocs.end() || it->second->pinned != pinned) {
        fault("%s(%p): not an allocation", pinned ? "cudaFreeHost" : "cudaFree", p);
        return cudaErrorInvalidValue;
    }
    Alloc *al = it->second;
    g_allocs.erase(it);
    if (g_last_alloc == al) g_last_alloc = nullptr;
    free(al->base);
    delete al;
    return cudaSuccess;
}

// ---------------------------------------------------------------- access checks
static inline uint32_t blk(uint64_t key) { return (uint32_t)(key >> 11); }

// Is the access `other` (key, epoch) unordered with the running thread's access? scope_first: the
// first block serial whose accesses still count (the launch for device memory, the block for shared).
static inline bool unordered(uint64_t other, uint32_t oseg, uint64_t scope_first) {
    if (other == 0 || blk(other) < scope_first || other == g_key) return false;
    if (blk(other) != g_block_serial) return true;
    return oseg == g_seg;
}

static const char *what_kind(bool shared) { return shared ? "shared" : "device"; }

// One access of n bytes at a (shadow records sh[0..n)); base: start of the region for messages.
static void track(Rec *sh, unsigned n, bool write, bool shared, uintptr_t a, uintptr_t base) {
    const uint64_t first = shared ? g_block_serial : g_launch_first;
    bool uninit = false, raw = false, waw = false, war = false, ldg = false;
    uint64_t other = 0;
    for (unsigned i = 0; i < n; i++) {
        Rec &r = sh[i];
        if (write) {
            if (unordered(r.w, r.wseg, first)) waw = true, other = r.w;
            const bool rlive = r.r != 0 && blk(r.r) >= first;
            if (rlive && (r.rflags & RF_LDG)) ldg = true;
            if (rlive) {
                if (r.r != g_key && unordered(r.r, r.rseg, first)) war = true, other = r.r;
                if ((r.rflags & RF_CROSS) || ((r.rflags & RF_SAMESEG) && r.rseg == g_seg && blk(r.r) == g_block_serial))
                    war = true, other = r.r;
            }
            r.w = g_key;
            r.wseg = g_seg;
        } else {
            if (shared && (r.w == 0 || blk(r.w) != g_block_serial)) uninit = true;
            if (unordered(r.w, r.wseg, first)) raw = true, other = r.w;
            uint32_t f = 0;
            if (r.r != 0 && blk(r.r) >= first) {
                f = r.rflags;
                if (r.r == g_key) {
                    if (r.rseg != g_seg) f &= ~(uint32_t)RF_SAMESEG;
                } else if (blk(r.r) != g_block_serial) {
                    f = (f | RF_CROSS) & ~(uint32_t)RF_SAMESEG;
                } else if (r.rseg == g_seg) {
                    f |= RF_SAMESEG;
                } else {
                    f &= ~(uint32_t)RF_SAMESEG;
                }
            }
            r.r = g_key;
            r.rseg = g_seg;
            r.rflags = f;
        }
    }
    if (ldg)
        fault("write of %u bytes at offset %ld of an allocation this launch reads through __ldg (the read-only "
              "cache is not coherent: such data must not change during the kernel)", n, (long)(a - base));
    if (uninit)
        fault("read of uninitialised shared memory (%u bytes at offset %ld of its region)", n, (long)(a - base));
    if (raw || waw || war) {
        const char *k = raw ? "read after an unordered write" : waw ? "write after an unordered write"
                                                                  : "write after an unordered read";
        fault("%s race: %s (%u bytes at offset %ld of the %s); the other access: block %u of the launch (linear "
              "index), thread %u",
              what_kind(shared), k, n, (long)(a - base), shared ? "shared region" : "allocation",
              blk(other) - (uint32_t)g_launch_first, (unsigned)(other & 2047));
    }
}

static void shared_access(uintptr_t a, unsigned n, bool write) {
    for (const Region &r : g_sm_regions) {
        if (a >= r.lo && a + n <= r.hi) {
            track(&g_arena_shadow[a - g_sm_lo], n, write, true, a, r.lo);
            return;
        }
    }
    const uintptr_t dyn = g_sm_regions[0].lo;
    fault("shared memory %s out of bounds: %u bytes at offset %ld from the dynamic region (%zu bytes)",
          write ? "write" : "read", n, (long)(a - dyn), g_dyn_bytes);
}

static void slow_access(uintptr_t a, unsigned n, bool write) {
    Alloc *al = find_alloc(a);
    if (al) {
        if (a >= al->lo && a + n <= al->hi) {
            g_last_alloc = al;
            if (al->shadow.empty()) al->shadow.resize(al->hi - al->lo);
            track(&al->shadow[a - al->lo], n, write, false, a, al->lo);
            return;
        }
        fault("device memory %s out of bounds: %u bytes at offset %ld of a %ld-byte allocation",
              write ? "write" : "read", n, (long)(a - al->lo), (long)(al->hi - al->lo));
        return;
    }
    const char *ro = nullptr;
    if (a >= g_params.lo && a + n <= g_params.hi) ro = "the kernel parameters";
    else if (a >= (uintptr_t)&sr && a + n <= (uintptr_t)(&sr + 1)) ro = "a built-in variable";
    else if (__start_emu_const && a >= (uintptr_t)__start_emu_const && a + n <= (uintptr_t)__stop_emu_const)
        ro = "__constant__ memory";
    if (ro) {
        if (write) fault("write to %s", ro);
        return;
    }
    fault("%s of %u bytes at %p: not device memory (a host pointer? another thread's stack?)",
          write ? "write" : "read", n, (void *)a);
}

static inline void on_access(const void *p, unsigned n, bool write, bool aligned) {
    if (!g_active) return;
    const uintptr_t a = (uintptr_t)p;
    if (a - g_stk_lo < g_stk_sz) return; // the thread's own stack
    g_stats.accesses++;
    if (aligned && n <= 8 && (a & (n - 1))) fault("misaligned %u-byte %s at %p", n, write ? "write" : "read", p);
    if (a - g_sm_lo < ARENA) {
        shared_access(a, n, write);
        return;
    }
    Alloc *al = g_last_alloc;
    if (al && a >= al->lo && a + n <= al->hi && !al->shadow.empty()) {
        track(&al->shadow[a - al->lo], n, write, false, a, al->lo);
        return;
    }
    slow_access(a, n, write);
}

static void on_range(const void *p, size_t n, bool write) {
    while (n > 0) { // in pieces, so one record check covers each byte once
        const unsigned k = n > 8 ? 8 : (unsigned)n;
        on_access(p, k, write, false);
        p = (const char *)p + k;
        n -= k;
    }
}

} // namespace emu

// The ThreadSanitizer instrumentation ABI (gcc/clang -fsanitize=thread), implemented by the emulator.
extern "C" {
#define EMU_HOOK(n)                                                                                    \
    void __tsan_read##n(void *p) { emu::on_access(p, n, false, true); }                                \
    void __tsan_write##n(void *p) { emu::on_access(p, n, true, true); }                                \
    void __tsan_unaligned_read##n(void *p) { emu::on_access(p, n, false, false); }                     \
    void __tsan_unaligned_write##n(void *p) { emu::on_access(p, n, true, false); }
EMU_HOOK(1)
EMU_HOOK(2)
EMU_HOOK(4)
EMU_HOOK(8)
void __tsan_read16(void *p) { emu::on_range(p, 16, false); }
void __tsan_write16(void *p) { emu::on_range(p, 16, true); }
void __tsan_unaligned_read16(void *p) { emu::on_range(p, 16, false); }
void __tsan_unaligned_write16(void *p) { emu::on_range(p, 16, true); }
void __tsan_read_range(void *p, unsigned long n) { emu::on_range(p, n, false); }
void __tsan_write_range(void *p, unsigned long n) { emu::on_range(p, n, true); }
void __tsan_func_entry(void *) {}
void __tsan_func_exit(void) {}
void __tsan_init(void) {}
void __tsan_vptr_update(void **, void *) {}
void __tsan_vptr_read(void **) {}
}

namespace emu {
namespace {

// ---------------------------------------------------------------- fibers
#if EMU_ASM_SWITCH
extern "C" void emu_ctx_switch(void **save_sp, void *load_sp);
// Saves the callee-saved registers on the current stack, stores the stack pointer in *save_sp,
// switches to load_sp and restores the registers saved there. No system call (swapcontext saves the
// signal mask with one, which dominated the run time).
asm(R"(
    .pushsection .text
    .globl emu_ctx_switch
    .type emu_ctx_switch, @function
emu_ctx_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_ctx_switch, .-emu_ctx_switch
    .popsection
)");
#endif

void fiber_main() {
    g_thunk(g_param_ptr);
    g_cur->state = DONE;
#if EMU_ASM_SWITCH
    emu_ctx_switch(&g_cur->sp, g_sched_sp);
#else
    swapcontext(&g_cur->uc, &g_sched_uc);
#endif
    abort(); // a finished fiber is never resumed
}

void fiber_start(Fiber &f) {
    if (!f.stack) {
        const long page = sysconf(_SC_PAGESIZE);
        char *m = (char *)mmap(nullptr, STACK + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) {
            perror("emu: mmap");
            abort();
        }
        mprotect(m, page, PROT_NONE); // overflow guard
        f.stack = m + page;
    }
#if EMU_ASM_SWITCH
    uint64_t *sp = (uint64_t *)(((uintptr_t)f.stack + STACK) & ~(uintptr_t)15);
    *--sp = 0;                        // fake return address of fiber_main (keeps the ABI alignment)
    *--sp = (uint64_t)(uintptr_t)&fiber_main;
    for (int i = 0; i < 6; i++) *--sp = 0; // rbp rbx r12 r13 r14 r15
    f.sp = sp;
#else
    getcontext(&f.uc);
    f.uc.uc_stack.ss_sp = f.stack;
    f.uc.uc_stack.ss_size = STACK;
    f.uc.uc_link = nullptr;
    makecontext(&f.uc, fiber_main, 0);
#endif
    f.state = RUN;
}

void resume(Fiber &f) {
    g_cur = &f;
    const unsigned bx = sr.blockDim.x, by = sr.blockDim.y;
    sr.threadIdx = {f.tid % bx, (f.tid / bx) % by, f.tid / (bx * by)};
    g_key = (g_block_serial << 11) | f.tid;
    g_stk_lo = (uintptr_t)f.stack;
    g_stk_sz = STACK;
    g_stats.switches++;
#if EMU_ASM_SWITCH
    emu_ctx_switch(&g_sched_sp, f.sp);
#else
    swapcontext(&g_sched_uc, &f.uc);
#endif
    g_stk_lo = 0;
    g_stk_sz = 0;
    g_cur = nullptr; // faults found by the scheduler name the block, not a thread
}

void yield(int state) {
    Fiber *f = g_cur;
    f->state = state;
#if EMU_ASM_SWITCH
    emu_ctx_switch(&f->sp, g_sched_sp);
#else
    swapcontext(&f->uc, &g_sched_uc);
#endif
}

// Warp w: release its lanes from a shuffle when all of them wait in one. Returns 1 released,
// 0 not ready, -1 fault (ends the block).
int release_warp(unsigned w) {
    const unsigned lo = w * 32, hi = std::min(lo + 32, g_nthreads);
    unsigned waiting = 0, done = 0;
    for (unsigned t = lo; t < hi; t++) {
        waiting += g_fibers[t].state == WAIT_WARP;
        done += g_fibers[t].state == DONE;
    }
    if (waiting == 0) return 0;
    if (waiting + done == hi - lo && done > 0) {
        fault("warp %u: shuffle while %u of its lanes have exited", w, done);
        return -1;
    }
    if (waiting != hi - lo) return 0;
    const Fiber &f0 = g_fibers[lo];
    const unsigned present = hi - lo == 32 ? 0xFFFFFFFFu : ((1u << (hi - lo)) - 1u);
    for (unsigned t = lo; t < hi; t++) {
        const Fiber &f = g_fibers[t];
        if (f.xmode != f0.xmode || f.xsize != f0.xsize || f.xwidth != f0.xwidth || f.xmask != f0.xmask) {
            fault("warp %u: lanes in different shuffles (divergence)", w);
            return -1;
        }
    }
    if (f0.xmask != present) {
        fault("warp %u: shuffle mask 0x%08x, but the present lanes are 0x%08x", w, f0.xmask, present);
        return -1;
    }
    const int width = f0.xwidth;
    if (width <= 0 || width > 32 || (width & (width - 1))) {
        fault("warp %u: shuffle width %d", w, width);
        return -1;
    }
    for (unsigned t = lo; t < hi; t++) {
        Fiber &f = g_fibers[t];
        const int lane = (int)(t - lo), seg0 = lane & ~(width - 1);
        int src = lane;
        switch (f.xmode) {
        case SHFL_IDX: src = seg0 + (f.xarg & (width - 1)); break;
        case SHFL_UP: src = lane - f.xarg >= seg0 ? lane - f.xarg : lane; break;
        case SHFL_DOWN: src = lane + f.xarg < seg0 + width ? lane + f.xarg : lane; break;
        case SHFL_XOR: src = (lane ^ f.xarg) < seg0 + width ? (lane ^ f.xarg) : lane; break;
        }
        if (src < 0 || (unsigned)src >= hi - lo) {
            fault("warp %u: lane %d reads absent lane %d", w, lane, src);
            return -1;
        }
        f.xres = g_fibers[lo + (unsigned)src].xval;
    }
    for (unsigned t = lo; t < hi; t++) g_fibers[t].state = RUN;
    g_stats.shuffles++;
    return 1;
}

void run_block(std::mt19937 &rng) {
    const unsigned nt = g_nthreads;
    // shared memory: dynamic region first, poisoned
    g_sm_lo = (uintptr_t)g_arena;
    g_sm_regions.clear();
    g_sm_static.clear();
    g_sm_regions.push_back({g_sm_lo + GAP, g_sm_lo + GAP + g_dyn_bytes});
    g_sm_cursor = (GAP + g_dyn_bytes + GAP + 15) / 16 * 16;
    g_sm_used = g_dyn_bytes;
    memset(g_arena, 0xFF, ARENA);
    g_block_failed = false;
    if (g_fibers.size() < nt) g_fibers.resize(nt);
    for (unsigned t = 0; t < nt; t++) {
        g_fibers[t].tid = t;
        fiber_start(g_fibers[t]);
    }
    g_seg++;
    std::vector<unsigned> order(nt);
    for (;;) {
        for (unsigned t = 0; t < nt; t++) order[t] = t;
        std::shuffle(order.begin(), order.end(), rng);
        for (unsigned t : order)
            if (g_fibers[t].state == RUN) {
                resume(g_fibers[t]);
                if (g_block_failed) return;
            }
        unsigned done = 0, wb = 0;
        for (unsigned t = 0; t < nt; t++) {
            done += g_fibers[t].state == DONE;
            wb += g_fibers[t].state == WAIT_BLOCK;
        }
        if (done == nt) return;
        bool released = false;
        for (unsigned w = 0; w * 32 < nt; w++) {
            const int r = release_warp(w);
            if (r < 0) {
                g_block_failed = true;
                return;
            }
            released |= r > 0;
        }
        if (released) continue;
        if (wb == nt) {
            const int op = g_fibers[0].op;
            int any = 0, all = 1, count = 0;
            for (unsigned t = 0; t < nt; t++) {
                if (g_fibers[t].op != op) {
                    fault("threads 0 and %u wait in different kinds of barrier (divergence)", t);
                    g_block_failed = true;
                    return;
                }
                any |= g_fibers[t].pred;
                all &= g_fibers[t].pred;
                count += g_fibers[t].pred;
            }
            const int res = op == BAR_OR ? any : op == BAR_AND ? all : op == BAR_COUNT ? count : 0;
            for (unsigned t = 0; t < nt; t++) {
                g_fibers[t].result = res;
                g_fibers[t].state = RUN;
            }
            g_seg++; // a new epoch: everything before the barrier is ordered before everything after
            g_stats.barriers++;
            continue;
        }
        if (wb > 0 && wb + done == nt)
            fault("__syncthreads reached by %u threads while %u have exited (barrier divergence)", wb, done);
        else
            fault("deadlock: %u threads done, %u at a barrier, %u in a warp shuffle", done, wb, nt - done - wb);
        g_block_failed = true;
        return;
    }
}

} // namespace

// ---------------------------------------------------------------- device-side entry points
int block_barrier(int op, int pred) {
    if (!g_active || !g_cur) {
        fault("__syncthreads outside a kernel");
        return 0;
    }
    g_cur->op = op;
    g_cur->pred = pred != 0;
    yield(WAIT_BLOCK);
    return g_cur->result;
}

uint64_t warp_shuffle(unsigned mask, uint64_t bits, unsigned size, int mode, int arg, int width) {
    if (!g_active || !g_cur) {
        fault("warp shuffle outside a kernel");
        return bits;
    }
    Fiber *f = g_cur;
    f->xmask = mask;
    f->xval = bits;
    f->xsize = size;
    f->xmode = mode;
    f->xarg = arg;
    f->xwidth = width;
    yield(WAIT_WARP);
    return g_cur->xres;
}

// __ldg(p): ld.global.nc, through the non-coherent read-only cache. The data must be global memory
// that no thread writes during the launch: a write before (by any thread, this one included) or after
// the read is a fault. Called after the read itself went through the checks.
void ldg_mark(const void *p, size_t n) {
    if (!g_active) return;
    const uintptr_t a = (uintptr_t)p;
    Alloc *al = find_alloc(a);
    if (!al || a < al->lo || a + n > al->hi || al->shadow.empty()) {
        if (!(__start_emu_const && a >= (uintptr_t)__start_emu_const && a + n <= (uintptr_t)__stop_emu_const))
            fault("__ldg of %zu bytes at %p: not global memory", n, p);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        Rec &r = al->shadow[a - al->lo + i];
        if (r.w != 0 && blk(r.w) >= g_launch_first) {
            fault("__ldg of %zu bytes at offset %ld of an allocation this launch wrote (the read-only cache is not "
                  "coherent)", n, (long)(a - al->lo));
            return;
        }
        r.rflags |= RF_LDG;
    }
}

void *static_shared(const void *tag, size_t bytes, size_t align) {
    for (auto &e : g_sm_static)
        if (e.first == tag) return e.second;
    if (align < 16) align = 16;
    size_t off = (g_sm_cursor + align - 1) / align * align;
    if (g_sm_used + bytes > SMEM_LIMIT || off + bytes + GAP > ARENA) {
        fault("static + dynamic shared memory over %zu bytes", SMEM_LIMIT);
        off = 0; // the arena's first gap: every access there is out of bounds
        bytes = 0;
    }
    void *p = g_arena + off;
    g_sm_static.push_back({tag, p});
    if (bytes) g_sm_regions.push_back({(uintptr_t)p, (uintptr_t)p + bytes});
    g_sm_used += bytes;
    g_sm_cursor = off + bytes + GAP;
    return p;
}

void *dynamic_shared() { return (void *)g_sm_regions[0].lo; }

void run_grid(const Cfg &c, const char *name, void (*thunk)(void *), void *params, size_t params_bytes) {
    const dim3 g = c.grid, b = c.block;
    const unsigned long long nt = (unsigned long long)b.x * b.y * b.z;
    if (g_active) {
        fault("launch of %s from inside a kernel", name);
        return;
    }
    if (nt == 0 || nt > 1024 || b.x > 1024 || b.y > 1024 || b.z > 64 || g.x == 0 || g.y == 0 || g.z == 0 ||
        g.x > 0x7FFFFFFFu || g.y > 65535 || g.z > 65535) {
        g_last_error = cudaErrorInvalidConfiguration;
        return;
    }
    if (c.smem > SMEM_LIMIT) {
        g_last_error = cudaErrorInvalidValue;
        return;
    }
    if (!g_arena) {
        g_arena = (char *)aligned_alloc(256, ARENA);
        g_arena_shadow.resize(ARENA);
    }
    g_stats.launches++;
    g_kernel = name;
    g_thunk = thunk;
    g_param_ptr = params;
    g_params = {(uintptr_t)params, (uintptr_t)params + params_bytes};
    g_nthreads = (unsigned)nt;
    g_dyn_bytes = c.smem;
    sr.blockDim = b;
    sr.gridDim = g;
    g_launch_first = g_block_serial + 1;
    std::mt19937 rng(g_seed * 2654435761u + (unsigned)g_stats.launches);
    g_active = true;
    for (unsigned z = 0; z < g.z; z++)
        for (unsigned y = 0; y < g.y; y++)
            for (unsigned x = 0; x < g.x; x++) {
                g_block_serial++;
                sr.blockIdx = {x, y, z};
                g_stats.blocks++;
                g_stats.threads += (long)nt;
                run_block(rng);
                if (g_block_failed) {
                    fault("launch of %s abandoned after the fault above", name);
                    goto out;
                }
            }
out:
    g_active = false;
    g_cur = nullptr;
    g_kernel = "";
    g_params = {0, 0};
}

// ---------------------------------------------------------------- device libm
namespace {
uint32_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return (uint32_t)x;
}
float nudge(float r, uint64_t arg_bits, int max_ulp, float lo = -INFINITY, float hi = INFINITY) {
    if (!g_active || !std::isfinite(r) || r == 0.0f) return r;
    int k = (int)(mix(arg_bits) % (uint32_t)(2 * max_ulp + 1)) - max_ulp;
    for (; k > 0; k--) r = nextafterf(r, INFINITY);
    for (; k < 0; k++) r = nextafterf(r, -INFINITY);
    return std::min(std::max(r, lo), hi);
}
double nudge(double r, uint64_t arg_bits, int max_ulp, double lo = -INFINITY, double hi = INFINITY) {
    if (!g_active || !std::isfinite(r) || r == 0.0) return r;
    int k = (int)(mix(arg_bits) % (uint32_t)(2 * max_ulp + 1)) - max_ulp;
    for (; k > 0; k--) r = nextafter(r, INFINITY);
    for (; k < 0; k++) r = nextafter(r, -INFINITY);
    return std::min(std::max(r, lo), hi);
}
uint64_t bits(float x) { return __float_as_uint(x); }
uint64_t bits(double x) { return (uint64_t)__double_as_longlong(x); }
} // namespace

float dev_expf(float x) { return x == 0.0f ? 1.0f : nudge(::expf(x), bits(x), 2); }
float dev_exp2f(float x) { return x == 0.0f ? 1.0f : nudge(::exp2f(x), bits(x), 2); }
float dev_logf(float x) { return x == 1.0f ? 0.0f : nudge(::logf(x), bits(x), 1); }
float dev_log2f(float x) { return x == 1.0f ? 0.0f : nudge(::log2f(x), bits(x), 1); }
float dev_sinf(float x) { return nudge(::sinf(x), bits(x), 2, -1.0f, 1.0f); }
float dev_cosf(float x) { return x == 0.0f ? 1.0f : nudge(::cosf(x), bits(x), 2, -1.0f, 1.0f); }
float dev_tanhf(float x) { return nudge(::tanhf(x), bits(x), 2, -1.0f, 1.0f); }
float dev_powf(float x, float y) { return nudge(::powf(x, y), bits(x) * 31 + bits(y), 4); }
double dev_exp(double x) { return x == 0.0 ? 1.0 : nudge(::exp(x), bits(x), 1); }
double dev_log(double x) { return x == 1.0 ? 0.0 : nudge(::log(x), bits(x), 1); }
double dev_sin(double x) { return nudge(::sin(x), bits(x), 2, -1.0, 1.0); }
double dev_cos(double x) { return x == 0.0 ? 1.0 : nudge(::cos(x), bits(x), 2, -1.0, 1.0); }

// ---------------------------------------------------------------- symbols
cudaError_t memcpy_to_symbol(void *symbol, size_t symbol_bytes, const void *src, size_t count, size_t offset,
                             cudaMemcpyKind kind) {
    const uintptr_t s = (uintptr_t)symbol;
    if (!__start_emu_const || s < (uintptr_t)__start_emu_const || s + symbol_bytes > (uintptr_t)__stop_emu_const)
        return g_last_error = cudaErrorInvalidSymbol;
    if (offset + count > symbol_bytes || (kind != cudaMemcpyHostToDevice && kind != cudaMemcpyDefault))
        return g_last_error = cudaErrorInvalidValue;
    memcpy((char *)symbol + offset, src, count);
    return cudaSuccess;
}
cudaError_t memcpy_from_symbol(void *dst, const void *symbol, size_t symbol_bytes, size_t count, size_t offset,
                               cudaMemcpyKind kind) {
    const uintptr_t s = (uintptr_t)symbol;
    if (!__start_emu_const || s < (uintptr_t)__start_emu_const || s + symbol_bytes > (uintptr_t)__stop_emu_const)
        return g_last_error = cudaErrorInvalidSymbol;
    if (offset + count > symbol_bytes || (kind != cudaMemcpyDeviceToHost && kind != cudaMemcpyDefault))
        return g_last_error = cudaErrorInvalidValue;
    memcpy(dst, (const char *)symbol + offset, count);
    return cudaSuccess;
}

} // namespace emu

// ---------------------------------------------------------------- runtime API
using emu::g_last_error;

cudaError_t cudaGetDeviceCount(int *n) {
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int device) {
    if (device != 0) return g_last_error = cudaErrorInvalidDevice;
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "loft CUDA emulator (tests/emu)");
    p->totalGlobalMem = (size_t)1 << 32;
    p->sharedMemPerBlock = emu::SMEM_LIMIT;
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = 1;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr attr, int device) {
    if (device != 0) return g_last_error = cudaErrorInvalidDevice;
    switch (attr) {
    case cudaDevAttrIntegrated: *v = 0; break;
    case cudaDevAttrManagedMemory: *v = 0; break;
    case cudaDevAttrPageableMemoryAccess: *v = 0; break;
    default: return g_last_error = cudaErrorInvalidValue;
    }
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int *device) {
    *device = 0;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : (g_last_error = cudaErrorInvalidDevice); }
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    *free_bytes = *total_bytes = (size_t)1 << 32;
    return cudaSuccess;
}
cudaError_t cudaMalloc(void **p, size_t bytes) { return emu::do_alloc(p, bytes, false); }
cudaError_t cudaFree(void *p) { return emu::do_free(p, false); }
cudaError_t cudaMallocHost(void **p, size_t bytes) { return emu::do_alloc(p, bytes, true); }
cudaError_t cudaFreeHost(void *p) { return emu::do_free(p, true); }

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    return cudaMemcpyAsync(dst, src, bytes, kind, 0);
}
// Launches run to completion when they are made, so every copy is ordered after them already.
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
    if (bytes == 0) return cudaSuccess;
    bool ok = true;
    switch (kind) {
    case cudaMemcpyHostToDevice: ok = emu::device_range(dst, bytes); break;
    case cudaMemcpyDeviceToHost: ok = emu::device_range(src, bytes); break;
    case cudaMemcpyDeviceToDevice: ok = emu::device_range(dst, bytes) && emu::device_range(src, bytes); break;
    case cudaMemcpyHostToHost: break;
    case cudaMemcpyDefault: break;
    default: return g_last_error = cudaErrorInvalidMemcpyDirection;
    }
    if (!ok) {
        emu::fault("cudaMemcpy (kind %d) of %zu bytes: device side not inside one allocation (dst %p, src %p)",
                   (int)kind, bytes, dst, src);
        return g_last_error = cudaErrorInvalidValue;
    }
    memmove(dst, src, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemset(void *dst, int value, size_t bytes) { return cudaMemsetAsync(dst, value, bytes, 0); }
cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t) {
    if (bytes == 0) return cudaSuccess;
    if (!emu::device_range(dst, bytes)) {
        emu::fault("cudaMemset of %zu bytes at %p: not inside one allocation", bytes, dst);
        return g_last_error = cudaErrorInvalidValue;
    }
    memset(dst, value, bytes);
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) {
    static char streams[64];
    static unsigned next = 0;
    *s = (cudaStream_t)(void *)&streams[next++ % 64]; // a distinct non-null handle
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaGetLastError() {
    const cudaError_t e = g_last_error;
    g_last_error = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError() { return g_last_error; }
const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidSymbol: return "cudaErrorInvalidSymbol";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    }
    return "cudaErrorUnknown";
}
const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidSymbol: return "invalid device symbol";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    }
    return "unknown error";
}
