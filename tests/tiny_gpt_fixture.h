// The tiny GPT of tests/golden/tiny_gpt.safetensors.bin (made by golden/gen_tiny_gpt.py):
// its config, weights and PyTorch's reference values, for test_gpt.cpp (kiln vs PyTorch)
// and test_cuda_models.cpp (the same model on a GPU).
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include <kiln/core/safetensors.h>
#include <kiln/nn/gpt.h>
#include <kiln/ops/loss.h>

#include "helpers.h"

namespace kiln::testing::tiny_gpt {

// Found through KILN_TEST_DATA_DIR (tests/CMakeLists.txt), so the tests run from any
// working directory.
inline const std::string kFixturePath =
    (std::filesystem::path(KILN_TEST_DATA_DIR) / "golden" / "tiny_gpt.safetensors.bin").string();

inline const SafetensorsFile& fixture() {
  static const SafetensorsFile file = load_safetensors(kFixturePath);
  return file;
}

inline Tensor fixture_tensor(const std::string& name) {
  Tensor t = fixture().find(name);
  REQUIRE_MESSAGE(t.defined(), kFixturePath, " has no tensor '", name, "'");
  return t;
}

inline double fixture_number(const std::string& key) { return std::stod(fixture().metadata.at(key)); }
inline int64_t fixture_int(const std::string& key) { return std::stoll(fixture().metadata.at(key)); }

inline nn::GPTConfig fixture_config() {
  return {.vocab_size = fixture_int("vocab_size"), .block_size = fixture_int("block_size"),
          .n_layer = fixture_int("n_layer"), .n_head = fixture_int("n_head"), .d_model = fixture_int("d_model")};
}

// nn::GPT in `dtype` holding the fixture's weights (its "model.<name>" tensors).
inline std::shared_ptr<nn::GPT> golden_model(DType dtype = f32) {
  auto model = std::make_shared<nn::GPT>(fixture_config());
  model->to(dtype);
  const std::string prefix = "model.";
  nn::StateDict weights;
  for (const auto& [name, t] : fixture().tensors)
    if (name.starts_with(prefix)) weights.insert(name.substr(prefix.size()), t);
  model->load_state_dict(weights);  // strict: the names must be exactly kiln's
  return model;
}

// The next-token loss of a language model's logits (B, T, V) against targets (B, T), as the
// fixture's expected.loss was computed.
inline Tensor next_token_loss(const Tensor& logits, const Tensor& targets) {
  return cross_entropy(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}));
}

}  // namespace kiln::testing::tiny_gpt
