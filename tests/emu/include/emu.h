// tests/emu: control interface of the CUDA emulator (what the test program sees of it).
//
// The emulator runs the UNMODIFIED kernel sources of kernels/*.cu on the host: transform.py rewrites
// the `<<<...>>>` launches and `__shared__` declarations of a copy at build time, include/cuda_*.h
// stand in for the CUDA headers, and emu.cpp runs every CUDA thread as a fiber (one block at a time),
// with barriers, warp shuffles, memory checks and the CUDA runtime calls the kernels' host code makes.
// Everything it finds wrong while a kernel runs (data race, out-of-bounds or misaligned access,
// uninitialised shared memory, barrier divergence, ...) is a "fault": printed and counted here.
#ifndef LT_EMU_H
#define LT_EMU_H

#include <stddef.h>
#include <stdint.h>

namespace emu {

long faults();                   // faults recorded so far (the tests require 0 outside the planted controls)
void clear_fault_message();      // forget the recorded message
const char *fault_message();     // the first fault's message since clear_fault_message() ("" when none)
void set_seed(unsigned seed);    // scheduling seed: the order threads run between synchronisation points
unsigned seed();
void set_fault_echo(bool on);    // print fault messages (default on)

struct Stats {
    long launches, blocks, threads, barriers, shuffles, switches, accesses;
};
Stats stats();
const char *current_kernel();    // the kernel running now (NULL between launches)

} // namespace emu

#endif
