#include "sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include <kiln/autograd/grad_mode.h>
#include <kiln/core/factory.h>

#include "../common/device.h"

namespace charlm {

namespace {

using kiln::Tensor;

// The next-character logits after `context` (its last block_size bytes).
std::vector<float> next_logits(const kiln::nn::GPT& model, const std::string& context) {
  const auto T = std::min<int64_t>(static_cast<int64_t>(context.size()), model.config().block_size);
  std::vector<int64_t> tokens(context.end() - T, context.end());
  for (int64_t& token : tokens) token &= 0xff;  // chars are signed; tokens are bytes 0..255
  const Tensor input = kiln::from_vector(tokens, {1, T}, {.dtype = kiln::i64}).to(kiln::examples::device_of(model));
  const Tensor logits = model.forward(input);  // (1, T, 256), on the model's device
  return logits.select(1, T - 1).to_vector<float>();  // copies to the host when on a GPU
}

// Draws an index from softmax(logits / temperature), restricted to the top_k largest.
int64_t sample_index(const std::vector<float>& logits, double temperature, int64_t top_k) {
  std::vector<int64_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return logits[a] > logits[b]; });
  if (top_k > 0 && top_k < static_cast<int64_t>(order.size())) order.resize(static_cast<size_t>(top_k));

  // Probabilities relative to the largest logit, so exp never overflows.
  std::vector<double> weights;
  double total = 0;
  for (int64_t index : order) {
    weights.push_back(std::exp((logits[index] - logits[order[0]]) / temperature));
    total += weights.back();
  }
  double u = kiln::uniform(0, 1, {1}, {.dtype = kiln::f64}).item<double>() * total;
  for (size_t i = 0; i < order.size(); ++i) {
    u -= weights[i];
    if (u <= 0) return order[i];
  }
  return order.back();  // rounding left a sliver of u
}

}  // namespace

std::string generate(kiln::nn::GPT& model, const SampleSettings& settings) {
  kiln::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  std::string text = settings.prompt.empty() ? "\n" : settings.prompt;
  for (int64_t i = 0; i < settings.length; ++i) {
    const int64_t next = sample_index(next_logits(model, text), settings.temperature, settings.top_k);
    text.push_back(static_cast<char>(next));
  }
  model.train(was_training);
  return settings.prompt.empty() ? text.substr(1) : text;
}

}  // namespace charlm
