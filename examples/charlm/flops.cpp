// FLOPs per token of the char-level GPT, counted as 2 FLOPs per multiply-add and only
// for the matrix products and the ContextPool op (layer norms, GELU, softmax and the
// embedding lookups are O(d) each and left out, as is customary). Per token, with
// d = d_model, T = block_size (a full window), V = vocabulary (256), L layers:
//
//   per layer   24 d^2               the linears: qkv 6 d^2, proj 2 d^2, fc1 8 d^2, fc2 8 d^2
//            +  2 d (T + 1)          attention: causal, so token t scores t + 1 keys (q.k, 2 d
//                                    FLOPs each) and mixes as many values (2 d each); averaged
//                                    over the window's T positions, (T + 1) / 2 keys
//            +  pool                 with a ContextPool, below
//   head        2 d V                the tied output projection
//
//   pool = 6 d c                     the predictor: a conv of kernel 3, d -> c outputs (c = 1 or 2)
//        + w (2 d + 6)               the op: for each of the w window positions a token visits,
//                                    a multiply-add per feature, one for the normaliser and
//                                    ~4 for the Gaussian weight; causal with half-width W, token
//                                    t visits min(t, W) + 1 positions, averaged over the window
//                                    (at most W + 1; 2 W + 1 for a non-causal pool)
//
// Training costs 3x the forward: the backward computes a gradient for both operands of
// every product, twice the forward's work.
#include "flops.h"

#include <algorithm>
#include <cmath>

namespace charlm {

namespace {

using kiln::nn::ContextPool1d;
using kiln::nn::ContextPoolMode;

// Window positions a token visits, averaged over the T positions of a window.
double mean_visited_positions(int64_t T, int64_t W, bool causal) {
  double total = 0;
  for (int64_t t = 0; t < T; ++t) {
    const int64_t before = std::min(t, W);
    const int64_t after = causal ? 0 : std::min(T - 1 - t, W);
    total += static_cast<double>(before + after + 1);
  }
  return total / static_cast<double>(T);
}

double pool_flops(const ContextPool1d& pool, int64_t d, int64_t T) {
  const double outputs = pool.predictor ? static_cast<double>(pool.predictor->weight.size(0)) : 0.0;
  const double predictor = 6.0 * static_cast<double>(d) * outputs;
  const double visited = mean_visited_positions(T, kiln::nn::context_pool_window(pool.options()), pool.options().causal);
  return predictor + visited * (2.0 * static_cast<double>(d) + 6.0);
}

}  // namespace

FlopCount flops_per_token(const kiln::nn::GPT& model) {
  const kiln::nn::GPTConfig& c = model.config();
  const auto d = static_cast<double>(c.d_model), T = static_cast<double>(c.block_size);
  double forward = 2.0 * d * static_cast<double>(c.vocab_size);
  for (const auto& layer : model.layers) {
    forward += 24.0 * d * d + 2.0 * d * (T + 1.0);
    if (layer->context_pool) forward += pool_flops(*layer->context_pool, c.d_model, c.block_size);
  }
  return {.forward = forward, .training = 3.0 * forward};
}

}  // namespace charlm
