// charlm's settings, grouped by what they configure. main.cpp binds each field to a
// command-line flag of the same name (layers <-> --layers, d_model <-> --d-model, ...);
// the values here are the defaults --help shows.
#pragma once

#include <cstdint>
#include <string>

namespace charlm {

// The network. Saved next to the checkpoint (model_file.h), so --resume, --generate and
// --visualize rebuild the same model without the flags being repeated.
struct ModelSettings {
  int64_t layers = 4;
  int64_t d_model = 128;
  int64_t heads = 4;
  int64_t seq_len = 128;  // the context: characters per training window, and the model's positions
  double dropout = 0.0;
  bool context_pool = false;  // a causal ContextPool in every block
  std::string pool_mode = "adaptive";
  double pool_s_min = 0.25;  // learned support sizes lie in (s_min, s_max), in characters
  double pool_s_max = 4.0;
  std::string pool_placement = "after_attention";
};

struct TrainSettings {
  std::string data;  // a text file (enwik8, text8, anything); empty: the default corpus
  int64_t batch = 16;
  int64_t steps = 1000;
  double lr = 3e-3;
  std::string schedule = "cosine";  // "cosine" (linear warmup, then cosine to min_lr) or "constant"
  int64_t warmup = 30;              // steps of linear warmup (cosine schedule)
  double min_lr = 3e-4;             // where the cosine ends
  double weight_decay = 0.1;        // AdamW's, decoupled
  double clip = 1.0;                // global gradient-norm clipping; 0 = none
  uint64_t seed = 0;                // the weights, dropout, the training windows and the sampling
  int64_t eval_interval = 200;      // steps between validation evals; 0 = only at the end
  int64_t val_windows = 64;         // validation windows of seq_len characters in each eval
  std::string checkpoint_dir = "charlm_ckpt";  // checkpoints and the model's settings; "" = none
  int64_t checkpoint_interval = 500;           // steps between checkpoints (and always at the end)
  bool resume = false;
  std::string progress = "auto";  // the Trainer's: "auto", "bar", "lines", "none"
};

struct SampleSettings {
  std::string prompt = "The ";
  int64_t length = 300;  // characters to generate
  double temperature = 0.8;
  int64_t top_k = 0;  // sample from the k most likely characters; 0 = all of them
};

// What the run does.
struct RunSettings {
  bool generate = false;  // only sample from the checkpoint
  std::string visualize;  // write the ContextPool HTML page here (from the checkpoint)
  std::string text;       // the text --visualize runs on; empty = a slice of the validation split
  bool demo = false;      // the side-by-side demo (demo.h)
  int64_t demo_pool_layers = 2;
  std::string device = "cpu";  // "cpu" or "cuda" (the first GPU)
  bool bf16 = false;           // matrix products in bf16 on the GPU (core/autocast.h)
  int64_t threads = 0;  // OpenMP threads; 0 = OpenMP's default (OMP_NUM_THREADS or every core)
};

struct Settings {
  ModelSettings model;
  TrainSettings train;
  SampleSettings sample;
  RunSettings run;
};

}  // namespace charlm
