// The CUDA emulator's launch profile: which kernels and library calls a piece of device work
// makes, how often, and how many bytes their pointer arguments reach. Without a GPU this is the
// one view of a training step's device work there is: a pass that should not exist (a cast, a
// copy, a zero fill, an elementwise pass that could ride in a neighbour) shows as a row, and its
// bytes say what it would cost at the copy bandwidth. Bytes are an upper bound: a pointer counts
// to the end of its block, and multi-tensor kernels' pointer tables are not followed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace wanwu::emu {

struct ProfileRow {
  std::string name;  // a kernel's name, or the runtime or library call
  uint64_t calls = 0, threads = 0, bytes = 0;
};

// Clears the rows and starts recording.
void profile_start();
// Stops recording; returns the rows by bytes, largest first.
std::vector<ProfileRow> profile_stop();

}  // namespace wanwu::emu
