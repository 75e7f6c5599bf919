// wanwu (万物, "all things"): a header-only C++20 library for fine-tuning image classifiers on
// CUDA and CPU. Include this one header. Read top to bottom, the includes below are the
// architecture in dependency order: core types, the autograd graph, the Backend interface, the
// differentiable ops, the engine, and finally the CPU backend that every program has.
#pragma once

// core: dtypes (with f16/bf16), devices, shapes, storage and allocators, random numbers, Tensor
#include "core/allocator.hpp"
#include "core/capture.hpp"
#include "core/device.hpp"
#include "core/dims.hpp"
#include "core/dtype.hpp"
#include "core/error.hpp"
#include "core/half.hpp"
#include "core/rng.hpp"
#include "core/scalar.hpp"
#include "core/storage.hpp"
#include "core/tensor.hpp"
#include "core/threads.hpp"

// autograd graph: nodes, saved tensors, grad mode
#include "autograd/grad_mode.hpp"
#include "autograd/node.hpp"

// the Backend interface, per-element functors shared by CPU and CUDA
#include "backend/backend.hpp"
#include "backend/functors.hpp"
#include "backend/step_graph.hpp"

// differentiable ops, one family per header
#include "ops/factory.hpp"
#include "ops/copy.hpp"
#include "ops/view.hpp"
#include "ops/elementwise.hpp"
#include "ops/activation.hpp"
#include "ops/reduce.hpp"
#include "ops/linalg.hpp"
#include "ops/shape.hpp"
#include "ops/index.hpp"
#include "ops/options.hpp"
#include "ops/conv.hpp"
#include "ops/pool.hpp"
#include "ops/norm.hpp"
#include "ops/softmax.hpp"
#include "ops/loss.hpp"
#include "ops/dropout.hpp"
#include "ops/attention.hpp"
#include "ops/pad.hpp"
#include "ops/interpolate.hpp"

// the backward engine and the Tensor autograd methods; printing
#include "autograd/engine.hpp"
#include "core/print.hpp"

// modules, optimizers, mixed precision
#include "nn/module.hpp"
#include "nn/init.hpp"
#include "nn/layers.hpp"
#include "nn/attention.hpp"
#include "nn/conv_bn.hpp"
#include "optim/optimizer.hpp"
#include "optim/foreach.hpp"
#include "optim/sgd.hpp"
#include "optim/adam.hpp"
#include "optim/sched.hpp"
#include "optim/clip.hpp"
#include "optim/ema.hpp"
#include "optim/accumulation.hpp"
#include "amp/autocast.hpp"
#include "amp/grad_scaler.hpp"

// weights files (safetensors, PyTorch .pth) and the model zoo with torchvision's names
#include "io/safetensors.hpp"
#include "io/pth.hpp"
#include "models/registry.hpp"
#include "io/weights.hpp"

// The data pipeline (decoding, transforms, datasets, DataLoader) is a separate include,
// <wanwu/data/data.hpp>, so programs that never decode images don't compile stb_image.

// the CPU backend (compiled here unless the program builds it once: WANWU_CPU_BACKEND_EXTERN)
#if !defined(WANWU_CPU_BACKEND_EXTERN)
#include "backend/cpu/cpu_backend.hpp"
#endif
