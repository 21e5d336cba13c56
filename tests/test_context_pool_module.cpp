// nn::ContextPool1d / nn::ContextPool2d: shapes and ranges in every mode, the near-identity
// start, causality through the predictor, gradcheck of the predictor's parameters, the
// uniform mode against average pooling, names and errors, and a learning test: a
// one-layer transformer learns a task whose right pooling width changes from token to
// token better with ContextPool than without. TransformerBlock's context_pool option is
// tested in test_transformer.cpp.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <kiln/nn/context_pool.h>
#include <kiln/nn/embedding.h>
#include <kiln/nn/init.h>
#include <kiln/nn/optim/adam.h>
#include <kiln/nn/transformer.h>

#include "helpers.h"

using namespace kiln;
using namespace kiln::testing;
using nn::ContextPoolMode;

namespace {

const ContextPoolMode kModes[] = {ContextPoolMode::adaptive, ContextPoolMode::fixed_size, ContextPoolMode::weights_only,
                                  ContextPoolMode::size_only, ContextPoolMode::uniform};

double max_abs(const Tensor& t) { return max(abs(t)).item<double>(); }

// Random predictor weights, so that m and s differ from token to token (the module
// starts with zero weights, where they do not).
template <class Pool>
void scramble_predictor(Pool& pool, double std = 0.5) {
  if (!pool.predictor) return;
  nn::init::normal_(pool.predictor->weight, 0.0, std);
  nn::init::normal_(pool.predictor->bias, 0.0, std);
}

std::vector<std::string> parameter_names(const nn::Module& module) {
  std::vector<std::string> names;
  for (const auto& [name, p] : module.named_parameters()) names.push_back(name);
  return names;
}

}  // namespace

// ---- the module, 1-D -------------------------------------------------------------------------

TEST_CASE("ContextPool modes: names round-trip, an unknown name is an error") {
  for (ContextPoolMode mode : kModes) CHECK(nn::context_pool_mode_from_string(nn::to_string(mode)) == mode);
  CHECK(nn::to_string(ContextPoolMode::weights_only) == "weights_only");
  CHECK_THROWS_KILN(nn::context_pool_mode_from_string("gaussian"),
                    "ContextPool: unknown mode \"gaussian\"; expected \"adaptive\", \"fixed_size\"");
}

TEST_CASE("ContextPool1d: shapes, m in (0, 1) and s in (s_min, s_max) in every mode, causal or not") {
  manual_seed(0);
  const int64_t B = 2, n = 9, d = 5;
  const Tensor x = randn({B, n, d});
  for (ContextPoolMode mode : kModes) {
    for (bool causal : {false, true}) {
      CAPTURE(nn::to_string(mode));
      CAPTURE(causal);
      nn::ContextPool1d pool(d, {.mode = mode, .causal = causal, .s_min = 0.5, .s_max = 3, .size = 2});
      scramble_predictor(pool);
      const nn::ContextPoolOutput out = pool.forward_with_stats(x);
      CHECK(out.y.shape() == Shape({B, n, d}));
      CHECK(out.m.shape() == Shape({B, n}));
      CHECK(out.s.shape() == Shape({B, n}));
      const double m_min = min(out.m).item<double>(), m_max = max(out.m).item<double>();
      const double s_min = min(out.s).item<double>(), s_max = max(out.s).item<double>();
      switch (mode) {
        case ContextPoolMode::adaptive:
        case ContextPoolMode::size_only:
          CHECK(s_min > 0.5);
          CHECK(s_max < 3.0);
          CHECK(s_max - s_min > 0.1);  // the sizes are per token
          break;
        case ContextPoolMode::fixed_size:
        case ContextPoolMode::weights_only:
          CHECK(s_min == 2.0);
          CHECK(s_max == 2.0);
          break;
        case ContextPoolMode::uniform: CHECK(std::isinf(s_min)); break;
      }
      const bool learns_m = mode != ContextPoolMode::size_only && mode != ContextPoolMode::uniform;
      if (learns_m) {
        CHECK(m_min > 0.0);
        CHECK(m_max < 1.0);
        CHECK(m_max - m_min > 0.1);
      } else {
        CHECK(m_min == 1.0);
        CHECK(m_max == 1.0);
      }
      check_close(pool.forward(x), out.y, 0, 0);
    }
  }
}

TEST_CASE("ContextPool1d starts close to the identity: s ~ s_min, m = 1/2") {
  manual_seed(1);
  const Tensor x = randn({3, 32, 16});
  for (bool causal : {false, true}) {
    CAPTURE(causal);
    nn::ContextPool1d pool(16, {.causal = causal});
    const nn::ContextPoolOutput out = pool.forward_with_stats(x);
    // s = 0.25 + 3.75 sigmoid(-4) = 0.3169 for every token: a neighbour's weight is
    // exp(-1 / (2 s^2)) = 0.0069 of the token's own.
    check_values(out.s, std::vector<double>(3 * 32, 0.25 + 3.75 / (1 + std::exp(4.0))), 1e-6, 1e-6);
    check_values(out.m, std::vector<double>(3 * 32, 0.5), 0, 0);
    const double neighbour = std::exp(-1 / (2 * 0.3169 * 0.3169));
    // |y_i - x_i| <= (weight of the neighbours / total) * the largest |x_j - x_i|.
    CHECK(max_abs(out.y - x) <= 2 * neighbour * 2 * max_abs(x));
    CHECK(max_abs(out.y - x) > 0);  // ... but it does pool
    nn::ContextPool1d residual(16, {.causal = causal, .residual = true});
    check_close(residual.forward(x), x + out.y, 1e-6, 1e-6);
  }
}

TEST_CASE("a causal ContextPool1d: y_i ignores x_j for j > i, its predictor included") {
  manual_seed(2);
  const int64_t n = 10;
  const Tensor x = randn({2, n, 4});
  Tensor changed = x.clone();
  {
    NoGradGuard no_grad;
    changed.narrow(1, 6, 4).copy_(randn({2, 4, 4}));  // tokens 6..9
  }
  for (bool causal : {true, false}) {
    CAPTURE(causal);
    // A small s_max keeps every weight away from underflow, so a leak would show.
    nn::ContextPool1d pool(4, {.causal = causal, .s_min = 1, .s_max = 3});
    scramble_predictor(pool);
    const nn::ContextPoolOutput a = pool.forward_with_stats(x), b = pool.forward_with_stats(changed);
    CHECK(max_abs(b.y.narrow(1, 6, 4) - a.y.narrow(1, 6, 4)) > 1e-3);
    if (causal) {
      CHECK(max_abs(b.y.narrow(1, 0, 6) - a.y.narrow(1, 0, 6)) == 0.0);
      CHECK(max_abs(b.s.narrow(1, 0, 6) - a.s.narrow(1, 0, 6)) == 0.0);
    } else {
      // Token 5 reads token 6, and the predictor of token 5 reads it too.
      CHECK(max_abs(b.y.narrow(1, 5, 1) - a.y.narrow(1, 5, 1)) > 1e-3);
      CHECK(max_abs(b.s.narrow(1, 5, 1) - a.s.narrow(1, 5, 1)) > 1e-6);
    }
  }
}

TEST_CASE("the predictor, computed channels last, is its Conv1d / Conv2d (causal: left-padded by 2)") {
  manual_seed(11);
  for (int64_t n : {1, 2, 9}) {
    for (bool causal : {false, true}) {
      CAPTURE(n);
      CAPTURE(causal);
      nn::ContextPool1d pool(5, {.causal = causal, .s_min = 0.5, .s_max = 3});
      scramble_predictor(pool);
      const Tensor x = randn({2, n, 5});
      const nn::ContextPoolOutput out = pool.forward_with_stats(x);
      Tensor channels_first = x.transpose(1, 2);
      if (causal) channels_first = pad(channels_first, {2, 0});
      const Tensor logits = pool.predictor->forward(channels_first);  // (B, 2, n)
      check_close(out.m, sigmoid(logits.select(1, 0)), 1e-6, 1e-5);
      check_close(out.s, 0.5 + 2.5 * sigmoid(logits.select(1, 1)), 1e-6, 1e-5);
    }
  }
  for (const Shape& grid : {Shape{1, 1}, Shape{1, 3}, Shape{2, 1}, Shape{4, 5}}) {
    CAPTURE(shape_str(grid));
    nn::ContextPool2d pool(3, {.mode = ContextPoolMode::size_only, .s_min = 0.5, .s_max = 3});
    scramble_predictor(pool);
    const Tensor x = randn({2, grid[0], grid[1], 3});
    const Tensor logits = pool.predictor->forward(x.permute({0, 3, 1, 2}));  // (B, 1, H, W)
    check_close(pool.forward_with_stats(x).s, 0.5 + 2.5 * sigmoid(logits.select(1, 0)), 1e-6, 1e-5);
  }
}

namespace {

// gradcheck perturbs copies of its inputs, so the function points the predictor at them.
template <class Pool, class Forward>
void check_module_gradients(Pool& pool, Tensor x, Forward forward) {
  pool.to(f64);
  scramble_predictor(pool);
  const Tensor weight = pool.predictor->weight, bias = pool.predictor->bias;
  check_gradients(
      [&](const std::vector<Tensor>& in) {
        pool.predictor->weight = in[1];
        pool.predictor->bias = in[2];
        return forward(pool, in[0]);
      },
      {x.requires_grad_(), weight, bias});
  pool.predictor->weight = weight;
  pool.predictor->bias = bias;
}

}  // namespace

TEST_CASE("ContextPool1d: gradients of the input and the predictor's parameters (gradcheck, f64)") {
  manual_seed(3);
  const auto forward = [](const nn::ContextPool1d& pool, const Tensor& x) { return pool.forward(x); };
  for (ContextPoolMode mode : {ContextPoolMode::adaptive, ContextPoolMode::weights_only, ContextPoolMode::size_only}) {
    for (bool causal : {false, true}) {
      CAPTURE(nn::to_string(mode));
      CAPTURE(causal);
      nn::ContextPool1d pool(3, {.mode = mode, .causal = causal, .s_min = 0.5, .s_max = 2.5, .residual = causal});
      check_module_gradients(pool, randn({2, 7, 3}, {.dtype = f64}), forward);
    }
  }
}

TEST_CASE("ContextPool1d fixed_size: s is the constant size, and the size channel gets no gradient") {
  manual_seed(4);
  nn::ContextPool1d pool(4, {.mode = ContextPoolMode::fixed_size, .size = 1.5});
  scramble_predictor(pool);
  nn::ContextPool1d weights_only(4, {.mode = ContextPoolMode::weights_only, .size = 1.5});
  CHECK(pool.predictor->weight.shape() == Shape({2, 4, 3}));  // the adaptive module's parameters
  CHECK(weights_only.predictor->weight.shape() == Shape({1, 4, 3}));
  const Tensor x = randn({2, 8, 4});
  sum(pool.forward(x) * randn({2, 8, 4})).backward();
  CHECK(max_abs(pool.predictor->weight.grad().select(0, 0)) > 0);  // m is learned
  CHECK(max_abs(pool.predictor->weight.grad().select(0, 1)) == 0);  // s is not
  CHECK(pool.predictor->bias.grad().to_vector<double>()[1] == 0);

  // The same m and s as weights_only with the weight channel copied: the same output (to
  // rounding: the predictor's product is blocked differently for 1 and 2 channels).
  {
    NoGradGuard no_grad;
    weights_only.predictor->weight.copy_(pool.predictor->weight.narrow(0, 0, 1));
    weights_only.predictor->bias.copy_(pool.predictor->bias.narrow(0, 0, 1));
  }
  check_close(weights_only.forward(x), pool.forward(x), 1e-6, 1e-5);
}

TEST_CASE("ContextPool1d uniform is average pooling over the window, bidirectional and causal") {
  manual_seed(5);
  const int64_t B = 2, n = 11, d = 3, W = 2;
  const Tensor x = randn({B, n, d}, {.dtype = f64});
  nn::ContextPool1d uniform(d, {.mode = ContextPoolMode::uniform, .size = 2.0});
  CHECK(!uniform.predictor);
  CHECK(uniform.named_parameters().empty());
  // Bidirectional: the mean of x_{i-2..i+2} that lie inside the sequence.
  const Tensor expected =
      avg_pool1d(x.transpose(1, 2), 2 * W + 1, {.stride = 1, .padding = W, .count_include_pad = false});
  check_close(uniform.forward(x), expected.transpose(1, 2), 1e-6, 1e-6);

  // Causal: the mean of x_{i-2..i}, by hand.
  nn::ContextPool1d causal(d, {.mode = ContextPoolMode::uniform, .causal = true, .size = 2.0});
  const Tensor y = causal.forward(x);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t first = std::max<int64_t>(0, i - W);
    check_close(y.select(1, i), mean(x.narrow(1, first, i - first + 1), {1}), 1e-6, 1e-6);
  }
  // An explicit window wins over round(size).
  nn::ContextPool1d wide(d, {.mode = ContextPoolMode::uniform, .size = 2.0, .window = 4});
  check_close(wide.forward(x),
              avg_pool1d(x.transpose(1, 2), 9, {.stride = 1, .padding = 4, .count_include_pad = false}).transpose(1, 2),
              1e-6, 1e-6);
}

TEST_CASE("ContextPool1d: parameter names and shapes, repr") {
  nn::ContextPool1d pool(8, {.causal = true});
  CHECK(parameter_names(pool) == std::vector<std::string>{"predictor.weight", "predictor.bias"});
  CHECK(pool.predictor->weight.shape() == Shape({2, 8, 3}));
  CHECK(pool.predictor->bias.to_vector<double>() == std::vector<double>{0.0, -4.0});
  const nn::StateDict state = pool.state_dict();
  CHECK(state.size() == 2);
  CHECK(state.contains("predictor.weight"));
  CHECK(state.contains("predictor.bias"));
  CHECK(pool.extra_repr() == "d_model=8, mode=adaptive, causal=true, s_min=0.25, s_max=4, window=12, residual=false");
  nn::ContextPool1d size_only(8, {.mode = ContextPoolMode::size_only, .init_size_logit = -3});
  CHECK(size_only.predictor->bias.to_vector<double>() == std::vector<double>{-3.0});
  nn::ContextPool1d uniform(8, {.mode = ContextPoolMode::uniform, .size = 3, .residual = true});
  CHECK(uniform.extra_repr() == "d_model=8, mode=uniform, causal=false, size=3, window=3, residual=true");
  nn::ContextPool1d fixed(8, {.mode = ContextPoolMode::weights_only, .size = 1.5});
  CHECK(fixed.extra_repr() == "d_model=8, mode=weights_only, causal=false, size=1.5, window=5, residual=false");
}

TEST_CASE("ContextPool1d and ContextPool2d reject bad options and inputs with clear messages") {
  using Options = nn::ContextPoolModuleOptions;
  CHECK_THROWS_KILN(nn::ContextPool1d(0), "ContextPool1d: the feature size must be positive, got 0");
  CHECK_THROWS_KILN(nn::ContextPool1d(4, Options{.s_min = 2, .s_max = 1}),
                    "ContextPool1d: need 0 < s_min < s_max < inf, got s_min=2, s_max=1");
  CHECK_THROWS_KILN(nn::ContextPool1d(4, Options{.s_min = 0}), "need 0 < s_min < s_max");
  CHECK_THROWS_KILN(nn::ContextPool1d(4, Options{.mode = ContextPoolMode::weights_only, .size = 0}),
                    "ContextPool1d: mode weights_only needs a positive finite size, got size=0");
  CHECK_THROWS_KILN(nn::ContextPool1d(4, Options{.mode = ContextPoolMode::uniform, .size = 0.2}),
                    "ContextPool1d: uniform mode pools a half-width of round(size) tokens");
  CHECK_THROWS_KILN(nn::ContextPool1d(4, Options{.window = -1}), "ContextPool1d: window must be >= 0");
  CHECK_THROWS_KILN(nn::ContextPool1d(4, Options{.stride = 2}), "ContextPool1d: stride is 2-D only");
  CHECK_THROWS_KILN(nn::ContextPool2d(4, Options{.causal = true}), "ContextPool2d: causal pooling is 1-D only");
  CHECK_THROWS_KILN(nn::ContextPool2d(4, Options{.residual = true, .stride = 2}),
                    "ContextPool2d: residual needs stride 1");
  CHECK_THROWS_KILN(nn::ContextPool2d(4, Options{.stride = 0}), "ContextPool2d: stride must be >= 1, got 0");

  nn::ContextPool1d pool(4);
  CHECK_THROWS_KILN(pool.forward(randn({2, 5, 3})),
                    "ContextPool1d: expected input (B, n, 4) with n > 0, got f32[2, 5, 3]");
  CHECK_THROWS_KILN(pool.forward(randn({5, 4})), "ContextPool1d: expected input (B, n, 4) with n > 0, got f32[5, 4]");
  nn::ContextPool2d pool2d(4);
  CHECK_THROWS_KILN(pool2d.forward(randn({2, 4, 3, 3})),
                    "ContextPool2d: expected input (B, H, W, 4) with H, W > 0, got f32[2, 4, 3, 3]");
  CHECK_THROWS_KILN(pool2d.forward_nchw(randn({2, 3, 3, 4})),
                    "ContextPool2d: expected input (N, 4, H, W) with H, W > 0, got f32[2, 3, 3, 4]");
}

// ---- the module, 2-D -------------------------------------------------------------------------

TEST_CASE("ContextPool2d: shapes with and without stride, s read at the output cells, NCHW = NHWC") {
  manual_seed(6);
  const int64_t B = 2, H = 5, W = 7, C = 3;
  const Tensor x = randn({B, H, W, C});
  nn::ContextPool2d dense(C, {.s_min = 0.5, .s_max = 2});
  scramble_predictor(dense);
  nn::ContextPool2d strided(C, {.s_min = 0.5, .s_max = 2, .stride = 2});
  strided.load_state_dict(dense.state_dict());
  CHECK(parameter_names(strided) == std::vector<std::string>{"predictor.weight", "predictor.bias"});
  CHECK(strided.predictor->weight.shape() == Shape({2, C, 3, 3}));

  const nn::ContextPoolOutput full = dense.forward_with_stats(x), out = strided.forward_with_stats(x);
  CHECK(full.y.shape() == Shape({B, H, W, C}));
  CHECK(out.y.shape() == Shape({B, 3, 4, C}));
  CHECK(out.m.shape() == Shape({B, H, W}));  // m is per input cell
  CHECK(out.s.shape() == Shape({B, 3, 4}));  // s per output cell, output (i, j) = input (2i, 2j)
  check_close(out.m, full.m, 0, 0);
  check_close(out.s, full.s.slice(1, 0, H, 2).slice(2, 0, W, 2), 0, 0);
  CHECK(min(out.s).item<double>() > 0.5);
  CHECK(max(out.s).item<double>() < 2.0);
  // With every m and s the same, the strided output is the dense one at the output cells.
  check_close(out.y, full.y.slice(1, 0, H, 2).slice(2, 0, W, 2), 1e-6, 1e-5);

  const Tensor nchw = strided.forward_nchw(x.permute({0, 3, 1, 2}));
  CHECK(nchw.shape() == Shape({B, C, 3, 4}));
  CHECK(nchw.is_contiguous());
  check_close(nchw, out.y.permute({0, 3, 1, 2}), 0, 0);
  CHECK(strided.extra_repr() == "channels=3, mode=adaptive, s_min=0.5, s_max=2, window=6, stride=2, residual=false");
}

TEST_CASE("ContextPool2d uniform with stride is avg_pool2d (zero padding not counted)") {
  manual_seed(7);
  const Tensor x = randn({2, 3, 6, 7}, {.dtype = f64});  // NCHW
  nn::ContextPool2d uniform(3, {.mode = ContextPoolMode::uniform, .size = 1, .stride = 2});
  const Tensor expected = avg_pool2d(x, 3, {.stride = 2, .padding = 1, .count_include_pad = false});
  check_close(uniform.forward_nchw(x), expected, 1e-6, 1e-6);
}

TEST_CASE("ContextPool2d: gradients of the input and the predictor's parameters (gradcheck, f64)") {
  manual_seed(8);
  for (int64_t stride : {1, 2}) {
    CAPTURE(stride);
    nn::ContextPool2d pool(2, {.s_min = 0.5, .s_max = 1.5, .stride = stride});
    check_module_gradients(pool, randn({1, 4, 5, 2}, {.dtype = f64}),
                           [](const nn::ContextPool2d& p, const Tensor& x) { return p.forward(x); });
    nn::ContextPool2d weights_only(2, {.mode = ContextPoolMode::weights_only, .size = 0.8, .stride = stride});
    check_module_gradients(weights_only, randn({1, 2, 4, 3}, {.dtype = f64}),
                           [](const nn::ContextPool2d& p, const Tensor& x) { return p.forward_nchw(x); });
  }
}

// ---- learning: the right granularity, token by token ---------------------------------------

namespace {

// Sequences of bits, each token flagged "short" or "long". The target at token i is the
// majority bit of the last k_i tokens (i included, ties broken by bit i), with k_i = 1
// (copy the bit) for a short token and 7 for a long one. Token id = bit + 2 * flag.
struct MajorityTask {
  static constexpr int64_t kWindows[2] = {1, 7};
  Tensor tokens, targets;  // (B, n) i64 each
};

MajorityTask majority_batch(std::mt19937_64& rng, int64_t B, int64_t n) {
  std::vector<int64_t> tokens(static_cast<size_t>(B * n)), targets(tokens.size());
  for (int64_t b = 0; b < B; ++b) {
    std::vector<int64_t> ones_before(static_cast<size_t>(n) + 1, 0);  // bits set among tokens < i
    for (int64_t i = 0; i < n; ++i) {
      const int64_t bit = static_cast<int64_t>(rng() & 1), flag = static_cast<int64_t>((rng() >> 1) & 1);
      ones_before[i + 1] = ones_before[i] + bit;
      const int64_t first = std::max<int64_t>(0, i - MajorityTask::kWindows[flag] + 1), count = i + 1 - first;
      const int64_t ones = ones_before[i + 1] - ones_before[first];
      tokens[b * n + i] = bit + 2 * flag;
      targets[b * n + i] = 2 * ones == count ? bit : int64_t{2 * ones > count};
    }
  }
  return {from_vector(tokens, {B, n}), from_vector(targets, {B, n})};
}

// A one-layer causal transformer tagger with no position embedding: attention alone sees
// the prefix as an unordered set, so knowing which tokens are the last k must come from
// the pool, whose width the predictor reads off each token's flag. This isolates what the
// pool adds (order-aware pooling, its width learned per token). With learned position
// embeddings attention learns this small task by itself (held-out loss 0.004 after 500
// steps) and the pool does not help (0.013): docs/contextpool.md reports both.
struct Tagger : nn::Module {
  std::shared_ptr<nn::Embedding> wte;
  std::shared_ptr<nn::TransformerBlock> block;
  std::shared_ptr<nn::LayerNorm> ln_f;
  std::shared_ptr<nn::Linear> head;
  Tagger(int64_t d, std::optional<nn::ContextPoolModuleOptions> pool) {
    wte = register_module("wte", std::make_shared<nn::Embedding>(4, d));
    block = register_module("block", std::make_shared<nn::TransformerBlock>(
                                         d, 2, nn::TransformerBlockOptions{.causal = true, .context_pool = pool}));
    ln_f = register_module("ln_f", std::make_shared<nn::LayerNorm>(Shape{d}));
    head = register_module("head", std::make_shared<nn::Linear>(d, 2));
  }
  Tensor forward(const Tensor& tokens) const {
    return head->forward(ln_f->forward(block->forward(wte->forward(tokens))));
  }
};

Tensor tagging_loss(const Tagger& model, const MajorityTask& batch) {
  return cross_entropy(model.forward(batch.tokens).view({-1, 2}), batch.targets.view({-1}));
}

// Trains from seed 0 on the same batches; returns the held-out loss.
double train_tagger(Tagger& model, int steps) {
  std::mt19937_64 rng(1);
  nn::optim::AdamW opt(model.parameters(), {.lr = 1e-2, .weight_decay = 0});
  for (int step = 0; step < steps; ++step) {
    opt.zero_grad();
    tagging_loss(model, majority_batch(rng, 32, 32)).backward();
    opt.step();
  }
  std::mt19937_64 held_out_rng(99);
  NoGradGuard no_grad;
  return tagging_loss(model, majority_batch(held_out_rng, 256, 32)).item<double>();
}

}  // namespace

TEST_CASE("learning: a one-layer transformer tags majority-of-the-last-k better with ContextPool") {
  const int steps = 500, d = 32;
  manual_seed(0);
  Tagger plain(d, std::nullopt);
  const double plain_loss = train_tagger(plain, steps);
  manual_seed(0);
  Tagger pooled(d, nn::ContextPoolModuleOptions{});
  const double pooled_loss = train_tagger(pooled, steps);
  MESSAGE("held-out loss after ", steps, " steps: without ContextPool ", plain_loss, ", with ", pooled_loss);
  // ~0.21 without, whatever the seed; with, 0.12 here and 0.08 to 0.16 over seeds 0..6
  // (ratio 0.40 to 0.77). A pool that returned its input would leave both at ~0.21.
  CHECK(pooled_loss < 0.85 * plain_loss);

  // It learned the granularity: long tokens pool wider than short ones.
  std::mt19937_64 rng(7);
  const MajorityTask batch = majority_batch(rng, 64, 32);
  NoGradGuard no_grad;
  const Tensor h = pooled.wte->forward(batch.tokens);
  const Tensor s = pooled.block->forward_with_pool_stats(h).s;
  const Tensor long_token = ge(batch.tokens, 2).to(f32);
  const double long_s = sum(s * long_token).item<double>() / sum(long_token).item<double>();
  const double short_s = sum(s * (1.0 - long_token)).item<double>() / sum(1.0 - long_token).item<double>();
  MESSAGE("mean support size: short tokens ", short_s, ", long tokens ", long_s);
  CHECK(long_s > short_s + 0.5);
}
