// `wanwu infer`: a raw tensor in, logits out, for people who already preprocess in PyTorch. The
// input is what a PyTorch user feeds a torchvision model (NCHW float32, normalized), so it is
// permuted to NHWC (DESIGN D4) here; the output is float32 [N, classes] whatever --dtype ran.
#include <iostream>

#include "commands.hpp"
#include "common.hpp"

namespace wanwu::cli {

namespace {
const std::vector<FlagSpec> kFlags = {
    {"model", Takes::value, "architecture (torchvision name), e.g. resnet50", "NAME"},
    {"weights", Takes::value, "safetensors or .pth weights with torchvision names", "FILE"},
    {"checkpoint", Takes::value, "a checkpoint written by wanwu train (instead of --model/--weights)", "FILE"},
    {"input", Takes::value, "safetensors holding 'input': float32 NCHW [N,3,H,W], normalized", "FILE"},
    {"output", Takes::value, "safetensors to write 'logits': float32 [N,classes]", "FILE"},
    {"device", Takes::value, "cpu|cuda (default: cuda when available)", "DEV"},
    {"dtype", Takes::value, "f32|f16|bf16: compute precision (autocast); logits are always f32", "T"},
    {"batch-size", Takes::value, "images per forward pass (default 32)", "N"},
};
}  // namespace

int run_infer(int argc, char** argv) {
  Args a("infer", kFlags, argc, argv, 2, false);
  if (a.help()) {
    std::cout << help_text("wanwu infer --model M --weights W --input X.safetensors --output Y.safetensors",
                           "Runs the model in eval mode on a raw tensor and writes the logits.", kFlags);
    return 0;
  }
  const std::string input = a.required("input"), output = a.required("output");
  const std::string dtype = a.choice("dtype", {"f32", "f16", "bf16"}, "f32");
  const int64_t batch = a.integer("batch-size", 32, 1);
  const Device device = pick_device(a, "infer");
  if (!a.has("checkpoint") && (!a.has("model") || !a.has("weights")))
    throw UsageError("infer: give --model and --weights, or --checkpoint");
  if (a.has("model")) check_model_name("infer", a.str("model"));

  require_file(input, "input file");
  io::SafetensorsFile in = io::load_safetensors(input);
  if (!in.tensors.contains("input"))
    throw RunError(input + ": no tensor named 'input' (expected float32 NCHW [N,3,H,W])");
  Tensor x = in.tensors.at("input");
  if (x.dtype() != DType::f32) throw RunError(input + ": 'input' has dtype " + std::string(dtype_name(x.dtype())) +
                                              ", expected float32");
  if (x.dim() != 4 || x.size(1) != 3)
    throw RunError(input + ": 'input' has shape " + x.shape().str() + ", expected NCHW [N,3,H,W]");

  LoadedModel m = a.has("checkpoint") ? load_checkpoint(a.str("checkpoint"), device)
                                      : load_model_weights(a.str("model"), a.str("weights"), device, x.size(2));
  Tensor nhwc = x.permute({0, 2, 3, 1}).contiguous();
  Tensor logits = eval_logits(*m.model, nhwc, device, batch, parse_amp_dtype(dtype));
  nn::StateDict out;
  out.set("logits", logits);
  try {
    io::save_safetensors(output, out, {{"wanwu.model", m.arch}, {"wanwu.dtype", dtype}});
  } catch (const Error& e) {
    throw RunError("cannot write --output '" + output + "': " + e.what());
  }
  std::cerr << "infer: " << x.size(0) << " images -> " << output << " (logits " << logits.shape().str() << ", "
            << dtype << ")\n";
  return 0;
}

}  // namespace wanwu::cli
