// nn::functional: the stateless ops under the names PyTorch users reach for
// (torch.nn.functional), so `nn::functional::cross_entropy(logits, y)` reads as in
// Python. They are the same functions as kiln::cross_entropy etc.
#pragma once

#include "kiln/ops/activation.h"
#include "kiln/ops/attention.h"
#include "kiln/ops/conv.h"
#include "kiln/ops/dropout.h"
#include "kiln/ops/index.h"
#include "kiln/ops/linalg.h"
#include "kiln/ops/loss.h"
#include "kiln/ops/normalization.h"
#include "kiln/ops/pool.h"
#include "kiln/ops/shape.h"

namespace kiln::nn::functional {

using kiln::adaptive_avg_pool2d;
using kiln::avg_pool1d;
using kiln::avg_pool2d;
using kiln::conv1d;
using kiln::conv2d;
using kiln::cross_entropy;
using kiln::dropout;
using kiln::embedding;
using kiln::gelu;
using kiln::layer_norm;
using kiln::linear;
using kiln::log_softmax;
using kiln::max_pool1d;
using kiln::max_pool2d;
using kiln::mse_loss;
using kiln::nll_loss;
using kiln::pad;
using kiln::relu;
using kiln::scaled_dot_product_attention;
using kiln::sigmoid;
using kiln::silu;
using kiln::softmax;
using kiln::softplus;
using kiln::tanh;

}  // namespace kiln::nn::functional
