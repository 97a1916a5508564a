#!/usr/bin/env bash
# Builds scorekit (Release, build-bench/), checks that the PyTorch twin computes
# the same losses, gradients and Adam steps, measures the machine's peak
# (bench/peak.c), then times both side by side and prints two tables: speed
# (steps/s) and cost (matmul GFLOP/s as a share of the peak, peak RSS).
# Usage: bench/run.sh [--quick] [--ald]
#   --quick: ROUNDS=1 REPEATS=5 WARMUP=0.2 TORCH_CONFIGS=quick unless set.
#   --ald: then runs bench/ald.sh (annealed Langevin; ALD_REPEATS, default 5),
#     against ALD_TORCH_CONFIGS (default quick: on the 2-core machine of
#     docs/PERFORMANCE.md PyTorch's as-found configurations take 40-105 s a
#     run and never win; quick keeps only found 1/1 of them).
#   ROUNDS (default 3): interleaved rounds; per round and workload, scorekit
#     (default threads: OpenMP's, one per core), torch in every
#     configuration, then scorekit at 1 thread. Each cell is the median of
#     the rounds' medians.
#   RESULTS (optional): a file to keep the raw measurements in.
#   REPEATS (default 7): repeats per measurement (the median is taken).
#   WARMUP (default 0.5): seconds of warm-up per measurement.
#   ITERS (default 0): steps per repeat; 0 sizes a repeat to about 0.25 s.
#   WORKLOADS (default all): e.g. "dsm big-ncsn".
#   TORCH_CONFIGS (default full): full = the environment as found and a tuned
#     one (OPENBLAS_CORETYPE=SkylakeX, glibc malloc thresholds raised), each
#     with torch threads {1,2} × OPENBLAS_NUM_THREADS {1,2}; quick = found
#     1/1, tuned 1/1, 2/2 and 2/1 (see bench/lib.sh). The table shows the best
#     as-found and the best tuned configuration side by side.
#   QUIET_WAIT (default 15): seconds to wait for idle CPUs before each measurement.
#   PEAK_SECONDS (default 0.5), GEMM_N (default 2048): bench/peak.c's FMA loop
#     length and sgemm size.
#   PYTHON (default /usr/bin/python3, Debian's, which has torch).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-bench"
py=${PYTHON:-/usr/bin/python3}
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"

usage() { awk 'NR > 1 && /^#/ {print; next} NR > 1 {exit}' "$0" >&2; }
quick=0 ald=0
for a in "$@"; do
  case $a in
  --quick) quick=1 ;;
  --ald) ald=1 ;;
  *)
    usage
    exit 2
    ;;
  esac
done
if ((quick)); then
  rounds=${ROUNDS:-1} repeats=${REPEATS:-5} warmup=${WARMUP:-0.2}
  export TORCH_CONFIGS=${TORCH_CONFIGS:-quick}
else
  rounds=${ROUNDS:-3} repeats=${REPEATS:-7} warmup=${WARMUP:-0.5}
  export TORCH_CONFIGS=${TORCH_CONFIGS:-full}
fi
iters=${ITERS:-0}
all_workloads="mlp-fwd-bwd dsm ssm ssm-vr esm ncsn ncsn-b128 big-ncsn big-ssm-vr"
read -r -a workloads <<<"${WORKLOADS:-$all_workloads}"
config_lines=$(torch_configs) # fails here on a bad TORCH_CONFIGS
mapfile -t configs <<<"$config_lines"

sk_build "$root" "$build" bench_mlp peak
bench="$build/bench_mlp"
peak="$build/peak"
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

# The peak, in this environment, before the workloads; sgemm again with the
# AVX-512 kernels that the tuned torch configurations use.
wait_quiet
"$peak" --seconds "${PEAK_SECONDS:-0.5}" --gemm-n "${GEMM_N:-2048}" >"$tmp/peak.txt"
wait_quiet
OPENBLAS_CORETYPE=SkylakeX "$peak" --only sgemm --gemm-n "${GEMM_N:-2048}" >>"$tmp/peak.txt"

echo "# scorekit vs PyTorch (CPU) — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "# machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), nproc $(nproc)," \
  "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
echo "# env as found: $(env | grep -E '^(OMP_|GOMP_|OPENBLAS_|GLIBC_TUNABLES=|MALLOC_)' | sort | paste -sd' ')"
echo "# scorekit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')," \
  "$(grep -m1 CMAKE_C_COMPILER: "$build/CMakeCache.txt" | sed 's/.*=//'), Release;" \
  "threads: $sk_threads (default) and 1, env as found;" \
  "$(sed -n 's/^SK_NATIVE:BOOL=/SK_NATIVE=/p' "$build/CMakeCache.txt")"
echo "# torch $("$py" -c 'import torch; print(torch.__version__)') ($py);" \
  "configurations (env torch-threads/OpenBLAS-threads, TORCH_CONFIGS=$TORCH_CONFIGS):" \
  "$(printf '%s\n' "${configs[@]}" | awk '{printf "%s %s/%s, ", $1, $2, $3}' | sed 's/, $//')"
echo "# tuned env: ${TUNED_ENV[*]}"
if [[ $iters == 0 ]]; then per_repeat="about 0.25 s"; else per_repeat="$iters steps"; fi
echo "# rounds $rounds × median of $repeats repeats ($per_repeat each) after ${warmup} s warm-up;" \
  "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# twin check (loss, gradients, parameters after one Adam step vs scorekit):"
sed 's/^CHECK /#   /' "$tmp/check.txt"
echo "# peak (bench/peak.c: PEAK what threads GFLOP/s, best of 5):"
sed 's/^# //; s/^/#   /' "$tmp/peak.txt"

args=(--repeats "$repeats" --warmup "$warmup" --iters "$iters")
# Appends a program's RESULT/MAXRSS/FLOPS lines as "WHO ROUND KEY NAME VALUE ...".
record() { sed -nE "s/^(RESULT|MAXRSS|FLOPS) /$1 $2 \1 /p" >>"$tmp/results.txt"; }
for ((r = 1; r <= rounds; r++)); do
  for w in "${workloads[@]}"; do
    wait_quiet
    "$bench" --only "$w" "${args[@]}" | record sk "$r"
    for c in "${configs[@]}"; do
      read -r e t b <<<"$c"
      wait_quiet
      # shellcheck disable=SC2046 # torch_env's lines are separate assignments
      env $(torch_env "$e" "$b") "$py" "$twin" --only "$w" --threads "$t" "${args[@]}" |
        record "$e:$t:$b" "$r"
    done
    wait_quiet
    "$bench" --only "$w" --threads 1 "${args[@]}" | record s1 "$r"
  done
done
echo "# measurements started without a quiet machine (waited ${QUIET_WAIT:-15} s): $waited_out"
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

peak_gflops=$(awk '$1 == "PEAK" && $2 ~ /^fma-/ && $3 == 2 && $4 > p {p = $4} END {print p + 0}' \
  "$tmp/peak.txt")
if [[ -n ${RESULTS:-} ]]; then cp "$tmp/results.txt" "$RESULTS"; fi
"$py" - "$tmp/results.txt" "$peak_gflops" <<'EOF'
import sys

rate, runs, rss, flops, order = {}, {}, {}, {}, []
for line in open(sys.argv[1]):
    who, _, key, name, value = line.split()[:5]
    if name not in order:
        order.append(name)
    v = float(value)
    if key == "RESULT":
        runs.setdefault((who, name), []).append(v)
    elif key == "MAXRSS":  # KiB
        rss[who, name] = max(rss.get((who, name), 0.0), v)
    elif key == "FLOPS" and who == "sk":
        flops[name] = v
peak = float(sys.argv[2])
# A cell is the median of the rounds' medians (the middle of 3): the speed of
# a typical round. The best of the rounds would favour whoever is measured
# most often on a shared VM, whose speed can swing by ±20 % over minutes
# (docs/PERFORMANCE.md), and torch is measured in 8 configurations to
# scorekit's 1.
for k, v in runs.items():
    v = sorted(v)
    rate[k] = v[len(v) // 2] if len(v) % 2 else 0.5 * (v[len(v) // 2 - 1] + v[len(v) // 2])


def label(who):
    e, t, b = who.split(":")
    return f"{t}/{b}"


def best_torch(name, env):
    """(steps/s, who) of the fastest configuration of torch in `env`."""
    cands = [(r, w) for (w, n), r in rate.items() if n == name and w.split(":")[0] == env]
    return max(cands) if cands else (0.0, None)


def table(rows):
    nc = len(rows[0])
    w = [max(len(r[i]) for r in rows) for i in range(nc)]
    for i, r in enumerate(rows):
        print("| " + " | ".join(c.ljust(w[j]) if j == 0 else c.rjust(w[j])
                                for j, c in enumerate(r)) + " |")
        if i == 0:
            print("| " + " | ".join("-" * (w[j] - 1) + (":" if j else "-")
                                    for j in range(nc)) + " |")


speed = [("workload", "scorekit steps/s", "torch as found (t/b)", "torch tuned (t/b)",
          "ratio (vs torch best)", "scorekit 1-thread", "2 ÷ 1 thread")]
cost = [("workload", "matmul MFLOP/step", "scorekit GFLOP/s", "% of peak",
         "torch best GFLOP/s", "% of peak", "RSS scorekit MiB", "RSS torch best MiB")]
best = {}
for n in order:
    sk, s1 = rate.get(("sk", n), 0.0), rate.get(("s1", n), 0.0)
    found, tuned = best_torch(n, "found"), best_torch(n, "tuned")
    tb = max(found, tuned)
    best[n] = (found[1], tuned[1])
    cell = lambda x: f"{x[0]:.1f} ({label(x[1])})" if x[1] else "–"
    speed.append((n, f"{sk:.1f}", cell(found), cell(tuned),
                  f"{sk / tb[0]:.2f}×" if tb[1] else "–", f"{s1:.1f}",
                  f"{sk / s1:.2f}×" if s1 else "–"))
    f = flops.get(n, 0.0)
    gsk, gt = f * sk * 1e-9, f * tb[0] * 1e-9
    pct = lambda g: f"{100 * g / peak:.1f} %" if peak > 0 else "–"
    mib = lambda who: f"{rss[who, n] / 1024:.0f}" if (who, n) in rss else "–"
    cost.append((n, f"{f * 1e-6:.1f}", f"{gsk:.1f}", pct(gsk), f"{gt:.1f}", pct(gt),
                 mib("sk"), mib(tb[1]) if tb[1] else "–"))
table(speed)
print()
table(cost)
print(f"\npeak = {peak:.1f} GFLOP/s: the faster 2-thread FMA loop of bench/peak.c.")
print("\nspread (worst/best round median, 1.00 = steady; torch: its best as-found and tuned configurations):")
for n in order:
    whos = [("sk", "sk"), ("s1", "s1")] + [(w, w.split(":")[0] + " " + label(w))
                                           for w in best[n] if w]
    print(f"  {n:12s}" + "  ".join(
        f"{lab} {min(runs[w, n]) / max(runs[w, n]):.2f}" for w, lab in whos))
EOF
echo
echo "Cells are medians over the rounds. ratio = scorekit steps/s (default threads)"
echo "÷ the fastest torch configuration"
echo "(as found or tuned); > 1 means scorekit is faster. t/b = torch threads /"
echo "OPENBLAS_NUM_THREADS of the configuration that won. GFLOP/s count only the"
echo "matrix products, by scorekit's graph (sk_graph_matmul_flops), for both columns."
echo "RSS = the process's peak resident set (getrusage), one process per workload."

if ((ald)); then
  echo
  TORCH_CONFIGS=${ALD_TORCH_CONFIGS:-quick} "$root/bench/ald.sh" "${ALD_REPEATS:-5}"
fi
