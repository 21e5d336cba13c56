// Shapes: a generated image-classification task whose classes differ in the SCALE of
// their cue, so the granularity at which a model pools its features matters. It needs no
// download: the ViT and ConvNet examples train on it when no data path is given.
//
// Every image is grayscale, (1, S, S) with S = image_size, values in [0, 1]. Four classes,
// drawn in outline strokes about 1.2 px wide:
//
//   0 large ring      one circle of radius r in [0.22 S, 0.36 S]
//   1 large square    one square of the same perimeter (half-side r * pi / 4), at any angle
//   2 small rings     3 to 5 circles of radius r in [2, 3] px, 3 px apart or more
//   3 small squares   3 to 5 axis-aligned squares of the same perimeter as such circles
//
// and on top of every image, whatever its class: `distractors` straight strokes of random
// length (4 px to 0.4 S) and direction, a random brightness per object in [0.5, 1], and
// Gaussian pixel noise of standard deviation `noise`; the result is clamped to [0, 1].
//
// Why scale matters. Rings and squares come at both scales, so "ring or square" is not
// the class: the class is that AND the scale. At S = 32 with 4 x 4 ViT patches, a small
// shape fits in one or two patches, and telling a small ring from a small square needs
// the detail inside a patch (a token should keep its own features: little pooling); a
// large shape spans 3 to 6 patches per side, and telling a large ring from a large
// square needs the arrangement of many patches (a token should gather its neighbours:
// wide pooling). One fixed granularity serves one pair of classes badly; a pooling that
// chooses its support per token (ContextPool) can serve both.
//
// Why a linear model cannot solve it. Positions, sizes, angles and brightness are random,
// so no fixed pixel template matches a class; a ring and a square of one scale have the
// same perimeter, and small shapes come in numbers whose total ink matches a large one's,
// so the amount of ink says little; the distractor strokes add straight edges to every
// image (a square's sides are straight edges too) and the noise hides faint pixels.
//
//   TensorDataset train = make_shapes({.count = 8192, .seed = 0});
//   TensorDataset test = make_shapes({.count = 2048, .seed = 0}, /*train=*/false);
//   train.inputs(): f32 (8192, 1, 32, 32) in [0, 1]; train.targets(): i64 (8192), image i has label i % 4
//
// Deterministic: image i of a split depends only on (seed, split, i, the options), drawn
// from its own Philox stream, so the set is the same on every machine and thread count,
// and the train and test splits never share an image's random numbers.
#pragma once

#include <cstdint>
#include <string>

#include "kiln/nn/data/dataset.h"

namespace kiln::nn::data {

inline constexpr int64_t kShapesNumClasses = 4;

struct ShapesOptions {
  int64_t count = 8192;      // images in the split; labels cycle 0, 1, 2, 3, so classes are balanced
  int64_t image_size = 32;   // S: images are (1, S, S); at least 16, so a large shape is larger than a small one
  double noise = 0.15;       // standard deviation of the Gaussian pixel noise (0 = none)
  int64_t distractors = 3;   // straight strokes added to every image
  uint64_t seed = 0;
};

// "large ring", "large square", "small rings", "small squares"; a kiln::Error outside [0, 4).
std::string shapes_class_name(int64_t label);

// The train split (train = true) or the test split of the task above: images f32
// (count, 1, S, S) in [0, 1], labels i64 (count) with label(i) = i % 4.
TensorDataset make_shapes(const ShapesOptions& options = {}, bool train = true);

}  // namespace kiln::nn::data
