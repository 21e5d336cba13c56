// cpemu: runs kiln's CUDA kernels (cuda/*.cu) on the CPU, so their indexing, synchronisation
// and logic can be checked against the CPU kernels on a machine without a GPU.
//
// This one header stands in for the CUDA runtime, cuda_bf16.h, cuda_fp16.h, math_constants.h,
// mma.h (WMMA) and kiln's cuda/check.h and cuda/stream.h (run.sh makes forwarding headers of those
// names). rewrite.py turns every `kernel<<<grid, block, smem, stream>>>(args)` into
// cpemu::launch_on(stream, ...).
//
// Model, and what it checks:
// - One launch runs its blocks one after another (in order, reversed or shuffled: block_order),
//   each with blockDim.x fibers (ucontext) on the launching OS thread, one per GPU thread: a
//   fiber runs until it waits at a barrier or ends, then the next runnable one runs. Grids may
//   be 2-D (blockIdx.y); blocks are 1-D.
// - __shared__ variables are static storage reused by each block; `extern __shared__` (dynamic
//   shared memory) is a per-launch buffer filled with 0xff bytes (NaN) before every block, so a
//   read of shared memory nobody wrote shows up as NaN.
// - __syncthreads is a block barrier, __syncwarp a warp barrier; warp shuffles exchange values
//   through a per-warp buffer between two warp barriers. A deadlock (every unfinished thread
//   waiting: a divergent barrier or shuffle) aborts with a message; every barrier checks that
//   all its participants called it from the same place (site
//   mismatches), and shuffles check that all 32 lanes asked for the same kind of exchange
//   (tag mismatches). Shuffle masks other than the full warp abort: they are not modelled.
// - Nothing models inter-block concurrency, warp lockstep execution, GPU math (host libm and
//   host rounding are used) or performance; see README.md.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <math.h>  // device code calls isfinite, log, expf, ... unqualified, as CUDA allows
#include <numeric>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <sys/mman.h>
#include <ucontext.h>

// ---- CUDA keywords -----------------------------------------------------------------------------

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __restrict__ __restrict

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
using uint3 = dim3;
inline thread_local uint3 blockIdx, threadIdx;
inline thread_local dim3 blockDim, gridDim;

// Device code calls min/max unqualified.
using std::max;
using std::min;

// ---- the runtime calls kiln makes --------------------------------------------------------------

typedef void* cudaStream_t;
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorCudartUnloading = 4,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorNotReady = 600,
};
enum cudaDeviceAttr {
  cudaDevAttrMemoryClockRate = 36,
  cudaDevAttrGlobalMemoryBusWidth = 37,
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };

// An H100's opt-in limit of dynamic shared memory per block (227 KiB), memory clock and bus.
constexpr int kCpemuMaxDynamicSmem = 232448, kCpemuMemoryClockKhz = 2619000, kCpemuBusBits = 5120;
// The memory the emulated device says it has; a larger cudaMalloc fails as on a GPU.
constexpr size_t kCpemuDeviceBytes = size_t(16) << 30;

// The calling thread's last error, as the runtime keeps it (read and cleared by cudaGetLastError).
inline thread_local cudaError_t cpemu_last_error = cudaSuccess;
inline cudaError_t cpemu_fail(cudaError_t e) { return cpemu_last_error = e; }
inline cudaError_t cudaGetLastError() {
  const cudaError_t e = cpemu_last_error;
  cpemu_last_error = cudaSuccess;
  return e;
}
inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int) {
  *value = attr == cudaDevAttrMemoryClockRate       ? kCpemuMemoryClockKhz
           : attr == cudaDevAttrGlobalMemoryBusWidth ? kCpemuBusBits
                                                     : kCpemuMaxDynamicSmem;
  return cudaSuccess;
}
template <class K> cudaError_t cudaFuncSetAttribute(K, cudaFuncAttribute, int) { return cudaSuccess; }
#ifndef CPEMU_FULL_RUNTIME
// For the kernel families (run.sh): device memory and host-mapped memory are both host
// memory, and work runs when it is queued. (The full runtime, cpemu_runtime.h, has its own.)
constexpr unsigned cudaHostAllocPortable = 1, cudaHostAllocMapped = 2;
inline cudaError_t cudaHostAlloc(void** p, size_t n, unsigned) {
  *p = std::malloc(n);
  return cudaSuccess;
}
inline cudaError_t cudaHostGetDevicePointer(void** device, void* host, unsigned) {
  *device = host;
  return cudaSuccess;
}
inline cudaError_t cudaMalloc(void** p, size_t n) {
  *p = nullptr;
  if (n > kCpemuDeviceBytes) return cpemu_fail(cudaErrorMemoryAllocation);
  *p = std::aligned_alloc(256, (n + 255) / 256 * 256 + 256 * (n == 0));  // CUDA aligns to 256 bytes
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t) {
  std::memset(p, v, n);
  return cudaSuccess;
}
#endif

#ifndef CPEMU_FULL_RUNTIME
// kiln's cuda/check.h and cuda/stream.h: errors abort, every device has one (null) stream.
// (suite.sh compiles the real ones, with CPEMU_FULL_RUNTIME.)
#define KILN_CUDA_CHECK(call)                                                  \
  do {                                                                         \
    if ((call) != cudaSuccess) {                                               \
      std::fprintf(stderr, "cpemu: %s failed\n", #call);                      \
      std::abort();                                                            \
    }                                                                          \
  } while (0)
namespace kiln::cuda {
inline cudaStream_t stream(int) { return nullptr; }
}  // namespace kiln::cuda
#endif

// math_constants.h (run.sh makes a forwarding header of that name): the constants kiln uses.
#define CUDART_INF HUGE_VAL
#define CUDART_INF_F HUGE_VALF

// ---- intrinsics --------------------------------------------------------------------------------

inline unsigned __float_as_uint(float f) {
  unsigned u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float __uint_as_float(unsigned u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline unsigned atomicCAS(unsigned* address, unsigned compare, unsigned value) {
  std::atomic_ref<unsigned>(*address).compare_exchange_strong(compare, value);
  return compare;  // the old value, as CUDA's
}
inline unsigned long long atomicMin(unsigned long long* address, unsigned long long value) {
  std::atomic_ref<unsigned long long> target(*address);
  unsigned long long old = target.load();
  while (value < old && !target.compare_exchange_weak(old, value)) {
  }
  return old;  // the old value, as CUDA's
}
inline void __threadfence_system() { std::atomic_thread_fence(std::memory_order_seq_cst); }

// cuda_bf16.h: __float2bfloat16_rn rounds to nearest even and turns any NaN into 0x7fff.
// Written independently of kiln's float_to_bf16 (it compares the two candidates instead of
// kiln's add-and-shift trick), so the cast checks compare two implementations.
struct __nv_bfloat16 {
  unsigned short x;
};
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.x; }
inline float __bfloat162float(__nv_bfloat16 b) { return __uint_as_float(unsigned(b.x) << 16); }
inline __nv_bfloat16 __float2bfloat16_rn(float v) {
  if (std::isnan(v)) return {0x7fff};
  uint32_t u;
  std::memcpy(&u, &v, 4);
  const uint32_t lo = u & 0xffff0000u, hi = lo + 0x10000u;  // truncation, and one ulp further from zero
  if ((lo & 0x7fffffffu) == 0x7f800000u) return {uint16_t(lo >> 16)};  // inf
  float flo, fhi;
  std::memcpy(&flo, &lo, 4);
  std::memcpy(&fhi, &hi, 4);
  const double dlo = std::fabs(double(v) - double(flo));
  const double dhi = std::isinf(fhi) ? std::fabs(double(v) - std::copysign(0x1p128, v))  // inf counts as 2^128
                                     : std::fabs(double(v) - double(fhi));
  const uint32_t r = dlo < dhi ? lo : dhi < dlo ? hi : (((lo >> 16) & 1) ? hi : lo);  // ties to even
  return {uint16_t(r >> 16)};
}

// cuda_fp16.h, through GCC's _Float16 (IEEE binary16, round to nearest even).
struct __half {
  unsigned short x;
};
inline __half __ushort_as_half(unsigned short u) { return __half{u}; }
inline unsigned short __half_as_ushort(__half h) { return h.x; }
inline float __half2float(__half h) {
  _Float16 f;
  std::memcpy(&f, &h.x, 2);
  return float(f);
}
inline __half __float2half_rn(float v) {
  const _Float16 f = static_cast<_Float16>(v);
  __half h;
  std::memcpy(&h.x, &f, 2);
  return h;
}

// ---- the emulator ------------------------------------------------------------------------------

namespace cpemu {

constexpr int kWarp = 32;

// Options the drivers set between launches.
inline int block_order = 0;     // 0 = in order, 1 = reversed, 2 = shuffled (each launch its own seed)
inline unsigned block_seed = 1;
inline unsigned grid_cap = 0;   // when > 0, grid.x is cut to this (exercises the grid-stride loops)

// What every launch adds up; finish() in drivers/common.h reports it.
struct Stats {
  std::atomic<int64_t> launches{0}, site_mismatches{0}, tag_mismatches{0}, partial_warps{0};
};
inline Stats stats;

[[noreturn]] inline void die(const char* what) {
  std::fprintf(stderr, "cpemu: %s\n", what);
  std::abort();
}

// The GPU threads of a block are fibers (ucontext) on the launching OS thread: each runs
// until it waits at a barrier or ends, then the next one runs. Switching is a function call,
// not an OS context switch, and which thread runs when is deterministic.
struct Barrier;
struct Fiber {
  ucontext_t context;
  void* stack = nullptr;
  bool done = false;
  const Barrier* waiting = nullptr;  // the barrier this fiber waits at, or nullptr
  uint64_t waiting_generation = 0;   // ... until its generation moves past this
};
struct Scheduler {
  ucontext_t host;
  std::vector<Fiber> fibers;
  int current = -1;
};
inline thread_local Scheduler* tls_scheduler = nullptr;

// A reusable barrier with a call-site check. Arriving last releases the others; arriving
// earlier suspends the calling fiber. A deadlock (every unfinished fiber waiting, at
// barriers that cannot complete) is found by the scheduler in launch().
struct Barrier {
  int count = 0, arrived = 0;
  uint64_t generation = 0;
  const void* site = nullptr;
  int site_mismatches = 0;
  const char* what = "";
  explicit Barrier(int n = 0, const char* w = "") : count(n), what(w) {}
  void wait(const void* call_site) {
    if (arrived == 0) site = call_site;
    else if (site != call_site) ++site_mismatches;
    if (++arrived == count) {
      arrived = 0;
      ++generation;
      return;
    }
    Scheduler& s = *tls_scheduler;
    Fiber& me = s.fibers[size_t(s.current)];
    me.waiting = this;
    me.waiting_generation = generation;
    swapcontext(&me.context, &s.host);  // back when the barrier completed
  }
};

// The exchange buffer of one warp's shuffles.
struct Warp {
  Barrier bar{kWarp, "warp-shuffle"};
  alignas(16) unsigned char buf[kWarp][16];
  int tag[kWarp];
};

struct BlockState {
  Barrier block_bar;
  std::vector<Warp> warps;
  explicit BlockState(int threads) : block_bar(threads, "__syncthreads"), warps((threads + kWarp - 1) / kWarp) {}
};
inline thread_local BlockState* tls_block = nullptr;
inline thread_local unsigned char* tls_dyn_smem = nullptr;

// `extern __shared__ unsigned char name[];` becomes `unsigned char* name = cpemu::dyn_smem();`.
inline unsigned char* dyn_smem() { return tls_dyn_smem; }

// One lane's part of a shuffle: publish v, wait for the warp, read the source lane's value
// (or keep v when the source is outside the caller's segment), wait again before the buffer
// is reused. `tag` names the kind of exchange; lanes that disagree are counted.
template <class T>
T shuffle(T v, int src_lane, bool keep_own, int tag, const void* site) {
  static_assert(sizeof(T) <= 16, "shuffle of a type wider than 16 bytes");
  const int lane = threadIdx.x % kWarp;
  Warp& w = tls_block->warps[threadIdx.x / kWarp];
  std::memcpy(w.buf[lane], &v, sizeof(T));
  w.tag[lane] = tag;
  w.bar.wait(site);
  T r = v;
  if (!keep_own) std::memcpy(&r, w.buf[src_lane], sizeof(T));
  for (int l = 0; l < kWarp; ++l)
    if (w.tag[l] != tag) {
      stats.tag_mismatches++;
      break;
    }
  w.bar.wait(site);
  return r;
}

inline void check_mask(unsigned mask) {
  if (mask != 0xffffffffu) die("a shuffle mask other than the full warp is not emulated");
}

// Fiber stacks: reserved once per OS thread and reused by every launch (pages are only
// committed when touched).
constexpr size_t kFiberStack = size_t(512) << 10;
inline void* fiber_stack(size_t i) {
  thread_local std::vector<void*> stacks;
  while (stacks.size() <= i) {
    void* p = mmap(nullptr, kFiberStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) die("cannot reserve a fiber stack");
    stacks.push_back(p);
  }
  return stacks[i];
}

inline thread_local const std::function<void()>* tls_kernel = nullptr;
inline void fiber_main() {
  (*tls_kernel)();
  tls_scheduler->fibers[size_t(tls_scheduler->current)].done = true;
}  // returns to the scheduler through uc_link

// What is wrong with a launch configuration (nullptr: nothing).
inline const char* config_error(dim3 grid, dim3 block, size_t smem) {
  if (grid.z != 1 || block.y != 1 || block.z != 1) return "only 1-D blocks and 1-D or 2-D grids are emulated";
  if (block.x == 0 || block.x > 1024 || grid.x == 0 || grid.x > 2147483647u || grid.y == 0 || grid.y > 65535)
    return "launch configuration out of CUDA's limits";
  if (smem > size_t(kCpemuMaxDynamicSmem)) return "dynamic shared memory above the 227 KiB limit";
  return nullptr;
}

// Runs a kernel now: every block, each thread a fiber (see the header).
template <class Kernel, class... Args>
void launch(dim3 grid, dim3 block, size_t smem, Kernel kernel, Args... args) {
  stats.launches++;
  if (const char* error = config_error(grid, block, smem)) die(error);
  if (block.x % kWarp) stats.partial_warps++;
  if (grid_cap && grid.x > grid_cap) grid.x = grid_cap;

  std::vector<unsigned char> dyn(smem + 128);  // 128-byte aligned, as CUDA's (so WMMA's alignment checks hold)
  unsigned char* dyn_base = dyn.data() + (128 - reinterpret_cast<uintptr_t>(dyn.data()) % 128) % 128;

  std::vector<unsigned> order(size_t(grid.x) * grid.y);  // linear block id = y * grid.x + x
  std::iota(order.begin(), order.end(), 0u);
  if (block_order == 1) std::reverse(order.begin(), order.end());
  if (block_order == 2) {
    std::mt19937 rng(block_seed++);
    std::shuffle(order.begin(), order.end(), rng);
  }

  const int threads = int(block.x);
  BlockState state(threads);
  Scheduler scheduler;
  scheduler.fibers.resize(size_t(threads));
  const std::function<void()> body = [&] { kernel(args...); };
  Scheduler* const outer_scheduler = tls_scheduler;  // a launch from inside a kernel is not CUDA, but stay sane
  const std::function<void()>* const outer_kernel = tls_kernel;
  tls_scheduler = &scheduler;
  tls_kernel = &body;
  tls_block = &state;
  tls_dyn_smem = smem ? dyn_base : nullptr;
  blockDim = block;
  gridDim = grid;
  for (size_t n = 0; n < order.size(); ++n) {
    const unsigned b = order[n];
    blockIdx = uint3(b % grid.x, b / grid.x, 0);
    // Threads run in index order in even blocks and in reverse in odd ones, so a read of
    // another thread's write that lacks a barrier runs before that write in some block.
    const bool reversed = n % 2 == 1;
    if (smem) std::memset(dyn_base, 0xff, smem);  // poison: unwritten reads are NaN
    for (int t = 0; t < threads; ++t) {
      Fiber& f = scheduler.fibers[size_t(t)];
      f.done = false;
      f.waiting = nullptr;
      getcontext(&f.context);
      f.context.uc_stack.ss_sp = fiber_stack(size_t(t));
      f.context.uc_stack.ss_size = kFiberStack;
      f.context.uc_link = &scheduler.host;
      makecontext(&f.context, fiber_main, 0);
    }
    // Round robin over the fibers that can run, until all are done.
    for (;;) {
      int unfinished = 0, ran = 0;
      for (int i = 0; i < threads; ++i) {
        const int t = reversed ? threads - 1 - i : i;
        Fiber& f = scheduler.fibers[size_t(t)];
        if (f.done) continue;
        ++unfinished;
        if (f.waiting && f.waiting->generation == f.waiting_generation) continue;  // still waiting
        f.waiting = nullptr;
        scheduler.current = t;
        threadIdx = uint3(unsigned(t), 0, 0);
        swapcontext(&scheduler.host, &f.context);
        ++ran;
      }
      if (unfinished == 0) break;
      if (ran == 0) {
        const Fiber* stuck = nullptr;
        for (const Fiber& f : scheduler.fibers)
          if (!f.done) stuck = &f;
        std::fprintf(stderr, "cpemu: DEADLOCK in block %u,%u: every unfinished thread waits (one at a %s barrier): "
                     "a divergent barrier or shuffle?\n", blockIdx.x, blockIdx.y, stuck->waiting->what);
        std::abort();
      }
    }
  }
  tls_scheduler = outer_scheduler;
  tls_kernel = outer_kernel;
  tls_block = nullptr;
  stats.site_mismatches += state.block_bar.site_mismatches;
  for (auto& w : state.warps) stats.site_mismatches += w.bar.site_mismatches;
}

#ifdef CPEMU_FULL_RUNTIME
// Queues `work` on `stream` (nullptr: the legacy default stream); cpemu_runtime.h.
inline void enqueue(cudaStream_t stream, std::function<void()> work);
#endif

// kernel<<<grid, block, smem, stream>>>(args...), as rewrite.py emits it. With the full
// runtime (suite.sh) the launch is queued on its stream, its arguments copied as CUDA copies
// them, and runs when the host waits for that stream; for the kernel families (run.sh) it
// runs at once.
template <class Kernel, class... Args>
void launch_on(cudaStream_t stream, dim3 grid, dim3 block, size_t smem, Kernel kernel, Args... args) {
#ifdef CPEMU_FULL_RUNTIME
  // A bad configuration is an error of the launch itself, as CUDA's (cudaGetLastError
  // returns it, and KILN_CUDA_LAUNCH_CHECK turns it into a kiln::Error at the launch).
  if (const char* error = config_error(grid, block, smem)) {
    std::fprintf(stderr, "cpemu: %s\n", error);
    cpemu_fail(cudaErrorInvalidConfiguration);
    return;
  }
  enqueue(stream, [=] { launch(grid, block, smem, kernel, args...); });
#else
  (void)stream;
  launch(grid, block, smem, kernel, args...);
#endif
}

}  // namespace cpemu

// Barriers and shuffles are not inlined, so their return address identifies the call site.
__attribute__((noinline)) inline void __syncthreads() {
  cpemu::tls_block->block_bar.wait(__builtin_return_address(0));
}
template <class T>
__attribute__((noinline)) T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  cpemu::check_mask(mask);
  const int lane = threadIdx.x % 32, src = lane ^ lane_mask;
  // CUDA: a source outside the caller's width-segment returns the caller's own value.
  const bool own = (src / width) != (lane / width) || src >= 32;
  return cpemu::shuffle(v, src, own, 1000 + lane_mask, __builtin_return_address(0));
}
template <class T>
__attribute__((noinline)) T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
  cpemu::check_mask(mask);
  const int lane = threadIdx.x % 32, src = (lane / width) * width + (src_lane % width);
  return cpemu::shuffle(v, src, false, 3000, __builtin_return_address(0));
}

__attribute__((noinline)) inline void __syncwarp(unsigned mask = 0xffffffffu) {
  cpemu::check_mask(mask);
  cpemu::tls_block->warps[threadIdx.x / 32].bar.wait(__builtin_return_address(0));
}

// ---- mma.h: WMMA (warp matrix multiply-accumulate) ------------------------------------------
// A fragment's element layout over the lanes is opaque in CUDA, so kernels may only fill,
// load, multiply and store fragments, never index them: the emulation lets every lane hold
// the whole tile. Loads read the whole tile in every lane; a store writes, from each lane,
// the elements whose index is the lane's modulo 32, so the warp's lanes together write the
// tile once, as on the hardware, and a reader must __syncwarp first. Products accumulate in
// float (bf16 x bf16 products are exact in float; the summation order is the host's).
// Checked: pointers 32-byte aligned and leading dimensions a multiple of 16 bytes (CUDA's
// rules for load/store_matrix_sync).
namespace nvcuda::wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  static constexpr int rows = std::is_same_v<Use, matrix_b> ? K : M;
  static constexpr int cols = std::is_same_v<Use, matrix_a> ? K : N;
  static constexpr int num_elements = rows * cols;
  float v[rows * cols];  // row-major, whatever the memory layout
};

namespace detail {
inline float to_float(float x) { return x; }
inline float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
inline float to_float(__half x) { return __half2float(x); }
template <class T> void check_access(const T* p, unsigned ldm) {
  if (reinterpret_cast<uintptr_t>(p) % 32) cpemu::die("WMMA load/store from a pointer that is not 32-byte aligned");
  if ((ldm * sizeof(T)) % 16) cpemu::die("WMMA leading dimension not a multiple of 16 bytes");
}
}  // namespace detail

template <class Use, int M, int N, int K, class T, class Layout>
void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, float value) {
  for (float& e : f.v) e = value;
}

// matrix_a / matrix_b: the layout is the fragment's type.
template <class Use, int M, int N, int K, class T, class Layout>
void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const T* p, unsigned ldm) {
  static_assert(std::is_same_v<Layout, row_major> || std::is_same_v<Layout, col_major>);
  detail::check_access(p, ldm);
  using F = fragment<Use, M, N, K, T, Layout>;
  for (int r = 0; r < F::rows; ++r)
    for (int c = 0; c < F::cols; ++c)
      f.v[r * F::cols + c] = detail::to_float(std::is_same_v<Layout, row_major> ? p[r * ldm + c] : p[c * ldm + r]);
}
template <int M, int N, int K>
void load_matrix_sync(fragment<accumulator, M, N, K, float>& f, const float* p, unsigned ldm, layout_t layout) {
  detail::check_access(p, ldm);
  for (int r = 0; r < M; ++r)
    for (int c = 0; c < N; ++c) f.v[r * N + c] = layout == mem_row_major ? p[r * ldm + c] : p[c * ldm + r];
}
template <int M, int N, int K>
void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float>& f, unsigned ldm, layout_t layout) {
  detail::check_access(p, ldm);
  for (int e = threadIdx.x % 32; e < M * N; e += 32) {
    const int r = e / N, c = e % N;
    (layout == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = f.v[e];
  }
}
// d = a b + c (d may be c).
template <int M, int N, int K, class T, class LA, class LB>
void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, T, LA>& a,
              const fragment<matrix_b, M, N, K, T, LB>& b, const fragment<accumulator, M, N, K, float>& c) {
  float out[M * N];
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      float acc = c.v[m * N + n];
      for (int k = 0; k < K; ++k) acc += a.v[m * K + k] * b.v[k * N + n];
      out[m * N + n] = acc;
    }
  std::memcpy(d.v, out, sizeof out);
}
}  // namespace nvcuda::wmma

#ifdef CPEMU_FULL_RUNTIME
#include "cpemu_runtime.h"
#endif
