#!/usr/bin/env bash
# Runs each reader's fuzzer for a set time: `make fuzz` calls it after building.
#
#   fuzz/run_fuzzers.sh BUILD_DIR SECONDS [READER ...]     (default: every reader)
#
# Each fuzzer starts from the seeds in fuzz/corpus/<reader>/ and the inputs that once
# crashed it (fuzz/regressions/<reader>/); what it discovers goes to
# BUILD_DIR/fuzz-corpus/<reader>/, so the repository's seed folders stay small. A crash,
# leak, sanitizer report, timeout or over-allocation leaves its input in
# BUILD_DIR/fuzz-artifacts/ and makes this script fail. The last lines of each run
# (libFuzzer's "Done N runs in S second(s)") are the figures docs/reliability.md quotes.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 BUILD_DIR SECONDS [READER ...]" >&2
  exit 2
fi
build_dir=$1
seconds=$2
shift 2
readers=("$@")
[ ${#readers[@]} -gt 0 ] || readers=(safetensors checkpoint mnist cifar corpus)
fuzz_dir=$(cd "$(dirname "$0")" && pwd)

# Largest input tried: a few records/tensors are enough to reach every check, and small
# inputs keep the fuzzer fast. CIFAR needs room for two 3073-byte records.
max_len_for() {
  case $1 in
    cifar) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

mkdir -p "$build_dir/fuzz-artifacts"
status=0
for reader in "${readers[@]}"; do
  program="$build_dir/fuzz/fuzz_$reader"
  [ -x "$program" ] || { echo "fuzz: $program is not built (configure with -DKILN_FUZZ=ON)" >&2; exit 2; }
  corpus="$build_dir/fuzz-corpus/$reader"
  mkdir -p "$corpus"
  seeds=("$fuzz_dir/corpus/$reader")
  [ -d "$fuzz_dir/regressions/$reader" ] && seeds+=("$fuzz_dir/regressions/$reader")
  dict=()
  [ -f "$fuzz_dir/$reader.dict" ] && dict=(-dict="$fuzz_dir/$reader.dict")
  echo "== fuzz_$reader for ${seconds}s"
  # malloc_limit_mb: inputs are at most a few KB, so any single allocation above 64 MB
  # is a header value trusted before it was checked: libFuzzer reports it as a crash.
  # One OpenMP thread: the readers' inputs are too small for the parallel loops anyway.
  log="$build_dir/fuzz-$reader.log"
  if ! OMP_NUM_THREADS=1 "$program" "$corpus" "${seeds[@]}" "${dict[@]}" \
      -max_total_time="$seconds" -max_len="$(max_len_for "$reader")" \
      -rss_limit_mb=2048 -malloc_limit_mb=64 -timeout=10 \
      -artifact_prefix="$build_dir/fuzz-artifacts/$reader-" -print_final_stats=1 >"$log" 2>&1; then
    grep -E "ERROR|SUMMARY|Test unit written" "$log" >&2 || true
    echo "fuzz_$reader FAILED: see $log and $build_dir/fuzz-artifacts/" >&2
    status=1
  fi
  grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb)" "$log" || true
done
exit $status
