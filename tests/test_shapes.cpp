// nn/data/shapes: the generated multi-scale shapes task. It must be a fixed function of
// its seed (same set on every machine and thread count), balanced, in range, and show
// what its header promises: one large shape or 3..5 small ones per image, and rings and
// squares of one scale with about the same amount of ink.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include <kiln/nn/data/shapes.h>

#include "helpers.h"

using namespace kiln;
using namespace kiln::nn::data;

namespace {

// Small sets keep the suite fast; 64 images are 16 per class.
ShapesOptions small_set(uint64_t seed = 0) { return {.count = 64, .image_size = 32, .seed = seed}; }

// The 8-connected groups of pixels brighter than `threshold` in one side x side image.
int64_t count_components(const std::vector<float>& pixels, int64_t side, float threshold) {
  std::vector<bool> seen(pixels.size(), false);
  int64_t components = 0;
  std::vector<int64_t> stack;
  for (int64_t start = 0; start < side * side; ++start) {
    if (seen[start] || pixels[start] <= threshold) continue;
    ++components;
    seen[start] = true;
    stack.push_back(start);
    while (!stack.empty()) {
      const int64_t p = stack.back();
      stack.pop_back();
      const int64_t row = p / side, col = p % side;
      for (int64_t dr = -1; dr <= 1; ++dr)
        for (int64_t dc = -1; dc <= 1; ++dc) {
          const int64_t r = row + dr, c = col + dc;
          if (r < 0 || r >= side || c < 0 || c >= side) continue;
          const int64_t q = r * side + c;
          if (seen[q] || pixels[q] <= threshold) continue;
          seen[q] = true;
          stack.push_back(q);
        }
    }
  }
  return components;
}

std::vector<float> image_pixels(const TensorDataset& set, int64_t i) {
  return set.inputs().select(0, i).to_vector<float>();
}

}  // namespace

TEST_CASE("shapes: images and labels have the documented shape, range and balance") {
  const TensorDataset set = make_shapes(small_set());
  CHECK(set.inputs().shape() == Shape{64, 1, 32, 32});
  CHECK(set.inputs().dtype() == f32);
  CHECK(set.targets().shape() == Shape{64});
  CHECK(set.targets().dtype() == i64);

  const std::vector<float> pixels = set.inputs().to_vector<float>();
  CHECK(*std::min_element(pixels.begin(), pixels.end()) >= 0.0f);
  CHECK(*std::max_element(pixels.begin(), pixels.end()) <= 1.0f);
  CHECK(*std::max_element(pixels.begin(), pixels.end()) > 0.5f);  // something is drawn

  const std::vector<int64_t> labels = set.targets().to_vector<int64_t>();
  std::vector<int64_t> per_class(kShapesNumClasses, 0);
  for (size_t i = 0; i < labels.size(); ++i) {
    CHECK(labels[i] == static_cast<int64_t>(i) % kShapesNumClasses);
    ++per_class[labels[i]];
  }
  for (int64_t c = 0; c < kShapesNumClasses; ++c) CHECK(per_class[c] == 16);
}

TEST_CASE("shapes: the same seed gives the same images, at any thread count") {
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const std::vector<float> serial = make_shapes(small_set(7)).inputs().to_vector<float>();
  omp_set_num_threads(std::max(2, threads));
  const std::vector<float> parallel = make_shapes(small_set(7)).inputs().to_vector<float>();
  omp_set_num_threads(threads);
  CHECK(serial == parallel);
  CHECK(make_shapes(small_set(7)).inputs().to_vector<float>() == serial);
}

TEST_CASE("shapes: different seeds and the two splits give different images") {
  const std::vector<float> a = make_shapes(small_set(1)).inputs().to_vector<float>();
  const std::vector<float> b = make_shapes(small_set(2)).inputs().to_vector<float>();
  const std::vector<float> test = make_shapes(small_set(1), /*train=*/false).inputs().to_vector<float>();
  CHECK(a != b);
  CHECK(a != test);
  // Not a shifted copy either: image 0 of one set differs from every image of the other.
  const TensorDataset set_a = make_shapes(small_set(1)), set_b = make_shapes(small_set(2));
  for (int64_t i = 0; i < 64; ++i) CHECK(image_pixels(set_a, 0) != image_pixels(set_b, i));
}

TEST_CASE("shapes: without noise and distractors, a large class is one outline, a small class 3 to 5") {
  const TensorDataset set = make_shapes({.count = 64, .image_size = 32, .noise = 0, .distractors = 0, .seed = 3});
  for (int64_t i = 0; i < 64; ++i) {
    const int64_t components = count_components(image_pixels(set, i), 32, 0.25f);
    CAPTURE(i);
    if (i % kShapesNumClasses < 2) CHECK(components == 1);
    else CHECK((components >= 3 && components <= 5));
  }
}

TEST_CASE("shapes: rings and squares of one scale carry about the same ink") {
  // Mean pixel per class, noise and distractors off: the perimeters are matched, so the
  // ink of a ring and a square of one scale differ by little (brightness and the drawn
  // corners make the rest); a linear model cannot tell them apart by their ink.
  const TensorDataset set = make_shapes({.count = 400, .image_size = 32, .noise = 0, .distractors = 0, .seed = 5});
  std::vector<double> ink(kShapesNumClasses, 0);
  for (int64_t i = 0; i < 400; ++i) {
    const std::vector<float> pixels = image_pixels(set, i);
    for (float p : pixels) ink[i % kShapesNumClasses] += p;
  }
  CAPTURE(ink[0]);
  CAPTURE(ink[1]);
  CAPTURE(ink[2]);
  CAPTURE(ink[3]);
  CHECK(std::abs(ink[0] - ink[1]) < 0.1 * ink[0]);  // large ring vs large square
  CHECK(std::abs(ink[2] - ink[3]) < 0.1 * ink[2]);  // small rings vs small squares
}

TEST_CASE("shapes: noise and distractors change the pixels, not the labels") {
  const TensorDataset clean = make_shapes({.count = 16, .noise = 0, .distractors = 0});
  const TensorDataset noisy = make_shapes({.count = 16, .noise = 0.3, .distractors = 0});
  const TensorDataset strokes = make_shapes({.count = 16, .noise = 0, .distractors = 5});
  CHECK(clean.inputs().to_vector<float>() != noisy.inputs().to_vector<float>());
  CHECK(clean.inputs().to_vector<float>() != strokes.inputs().to_vector<float>());
  CHECK(clean.targets().to_vector<int64_t>() == noisy.targets().to_vector<int64_t>());
  // Distractors only add ink (ink combines by max): no clean pixel gets darker.
  const std::vector<float> a = clean.inputs().to_vector<float>(), b = strokes.inputs().to_vector<float>();
  for (size_t k = 0; k < a.size(); ++k) REQUIRE(b[k] >= a[k]);
}

TEST_CASE("shapes: other image sizes") {
  const TensorDataset set = make_shapes({.count = 8, .image_size = 24});
  CHECK(set.inputs().shape() == Shape{8, 1, 24, 24});
  const TensorDataset big = make_shapes({.count = 4, .image_size = 64});
  CHECK(big.inputs().shape() == Shape{4, 1, 64, 64});
}

TEST_CASE("shapes: class names and bad input") {
  CHECK(shapes_class_name(0) == "large ring");
  CHECK(shapes_class_name(1) == "large square");
  CHECK(shapes_class_name(2) == "small rings");
  CHECK(shapes_class_name(3) == "small squares");
  CHECK_THROWS_KILN(shapes_class_name(4), "shapes_class_name: label must be in [0, 4), got 4");
  CHECK_THROWS_KILN(make_shapes({.count = 0}), "make_shapes: count must be positive, got 0");
  CHECK_THROWS_KILN(make_shapes({.image_size = 12}), "make_shapes: image_size must be in [16, 1024]");
  CHECK_THROWS_KILN(make_shapes({.noise = -0.1}), "make_shapes: noise must be a finite standard deviation >= 0");
  CHECK_THROWS_KILN(make_shapes({.distractors = -1}), "make_shapes: distractors must be in [0, 100], got -1");
}
