# Shell helpers shared by bench/compare.sh and bench/gpu_compare.sh (sourced, not run).

# The value of `key` in a RESULT line: field step_ms "$line".
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }

# The smaller of two numbers ("" counts as infinity).
min() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || (b != "" && b + 0 < a + 0)) print b; else print a }'; }

# a / b to two decimals, or "-" when either is missing.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }
