// How much memory this process holds, as the benchmarks and the memory tests report it.
#pragma once

#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>

namespace kiln::bench {

// The resident set now, in bytes (the second field of /proc/self/statm counts pages).
inline int64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t total_pages = 0, resident_pages = 0;
  statm >> total_pages >> resident_pages;
  return resident_pages * static_cast<int64_t>(::sysconf(_SC_PAGESIZE));
}

// The process's high-water mark of resident memory, in MB (getrusage; Linux reports KiB).
inline double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

inline double to_mib(int64_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

}  // namespace kiln::bench
