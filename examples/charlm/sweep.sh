#!/usr/bin/env bash
# The paper's claim in miniature: does a char-LM with ContextPool and L layers reach the
# validation bpc of a vanilla model with 2L layers, and which part of the module matters?
#
# Trains, on the same token budget (steps x batch x seq_len) and for every seed:
#   vanilla_L, vanilla_2L            the baselines
#   pool_L                           ContextPool, learned weights and sizes (the paper's module)
#   fixed_size_L, weights_only_L,    the ablations (nn/context_pool.h: ContextPoolMode)
#   size_only_L
# then runs examples/common/sweep_report.py, which prints the table (mean +- std of val bpc
# over seeds, parameters, FLOPs per token, wall time) and draws the val-bpc curves as SVG.
#
#   examples/charlm/sweep.sh                        # the default corpus, a size for 2 cores
#   examples/charlm/sweep.sh --data enwik8 --layers 4 --d-model 256 --steps 5000   # bigger
#
# Every run's log, metrics.jsonl and checkpoint stay under --out, so a sweep can be
# re-reported (sweep_report.py charlm OUT) or extended without training again: a run whose log
# already ends with its final "val bpc" line is skipped.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

charlm="$repo/build/examples/charlm/charlm"
out="$repo/build/sweep"
data=""
layers=2
d_model=128
heads=4
seq_len=128
batch=16
steps=1000
seeds="0 1 2"
threads=0
s_max=4
eval_interval=100
configs="vanilla_L vanilla_2L pool_L fixed_size_L weights_only_L size_only_L"

usage() {
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"  # the comment above
  cat <<EOF
flags (defaults in brackets):
  --charlm PATH        the charlm program [$charlm]
  --out DIR            where the runs go [$out]
  --data PATH          text file for charlm --data [the default corpus]
  --layers L           layers of the small models; the big baseline has 2L [$layers]
  --d-model N --heads N --seq-len N --batch N --steps N   [$d_model $heads $seq_len $batch $steps]
  --seeds "S ..."      seeds per configuration [$seeds]
  --configs "C ..."    a subset of: $configs
  --s-max X            ContextPool's largest support size [$s_max]
  --eval-interval N    steps between validation evals (the curves' points) [$eval_interval]
  --threads N          OpenMP threads per run; 0 = all cores [$threads]
EOF
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --charlm) charlm=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --layers) layers=$2; shift 2 ;;
    --d-model) d_model=$2; shift 2 ;;
    --heads) heads=$2; shift 2 ;;
    --seq-len) seq_len=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --configs) configs=$2; shift 2 ;;
    --s-max) s_max=$2; shift 2 ;;
    --eval-interval) eval_interval=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "sweep.sh: unknown flag '$1' (see --help)" >&2; exit 2 ;;
  esac
done

[[ -x "$charlm" ]] || { echo "sweep.sh: no charlm program at $charlm; build first (make build)" >&2; exit 1; }

# The flags that make configuration $1 different from the others.
config_flags() {
  case "$1" in
    vanilla_L) echo "--layers $layers" ;;
    vanilla_2L) echo "--layers $((2 * layers))" ;;
    pool_L) echo "--layers $layers --context-pool --pool-mode adaptive --pool-s-max $s_max" ;;
    fixed_size_L) echo "--layers $layers --context-pool --pool-mode fixed_size --pool-s-max $s_max" ;;
    weights_only_L) echo "--layers $layers --context-pool --pool-mode weights_only --pool-s-max $s_max" ;;
    size_only_L) echo "--layers $layers --context-pool --pool-mode size_only --pool-s-max $s_max" ;;
    *) echo "sweep.sh: unknown configuration '$1'" >&2; exit 2 ;;
  esac
}

mkdir -p "$out"
common=(--d-model "$d_model" --heads "$heads" --seq-len "$seq_len" --batch "$batch" --steps "$steps"
        --eval-interval "$eval_interval" --checkpoint-interval 0 --progress lines --length 200
        --threads "$threads")
[[ -n "$data" ]] && common+=(--data "$data")

# Seeds outermost: a sweep stopped early still has every configuration at the first seeds.
for seed in $seeds; do
  for config in $configs; do
    run="$out/${config}_seed${seed}"
    log="$run.log"
    if [[ -f "$log" ]] && grep -q "val bpc" <(tail -n 20 "$log") && grep -q "^sweep: wall" "$log"; then
      echo "sweep: $config seed $seed done before, kept ($log)"
      continue
    fi
    rm -rf "$run"
    echo "sweep: $config seed $seed -> $log"
    start=$(date +%s.%N)
    # shellcheck disable=SC2046  # config_flags is meant to split into words
    "$charlm" "${common[@]}" $(config_flags "$config") --seed "$seed" --checkpoint-dir "$run" >"$log" 2>&1 \
      || { echo "sweep: $config seed $seed failed, see $log" >&2; exit 1; }
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN { printf "sweep: wall %.1f s\n", b - a }' >>"$log"
    grep "val bpc" "$log" | tail -n 1
  done
done

python3 "$repo/examples/common/sweep_report.py" charlm "$out"
