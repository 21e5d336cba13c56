// Seeing ContextPool: run a trained model on a text and draw, for every layer, what its
// pool learned at each character: the support size s (how far back that character's
// pooled feature reaches) and the pooling weight m (how much that character counts in
// its neighbours' pools). The page is one self-contained HTML file: no scripts, no
// external styles, so it opens anywhere and can be mailed around.
#pragma once

#include <string>
#include <vector>

#include <kiln/nn/data/corpus.h>
#include <kiln/nn/gpt.h>

#include "options.h"

namespace charlm {

// What the model did at each character of a text.
struct PoolTrace {
  std::vector<int64_t> layers;                      // the indices of the layers with a pool
  std::vector<std::vector<float>> sizes, weights;   // [pooled layer][character]: s and m
  std::vector<float> bits;  // -log2 p(character | the ones before it); the first is NaN (no prediction)
};

// Runs the model layer by layer (wte, wpe, layers, ln_f) on `text`, in consecutive chunks
// of block_size characters (the model's context), each chunk starting from position 0.
// Throws kiln::Error when the model has no ContextPool.
PoolTrace trace_pools(const kiln::nn::GPT& model, const std::string& text);

// The first `length` characters of the corpus's validation split (fewer if it is shorter).
std::string validation_excerpt(const kiln::nn::data::ByteCorpus& corpus, int64_t length);

// Traces `text` and writes the page to `path`.
void write_pool_page(const kiln::nn::GPT& model, const ModelSettings& settings, const std::string& text,
                     const std::string& path);

}  // namespace charlm
