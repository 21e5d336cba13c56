#!/usr/bin/env bash
# Runs the [cuda] test cases on a machine without a GPU, with Device::cuda() mapped to the
# CPU, to check the TEST CODE before a GPU session spends its time on it: shapes, API use,
# reference computations, tolerances on the CPU side. It checks no CUDA kernel (for those:
# tools/cuda_emulator/) and no GPU behaviour.
#
#   tools/cuda_dry_run/run.sh [--keep]     # about 3 minutes on 2 cores (ccache helps)
#
# How: a throwaway git worktree of HEAD in /tmp (your checkout is not touched), three lines
# patched there (Device::cuda() returns the CPU; skip_without_gpu() never skips; autocast
# applies to CPU tensors), a
# CPU-only build of kiln_tests, then `kiln_tests --source-file='*test_cuda*'`.
#
# Cases that test device-specific behaviour fail there by design (a copy to "the GPU" is no
# copy, so in-place updates alias; errors the GPU reports at the next synchronisation come
# at once on the CPU; bf16 compute and autocast exist only on the GPU; ...). They are
# listed in expected_failures.txt; the script prints any OTHER failing case and exits 1.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/tools/cuda_dry_run"
tree=/tmp/kiln-cuda-dry-run
keep=0
[ "${1:-}" = "--keep" ] && keep=1

cd "$root"
git worktree remove --force "$tree" 2>/dev/null || rm -rf "$tree"
git worktree add -q --detach "$tree" HEAD
cleanup() { [ $keep = 1 ] || git -C "$root" worktree remove --force "$tree"; }
trap cleanup EXIT
[ -d .deps ] && cp -r .deps "$tree/"

cd "$tree"
sed -i 's|static Device cuda(int index = 0) { return {DeviceType::cuda, index}; }|static Device cuda(int index = 0) { (void)index; return {DeviceType::cpu, 0}; }|' core/device.h
sed -i 's|  if (cuda::is_available()) return false;|  return false;|' tests/cuda_parity.h
# Autocast's products then run on the "GPU" tensors (the CPU), so their graph and gradients
# are checked too (bf16 operands, f32 sums: the GPU's arithmetic up to the order of the sums).
sed -i 's|t.dtype() == f32 \&\& t.device().is_cuda();|t.dtype() == f32;|' core/autocast.cpp
[ "$(git diff --numstat | wc -l)" = 3 ] || { echo "cuda_dry_run: the three patched lines moved; update run.sh" >&2; exit 2; }

export CCACHE_BASEDIR="$tree"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_CUDA=OFF -DKILN_BUILD_EXAMPLES=OFF \
  -DKILN_BUILD_BENCH=OFF > /tmp/kiln-cuda-dry-run.configure.log 2>&1
ninja -C build tests/kiln_tests > /tmp/kiln-cuda-dry-run.build.log 2>&1 ||
  { tail -30 /tmp/kiln-cuda-dry-run.build.log; exit 1; }
log=/tmp/kiln-cuda-dry-run.log
build/tests/kiln_tests --source-file='*test_cuda*' > "$log" 2>&1 || true
grep -E "^\[doctest\] test cases" "$log"

# Failing cases, one name per line, against the expected list.
failed=$(awk '/^TEST CASE:/{sub(/^TEST CASE: +/, ""); tc=$0} /ERROR/{print tc}' "$log" | sort -u)
unexpected=$(comm -23 <(echo "$failed" | sed '/^$/d') <(grep -v '^#' "$here/expected_failures.txt" | sed '/^$/d' | sort -u))
if [ -n "$unexpected" ]; then
  echo "cuda_dry_run: unexpected failures (full output: $log):"
  echo "$unexpected" | sed 's/^/  /'
  exit 1
fi
echo "cuda_dry_run: only the expected device-specific cases failed (full output: $log)"
