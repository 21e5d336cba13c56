// Sampling text from a trained char-level GPT, one byte at a time.
#pragma once

#include <string>

#include <kiln/nn/gpt.h>

#include "options.h"

namespace charlm {

// The prompt followed by settings.length sampled characters. Each step runs the model on
// the last block_size characters (no cache: simple, and fast enough at these sizes),
// divides the last position's logits by the temperature, keeps the top_k largest (all
// when top_k is 0) and draws from their softmax with kiln's seeded generator. An empty
// prompt starts from a newline. Runs in eval mode (no dropout) without building a graph,
// and puts the model back in the mode it was in.
std::string generate(kiln::nn::GPT& model, const SampleSettings& settings);

}  // namespace charlm
