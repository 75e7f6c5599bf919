// The CPU backend (DESIGN D11): a real backend, not a reference — OpenBLAS GEMM, OpenMP threads,
// vectorizable loops, a caching allocator. It implements the Backend interface by forwarding to
// the kernel families in this folder. By default it is compiled inline into every translation
// unit; programs with many TUs define WANWU_CPU_BACKEND_EXTERN and compile it once (see
// implementation.hpp).
#pragma once

#include <cstring>

#include "../backend.hpp"
#include "blas.hpp"
#include "elementwise.hpp"
#include "index.hpp"
#include "reduce.hpp"

namespace wanwu {
namespace cpu {

// A contiguous copy of t with dtype dt, made with the copy kernel (no autograd, no dispatch).
inline Tensor contiguous_as(const Tensor& t, DType dt) {
  Tensor out = empty_tensor(t.shape(), dt, t.device());
  copy(out, t);
  return out;
}

inline void gemm(const Tensor& out, const Tensor& a, const Tensor& b, double alpha, double beta) {
  const DType dt = out.dtype();
  auto blas_ready = [](const Tensor& t) {
    return blas_layout(t.size(1), t.size(2), t.stride(1), t.stride(2)).has_value();
  };
  if (dt == DType::f32 || dt == DType::f64) {
    const Tensor ac = blas_ready(a) ? a : contiguous_as(a, dt);
    const Tensor bc = blas_ready(b) ? b : contiguous_as(b, dt);
    if (dt == DType::f32) gemm_blas_typed<float>(static_cast<float*>(out.data_ptr()), ac, bc, alpha, beta);
    else gemm_blas_typed<double>(static_cast<double*>(out.data_ptr()), ac, bc, alpha, beta);
    return;
  }
  WANWU_CHECK_DTYPE(dt == DType::f16 || dt == DType::bf16, "matmul: dtype ", dt,
                    " is not supported (floating types only)");
  // 16-bit floats: f32 math, one rounding at the end (what the CUDA path's f32 accumulation gives).
  const Tensor af = contiguous_as(a, DType::f32), bf = contiguous_as(b, DType::f32);
  Tensor of = beta == 0.0 ? empty_tensor(out.shape(), DType::f32, out.device()) : contiguous_as(out, DType::f32);
  gemm_blas_typed<float>(static_cast<float*>(of.data_ptr()), af, bf, alpha, beta);
  copy(out, of);
}

template <class T>
void random_kernel(const Tensor& out, const RandomParams& p, bool wide) {
  T* o = static_cast<T*>(out.data_ptr());
  parallel_for(out.numel(), 16384, [&](int64_t b, int64_t e) {
    if (p.kind == RandomKind::randint) {
      for (int64_t i = b; i < e; ++i) o[i] = convert<T>(random_int(p, i, wide));
    } else {
      for (int64_t i = b; i < e; ++i) o[i] = convert<T>(random_value(p, i, wide));
    }
  });
}

}  // namespace cpu

class CpuBackend final : public Backend {
 public:
  DeviceType device_type() const override { return DeviceType::cpu; }
  int device_count() const override { return 1; }
  Allocator& allocator(int) override { return cpu_allocator(); }

  void copy(const Tensor& dst, const Tensor& src) override { cpu::copy(dst, src); }
  void copy_to_host(void* host_dst, const Tensor& src) override { std::memcpy(host_dst, src.data_ptr(), src.nbytes()); }
  void copy_from_host(const Tensor& dst, const void* host_src) override {
    std::memcpy(dst.data_ptr(), host_src, dst.nbytes());
  }
  void fill(const Tensor& dst, Scalar value) override { cpu::fill(dst, value); }
  void unary(UnaryOp op, const OpParams& p, const Tensor& out, const Tensor& in) override {
    cpu::unary(op, p, out, in);
  }
  void binary(BinaryOp op, const OpParams& p, const Tensor& out, const Tensor& a, const Tensor& b) override {
    cpu::binary(op, p, out, a, b);
  }
  void where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) override {
    cpu::where(out, cond, a, b);
  }
  void reduce(ReduceOp op, const Tensor& out, const Tensor& in, const Dims& dims) override {
    cpu::reduce(op, out, in, dims);
  }
  void arg_reduce(ArgReduceOp op, const Tensor& values, const Tensor& indices, const Tensor& in, int dim) override {
    cpu::arg_reduce(op, values, indices, in, dim);
  }
  void gemm(const Tensor& out, const Tensor& a, const Tensor& b, double alpha, double beta) override {
    cpu::gemm(out, a, b, alpha, beta);
  }
  void index_select(const Tensor& out, const Tensor& in, int dim, const Tensor& index) override {
    cpu::index_select(out, in, dim, index);
  }
  void index_add(const Tensor& out, int dim, const Tensor& index, const Tensor& src) override {
    cpu::index_add(out, dim, index, src);
  }
  void gather(const Tensor& out, const Tensor& in, int dim, const Tensor& index) override {
    cpu::gather(out, in, dim, index);
  }
  void scatter_add(const Tensor& out, int dim, const Tensor& index, const Tensor& src) override {
    cpu::scatter_add(out, dim, index, src);
  }
  void random(const Tensor& out, const RandomParams& p, bool wide) override {
    dispatch_dtype(out.dtype(), [&](auto tag) { cpu::random_kernel<typename decltype(tag)::type>(out, p, wide); });
  }
};

#if !defined(WANWU_CPU_BACKEND_EXTERN)
inline Backend& cpu_backend() {
  static CpuBackend backend;
  return backend;
}
#endif

}  // namespace wanwu
