#include "kiln/core/autocast.h"

namespace kiln {

namespace {
thread_local bool t_autocast_enabled = false;
}  // namespace

bool Autocast::is_enabled() { return t_autocast_enabled; }
void Autocast::set_enabled(bool enabled) { t_autocast_enabled = enabled; }

bool Autocast::applies_to(const Tensor& t) {
  return t_autocast_enabled && t.defined() && t.dtype() == f32 && t.device().is_cuda();
}

}  // namespace kiln
