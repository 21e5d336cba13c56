// kiln::Error and the KILN_CHECK macro: every user mistake becomes an exception
// whose message names the op and the shapes/dtypes involved, never an abort.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace kiln {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
// Concatenates anything streamable: str("matmul: ", 3, " != ", 4).
template <class... Args>
std::string str(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace kiln

// KILN_CHECK(cond, "op: message ", value, ...) throws kiln::Error when cond is false.
// The message is only built on failure, so checks are free on the happy path.
#define KILN_CHECK(cond, ...)                                   \
  do {                                                          \
    if (!(cond)) throw ::kiln::Error(::kiln::detail::str(__VA_ARGS__)); \
  } while (0)
