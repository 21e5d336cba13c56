#!/usr/bin/env bash
# kiln vs PyTorch on one GPT training step on a GPU: bench_train_step --device cuda against
# bench/torch_train_step.py --device cuda, on the char-LM config and the GPT-2-124M shape,
# run alternately so that both sides see the same GPU, each side's best run kept. Prints a
# table: step time, tokens/s and peak GPU memory of both, and the ratios kiln / PyTorch
# (below 1: kiln is faster / smaller), in fp32 and with bf16 autocast.
#
#   bench/gpu_compare.sh [--rounds 3] [--steps 20] [--warmup 5] [--only charlm|gpt2]
#   BUILD_DIR=build-cuda bench/gpu_compare.sh        (default build/: it builds nothing)
#
# fp32 on both sides means full f32 matmuls (TF32 off: PyTorch's default for matmuls, and
# kiln's). The bf16 columns run PyTorch under torch.autocast(bfloat16) and kiln under
# AutocastGuard (its matrix products and attention on bf16 tensor cores); a kiln run
# that fails leaves "failed" in its column. Peak
# memory is each library's allocator figure for tensors (kiln: cuda::memory_stats()
# .peak_allocated; PyTorch: torch.cuda.max_memory_allocated), warm-up included; the
# *_reserved_mb figures in the RESULT lines on stderr add each cache's slack.
# Without a visible GPU it prints "skipped: <reason>" and exits 0.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
BUILD_DIR=${BUILD_DIR:-build}
KILN_BIN="$BUILD_DIR/bench/bench_train_step"
TORCH_SCRIPT=bench/torch_train_step.py
PYTHON=${PYTHON:-/usr/bin/python3}

rounds=3 steps=20 warmup=5 only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) echo "gpu_compare.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

if [ ! -x "$KILN_BIN" ]; then
  echo "gpu_compare.sh: $KILN_BIN not found; build it first (ninja -C $BUILD_DIR bench_train_step) or set BUILD_DIR" >&2
  exit 1
fi

# name, then the model flags both programs take.
CONFIGS=(
  "charlm --vocab 256 --d 256 --layers 4 --heads 4 --seq 256 --batch 16"
  "gpt2 --vocab 50257 --d 768 --layers 12 --heads 12 --seq 1024 --batch 8"
)

# The value of flag `--name` in a list of flags.
flag_value() { sed -n "s/.*--$1 \([^ ]*\).*/\1/p" <<<" $2"; }

# attempt <label> <command...>: runs one benchmark and echoes its RESULT line, or nothing
# when it gives none (its last stderr line, the reason, is logged). Never fails the script.
attempt() {
  local label=$1; shift
  local output result
  output=$("$@" 2>&1) || true
  result=$(grep '^RESULT' <<<"$output" || true)
  if [ -n "$result" ]; then
    printf '  %-12s %s\n' "$label" "$result" >&2
  else
    printf '  %-12s no result: %s\n' "$label" "$(grep -v '^#' <<<"$output" | tail -n 1)" >&2
  fi
  echo "$result"
}

# Tokens per second of a step of `tokens` tokens taking `ms` milliseconds.
rate() { awk -v t="$1" -v ms="$2" 'BEGIN { if (ms == "") print "-"; else printf "%.0f", t / ms * 1000 }'; }

# No GPU, no table: the kiln program says why.
probe=$("$KILN_BIN" --device cuda --layers 1 --d 8 --heads 1 --seq 4 --batch 1 --steps 1 --warmup 1 2>&1 || true)
if grep -q "skipped:" <<<"$probe"; then
  echo "gpu_compare.sh: $(grep -o 'skipped:.*' <<<"$probe")"
  exit 0
fi

summary=()
for config in "${CONFIGS[@]}"; do
  read -r name flags <<<"$config"
  [ -n "$only" ] && [ "$only" != "$name" ] && continue
  common="$flags --device cuda --steps $steps --warmup $warmup"
  tokens=$(( $(flag_value batch "$common") * $(flag_value seq "$common") ))
  echo "== $name: $common" >&2
  kiln_ms="" torch_ms="" kiln_mb="" torch_mb="" kiln_bf16_ms="" torch_bf16_ms="" kiln_bf16_note=""
  for ((r = 1; r <= rounds; ++r)); do
    # shellcheck disable=SC2086  # $common is a list of flags
    line=$(attempt "kiln fp32" "$KILN_BIN" $common)
    kiln_ms=$(min "$kiln_ms" "$(field step_ms "$line")")
    kiln_mb=$(min "$kiln_mb" "$(field peak_alloc_mb "$line")")
    # shellcheck disable=SC2086
    line=$(attempt "torch fp32" "$PYTHON" "$TORCH_SCRIPT" $common)
    torch_ms=$(min "$torch_ms" "$(field step_ms "$line")")
    torch_mb=$(min "$torch_mb" "$(field peak_alloc_mb "$line")")
    # shellcheck disable=SC2086
    line=$(attempt "kiln bf16" "$KILN_BIN" $common --bf16)
    if [ -n "$line" ]; then
      kiln_bf16_ms=$(min "$kiln_bf16_ms" "$(field step_ms "$line")")
    else
      kiln_bf16_note="failed"
    fi
    # shellcheck disable=SC2086
    line=$(attempt "torch bf16" "$PYTHON" "$TORCH_SCRIPT" $common --bf16)
    torch_bf16_ms=$(min "$torch_bf16_ms" "$(field step_ms "$line")")
  done
  [ -n "$kiln_bf16_ms" ] && kiln_bf16_note=""
  summary+=("$(printf '%-7s %9s %9s %7s %10s %10s %8s %8s %6s %19s %9s %7s' "$name" "${kiln_ms:--}" \
    "${torch_ms:--}" "$(ratio "$kiln_ms" "$torch_ms")" "$(rate "$tokens" "$kiln_ms")" "$(rate "$tokens" "$torch_ms")" \
    "${kiln_mb:--}" "${torch_mb:--}" "$(ratio "$kiln_mb" "$torch_mb")" "${kiln_bf16_note:-${kiln_bf16_ms:--}}" \
    "${torch_bf16_ms:--}" "$(ratio "$kiln_bf16_ms" "$torch_bf16_ms")")")
done

gpu=$(field gpu "$(attempt "device" "$KILN_BIN" --device cuda --layers 1 --d 8 --heads 1 --seq 4 --batch 1 \
  --steps 1 --warmup 1 2>/dev/null)")
echo
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), ${gpu:-unknown GPU}, best of $rounds rounds of $steps steps"
printf '%-7s %9s %9s %7s %10s %10s %8s %8s %6s %19s %9s %7s\n' config kiln_ms torch_ms step_x kiln_tok/s \
  torch_tok/s kiln_mb torch_mb mem_x kiln_bf16_ms torch_bf16_ms bf16_x
for line in "${summary[@]}"; do echo "$line"; done
echo "# step_x, mem_x, bf16_x: kiln / PyTorch (best runs); *_mb: peak GPU memory held by tensors (MiB)"
