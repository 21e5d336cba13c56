#include "visualize.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <numbers>
#include <sstream>
#include <utility>

#include <kiln/autograd/grad_mode.h>
#include <kiln/core/factory.h>
#include <kiln/ops/elementwise.h>
#include <kiln/ops/index.h>
#include <kiln/ops/linalg.h>
#include <kiln/ops/normalization.h>

#include "train.h"

namespace charlm {

namespace {

using kiln::Tensor;

// ---- running the model ------------------------------------------------------------------------

std::vector<float> as_floats(const Tensor& t) { return t.to(kiln::f32).to_vector<float>(); }

// One chunk of at most block_size characters, appended to `trace`.
void trace_chunk(const kiln::nn::GPT& model, const std::string& chunk, PoolTrace& trace) {
  const auto T = static_cast<int64_t>(chunk.size());
  std::vector<int64_t> tokens(chunk.begin(), chunk.end());
  for (int64_t& token : tokens) token &= 0xff;
  const Tensor idx = kiln::from_vector(tokens, {1, T}, {.dtype = kiln::i64});
  const Tensor positions = kiln::arange(static_cast<double>(T), {.dtype = kiln::i64});

  // GPT::forward, one layer at a time, keeping what each pool used.
  Tensor h = model.wte->forward(idx) + model.wpe->forward(positions);
  size_t pooled = 0;
  for (const auto& layer : model.layers) {
    if (!layer->context_pool) {
      h = layer->forward(h);
      continue;
    }
    const kiln::nn::ContextPoolOutput out = layer->forward_with_pool_stats(h);
    const std::vector<float> s = as_floats(out.s), m = as_floats(out.m);  // (1, T) each
    trace.sizes[pooled].insert(trace.sizes[pooled].end(), s.begin(), s.end());
    trace.weights[pooled].insert(trace.weights[pooled].end(), m.begin(), m.end());
    ++pooled;
    h = out.y;
  }

  // How surprising each character was: the head's log-probability of the next character.
  const Tensor log_probs = kiln::log_softmax(kiln::linear(model.ln_f->forward(h), model.wte->weight), -1);  // (1, T, V)
  const std::vector<float> lp = as_floats(log_probs);
  const int64_t V = log_probs.size(-1);
  trace.bits.push_back(std::numeric_limits<float>::quiet_NaN());  // the chunk's first character has no context
  for (int64_t t = 1; t < T; ++t)
    trace.bits.push_back(static_cast<float>(-lp[static_cast<size_t>((t - 1) * V + tokens[t])] / std::numbers::ln2));
}

// ---- colours ---------------------------------------------------------------------------------

struct Rgb {
  double r, g, b;
};

// A sequential palette (viridis' five anchors: dark violet -> yellow), linearly between them.
Rgb palette(const std::array<Rgb, 5>& anchors, double t) {
  t = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0) * 4.0;
  const auto i = std::min<size_t>(static_cast<size_t>(t), 3);
  const double f = t - static_cast<double>(i);
  const Rgb& a = anchors[i];
  const Rgb& b = anchors[i + 1];
  return {a.r + (b.r - a.r) * f, a.g + (b.g - a.g) * f, a.b + (b.b - a.b) * f};
}

constexpr std::array<Rgb, 5> kSizeColours = {{{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}}};
constexpr std::array<Rgb, 5> kWeightColours = {{{255, 255, 255}, {254, 230, 206}, {253, 174, 107}, {230, 85, 13}, {127, 39, 4}}};
constexpr std::array<Rgb, 5> kBitsColours = {{{255, 255, 255}, {239, 237, 245}, {188, 189, 220}, {117, 107, 177}, {63, 0, 125}}};

std::string css(const Rgb& c) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "#%02x%02x%02x", static_cast<int>(std::lround(c.r)),
                static_cast<int>(std::lround(c.g)), static_cast<int>(std::lround(c.b)));
  return buffer;
}

// Black text on light backgrounds, white on dark ones (perceived luminance).
std::string text_colour(const Rgb& c) { return 0.299 * c.r + 0.587 * c.g + 0.114 * c.b > 140 ? "#000" : "#fff"; }

// ---- HTML ------------------------------------------------------------------------------------

// A byte as the page shows it: printable ASCII as itself (escaped), a newline as a
// visible mark plus a real line break, anything else (tabs, UTF-8 pieces) as a dot.
std::string html_char(unsigned char c) {
  switch (c) {
    case '<': return "&lt;";
    case '>': return "&gt;";
    case '&': return "&amp;";
    case '"': return "&quot;";
    case '\n': return "&#8629;";
    default: return c >= 0x20 && c < 0x7f ? std::string(1, static_cast<char>(c)) : "&#183;";
  }
}

std::string describe_char(unsigned char c) {
  if (c == '\n') return "newline";
  if (c == ' ') return "space";
  if (c >= 0x20 && c < 0x7f) return std::string(1, '\'').append(html_char(c)).append(1, '\'');
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "byte 0x%02x", c);
  return buffer;
}

std::string fixed(double value, int digits) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.*f", digits, value);
  return buffer;
}

// One row of characters, each on the colour of its value scaled from [low, high].
void write_row(std::ostream& out, const std::string& text, const std::vector<float>& values, double low, double high,
               const std::array<Rgb, 5>& colours, const std::string& what, int digits) {
  out << "<div class=\"text\">";
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    const double value = values[i];
    const bool known = std::isfinite(value);
    const Rgb background = known ? palette(colours, (value - low) / (high - low)) : Rgb{238, 238, 238};
    out << "<span style=\"background:" << css(background) << ";color:" << text_colour(background) << "\" title=\""
        << describe_char(c) << " at " << i << ": " << what << " = " << (known ? fixed(value, digits) : "n/a")
        << "\">" << html_char(c) << "</span>";
    if (c == '\n') out << "\n";
  }
  out << "</div>\n";
}

void write_legend(std::ostream& out, const std::string& label, double low, double high,
                  const std::array<Rgb, 5>& colours, int digits) {
  out << "<div class=\"legend\"><span class=\"label\">" << label << "</span> " << fixed(low, digits) << " ";
  for (int i = 0; i <= 20; ++i) {
    const Rgb c = palette(colours, i / 20.0);
    out << "<span class=\"swatch\" style=\"background:" << css(c) << "\"></span>";
  }
  out << " " << fixed(high, digits) << "</div>\n";
}

// The smallest and largest finite value over all rows (a range of width > 0).
std::pair<double, double> value_range(const std::vector<std::vector<float>>& rows) {
  double low = std::numeric_limits<double>::infinity(), high = -low;
  for (const std::vector<float>& row : rows)
    for (float v : row)
      if (std::isfinite(v)) low = std::min<double>(low, v), high = std::max<double>(high, v);
  if (!(low < high)) high = low + 1e-3;
  return {low, high};
}

double mean_of(const std::vector<float>& values) {
  double sum = 0;
  int64_t count = 0;
  for (float v : values)
    if (std::isfinite(v)) sum += v, ++count;
  return count > 0 ? sum / static_cast<double>(count) : 0.0;
}

constexpr const char* kStyle = R"(<style>
body { font-family: system-ui, sans-serif; max-width: 72em; margin: 2em auto; padding: 0 1em; color: #222; }
h2 { margin-top: 1.6em; font-size: 1.1em; }
.text { font-family: ui-monospace, monospace; font-size: 14px; line-height: 1.75; white-space: pre-wrap;
        word-break: break-all; border: 1px solid #ddd; padding: 0.5em; margin: 0.3em 0 0.8em; }
.text span { padding: 2px 0; }
.legend { font-size: 0.9em; margin: 0.2em 0; }
.legend .label { display: inline-block; min-width: 13em; }
.swatch { display: inline-block; width: 1.1em; height: 0.9em; vertical-align: middle; }
.note { color: #555; font-size: 0.92em; }
</style>)";

}  // namespace

PoolTrace trace_pools(const kiln::nn::GPT& model, const std::string& text) {
  KILN_CHECK(!text.empty(), "--visualize needs a non-empty text");
  PoolTrace trace;
  for (size_t i = 0; i < model.layers.size(); ++i)
    if (model.layers[i]->context_pool) trace.layers.push_back(static_cast<int64_t>(i));
  KILN_CHECK(!trace.layers.empty(), "--visualize shows what ContextPool learned, but this model has no ",
             "ContextPool (train one with --context-pool)");
  trace.sizes.resize(trace.layers.size());
  trace.weights.resize(trace.layers.size());

  kiln::NoGradGuard no_grad;
  const auto block = static_cast<size_t>(model.config().block_size);
  for (size_t start = 0; start < text.size(); start += block) trace_chunk(model, text.substr(start, block), trace);
  return trace;
}

std::string validation_excerpt(const kiln::nn::data::ByteCorpus& corpus, int64_t length) {
  const auto split = corpus.split(kiln::nn::data::Split::validation);
  const size_t n = std::min(split.size(), static_cast<size_t>(length));
  return {reinterpret_cast<const char*>(split.data()), n};
}

void write_pool_page(const kiln::nn::GPT& model, const ModelSettings& settings, const std::string& text,
                     const std::string& path) {
  const PoolTrace trace = trace_pools(model, text);
  // The colour scale spans the sizes that occur, shared by every layer: learned sizes
  // often use a small part of (s_min, s_max), and a fixed scale would show one colour.
  const auto [s_low, s_high] = value_range(trace.sizes);

  std::ostringstream out;
  out << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      << "<title>charlm: what ContextPool learned</title>\n" << kStyle << "\n</head>\n<body>\n"
      << "<h1>What ContextPool learned</h1>\n"
      << "<p>Model: " << describe(settings) << ". Text: " << text.size() << " characters, run in chunks of "
      << settings.seq_len << " (the model's context).</p>\n"
      << "<p class=\"note\">Each block pools its hidden states causally: character <i>i</i> becomes a weighted "
         "average of itself and the characters before it, with a Gaussian of width <b>s<sub>i</sub></b> (its "
         "<b>support size</b>, learned per character) times each neighbour's <b>pooling weight m<sub>j</sub></b>. "
         "A wide support means the layer blends that character with its past; a small one keeps it as it is. "
         "Hover a character for its exact values. The last row shows how surprised the model was by each "
         "character (bits = &minus;log<sub>2</sub> p), for comparison.</p>\n";
  out << "<p class=\"note\">The model allows sizes from " << fixed(settings.pool_s_min, 2) << " to "
      << fixed(settings.pool_s_max, 2) << " characters; the colours span the sizes that occur here.</p>\n";
  write_legend(out, "support size s (characters)", s_low, s_high, kSizeColours, 2);
  write_legend(out, "pooling weight m", 0, 1, kWeightColours, 1);
  write_legend(out, "surprise (bits)", 0, 8, kBitsColours, 0);

  for (size_t k = 0; k < trace.layers.size(); ++k) {
    const auto [s_min, s_max] = value_range({trace.sizes[k]});
    out << "<h2>Layer " << trace.layers[k] << " &mdash; support size s: mean " << fixed(mean_of(trace.sizes[k]), 2)
        << " characters (" << fixed(s_min, 2) << " to " << fixed(s_max, 2) << "); pooling weight m: mean "
        << fixed(mean_of(trace.weights[k]), 2) << "</h2>\n";
    write_row(out, text, trace.sizes[k], s_low, s_high, kSizeColours, "s", 2);
    write_row(out, text, trace.weights[k], 0, 1, kWeightColours, "m", 2);
  }
  out << "<h2>Surprise &mdash; mean " << fixed(mean_of(trace.bits), 2) << " bits per character</h2>\n";
  write_row(out, text, trace.bits, 0, 8, kBitsColours, "bits", 2);
  out << "</body>\n</html>\n";

  std::ofstream file(path, std::ios::binary);
  file << out.str();
  KILN_CHECK(file.good(), "cannot write '", path, "'");
}

}  // namespace charlm
