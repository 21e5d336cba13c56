// spirals: train a small MLP to tell apart K interleaved spirals in the plane.
//
// This is kiln's first end-to-end program, written with nothing but tensors and
// autograd, so every step of training is visible in this one file:
//
//   1. make the data set .......... K spiral arms of noisy 2-D points, labelled 0..K-1
//   2. make the parameters ........ leaf tensors with requires_grad, PyTorch's Linear init
//   3. forward .................... linear -> relu -> linear -> relu -> linear -> cross_entropy
//   4. backward ................... loss.backward() fills every parameter's .grad()
//   5. update ..................... Adam, written out with in-place ops under NoGradGuard
//
// nn::Module and the optimizers (nn/optim/) will package steps 2 and 5; until they
// land, this is what they do underneath.
//
//   spirals [--steps 2000] [--lr 0.01] [--hidden 64] [--seed 0] [--classes 3]
//           [--points 200] [--activation relu|tanh]
#include <kiln/kiln.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numbers>
#include <string>
#include <vector>

using namespace kiln;

namespace {

// ---- command line ---------------------------------------------------------------------

struct Config {
  int64_t steps = 2000;
  double lr = 0.01;
  int64_t hidden = 64;
  uint64_t seed = 0;
  int64_t classes = 3;
  int64_t points = 200;  // per class
  std::string activation = "relu";
};

void print_usage(std::FILE* out) {
  std::fprintf(out,
               "usage: spirals [options]\n"
               "  Trains a 2 -> hidden -> hidden -> classes MLP on interleaved spirals with\n"
               "  full-batch Adam and prints loss and train accuracy as it goes.\n"
               "\n"
               "  --steps N         training steps (default 2000)\n"
               "  --lr X            Adam learning rate (default 0.01)\n"
               "  --hidden N        width of the two hidden layers (default 64)\n"
               "  --seed N          seed for the data and the initial weights (default 0)\n"
               "  --classes K       number of spiral arms / classes, >= 2 (default 3)\n"
               "  --points N        points per class (default 200)\n"
               "  --activation A    relu or tanh (default relu)\n"
               "  --help            print this message\n");
}

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "spirals: %s\n\n", message.c_str());
  print_usage(stderr);
  std::exit(2);
}

// Parses the whole of `text` as a number, or exits naming the flag.
double parse_number(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(value))
    usage_error(flag + " expects a number, got '" + text + "'");
  return value;
}

int64_t parse_count(const std::string& flag, const std::string& text, int64_t min) {
  const double value = parse_number(flag, text);
  if (value != std::floor(value) || value < static_cast<double>(min) || value > 1e9)
    usage_error(flag + " expects an integer >= " + std::to_string(min) + ", got '" + text + "'");
  return static_cast<int64_t>(value);
}

Config parse_args(int argc, char** argv) {
  Config cfg;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      print_usage(stdout);
      std::exit(0);
    }
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(flag + " needs a value");
      return argv[++i];
    };
    if (flag == "--steps") cfg.steps = parse_count(flag, value(), 0);
    else if (flag == "--lr") cfg.lr = parse_number(flag, value());
    else if (flag == "--hidden") cfg.hidden = parse_count(flag, value(), 1);
    else if (flag == "--seed") cfg.seed = static_cast<uint64_t>(parse_count(flag, value(), 0));
    else if (flag == "--classes") cfg.classes = parse_count(flag, value(), 2);
    else if (flag == "--points") cfg.points = parse_count(flag, value(), 1);
    else if (flag == "--activation") cfg.activation = value();
    else usage_error("unknown option '" + flag + "'");
  }
  if (cfg.activation != "tanh" && cfg.activation != "relu")
    usage_error("--activation expects relu or tanh, got '" + cfg.activation + "'");
  if (!(cfg.lr > 0)) usage_error("--lr must be positive");
  return cfg;
}

// ---- data -------------------------------------------------------------------------------

struct Dataset {
  Tensor x;  // f32 (N, 2): points in [-1, 1]^2
  Tensor y;  // i64 (N): class of each point
};

// K spiral arms around the origin. Along arm k the radius grows from 0 to 1 while the
// angle turns through `kTurns` of a circle, starting at k/K of a turn, so the arms
// interleave evenly. Gaussian noise on the angle blurs each arm, so near the centre
// (where arms meet) the classes overlap a little and 100% is not free.
Dataset make_spirals(int64_t classes, int64_t points_per_class) {
  constexpr double kTurns = 1.5;
  constexpr double kAngleNoise = 0.2;  // radians
  const double tau = 2 * std::numbers::pi;
  const int64_t n = classes * points_per_class;
  // The noise comes from kiln's seeded generator, so --seed fixes the data set too.
  const std::vector<double> noise = randn({n}, {.dtype = f64}).to_vector<double>();

  std::vector<float> coords;
  std::vector<int64_t> labels;
  coords.reserve(static_cast<size_t>(2 * n));
  labels.reserve(static_cast<size_t>(n));
  for (int64_t k = 0; k < classes; ++k) {
    for (int64_t i = 0; i < points_per_class; ++i) {
      // t runs from 0 (the centre) to 1 (the rim) along the arm.
      const double t = points_per_class > 1 ? static_cast<double>(i) / static_cast<double>(points_per_class - 1) : 1.0;
      const double start = static_cast<double>(k) / static_cast<double>(classes);
      const double angle = tau * (start + kTurns * t) + kAngleNoise * noise[static_cast<size_t>(k * points_per_class + i)];
      coords.push_back(static_cast<float>(t * std::cos(angle)));
      coords.push_back(static_cast<float>(t * std::sin(angle)));
      labels.push_back(k);
    }
  }
  return {from_vector(coords, {n, 2}), from_vector(labels)};
}

// ---- model ------------------------------------------------------------------------------

// One fully connected layer's parameters: y = x W^T + b (PyTorch's nn.Linear layout).
struct Layer {
  Tensor weight;  // (out, in)
  Tensor bias;    // (out)
};

// PyTorch's default Linear init: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
// Parameters are plain leaf tensors; requires_grad_() makes backward() fill their .grad().
Layer make_layer(int64_t in, int64_t out) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  return {uniform(-bound, bound, {out, in}).requires_grad_(), uniform(-bound, bound, {out}).requires_grad_()};
}

struct Mlp {
  std::vector<Layer> layers;
  bool use_relu = false;

  Mlp(int64_t classes, int64_t hidden, bool relu_activation) : use_relu(relu_activation) {
    layers = {make_layer(2, hidden), make_layer(hidden, hidden), make_layer(hidden, classes)};
  }

  // Logits (N, classes) for points (N, 2). Every op here records its backward, so the
  // loss computed from these logits can be differentiated back to every parameter.
  Tensor forward(const Tensor& x) const {
    Tensor h = x;
    for (size_t i = 0; i + 1 < layers.size(); ++i) {
      h = linear(h, layers[i].weight, layers[i].bias);
      h = use_relu ? relu(h) : tanh(h);
    }
    return linear(h, layers.back().weight, layers.back().bias);
  }

  std::vector<Tensor> parameters() const {
    std::vector<Tensor> params;
    for (const Layer& l : layers) {
      params.push_back(l.weight);
      params.push_back(l.bias);
    }
    return params;
  }
};

// ---- optimizer --------------------------------------------------------------------------

// Adam (Kingma & Ba, 2015), the update nn::optim::Adam will package:
//   m = b1 m + (1 - b1) g          running mean of the gradient
//   v = b2 v + (1 - b2) g^2        running mean of its square
//   p -= lr * m_hat / (sqrt(v_hat) + eps),  m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t)
// The bias corrections undo the zero initialisation of m and v in the first steps.
class Adam {
 public:
  Adam(std::vector<Tensor> params, double lr) : params_(std::move(params)), lr_(lr) {
    for (const Tensor& p : params_) {
      m_.push_back(zeros_like(p));
      v_.push_back(zeros_like(p));
    }
  }

  void step() {
    // Parameter updates are not part of the model's math: record no graph. (kiln also
    // refuses in-place ops on tensors that require grad while grad mode is on.)
    NoGradGuard no_grad;
    ++t_;
    const double correction1 = 1 - std::pow(kBeta1, static_cast<double>(t_));
    const double correction2 = 1 - std::pow(kBeta2, static_cast<double>(t_));
    for (size_t i = 0; i < params_.size(); ++i) {
      Tensor& p = params_[i];
      const Tensor g = p.grad();
      if (!g.defined()) continue;  // this parameter did not take part in the loss
      m_[i].mul_(kBeta1).add_(g, 1 - kBeta1);
      v_[i].mul_(kBeta2).add_(g * g, 1 - kBeta2);
      const Tensor denom = sqrt(v_[i] * (1.0 / correction2)) + kEps;
      p.add_(m_[i] / denom, -lr_ / correction1);
    }
  }

  // Gradients accumulate across backward() calls, so clear them before each step.
  void zero_grad() {
    for (Tensor& p : params_) p.zero_grad();
  }

 private:
  static constexpr double kBeta1 = 0.9, kBeta2 = 0.999, kEps = 1e-8;
  std::vector<Tensor> params_, m_, v_;
  double lr_;
  int64_t t_ = 0;
};

// ---- evaluation ---------------------------------------------------------------------------

// Fraction of rows whose largest logit is the target class.
double accuracy(const Tensor& logits, const Tensor& target) {
  NoGradGuard no_grad;
  const Tensor predicted = argmax(logits, /*dim=*/1);
  return mean(eq(predicted, target).to(f32)).item<double>();
}

// The learned decision regions on a grid over [-1, 1]^2, one character per class:
// the spiral arms should be visible.
void print_decision_map(const Mlp& model) {
  constexpr int64_t kCols = 64, kRows = 28;
  static const char kGlyphs[] = ".o+#x*%@=~";
  std::vector<float> grid;
  for (int64_t r = 0; r < kRows; ++r) {
    for (int64_t c = 0; c < kCols; ++c) {
      grid.push_back(static_cast<float>(-1.0 + 2.0 * (c + 0.5) / kCols));
      grid.push_back(static_cast<float>(1.0 - 2.0 * (r + 0.5) / kRows));  // y up
    }
  }
  NoGradGuard no_grad;
  const Tensor logits = model.forward(from_vector(grid, {kRows * kCols, 2}));
  const std::vector<int64_t> predicted = argmax(logits, 1).to_vector<int64_t>();
  std::printf("decision regions on [-1, 1]^2 (one glyph per class):\n");
  for (int64_t r = 0; r < kRows; ++r) {
    std::string line = "  ";
    for (int64_t c = 0; c < kCols; ++c) {
      const int64_t k = predicted[static_cast<size_t>(r * kCols + c)];
      line += k < static_cast<int64_t>(sizeof(kGlyphs) - 1) ? kGlyphs[k] : '?';
    }
    std::printf("%s\n", line.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Config cfg = parse_args(argc, argv);
  try {
    manual_seed(cfg.seed);
    const Dataset data = make_spirals(cfg.classes, cfg.points);
    Mlp model(cfg.classes, cfg.hidden, cfg.activation == "relu");
    Adam optimizer(model.parameters(), cfg.lr);

    int64_t num_params = 0;
    for (const Tensor& p : model.parameters()) num_params += p.numel();
    std::printf("spirals: %lld classes x %lld points, MLP 2 -> %lld -> %lld -> %lld (%s, %lld parameters)\n",
                static_cast<long long>(cfg.classes), static_cast<long long>(cfg.points),
                static_cast<long long>(cfg.hidden), static_cast<long long>(cfg.hidden),
                static_cast<long long>(cfg.classes), cfg.activation.c_str(), static_cast<long long>(num_params));
    std::printf("full-batch Adam, lr %g, %lld steps, seed %llu\n", cfg.lr, static_cast<long long>(cfg.steps),
                static_cast<unsigned long long>(cfg.seed));

    const int64_t log_every = std::max<int64_t>(1, cfg.steps / 20);
    const auto start = std::chrono::steady_clock::now();
    for (int64_t step = 1; step <= cfg.steps; ++step) {
      optimizer.zero_grad();
      const Tensor logits = model.forward(data.x);
      const Tensor loss = cross_entropy(logits, data.y);
      loss.backward();  // d(loss)/d(parameter) lands in each parameter's .grad()
      optimizer.step();

      if (step == 1 || step % log_every == 0 || step == cfg.steps) {
        const double loss_value = loss.item<double>();
        if (!std::isfinite(loss_value)) {
          std::fprintf(stderr, "spirals: loss became %g at step %lld; try a smaller --lr\n", loss_value,
                       static_cast<long long>(step));
          return 1;
        }
        // The logits are from before this step's update: the accuracy the loss belongs to.
        std::printf("step %5lld  loss %.4f  train acc %5.1f%%\n", static_cast<long long>(step), loss_value,
                    100.0 * accuracy(logits, data.y));
      }
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    double final_accuracy = 0;
    {
      NoGradGuard no_grad;
      final_accuracy = accuracy(model.forward(data.x), data.y);
    }
    print_decision_map(model);
    std::printf("final train accuracy %.1f%% after %lld steps in %.2f s (%.2f ms/step)\n", 100.0 * final_accuracy,
                static_cast<long long>(cfg.steps), seconds,
                cfg.steps > 0 ? 1000.0 * seconds / static_cast<double>(cfg.steps) : 0.0);
  } catch (const Error& e) {
    std::fprintf(stderr, "spirals: %s\n", e.what());
    return 1;
  }
  return 0;
}
