// The demo (`make demo`, `charlm --demo`): the paper's claim in miniature. Two char-level
// GPTs train on the same data with the same budget of steps: a vanilla one, and one with
// ContextPool in every block and FEWER layers. A table compares layers, parameters,
// FLOPs per token, validation bits per character and wall time, then each model writes
// a sample. Sized to take about three minutes on two cores.
#pragma once

#include "../common/flags.h"
#include "options.h"

namespace charlm {

// Fills in the demo's sizes for every setting the command line did not give (so
// `charlm --demo --steps 100` is the same demo, shorter), trains both models and prints
// the comparison. --layers sets the vanilla model's depth, --demo-pool-layers the other's.
// With --checkpoint-dir DIR the models are saved in DIR/vanilla and DIR/context_pool
// (for --generate and --visualize afterwards); without it, nothing is written.
// Returns the exit code.
int run_demo(const kiln::examples::Flags& flags, Settings settings);

}  // namespace charlm
