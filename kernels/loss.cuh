// CUDA fused cross-entropy over [N, C] logits with class-index targets; the formulas are the
// Backend contract's (backend/backend.hpp, above cross_entropy_forward).
//
// The forward reads each row for its maximum, then sums exp(x - max) and, with label smoothing,
// sum_c w_c x_c in the same pass: the smoothing term sum_c w_c (lse - x_c) is lse W - sum_c w_c x_c,
// so it needs no pass after lse is known. The backward writes every gradient element once from the
// saved lse. As in softmax.cuh, a warp owns a short row (the forward holds it in registers, so it is
// read from memory once) and a block owns a longer one. The split is at 512 classes, lower than
// softmax's: a classifier's loss has a few hundred rows of 1000 classes, and at a warp per row that
// fills only rows / 8 blocks of the GPU. W = sum_c w_c, needed only with both weights and
// smoothing, is one small reduction per call. Ignored rows get loss 0, lse 0 and gradient 0.
// Math in f32 (f64 for f64); an all -inf row gives NaN, as on the CPU.
//
// Targets are checked here, where they are read, not by the host before the launch: that check
// would wait for the forward pass at every step (device_check.cuh). A target out of range gives
// the row a NaN loss and NaN gradients, and is raised as IndexError at the next read.
#pragma once

#include "device_check.cuh"
#include "norm.cuh"
#include "softmax.cuh"

namespace wanwu::cuda {

inline constexpr int64_t kCrossEntropyWarpMax = 512;

template <class T>
__global__ void class_weight_sum_kernel(acc_t<T>* out, const T* w, int64_t C) {
  using A = acc_t<T>;
  A s = 0;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s += cv<A>(w[c]);
  s = block_reduce(s, [](A a, A b) { return a + b; });
  if (threadIdx.x == 0) *out = s;
}

// A target that is neither a class nor ignore_index: reported, and the row's loss is NaN.
__device__ __forceinline__ bool bad_target(int64_t t, int64_t C, const CrossEntropyParams& p) {
  return t != p.ignore_index && (t < 0 || t >= C);
}
template <class T, class A>
__device__ __forceinline__ void store_bad_target(T* loss, A* lse, int64_t row, int64_t t, const CheckSite& bad) {
  bad.report(t);
  loss[row] = cv<T>(std::numeric_limits<A>::quiet_NaN());
  lse[row] = std::numeric_limits<A>::quiet_NaN();
}

// The row's loss from its maximum mx, sum of exp(x - mx) s and sum_c w_c x_c wx.
template <class T, class A>
__device__ __forceinline__ void cross_entropy_store(T* loss, A* lse, int64_t row, int64_t t, A mx, A s, A wx,
                                                    const T* xr, const T* w, const A* wsum, int64_t C,
                                                    const CrossEntropyParams& p) {
  const A l = mx + fm::log(s), e = A(p.label_smoothing);
  const A wt = w ? cv<A>(w[t]) : A(1);
  A v = (A(1) - e) * wt * (l - cv<A>(xr[t]));
  if (p.label_smoothing > 0) v += e / A(C) * (l * (wsum ? *wsum : A(C)) - wx);
  loss[row] = cv<T>(v);
  lse[row] = l;
}

// A warp per row of C <= 32 * PER classes, PER values per lane in registers, all loads in flight
// before the first use (softmax_warp_kernel's layout).
template <class T, int PER>
__global__ void cross_entropy_forward_warp_kernel(T* loss, acc_t<T>* lse, const T* x, const int64_t* target,
                                                  const T* w, const acc_t<T>* wsum, int64_t N, int C,
                                                  CrossEntropyParams p, CheckSite bad) {
  using A = acc_t<T>;
  const int64_t row = blockIdx.x * int64_t(kRowsPerBlock) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= N) return;  // whole warps leave together: the shuffles below see full warps
  const int64_t t = target[row];
  if (t == p.ignore_index) {
    if (lane == 0) {
      loss[row] = cv<T>(A(0));
      lse[row] = A(0);
    }
    return;
  }
  if (bad_target(t, C, p)) {  // t is the row's: the whole warp leaves
    if (lane == 0) store_bad_target(loss, lse, row, t, bad);
    return;
  }
  const T* xr = x + row * C;
  A v[PER];
  const A mx = warp_load_row_max(v, xr, lane, C);
  const bool smooth = p.label_smoothing > 0;
  A s = 0, wx = 0;
#pragma unroll
  for (int i = 0; i < PER; ++i) {
    const int c = lane + 32 * i;
    if (c < C) {
      s += fm::exp(v[i] - mx);
      if (smooth) wx += (w ? cv<A>(w[c]) : A(1)) * v[i];
    }
  }
  s = warp_sum(s);
  if (smooth) wx = warp_sum(wx);
  if (lane == 0) cross_entropy_store(loss, lse, row, t, mx, s, wx, xr, w, wsum, C, p);
}

// A block per row: a max pass, then the sums' pass, which finds the row in L1/L2.
template <class T>
__global__ void cross_entropy_forward_block_kernel(T* loss, acc_t<T>* lse, const T* x, const int64_t* target,
                                                   const T* w, const acc_t<T>* wsum, int64_t N, int64_t C,
                                                   CrossEntropyParams p, CheckSite bad) {
  using A = acc_t<T>;
  const int64_t row = blockIdx.x;
  const int64_t t = target[row];
  if (t == p.ignore_index) {  // the whole block leaves: no block_reduce is left waiting
    if (threadIdx.x == 0) {
      loss[row] = cv<T>(A(0));
      lse[row] = A(0);
    }
    return;
  }
  if (bad_target(t, C, p)) {
    if (threadIdx.x == 0) store_bad_target(loss, lse, row, t, bad);
    return;
  }
  const T* xr = x + row * C;
  const A mx = block_row_max<A>(xr, C);
  const bool smooth = p.label_smoothing > 0;
  A s = 0, wx = 0;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    const A v = cv<A>(xr[c]);
    s += fm::exp(v - mx);
    if (smooth) wx += (w ? cv<A>(w[c]) : A(1)) * v;
  }
  s = block_reduce(s, [](A a, A b) { return a + b; });
  if (smooth) wx = block_reduce(wx, [](A a, A b) { return a + b; });
  if (threadIdx.x == 0) cross_entropy_store(loss, lse, row, t, mx, s, wx, xr, w, wsum, C, p);
}

// grad_c = g (p_c ((1 - e) w_t + e W / C) - e w_c / C) - g (1 - e) w_t [c = t], p_c = exp(x_c - lse):
// the contract's formula with its row constants folded, one store per element.
template <class T, bool Warp>
__global__ void cross_entropy_backward_kernel(T* gx, const T* gl, const T* x, const acc_t<T>* lse,
                                              const int64_t* target, const T* w, const acc_t<T>* wsum, int64_t N,
                                              int64_t C, CrossEntropyParams p) {
  using A = acc_t<T>;
  const RowOwner<Warp> o;
  if (Warp && o.row >= N) return;
  T* gr = gx + o.row * C;
  const int64_t t = target[o.row];
  if (t == p.ignore_index) {
    for (int64_t c = o.lane; c < C; c += o.step) gr[c] = cv<T>(A(0));
    return;
  }
  if (bad_target(t, C, p)) {  // the forward reported it
    for (int64_t c = o.lane; c < C; c += o.step) gr[c] = cv<T>(std::numeric_limits<A>::quiet_NaN());
    return;
  }
  const T* xr = x + o.row * C;
  const bool smooth = p.label_smoothing > 0;
  const A g = cv<A>(gl[o.row]), l = lse[o.row], e = A(p.label_smoothing), es = e / A(C);
  const A wt = w ? cv<A>(w[t]) : A(1);
  const A a = g * ((A(1) - e) * wt + (smooth ? es * (wsum ? *wsum : A(C)) : A(0)));
  const A b = g * es, gt = g * (A(1) - e) * wt;
  for (int64_t c = o.lane; c < C; c += o.step) {
    A v = a * fm::exp(cv<A>(xr[c]) - l);
    if (smooth) v -= b * (w ? cv<A>(w[c]) : A(1));
    if (c == t) v -= gt;
    gr[c] = cv<T>(v);
  }
}

// W = sum_c w_c on the device when the smoothing term needs it with weights; undefined otherwise
// (the kernels then use C).
template <class T>
Tensor class_weight_sum(const Tensor& w, const CrossEntropyParams& p, int64_t C, int dev) {
  if (!w.defined() || !(p.label_smoothing > 0)) return Tensor();
  Tensor ws = empty({1}, dtype_of_v<acc_t<T>>, dev);
  class_weight_sum_kernel<T><<<1, kThreads, 0, stream(dev)>>>(ptr<acc_t<T>>(ws), ptr<const T>(w), C);
  WANWU_CUDA_LAUNCH_CHECK();
  return ws;
}

inline void cross_entropy_forward(const Tensor& loss, const Tensor& lse, const Tensor& logits, const Tensor& target,
                                  const Tensor& weight, const CrossEntropyParams& p) {
  const int64_t N = logits.size(0), C = logits.size(1);
  if (N == 0) return;  // with C == 0 the kernels run: every target is ignored or reported
  const int dev = logits.device().index;
  const cudaStream_t s = stream(dev);
  const Tensor x = contiguous(logits), t = cast(target, DType::i64);
  const Tensor w = weight.defined() ? cast(weight, x.dtype()) : Tensor();
  dispatch_floating(x.dtype(), "cross_entropy", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = acc_t<T>;
    WANWU_CHECK_DTYPE(lse.dtype() == dtype_of_v<A> && loss.dtype() == x.dtype(), "cross_entropy: loss ", loss.dtype(),
                      " and lse ", lse.dtype(), " do not fit logits of dtype ", x.dtype());
    const Tensor ws = class_weight_sum<T>(w, p, C, dev);
    T* lo = ptr<T>(loss);
    A* ls = ptr<A>(lse);
    const T* xp = ptr<const T>(x);
    const int64_t* tp = ptr<const int64_t>(t);
    const T* wp = ptr_or_null<const T>(w);
    const A* wsp = ptr_or_null<const A>(ws);
    const CheckSite bad = check_site(dev, CheckedOp::cross_entropy, C, p.ignore_index);
    if (C > kCrossEntropyWarpMax) {
      cross_entropy_forward_block_kernel<T><<<static_cast<unsigned>(N), kThreads, 0, s>>>(lo, ls, xp, tp, wp, wsp, N,
                                                                                          C, p, bad);
      return;
    }
    with_warp_row_width<kCrossEntropyWarpMax / 32>(C, [&](auto per) {
      cross_entropy_forward_warp_kernel<T, decltype(per)::value><<<warp_row_blocks(N, 1), kThreads, 0, s>>>(
          lo, ls, xp, tp, wp, wsp, N, static_cast<int>(C), p, bad);
    });
  });
  WANWU_CUDA_LAUNCH_CHECK();
}

inline void cross_entropy_backward(const Tensor& grad_logits, const Tensor& grad_loss, const Tensor& logits,
                                   const Tensor& lse, const Tensor& target, const Tensor& weight,
                                   const CrossEntropyParams& p) {
  const int64_t N = logits.size(0), C = logits.size(1);
  if (N == 0 || C == 0) return;
  const int dev = logits.device().index;
  const cudaStream_t s = stream(dev);
  const Tensor x = contiguous(logits), t = cast(target, DType::i64);
  const Tensor w = weight.defined() ? cast(weight, x.dtype()) : Tensor();
  const Tensor gl = cast(grad_loss, x.dtype());
  const Tensor gx = grad_logits.is_contiguous() && grad_logits.dtype() == x.dtype()
                        ? grad_logits
                        : empty(grad_logits.shape(), x.dtype(), dev);
  dispatch_floating(x.dtype(), "cross_entropy backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = acc_t<T>;
    const Tensor l = cast(lse, dtype_of_v<A>);
    const Tensor ws = class_weight_sum<T>(w, p, C, dev);
    T* g = ptr<T>(gx);
    const T *gp = ptr<const T>(gl), *xp = ptr<const T>(x), *wp = ptr_or_null<const T>(w);
    const A *lp = ptr<const A>(l), *wsp = ptr_or_null<const A>(ws);
    const int64_t* tp = ptr<const int64_t>(t);
    if (C > kCrossEntropyWarpMax)
      cross_entropy_backward_kernel<T, false><<<static_cast<unsigned>(N), kThreads, 0, s>>>(g, gp, xp, lp, tp, wp, wsp,
                                                                                            N, C, p);
    else
      cross_entropy_backward_kernel<T, true><<<warp_row_blocks(N, 1), kThreads, 0, s>>>(g, gp, xp, lp, tp, wp, wsp, N,
                                                                                        C, p);
  });
  WANWU_CUDA_LAUNCH_CHECK();
  if (!gx.is_same(grad_logits)) copy(grad_logits, gx);
}

}  // namespace wanwu::cuda
