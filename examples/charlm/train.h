// One training run of the char-level GPT: the model, AdamW with its schedule, random
// training windows, the Trainer (progress, evals, checkpoints, --resume) and the final
// validation bpc.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <kiln/nn/data/corpus.h>
#include <kiln/nn/gpt.h>

#include "evaluate.h"
#include "flops.h"
#include "options.h"

namespace charlm {

struct TrainOutcome {
  std::shared_ptr<kiln::nn::GPT> model;  // trained, in eval mode
  int64_t parameters = 0;
  FlopCount flops;
  Validation validation;  // at the last step
  double seconds = 0;     // wall time of the training loop (evals included)
};

// "4 layers, d_model 128, 4 heads, context 128, ContextPool adaptive (after_attention)".
std::string describe(const ModelSettings& model);

// 834304 -> "834.3k", 5.11e6 -> "5.11M".
std::string format_count(double n);

// "834.3k parameters, 5.11M FLOPs/token training (1.70M forward)".
std::string describe_cost(int64_t parameters, const FlopCount& flops);

// Trains as `settings` say. `name` prefixes the lines it prints ("charlm", "[vanilla]").
// Progress goes to stderr (the Trainer's), the summary to stdout.
TrainOutcome train_model(const Settings& settings, const kiln::nn::data::ByteCorpus& corpus, const std::string& name);

}  // namespace charlm
