// Argument checks shared by all ops. Each throws kiln::Error naming the op and the
// offending tensors, so every op's first lines read as its contract.
#pragma once

#include <initializer_list>

#include "kiln/core/tensor.h"

namespace kiln::ops {

// Every tensor is defined and on the CPU (the CUDA backend adds its own dispatch).
void check_cpu(const char* op, std::initializer_list<Tensor> tensors);
// All tensors share a device (no implicit copies between devices).
void check_same_device(const char* op, std::initializer_list<Tensor> tensors);
// a and b have the same dtype (kiln does not promote implicitly).
void check_same_dtype(const char* op, const Tensor& a, const Tensor& b);
// t has a floating dtype (f32 or f64).
void check_floating(const char* op, const Tensor& t);

// Strides that read `t` as if expanded to `shape` (0 on broadcast dims). Throws if
// `t` does not broadcast to `shape`.
Shape broadcast_strides(const Tensor& t, const Shape& shape, const char* op);

}  // namespace kiln::ops
