// CUDA batch norm over x viewed as [M, C] (C the innermost NHWC axis): training forward with the
// block's activation, backward with the ReLU mask of batch_norm_act, and the SiLU / ReLU6
// gradient recomputed from the input.
//
// Per-channel sums are column sums (blocks of [rows][channel groups] threads, so a block stays
// full when C is small), accumulated in f64 and shifted by the first row, as the CPU does, so the
// variance does not cancel; then one elementwise pass. Every pass moves 16-byte packs of
// consecutive channels when C splits into them and the pointers are aligned (every ResNet and
// EfficientNet width does): with 2-byte elements one scalar access per thread moved 64 bytes per
// warp instruction, and batch norm is the largest memory-bound piece of a ResNet-50 step. The
// activation runs in the forward's output pass and the ReLU mask is read inside the backward's
// passes (a residual block's sums pass writes the masked gradient, the shortcut's, and the input
// gradient's pass reads that instead), so the pair costs no pass of its own.
#pragma once

#include <wanwu/backend/bn_running.hpp>

#include "norm.cuh"

namespace wanwu::cuda {

// Calls f(std::integral_constant<int, V>) with the pack width of the passes over [M, C]: 16 / sizeof(T)
// values when C splits into such packs and every pointer is 16-byte aligned (each channel group's
// statistics then start at a multiple of V, so their packs are aligned too), else 1.
template <class T, class F>
void with_bn_pack(int64_t C, std::initializer_list<const void*> ptrs, F&& f) {
  constexpr int V = 16 / sizeof(T);
  if (C % V == 0 && aligned_to(16, ptrs)) return f(std::integral_constant<int, V>{});
  f(std::integral_constant<int, 1>{});
}

// Per-channel sums over [M, C]. The block is [by][bx] threads, bx over groups of V channels (all
// of them when C / V <= kThreads) and by over rows; each thread issues kUnroll rows' loads before
// adding any, sums those rows in the statistics' dtype and adds that into f64 (one conversion per
// kUnroll values instead of one per value). The rows' partials meet in shared memory, and one
// thread per channel group adds the block's sums with one atomic per channel.
// forward (kGrad false): s1 += x - x[0], s2 += (x - x[0])^2
// backward (kGrad true): s1 += g, s2 += g * (x - mean), g = dy, or dy masked by relu_out (kMask),
// and with kOut that masked g written to gout
template <class T, int V, bool kGrad, bool kMask, bool kOut = false>
__global__ void channel_sums_kernel(double* s1, double* s2, const T* x, const T* gy, const T* relu_out, T* gout,
                                    const stat_t<T>* center, int64_t M, int64_t C, int64_t rows_per_block) {
  static_assert(!kOut || kMask, "channel_sums_kernel: only a masked gradient is written out");
  using A = stat_t<T>;
  const int bx = blockDim.x, by = blockDim.y;
  const int64_t c0 = (blockIdx.x * int64_t(bx) + threadIdx.x) * V;
  const bool live = c0 < C;
  const int64_t r0 = blockIdx.y * rows_per_block, r1 = r0 + rows_per_block < M ? r0 + rows_per_block : M;
  double a1[V], a2[V];
#pragma unroll
  for (int j = 0; j < V; ++j) a1[j] = a2[j] = 0;
  if (live) {
    A shift[V];
    if constexpr (kGrad) {
      const Pack<A, V> m = load_pack<A, V>(center + c0);
#pragma unroll
      for (int j = 0; j < V; ++j) shift[j] = m.v[j];
    } else {
      const Pack<T, V> first = load_pack<T, V>(x + c0);
#pragma unroll
      for (int j = 0; j < V; ++j) shift[j] = cv<A>(first.v[j]);
    }
    // U rows from r, by apart: all their loads, then their sums per channel
    auto rows = [&](int64_t r, auto u) {
      constexpr int U = decltype(u)::value;
      Pack<T, V> xv[U];
      [[maybe_unused]] Pack<T, V> gv[U], mv[U], ov[U];
#pragma unroll
      for (int k = 0; k < U; ++k) {
        const int64_t i = (r + int64_t(k) * by) * C + c0;
        xv[k] = load_pack<T, V>(x + i);
        if constexpr (kGrad) gv[k] = load_pack<T, V>(gy + i);
        if constexpr (kMask) mv[k] = load_pack<T, V>(relu_out + i);
      }
#pragma unroll
      for (int j = 0; j < V; ++j) {
        A p1 = 0, p2 = 0;
#pragma unroll
        for (int k = 0; k < U; ++k) {
          const A d = cv<A>(xv[k].v[j]) - shift[j];
          A g = d;
          if constexpr (kGrad) g = cv<A>(gv[k].v[j]);
          if constexpr (kMask) g = ReluBackwardF()(g, cv<A>(mv[k].v[j]));
          if constexpr (kOut) ov[k].v[j] = cv<T>(g);  // exact: a value of dy, or zero
          p1 += g;
          p2 += g * d;
        }
        a1[j] += static_cast<double>(p1);
        a2[j] += static_cast<double>(p2);
      }
      if constexpr (kOut)
#pragma unroll
        for (int k = 0; k < U; ++k) store_pack<T, V>(gout + (r + int64_t(k) * by) * C + c0, ov[k]);
    };
    int64_t r = r0 + threadIdx.y;
    for (; r + int64_t(kUnroll - 1) * by < r1; r += int64_t(kUnroll) * by) rows(r, std::integral_constant<int, kUnroll>{});
    for (; r < r1; r += by) rows(r, std::integral_constant<int, 1>{});
  }
  __shared__ double part[2][V][kThreads];
  const int t = threadIdx.y * bx + threadIdx.x;
#pragma unroll
  for (int j = 0; j < V; ++j) {
    part[0][j][t] = a1[j];
    part[1][j][t] = a2[j];
  }
  __syncthreads();
  if (threadIdx.y == 0 && live) {
    for (int y = 1; y < by; ++y)
#pragma unroll
      for (int j = 0; j < V; ++j) {
        a1[j] += part[0][j][y * bx + threadIdx.x];
        a2[j] += part[1][j][y * bx + threadIdx.x];
      }
#pragma unroll
    for (int j = 0; j < V; ++j) {
      atomicAdd(s1 + c0 + j, a1[j]);
      atomicAdd(s2 + c0 + j, a2[j]);
    }
  }
}

// Launches channel_sums_kernel over [M, C] in packs of V channels: blocks of kThreads threads (see
// above), each over a chunk of rows (column_chunk).
template <class T, int V, bool kGrad, bool kMask, bool kOut = false>
void launch_channel_sums(int dev, double* s1, double* s2, const T* x, const T* gy, const T* relu_out, T* gout,
                         const stat_t<T>* center, int64_t M, int64_t C, cudaStream_t s) {
  const int64_t G = C / V;
  const int bx = G < kThreads ? static_cast<int>(G) : kThreads, by = kThreads / bx;
  const int64_t per = column_chunk(dev, M, G, bx, int64_t(by) * kUnroll);
  const dim3 grid(static_cast<unsigned>((G + bx - 1) / bx), static_cast<unsigned>((M + per - 1) / per));
  channel_sums_kernel<T, V, kGrad, kMask, kOut><<<grid, dim3(bx, by), 0, s>>>(s1, s2, x, gy, relu_out, gout, center, M, C,
                                                                              per);
  WANWU_CUDA_LAUNCH_CHECK();
}

// Per channel: mean, invstd, the running statistics' update, and y = x * scale + shift
// coefficients, worked out in f64 and stored in the statistics' dtype, which is what the
// elementwise pass computes in (the pass then does no f64 arithmetic or conversion per element:
// sm_86/89 run f64 at 1/64 of the f32 rate).
template <class T>
__global__ void bn_stats_kernel(stat_t<T>* mean_out, stat_t<T>* invstd_out, stat_t<T>* scale, stat_t<T>* shift,
                                RunningStats<stat_t<T>> run, const double* s1, const double* s2, const T* x,
                                const stat_t<T>* w, const stat_t<T>* b, int64_t M, int64_t C, double eps) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= C) return;
  const double dm = s1[c] / static_cast<double>(M);
  double var = s2[c] / static_cast<double>(M) - dm * dm;
  var = var > 0 ? var : 0;
  const double mean = cv<double>(x[c]) + dm;
  mean_out[c] = static_cast<stat_t<T>>(mean);
  invstd_out[c] = static_cast<stat_t<T>>(1.0 / sqrt(var + eps));
  run.update(c, mean, var, M);
  const double sc = (w ? cv<double>(w[c]) : 1.0) / sqrt(var + eps);
  scale[c] = static_cast<stat_t<T>>(sc);
  shift[c] = static_cast<stat_t<T>>((b ? cv<double>(b[c]) : 0.0) - mean * sc);
}

// The elementwise passes below run over dense [M, C] tensors in n packs of V values: each thread
// issues kUnrollOf<V> packs' loads per operand before the first use. A pack's channels
// are c .. c + V - 1, c = the channel of its first element.

// y = act(x * scale + shift), or act(x * scale + shift + res) (kRes)
template <class T, int V, class Act, bool kRes>
__global__ void bn_apply_kernel(T* y, const T* x, const T* res, const stat_t<T>* scale, const stat_t<T>* shift,
                                int64_t n, ChannelOf ch, Act act) {
  using S = stat_t<T>;
  Pack<T, V> v[kUnrollOf<V>], r[kUnrollOf<V>];
  auto load = [&](int k, int64_t i) {
    v[k] = load_pack<T, V>(x + i * V);
    if constexpr (kRes) r[k] = load_pack<T, V>(res + i * V);
  };
  auto apply = [&](int k, int64_t i) {
    const int64_t c = ch(i * V);
    const Pack<S, V> sc = load_pack<S, V>(scale + c), sh = load_pack<S, V>(shift + c);
    Pack<T, V> out;
#pragma unroll
    for (int j = 0; j < V; ++j) {
      S h = cv<S>(v[k].v[j]) * sc.v[j] + sh.v[j];
      if constexpr (kRes) h += cv<S>(r[k].v[j]);
      out.v[j] = cv<T>(act(h));
    }
    return out;
  };
  WANWU_DENSE_LOOP_N(kUnrollOf<V>, load(k, i), (store_pack<T, V>(y + i * V, apply(k, i))))
}

// dx = w * invstd * (g - mean(g) - (x - mean) * invstd^2 * mean(g * (x - mean)))
//    = g * k1 - (x - mean) * k2 - k3, with k1..k3 per channel (bn_backward_channel_kernel);
// g = dy, or dy masked where relu_out <= 0 (kMask)
template <class T, int V, bool kMask>
__global__ void bn_backward_input_kernel(T* gx, const T* gy, const T* x, const T* relu_out, const stat_t<T>* mean,
                                         const stat_t<T>* coef, int64_t n, ChannelOf ch, int64_t C) {
  using A = stat_t<T>;
  Pack<T, V> vg[kUnrollOf<V>], vx[kUnrollOf<V>], vm[kUnrollOf<V>];
  auto load = [&](int k, int64_t i) {
    vg[k] = load_pack<T, V>(gy + i * V);
    vx[k] = load_pack<T, V>(x + i * V);
    if constexpr (kMask) vm[k] = load_pack<T, V>(relu_out + i * V);
  };
  auto grad = [&](int k, int64_t i) {
    const int64_t c = ch(i * V);
    const Pack<A, V> mu = load_pack<A, V>(mean + c), k1 = load_pack<A, V>(coef + c),
                     k2 = load_pack<A, V>(coef + C + c), k3 = load_pack<A, V>(coef + 2 * C + c);
    Pack<T, V> out;
#pragma unroll
    for (int j = 0; j < V; ++j) {
      A g = cv<A>(vg[k].v[j]);
      if constexpr (kMask) g = ReluBackwardF()(g, cv<A>(vm[k].v[j]));
      out.v[j] = cv<T>(g * k1.v[j] - (cv<A>(vx[k].v[j]) - mu.v[j]) * k2.v[j] - k3.v[j]);
    }
    return out;
  };
  WANWU_DENSE_LOOP_N(kUnrollOf<V>, load(k, i), (store_pack<T, V>(gx + i * V, grad(k, i))))
}

// Per channel, from the sums s1 = sum(g), s2 = sum(g * (x - mean)): the parameters' gradients
// (gb = s1, gw = s2 * invstd; either may be null) and, when `coef` is not null, the input
// gradient's k1 = w * invstd, k2 = w * invstd^3 * s2 / M, k3 = w * invstd * s1 / M as coef[0..3C),
// worked out in f64 once per channel instead of once per element.
template <class T>
__global__ void bn_backward_channel_kernel(stat_t<T>* gw, stat_t<T>* gb, stat_t<T>* coef, const double* s1,
                                           const double* s2, const stat_t<T>* invstd, const stat_t<T>* w, int64_t M,
                                           int64_t C) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= C) return;
  const double is = static_cast<double>(invstd[c]);
  if (gb) gb[c] = static_cast<stat_t<T>>(s1[c]);
  if (gw) gw[c] = static_cast<stat_t<T>>(s2[c] * is);
  if (coef) {
    const double wc = w ? static_cast<double>(w[c]) : 1.0, inv_m = 1.0 / static_cast<double>(M);
    coef[c] = static_cast<stat_t<T>>(wc * is);
    coef[C + c] = static_cast<stat_t<T>>(wc * is * is * is * s2[c] * inv_m);
    coef[2 * C + c] = static_cast<stat_t<T>>(wc * is * s1[c] * inv_m);
  }
}

// Launches bn_apply_kernel over n = M * C elements, in packs of channels where every operand allows.
template <class T>
void launch_bn_apply(T* y, const T* x, const T* res, const stat_t<T>* scale, const stat_t<T>* shift, int64_t n,
                     int64_t C, Activation act, cudaStream_t s) {
  if (n == 0) return;
  with_bn_pack<T>(C, {x, y, res, scale, shift}, [&](auto v) {
    constexpr int V = decltype(v)::value;
    with_activation(act, [&](auto f) {
      auto launch = [&](auto with_res) {
        bn_apply_kernel<T, V, decltype(f), decltype(with_res)::value>
            <<<elementwise_blocks(n / V, true, kUnrollOf<V>), kThreads, 0, s>>>(y, x, res, scale, shift, n / V,
                                                                              ChannelOf(n, C), f);
        WANWU_CUDA_LAUNCH_CHECK();
      };
      if (res) return launch(std::true_type{});
      launch(std::false_type{});
    });
  });
}

inline void batch_norm_forward(const Tensor& y, const Tensor& mean, const Tensor& invstd, const Tensor& x_,
                               const Tensor& w_, const Tensor& b_, double eps, Activation act, const Tensor& res_,
                               const BatchNormRunning& running) {
  check_batch_norm_running(running, mean);
  const Tensor x = contiguous(x_), w = contiguous(w_), b = contiguous(b_), res = contiguous(res_);
  const int64_t C = x.shape().back(), M = C > 0 ? x.numel() / C : 0, n = x.numel();
  if (C == 0) return;
  WANWU_CHECK_DTYPE(!res.defined() || (res.dtype() == x.dtype() && res.shape() == x.shape()),
                    "batch_norm: the residual must match the input ", x.shape(), " ", x.dtype(), ", got ", res.shape(),
                    " ", res.dtype());
  const int dev = x.device().index;
  const cudaStream_t s = stream(dev);
  Tensor buf = empty({2, C}, DType::f64, dev);  // s1, s2
  zero(buf);
  double* s1 = ptr<double>(buf);
  dispatch_floating(x.dtype(), "batch_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using S = stat_t<T>;
    const T* xp = ptr<const T>(x);
    if (M > 0)
      with_bn_pack<T>(C, {xp}, [&](auto v) {
        launch_channel_sums<T, decltype(v)::value, false, false>(dev, s1, s1 + C, xp, nullptr, nullptr, nullptr, nullptr,
                                                                  M, C, s);
      });
    const Tensor coef = empty({2, C}, dtype_of_v<S>, dev);  // scale, shift
    S* scale = ptr<S>(coef);
    const unsigned cb = static_cast<unsigned>((C + kThreads - 1) / kThreads);
    const RunningStats<S> run{ptr_or_null<S>(running.mean), ptr_or_null<S>(running.var), running.momentum,
                              ptr_or_null<int64_t>(running.batches)};
    bn_stats_kernel<T><<<cb, kThreads, 0, s>>>(ptr<S>(mean), ptr<S>(invstd), scale, scale + C, run, s1, s1 + C, xp,
                                               ptr_or_null<const S>(norm_params<T>(w)),
                                               ptr_or_null<const S>(norm_params<T>(b)), M, C, eps);
    WANWU_CUDA_LAUNCH_CHECK();
    launch_bn_apply<T>(ptr<T>(y), xp, ptr_or_null<const T>(res), scale, scale + C, n, C, act, s);
  });
}

// y = act(x * scale + shift + res) per channel (batch norm in eval mode): the forward's output pass
// with the caller's coefficients.
inline void batch_norm_apply(const Tensor& y, const Tensor& x_, const Tensor& scale_, const Tensor& shift_,
                             Activation act, const Tensor& res_) {
  const Tensor x = contiguous(x_), scale = contiguous(scale_), shift = contiguous(shift_), res = contiguous(res_);
  const int64_t C = x.shape().back(), n = x.numel();
  if (C == 0 || n == 0) return;
  dispatch_floating(x.dtype(), "batch_norm (eval)", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using S = stat_t<T>;
    launch_bn_apply<T>(ptr<T>(y), ptr<const T>(x), ptr_or_null<const T>(res), ptr<const S>(scale),
                       ptr<const S>(shift), n, C, act, stream(x.device().index));
  });
}

inline void batch_norm_backward(const Tensor& gx, const Tensor& gw, const Tensor& gb, const Tensor& gy_,
                                const Tensor& x_, const Tensor& w_, const Tensor& mean, const Tensor& invstd,
                                const Tensor& relu_out_, const Tensor& masked_out = Tensor()) {
  const Tensor gy = contiguous(gy_), x = contiguous(x_), w = contiguous(w_), relu_out = contiguous(relu_out_);
  check_batch_norm_masks(x, relu_out, masked_out);
  const int64_t C = x.shape().back(), M = C > 0 ? x.numel() / C : 0, n = x.numel();
  if (C == 0) return;
  const int dev = x.device().index;
  const cudaStream_t s = stream(dev);
  Tensor buf = empty({2, C}, DType::f64, dev);
  zero(buf);
  double* s1 = ptr<double>(buf);
  dispatch_floating(x.dtype(), "batch_norm backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using S = stat_t<T>;
    const T *xp = ptr<const T>(x), *gp = ptr<const T>(gy), *mp = ptr_or_null<const T>(relu_out);
    T* op = ptr_or_null<T>(masked_out);
    const S* mean_p = ptr<const S>(mean);
    if (M > 0)
      with_bn_pack<T>(C, {xp, gp, mp, op, mean_p}, [&](auto v) {
        constexpr int V = decltype(v)::value;
        if (op) launch_channel_sums<T, V, true, true, true>(dev, s1, s1 + C, xp, gp, mp, op, mean_p, M, C, s);
        else if (mp) launch_channel_sums<T, V, true, true>(dev, s1, s1 + C, xp, gp, mp, nullptr, mean_p, M, C, s);
        else launch_channel_sums<T, V, true, false>(dev, s1, s1 + C, xp, gp, nullptr, nullptr, mean_p, M, C, s);
      });
    // the input gradient's pass reads the masked gradient back where the sums wrote it
    if (op) {
      gp = op;
      mp = nullptr;
    }
    // calls f(integral_constant<bool, masked>)
    auto with_mask = [&](auto f) {
      if (mp) return f(std::true_type{});
      f(std::false_type{});
    };
    const bool input_grad = gx.defined() && n > 0;
    if (!input_grad && !gw.defined() && !gb.defined()) return;
    // computed in the statistics' dtype and stored in the parameters' own: in place when they are
    // one (f32 weights, under autocast too), else through a buffer and a cast
    const DType sdt = dtype_of_v<S>;
    auto direct = [&](const Tensor& g) { return g.dtype() == sdt && g.is_contiguous(); };
    const Tensor sw = gw.defined() ? (direct(gw) ? gw : empty({C}, sdt, dev)) : Tensor();
    const Tensor sb = gb.defined() ? (direct(gb) ? gb : empty({C}, sdt, dev)) : Tensor();
    const Tensor coef = input_grad ? empty({3, C}, sdt, dev) : Tensor();  // k1, k2, k3
    const unsigned cb = static_cast<unsigned>((C + kThreads - 1) / kThreads);
    bn_backward_channel_kernel<T><<<cb, kThreads, 0, s>>>(ptr_or_null<S>(sw), ptr_or_null<S>(sb), ptr_or_null<S>(coef), s1,
                                                          s1 + C, ptr<const S>(invstd),
                                                          ptr_or_null<const S>(input_grad ? norm_params<T>(w) : Tensor()),
                                                          M, C);
    WANWU_CUDA_LAUNCH_CHECK();
    if (gw.defined() && !direct(gw)) copy(gw, sw);
    if (gb.defined() && !direct(gb)) copy(gb, sb);
    if (!input_grad) return;
    T* gxp = ptr<T>(gx);
    const S* kp = ptr<const S>(coef);
    with_bn_pack<T>(C, {gxp, gp, xp, mp, mean_p, kp}, [&](auto v) {
      constexpr int V = decltype(v)::value;
      with_mask([&](auto masked) {
        bn_backward_input_kernel<T, V, decltype(masked)::value><<<elementwise_blocks(n / V, true, kUnrollOf<V>), kThreads, 0, s>>>(
            gxp, gp, xp, mp, mean_p, kp, n / V, ChannelOf(n, C), C);
        WANWU_CUDA_LAUNCH_CHECK();
      });
    });
  });
}

// gh = f(gy, x * scale + shift): the activation's gradient at a batch norm's output recomputed
// from its input.
template <class T, int V, class F>
__global__ void bn_act_grad_kernel(T* gh, const T* gy, const T* x, const stat_t<T>* scale, const stat_t<T>* shift,
                                   int64_t n, ChannelOf ch, F f) {
  using A = stat_t<T>;
  Pack<T, V> vg[kUnrollOf<V>], vx[kUnrollOf<V>];
  auto grad = [&](int k, int64_t i) {
    const int64_t c = ch(i * V);
    const Pack<A, V> sc = load_pack<A, V>(scale + c), sh = load_pack<A, V>(shift + c);
    Pack<T, V> out;
#pragma unroll
    for (int j = 0; j < V; ++j) out.v[j] = cv<T>(f(cv<A>(vg[k].v[j]), cv<A>(vx[k].v[j]) * sc.v[j] + sh.v[j]));
    return out;
  };
  WANWU_DENSE_LOOP_N(kUnrollOf<V>, (vg[k] = load_pack<T, V>(gy + i * V), vx[k] = load_pack<T, V>(x + i * V)),
                   (store_pack<T, V>(gh + i * V, grad(k, i))))
}

inline void batch_norm_act_grad(const Tensor& gh, const Tensor& gy_, const Tensor& x_, const Tensor& scale_,
                                const Tensor& shift_, BinaryOp bwd) {
  const Tensor gy = contiguous(gy_), x = contiguous(x_), scale = contiguous(scale_), shift = contiguous(shift_);
  const int64_t C = x.shape().back(), n = x.numel();
  if (C == 0 || n == 0) return;
  const cudaStream_t s = stream(x.device().index);
  dispatch_floating(x.dtype(), "batch_norm_act backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using S = stat_t<T>;
    T* hp = ptr<T>(gh);
    const T *gp = ptr<const T>(gy), *xp = ptr<const T>(x);
    const S *scp = ptr<const S>(scale), *shp = ptr<const S>(shift);
    auto launch = [&](auto f) {
      with_bn_pack<T>(C, {hp, gp, xp, scp, shp}, [&](auto v) {
        constexpr int V = decltype(v)::value;
        bn_act_grad_kernel<T, V><<<elementwise_blocks(n / V, true, kUnrollOf<V>), kThreads, 0, s>>>(hp, gp, xp, scp, shp, n / V,
                                                                                     ChannelOf(n, C), f);
        WANWU_CUDA_LAUNCH_CHECK();
      });
    };
    if (bwd == BinaryOp::silu_backward) return launch(SiluBackwardF(OpParams{}));
    if (bwd == BinaryOp::relu6_backward) return launch(Relu6BackwardF(OpParams{}));
    throw ValueError(wanwu::detail::str("batch_norm_act backward: no fused gradient for ", op_name(bwd)));
  });
}

}  // namespace wanwu::cuda
