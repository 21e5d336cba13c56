// Loading OpenBLAS on first use (see blas_loader.h).
#include "kiln/ops/cpu/blas_loader.h"

#include <dlfcn.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace kiln::cpu {
namespace blas {

CpuFeatures host_cpu_features() {
  CpuFeatures cpu;
#if defined(__x86_64__) || defined(__i386__)
  // __builtin_cpu_supports also checks that the OS saves the AVX-512 registers.
  __builtin_cpu_init();
  cpu.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  cpu.avx512_bf16 = cpu.avx512 && __builtin_cpu_supports("avx512bf16");
#endif
  return cpu;
}

Plan plan_load(const char* kiln_blas, const char* openblas_coretype, CpuFeatures cpu) {
  const std::string_view mode = kiln_blas ? kiln_blas : "";
  Plan plan;
  if (mode == "off" || mode == "0") {
    plan.reason = "KILN_BLAS=" + std::string(mode);
    return plan;
  }
  plan.load = true;
  plan.force = mode == "on" || mode == "1";
  // A core type the user chose stands; so does OpenBLAS's own detection on CPUs
  // without AVX-512, where there are no faster kernels to ask for.
  const bool user_chose = openblas_coretype && *openblas_coretype;
  if (!user_chose && cpu.avx512) plan.coretype = cpu.avx512_bf16 ? "Cooperlake" : "SkylakeX";
  return plan;
}

namespace {

// OpenBLAS's AVX-512 targets (openblas_get_corename()), in lower case.
bool is_avx512_core(std::string_view corename) {
  std::string lower(corename);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return lower == "skylakex" || lower == "cooperlake" || lower == "sapphirerapids";
}

}  // namespace

std::string reason_to_keep_eigen(std::string_view corename, bool eigen_uses_avx512) {
  if (!eigen_uses_avx512 || is_avx512_core(corename)) return {};
  return "it would run its " + std::string(corename) + " kernels, slower than Eigen's AVX-512 ones";
}

namespace {

constexpr const char* kLibraryName = "libopenblas.so.0";

// Eigen vectorises for AVX-512 exactly when the compiler targets it (-march=native on
// such a machine): Eigen/src/Core/util/ConfigureVectorization.h.
#ifdef __AVX512F__
constexpr bool kEigenUsesAvx512 = true;
#else
constexpr bool kEigenUsesAvx512 = false;
#endif

using SetNumThreadsFn = void (*)(int);
using GetStringFn = char* (*)();

// Environment variables set for a scope (only ones that are unset or empty), then
// put back as they were: OpenBLAS reads them while loading, and the process's
// environment is not ours to change for good.
class TemporaryEnvironment {
 public:
  TemporaryEnvironment() = default;
  TemporaryEnvironment(const TemporaryEnvironment&) = delete;
  TemporaryEnvironment& operator=(const TemporaryEnvironment&) = delete;
  ~TemporaryEnvironment() {
    for (const auto& [name, old] : saved_) {
      if (old) setenv(name.c_str(), old->c_str(), 1);
      else unsetenv(name.c_str());
    }
  }

  void set_if_unset(const char* name, const std::string& value) {
    const char* old = std::getenv(name);
    if (old && *old) return;
    saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
    setenv(name, value.c_str(), 1);
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

template <class Fn>
Fn symbol(void* handle, const char* name) {
  return reinterpret_cast<Fn>(dlsym(handle, name));
}

// "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Cooperlake MAX_THREADS=64" ->
// "OpenBLAS 0.3.21": the name and version, the first two words.
std::string name_and_version(const char* config) {
  const std::string_view s(config ? config : "OpenBLAS");
  const size_t first_space = s.find(' ');
  return std::string(s.substr(0, first_space == std::string_view::npos ? first_space : s.find(' ', first_space + 1)));
}

// What the one-time load leaves behind.
struct Loaded {
  Library library{};
  bool ok = false;
  std::string description;
};

Loaded keep_eigen(const std::string& why) { return Loaded{{}, false, "eigen (" + why + ")"}; }

Loaded load() {
  const char* user_coretype = std::getenv("OPENBLAS_CORETYPE");
  const Plan plan = plan_load(std::getenv("KILN_BLAS"), user_coretype, host_cpu_features());
  if (!plan.load) return keep_eigen(plan.reason);

  void* handle = nullptr;
  {
    TemporaryEnvironment env;
    if (!plan.coretype.empty()) env.set_if_unset("OPENBLAS_CORETYPE", plan.coretype);
    // No thread pool: kiln calls OpenBLAS on its own OpenMP threads.
    env.set_if_unset("OPENBLAS_NUM_THREADS", "1");
    handle = dlopen(kLibraryName, RTLD_NOW | RTLD_LOCAL);
  }
  if (handle == nullptr) {
    const char* why = dlerror();
    return keep_eigen(why ? why : "dlopen failed");
  }

  const auto sgemm = symbol<SgemmFn>(handle, "cblas_sgemm");
  const auto dgemm = symbol<DgemmFn>(handle, "cblas_dgemm");
  const auto set_num_threads = symbol<SetNumThreadsFn>(handle, "openblas_set_num_threads");
  const auto get_config = symbol<GetStringFn>(handle, "openblas_get_config");
  const auto get_corename = symbol<GetStringFn>(handle, "openblas_get_corename");  // optional
  if (!sgemm || !dgemm || !set_num_threads || !get_config) {
    dlclose(handle);
    return keep_eigen(std::string(kLibraryName) +
                      " lacks cblas_sgemm, cblas_dgemm, openblas_set_num_threads or openblas_get_config");
  }
  const std::string library = name_and_version(get_config());
  const std::string corename = get_corename ? get_corename() : "unknown";
  if (std::string why = reason_to_keep_eigen(corename, kEigenUsesAvx512); !why.empty() && !plan.force) {
    if (user_coretype && *user_coretype) why += std::string(" (OPENBLAS_CORETYPE=") + user_coretype + ")";
    dlclose(handle);
    return keep_eigen(library + " found, but " + why + "; KILN_BLAS=on uses it anyway");
  }
  // kiln cuts a large GEMM into one panel per OpenMP thread and hands each panel to
  // OpenBLAS, which must then stay on the calling thread (see gemm.cpp).
  set_num_threads(1);
  return Loaded{{sgemm, dgemm}, true, library + " (" + corename + " kernels, 1 thread per OpenMP thread)"};
}

const Loaded& loaded() {
  static std::once_flag once;
  static Loaded state;
  std::call_once(once, [] { state = load(); });
  return state;
}

}  // namespace

const Library* openblas() {
  const Loaded& l = loaded();
  return l.ok ? &l.library : nullptr;
}

}  // namespace blas

const char* gemm_backend() { return blas::loaded().description.c_str(); }

}  // namespace kiln::cpu
