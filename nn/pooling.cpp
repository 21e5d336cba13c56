#include "kiln/nn/pooling.h"

#include <string>

namespace kiln::nn {

namespace {

std::string pair_str(Size2 s) { return detail::str("(", s.h, ", ", s.w, ")"); }

// A stride of 0 means "the kernel size": show the stride actually used, as PyTorch does.
Size2 effective_stride(Size2 stride, Size2 kernel) {
  return {stride.h ? stride.h : kernel.h, stride.w ? stride.w : kernel.w};
}
int64_t effective_stride(int64_t stride, int64_t kernel) { return stride ? stride : kernel; }

}  // namespace

Size2 checked_pool_size(const char* layer, const char* what, Size2 size) {
  KILN_CHECK(size.h > 0 && size.w > 0, layer, ": ", what, " must be positive, got ", pair_str(size));
  return size;
}

int64_t checked_pool_size(const char* layer, const char* what, int64_t size) {
  KILN_CHECK(size > 0, layer, ": ", what, " must be positive, got ", size);
  return size;
}

std::string MaxPool2d::extra_repr() const {
  const MaxPool2dOptions& o = options_;
  return detail::str("kernel_size=", pair_str(kernel_size_),
                     ", stride=", pair_str(effective_stride(o.stride, kernel_size_)), ", padding=", pair_str(o.padding),
                     ", dilation=", pair_str(o.dilation), ", ceil_mode=", std::boolalpha, o.ceil_mode);
}

std::string MaxPool1d::extra_repr() const {
  const MaxPool1dOptions& o = options_;
  return detail::str("kernel_size=", kernel_size_, ", stride=", effective_stride(o.stride, kernel_size_),
                     ", padding=", o.padding, ", dilation=", o.dilation, ", ceil_mode=", std::boolalpha, o.ceil_mode);
}

std::string AvgPool2d::extra_repr() const {
  const AvgPool2dOptions& o = options_;
  return detail::str("kernel_size=", pair_str(kernel_size_),
                     ", stride=", pair_str(effective_stride(o.stride, kernel_size_)), ", padding=", pair_str(o.padding),
                     ", ceil_mode=", std::boolalpha, o.ceil_mode, ", count_include_pad=", o.count_include_pad);
}

std::string AvgPool1d::extra_repr() const {
  const AvgPool1dOptions& o = options_;
  return detail::str("kernel_size=", kernel_size_, ", stride=", effective_stride(o.stride, kernel_size_),
                     ", padding=", o.padding, ", ceil_mode=", std::boolalpha, o.ceil_mode,
                     ", count_include_pad=", o.count_include_pad);
}

std::string AdaptiveAvgPool2d::extra_repr() const { return "output_size=" + pair_str(output_size_); }

}  // namespace kiln::nn
