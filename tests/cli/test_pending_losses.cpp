// `wanwu train`'s step losses read back in batches (examples/wanwu/pending_losses.hpp): the sums
// are the ones reading each loss at once gives, in the same order, and a non-finite loss names the
// epoch and step that produced it, however late it is read, unless fp16 scaling skips it.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "harness.hpp"
#include "pending_losses.hpp"

using namespace wanwu;
using namespace wanwu::cli;

TEST_CASE("PendingLosses: batched reads give the per-step sums and name a divergence's step") {
  const std::vector<float> v = {2.5f, 0.125f, 1.0f / 3.0f, 7.0f};
  const std::vector<int64_t> n = {4, 4, 3, 4};
  double want = 0;
  int64_t want_n = 0;
  for (size_t k = 0; k < v.size(); ++k) {
    want += static_cast<double>(v[k]) * static_cast<double>(n[k]);
    want_n += n[k];
  }
  for (LossReads reads : {LossReads::each, LossReads::batched}) {
    PendingLosses p(reads, NonFiniteLoss::diverged);
    double sum = 0;
    int64_t count = 0;
    for (size_t k = 0; k < v.size(); ++k) {
      p.add(scalar_tensor(v[k], DType::f32), n[k], 1, static_cast<int64_t>(k) + 1);
      CHECK(p.full() == (reads == LossReads::each));
      if (p.full()) p.read_into(sum, count);
    }
    p.read_into(sum, count);
    CHECK(sum == want);  // exact: each loss widened to f64, times its count, added in order
    CHECK(count == want_n);
    p.read_into(sum, count);  // nothing pending: unchanged
    CHECK(count == want_n);
  }
  // the cap: a batched reader is full after kMaxPending losses
  {
    PendingLosses p(LossReads::batched, NonFiniteLoss::diverged);
    for (size_t k = 0; k + 1 < PendingLosses::kMaxPending; ++k) p.add(scalar_tensor(1.0, DType::f32), 1, 1, 1);
    CHECK_FALSE(p.full());
    p.add(scalar_tensor(1.0, DType::f32), 1, 1, 1);
    CHECK(p.full());
  }
  // a NaN at epoch 3 step 41 among finite losses, read two steps later
  {
    PendingLosses p(LossReads::batched, NonFiniteLoss::diverged);
    p.add(scalar_tensor(1.0, DType::f32), 8, 3, 40);
    p.add(scalar_tensor(std::numeric_limits<double>::quiet_NaN(), DType::f32), 8, 3, 41);
    p.add(scalar_tensor(1.0, DType::f32), 8, 3, 42);
    double sum = 0;
    int64_t count = 0;
    CHECK_THROWS_WITH_AS(p.read_into(sum, count), doctest::Contains("the loss is nan at epoch 3 step 41"),
                         DivergedError);
  }
  // with fp16 scaling an overflow is a skipped step, not a divergence: it goes into the sum
  {
    PendingLosses p(LossReads::batched, NonFiniteLoss::skipped);
    p.add(scalar_tensor(std::numeric_limits<double>::infinity(), DType::f32), 2, 1, 1);
    p.add(scalar_tensor(1.0, DType::f32), 2, 1, 2);
    double sum = 0;
    int64_t count = 0;
    CHECK_NOTHROW(p.read_into(sum, count));
    CHECK(std::isinf(sum));
    CHECK(count == 4);
  }
}
