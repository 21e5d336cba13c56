// Uses an installed kiln the way an application would: build a tensor, run backward,
// check the gradient. Exits non-zero (and says why) if anything is off.
#include <kiln/kiln.h>
#include <kiln/cuda/device.h>

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
  using namespace kiln;
  // loss = sum(x * x * 3), so d loss / dx = 6x.
  Tensor x = from_vector<double>({1.0, -2.0, 0.5}).requires_grad_();
  Tensor loss = sum(x * x * 3.0);
  loss.backward();

  const std::vector<double> grad = x.grad().to_vector<double>();
  const std::vector<double> expected = {6.0, -12.0, 3.0};
  for (size_t i = 0; i < expected.size(); ++i) {
    if (std::fabs(grad[i] - expected[i]) > 1e-12) {
      std::printf("kiln_consumer: grad[%zu] = %g, expected %g\n", i, grad[i], expected[i]);
      return 1;
    }
  }
  std::printf("kiln_consumer: loss %g, gradient ok; CUDA %s\n", loss.item<double>(),
              cuda::is_available() ? "available" : cuda::unavailable_reason().c_str());
  return 0;
}
