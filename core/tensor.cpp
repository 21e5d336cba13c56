#include "kiln/core/tensor.h"

namespace kiln {

int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, dim(), "size")]; }

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t s : shape()) n *= s;
  return n;
}

bool Tensor::is_contiguous() const {
  if (numel() == 0) return true;  // no element has an address to be out of place
  int64_t expected = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (shape()[i] == 1) continue;  // the stride of a size-1 dim never matters
    if (strides()[i] != expected) return false;
    expected *= shape()[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  return static_cast<char*>(storage()->data()) + offset() * static_cast<int64_t>(element_size(dtype()));
}

namespace {

double load_as_double(const void* base, DType t, int64_t i) {
  switch (t) {
    case DType::f32: return static_cast<const float*>(base)[i];
    case DType::f64: return static_cast<const double*>(base)[i];
    case DType::i64: return static_cast<double>(static_cast<const int64_t*>(base)[i]);
    case DType::bf16: return bf16_to_float(static_cast<const bfloat16*>(base)[i]);
    case DType::f16: return f16_to_float(static_cast<const float16*>(base)[i]);
    case DType::b8: return static_cast<const uint8_t*>(base)[i] ? 1.0 : 0.0;
  }
  return 0;
}

template <class T>
T convert_element(const void* base, DType t, int64_t i) {
  if constexpr (std::is_same_v<T, int64_t>) {
    if (t == DType::i64) return static_cast<const int64_t*>(base)[i];  // exact, no double trip
  }
  return static_cast<T>(load_as_double(base, t, i));
}

}  // namespace

template <class T>
T Tensor::item() const {
  KILN_CHECK(numel() == 1, "item: expected a tensor with one element, got shape ",
             shape_str(shape()));
  // On a GPU this is where the host waits for the value: the one sync item() implies.
  if (!device().is_cpu()) return detach().to(Device::cpu()).item<T>();
  return convert_element<T>(raw_data(), dtype(), 0);
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  if (!device().is_cpu()) return detach().to(Device::cpu()).to_vector<T>();  // waits for the GPU
  const int64_t n = numel();
  std::vector<T> out(static_cast<size_t>(n));
  const void* base = storage()->data();
  // Walk the N-d index in row-major order, following strides (any view works).
  std::vector<int64_t> idx(static_cast<size_t>(dim()), 0);
  int64_t pos = offset();
  for (int64_t k = 0; k < n; ++k) {
    out[static_cast<size_t>(k)] = convert_element<T>(base, dtype(), pos);
    for (int64_t d = dim() - 1; d >= 0; --d) {
      if (++idx[d] < shape()[d]) {
        pos += strides()[d];
        break;
      }
      pos -= strides()[d] * (shape()[d] - 1);
      idx[d] = 0;
    }
  }
  return out;
}

template float Tensor::item<float>() const;
template double Tensor::item<double>() const;
template int64_t Tensor::item<int64_t>() const;
template int Tensor::item<int>() const;
template bool Tensor::item<bool>() const;
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<int> Tensor::to_vector<int>() const;
template std::vector<uint8_t> Tensor::to_vector<uint8_t>() const;

void Tensor::set_data(const Tensor& other) const {
  KILN_CHECK(other.defined(), "set_data: the new data is undefined");
  TensorImpl& self = impl();
  self.storage = other.storage();
  self.shape = other.shape();
  self.strides = other.strides();
  self.offset = other.offset();
  self.dtype = other.dtype();
}

Tensor make_tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset,
                   DType dtype) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::move(storage);
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

std::string describe(const Tensor& t) {
  if (!t.defined()) return "undefined";
  std::string s = std::string(dtype_name(t.dtype())) + shape_str(t.shape());
  if (!t.device().is_cpu()) {
    s += '@';  // two appends: g++ 12 warns (-Wrestrict, a false positive) on "@" + std::string
    s += t.device().str();
  }
  return s;
}

}  // namespace kiln
