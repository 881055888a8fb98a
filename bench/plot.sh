#!/usr/bin/env bash
# Draws ns per get against N for each system from hashkv-bench --json output.
#   build/hashkv-bench --json > bench.json && bash bench/plot.sh bench.json bench/gets.svg
set -euo pipefail
in="$1"
out="${2:-gets.svg}"
command -v gnuplot >/dev/null || { echo "needs gnuplot (apt-get install gnuplot-nox)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
plots=()
for op in get get_random; do
  for sys in engine vtab native lmdb floor; do
    # One "n ns" line per point, from lines like {"system": "engine", "op": "get", "n": 10000, "ns_per_op": 61.2}
    sed -n "s/.*\"system\": \"$sys\", \"op\": \"$op\", \"n\": \([0-9]*\), \"ns_per_op\": \([0-9.]*\).*/\1 \2/p" "$in" \
      | sort -n > "$tmp/$sys-$op.dat"
    if [ -s "$tmp/$sys-$op.dat" ]; then
      dash=$([ "$op" = get ] && echo 1 || echo 2)
      plots+=("'$tmp/$sys-$op.dat' using 1:2 with linespoints dashtype $dash title '$sys $op'")
    fi
  done
done
joined=$(IFS=,; echo "${plots[*]}")
gnuplot <<GP
set terminal svg size 800,500 font "DejaVu Sans,11" background rgb "white"
set output "$out"
set logscale xy
set xlabel "keys (N)"
set ylabel "ns per get (median)"
set title "hashkv-bench: ns per get (solid: seed order, dashed: random order)"
set key outside right
set grid
set termoption noenhanced
plot $joined
GP
echo "wrote $out"
