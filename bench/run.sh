#!/usr/bin/env bash
# Builds scorekit (Release, build-bench/), checks that the PyTorch twin computes
# the same losses, gradients and Adam steps, then times both side by side and
# prints a table. Usage: bench/run.sh [--quick]
#   ROUNDS (default 3): interleaved rounds of scorekit (default threads),
#     torch 1 thread, torch 2 threads and scorekit 1 thread; each cell is the
#     best of the rounds' medians, so a round that another process disturbed
#     does not decide the number.
#   REPEATS (default 7): repeats per measurement (the median is taken).
#   QUIET_WAIT (default 60): seconds to wait for idle CPUs before each measurement.
#   TORCH_TUNED (default 1): run the twin with OPENBLAS_NUM_THREADS equal to its
#     torch thread count (Debian's torch uses a pthread OpenBLAS whose own
#     threads torch.set_num_threads does not limit) and with glibc malloc
#     thresholds raised (otherwise each step's 256 KiB activations are mmap'd
#     and page-faulted afresh); 0 runs torch with the environment as found.
#   PYTHON (default /usr/bin/python3, Debian's, which has torch).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-bench"
py=${PYTHON:-/usr/bin/python3}
rounds=${ROUNDS:-3}
repeats=${REPEATS:-7}
warmup=0.5
torch_tuned=${TORCH_TUNED:-1}
# The environment of the torch twin at k threads.
torch_env() {
  if [[ $torch_tuned == 1 ]]; then
    echo OPENBLAS_NUM_THREADS="$1" MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824
  fi
}
if [[ ${1:-} == --quick ]]; then
  rounds=1 repeats=5 warmup=0.2
elif [[ $# -gt 0 ]]; then
  sed -n '2,16p' "$0" >&2
  exit 2
fi

if [[ ! -f $build/CMakeCache.txt ]]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSK_BUILD_TESTS=OFF >/dev/null
fi
cmake --build "$build" -j"$(nproc)" --target bench_mlp >/dev/null # incremental
bench="$build/bench_mlp"
twin="$root/bench/torch_mlp.py"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The twins must agree before their speeds are compared.
sk_threads=$("$bench" --dump "$tmp" | sed -n 's/^# scorekit threads \([0-9]*\).*/\1/p')
if ! "$py" "$twin" --check "$tmp" >"$tmp/check.txt"; then
  cat "$tmp/check.txt"
  echo "run.sh: the PyTorch twin disagrees with scorekit; not timing" >&2
  exit 1
fi

echo "# scorekit vs PyTorch (CPU) — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "# machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), nproc $(nproc)," \
  "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
echo "# env: OMP_NUM_THREADS=${OMP_NUM_THREADS-<unset>}" \
  "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-<unset>}" \
  "OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS-<unset>}"
echo "# scorekit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')," \
  "$(grep -m1 CMAKE_C_COMPILER: "$build/CMakeCache.txt" | sed 's/.*=//'), Release;" \
  "threads: $sk_threads (default); $(sed -n 's/^SK_NATIVE:BOOL=/SK_NATIVE=/p' "$build/CMakeCache.txt")"
echo "# torch $("$py" -c 'import torch; print(torch.__version__)') ($py)," \
  "threads set to k = 1 and 2 with torch.set_num_threads; extra env:" \
  "$( [[ $torch_tuned == 1 ]] && torch_env k || echo none)"
echo "# rounds $rounds × median of $repeats repeats (~0.25 s each) after ${warmup} s warm-up;" \
  "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# twin check (loss, gradients, parameters after one Adam step vs scorekit):"
sed 's/^CHECK /#   /' "$tmp/check.txt"

# Percent of CPU time idle over the next half second, from /proc/stat.
idle_pct() {
  local _ a b c d e f g h i1 t1
  read -r _ a b c d e f g h _ </proc/stat
  t1=$((a + b + c + d + e + f + g + h)) i1=$d
  sleep 0.5
  read -r _ a b c d e f g h _ </proc/stat
  echo $((100 * (d - i1) / (a + b + c + d + e + f + g + h - t1 + 1)))
}
# Other processes on a 2-core machine distort a 2-thread run badly, so each
# measurement waits (up to QUIET_WAIT seconds) until the CPUs are ≥ 90% idle.
waited_out=0
wait_quiet() {
  local deadline=$((SECONDS + ${QUIET_WAIT:-60}))
  while (($(idle_pct) < 90)); do
    if ((SECONDS >= deadline)); then
      waited_out=$((waited_out + 1))
      return
    fi
  done
}

args=(--repeats "$repeats" --warmup "$warmup")
workloads=(mlp-fwd-bwd dsm ssm-vr esm ncsn)
for ((r = 1; r <= rounds; r++)); do
  for w in "${workloads[@]}"; do
    wait_quiet
    "$bench" --only "$w" "${args[@]}" | sed -n "s/^RESULT /sk $r /p" >>"$tmp/results.txt"
    for k in 1 2; do
      wait_quiet
      # shellcheck disable=SC2046 # torch_env's words are separate assignments
      env $(torch_env "$k") "$py" "$twin" --only "$w" --threads "$k" "${args[@]}" |
        sed -n "s/^RESULT /t$k $r /p" >>"$tmp/results.txt"
    done
    wait_quiet
    "$bench" --only "$w" --threads 1 "${args[@]}" | sed -n "s/^RESULT /s1 $r /p" >>"$tmp/results.txt"
  done
done
echo "# measurements started without a quiet machine (waited ${QUIET_WAIT:-60} s): $waited_out"
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

"$py" - "$tmp/results.txt" <<'EOF'
import sys
best, runs, order = {}, {}, []
for line in open(sys.argv[1]):
    who, _, name, rate = line.split()[:4]
    if name not in order:
        order.append(name)
    best[who, name] = max(best.get((who, name), 0.0), float(rate))
    runs.setdefault((who, name), []).append(float(rate))
rows = [("workload", "scorekit steps/s", "torch 1-thread", "torch 2-thread",
         "ratio (vs torch best)", "scorekit 1-thread")]
for n in order:
    sk, t1, t2, s1 = best["sk", n], best["t1", n], best["t2", n], best["s1", n]
    rows.append((n, f"{sk:.1f}", f"{t1:.1f}", f"{t2:.1f}", f"{sk / max(t1, t2):.2f}×",
                 f"{s1:.1f}"))
nc = len(rows[0])
w = [max(len(r[i]) for r in rows) for i in range(nc)]
for i, r in enumerate(rows):
    print("| " + " | ".join(c.ljust(w[j]) if j == 0 else c.rjust(w[j])
                            for j, c in enumerate(r)) + " |")
    if i == 0:
        print("| " + " | ".join("-" * (w[j] - 1) + (":" if j else "-")
                                for j in range(nc)) + " |")
print("\nspread (worst/best round median, 1.00 = steady):")
for n in order:
    print(f"  {n:12s}" + "  ".join(
        f"{who} {min(runs[who, n]) / max(runs[who, n]):.2f}" for who in ("sk", "t1", "t2", "s1")))
EOF
echo
echo "ratio = scorekit steps/s (default threads) ÷ the faster torch column; > 1 means"
echo "scorekit is faster. The last column is scorekit pinned to 1 thread, for reference."
