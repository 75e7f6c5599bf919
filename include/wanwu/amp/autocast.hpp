// Mixed precision, as PyTorch's AMP (DESIGN D12). Inside an Autocast scope, conv2d, linear,
// matmul/mm/bmm and scaled_dot_product_attention run in f16 or bf16 (inputs cast on the way in,
// differentiably, so gradients reach the f32 master weights in f32); softmax, log_softmax,
// layer_norm, group_norm, exp/log and friends, sum/mean/logsumexp and the losses run in f32;
// everything else follows its inputs. These are PyTorch's CUDA autocast lists — also on the CPU,
// where PyTorch's own CPU list is narrower — so a wanwu program behaves the same on both devices.
// Guards nest; Autocast(dtype, AutocastMode::off) opens a disabled region. The backward pass always
// runs without autocast.
#pragma once

#include "../core/autocast_state.hpp"

namespace wanwu::amp {

enum class AutocastMode : uint8_t { off, on };

class Autocast {
 public:
  explicit Autocast(DType dtype = DType::bf16, AutocastMode mode = AutocastMode::on) : prev_(autocast_state()) {
    WANWU_CHECK_DTYPE(dtype == DType::f16 || dtype == DType::bf16, "Autocast: dtype must be f16 or bf16, got ", dtype);
    autocast_state() = {mode == AutocastMode::on, dtype};
  }
  ~Autocast() { autocast_state() = prev_; }
  Autocast(const Autocast&) = delete;
  Autocast& operator=(const Autocast&) = delete;

 private:
  AutocastState prev_;
};

inline bool is_autocast_enabled() { return autocast_state().enabled; }
inline DType autocast_dtype() { return autocast_state().dtype; }

}  // namespace wanwu::amp
