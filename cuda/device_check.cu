// The check kernels and the per-device failure report (see device_check.h).
#include "kiln/cuda/device_check.h"

#include <atomic>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "kiln/core/error.h"
#include "kiln/cuda/launch.cuh"

namespace kiln::cuda {

namespace {

// The first failure recorded on a device. Lives in pinned host memory mapped into the
// device's address space: a kernel writes it with plain stores, the host reads it after a
// synchronisation. A check runs in two kernels: one thread per value finds the lowest bad
// position (atomicMin in device memory), then one thread writes that value's failure,
// unless an earlier check's failure is still waiting to be raised (a flag in device
// memory; atomics on mapped host memory are not guaranteed over PCIe). So the report
// names what the CPU's check names: the first bad value of the first failing op.
enum class CheckKind : int { index_range, positive };

struct CheckFailure {
  unsigned long long claimed;  // 0 = nothing recorded; the recording thread sets 1 once the fields are written
  unsigned long long op, what;  // host pointers to string literals
  CheckKind kind;
  long long value, position, lo, hi, exempt;  // index_range
  int has_exempt;
  double real_value;                          // positive
  unsigned long long context;  // the check's number in its device's Contexts; 0 = none
};

// The words a check adds after its message ("for dim 0 of weight ..."), kept for the last
// kKept checks of a device that gave any: a failure carries its check's number, and the
// raise finds the words while they are kept (a failure is raised at the next host wait,
// normally a few checks later; one raised after kKept more is reported without them).
struct Contexts {
  static constexpr size_t kKept = 1024;
  std::mutex mutex;
  unsigned long long next = 1;
  std::vector<std::pair<unsigned long long, std::string>> kept{kKept};

  unsigned long long remember(const std::string& words) {
    if (words.empty()) return 0;
    std::lock_guard<std::mutex> lock(mutex);
    const unsigned long long number = next++;
    kept[number % kKept] = {number, words};
    return number;
  }
  std::string find(unsigned long long number) {
    if (number == 0) return "";
    std::lock_guard<std::mutex> lock(mutex);
    const auto& [kept_number, words] = kept[number % kKept];
    return kept_number == number ? words : "";
  }
};

// Per device, created on first use: the report's host and mapped addresses, and in device
// memory the flag "a failure is waiting" and the lowest bad position of the running check.
struct Report {
  CheckFailure* host = nullptr;
  CheckFailure* mapped = nullptr;
  unsigned int* claim = nullptr;
  unsigned long long* first_bad = nullptr;  // kNoneBad between checks
  Contexts* contexts = nullptr;
};

constexpr unsigned long long kNoneBad = ~0ull;

struct Reports {
  std::mutex mutex;
  std::vector<Report> by_device;
};

Reports& reports() {
  static Reports* r = new Reports;  // never destroyed: kernels may still write at exit
  return *r;
}

// Reports are created on first use and never destroyed, so each thread remembers the ones it
// has seen and the common case (a check per embedding, a look at every copy to the host)
// takes no lock, as stream() does. `any_report` lets a process that never queued a check
// skip even that.
std::atomic<bool> any_report{false};
thread_local std::vector<Report> seen_reports;

// The device's report, or an empty one (host == nullptr) when no check ran there yet.
Report find_report(int device) {
  if (static_cast<size_t>(device) < seen_reports.size() && seen_reports[device].host) return seen_reports[device];
  Reports& r = reports();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (r.by_device.size() <= static_cast<size_t>(device) || r.by_device[device].host == nullptr) return {};
  if (seen_reports.size() <= static_cast<size_t>(device)) seen_reports.resize(device + 1);
  return seen_reports[device] = r.by_device[device];
}

// The device's report, created on first use.
Report report(int device) {
  if (const Report found = find_report(device); found.host) return found;
  Reports& r = reports();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (r.by_device.size() <= static_cast<size_t>(device)) r.by_device.resize(device + 1);
  Report& slot = r.by_device[device];
  if (slot.host == nullptr) {
    cudaStream_t s = stream(device);  // makes `device` current (and checks it exists)
    void* host = nullptr;
    KILN_CUDA_CHECK(cudaHostAlloc(&host, sizeof(CheckFailure), cudaHostAllocMapped | cudaHostAllocPortable));
    *static_cast<CheckFailure*>(host) = CheckFailure{};
    void* mapped = nullptr;
    KILN_CUDA_CHECK(cudaHostGetDevicePointer(&mapped, host, 0));
    // One allocation for both device words: the position first (8-byte aligned), then the flag.
    void* words = nullptr;
    KILN_CUDA_CHECK(cudaMalloc(&words, sizeof(unsigned long long) + sizeof(unsigned int)));
    auto* first_bad = static_cast<unsigned long long*>(words);
    auto* claim = reinterpret_cast<unsigned int*>(first_bad + 1);
    KILN_CUDA_CHECK(cudaMemsetAsync(first_bad, 0xff, sizeof(unsigned long long), s));  // kNoneBad
    KILN_CUDA_CHECK(cudaMemsetAsync(claim, 0, sizeof(unsigned int), s));
    slot = {static_cast<CheckFailure*>(host), static_cast<CheckFailure*>(mapped), claim, first_bad,
            new Contexts};  // never freed, as the report
    any_report.store(true, std::memory_order_release);
  }
  return slot;
}

// Pass 1, one thread per value (grid-stride): the lowest position whose value fails.
__global__ void find_bad_index_kernel(const int64_t* index, int64_t n, int64_t lo, int64_t hi, bool has_exempt,
                                      int64_t exempt, unsigned long long* first_bad) {
  for (int64_t k = global_thread(); k < n; k += grid_stride()) {
    const int64_t v = index[k];
    if ((v >= lo && v < hi) || (has_exempt && v == exempt)) continue;
    atomicMin(first_bad, static_cast<unsigned long long>(k));
    return;  // this thread's later positions are higher
  }
}

template <class T>
__global__ void find_non_positive_kernel(const T* x, int64_t n, unsigned long long* first_bad) {
  for (int64_t k = global_thread(); k < n; k += grid_stride()) {
    if (x[k] > T(0)) continue;  // NaN fails too
    atomicMin(first_bad, static_cast<unsigned long long>(k));
    return;
  }
}

// Pass 2, one thread: writes the failure at the lowest bad position into the report,
// unless one is already waiting there, and gets first_bad ready for the next check.
// `failure_template` holds the check's constant fields.
template <class V>
__global__ void record_failure_kernel(const V* values, CheckFailure failure_template, unsigned long long* first_bad,
                                      unsigned int* claim, CheckFailure* failure) {
  const unsigned long long position = *first_bad;
  if (position == kNoneBad) return;
  *first_bad = kNoneBad;
  if (*claim != 0u) return;  // the earlier failure is reported first
  *claim = 1u;
  CheckFailure found = failure_template;
  found.position = static_cast<long long>(position);
  if constexpr (std::is_same_v<V, int64_t>) {
    found.value = values[position];
  } else {
    found.real_value = static_cast<double>(values[position]);
  }
  *failure = found;
  __threadfence_system();  // the fields reach the host before the flag that says they are there
  failure->claimed = 1;
}

// The constant fields of a check's failure.
CheckFailure failure_template(CheckKind kind, const char* op, const char* what) {
  CheckFailure t{};
  t.kind = kind;
  t.op = reinterpret_cast<unsigned long long>(op);
  t.what = reinterpret_cast<unsigned long long>(what);
  return t;
}

}  // namespace

void check_index_range(const char* op, const char* what, const int64_t* index, int64_t n, int64_t lo, int64_t hi,
                       bool has_exempt, int64_t exempt, int device, const std::string& context) {
  if (n == 0) return;
  CheckFailure t = failure_template(CheckKind::index_range, op, what);
  t.lo = lo;
  t.hi = hi;
  t.has_exempt = has_exempt;
  t.exempt = exempt;
  const Report r = report(device);
  t.context = r.contexts->remember(context);
  const cudaStream_t s = stream(device);
  find_bad_index_kernel<<<blocks_for(n), kThreadsPerBlock, 0, s>>>(index, n, lo, hi, has_exempt, exempt, r.first_bad);
  KILN_CUDA_LAUNCH_CHECK();
  record_failure_kernel<int64_t><<<1, 1, 0, s>>>(index, t, r.first_bad, r.claim, r.mapped);
  KILN_CUDA_LAUNCH_CHECK();
}

template <class T>
void check_positive(const char* op, const char* what, const T* x, int64_t n, int device) {
  if (n == 0) return;
  const Report r = report(device);
  const cudaStream_t s = stream(device);
  find_non_positive_kernel<T><<<blocks_for(n), kThreadsPerBlock, 0, s>>>(x, n, r.first_bad);
  KILN_CUDA_LAUNCH_CHECK();
  record_failure_kernel<T><<<1, 1, 0, s>>>(x, failure_template(CheckKind::positive, op, what), r.first_bad, r.claim,
                                           r.mapped);
  KILN_CUDA_LAUNCH_CHECK();
}

template void check_positive<float>(const char*, const char*, const float*, int64_t, int);
template void check_positive<double>(const char*, const char*, const double*, int64_t, int);

void raise_device_check_failure(int device) {
  // Read and clear under the lock, so two host threads that synchronise the same device
  // cannot both throw one failure.
  // Unlocked first: nearly always there is nothing to report.
  if (!any_report.load(std::memory_order_acquire)) return;
  const Report r = find_report(device);
  const auto claimed = [&] { return reinterpret_cast<volatile unsigned long long&>(r.host->claimed) != 0; };
  if (r.host == nullptr || !claimed()) return;
  CheckFailure f;
  {
    std::lock_guard<std::mutex> lock(reports().mutex);
    if (!claimed()) return;  // another thread reported it meanwhile
    f = *r.host;
    // The host's flag first, then the device's: no kernel writes the report while the
    // device flag is set, so a check queued by another thread cannot record a failure
    // that this clear would then erase. If the clear cannot be queued, the report stays.
    reinterpret_cast<volatile unsigned long long&>(r.host->claimed) = 0;
    if (const cudaError_t e = cudaMemsetAsync(r.claim, 0, sizeof(unsigned int), stream(device)); e != cudaSuccess) {
      reinterpret_cast<volatile unsigned long long&>(r.host->claimed) = 1;
      KILN_CUDA_CHECK(e);
    }
  }
  const std::string problem =
      f.kind == CheckKind::index_range
          ? kiln::detail::str(f.value, " at position ", f.position, " is out of range [", f.lo, ", ", f.hi, ")",
                              f.has_exempt ? kiln::detail::str(" and is not ", f.exempt) : std::string(),
                              r.contexts->find(f.context))
          : kiln::detail::str(f.real_value, " at position ", f.position, " must be > 0 (and not NaN)");
  throw Error(kiln::detail::str(reinterpret_cast<const char*>(f.op), ": ", reinterpret_cast<const char*>(f.what), " ",
                                problem, " (found on cuda:", device,
                                " by a check kernel; reported at the first synchronisation after the op)"));
}

}  // namespace kiln::cuda
