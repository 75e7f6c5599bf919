// cat, stack, split, chunk, unbind, index_select, gather, scatter_add, one_hot: values against
// hand-worked cases, errors naming the op.
#include "harness.hpp"

using namespace wanwu;
using wt::check_close;

TEST_CASE("cat and stack") {
  const Tensor a = tensor({{1.0, 2.0}, {3.0, 4.0}});
  const Tensor b = tensor({{5.0, 6.0}});
  check_close(cat({a, b}), {1, 2, 3, 4, 5, 6});
  CHECK(cat({a, b}).shape() == Shape{3, 2});
  check_close(cat({a, a}, 1), {1, 2, 1, 2, 3, 4, 3, 4});
  check_close(cat({a, a.t()}, -1), {1, 2, 1, 3, 3, 4, 2, 4});  // strided input
  CHECK(cat({a, b.to(DType::f64)}).dtype() == DType::f64);    // promotion
  check_close(cat({zeros({0}), a}), {1, 2, 3, 4});              // legacy empty 1-D skipped
  const Tensor s = stack({tensor({1.0, 2.0}), tensor({3.0, 4.0})}, 1);
  CHECK(s.shape() == Shape{2, 2});
  check_close(s, {1, 3, 2, 4});
  CHECK(stack({a, a, a}).shape() == Shape{3, 2, 2});
  CHECK_THROWS_WITH_AS(cat({a, tensor({{1.0, 2.0, 3.0}})}), doctest::Contains("cat"), ShapeError);
  CHECK_THROWS_AS(cat({a, zeros({2})}), ShapeError);
  CHECK_THROWS_AS(cat({}), ValueError);
  CHECK_THROWS_AS(stack({a, b}), ShapeError);
}

TEST_CASE("split and chunk return views of the right sizes") {
  const Tensor x = arange(10, DType::f32);
  const auto parts = split(x, 4);
  REQUIRE(parts.size() == 3);
  check_close(parts[2], {8, 9});
  CHECK(parts[1].storage() == x.storage());
  const auto ws = split_with_sizes(x, {2, 3, 5});
  check_close(ws[1], {2, 3, 4});
  CHECK_THROWS_AS(split_with_sizes(x, {2, 3}), ShapeError);
  const auto ch = chunk(x, 3);
  REQUIRE(ch.size() == 3);
  CHECK(ch[0].numel() == 4);
  CHECK(ch[2].numel() == 2);
  CHECK(chunk(arange(5, DType::f32), 4).size() == 3);  // as PyTorch: ceil(5/4) = 2 per chunk
  const auto rows = chunk(arange(12, DType::f32).reshape({3, 4}), 2, 1);
  check_close(rows[1], {2, 3, 6, 7, 10, 11});
}

TEST_CASE("unbind: views along a dim; one gradient buffer, zeros where a slice got none") {
  const Tensor x = arange(12, DType::f64).reshape({2, 3, 2});
  const auto cols = unbind(x, 1);
  REQUIRE(cols.size() == 3);
  CHECK(cols[1].shape() == Shape{2, 2});
  check_close(cols[1], {2, 3, 8, 9});
  CHECK(cols[2].storage() == x.storage());
  check_close(unbind(x, -1)[1], {1, 3, 5, 7, 9, 11});
  CHECK(unbind(zeros({0, 2})).empty());
  CHECK_THROWS_WITH_AS(unbind(scalar_tensor(1.0)), doctest::Contains("unbind"), ShapeError);
  // only slices 0 and 2 reach the loss: the gradient is 2 * slice 0 there, 3 at slice 2, 0 at slice 1
  Tensor w = x.clone().requires_grad_();
  const auto s = unbind(w, 1);
  ((s[0] * s[0]).sum() + (s[2] * 3.0).sum()).backward();
  check_close(w.grad(), {0, 2, 0, 0, 3, 3, 12, 14, 0, 0, 3, 3}, 0, 0);
}

TEST_CASE("index_select, gather, scatter_add") {
  const Tensor x = arange(12, DType::f32).reshape({3, 4});
  check_close(index_select(x, 0, tensor({2, 0, 2})), {8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11});
  check_close(index_select(x, 1, tensor({3, 1}).to(DType::i32)), {3, 1, 7, 5, 11, 9});
  check_close(index_select(x.t(), 0, tensor({1})), {1, 5, 9});  // strided input
  // gather along dim 1 with an index narrower than the input
  check_close(gather(x, 1, tensor({{3, 0}, {1, 1}, {2, 3}})), {3, 0, 5, 5, 10, 11});
  check_close(gather(x, 0, tensor({{2, 0, 1, 0}})), {8, 1, 6, 3});
  // scatter_add accumulates repeated indices
  const Tensor z = zeros({2, 3});
  check_close(scatter_add(z, 1, tensor({{0, 0, 2}, {1, 1, 1}}), tensor({{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}})),
              {3, 0, 3, 0, 15, 0});
  check_close(z, {0, 0, 0, 0, 0, 0});  // out of place
  CHECK_THROWS_WITH_AS(index_select(x, 0, tensor({3})), doctest::Contains("out of bounds"), IndexError);
  CHECK_THROWS_AS(index_select(x, 0, tensor({-1})), IndexError);
  CHECK_THROWS_AS(gather(x, 1, tensor({{4}})), IndexError);
  CHECK_THROWS_AS(gather(x, 1, tensor({1, 2})), ShapeError);
  CHECK_THROWS_AS(index_select(x, 0, tensor({1.0})), DTypeError);
}

TEST_CASE("one_hot") {
  const Tensor oh = one_hot(tensor({2, 0, 1}), 4);
  CHECK(oh.dtype() == DType::i64);
  CHECK(oh.shape() == Shape{3, 4});
  check_close(oh, {0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0});
  CHECK(one_hot(tensor({{1, 3}})).shape() == Shape{1, 2, 4});
  CHECK_THROWS_AS(one_hot(tensor({4}), 4), IndexError);
  CHECK_THROWS_AS(one_hot(tensor({-1}), 4), IndexError);
  CHECK_THROWS_AS(one_hot(tensor({1.0}), 4), DTypeError);
}
