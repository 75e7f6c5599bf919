// f16/bf16 convolutions through cuDNN's graph (backend) API.
//
// Why a second cuDNN path: cuDNN 9 reaches its fast Hopper convolution kernels only through the
// engines its graph API lists. The legacy entry points (cudnnConvolutionForward and the
// backward pair, with their algorithm enums) map onto older kernels: on an H200 at ResNet-50's
// shapes they ran 2-10x slower than PyTorch, which builds graph-API plans. So for f16/bf16 each
// shape gets one plan from heuristics mode A (what PyTorch uses with cudnn.benchmark off): the
// first engine configuration, in cuDNN's ranking, that finalizes, fits the workspace limit, keeps
// f32 accumulation (no REDUCED_PRECISION_REDUCTION note) and runs; in benchmark mode
// (core/conv_algorithm.hpp, cudnn.benchmark) the fastest of the first ten that qualify, timed on
// the call's buffers (conv_common.cuh, choose_conv_candidate). The plan is cached like the legacy
// ones. A shape for which none qualifies, or a call whose pointers are not 16-byte aligned, goes to
// the legacy path, which also keeps f32 (its FMA math gives f32 results to f32 rounding;
// the graph engines for f32 would need TF32 filtered out).
//
// Tensors are described in cuDNN's NCHW dimension order with NHWC strides; the filter [O, kH, kW,
// C/groups] likewise (dims O, C/groups, kH, kW), which is how the graph API expresses groups.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "conv_common.cuh"

namespace wanwu::cuda {

// One backend descriptor, destroyed with its owner.
class BackendDesc {
 public:
  explicit BackendDesc(cudnnBackendDescriptorType_t type) {
    if (cudnnBackendCreateDescriptor(type, &d_) != CUDNN_STATUS_SUCCESS) d_ = nullptr;
  }
  ~BackendDesc() {
    if (d_) cudnnBackendDestroyDescriptor(d_);
  }
  BackendDesc(BackendDesc&& o) noexcept : d_(o.d_) { o.d_ = nullptr; }
  BackendDesc(const BackendDesc&) = delete;
  BackendDesc& operator=(const BackendDesc&) = delete;
  BackendDesc& operator=(BackendDesc&&) = delete;
  cudnnBackendDescriptor_t get() const { return d_; }
  cudnnBackendDescriptor_t* addr() { return &d_; }

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
};

// Sets attributes until the first failure and remembers it, so a build reads as a list of settings.
struct BackendBuild {
  cudnnStatus_t status = CUDNN_STATUS_SUCCESS;
  bool ok() const { return status == CUDNN_STATUS_SUCCESS; }
  void set(const BackendDesc& d, cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t n,
           const void* v) {
    if (ok()) status = d.get() ? cudnnBackendSetAttribute(d.get(), name, type, n, v) : CUDNN_STATUS_NOT_INITIALIZED;
  }
  void set_desc(const BackendDesc& d, cudnnBackendAttributeName_t name, const BackendDesc& v) {
    cudnnBackendDescriptor_t p = v.get();
    set(d, name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &p);
  }
  void finalize(const BackendDesc& d) {
    if (ok()) status = cudnnBackendFinalize(d.get());
  }
};

// A finalized execution plan for one (device, pass, dtype, geometry) and what keeps it valid.
struct GraphConvPlan {
  std::vector<BackendDesc> keep;  // tensors, convolution, operation, graph, engine config
  std::unique_ptr<BackendDesc> plan;
  int64_t workspace = 0;
  bool usable = false;
};

inline constexpr int64_t kUidX = 1, kUidW = 2, kUidY = 3;

// An NCHW-ordered descriptor over NHWC memory: dims {N, C, H, W}, strides {H*W*C, 1, W*C, C}.
inline BackendDesc graph_tensor(BackendBuild& b, int64_t uid, cudnnDataType_t t, int64_t n, int64_t c, int64_t h,
                                int64_t w) {
  BackendDesc d(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  const int64_t dims[4] = {n, c, h, w}, strides[4] = {h * w * c, 1, w * c, c}, align = 16;
  b.set(d, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &t);
  b.set(d, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims);
  b.set(d, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides);
  b.set(d, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
  b.set(d, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align);
  b.finalize(d);
  return d;
}

// Whether an engine configuration accumulates in reduced precision (we promise f32 accumulation)
// or converts its inputs down (PyTorch drops those engines too).
inline bool reduced_precision(cudnnBackendDescriptor_t cfg) {
  BackendDesc engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
  int64_t n = 0;
  if (!engine.get() || cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                                &n, engine.addr()) != CUDNN_STATUS_SUCCESS)
    return false;
  cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
  if (cudnnBackendGetAttribute(engine.get(), CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                               CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &n, notes) != CUDNN_STATUS_SUCCESS)
    return false;
  for (int64_t i = 0; i < n; ++i)
    if (notes[i] == CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION ||
        notes[i] == CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS)
      return true;
  return false;
}

inline cudnnStatus_t graph_execute(cudnnHandle_t h, cudnnBackendDescriptor_t plan, void* x, void* w, void* y,
                                   void* ws) {
  BackendDesc vp(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  BackendBuild b;
  const int64_t uids[3] = {kUidX, kUidW, kUidY};
  void* ptrs[3] = {x, w, y};
  b.set(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, 3, uids);
  b.set(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, 3, ptrs);
  b.set(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws);
  b.finalize(vp);
  if (!b.ok()) return b.status;
  return cudnnBackendExecute(h, plan, vp.get());
}

// Builds the operation graph of one convolution pass and picks its plan with
// choose_conv_candidate, which leaves the chosen plan's result in the call's buffers. Returns the
// plan, usable or not.
inline std::unique_ptr<GraphConvPlan> graph_conv_build(cudnnHandle_t h, ConvPass pass, DType dt, const ConvGeom& g,
                                                       void* x, void* w, void* y, int dev,
                                                       ConvAlgorithmSearch search) {
  const cudnnDataType_t t = cudnn_dtype(dt);
  auto p = std::make_unique<GraphConvPlan>();
  BackendBuild b;
  BackendDesc xd = graph_tensor(b, kUidX, t, g.N, g.C, g.H, g.W);
  BackendDesc wd = graph_tensor(b, kUidW, t, g.O, g.Cg, g.KH, g.KW);
  BackendDesc yd = graph_tensor(b, kUidY, t, g.N, g.O, g.Ho, g.Wo);
  BackendDesc conv(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
  const cudnnDataType_t comp = CUDNN_DATA_FLOAT;
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  const int64_t spatial = 2, dil[2] = {g.p.dilation_h, g.p.dilation_w}, str[2] = {g.p.stride_h, g.p.stride_w};
  const int64_t pre[2] = {g.p.pad_top, g.p.pad_left}, post[2] = {g.p.pad_bottom, g.p.pad_right};
  b.set(conv, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp);
  b.set(conv, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode);
  b.set(conv, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &spatial);
  b.set(conv, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2, dil);
  b.set(conv, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2, str);
  b.set(conv, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2, pre);
  b.set(conv, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2, post);
  b.finalize(conv);

  // The pass's operation and its attributes by role: x (X or DX), w (W or DW), y (Y or DY).
  struct OpAttrs {
    cudnnBackendDescriptorType_t type;
    cudnnBackendAttributeName_t x, w, y, conv, alpha, beta;
  };
  const OpAttrs fwd_attrs{CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR,
                          CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X,
                          CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W,
                          CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y,
                          CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC,
                          CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA,
                          CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA};
  const OpAttrs data_attrs{CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR,
                           CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX,
                           CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W,
                           CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY,
                           CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC,
                           CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA,
                           CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA};
  const OpAttrs filter_attrs{CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR,
                             CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X,
                             CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW,
                             CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY,
                             CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC,
                             CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA,
                             CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA};
  const OpAttrs& a = pass == ConvPass::forward          ? fwd_attrs
                     : pass == ConvPass::backward_input ? data_attrs
                                                        : filter_attrs;
  const float alpha = 1.f, beta = 0.f;
  BackendDesc op(a.type);
  b.set_desc(op, a.x, xd);
  b.set_desc(op, a.w, wd);
  b.set_desc(op, a.y, yd);
  b.set_desc(op, a.conv, conv);
  b.set(op, a.alpha, CUDNN_TYPE_FLOAT, 1, &alpha);
  b.set(op, a.beta, CUDNN_TYPE_FLOAT, 1, &beta);
  b.finalize(op);

  BackendDesc graph(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  b.set_desc(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, op);
  b.set(graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &h);
  b.finalize(graph);

  BackendDesc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
  const cudnnBackendHeurMode_t heur_mode = CUDNN_HEUR_MODE_A;
  b.set_desc(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph);
  b.set(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &heur_mode);
  b.finalize(heur);
  int64_t count = 0;
  if (b.ok() && cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0,
                                         &count, nullptr) != CUDNN_STATUS_SUCCESS)
    count = 0;
  if (!b.ok() || count <= 0) return p;
  std::vector<BackendDesc> cfgs;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (int64_t i = 0; i < count; ++i) {
    cfgs.emplace_back(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    raw.push_back(cfgs.back().get());
  }
  int64_t got = 0;
  if (cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &got,
                               raw.data()) != CUDNN_STATUS_SUCCESS)
    return p;
  std::vector<std::unique_ptr<BackendDesc>> plans(static_cast<size_t>(count));
  const ConvChoice c = choose_conv_candidate(
      dev, search, std::min(got, count),
      [&](int64_t i, size_t& bytes) {
        if (!raw[i] || reduced_precision(raw[i])) return false;
        auto plan = std::make_unique<BackendDesc>(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
        BackendBuild pb;
        pb.set(*plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &h);
        pb.set_desc(*plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, cfgs[i]);
        pb.finalize(*plan);
        int64_t ws = 0, n = 0;
        if (!pb.ok() || cudnnBackendGetAttribute(plan->get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                                 CUDNN_TYPE_INT64, 1, &n, &ws) != CUDNN_STATUS_SUCCESS)
          return false;
        if (ws < 0 || ws > static_cast<int64_t>(kCudnnMaxWorkspace)) return false;
        bytes = static_cast<size_t>(ws);
        plans[i] = std::move(plan);
        return true;
      },
      [&](int64_t i, void* ws, size_t) { return graph_execute(h, plans[i]->get(), x, w, y, ws); });
  if (c.index >= 0) {
    p->plan = std::move(plans[c.index]);
    p->workspace = static_cast<int64_t>(c.workspace);
    p->usable = true;
    p->keep.push_back(std::move(cfgs[c.index]));
    p->keep.push_back(std::move(xd));
    p->keep.push_back(std::move(wd));
    p->keep.push_back(std::move(yd));
    p->keep.push_back(std::move(conv));
    p->keep.push_back(std::move(op));
    p->keep.push_back(std::move(graph));
  }
  return p;
}

}  // namespace wanwu::cuda
