#!/usr/bin/env bash
# kiln vs PyTorch on one GPT training step: bench_train_step against bench/torch_train_step.py
# on the char-LM config and the GPT-2-124M shape, run alternately so that both sides see
# the same machine, each side's best run kept. Prints a table and the ratios kiln/PyTorch
# (below 1: kiln is faster / smaller).
#
#   bench/compare.sh [--rounds 2] [--threads 2] [--steps 10] [--only charlm|gpt2]
#   BUILD_DIR=build-mine bench/compare.sh        (default build/: it builds nothing)
#
# PyTorch runs twice per round, with OMP_WAIT_POLICY=PASSIVE and with the policy unset
# (libgomp's default spins), and its better figure counts. kiln runs with the caller's
# environment. The machine's load average is printed with every run: on a shared machine
# a load above the core count makes every figure, and most of all the multi-threaded
# ones, unreliable.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
BUILD_DIR=${BUILD_DIR:-build}
KILN_BIN="$BUILD_DIR/bench/bench_train_step"
TORCH_SCRIPT=bench/torch_train_step.py
PYTHON=${PYTHON:-/usr/bin/python3}

rounds=2 threads=2 steps=10 only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) echo "compare.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

if [ ! -x "$KILN_BIN" ]; then
  echo "compare.sh: $KILN_BIN not found; build it first (ninja -C $BUILD_DIR bench_train_step) or set BUILD_DIR" >&2
  exit 1
fi

# name, then the model flags both programs take.
CONFIGS=(
  "charlm --vocab 256 --d 256 --layers 4 --heads 4 --seq 256 --batch 16"
  "gpt2 --vocab 50257 --d 768 --layers 12 --heads 12 --seq 64 --batch 4"
)

load() { cut -d' ' -f1 /proc/loadavg; }

# run <label> <command...>: runs one benchmark, echoes its RESULT line, logs it with the load.
run() {
  local label=$1; shift
  local before result
  before=$(load)
  result=$("$@" 2>/dev/null | grep '^RESULT' || true)
  if [ -z "$result" ]; then
    echo "compare.sh: no RESULT from: $*" >&2
    exit 1
  fi
  printf '  %-22s load %5s -> %5s  %s\n' "$label" "$before" "$(load)" "$result" >&2
  echo "$result"
}


summary=()
for config in "${CONFIGS[@]}"; do
  read -r name flags <<<"$config"
  [ -n "$only" ] && [ "$only" != "$name" ] && continue
  common="$flags --threads $threads --steps $steps"
  echo "== $name: $common (kiln OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset})" >&2
  kiln_ms="" kiln_rss="" passive_ms="" default_ms="" torch_rss=""
  for ((r = 1; r <= rounds; ++r)); do
    # shellcheck disable=SC2086  # $common is a list of flags
    line=$(run "kiln" "$KILN_BIN" $common)
    kiln_ms=$(min "$kiln_ms" "$(field step_ms "$line")")
    kiln_rss=$(min "$kiln_rss" "$(field peak_rss_mb "$line")")
    # shellcheck disable=SC2086
    line=$(run "torch PASSIVE" env OMP_WAIT_POLICY=PASSIVE "$PYTHON" "$TORCH_SCRIPT" $common)
    passive_ms=$(min "$passive_ms" "$(field step_ms "$line")")
    torch_rss=$(min "$torch_rss" "$(field peak_rss_mb "$line")")
    # shellcheck disable=SC2086
    line=$(run "torch (policy unset)" env -u OMP_WAIT_POLICY "$PYTHON" "$TORCH_SCRIPT" $common)
    default_ms=$(min "$default_ms" "$(field step_ms "$line")")
    torch_rss=$(min "$torch_rss" "$(field peak_rss_mb "$line")")
  done
  torch_ms=$(min "$passive_ms" "$default_ms")
  summary+=("$(printf '%-7s %10s %10s %10s %10s %8s %9s %9s %8s' "$name" "$kiln_ms" "$torch_ms" "$passive_ms" \
    "$default_ms" "$(ratio "$kiln_ms" "$torch_ms")" "$kiln_rss" "$torch_rss" "$(ratio "$kiln_rss" "$torch_rss")")")
done

echo
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $threads threads, best of $rounds rounds, load now $(load)"
printf '%-7s %10s %10s %10s %10s %8s %9s %9s %8s\n' config kiln_ms torch_ms passive_ms unset_ms step_x \
  kiln_mb torch_mb rss_x
for line in "${summary[@]}"; do echo "$line"; done
echo "# step_x, rss_x: kiln / PyTorch (best runs); torch_ms = the better of its two wait policies;"
echo "# *_mb: peak RSS of the whole process (PyTorch's includes ~230 MB of interpreter and libraries)"
