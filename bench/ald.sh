#!/usr/bin/env bash
# Annealed Langevin, 10,000 particles × 10 levels × 100 steps, with a trained
# noise-conditional MLP (3 × 128 softplus): `scorekit sample` against the same
# loop in PyTorch (bench/torch_ald.py) with the same weights, side by side.
# PyTorch runs at 1 and 2 threads, with OPENBLAS_NUM_THREADS=k and raised
# malloc thresholds (its best configuration here, see docs/BENCHMARKS.md).
# Both outputs are evaluated by `scorekit eval`, so the two samplers are seen
# to draw the same law. Usage: bench/ald.sh [REPEATS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-bench"
py=${PYTHON:-/usr/bin/python3}
reps=${1:-3}
[[ -f $build/CMakeCache.txt ]] || cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSK_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target scorekit_cli >/dev/null
sk="$build/scorekit"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$sk" train --data mog8 --objective ncsn --steps 4000 --batch-size 256 --lr 2e-3 --out "$tmp/m" --quiet >/dev/null
model="$tmp/m/model.safetensors"
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
sk_time() {
  for _ in $(seq "$reps"); do
    s=$(date +%s.%N)
    "$sk" sample --model "$model" --n 10000 --steps-per-level 100 --out "$tmp/sk.npy" >/dev/null
    e=$(date +%s.%N)
    echo "$e - $s" | bc -l
  done | median
}
torch_time() {
  for _ in $(seq "$reps"); do
    env OPENBLAS_NUM_THREADS="$1" MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824 \
      "$py" "$root/bench/torch_ald.py" "$model" --threads "$1" --out "$tmp/t.npy"
  done | median
}
echo "# annealed Langevin, 10000 particles x 10 levels x 100 steps, ncmlp 3x128 softplus"
echo "# $(lscpu | sed -n 's/^Model name: *//p'), nproc $(nproc); OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<unset>}; median of $reps"
t_sk=$(sk_time); t1=$(torch_time 1); t2=$(torch_time 2)
best=$(echo "if ($t1 < $t2) $t1 else $t2" | bc -l)
printf '| %-24s | %8s |\n' "sampler" "seconds"
printf '| %-24s | %8.2f |\n' "scorekit (2 threads)" "$t_sk" "torch 1 thread" "$t1" "torch 2 threads" "$t2"
printf 'ratio (torch best / scorekit): %.2fx\n' "$(echo "$best / $t_sk" | bc -l)"
echo "# the two samples, evaluated against mog8:"
for f in sk t; do
  echo "## $f: $("$sk" eval --samples "$tmp/$f.npy" --data mog8 --json)"
done
