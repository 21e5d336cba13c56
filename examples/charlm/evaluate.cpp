#include "evaluate.h"

#include <algorithm>
#include <numbers>

#include <kiln/core/factory.h>
#include <kiln/ops/elementwise.h>
#include <kiln/ops/loss.h>

#include "../common/device.h"

namespace charlm {

using kiln::nn::data::Batch;
using kiln::nn::data::SequentialWindows;
using kiln::nn::data::Split;

ValidationSet::ValidationSet(const kiln::nn::data::ByteCorpus& corpus, int64_t seq_len, int64_t count,
                             int64_t batch_size)
    : windows_(corpus, Split::validation, {.batch_size = batch_size, .seq_len = seq_len}), seq_len_(seq_len) {
  count_ = std::min(count, windows_.num_windows());
}

Validation ValidationSet::evaluate(const kiln::nn::GPT& model) const {
  const kiln::Device device = kiln::examples::device_of(model);
  // The per-batch sums stay on the model's device; the host reads their total once.
  kiln::Tensor loss_sum = kiln::zeros({}, {.dtype = kiln::f64, .device = device});
  int64_t done = 0;
  for (int64_t b = 0; b < windows_.size() && done < count_; ++b) {
    const Batch batch = windows_.batch(b);
    const int64_t rows = std::min(batch.input.size(0), count_ - done);
    const kiln::Tensor input = batch.input.narrow(0, 0, rows).to(device);
    const kiln::Tensor target = batch.target.narrow(0, 0, rows).to(device);
    const kiln::Tensor logits = model.forward(input);
    loss_sum = loss_sum + kiln::cross_entropy(logits.reshape({-1, logits.size(-1)}), target.reshape({-1}),
                                              {.reduction = "sum"})
                              .to(kiln::f64);
    done += rows;
  }
  Validation v;
  v.windows = done;
  v.predictions = done * seq_len_;
  v.loss = loss_sum.item<double>() / static_cast<double>(v.predictions);
  v.bpc = v.loss / std::numbers::ln2;
  return v;
}

}  // namespace charlm
