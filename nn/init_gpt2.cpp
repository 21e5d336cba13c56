#include "kiln/nn/init_gpt2.h"

#include <cmath>
#include <string>

#include "kiln/nn/embedding.h"
#include "kiln/nn/init.h"
#include "kiln/nn/linear.h"
#include "kiln/nn/normalization.h"

namespace kiln::nn {

namespace {

constexpr double kStd = 0.02;

// Whether a dotted parameter name is `suffix` or ends with "." + suffix.
bool has_dotted_suffix(const std::string& name, const std::string& suffix) {
  if (name.size() < suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return false;
  return name.size() == suffix.size() || name[name.size() - suffix.size() - 1] == '.';
}

bool is_residual_projection(const std::string& weight_name) {
  return has_dotted_suffix(weight_name, "attn.proj.weight") || has_dotted_suffix(weight_name, "fc2.weight");
}

// `prefix` is the module's dotted name followed by a dot ("" for the root).
void init_module(Module& m, const std::string& prefix, double residual_std) {
  if (auto* linear = dynamic_cast<Linear*>(&m)) {
    init::normal_(linear->weight, 0.0, is_residual_projection(prefix + "weight") ? residual_std : kStd);
    if (linear->bias.defined()) init::zeros_(linear->bias);
  } else if (auto* embedding = dynamic_cast<Embedding*>(&m)) {
    init::normal_(embedding->weight, 0.0, kStd);
  } else if (auto* norm = dynamic_cast<LayerNorm*>(&m)) {
    if (norm->weight.defined()) init::ones_(norm->weight);
    if (norm->bias.defined()) init::zeros_(norm->bias);
  } else if (auto* rms = dynamic_cast<RMSNorm*>(&m)) {
    if (rms->weight.defined()) init::ones_(rms->weight);
  }
  for (auto& [name, child] : m.named_children()) init_module(*child, prefix + name + ".", residual_std);
}

}  // namespace

void init_gpt2_(Module& model, int64_t n_layers) {
  KILN_CHECK(n_layers > 0, "init_gpt2_: n_layers must be positive, got ", n_layers);
  init_module(model, "", kStd / std::sqrt(2.0 * static_cast<double>(n_layers)));
}

}  // namespace kiln::nn
