// nn::MultiHeadAttention against torch.nn.MultiheadAttention (golden, same weights):
// plain, causal and key padding; nn::TransformerBlock against a PyTorch pre-LN block
// (golden) plus causality, shapes, names and gradient flow; the block's context_pool option
// (both placements, 1-D and on a grid, against the sub-layers composed by hand); nn::init_gpt2_.
#include <cmath>
#include <functional>
#include <string>

#include <kiln/nn/attention.h>
#include <kiln/nn/embedding.h>
#include <kiln/nn/init.h>
#include <kiln/nn/init_gpt2.h>
#include <kiln/nn/transformer.h>

#include "golden/attention_golden.h"
#include "helpers.h"

using namespace kiln;
using namespace kiln::testing;
namespace G = golden::attention;

namespace {

constexpr int64_t kBatch = 2, kLen = 4, kEmbed = 8, kHeads = 2;

Tensor golden_tensor(const std::vector<double>& values, const Shape& shape) {
  return from_vector(values, shape, {.dtype = f64});
}

Tensor output_weights(const Tensor& out) {
  REQUIRE(static_cast<size_t>(out.numel()) <= G::output_weights.size());
  const std::vector<double> w(G::output_weights.begin(), G::output_weights.begin() + out.numel());
  return from_vector(w, out.shape(), {.dtype = out.dtype()});
}

std::shared_ptr<nn::MultiHeadAttention> golden_mha(bool causal) {
  auto mha = std::make_shared<nn::MultiHeadAttention>(kEmbed, kHeads, nn::MultiHeadAttentionOptions{.causal = causal});
  mha->to(f64);
  nn::StateDict state;
  state.insert("qkv.weight", golden_tensor(G::mha_qkv_weight, {3 * kEmbed, kEmbed}));
  state.insert("qkv.bias", golden_tensor(G::mha_qkv_bias, {3 * kEmbed}));
  state.insert("proj.weight", golden_tensor(G::mha_proj_weight, {kEmbed, kEmbed}));
  state.insert("proj.bias", golden_tensor(G::mha_proj_bias, {kEmbed}));
  mha->load_state_dict(state);
  return mha;
}

struct MhaExpected {
  const std::vector<double>&y, &dx, &dqkv_weight, &dproj_weight;
};

void check_mha_golden(bool causal, const Tensor& key_padding_mask, const MhaExpected& e) {
  auto mha = golden_mha(causal);
  const Tensor x = golden_tensor(G::mha_x, {kBatch, kLen, kEmbed}).requires_grad_();
  const Tensor y = mha->forward(x, key_padding_mask);
  check_values(y, e.y, 1e-10, 1e-10);
  sum(y * output_weights(y)).backward();
  check_values(x.grad(), e.dx, 1e-10, 1e-10);
  check_values(mha->qkv->weight.grad(), e.dqkv_weight, 1e-10, 1e-10);
  check_values(mha->proj->weight.grad(), e.dproj_weight, 1e-10, 1e-10);
}

Tensor golden_padding_mask() { return gt(golden_tensor(G::mha_key_padding_mask, {kBatch, kLen}), 0.5); }

}  // namespace

// ---- MultiHeadAttention ------------------------------------------------------------------------

TEST_CASE("MultiHeadAttention matches torch.nn.MultiheadAttention with the same weights") {
  SUBCASE("plain") {
    check_mha_golden(false, {}, {G::mha_plain, G::mha_plain_grad_x, G::mha_plain_grad_qkv_weight,
                                 G::mha_plain_grad_proj_weight});
  }
  SUBCASE("causal") {
    check_mha_golden(true, {}, {G::mha_causal, G::mha_causal_grad_x, G::mha_causal_grad_qkv_weight,
                                G::mha_causal_grad_proj_weight});
  }
  SUBCASE("key padding mask (true = padding)") {
    check_mha_golden(false, golden_padding_mask(),
                     {G::mha_key_padding, G::mha_key_padding_grad_x, G::mha_key_padding_grad_qkv_weight,
                      G::mha_key_padding_grad_proj_weight});
  }
}

TEST_CASE("MultiHeadAttention: names, shapes, a fully padded sequence, dropout and errors") {
  manual_seed(0);
  nn::MultiHeadAttention mha(kEmbed, kHeads, {.dropout = 0.5});
  std::vector<std::string> names;
  for (const auto& [name, p] : mha.named_parameters()) names.push_back(name);
  CHECK(names == std::vector<std::string>{"qkv.weight", "qkv.bias", "proj.weight", "proj.bias"});
  CHECK(mha.qkv->weight.shape() == Shape({3 * kEmbed, kEmbed}));
  CHECK(mha.extra_repr() == "embed_dim=8, num_heads=2, bias=true, dropout=0.5, causal=false");

  const Tensor x = randn({kBatch, kLen, kEmbed});
  mha.eval();
  const Tensor y = mha.forward(x);
  CHECK(y.shape() == Shape({kBatch, kLen, kEmbed}));
  check_close(mha.forward(x), y, 0, 0);  // eval: no dropout
  mha.train();
  CHECK(mha.forward(x).to_vector<float>() != y.to_vector<float>());

  // Every key of sequence 1 is padding: its queries attend to nothing, so their output is
  // proj's bias (not NaN), and sequence 0 is unaffected by sequence 1's mask.
  mha.eval();
  Tensor pad = zeros({kBatch, kLen}, {.dtype = b8});
  pad.select(0, 1).fill_(1);
  const Tensor padded = mha.forward(x, pad);
  check_close(padded.select(0, 0), y.select(0, 0), 1e-6, 1e-5);
  for (int64_t i = 0; i < kLen; ++i) check_close(padded.select(0, 1).select(0, i), mha.proj->bias, 1e-7, 1e-6);

  CHECK_THROWS_KILN(nn::MultiHeadAttention(10, 3),
                    "MultiHeadAttention: embed_dim (10) must be a positive multiple of num_heads (3)");
  CHECK_THROWS_KILN(mha.forward(randn({kBatch, kLen, 6})),
                    "MultiHeadAttention: expected input (B, L, 8), got f32[2, 4, 6]");
  CHECK_THROWS_KILN(mha.forward(x, zeros({kBatch, kLen})),
                    "key_padding_mask must be bool (B, L) = [2, 4], got f32[2, 4]");
  CHECK_THROWS_KILN(mha.forward(x, zeros({kBatch, kLen + 1}, {.dtype = b8})), "key_padding_mask must be bool (B, L)");
}

// ---- TransformerBlock ----------------------------------------------------------------------------

TEST_CASE("TransformerBlock (pre-LN, gelu_tanh, causal) matches a PyTorch reference, output and gradients") {
  nn::TransformerBlock block(kEmbed, kHeads, {.mlp_ratio = 2, .causal = true});
  block.to(f64);
  struct Param {
    const char* name;
    const std::vector<double>& value;
    const std::vector<double>& grad;
  };
  const Param params[] = {
      {"ln1.weight", G::block_ln1_weight, G::block_grad_ln1_weight},
      {"ln1.bias", G::block_ln1_bias, G::block_grad_ln1_bias},
      {"attn.qkv.weight", G::block_attn_qkv_weight, G::block_grad_attn_qkv_weight},
      {"attn.qkv.bias", G::block_attn_qkv_bias, G::block_grad_attn_qkv_bias},
      {"attn.proj.weight", G::block_attn_proj_weight, G::block_grad_attn_proj_weight},
      {"attn.proj.bias", G::block_attn_proj_bias, G::block_grad_attn_proj_bias},
      {"ln2.weight", G::block_ln2_weight, G::block_grad_ln2_weight},
      {"ln2.bias", G::block_ln2_bias, G::block_grad_ln2_bias},
      {"fc1.weight", G::block_fc1_weight, G::block_grad_fc1_weight},
      {"fc1.bias", G::block_fc1_bias, G::block_grad_fc1_bias},
      {"fc2.weight", G::block_fc2_weight, G::block_grad_fc2_weight},
      {"fc2.bias", G::block_fc2_bias, G::block_grad_fc2_bias},
  };
  // The parameters are registered in exactly this order.
  const auto named = block.named_parameters();
  REQUIRE(named.size() == std::size(params));
  nn::StateDict state;
  for (size_t i = 0; i < named.size(); ++i) {
    CHECK(named[i].first == params[i].name);
    state.insert(params[i].name, golden_tensor(params[i].value, named[i].second.shape()));
  }
  block.load_state_dict(state);

  const Tensor x = golden_tensor(G::block_x, {kBatch, kLen, kEmbed}).requires_grad_();
  const Tensor y = block.forward(x);
  check_values(y, G::block_y, 1e-10, 1e-10);
  sum(y * output_weights(y)).backward();
  check_values(x.grad(), G::block_grad_x, 1e-10, 1e-10);
  for (size_t i = 0; i < named.size(); ++i) {
    CAPTURE(params[i].name);
    check_values(named[i].second.grad(), params[i].grad, 1e-10, 1e-10);
  }
}

TEST_CASE("a causal TransformerBlock's output at position i ignores inputs after i") {
  manual_seed(1);
  for (bool causal : {true, false}) {
    CAPTURE(causal);
    nn::TransformerBlock block(16, 4, {.causal = causal});
    const Tensor x = randn({2, 6, 16});
    const Tensor y = block.forward(x);
    CHECK(y.shape() == Shape({2, 6, 16}));
    Tensor changed = x.clone();
    {
      NoGradGuard no_grad;
      changed.narrow(1, 4, 2).copy_(randn({2, 2, 16}));  // positions 4 and 5
    }
    const Tensor y2 = block.forward(changed);
    const double before = max(abs(y2.narrow(1, 0, 4) - y.narrow(1, 0, 4))).item<double>();
    const double after = max(abs(y2.narrow(1, 4, 2) - y.narrow(1, 4, 2))).item<double>();
    CHECK(after > 1e-3);
    if (causal) CHECK(before == 0.0);
    else CHECK(before > 1e-3);  // without the mask earlier positions do see later ones
  }
}

TEST_CASE("TransformerBlock: children, gradients reach every parameter, options and errors") {
  manual_seed(2);
  nn::TransformerBlock block(16, 2, {.mlp_ratio = 3, .dropout = 0.1, .activation = "relu"});
  std::vector<std::string> children;
  for (const auto& [name, child] : block.named_children()) children.push_back(name);
  CHECK(children == std::vector<std::string>{"ln1", "attn", "ln2", "fc1", "fc2"});
  CHECK(block.fc1->weight.shape() == Shape({48, 16}));
  CHECK(block.extra_repr() ==
        "d_model=16, num_heads=2, mlp_ratio=3, dropout=0.1, attn_dropout=0.1, causal=false, activation=relu");

  const Tensor x = randn({3, 5, 16}).requires_grad_();
  Tensor pad = zeros({3, 5}, {.dtype = b8});
  pad.select(0, 2).narrow(0, 3, 2).fill_(1);
  sum(block.forward(x, pad) * randn({3, 5, 16})).backward();
  for (const auto& [name, p] : block.named_parameters()) {
    CAPTURE(name);
    REQUIRE(p.grad().defined());
    CHECK(max(abs(p.grad())).item<double>() > 0);
  }
  CHECK(max(abs(x.grad())).item<double>() > 0);

  // eval: dropout off, so two calls agree; the activations differ from each other.
  block.eval();
  check_close(block.forward(x), block.forward(x), 0, 0);
  nn::TransformerBlock gelu_block(16, 2, {.activation = "gelu"});
  CHECK(gelu_block.extra_repr().find("activation=gelu") != std::string::npos);

  CHECK_THROWS_KILN(nn::TransformerBlock(16, 2, {.activation = "swish"}),
                    "TransformerBlock: activation must be \"gelu_tanh\", \"gelu\" or \"relu\", got \"swish\"");
  CHECK_THROWS_KILN(nn::TransformerBlock(16, 3), "MultiHeadAttention: embed_dim (16) must be a positive multiple");
  CHECK_THROWS_KILN(block.forward(randn({3, 5, 8})), "TransformerBlock: expected input (B, L, 16), got f32[3, 5, 8]");
}

// ---- TransformerBlock's context_pool option --------------------------------------------------

namespace {

double max_abs(const Tensor& t) { return max(abs(t)).item<double>(); }

// The pool starts with zero predictor weights (m and s the same for every token); random
// ones make the checks below see per-token m and s.
template <class Pool>
void randomize_predictor(Pool& pool) {
  nn::init::normal_(pool.predictor->weight, 0.0, 0.5);
  nn::init::normal_(pool.predictor->bias, 0.0, 0.5);
}

// The block's sub-layers by hand, in the order each placement documents.
Tensor block_by_hand(const nn::TransformerBlock& block, const Tensor& x, const std::string& placement,
                     const std::function<Tensor(const Tensor&)>& pool) {
  const auto mlp = [&](const Tensor& h) {
    return block.fc2->forward(gelu(block.fc1->forward(block.ln2->forward(h)), "tanh"));
  };
  Tensor h = x + block.attn->forward(block.ln1->forward(x));
  if (placement == "after_attention") h = pool(h);
  Tensor out = h + mlp(h);
  return placement == "after_block" ? pool(out) : out;
}

}  // namespace

TEST_CASE("TransformerBlock with context_pool: both placements, 1-D and on a grid") {
  manual_seed(9);
  const int64_t B = 2, d = 8;
  for (const std::string placement : {"after_attention", "after_block"}) {
    CAPTURE(placement);
    {  // 1-D, causal
      nn::TransformerBlock block(d, 2, {.causal = true, .context_pool = nn::ContextPoolModuleOptions{.s_max = 3},
                                        .context_pool_placement = placement});
      REQUIRE(block.context_pool);
      CHECK(!block.context_pool2d);
      CHECK(block.context_pool->options().causal);  // the block's causality
      randomize_predictor(*block.context_pool);
      const Tensor x = randn({B, 6, d});
      const Tensor expected =
          block_by_hand(block, x, placement, [&](const Tensor& h) { return block.context_pool->forward(h); });
      check_close(block.forward(x), expected, 1e-6, 1e-5);
      const nn::ContextPoolOutput out = block.forward_with_pool_stats(x);
      check_close(out.y, expected, 1e-6, 1e-5);
      CHECK(out.m.shape() == Shape({B, 6}));
      CHECK(out.s.shape() == Shape({B, 6}));
      CHECK(block.extra_repr().ends_with("causal=true, activation=gelu_tanh, context_pool=" + placement));

      // Still causal: changing the last two tokens leaves the first four alone.
      Tensor changed = x.clone();
      {
        NoGradGuard no_grad;
        changed.narrow(1, 4, 2).copy_(randn({B, 2, d}));
      }
      const Tensor y = block.forward(x), y2 = block.forward(changed);
      CHECK(max_abs(y2.narrow(1, 0, 4) - y.narrow(1, 0, 4)) == 0.0);
      CHECK(max_abs(y2.narrow(1, 4, 2) - y.narrow(1, 4, 2)) > 1e-3);
    }
    {  // on a 3 x 4 grid
      nn::TransformerBlock block(d, 2, {.context_pool = nn::ContextPoolModuleOptions{.s_max = 2},
                                        .context_pool_placement = placement, .context_pool_grid = Size2(3, 4)});
      REQUIRE(block.context_pool2d);
      CHECK(!block.context_pool);
      randomize_predictor(*block.context_pool2d);
      const Tensor x = randn({B, 12, d});
      const Tensor expected = block_by_hand(block, x, placement, [&](const Tensor& h) {
        return block.context_pool2d->forward(h.reshape({B, 3, 4, d})).reshape({B, 12, d});
      });
      check_close(block.forward(x), expected, 1e-6, 1e-5);
      const nn::ContextPoolOutput out = block.forward_with_pool_stats(x);
      CHECK(out.m.shape() == Shape({B, 3, 4}));
      CHECK(out.s.shape() == Shape({B, 3, 4}));
      CHECK(block.extra_repr().ends_with("context_pool=" + placement + ", context_pool_grid=(3, 4)"));
      CHECK_THROWS_KILN(block.forward(randn({B, 11, d})),
                        "TransformerBlock: context_pool_grid 3 x 4 needs L = 12 tokens, got L = 11");
    }
  }
}

TEST_CASE("TransformerBlock with context_pool: names, gradients reach the predictor, errors") {
  manual_seed(10);
  nn::TransformerBlock block(8, 2, {.context_pool = nn::ContextPoolModuleOptions{}});
  std::vector<std::string> children;
  for (const auto& [name, child] : block.named_children()) children.push_back(name);
  CHECK(children == std::vector<std::string>{"ln1", "attn", "ln2", "fc1", "fc2", "context_pool"});
  std::vector<std::string> names;
  for (const auto& [name, p] : block.named_parameters()) names.push_back(name);
  CHECK(names.size() == 14);
  CHECK(names[12] == "context_pool.predictor.weight");
  CHECK(names[13] == "context_pool.predictor.bias");
  const Tensor x = randn({2, 5, 8}).requires_grad_();
  sum(block.forward(x) * randn({2, 5, 8})).backward();
  CHECK(max_abs(block.context_pool->predictor->weight.grad()) > 0);
  CHECK(max_abs(block.context_pool->predictor->bias.grad()) > 0);

  nn::TransformerBlock plain(8, 2);
  CHECK_THROWS_KILN(plain.forward_with_pool_stats(x),
                    "TransformerBlock: forward_with_pool_stats needs a block built with the context_pool option");
  using Options = nn::TransformerBlockOptions;
  CHECK_THROWS_KILN(nn::TransformerBlock(8, 2, Options{.context_pool = nn::ContextPoolModuleOptions{},
                                                       .context_pool_placement = "before_attention"}),
                    "TransformerBlock: context_pool_placement must be \"after_attention\" or \"after_block\", got "
                    "\"before_attention\"");
  CHECK_THROWS_KILN(nn::TransformerBlock(8, 2, Options{.context_pool_grid = Size2(2, 2)}),
                    "TransformerBlock: context_pool_grid is set but context_pool is not");
  CHECK_THROWS_KILN(nn::TransformerBlock(8, 2, Options{.causal = true, .context_pool = nn::ContextPoolModuleOptions{},
                                                       .context_pool_grid = Size2(2, 2)}),
                    "TransformerBlock: context_pool_grid pools a 2-D grid, which has no causal order");
  CHECK_THROWS_KILN(nn::TransformerBlock(8, 2, Options{.context_pool = nn::ContextPoolModuleOptions{.stride = 2},
                                                       .context_pool_grid = Size2(2, 2)}),
                    "TransformerBlock: the context pool must keep every token (stride 1)");
}

// ---- init_gpt2_ ------------------------------------------------------------------------------------

namespace {

struct TinyGpt : nn::Module {
  std::shared_ptr<nn::Embedding> wte;
  std::vector<std::shared_ptr<nn::TransformerBlock>> blocks;
  std::shared_ptr<nn::LayerNorm> ln_f;
  TinyGpt(int64_t layers, int64_t d) {
    wte = register_module("wte", std::make_shared<nn::Embedding>(100, d));
    for (int64_t i = 0; i < layers; ++i)
      blocks.push_back(register_module(detail::str("h", i), std::make_shared<nn::TransformerBlock>(d, 4)));
    ln_f = register_module("ln_f", std::make_shared<nn::LayerNorm>(Shape{d}));
  }
};

double std_of(const Tensor& t) {
  const Tensor c = t - mean(t);
  return std::sqrt(mean(c * c).item<double>());
}

}  // namespace

TEST_CASE("init_gpt2_ draws N(0, 0.02), scales residual projections and resets norms") {
  const int64_t layers = 3;
  TinyGpt model(layers, 64);
  {
    NoGradGuard no_grad;
    model.blocks[0]->ln1->weight.fill_(5.0);  // something init must reset
  }
  manual_seed(3);
  nn::init_gpt2_(model, layers);
  const double residual = 0.02 / std::sqrt(2.0 * layers);
  int checked = 0;
  for (const auto& [name, p] : model.named_parameters()) {
    CAPTURE(name);
    const bool is_bias = name.ends_with(".bias");
    const bool is_norm = name.find("ln") != std::string::npos;
    if (is_norm) {
      check_values(p, std::vector<double>(static_cast<size_t>(p.numel()), name.ends_with("weight") ? 1.0 : 0.0), 0, 0);
    } else if (is_bias) {
      check_values(p, std::vector<double>(static_cast<size_t>(p.numel()), 0.0), 0, 0);
    } else {
      const bool is_residual = name.ends_with("attn.proj.weight") || name.ends_with("fc2.weight");
      // >= 4096 draws: the sample std is within ~2% of the true one.
      CHECK(std_of(p) == doctest::Approx(is_residual ? residual : 0.02).epsilon(0.05));
      CHECK(std::fabs(mean(p).item<double>()) < 0.002);
    }
    ++checked;
  }
  CHECK(checked == 3 + 12 * layers);  // wte, 12 per block, ln_f
  // Reproducible from the seed.
  TinyGpt again(layers, 64);
  manual_seed(3);
  nn::init_gpt2_(again, layers);
  check_close(again.blocks[1]->fc2->weight, model.blocks[1]->fc2->weight, 0, 0);
  CHECK_THROWS_KILN(nn::init_gpt2_(model, 0), "init_gpt2_: n_layers must be positive, got 0");
}
