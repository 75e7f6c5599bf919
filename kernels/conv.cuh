// CUDA 2-D convolution, NHWC (DESIGN D4): forward, backward-data and backward-filter.
//
// f32, f16 and bf16 go through cuDNN: NHWC activations and the NHWC filter layout, which is
// exactly wanwu's weight [O, kH, kW, C/groups], so nothing is transposed. f16/bf16 run graph-API
// plans (conv_graph.cuh: cuDNN's Hopper kernels are reachable only there) with f32 accumulation,
// and the legacy API where no plan qualifies; f32 uses the legacy API with FMA math (no TF32), so
// results match the CPU to f32 rounding, unless the thread's f32 precision is tf32
// (core/matmul_precision.hpp), which lets cuDNN pick TF32 tensor-core kernels as PyTorch does by
// default. cuDNN's heuristics choose once per shape (the plan is cached per precision); its
// workspace comes from the stream-ordered allocator.
//
// Direct kernels cover what cuDNN does not: f64 (gradient checks), asymmetric padding (PyTorch's
// padding="same" with an even kernel), and any configuration cuDNN reports as unsupported. They
// are plain loops — one thread per output, or a block per weight element for the filter gradient.
#pragma once

#include <initializer_list>
#include <memory>
#include <string>
#include <unordered_map>

#include "conv_common.cuh"
#include "conv_graph.cuh"
#include "reduce.cuh"

namespace wanwu::cuda {

template <class T>
__global__ void conv_forward_direct(T* out, const T* x, const T* w, const T* bias, ConvGeom g, int64_t total) {
  using A = acc_t<T>;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = i % g.O;
    int64_t t = i / g.O;
    const int64_t ow = t % g.Wo;
    t /= g.Wo;
    const int64_t oh = t % g.Ho, n = t / g.Ho;
    const int64_t c0 = (o / g.Og) * g.Cg;
    A s = bias ? cv<A>(bias[o]) : A(0);
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t ih = oh * g.p.stride_h - g.p.pad_top + kh * g.p.dilation_h;
      if (ih < 0 || ih >= g.H) continue;
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const int64_t iw = ow * g.p.stride_w - g.p.pad_left + kw * g.p.dilation_w;
        if (iw < 0 || iw >= g.W) continue;
        const T* xp = x + ((n * g.H + ih) * g.W + iw) * g.C + c0;
        const T* wp = w + ((o * g.KH + kh) * g.KW + kw) * g.Cg;
        for (int64_t c = 0; c < g.Cg; ++c) s += cv<A>(xp[c]) * cv<A>(wp[c]);
      }
    }
    out[i] = cv<T>(s);
  }
}

template <class T>
__global__ void conv_backward_input_direct(T* gx, const T* gy, const T* w, ConvGeom g, int64_t total) {
  using A = acc_t<T>;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ci = i % g.C;
    int64_t t = i / g.C;
    const int64_t iw = t % g.W;
    t /= g.W;
    const int64_t ih = t % g.H, n = t / g.H;
    const int64_t grp = ci / g.Cg, c = ci % g.Cg;
    A s = 0;
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t th = ih + g.p.pad_top - kh * g.p.dilation_h;
      if (th < 0 || th % g.p.stride_h) continue;
      const int64_t oh = th / g.p.stride_h;
      if (oh >= g.Ho) continue;
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const int64_t tw = iw + g.p.pad_left - kw * g.p.dilation_w;
        if (tw < 0 || tw % g.p.stride_w) continue;
        const int64_t ow = tw / g.p.stride_w;
        if (ow >= g.Wo) continue;
        const T* gp = gy + ((n * g.Ho + oh) * g.Wo + ow) * g.O;
        for (int64_t o = grp * g.Og; o < (grp + 1) * g.Og; ++o)
          s += cv<A>(gp[o]) * cv<A>(w[((o * g.KH + kh) * g.KW + kw) * g.Cg + c]);
      }
    }
    gx[i] = cv<T>(s);
  }
}

// One block per weight element (o, kh, kw, c), reducing over every output pixel.
template <class T>
__global__ void conv_backward_weight_direct(T* gw, const T* gy, const T* x, ConvGeom g) {
  using A = acc_t<T>;
  const int64_t i = blockIdx.x;
  const int64_t c = i % g.Cg;
  int64_t t = i / g.Cg;
  const int64_t kw = t % g.KW;
  t /= g.KW;
  const int64_t kh = t % g.KH, o = t / g.KH;
  const int64_t ci = (o / g.Og) * g.Cg + c;
  const int64_t pixels = g.N * g.Ho * g.Wo;
  A s = 0;
  for (int64_t q = threadIdx.x; q < pixels; q += blockDim.x) {
    const int64_t ow = q % g.Wo, oh = (q / g.Wo) % g.Ho, n = q / (g.Wo * g.Ho);
    const int64_t ih = oh * g.p.stride_h - g.p.pad_top + kh * g.p.dilation_h;
    const int64_t iw = ow * g.p.stride_w - g.p.pad_left + kw * g.p.dilation_w;
    if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
    s += cv<A>(gy[q * g.O + o]) * cv<A>(x[((n * g.H + ih) * g.W + iw) * g.C + ci]);
  }
  s = block_reduce(s, [](A a, A b) { return a + b; });
  if (threadIdx.x == 0) gw[i] = cv<T>(s);
}

template <class T>
__global__ void add_bias_kernel(T* out, const T* bias, int64_t n, int64_t O) {
  using A = acc_t<T>;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = cv<T>(cv<A>(out[i]) + cv<A>(bias[i % O]));
}

// ---- cuDNN ----
// The four descriptors of one convolution, destroyed together.
struct CudnnConv {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  // tf32: an f32 convolution may run on TF32 tensor cores (PyTorch's cudnn.allow_tf32)
  CudnnConv(const ConvGeom& g, DType dt, bool tf32) {
    try {
      set_up(g, dt, tf32);
    } catch (...) {  // a destructor does not run after a throwing constructor
      destroy();
      throw;
    }
  }
  ~CudnnConv() { destroy(); }
  CudnnConv(const CudnnConv&) = delete;
  CudnnConv& operator=(const CudnnConv&) = delete;

 private:
  void set_up(const ConvGeom& g, DType dt, bool tf32) {
    const cudnnDataType_t t = cudnn_dtype(dt);
    WANWU_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
    WANWU_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y));
    WANWU_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
    WANWU_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv));
    WANWU_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NHWC, t, int(g.N), int(g.C), int(g.H), int(g.W)));
    WANWU_CUDNN_CHECK(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NHWC, t, int(g.N), int(g.O), int(g.Ho), int(g.Wo)));
    WANWU_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w, t, CUDNN_TENSOR_NHWC, int(g.O), int(g.Cg), int(g.KH), int(g.KW)));
    WANWU_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv, int(g.p.pad_top), int(g.p.pad_left), int(g.p.stride_h),
                                                      int(g.p.stride_w), int(g.p.dilation_h), int(g.p.dilation_w),
                                                      CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    WANWU_CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv, int(g.G)));
    // f32: FMA only, unless TF32 is allowed (the default math then permits TF32 tensor-core kernels)
    const cudnnMathType_t math = dt != DType::f32 ? CUDNN_TENSOR_OP_MATH : tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
    WANWU_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, math));
  }
  void destroy() noexcept {
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (x) cudnnDestroyTensorDescriptor(x);
  }
};

// Whether cuDNN should run this convolution; false sends it to the direct kernels.
inline bool use_cudnn(const ConvGeom& g, DType dt) {
  if (dt == DType::f64 || !g.symmetric()) return false;
  // cuDNN's descriptors take no zero-sized dimension: an input with no channels, or an empty side
  // that padding turns into a non-empty output, is all bias (the direct kernels write it)
  if (g.N * g.H * g.W * g.C == 0 || g.N * g.Ho * g.Wo * g.O == 0) return false;
  return g.N * g.H * g.W * g.C < (int64_t(1) << 31) && g.N * g.Ho * g.Wo * g.O < (int64_t(1) << 31);
}

// What one convolution shape needs from cuDNN, found once per (device, pass, dtype, geometry) and
// then reused: cuDNN 9's heuristics query and descriptor setup cost more host time than the
// convolution takes on the GPU, so a training step must not repeat them.
struct ConvPlan {
  std::unique_ptr<CudnnConv> d;
  int algo = -1;  // -1: cuDNN supports no algorithm for this shape (the direct kernels run)
  size_t workspace = 0;
};

struct ConvPlanCache {
  std::mutex mu;
  std::unordered_map<std::string, std::unique_ptr<ConvPlan>> plans;
  std::unordered_map<std::string, std::unique_ptr<GraphConvPlan>> graph_plans;  // f16/bf16, conv_graph.cuh
};
inline ConvPlanCache& conv_plans() {
  static ConvPlanCache* cache = new ConvPlanCache;  // never destroyed: see runtime.cuh
  return *cache;
}

// Whether an f32 convolution on this thread may use TF32: the f32 matrix-product precision
// (core/matmul_precision.hpp) covers convolutions too.
inline bool conv_tf32(DType dt) { return dt == DType::f32 && float32_matmul_precision() == MatmulPrecision::tf32; }

// `align`: the alignment every buffer of the call has (16, 8, 4, 2 or 1 bytes). cuDNN's engines
// differ in the alignment they need, so an algorithm found for aligned buffers may not run on a
// view a few elements into its storage; each alignment gets its own plans (PyTorch keys its by
// alignment too).
inline std::string conv_key(int dev, ConvPass pass, DType dt, const ConvGeom& g, ConvAlgorithmSearch search,
                            uint32_t align = 16) {
  return detail::str(dev, '/', int(pass), '/', int(dt), conv_tf32(dt) ? "tf32" : "", 'a', align, '/',
                     int(search), '/', g.N, ',', g.H, ',', g.W, ',', g.C,
                     ',', g.O, ',', g.KH, ',', g.KW, ',', g.Ho, ',', g.Wo, ',', g.G, ',', g.p.stride_h, ',',
                     g.p.stride_w, ',', g.p.pad_top, ',', g.p.pad_left, ',', g.p.dilation_h, ',', g.p.dilation_w);
}

// Runs one convolution pass through cuDNN: run(descriptors, algo, workspace, bytes). The first
// call for a shape asks ranked(descriptors, perf, found) for cuDNN's ranking and keeps the
// algorithm choose_conv_candidate picks (conv_common.cuh). Returns false when cuDNN supports none
// (the caller falls back to the direct kernels); any other failure throws: no silent slow path.
template <class Perf, class Ranked, class Run>
bool cudnn_run(const char* op, ConvPass pass, DType dt, const ConvGeom& g, int dev, uint32_t align, Ranked&& ranked,
               Run&& run) {
  const ConvAlgorithmSearch search = conv_algorithm_search();
  const std::string key = conv_key(dev, pass, dt, g, search, align);
  ConvPlan* plan = nullptr;
  {
    std::lock_guard<std::mutex> lock(conv_plans().mu);
    auto it = conv_plans().plans.find(key);
    if (it != conv_plans().plans.end()) plan = it->second.get();
  }
  if (plan) {
    if (plan->algo < 0) return false;
    const Tensor ws = cudnn_workspace(plan->workspace, dev);
    const cudnnStatus_t st = run(*plan->d, plan->algo, ws.defined() ? ws.data_ptr() : nullptr, plan->workspace);
    WANWU_CHECK_T(DeviceError, st == CUDNN_STATUS_SUCCESS, op, ": cuDNN failed: ", cudnnGetErrorString(st));
    return true;
  }
  auto fresh = std::make_unique<ConvPlan>();
  fresh->d = std::make_unique<CudnnConv>(g, dt, conv_tf32(dt));
  Perf perf[16];
  int found = 0;
  ranked(*fresh->d, perf, found);
  const ConvChoice c = choose_conv_candidate(
      dev, search, found,
      [&](int64_t i, size_t& bytes) {
        bytes = perf[i].memory;
        return perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= kCudnnMaxWorkspace;
      },
      [&](int64_t i, void* ws, size_t bytes) {
        // each ranked algorithm runs with the math type cuDNN ranked it with (as PyTorch does)
        WANWU_CUDNN_CHECK(cudnnSetConvolutionMathType(fresh->d->conv, perf[i].mathType));
        return run(*fresh->d, static_cast<int>(perf[i].algo), ws, bytes);
      });
  const cudnnStatus_t last = c.last;
  if (c.index >= 0) {
    fresh->algo = static_cast<int>(perf[c.index].algo);
    fresh->workspace = c.workspace;
    WANWU_CUDNN_CHECK(cudnnSetConvolutionMathType(fresh->d->conv, perf[c.index].mathType));
  }
  const bool ok = fresh->algo >= 0;
  // cuDNN 9's statuses carry sub-codes (CUDNN_STATUS_NOT_SUPPORTED_SHAPE, ..._LAYOUT, ...)
  WANWU_CHECK_T(DeviceError, ok || CUDNN_STATUS_CATEGORY(last) == CUDNN_STATUS_NOT_SUPPORTED, op, ": cuDNN failed: ",
                cudnnGetErrorString(last));
  std::lock_guard<std::mutex> lock(conv_plans().mu);
  conv_plans().plans.emplace(key, std::move(fresh));
  return ok;
}

// f16/bf16 through cuDNN's graph API (conv_graph.cuh): x, w, y are the buffers of the pass's
// input, filter and output roles (for a backward pass: dx or x, w or dw, dy). False sends the call
// to the legacy path: f32, unaligned buffers, or a shape the graph API gave no usable plan for.
inline bool graph_conv(ConvPass pass, DType dt, const ConvGeom& g, int dev, void* x, void* w, void* y) {
  if (dt != DType::f16 && dt != DType::bf16) return false;
  if (alignment_of({address(x), address(w), address(y)}) < 16) return false;
  const ConvAlgorithmSearch search = conv_algorithm_search();
  const std::string key = conv_key(dev, pass, dt, g, search);
  cudnnHandle_t h = cudnn_handle(dev);
  GraphConvPlan* plan = nullptr;
  {
    std::lock_guard<std::mutex> lock(conv_plans().mu);
    auto it = conv_plans().graph_plans.find(key);
    if (it != conv_plans().graph_plans.end()) plan = it->second.get();
  }
  if (!plan) {  // the build runs the chosen plan on this call's buffers
    auto fresh = graph_conv_build(h, pass, dt, g, x, w, y, dev, search);
    const bool ran = fresh->usable;
    std::lock_guard<std::mutex> lock(conv_plans().mu);
    conv_plans().graph_plans.emplace(key, std::move(fresh));
    return ran;
  }
  if (!plan->usable) return false;
  const Tensor ws = cudnn_workspace(plan->workspace, dev);
  const cudnnStatus_t st = graph_execute(h, plan->plan->get(), x, w, y, ws.defined() ? ws.data_ptr() : nullptr);
  WANWU_CHECK_T(DeviceError, st == CUDNN_STATUS_SUCCESS, "conv2d (cuDNN graph plan): ", cudnnGetErrorString(st));
  return true;
}

inline bool cudnn_forward(const Tensor& out, const Tensor& x, const Tensor& w, const ConvGeom& g) {
  const int dev = out.device().index;
  std::lock_guard<std::mutex> cudnn_lock(context(dev).cudnn_mu);
  if (graph_conv(ConvPass::forward, out.dtype(), g, dev, x.data_ptr(), w.data_ptr(), out.data_ptr())) return true;
  cudnnHandle_t h = cudnn_handle(dev);
  const float alpha = 1.f, beta = 0.f;
  return cudnn_run<cudnnConvolutionFwdAlgoPerf_t>(
      "conv2d", ConvPass::forward, out.dtype(), g, dev,
      alignment_of({address(x.data_ptr()), address(w.data_ptr()), address(out.data_ptr())}),
      [&](const CudnnConv& d, cudnnConvolutionFwdAlgoPerf_t* perf, int& found) {
        WANWU_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, d.x, d.w, d.conv, d.y,
                                                                 CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &found, perf));
      },
      [&](const CudnnConv& d, int algo, void* ws, size_t bytes) {
        return cudnnConvolutionForward(h, &alpha, d.x, x.data_ptr(), d.w, w.data_ptr(), d.conv,
                                       static_cast<cudnnConvolutionFwdAlgo_t>(algo), ws, bytes, &beta, d.y,
                                       out.data_ptr());
      });
}

inline bool cudnn_backward_input(const Tensor& gx, const Tensor& gy, const Tensor& w, const ConvGeom& g) {
  const int dev = gx.device().index;
  std::lock_guard<std::mutex> cudnn_lock(context(dev).cudnn_mu);
  if (graph_conv(ConvPass::backward_input, gx.dtype(), g, dev, gx.data_ptr(), w.data_ptr(), gy.data_ptr()))
    return true;
  cudnnHandle_t h = cudnn_handle(dev);
  const float alpha = 1.f, beta = 0.f;
  return cudnn_run<cudnnConvolutionBwdDataAlgoPerf_t>(
      "conv2d backward (input)", ConvPass::backward_input, gx.dtype(), g, dev,
      alignment_of({address(gx.data_ptr()), address(w.data_ptr()), address(gy.data_ptr())}),
      [&](const CudnnConv& d, cudnnConvolutionBwdDataAlgoPerf_t* perf, int& found) {
        WANWU_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w, d.y, d.conv, d.x,
                                                                      CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &found,
                                                                      perf));
      },
      [&](const CudnnConv& d, int algo, void* ws, size_t bytes) {
        return cudnnConvolutionBackwardData(h, &alpha, d.w, w.data_ptr(), d.y, gy.data_ptr(), d.conv,
                                            static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), ws, bytes, &beta, d.x,
                                            gx.data_ptr());
      });
}

inline bool cudnn_backward_weight(const Tensor& gw, const Tensor& gy, const Tensor& x, const ConvGeom& g) {
  const int dev = gw.device().index;
  std::lock_guard<std::mutex> cudnn_lock(context(dev).cudnn_mu);
  if (graph_conv(ConvPass::backward_weight, gw.dtype(), g, dev, x.data_ptr(), gw.data_ptr(), gy.data_ptr()))
    return true;
  cudnnHandle_t h = cudnn_handle(dev);
  const float alpha = 1.f, beta = 0.f;
  return cudnn_run<cudnnConvolutionBwdFilterAlgoPerf_t>(
      "conv2d backward (weight)", ConvPass::backward_weight, gw.dtype(), g, dev,
      alignment_of({address(x.data_ptr()), address(gw.data_ptr()), address(gy.data_ptr())}),
      [&](const CudnnConv& d, cudnnConvolutionBwdFilterAlgoPerf_t* perf, int& found) {
        WANWU_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x, d.y, d.conv, d.w,
                                                                        CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &found,
                                                                        perf));
      },
      [&](const CudnnConv& d, int algo, void* ws, size_t bytes) {
        return cudnnConvolutionBackwardFilter(h, &alpha, d.x, x.data_ptr(), d.y, gy.data_ptr(), d.conv,
                                              static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), ws, bytes, &beta,
                                              d.w, gw.data_ptr());
      });
}

inline void conv2d_forward(const Tensor& out, const Tensor& x_, const Tensor& w_, const Tensor& bias,
                           const Conv2dParams& p) {
  const Tensor x = contiguous(x_), w = contiguous(w_);
  const ConvGeom g(x.shape(), w.shape(), out.shape(), p);
  const int64_t total = out.numel();
  if (total == 0) return;
  const int dev = out.device().index;
  const cudaStream_t s = stream(dev);
  if (use_cudnn(g, out.dtype()) && cudnn_forward(out, x, w, g)) {
    if (bias.defined()) {
      const Tensor b = contiguous(bias);
      dispatch_floating(out.dtype(), "conv2d", [&](auto tag) {
        using T = typename decltype(tag)::type;
        add_bias_kernel<T><<<blocks_for(total), kThreads, 0, s>>>(ptr<T>(out), ptr<const T>(b), total, g.O);
      });
      WANWU_CUDA_LAUNCH_CHECK();
    }
    return;
  }
  const Tensor b = contiguous(bias);
  dispatch_floating(out.dtype(), "conv2d", [&](auto tag) {
    using T = typename decltype(tag)::type;
    conv_forward_direct<T><<<blocks_for(total), kThreads, 0, s>>>(ptr<T>(out), ptr<const T>(x), ptr<const T>(w),
                                                                  ptr_or_null<const T>(b), g, total);
  });
  WANWU_CUDA_LAUNCH_CHECK();
}

inline void conv2d_backward_input(const Tensor& gx, const Tensor& gy_, const Tensor& w_, const Conv2dParams& p) {
  const Tensor gy = contiguous(gy_), w = contiguous(w_);
  const ConvGeom g(gx.shape(), w.shape(), gy.shape(), p);
  const int64_t total = gx.numel();
  if (total == 0) return;
  const int dev = gx.device().index;
  if (gy.numel() > 0 && use_cudnn(g, gx.dtype()) && cudnn_backward_input(gx, gy, w, g)) return;
  dispatch_floating(gx.dtype(), "conv2d backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    conv_backward_input_direct<T><<<blocks_for(total), kThreads, 0, stream(dev)>>>(ptr<T>(gx), ptr<const T>(gy),
                                                                                   ptr<const T>(w), g, total);
  });
  WANWU_CUDA_LAUNCH_CHECK();
}

inline void conv2d_backward_weight(const Tensor& gw, const Tensor& gy_, const Tensor& x_, const Conv2dParams& p) {
  const Tensor gy = contiguous(gy_), x = contiguous(x_);
  const ConvGeom g(x.shape(), gw.shape(), gy.shape(), p);
  const int64_t total = gw.numel();
  if (total == 0) return;
  const int dev = gw.device().index;
  if (gy.numel() > 0 && use_cudnn(g, gw.dtype()) && cudnn_backward_weight(gw, gy, x, g)) return;
  WANWU_CHECK_SHAPE(total < (int64_t(1) << 31), "conv2d backward: weight too large for the direct kernel");
  dispatch_floating(gw.dtype(), "conv2d backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    conv_backward_weight_direct<T><<<static_cast<unsigned>(total), kThreads, 0, stream(dev)>>>(
        ptr<T>(gw), ptr<const T>(gy), ptr<const T>(x), g);
  });
  WANWU_CUDA_LAUNCH_CHECK();
}

}  // namespace wanwu::cuda
