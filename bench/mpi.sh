#!/usr/bin/env bash
# Data-parallel training over MPI on one machine: 2 ranks × 1 thread against
# 1 rank × 2 threads (and 1 rank × 1 thread, the unit of scaling), on a toy
# workload and on the U-Net, interleaved round by round; then the gradient
# sum alone (bench/mpi_sum.c) at the two models' sizes, against
# MPI_Allreduce. Needs a build with MPI (SK_WITH_MPI; `cmake -S . -B build`
# finds it when libopenmpi-dev is installed) and Debian's
# dataset-fashion-mnist. Usage: bench/mpi.sh
#   BUILD (default build/): the build directory.
#   ROUNDS (default 3): interleaved rounds; each cell is the median.
#   TOY_STEPS (default 3000), UNET_STEPS (default 15): steps a run; the
#     first 10% (at least 2) are left out as warm-up.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build}
sk=$build/scorekit
rounds=${ROUNDS:-3}
toy_steps=${TOY_STEPS:-3000}
unet_steps=${UNET_STEPS:-15}
[ -x "$build/mpi_sum" ] || { echo "bench/mpi.sh: $build has no mpi_sum: build with MPI" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

toy=(--data mog8 --objective ncsn --batch-size 512)
unet=(--data fashion-mnist --n-data 4096 --model unet --batch-size 32)

# ms a step from rank 0's log.csv, leaving out the warm-up steps.
step_ms() {
  awk -F, 'NR > 1 { t[$1] = $4; n = $1 } END {
    w = int(n / 10); if (w < 2) w = 2
    printf "%.3f", 1000 * (t[n] - t[w]) / (n - w) }' "$1/log.csv"
}

# run NAME CONFIG STEPS FLAGS...: one run; prints "ms-per-step sum-ms-per-step".
run() {
  local name=$1 config=$2 steps=$3; shift 3
  local dir=$tmp/$name-$config out sum=-
  rm -rf "$dir"
  case $config in
  1x1) out=$(OMP_NUM_THREADS=1 "$sk" train "$@" --steps "$steps" --quiet --out "$dir") ;;
  1x2) out=$(OMP_NUM_THREADS=2 "$sk" train "$@" --steps "$steps" --quiet --out "$dir") ;;
  2x1) out=$(mpirun -np 2 -x OMP_NUM_THREADS=1 "$sk" train "$@" --steps "$steps" --quiet --out "$dir")
       sum=$(sed -n 's/^MPI: .* took \([0-9.]*\) ms of each .*/\1/p' <<< "$out") ;;
  esac
  echo "$(step_ms "$dir") $sum"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "# bench/mpi.sh: $(date -u +%FT%TZ), $(nproc) CPUs, $(mpirun --version | head -1), load average $(cut -d" " -f1-3 /proc/loadavg)"
echo "# rounds $rounds; toy ${toy[*]} ($toy_steps steps), unet ${unet[*]} ($unet_steps steps)"
declare -A ms sums
for r in $(seq "$rounds"); do
  for w in toy unet; do
    for c in 1x2 2x1 1x1; do
      if [ $w = toy ]; then set -- $(run $w $c "$toy_steps" "${toy[@]}")
      else set -- $(run $w $c "$unet_steps" "${unet[@]}"); fi
      ms[$w,$c]+="$1 "
      [ "$2" = - ] || sums[$w]+="$2 "
      echo "round $r: $w, ranks×threads $c: $1 ms a step (gradient sum: $2 ms)"
    done
  done
done
echo
printf "%-6s %14s %14s %14s %16s %12s\n" workload "1×1 ms/step" "1×2 ms/step" "2×1 ms/step" "2×1 vs 1×2" "sum ms/step"
for w in toy unet; do
  a=$(tr ' ' '\n' <<< "${ms[$w,1x1]}" | grep . | median)
  b=$(tr ' ' '\n' <<< "${ms[$w,1x2]}" | grep . | median)
  c=$(tr ' ' '\n' <<< "${ms[$w,2x1]}" | grep . | median)
  s=$(tr ' ' '\n' <<< "${sums[$w]}" | grep . | median)
  printf "%-6s %14s %14s %14s %15.2f× %12s\n" $w "$a" "$b" "$c" "$(awk -v b="$b" -v c="$c" 'BEGIN { print b / c }')" "$s"
done
echo
echo "# the gradient sum alone, 2 ranks (µs, median and best of 41): fixed order vs MPI_Allreduce"
mpirun -np 2 "$build/mpi_sum" 33795 1115426 | awk '{ printf "%-9s floats %-9s %9s µs (best %s)\n", $2, $3, $4, $5 }'
