// The emulated CUDA backend's one translation unit: the kernels of kernels/*.cuh as rewritten by
// rewrite_kernels.py, compiled by g++ against emu_device.hpp, registered for DeviceType::cuda.
#include "cuda_implementation.cuh"
