// im2col / col2im (see im2col.h). Each column-matrix row is one kernel tap (c, i, j);
// along it, the output rows oy whose input row lies in the padding are zero, and in
// each remaining row the outputs [first_inside, end_inside) read one input row at a
// fixed stride, so the inner loops have no bounds test.
#include "kiln/ops/cpu/im2col.h"

#include <algorithm>

namespace kiln::cpu {

template <class T>
void im2col(const T* image, int64_t channels, const WindowAxis& h, const WindowAxis& w, T* cols) {
  const int64_t plane = h.in * w.in, out_area = h.out * w.out;
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t i = 0; i < h.kernel; ++i) {
      for (int64_t j = 0; j < w.kernel; ++j) {
        T* row = cols + ((c * h.kernel + i) * w.kernel + j) * out_area;
        const int64_t x0 = w.first_inside(j), x1 = w.end_inside(j);
        const int64_t shift = w.input_index(0, j);  // input column of output column 0
        for (int64_t oy = 0; oy < h.out; ++oy) {
          T* dst = row + oy * w.out;
          const int64_t iy = h.input_index(oy, i);
          if (iy < 0 || iy >= h.in) {
            std::fill(dst, dst + w.out, T(0));
            continue;
          }
          const T* src = image + c * plane + iy * w.in;
          std::fill(dst, dst + x0, T(0));
          if (w.stride == 1) {
            std::copy(src + (shift + x0), src + (shift + x1), dst + x0);
          } else {
            for (int64_t ox = x0; ox < x1; ++ox) dst[ox] = src[shift + ox * w.stride];
          }
          std::fill(dst + x1, dst + w.out, T(0));
        }
      }
    }
  }
}

template <class T>
void col2im(const T* cols, int64_t channels, const WindowAxis& h, const WindowAxis& w, T* image) {
  const int64_t plane = h.in * w.in, out_area = h.out * w.out;
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t i = 0; i < h.kernel; ++i) {
      for (int64_t j = 0; j < w.kernel; ++j) {
        const T* row = cols + ((c * h.kernel + i) * w.kernel + j) * out_area;
        const int64_t x0 = w.first_inside(j), x1 = w.end_inside(j);
        const int64_t shift = w.input_index(0, j);
        for (int64_t oy = 0; oy < h.out; ++oy) {
          const int64_t iy = h.input_index(oy, i);
          if (iy < 0 || iy >= h.in) continue;  // read from the padding: nothing to give back
          const T* src = row + oy * w.out;
          T* dst = image + c * plane + iy * w.in;
          for (int64_t ox = x0; ox < x1; ++ox) dst[shift + ox * w.stride] += src[ox];
        }
      }
    }
  }
}

template void im2col<float>(const float*, int64_t, const WindowAxis&, const WindowAxis&, float*);
template void im2col<double>(const double*, int64_t, const WindowAxis&, const WindowAxis&, double*);
template void col2im<float>(const float*, int64_t, const WindowAxis&, const WindowAxis&, float*);
template void col2im<double>(const double*, int64_t, const WindowAxis&, const WindowAxis&, double*);

}  // namespace kiln::cpu
