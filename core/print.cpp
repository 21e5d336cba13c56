// Tensor printing in the style of PyTorch's repr: nested brackets, aligned columns,
// and "..." in place of the middle of dims when the tensor has over 1000 elements.
#include <cmath>
#include <cstdio>
#include <sstream>

#include "kiln/autograd/node.h"
#include "kiln/core/tensor.h"

namespace kiln {

namespace {

constexpr int64_t kSummarizeAbove = 1000;
constexpr int64_t kEdgeItems = 3;

struct Printer {
  const std::vector<double>& values;  // row-major
  const Shape& shape;
  DType dtype;
  bool summarize;
  bool all_integral = true;
  int width = 1;

  std::string format(double v) const {
    char buf[64];
    if (dtype == b8) return v != 0 ? "True" : "False";
    if (dtype == i64) std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
    else if (std::isnan(v)) std::snprintf(buf, sizeof buf, "nan");
    else if (std::isinf(v)) std::snprintf(buf, sizeof buf, v > 0 ? "inf" : "-inf");
    else if (all_integral) std::snprintf(buf, sizeof buf, "%.0f.", v);
    else if (v != 0 && (std::fabs(v) >= 1e8 || std::fabs(v) < 1e-4)) std::snprintf(buf, sizeof buf, "%.4e", v);
    else std::snprintf(buf, sizeof buf, "%.4f", v);
    return buf;
  }

  // Prints dims [d, ndim) of the block starting at flat index `base`.
  void print(std::ostringstream& os, size_t d, int64_t base, int64_t stride, int indent) const {
    if (d == shape.size()) {
      std::string s = format(values[static_cast<size_t>(base)]);
      os << std::string(static_cast<size_t>(std::max(0, width - static_cast<int>(s.size()))), ' ') << s;
      return;
    }
    const int64_t n = shape[d], inner = stride / std::max<int64_t>(n, 1);
    os << "[";
    for (int64_t i = 0; i < n; ++i) {
      if (summarize && n > 2 * kEdgeItems && i == kEdgeItems) {
        os << (d + 1 == shape.size() ? "..., " : "...,\n" + std::string(static_cast<size_t>(indent + 1), ' '));
        i = n - kEdgeItems - 1;
        continue;
      }
      print(os, d + 1, base + i * inner, inner, indent + 1);
      if (i + 1 < n) {
        if (d + 1 == shape.size()) os << ", ";
        else os << "," << std::string(shape.size() - d - 1, '\n') << std::string(static_cast<size_t>(indent + 1), ' ');
      }
    }
    os << "]";
  }
};

}  // namespace

std::string Tensor::str() const {
  if (!defined()) return "tensor(undefined)";
  Tensor cpu_view = device().is_cpu() ? *this : to(Device::cpu());
  const std::vector<double> values = cpu_view.to_vector<double>();
  Printer p{values, shape(), dtype(), numel() > kSummarizeAbove};
  for (double v : values) p.all_integral &= std::isfinite(v) ? v == std::floor(v) : true;
  p.all_integral &= is_floating(dtype());
  for (double v : values) p.width = std::max(p.width, static_cast<int>(p.format(v).size()));

  std::ostringstream os;
  os << "tensor(";
  if (numel() == 0) os << "[]";
  else p.print(os, 0, 0, numel(), 7);
  if (numel() == 0 && dim() != 1) os << ", size=" << shape_str(shape());
  if (dtype() != f32 && dtype() != i64 && dtype() != b8) os << ", dtype=" << dtype_name(dtype());
  if (!device().is_cpu()) os << ", device=" << device().str();
  if (grad_fn()) os << ", grad_fn=<" << grad_fn()->name() << ">";
  else if (requires_grad()) os << ", requires_grad=True";
  os << ")";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

}  // namespace kiln
