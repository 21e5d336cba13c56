// What every driver shares: random inputs, the comparison of an emulated CUDA result with
// the CPU kernel's, one printed line per check, and the final summary.
#pragma once

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "cpemu.h"
#include "kiln/core/dtype.h"

// ---- inputs ----------------------------------------------------------------------------------

inline std::mt19937_64 rng(12345);  // fixed seed: every run checks the same data

template <class T> std::vector<T> normal(int64_t n, double sd = 1) {
  std::normal_distribution<double> N(0, sd);
  std::vector<T> v(n);
  for (auto& e : v) e = T(N(rng));
  return v;
}
template <class T> std::vector<T> unif(int64_t n, double lo, double hi) {
  std::uniform_real_distribution<double> U(lo, hi);
  std::vector<T> v(n);
  for (auto& e : v) e = T(U(rng));
  return v;
}
template <class T> std::vector<T> ints(int64_t n, int lo, int hi) {
  std::uniform_int_distribution<int> U(lo, hi);
  std::vector<T> v(n);
  for (auto& e : v) e = T(U(rng));
  return v;
}
// Output buffers start as all-ones bytes (NaN for floats), so an element the kernel should
// have written but did not shows up.
template <class T> std::vector<T> poison(int64_t n) {
  std::vector<T> v(n);
  std::memset(v.data(), 0xff, n * sizeof(T));
  return v;
}
template <class T> T nan_of() {
  if constexpr (std::is_floating_point_v<T>) return std::numeric_limits<T>::quiet_NaN();
  else return T(0x5eadbeef5eadbeefLL);  // poison for integer outputs
}
template <class T> T inf_of() { return std::numeric_limits<T>::infinity(); }
template <class T> constexpr const char* tname() {
  if constexpr (std::is_same_v<T, float>) return "f32";
  else if constexpr (std::is_same_v<T, double>) return "f64";
  else if constexpr (std::is_same_v<T, int64_t>) return "i64";
  else if constexpr (std::is_same_v<T, uint8_t>) return "u8";
  else if constexpr (std::is_same_v<T, kiln::bfloat16>) return "bf16";
  else if constexpr (std::is_same_v<T, kiln::float16>) return "f16";
  else if constexpr (std::is_same_v<T, uint16_t>) return "u16";
  else if constexpr (std::is_same_v<T, uint32_t>) return "u32";
  else return "u64";
}

// ---- comparison ------------------------------------------------------------------------------

// A failure is a NaN/inf where the other side has none, or an element outside
// atol + rtol * |cpu| (worst_ratio > 1).
struct Diff {
  double max_abs = 0, worst_ratio = 0;
  int64_t nan_mismatch = 0, n = 0;
  bool ok() const { return nan_mismatch == 0 && worst_ratio <= 1; }
};
template <class T> Diff compare(const T* gpu, const T* cpu, int64_t n, double atol, double rtol) {
  Diff d;
  d.n = n;
  for (int64_t i = 0; i < n; ++i) {
    const double a = double(gpu[i]), b = double(cpu[i]);
    if (std::isnan(a) || std::isnan(b)) {
      if (!(std::isnan(a) && std::isnan(b))) d.nan_mismatch++;
      continue;
    }
    if (a == b) continue;  // also inf == inf
    const double e = std::fabs(a - b);
    if (std::isinf(e)) {  // inf against a finite value
      d.nan_mismatch++;
      continue;
    }
    d.max_abs = std::max(d.max_abs, e);
    d.worst_ratio = std::max(d.worst_ratio, e / (atol + rtol * std::fabs(b)));
  }
  return d;
}
template <class T> Diff compare(const std::vector<T>& gpu, const std::vector<T>& cpu, double atol, double rtol) {
  if (gpu.size() != cpu.size()) return Diff{0, 0, 1, int64_t(cpu.size())};
  return compare(gpu.data(), cpu.data(), int64_t(cpu.size()), atol, rtol);
}
template <class T> bool bitwise_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}
// A check that is pass/fail only (bitwise equality, a property): a Diff that fails when !ok.
inline Diff exact(bool ok, int64_t n) { return Diff{0, 0, ok ? 0 : 1, n}; }

// ---- reporting -------------------------------------------------------------------------------

inline int failures = 0, checks = 0;

// One line per check: case, output, size, largest difference, ratio to the tolerance, verdict.
inline bool report(const std::string& name, const char* what, const Diff& d) {
  ++checks;
  if (!d.ok()) ++failures;
  std::printf("%-72s %-10s n=%-8lld max|diff| %-10.3g tol-ratio %-8.3g %s%s\n", name.c_str(), what, (long long)d.n,
              d.max_abs, d.worst_ratio, d.nan_mismatch ? ("mismatches " + std::to_string(d.nan_mismatch) + " ").c_str() : "",
              d.ok() ? "ok" : "FAIL");
  std::fflush(stdout);
  return d.ok();
}
template <class T>
bool report(const std::string& kernel, const std::string& cas, const char* what, const std::vector<T>& gpu,
            const std::vector<T>& cpu, double atol, double rtol) {
  return report(kernel + " " + cas, what, compare(gpu, cpu, atol, rtol));
}

// The summary line run.sh collects; a barrier or shuffle reached from different call sites
// by the threads of one block counts as a failure too. Returns main's exit status.
inline int finish(const char* family) {
  const long long sites = cpemu::stats.site_mismatches.load(), tags = cpemu::stats.tag_mismatches.load();
  if (sites) std::printf("FAIL: %lld barriers reached from different call sites\n", sites), ++failures;
  if (tags) std::printf("FAIL: %lld shuffles where the lanes asked for different exchanges\n", tags), ++failures;
  std::printf("%s: %d checks, %lld launches, %lld with a partial warp; %d failures\n", family, checks,
              (long long)cpemu::stats.launches.load(), (long long)cpemu::stats.partial_warps.load(), failures);
  return failures ? 1 : 0;
}
