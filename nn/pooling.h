// Pooling layers over ops/pool.h. They hold settings only (no parameters).
//
//   auto pool = std::make_shared<nn::MaxPool2d>(2);               // 2x2 windows, stride 2
//   auto gap = std::make_shared<nn::AdaptiveAvgPool2d>(Size2(1));  // global average pooling
#pragma once

#include "kiln/nn/module.h"
#include "kiln/ops/pool.h"

namespace kiln::nn {

// `size` itself, after checking that it is positive; else a kiln::Error such as
// "MaxPool2d: kernel_size must be positive, got (0, 0)". The ops check again at forward,
// but a layer built wrong should fail where it is built.
Size2 checked_pool_size(const char* layer, const char* what, Size2 size);
int64_t checked_pool_size(const char* layer, const char* what, int64_t size);

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(Size2 kernel_size, const MaxPool2dOptions& options = {})
      : kernel_size_(checked_pool_size("MaxPool2d", "kernel_size", kernel_size)), options_(options) {}
  Tensor forward(const Tensor& x) const { return max_pool2d(x, kernel_size_, options_); }
  std::string extra_repr() const override;

 private:
  Size2 kernel_size_;
  MaxPool2dOptions options_;
};

class MaxPool1d : public Module {
 public:
  explicit MaxPool1d(int64_t kernel_size, const MaxPool1dOptions& options = {})
      : kernel_size_(checked_pool_size("MaxPool1d", "kernel_size", kernel_size)), options_(options) {}
  Tensor forward(const Tensor& x) const { return max_pool1d(x, kernel_size_, options_); }
  std::string extra_repr() const override;

 private:
  int64_t kernel_size_;
  MaxPool1dOptions options_;
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(Size2 kernel_size, const AvgPool2dOptions& options = {})
      : kernel_size_(checked_pool_size("AvgPool2d", "kernel_size", kernel_size)), options_(options) {}
  Tensor forward(const Tensor& x) const { return avg_pool2d(x, kernel_size_, options_); }
  std::string extra_repr() const override;

 private:
  Size2 kernel_size_;
  AvgPool2dOptions options_;
};

class AvgPool1d : public Module {
 public:
  explicit AvgPool1d(int64_t kernel_size, const AvgPool1dOptions& options = {})
      : kernel_size_(checked_pool_size("AvgPool1d", "kernel_size", kernel_size)), options_(options) {}
  Tensor forward(const Tensor& x) const { return avg_pool1d(x, kernel_size_, options_); }
  std::string extra_repr() const override;

 private:
  int64_t kernel_size_;
  AvgPool1dOptions options_;
};

class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(Size2 output_size)
      : output_size_(checked_pool_size("AdaptiveAvgPool2d", "output_size", output_size)) {}
  Tensor forward(const Tensor& x) const { return adaptive_avg_pool2d(x, output_size_); }
  std::string extra_repr() const override;

 private:
  Size2 output_size_;
};

}  // namespace kiln::nn
