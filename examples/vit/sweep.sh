#!/usr/bin/env bash
# The paper's claim in miniature, for images: does a ViT with ContextPool and L blocks reach
# the test accuracy of a vanilla ViT with 2L blocks, and which part of the module matters?
#
# Trains, on the same image budget (steps x batch) and for every seed:
#   vanilla_L, vanilla_2L            the baselines
#   pool_L                           ContextPool2d, learned weights and sizes (the paper's module)
#   fixed_size_L, weights_only_L,    the ablations (nn/context_pool.h: ContextPoolMode)
#   size_only_L, uniform_L
# then runs examples/common/sweep_report.py, which prints the table (mean +- std of test
# accuracy over seeds, parameters, FLOPs per image, wall and CPU time) and draws the
# test-accuracy curves as SVG.
#
#   examples/vit/sweep.sh                          # the shapes task at the example's defaults
#   examples/vit/sweep.sh --data data/cifar-10-batches-bin --depth 3 --d-model 128 --steps 5000 \
#       --threads 2                                # bigger
#   examples/vit/sweep.sh -- --lr 2e-3             # anything after -- goes to every vit run
#
# Every run's log and metrics.jsonl stay under --out, so a sweep can be re-reported or
# extended without training again: a run whose log already holds its final test accuracy
# and its timing line is skipped.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

vit="$repo/build/examples/vit/vit"
out="$repo/build/sweep-vit"
data=""
depth=2
d_model=64
heads=4
patch=4
batch=64
steps=1000
seeds="0 1 2"
threads=1
s_max=3
pool_size=1
eval_interval=100
configs="vanilla_L vanilla_2L pool_L fixed_size_L weights_only_L size_only_L uniform_L"
extra=()

usage() {
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"  # the comment above
  cat <<EOF
flags (defaults in brackets):
  --vit PATH           the vit program [$vit]
  --out DIR            where the runs go [$out]
  --data DIR           MNIST or CIFAR-10 folder for vit --data [the generated shapes task]
  --depth L            blocks of the small models; the big baseline has 2L [$depth]
  --d-model N --heads N --patch N --batch N --steps N   [$d_model $heads $patch $batch $steps]
  --seeds "S ..."      seeds per configuration [$seeds]
  --configs "C ..."    a subset of: $configs
  --s-max X            ContextPool2d's largest support size, in patches [$s_max]
  --pool-size X        the constant size of fixed_size / weights_only, uniform's half-width [$pool_size]
  --eval-interval N    steps between test-set evals (the curves' points) [$eval_interval]
  --threads N          OpenMP threads per run; 0 = all cores [$threads]
  -- FLAGS...          passed to every vit run as they are
EOF
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --vit) vit=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --depth) depth=$2; shift 2 ;;
    --d-model) d_model=$2; shift 2 ;;
    --heads) heads=$2; shift 2 ;;
    --patch) patch=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --configs) configs=$2; shift 2 ;;
    --s-max) s_max=$2; shift 2 ;;
    --pool-size) pool_size=$2; shift 2 ;;
    --eval-interval) eval_interval=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) usage; exit 0 ;;
    *) echo "sweep.sh: unknown flag '$1' (see --help)" >&2; exit 2 ;;
  esac
done

[[ -x "$vit" ]] || { echo "sweep.sh: no vit program at $vit; build first (make build)" >&2; exit 1; }

# The flags that make configuration $1 different from the others.
config_flags() {
  local pool="--context-pool --pool-s-max $s_max --pool-size $pool_size --pool-mode"
  case "$1" in
    vanilla_L) echo "--depth $depth" ;;
    vanilla_2L) echo "--depth $((2 * depth))" ;;
    pool_L) echo "--depth $depth $pool adaptive" ;;
    fixed_size_L) echo "--depth $depth $pool fixed_size" ;;
    weights_only_L) echo "--depth $depth $pool weights_only" ;;
    size_only_L) echo "--depth $depth $pool size_only" ;;
    uniform_L) echo "--depth $depth $pool uniform" ;;
    *) echo "sweep.sh: unknown configuration '$1'" >&2; return 2 ;;
  esac
}
for config in $configs; do config_flags "$config" >/dev/null || exit 2; done  # fail before training

mkdir -p "$out"
common=(--d-model "$d_model" --heads "$heads" --patch "$patch" --batch "$batch" --steps "$steps"
        --eval-interval "$eval_interval" --threads "$threads")
[[ -n "$data" ]] && common+=(--data "$data")

# bash's `time` prints this after each run; CPU time says more than wall time on a shared machine.
TIMEFORMAT='sweep: wall %R s, cpu %U s user + %S s system'

# Seeds outermost: a sweep stopped early still has every configuration at the first seeds.
for seed in $seeds; do
  for config in $configs; do
    run="$out/${config}_seed${seed}"
    log="$run.log"
    if [[ -f "$log" ]] && grep -q "^vit: test accuracy" "$log" && grep -q "^sweep: wall" "$log"; then
      echo "sweep: $config seed $seed done before, kept ($log)"
      continue
    fi
    rm -rf "$run"  # vit appends to --metrics: a rerun must start from an empty log
    mkdir -p "$run"
    echo "sweep: $config seed $seed -> $log"
    # shellcheck disable=SC2046  # config_flags is meant to split into words
    { time "$vit" "${common[@]}" $(config_flags "$config") --seed "$seed" --metrics "$run/metrics.jsonl" \
        "${extra[@]}" >"$log" 2>&1; } 2>"$run/time" \
      || { echo "sweep: $config seed $seed failed, see $log" >&2; exit 1; }
    cat "$run/time" >>"$log"
    grep "^vit: test accuracy" "$log"
    cat "$run/time"
  done
done

python3 "$repo/examples/common/sweep_report.py" vit "$out"
