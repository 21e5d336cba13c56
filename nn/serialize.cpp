#include "kiln/nn/serialize.h"

#include <charconv>
#include <type_traits>

#include "kiln/core/safetensors.h"

namespace kiln::nn {

namespace {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

constexpr const char* kModelPrefix = "model.";
constexpr const char* kOptimizerPrefix = "optim.";
// Metadata keys kiln owns in a training checkpoint; kFormatKey marks the file as one.
constexpr const char* kReservedPrefix = "kiln.";
constexpr const char* kFormatKey = "kiln.format";
constexpr const char* kFormat = "training_checkpoint/1";
constexpr const char* kStepKey = "kiln.step";
constexpr const char* kDataPositionKey = "kiln.data_position";
constexpr const char* kRngSeedKey = "kiln.rng_seed";
constexpr const char* kRngOffsetKey = "kiln.rng_offset";

void append_prefixed(NamedTensors& out, const std::string& prefix, const StateDict& state) {
  for (const auto& [name, t] : state) out.emplace_back(prefix + name, t);
}

// A counter stored as a decimal string; the whole string must be one integer of type T.
// Counters count up from 0, so a negative one (a signed T) means a corrupt file.
template <class T>
T parse_counter(const std::map<std::string, std::string>& metadata, const char* key, const std::string& path) {
  const auto it = metadata.find(key);
  KILN_CHECK(it != metadata.end(), "load_checkpoint: '", path, "': metadata '", key, "' is missing");
  const std::string& text = it->second;
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  KILN_CHECK(ec == std::errc() && end == text.data() + text.size() && !text.empty(), "load_checkpoint: '", path,
             "': metadata '", key, "' = '", text, "' is not a valid integer");
  if constexpr (std::is_signed_v<T>)
    KILN_CHECK(value >= 0, "load_checkpoint: '", path, "': metadata '", key, "' = '", text, "' is negative");
  return value;
}

}  // namespace

// ---- models ----------------------------------------------------------------------------

void save(const Module& module, const std::string& path, const std::map<std::string, std::string>& metadata) {
  const StateDict state = module.state_dict();
  save_safetensors(path, NamedTensors(state.begin(), state.end()), metadata);
}

void load(Module& module, const std::string& path, bool strict) {
  const SafetensorsFile file = load_safetensors(path);
  try {
    module.load_state_dict(to_state_dict(file.tensors), strict);
  } catch (const Error& e) {  // say which file did not fit the model
    throw Error(detail::str("nn::load: '", path, "': ", e.what()));
  }
}

// ---- training checkpoints ------------------------------------------------------------------

StateDict to_state_dict(const NamedTensors& named) {
  StateDict state;
  for (const auto& [name, t] : named) state.insert(name, t);
  return state;
}

void save_checkpoint(const std::string& path, const TrainingCheckpoint& checkpoint) {
  std::map<std::string, std::string> metadata = checkpoint.metadata;
  for (const auto& [key, value] : metadata)
    KILN_CHECK(!key.starts_with(kReservedPrefix), "save_checkpoint: metadata key '", key, "' is reserved (keys '",
               kReservedPrefix, "*' are kiln's own)");
  metadata[kFormatKey] = kFormat;
  metadata[kStepKey] = std::to_string(checkpoint.step);
  metadata[kDataPositionKey] = std::to_string(checkpoint.data_position);
  metadata[kRngSeedKey] = std::to_string(checkpoint.rng.seed);
  metadata[kRngOffsetKey] = std::to_string(checkpoint.rng.offset);

  NamedTensors tensors;
  append_prefixed(tensors, kModelPrefix, checkpoint.model);
  append_prefixed(tensors, kOptimizerPrefix, checkpoint.optimizer);
  save_safetensors(path, tensors, metadata);
}

TrainingCheckpoint load_checkpoint(const std::string& path) {
  SafetensorsFile file = load_safetensors(path);
  const auto format = file.metadata.find(kFormatKey);
  KILN_CHECK(format != file.metadata.end(), "load_checkpoint: '", path,
             "' is not a kiln training checkpoint (no '", kFormatKey, "' metadata; a model file loads with nn::load)");
  KILN_CHECK(format->second == kFormat, "load_checkpoint: '", path, "' has format '", format->second,
             "', this kiln reads '", kFormat, "'");

  TrainingCheckpoint c;
  c.step = parse_counter<int64_t>(file.metadata, kStepKey, path);
  c.data_position = parse_counter<int64_t>(file.metadata, kDataPositionKey, path);
  c.rng.seed = parse_counter<uint64_t>(file.metadata, kRngSeedKey, path);
  c.rng.offset = parse_counter<uint64_t>(file.metadata, kRngOffsetKey, path);
  for (const auto& [key, value] : file.metadata)
    if (!key.starts_with(kReservedPrefix)) c.metadata[key] = value;

  const std::string model_prefix = kModelPrefix, optimizer_prefix = kOptimizerPrefix;
  for (const auto& [name, t] : file.tensors) {
    if (name.starts_with(model_prefix)) c.model.insert(name.substr(model_prefix.size()), t);
    else if (name.starts_with(optimizer_prefix)) c.optimizer.insert(name.substr(optimizer_prefix.size()), t);
    else
      throw Error(detail::str("load_checkpoint: '", path, "': unexpected tensor '", name, "' (names start with '",
                              model_prefix, "' or '", optimizer_prefix, "')"));
  }
  return c;
}

}  // namespace kiln::nn
