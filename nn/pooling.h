// Pooling layers over ops/pool.h. They hold settings only (no parameters).
//
//   auto pool = std::make_shared<nn::MaxPool2d>(2);               // 2x2 windows, stride 2
//   auto gap = std::make_shared<nn::AdaptiveAvgPool2d>(Size2(1));  // global average pooling
#pragma once

#include "kiln/nn/module.h"
#include "kiln/ops/pool.h"

namespace kiln::nn {

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(Size2 kernel_size, const MaxPool2dOptions& options = {})
      : kernel_size_(kernel_size), options_(options) {}
  Tensor forward(const Tensor& x) const { return max_pool2d(x, kernel_size_, options_); }
  std::string extra_repr() const override;

 private:
  Size2 kernel_size_;
  MaxPool2dOptions options_;
};

class MaxPool1d : public Module {
 public:
  explicit MaxPool1d(int64_t kernel_size, const MaxPool1dOptions& options = {})
      : kernel_size_(kernel_size), options_(options) {}
  Tensor forward(const Tensor& x) const { return max_pool1d(x, kernel_size_, options_); }
  std::string extra_repr() const override;

 private:
  int64_t kernel_size_;
  MaxPool1dOptions options_;
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(Size2 kernel_size, const AvgPool2dOptions& options = {})
      : kernel_size_(kernel_size), options_(options) {}
  Tensor forward(const Tensor& x) const { return avg_pool2d(x, kernel_size_, options_); }
  std::string extra_repr() const override;

 private:
  Size2 kernel_size_;
  AvgPool2dOptions options_;
};

class AvgPool1d : public Module {
 public:
  explicit AvgPool1d(int64_t kernel_size, const AvgPool1dOptions& options = {})
      : kernel_size_(kernel_size), options_(options) {}
  Tensor forward(const Tensor& x) const { return avg_pool1d(x, kernel_size_, options_); }
  std::string extra_repr() const override;

 private:
  int64_t kernel_size_;
  AvgPool1dOptions options_;
};

class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(Size2 output_size) : output_size_(output_size) {}
  Tensor forward(const Tensor& x) const { return adaptive_avg_pool2d(x, output_size_); }
  std::string extra_repr() const override;

 private:
  Size2 output_size_;
};

}  // namespace kiln::nn
