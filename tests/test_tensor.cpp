// Tensor core: factories, views that share storage, copies that don't, conversions, printing,
// accessors and the errors bad arguments give.
#include "harness.hpp"

using namespace wanwu;
using wt::check_close;
using wt::values;

TEST_CASE("factories fill the right values, shapes and dtypes") {
  wt::for_each_device([](Device d) {
    const Tensor z = zeros({2, 3}, TensorOptions(DType::f64).device(d));
    CHECK(z.shape() == Shape{2, 3});
    CHECK(z.dtype() == DType::f64);
    CHECK(z.device() == d);
    check_close(z, std::vector<double>(6, 0.0));
    check_close(ones({4}, TensorOptions().device(d)), std::vector<double>(4, 1.0));
    check_close(full({2, 2}, 7, TensorOptions(DType::i32).device(d)), {7, 7, 7, 7});
    check_close(arange(5, TensorOptions(DType::i64).device(d)), {0, 1, 2, 3, 4});
    check_close(arange(1.0, 2.0, 0.25, TensorOptions().device(d)), {1.0, 1.25, 1.5, 1.75});
    check_close(arange(5, 0, -2, TensorOptions().device(d)), {5, 3, 1});
    check_close(linspace(-1, 1, 5, TensorOptions().device(d)), {-1, -0.5, 0, 0.5, 1});
    check_close(eye(2, 3, TensorOptions().device(d)), {1, 0, 0, 0, 1, 0});
  });
  CHECK(arange(5).dtype() == DType::i64);
  CHECK(arange(0.0, 1.0, 0.5).dtype() == DType::f32);
  CHECK(tensor({{1.0, 2.0}, {3.0, 4.0}}).shape() == Shape{2, 2});
  CHECK(tensor({{1.0, 2.0}, {3.0, 4.0}}).dtype() == DType::f32);
  CHECK(tensor({1, 2}).dtype() == DType::i64);
  CHECK(from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3}).accessor<float, 2>()[1][2] == 6.0f);
  CHECK(empty({0, 3}).numel() == 0);
  CHECK_THROWS_AS(zeros({2, -1}), ShapeError);
  CHECK_THROWS_AS(from_vector(std::vector<float>{1, 2, 3}, {2, 2}), ShapeError);
  CHECK_THROWS_AS(arange(0, 5, 0), ValueError);
  CHECK_THROWS_AS(tensor({{1.0, 2.0}, {3.0}}), ShapeError);
}

TEST_CASE("views share storage; contiguous copies do not") {
  const Tensor x = arange(24, DType::f32).reshape({2, 3, 4});
  const Tensor v = x.view({6, 4});
  CHECK(v.storage() == x.storage());
  const Tensor p = x.permute({2, 0, 1});
  CHECK(p.storage() == x.storage());
  CHECK(p.shape() == Shape{4, 2, 3});
  CHECK(p.strides() == Strides{1, 12, 4});
  CHECK_FALSE(p.is_contiguous());
  const Tensor pc = p.contiguous();
  CHECK(pc.storage() != x.storage());
  CHECK(pc.is_contiguous());
  check_close(pc.flatten(), values(p));
  // element (k, i, j) of p is x[i][j][k]
  CHECK(pc.accessor<float, 3>()[3][1][2] == x.accessor<float, 3>()[1][2][3]);

  Tensor n = x.narrow(1, 1, 2);
  CHECK(n.storage() == x.storage());
  CHECK(n.shape() == Shape{2, 2, 4});
  CHECK(n.storage_offset() == 4);
  const Tensor s = x.select(2, 3);
  check_close(s, {3, 7, 11, 15, 19, 23});
  const Tensor sl = x.slice(2, 0, 4, 2);
  check_close(sl.flatten(), {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22});
  check_close(x.slice(0, -1, 100), values(x[1]));
  const Tensor e = tensor({1.f, 2.f}).unsqueeze(1).expand({2, 3});
  CHECK(e.strides() == Strides{1, 0});
  check_close(e, {1, 1, 1, 2, 2, 2});
  CHECK(e.expand({4, 2, 3}).shape() == Shape{4, 2, 3});
  CHECK(x.unsqueeze(0).unsqueeze(-1).shape() == Shape{1, 2, 3, 4, 1});
  CHECK(x.unsqueeze(0).squeeze().shape() == Shape{2, 3, 4});
  CHECK(x.unsqueeze(1).squeeze(1).shape() == Shape{2, 3, 4});
  CHECK(x.flatten(1).shape() == Shape{2, 12});
  CHECK(x.unflatten(2, {2, -1}).shape() == Shape{2, 3, 2, 2});
  CHECK(x.transpose(0, 2).shape() == Shape{4, 3, 2});
  CHECK(x.view({-1}).shape() == Shape{24});

  // Writing through a view changes the base; a clone stays independent.
  Tensor base = zeros({2, 3});
  Tensor col = base.select(1, 1);
  col.fill_(5);
  check_close(base, {0, 5, 0, 0, 5, 0});
  Tensor c = base.clone();
  c.fill_(1);
  check_close(base, {0, 5, 0, 0, 5, 0});
  // reshape of a non-viewable layout copies
  const Tensor t = x.transpose(1, 2);
  const Tensor r = t.reshape({2, 12});
  CHECK(r.storage() != x.storage());
  check_close(r, values(t.contiguous()));
  CHECK_THROWS_AS(t.view({2, 12}), ShapeError);
}

TEST_CASE("view errors name the op and shapes") {
  const Tensor x = zeros({2, 3});
  CHECK_THROWS_WITH_AS(x.view({4, 2}), doctest::Contains("view"), ShapeError);
  CHECK_THROWS_AS(x.reshape({-1, -1}), ShapeError);
  CHECK_THROWS_AS(x.permute({0, 0}), IndexError);
  CHECK_THROWS_AS(x.permute({0}), ShapeError);
  CHECK_THROWS_AS(x.narrow(1, 2, 2), IndexError);
  CHECK_THROWS_AS(x.select(0, 2), IndexError);
  CHECK_THROWS_AS(x.expand({3, 3}), ShapeError);
  CHECK_THROWS_WITH_AS(x.size(2), doctest::Contains("out of range"), IndexError);
  CHECK_THROWS_AS(x.transpose(0, 5), IndexError);
  CHECK_THROWS_AS((x.accessor<double, 2>()), DTypeError);
  CHECK_THROWS_AS((x.accessor<float, 3>()), ShapeError);
  CHECK_THROWS_AS(x.item<float>(), ShapeError);
  CHECK_THROWS_AS(Tensor().shape(), Error);
}

TEST_CASE("copy_, to, clone, item and tolist") {
  Tensor a = zeros({2, 3}, DType::f64);
  a.copy_(tensor({1.f, 2.f, 3.f}));  // broadcast and convert
  check_close(a, {1, 2, 3, 1, 2, 3});
  CHECK(a.dtype() == DType::f64);
  CHECK_THROWS_AS(a.copy_(zeros({2})), ShapeError);
  const uint32_t v0 = a.version();
  a.fill_(2);
  CHECK(a.version() == v0 + 1);
  CHECK(a.to(DType::f64).is_same(a));  // no-op conversion returns the same tensor
  CHECK(a.to(DType::i32).dtype() == DType::i32);
  CHECK(tensor({2.5}).item<double>() == 2.5);
  CHECK(tensor({7}).item().to_int() == 7);
  CHECK(tensor({3.5}).item().is_floating());
  CHECK(arange(4).reshape({2, 2}).t().tolist<int64_t>() == std::vector<int64_t>{0, 2, 1, 3});
}

TEST_CASE("printing looks like PyTorch's") {
  CHECK(to_string(tensor({1.f, 2.f, 3.f})) == "tensor([1., 2., 3.], shape=[3], dtype=f32)");
  CHECK(to_string(tensor({{1.5, -2.0}, {3.25, 4.0}})) ==
        "tensor([[ 1.5000, -2.0000],\n        [ 3.2500,  4.0000]], shape=[2, 2], dtype=f32)");
  CHECK(to_string(tensor({1e-5, 1.0})) == "tensor([1.0000e-05, 1.0000e+00], shape=[2], dtype=f32)");
  CHECK(to_string(tensor({1, 20, 300})) == "tensor([  1,  20, 300], shape=[3], dtype=i64)");
  CHECK(to_string(tensor({true, false})) == "tensor([ true, false], shape=[2], dtype=bool)");
  CHECK(to_string(scalar_tensor(2.5, DType::f64)) == "tensor(2.5000, shape=[], dtype=f64)");
  const std::string big = to_string(arange(2000, DType::f32));
  CHECK(big == "tensor([   0.,    1.,    2., ..., 1997., 1998., 1999.], shape=[2000], dtype=f32)");
  const std::string big2 = to_string(zeros({100, 100}));
  CHECK(big2.find("...") != std::string::npos);
  CHECK(big2.size() < 400);
  Tensor w = ones({2}).requires_grad_();
  CHECK(to_string(w) == "tensor([1., 1.], shape=[2], dtype=f32, requires_grad)");
  CHECK(to_string(w * 2) == "tensor([2., 2.], shape=[2], dtype=f32, grad_fn=<mul>)");
  CHECK(to_string(tensor({wt::kNaN, wt::kInf, 1.0})) == "tensor([nan, inf, 1.], shape=[3], dtype=f32)");
}

TEST_CASE("a CUDA tensor without the CUDA backend is a clear error") {
  if (cuda_is_available()) return;
  CHECK_THROWS_WITH_AS(zeros({2}, Device::cuda()), doctest::Contains("CUDA"), DeviceError);
}
