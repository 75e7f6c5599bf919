// What the two cuDNN paths of the CUDA convolution share (conv.cuh: the legacy API, with the
// direct kernels; conv_graph.cuh: graph-API plans for f16/bf16): a convolution's geometry, the
// pass, cuDNN's name for a dtype, and the workspace, which comes from the stream-ordered allocator.
#pragma once

#include <cstdint>

#include "allocator.cuh"

namespace wanwu::cuda {

struct ConvGeom {
  int64_t N, H, W, C, O, KH, KW, Ho, Wo, G, Cg, Og;
  Conv2dParams p;
  ConvGeom(const Shape& x, const Shape& w, const Shape& out, const Conv2dParams& prm)
      : N(x[0]), H(x[1]), W(x[2]), C(x[3]), O(w[0]), KH(w[1]), KW(w[2]), Ho(out[1]), Wo(out[2]), G(prm.groups),
        Cg(x[3] / prm.groups), Og(w[0] / prm.groups), p(prm) {}
  bool symmetric() const { return p.pad_top == p.pad_bottom && p.pad_left == p.pad_right; }
};

enum class ConvPass : uint8_t { forward, backward_input, backward_weight };

inline cudnnDataType_t cudnn_dtype(DType d) {
  switch (d) {
    case DType::f32: return CUDNN_DATA_FLOAT;
    case DType::f16: return CUDNN_DATA_HALF;
    case DType::bf16: return CUDNN_DATA_BFLOAT16;
    default: return CUDNN_DATA_DOUBLE;
  }
}

inline constexpr size_t kCudnnMaxWorkspace = size_t(1) << 30;

// cuDNN's workspace for one call (undefined when it needs none).
inline Tensor cudnn_workspace(size_t bytes, int dev) {
  return bytes > 0 ? empty({static_cast<int64_t>(bytes)}, DType::u8, dev) : Tensor();
}

}  // namespace wanwu::cuda
