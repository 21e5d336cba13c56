// kiln: one include for the whole library.  #include <kiln/kiln.h>
#pragma once

// core: tensors, dtypes, devices, factories, RNG, safetensors files
#include "kiln/core/device.h"
#include "kiln/core/dtype.h"
#include "kiln/core/error.h"
#include "kiln/core/factory.h"
#include "kiln/core/random.h"
#include "kiln/core/safetensors.h"
#include "kiln/core/shape.h"
#include "kiln/core/tensor.h"

// autograd: backward(), grad(), grad mode, gradcheck, DOT export
#include "kiln/autograd/dot.h"
#include "kiln/autograd/engine.h"
#include "kiln/autograd/gradcheck.h"
#include "kiln/autograd/grad_mode.h"

// ops: every differentiable operator
#include "kiln/ops/activation.h"
#include "kiln/ops/attention.h"
#include "kiln/ops/conv.h"
#include "kiln/ops/dropout.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/index.h"
#include "kiln/ops/linalg.h"
#include "kiln/ops/loss.h"
#include "kiln/ops/normalization.h"
#include "kiln/ops/pool.h"
#include "kiln/ops/reduce.h"
#include "kiln/ops/shape.h"

// cuda: whether a GPU backend is built and visible
#include "kiln/cuda/device.h"

// nn: modules, layers, init, optimizers, data, checkpoints
#include "kiln/nn/activation.h"
#include "kiln/nn/attention.h"
#include "kiln/nn/conv.h"
#include "kiln/nn/data/cifar.h"
#include "kiln/nn/data/corpus.h"
#include "kiln/nn/data/dataloader.h"
#include "kiln/nn/data/dataset.h"
#include "kiln/nn/data/mnist.h"
#include "kiln/nn/embedding.h"
#include "kiln/nn/functional.h"
#include "kiln/nn/gpt.h"
#include "kiln/nn/init.h"
#include "kiln/nn/init_gpt2.h"
#include "kiln/nn/linear.h"
#include "kiln/nn/module.h"
#include "kiln/nn/normalization.h"
#include "kiln/nn/optim/adam.h"
#include "kiln/nn/optim/clip_grad.h"
#include "kiln/nn/optim/lr_scheduler.h"
#include "kiln/nn/optim/optimizer.h"
#include "kiln/nn/optim/sgd.h"
#include "kiln/nn/patch_embed.h"
#include "kiln/nn/pooling.h"
#include "kiln/nn/sequential.h"
#include "kiln/nn/serialize.h"
#include "kiln/nn/train/trainer.h"
#include "kiln/nn/transformer.h"
