#include "kiln/nn/data/shapes.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "kiln/core/error.h"
#include "kiln/core/factory.h"
#include "kiln/nn/data/philox_stream.h"

namespace kiln::nn::data {

namespace {

constexpr double kPi = std::numbers::pi;
// Strokes are drawn anti-aliased: full ink within kHalfWidth of the centre line, fading
// linearly to none over the next pixel, so a stroke is 1.2 px wide at half height.
constexpr double kHalfWidth = 0.1;
constexpr double kSmallRadiusMin = 2.0, kSmallRadiusMax = 3.0;  // px, at every image size
constexpr double kLargeRadiusMin = 0.22, kLargeRadiusMax = 0.36;  // in units of the image size
constexpr int64_t kSmallCountMin = 3, kSmallCountMax = 5;
constexpr double kSmallGap = 3;  // px between the outlines of two small shapes (before stroke width)
constexpr int kPlacementTries = 100;  // per small shape; one that finds no free spot is left out
// The test split's streams: the top bit of the stream id, so no image shares one with a training image.
constexpr uint64_t kTestStreams = uint64_t{1} << 63;

// The random numbers of one image, from its own Philox stream.
class ImageRandom {
 public:
  ImageRandom(uint64_t seed, uint64_t stream_id) : stream_(seed, stream_id) {}

  double uniform(double low, double high) { return low + (high - low) * unit(); }
  // An integer in [low, high], both included.
  int64_t integer(int64_t low, int64_t high) {
    return low + static_cast<int64_t>(stream_.below(static_cast<uint64_t>(high - low + 1)));
  }
  // N(0, 1) by Box-Muller; 1 - unit() is in (0, 1], so the log is finite.
  double normal() { return std::sqrt(-2 * std::log(1 - unit())) * std::cos(2 * kPi * unit()); }

 private:
  double unit() { return static_cast<double>(stream_.next_u64() >> 11) * 0x1.0p-53; }  // [0, 1), 53 bits

  detail::PhiloxStream stream_;
};

struct Point {
  double x, y;
};

double length(double x, double y) { return std::sqrt(x * x + y * y); }

// One outline to draw. distance() is from a pixel centre to the outline's centre line.
struct Outline {
  enum class Kind { circle, square, segment };
  Kind kind;
  Point a;                // circle and square: the centre; segment: one end
  Point b{};              // segment: the other end
  double size = 0;        // circle: the radius; square: the half-side
  double cos_angle = 1;   // square: its rotation, kept as cos and sin (distance() runs per pixel)
  double sin_angle = 0;
  double brightness = 1;

  double distance(Point p) const {
    switch (kind) {
      case Kind::circle:
        return std::abs(length(p.x - a.x, p.y - a.y) - size);
      case Kind::square:
        return distance_to_square(p);
      case Kind::segment:
        return distance_to_segment(p);
    }
    return 0;
  }

 private:
  // Rotates p into the square's frame, then takes |signed distance to the box|.
  double distance_to_square(Point p) const {
    const double dx = p.x - a.x, dy = p.y - a.y;
    const double qx = std::abs(cos_angle * dx + sin_angle * dy) - size;
    const double qy = std::abs(-sin_angle * dx + cos_angle * dy) - size;
    const double outside = length(std::max(qx, 0.0), std::max(qy, 0.0));
    const double inside = std::min(std::max(qx, qy), 0.0);
    return std::abs(outside + inside);
  }
  double distance_to_segment(Point p) const {
    const double ex = b.x - a.x, ey = b.y - a.y;
    const double t = std::clamp(((p.x - a.x) * ex + (p.y - a.y) * ey) / (ex * ex + ey * ey), 0.0, 1.0);
    return length(p.x - (a.x + t * ex), p.y - (a.y + t * ey));
  }
};

double random_brightness(ImageRandom& random) { return random.uniform(0.5, 1.0); }

// A circle or square whose outline has the perimeter of a circle of radius `radius`:
// equal ink, so the amount of ink does not tell a ring from a square.
Outline ring_or_square(bool square, Point centre, double radius, double angle, ImageRandom& random) {
  const double brightness = random_brightness(random);
  if (square)
    return {.kind = Outline::Kind::square, .a = centre, .size = radius * kPi / 4, .cos_angle = std::cos(angle),
            .sin_angle = std::sin(angle), .brightness = brightness};
  return {.kind = Outline::Kind::circle, .a = centre, .size = radius, .brightness = brightness};
}

// One large shape, anywhere it fits whole.
void add_large_shape(bool square, double image_size, ImageRandom& random, std::vector<Outline>& out) {
  const double radius = random.uniform(kLargeRadiusMin, kLargeRadiusMax) * image_size;
  const double margin = radius + 1.5;
  const Point centre{random.uniform(margin, image_size - margin), random.uniform(margin, image_size - margin)};
  const double angle = random.uniform(0, kPi / 2);  // a square looks the same every quarter turn
  out.push_back(ring_or_square(square, centre, radius, angle, random));
}

// 3 to 5 small shapes, each whole and clear of the others by kSmallGap px.
void add_small_shapes(bool square, double image_size, ImageRandom& random, std::vector<Outline>& out) {
  const int64_t count = random.integer(kSmallCountMin, kSmallCountMax);
  std::vector<std::pair<Point, double>> placed;  // centre, radius
  for (int64_t k = 0; k < count; ++k) {
    const double radius = random.uniform(kSmallRadiusMin, kSmallRadiusMax);
    const double margin = radius + 1;
    for (int attempt = 0; attempt < kPlacementTries; ++attempt) {
      const Point centre{random.uniform(margin, image_size - margin), random.uniform(margin, image_size - margin)};
      const bool clear = std::all_of(placed.begin(), placed.end(), [&](const auto& other) {
        return length(centre.x - other.first.x, centre.y - other.first.y) >= radius + other.second + kSmallGap;
      });
      if (!clear) continue;
      placed.push_back({centre, radius});
      out.push_back(ring_or_square(square, centre, radius, 0, random));
      break;
    }
  }
}

// A straight stroke of random length and direction centred anywhere in the image.
Outline distractor_stroke(double image_size, ImageRandom& random) {
  const double half = random.uniform(4, std::max(4.0, 0.4 * image_size)) / 2;
  const double angle = random.uniform(0, kPi);
  const Point centre{random.uniform(2, image_size - 2), random.uniform(2, image_size - 2)};
  const double dx = half * std::cos(angle), dy = half * std::sin(angle);
  return {.kind = Outline::Kind::segment,
          .a = {centre.x - dx, centre.y - dy},
          .b = {centre.x + dx, centre.y + dy},
          .brightness = random_brightness(random)};
}

// The classes, in the order of shapes_class_name().
enum Class : int64_t { kLargeRing = 0, kLargeSquare = 1, kSmallRings = 2, kSmallSquares = 3 };
bool shows_squares(int64_t label) { return label == kLargeSquare || label == kSmallSquares; }
bool shows_small_shapes(int64_t label) { return label == kSmallRings || label == kSmallSquares; }

// What an image of class `label` shows: its class's shapes, then the distractors.
std::vector<Outline> compose(int64_t label, const ShapesOptions& options, ImageRandom& random) {
  const double size = static_cast<double>(options.image_size);
  std::vector<Outline> outlines;
  if (shows_small_shapes(label))
    add_small_shapes(shows_squares(label), size, random, outlines);
  else
    add_large_shape(shows_squares(label), size, random, outlines);
  for (int64_t k = 0; k < options.distractors; ++k) outlines.push_back(distractor_stroke(size, random));
  return outlines;
}

// Pixel (row, col) covers the unit square whose centre is (col + 0.5, row + 0.5). Where
// outlines cross, the brighter ink wins (max), as strokes of paint would.
void render(const std::vector<Outline>& outlines, const ShapesOptions& options, ImageRandom& random, float* pixels) {
  const int64_t side = options.image_size;
  for (int64_t row = 0; row < side; ++row)
    for (int64_t col = 0; col < side; ++col) {
      const Point p{col + 0.5, row + 0.5};
      double ink = 0;
      for (const Outline& o : outlines)
        ink = std::max(ink, o.brightness * std::clamp(kHalfWidth + 1 - o.distance(p), 0.0, 1.0));
      const double noisy = ink + (options.noise > 0 ? options.noise * random.normal() : 0.0);
      pixels[row * side + col] = static_cast<float>(std::clamp(noisy, 0.0, 1.0));
    }
}

void check_options(const ShapesOptions& options) {
  KILN_CHECK(options.count > 0, "make_shapes: count must be positive, got ", options.count);
  KILN_CHECK(options.image_size >= 16 && options.image_size <= 1024,
             "make_shapes: image_size must be in [16, 1024] (below 16 a large shape is no larger than a small "
             "one), got ",
             options.image_size);
  KILN_CHECK(options.noise >= 0 && std::isfinite(options.noise),
             "make_shapes: noise must be a finite standard deviation >= 0, got ", options.noise);
  KILN_CHECK(options.distractors >= 0 && options.distractors <= 100,
             "make_shapes: distractors must be in [0, 100], got ", options.distractors);
}

}  // namespace

std::string shapes_class_name(int64_t label) {
  static const char* const kNames[kShapesNumClasses] = {"large ring", "large square", "small rings",
                                                        "small squares"};
  KILN_CHECK(label >= 0 && label < kShapesNumClasses, "shapes_class_name: label must be in [0, ",
             kShapesNumClasses, "), got ", label);
  return kNames[label];
}

TensorDataset make_shapes(const ShapesOptions& options, bool train) {
  check_options(options);
  const int64_t count = options.count, side = options.image_size;
  Tensor images = empty({count, 1, side, side});
  Tensor labels = empty({count}, {.dtype = i64});
  float* pixels = images.data<float>();
  int64_t* label_of = labels.data<int64_t>();

  // Each image reads only its own stream and writes only its own pixels: parallel and
  // still identical for every thread count.
#pragma omp parallel for schedule(dynamic, 64)
  for (int64_t i = 0; i < count; ++i) {
    const int64_t label = i % kShapesNumClasses;
    ImageRandom random(options.seed, (train ? 0 : kTestStreams) | static_cast<uint64_t>(i));
    render(compose(label, options, random), options, random, pixels + i * side * side);
    label_of[i] = label;
  }
  return TensorDataset(images, labels);
}

}  // namespace kiln::nn::data
