#!/usr/bin/env bash
# scorekit against PyTorch on the U-Net score model (bench/bench_unet.c,
# bench/torch_unet.py): builds (Release, build-bench/), checks that the twin
# computes the same loss and parameter gradients (training), scores and
# vector-Jacobian products (evaluations) from scorekit's operands, measures
# the FMA peak (bench/peak.c), then times both in interleaved rounds and
# prints the table: seconds a step, scorekit ÷ PyTorch's best, 2 threads ÷ 1,
# convolution and product GFLOP/s and their share of the 2-core FMA peak,
# peak RSS of each side.
# Usage: bench/unet.sh
#   ROUNDS (default 3): rounds; each times every workload on scorekit (2 and
#     1 threads) and PyTorch (each configuration), in alternating order. A
#     cell is the median of the rounds.
#   WORKLOADS (default: train-b64 train-b128 sample-b1000 lik-b1000).
#   OBJECTIVE (default ncsn): the training workloads' objective.
#   TORCH_CONFIGS (default "tuned 1 1,tuned 2 2"): PyTorch configurations,
#     ENV TORCH_THREADS OPENBLAS_THREADS each (bench/lib.sh: found = the
#     environment as found, tuned = with TUNED_ENV); the best one counts.
#   REPEATS (default 3), STEP_SECONDS (default 0.5), WARMUP (default 0.5): per
#     measurement, the median of REPEATS runs of about STEP_SECONDS each (at least
#     one step) after WARMUP seconds (at least two steps).
#   CLOCK (default wall): wall times by the wall clock; cpu by each process's
#     CPU time divided by its threads, which leaves out the waits for a core
#     on a shared machine (the time a thread waits for the other still counts).
#   QUIET_WAIT (default 15): seconds to wait for idle CPUs before each
#     measurement (bench/lib.sh).
#   RESULTS (optional): a file to keep the raw measurements in.
#   PYTHON (default /usr/bin/python3, Debian's, which has torch).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-bench"
py=${PYTHON:-/usr/bin/python3}
rounds=${ROUNDS:-3} obj=${OBJECTIVE:-ncsn}
read -r -a workloads <<<"${WORKLOADS:-train-b64 train-b128 sample-b1000 lik-b1000}"
IFS=, read -r -a configs <<<"${TORCH_CONFIGS:-tuned 1 1,tuned 2 2}"
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"

sk_build "$root" "$build" bench_unet peak
clock=${CLOCK:-wall}
args=(--repeats "${REPEATS:-3}" --seconds "${STEP_SECONDS:-0.5}" --warmup "${WARMUP:-0.5}"
  --clock "$clock")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

mkdir "$tmp/dump"
# The twins must agree before their speeds are compared (the evaluations at
# 125 rows: the same code as 1,000 in chunks, and a quicker float64 check).
for w in "${workloads[@]}"; do
  extra=()
  case $w in sample-* | lik-*) extra=(--batch 125) ;; esac
  "$build/bench_unet" --only "$w" --objective "$obj" "${extra[@]}" --dump "$tmp/dump" >/dev/null
done
if ! "$py" "$root/bench/torch_unet.py" --check "$tmp/dump" >"$tmp/check.txt"; then
  cat "$tmp/check.txt"
  echo "unet.sh: the PyTorch twin disagrees with scorekit; not timing" >&2
  exit 1
fi

wait_quiet
"$build/peak" --only fma --clock cpu >"$tmp/peak.txt"
peak2=$(awk '$1 == "PEAK" && $2 == "fma-avx512" && $3 == 2 {print $4}' "$tmp/peak.txt")

echo "# scorekit vs PyTorch on the U-Net (CPU) — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "# machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), nproc $(nproc)," \
  "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
echo "# scorekit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')," \
  "$(grep -m1 CMAKE_C_COMPILER: "$build/CMakeCache.txt" | sed 's/.*=//'), Release;" \
  "objective $obj; torch $("$py" -c 'import torch; print(torch.__version__)') ($py)"
echo "# env: $(env | grep -E '^(OMP_|GOMP_|OPENBLAS_)' | sort | paste -sd' ')"
echo "# torch configurations (env torch-threads OpenBLAS-threads): $(printf '%s; ' "${configs[@]}")"
echo "# rounds $rounds × median of ${REPEATS:-3} repeats; clock $clock; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# twin check (scorekit's results vs PyTorch float64 from the same operands):"
sed 's/^CHECK /#   /' "$tmp/check.txt"
echo "# peak (bench/peak.c --clock cpu):"
grep '^PEAK' "$tmp/peak.txt" | sed 's/^/#   /'

# WHO CONFIG ROUND WORKLOAD SECONDS MAXRSS FLOPS
touch "$tmp/results.txt"
record() {
  awk -v who="$1" -v cfg="$2" -v r="$3" '
    $1 == "FLOPS" {f = $3} $1 == "RESULT" {w = $2; s = $3} $1 == "MAXRSS" {m = $3}
    END {if (w != "") print who, cfg, r, w, s, m, f + 0}' >>"$tmp/results.txt"
}
run_sk() { # THREADS ROUND WORKLOAD
  wait_quiet
  "$build/bench_unet" --only "$3" --objective "$obj" --threads "$1" "${args[@]}" | record sk "$1" "$2"
}
run_torch() { # CONFIG ROUND WORKLOAD
  local e t b envs
  read -r e t b <<<"$1"
  mapfile -t envs < <(torch_env "$e" "$b")
  wait_quiet
  env "${envs[@]}" "$py" "$root/bench/torch_unet.py" --only "$3" --objective "$obj" --threads "$t" \
    "${args[@]}" | record torch "$e-$t-$b" "$2"
}
for ((r = 1; r <= rounds; r++)); do
  echo "# round $r: load average $(cut -d' ' -f1-3 /proc/loadavg)"
  for w in "${workloads[@]}"; do
    if ((r % 2)); then
      run_sk 2 "$r" "$w"
      run_sk 1 "$r" "$w"
      for c in "${configs[@]}"; do run_torch "$c" "$r" "$w"; done
    else
      for c in "${configs[@]}"; do run_torch "$c" "$r" "$w"; done
      run_sk 1 "$r" "$w"
      run_sk 2 "$r" "$w"
    fi
  done
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg);" \
  "measurements that started before the CPUs were 90 % idle: $waited_out"
if [[ -n ${RESULTS:-} ]]; then cp "$tmp/results.txt" "$RESULTS"; fi
echo

"$py" - "$tmp/results.txt" "$peak2" <<'EOF'
import sys

runs, flops, rss, order = {}, {}, {}, []
peak = float(sys.argv[2] or 0)
for line in open(sys.argv[1]):
    who, cfg, _, w, sec, maxrss, f = line.split()
    if w not in order:
        order.append(w)
    runs.setdefault((who, cfg, w), []).append(float(sec))
    rss.setdefault((who, cfg, w), []).append(int(maxrss))
    if who == "sk":
        flops[w] = float(f)


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


hdr = ("workload", "sk 2 thr s", "sk 1 thr s", "2 ÷ 1 thr", "torch best s", "best config",
       "sk ÷ torch", "sk GFLOP/s", "% 2-core peak", "torch GFLOP/s", "sk RSS MiB",
       "torch RSS MiB", "RSS ratio")
rows = [hdr]
for w in order:
    s2, s1 = (median(runs.get(("sk", t, w), [float("nan")])) for t in ("2", "1"))
    tcfg = {c: median(v) for (who, c, ww), v in runs.items() if who == "torch" and ww == w}
    best = min(tcfg, key=tcfg.get) if tcfg else None
    tb = tcfg[best] if best else float("nan")
    f = flops.get(w, 0.0)
    sk_rss = max(rss.get(("sk", "2", w), [0]) + rss.get(("sk", "1", w), [0])) / 1024
    t_rss = median(rss[("torch", best, w)]) / 1024 if best else float("nan")
    rows.append((w, f"{s2:.4f}", f"{s1:.4f}", f"{s1 / s2:.2f}×", f"{tb:.4f}", best or "–",
                 f"{tb / s2:.2f}×", f"{f / s2 / 1e9:.1f}",
                 f"{100 * f / s2 / 1e9 / peak:.1f} %" if peak else "–", f"{f / tb / 1e9:.1f}",
                 f"{sk_rss:.0f}", f"{t_rss:.0f}", f"{sk_rss / t_rss:.2f}"))
w = [max(len(r[i]) for r in rows) for i in range(len(hdr))]
for i, r in enumerate(rows):
    print("| " + " | ".join(c.ljust(w[j]) if j in (0, 5) else c.rjust(w[j]) for j, c in enumerate(r)) + " |")
    if i == 0:
        print("| " + " | ".join("-" * (w[j] - 1) + ("-" if j in (0, 5) else ":") for j in range(len(r))) + " |")
print(f"\nSeconds a step (training) or an evaluation of 1,000 rows; medians of the rounds.")
print(f"GFLOP/s: convolution and product FLOPs a step (bench_unet's count, the same for both)")
print(f"over the time; peak = {peak:.1f} GFLOP/s, bench/peak.c's AVX-512 FMA loop on 2 threads.")
print("sk RSS: the larger of scorekit's 1- and 2-thread processes; torch RSS: its best configuration's.")
EOF
