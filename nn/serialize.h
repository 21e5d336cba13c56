// Saving models and training checkpoints as .safetensors files (core/safetensors.h).
//
//   nn::save(*model, "mlp.safetensors");           // parameters and buffers, by dotted name
//   nn::load(*model, "mlp.safetensors");           // strict: every key must match
//
// A training checkpoint holds everything a run needs to continue exactly where it
// stopped, in one file:
//
//   nn::save_checkpoint("ckpt.safetensors", {.model = model->state_dict(),
//                                            .optimizer = opt.state_dict(),
//                                            .rng = default_generator().state(),
//                                            .step = step, .data_position = batches_seen});
//   nn::TrainingCheckpoint c = nn::load_checkpoint("ckpt.safetensors");
//   model->load_state_dict(c.model);
//   opt.load_state_dict(c.optimizer);
//   default_generator().set_state(c.rng);
//
// Layout of that file, readable by any safetensors tool: tensors "model.<name>" and
// "optim.<name>"; the counters as decimal strings in the metadata under "kiln.*" keys
// (strings keep every bit of a uint64 seed); the caller's metadata alongside, verbatim.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "kiln/core/random.h"
#include "kiln/nn/module.h"

namespace kiln::nn {

// Writes module.state_dict() (parameters, then buffers) to `path`, atomically.
void save(const Module& module, const std::string& path, const std::map<std::string, std::string>& metadata = {});
// Reads `path` into the module's parameters and buffers (see Module::load_state_dict).
void load(Module& module, const std::string& path, bool strict = true);

struct TrainingCheckpoint {
  StateDict model{};      // Module::state_dict()
  StateDict optimizer{};  // the optimizer's state as named tensors
  GeneratorState rng{};   // default_generator().state(): dropout masks, shuffles, ...
  int64_t step = 0;
  int64_t data_position = 0;                      // where the data loader resumes
  std::map<std::string, std::string> metadata{};  // free-form; keys must not start with "kiln."
};

// Wraps a named-tensor list (e.g. an optimizer state that is not a StateDict) as one.
StateDict to_state_dict(const std::vector<std::pair<std::string, Tensor>>& named);

void save_checkpoint(const std::string& path, const TrainingCheckpoint& checkpoint);
// Throws kiln::Error when `path` is not a kiln training checkpoint.
TrainingCheckpoint load_checkpoint(const std::string& path);

}  // namespace kiln::nn
