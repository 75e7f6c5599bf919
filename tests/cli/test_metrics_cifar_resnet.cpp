// Unit tests for what the CLI added to the library: ClassificationMetrics against a hand-worked
// example (ties, top-k, a never-predicted class, macro averages) and cifar_resnet8's structure
// (parameter count worked out from the paper's layer list, torchvision-style names, shapes).
#include <doctest/doctest.h>

#include <wanwu/metrics/classification.hpp>

#include "harness.hpp"

using namespace wanwu;

TEST_CASE("ClassificationMetrics: a hand-worked example") {
  metrics::ClassificationMetrics m(3, 2);
  const float rows[5][3] = {{3, 1, 2}, {3, 1, 2}, {1, 1, 5}, {0, 4, 1}, {2, 2, 0}};
  const int64_t labels[5] = {0, 1, 2, 2, 1};
  const int64_t preds[5] = {0, 0, 2, 1, 0};  // ties go to the lower class
  for (int i = 0; i < 5; ++i) CHECK(m.add_row(rows[i], labels[i]) == preds[i]);
  CHECK(m.count() == 5);
  CHECK(m.accuracy() == doctest::Approx(0.4));
  CHECK(m.topk_accuracy() == doctest::Approx(0.8));  // only sample 2 (label 1 ranked third) misses
  CHECK(m.confusion(1, 0) == 2);
  CHECK(m.confusion(2, 1) == 1);
  const auto s0 = m.stats(0), s1 = m.stats(1), s2 = m.stats(2);
  CHECK(s0.precision == doctest::Approx(1.0 / 3));
  CHECK(s0.recall == doctest::Approx(1.0));
  CHECK(s0.f1 == doctest::Approx(0.5));
  CHECK(s1.precision == 0.0);
  CHECK(s1.recall == 0.0);
  CHECK(s1.f1 == 0.0);
  CHECK(s2.precision == doctest::Approx(1.0));
  CHECK(s2.recall == doctest::Approx(0.5));
  CHECK(s2.f1 == doctest::Approx(2.0 / 3));
  CHECK(s2.support == 2);
  const auto mac = m.macro();
  CHECK(mac.precision == doctest::Approx(4.0 / 9));
  CHECK(mac.recall == doctest::Approx(0.5));
  CHECK(mac.f1 == doctest::Approx(7.0 / 18));
  const auto mc = m.most_confused(5);
  REQUIRE(mc.size() == 2);
  CHECK(mc[0] == std::make_tuple(int64_t{1}, int64_t{0}, int64_t{2}));
  CHECK(mc[1] == std::make_tuple(int64_t{2}, int64_t{1}, int64_t{1}));
  CHECK_THROWS_AS(m.add_row(rows[0], 3), IndexError);
}

TEST_CASE("cifar_resnet8: structure, names and shapes") {
  models::ModelOptions o;
  o.num_classes = 10;
  auto m = models::create_model("cifar_resnet8", o);
  int64_t n = 0;
  for (const auto& [name, p] : m->named_parameters()) n += p.numel();
  // conv1 432 + bn1 32 + layer1 4672 + layer2 14528 + layer3 57728 + fc 650
  CHECK(n == 78042);
  const auto sd = m->state_dict();
  for (const char* k : {"conv1.weight", "layer1.0.conv2.weight", "layer2.0.downsample.0.weight",
                        "layer3.0.bn2.running_var", "fc.weight", "fc.bias"})
    CHECK_MESSAGE(sd.contains(k), k);
  CHECK_FALSE(sd.contains("layer4.0.conv1.weight"));
  m->eval();
  NoGradGuard ng;
  const Tensor y = m->forward(randn({2, 28, 28, 3}));
  CHECK(y.shape() == Shape{2, 10});
  CHECK(m->num_features() == 64);
  m->reset_classifier(4);
  CHECK(m->forward(randn({1, 32, 32, 3})).shape() == Shape{1, 4});
}
