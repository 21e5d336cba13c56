#include "model_file.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include <kiln/core/error.h>
#include <kiln/nn/context_pool.h>
#include <kiln/nn/serialize.h>

namespace charlm {

namespace fs = std::filesystem;

namespace {

constexpr const char* kConfigFile = "charlm.config";
constexpr const char* kCheckpointFile = "latest.ckpt.safetensors";  // the Trainer's name for it

// The shortest text that reads back as exactly `value` ("0.1", not "0.10000000000000001").
std::string format_number(double value) {
  char buffer[32];
  for (int digits = 6; digits <= 17; ++digits) {
    std::snprintf(buffer, sizeof buffer, "%.*g", digits, value);
    if (std::strtod(buffer, nullptr) == value) break;
  }
  return buffer;
}

// Sets one field of `model` from its config-file text; false when the key is unknown or
// the value does not parse.
bool set_field(ModelSettings& model, const std::string& key, const std::string& value) {
  char* end = nullptr;
  auto integer = [&](int64_t& field) {
    field = std::strtoll(value.c_str(), &end, 10);
    return !value.empty() && *end == '\0';
  };
  auto number = [&](double& field) {
    field = std::strtod(value.c_str(), &end);
    return !value.empty() && *end == '\0';
  };
  if (key == "layers") return integer(model.layers);
  if (key == "d-model") return integer(model.d_model);
  if (key == "heads") return integer(model.heads);
  if (key == "seq-len") return integer(model.seq_len);
  if (key == "dropout") return number(model.dropout);
  if (key == "context-pool") {
    model.context_pool = value == "true";
    return value == "true" || value == "false";
  }
  auto text = [&](std::string& field) {
    field = value;
    return true;
  };
  if (key == "pool-mode") return text(model.pool_mode);
  if (key == "pool-s-min") return number(model.pool_s_min);
  if (key == "pool-s-max") return number(model.pool_s_max);
  if (key == "pool-placement") return text(model.pool_placement);
  return false;
}

}  // namespace

kiln::nn::GPTConfig gpt_config(const ModelSettings& model) {
  kiln::nn::GPTConfig config{.vocab_size = 256,
                             .block_size = model.seq_len,
                             .n_layer = model.layers,
                             .n_head = model.heads,
                             .d_model = model.d_model,
                             .dropout = model.dropout};
  if (model.context_pool) {
    config.context_pool = kiln::nn::ContextPoolModuleOptions{.mode = kiln::nn::context_pool_mode_from_string(model.pool_mode),
                                                             .causal = true,
                                                             .s_min = model.pool_s_min,
                                                             .s_max = model.pool_s_max};
    config.context_pool_placement = model.pool_placement;
  }
  return config;
}

std::vector<std::pair<std::string, std::string>> to_key_values(const ModelSettings& model) {
  return {{"layers", std::to_string(model.layers)},
          {"d-model", std::to_string(model.d_model)},
          {"heads", std::to_string(model.heads)},
          {"seq-len", std::to_string(model.seq_len)},
          {"dropout", format_number(model.dropout)},
          {"context-pool", model.context_pool ? "true" : "false"},
          {"pool-mode", model.pool_mode},
          {"pool-s-min", format_number(model.pool_s_min)},
          {"pool-s-max", format_number(model.pool_s_max)},
          {"pool-placement", model.pool_placement}};
}

std::string config_path(const std::string& checkpoint_dir) { return (fs::path(checkpoint_dir) / kConfigFile).string(); }

std::string checkpoint_path(const std::string& checkpoint_dir) {
  return (fs::path(checkpoint_dir) / kCheckpointFile).string();
}

void save_model_settings(const ModelSettings& model, const std::string& checkpoint_dir) {
  std::error_code error;
  fs::create_directories(checkpoint_dir, error);
  KILN_CHECK(!error, "cannot create the checkpoint directory '", checkpoint_dir, "': ", error.message());
  std::ofstream out(config_path(checkpoint_dir));
  out << "# charlm model settings: --resume, --generate and --visualize rebuild the model from them\n";
  for (const auto& [key, value] : to_key_values(model)) out << key << " = " << value << "\n";
  KILN_CHECK(out.good(), "cannot write '", config_path(checkpoint_dir), "'");
}

ModelSettings load_model_settings(const std::string& checkpoint_dir) {
  const std::string path = config_path(checkpoint_dir);
  std::ifstream in(path);
  KILN_CHECK(in, "no model in '", checkpoint_dir, "' (", path, " is missing): train one first, with ",
             "--checkpoint-dir ", checkpoint_dir);
  ModelSettings model;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.empty() || line[0] == '#') continue;
    const size_t equals = line.find(" = ");
    KILN_CHECK(equals != std::string::npos && set_field(model, line.substr(0, equals), line.substr(equals + 3)),
               "", path, ":", number, ": cannot read '", line, "'");
  }
  return model;
}

std::shared_ptr<kiln::nn::GPT> load_trained_model(const std::string& checkpoint_dir) {
  const ModelSettings model_settings = load_model_settings(checkpoint_dir);
  const std::string path = checkpoint_path(checkpoint_dir);
  KILN_CHECK(fs::exists(path), "'", checkpoint_dir, "' has the model's settings but no checkpoint (", path,
             "); train it first");
  auto model = std::make_shared<kiln::nn::GPT>(gpt_config(model_settings));
  model->load_state_dict(kiln::nn::load_checkpoint(path).model);
  model->eval();
  return model;
}

}  // namespace charlm
