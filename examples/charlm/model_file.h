// The model on disk. A training run writes two files into its checkpoint directory:
//
//   latest.ckpt.safetensors   the Trainer's checkpoint: weights, optimizer, RNG, step
//   charlm.config             the ModelSettings, one "key = value" line each
//
// so that --resume, --generate and --visualize rebuild the same network from the
// directory alone. The keys are the flag names without their dashes ("d-model = 128").
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <kiln/nn/gpt.h>

#include "options.h"

namespace charlm {

// The GPT those settings describe: vocabulary 256 (bytes), block_size = seq_len.
kiln::nn::GPTConfig gpt_config(const ModelSettings& model);

// ("layers", "4"), ("d-model", "128"), ...: the settings as the config file holds them.
std::vector<std::pair<std::string, std::string>> to_key_values(const ModelSettings& model);

std::string config_path(const std::string& checkpoint_dir);
std::string checkpoint_path(const std::string& checkpoint_dir);

void save_model_settings(const ModelSettings& model, const std::string& checkpoint_dir);
// Throws kiln::Error when the directory holds no charlm.config or it is malformed.
ModelSettings load_model_settings(const std::string& checkpoint_dir);

// A GPT built from the directory's settings, holding the weights of its latest checkpoint.
// In eval mode.
std::shared_ptr<kiln::nn::GPT> load_trained_model(const std::string& checkpoint_dir);

}  // namespace charlm
