#!/usr/bin/env bash
# scorekit's convolutions against PyTorch's on the U-Net's layers
# (bench/bench_conv.c, bench/torch_conv.py): builds (Release, build-bench/),
# checks that both compute the same thing, measures the FMA peak
# (bench/peak.c), then times both in interleaved rounds and prints, per
# layer and pass, GFLOP/s, the share of the peak and scorekit ÷ PyTorch.
# Usage: bench/conv.sh
#   ROUNDS (default 5): rounds; each runs scorekit then PyTorch (odd rounds)
#     or PyTorch then scorekit (even rounds), every case once. A cell is the
#     median of the rounds' medians.
#   THREADS (default 1): threads on both sides (scorekit's
#     sk_set_num_threads, torch.set_num_threads).
#   REPEATS (default 7), REPEAT_SECONDS (default 0.1), WARMUP (default 0.2):
#     per case and round, the median of REPEATS runs of about REPEAT_SECONDS
#     each, after WARMUP seconds.
#   CLOCK (default cpu): cpu times by the process's CPU time (per thread for
#     the peak), which leaves out the time spent waiting for a core on a
#     shared machine; wall by the wall clock. Both are recorded; CLOCK picks
#     the one the table shows.
#   BEFORE (optional): a git revision of scorekit to time in the same rounds
#     (built from `git archive` with this bench_conv.c, in a temporary
#     folder): the table then shows it beside the current tree.
#   ONLY (optional): one layer, e.g. conv3. RESULTS (optional): a file to
#     keep the raw measurements in.
#   PYTHON (default /usr/bin/python3, Debian's, which has torch).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-bench"
py=${PYTHON:-/usr/bin/python3}
rounds=${ROUNDS:-5} threads=${THREADS:-1} clock=${CLOCK:-cpu}
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
case $clock in cpu | wall) ;; *)
  echo "CLOCK must be cpu or wall" >&2
  exit 2
  ;;
esac

sk_build "$root" "$build" bench_conv peak
args=(--threads "$threads" --repeats "${REPEATS:-7}" --seconds "${REPEAT_SECONDS:-0.1}"
  --warmup "${WARMUP:-0.2}")
only=()
if [[ -n ${ONLY:-} ]]; then only=(--only "$ONLY"); fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [[ -n ${BEFORE:-} ]]; then
  mkdir "$tmp/before"
  git -C "$root" archive "$BEFORE" | tar -x -C "$tmp/before"
  cp "$root/bench/bench_conv.c" "$tmp/before/bench/"
  sk_build "$tmp/before" "$tmp/before/build" bench_conv
  before_rev=$(git -C "$root" rev-parse --short "$BEFORE")
fi
"$build/bench_conv" "${only[@]}" --dump "$tmp/dump" >/dev/null
if ! "$py" "$root/bench/torch_conv.py" "${only[@]}" --check "$tmp/dump" >"$tmp/check.txt"; then
  cat "$tmp/check.txt"
  echo "conv.sh: PyTorch disagrees with scorekit; not timing" >&2
  exit 1
fi

"$build/peak" --only fma --clock "$clock" >"$tmp/peak.txt"
peak=$(awk -v t="$threads" '$1 == "PEAK" && $2 ~ /^fma-/ && $3 == t && $4 > p {p = $4} END {print p + 0}' \
  "$tmp/peak.txt")

echo "# scorekit convolutions vs PyTorch (CPU) — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "# machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), nproc $(nproc)," \
  "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
echo "# scorekit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')," \
  "$(grep -m1 CMAKE_C_COMPILER: "$build/CMakeCache.txt" | sed 's/.*=//'), Release;" \
  "torch $("$py" -c 'import torch; print(torch.__version__)') ($py); threads $threads both"
echo "# env: $(env | grep -E '^(OMP_|GOMP_|OPENBLAS_|DNNL_|ONEDNN_)' | sort | paste -sd' ')"
echo "# rounds $rounds (interleaved) × median of ${REPEATS:-7} repeats; clock: $clock;" \
  "OPENBLAS_NUM_THREADS=$threads for both"
if [[ -n ${BEFORE:-} ]]; then echo "# before: scorekit $before_rev, timed in the same rounds"; fi
echo "# twin check (scorekit's output vs PyTorch's from the same operands):"
sed 's/^CHECK /#   /' "$tmp/check.txt"
echo "# peak (bench/peak.c --clock $clock):"
sed 's/^# //; s/^/#   /' "$tmp/peak.txt"

# OpenBLAS's own pool (torch's transposed convolutions run on its sgemm;
# scorekit links it but calls nothing) held to the same threads: its idle
# workers would otherwise spin and count in the CPU time.
export OPENBLAS_NUM_THREADS=$threads
record() { sed -nE "s/^RESULT /$1 $2 /p" >>"$tmp/results.txt"; }
run_sk() { "$build/bench_conv" "${only[@]}" "${args[@]}" | record sk "$1"; }
run_torch() { "$py" "$root/bench/torch_conv.py" "${only[@]}" "${args[@]}" | record torch "$1"; }
run_before() {
  if [[ -n ${BEFORE:-} ]]; then "$tmp/before/build/bench_conv" "${only[@]}" "${args[@]}" | record before "$1"; fi
}
for ((r = 1; r <= rounds; r++)); do
  echo "# round $r: load average $(cut -d' ' -f1-3 /proc/loadavg)"
  if ((r % 2)); then
    run_before "$r"
    run_sk "$r"
    run_torch "$r"
  else
    run_torch "$r"
    run_sk "$r"
    run_before "$r"
  fi
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ -n ${RESULTS:-} ]]; then cp "$tmp/results.txt" "$RESULTS"; fi
echo

"$py" - "$tmp/results.txt" "$peak" "$clock" <<'EOF'
import sys

runs, mflop, order = {}, {}, []
peak, clock = float(sys.argv[2]), sys.argv[3]
for line in open(sys.argv[1]):
    # WHO ROUND LAYER PASS GFLOP/s MS MFLOP CPU-GFLOP/s
    who, _, layer, pss, gf, _, mf, cgf = line.split()[:8]
    key = (layer, pss)
    if key not in order:
        order.append(key)
    runs.setdefault((who, key), []).append(float(cgf if clock == "cpu" else gf))
    mflop[key] = float(mf)


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


before = any(w == "before" for w, _ in runs)
rows = [("layer", "pass", "MFLOP") + (("before GFLOP/s",) if before else ()) +
        ("scorekit GFLOP/s", "% peak", "torch GFLOP/s", "% peak", "scorekit ÷ torch") +
        (("after ÷ before",) if before else ()) + ("spread sk", "spread torch")]
for key in order:
    sk, t, b = (runs.get((w, key), []) for w in ("sk", "torch", "before"))
    s, tt, bb = (median(v) if v else 0.0 for v in (sk, t, b))
    pct = lambda g: f"{100 * g / peak:.1f} %" if peak > 0 else "–"
    spread = lambda v: f"{min(v) / max(v):.2f}" if v else "–"
    rows.append((key[0], key[1], f"{mflop[key]:.0f}") + ((f"{bb:.1f}",) if before else ()) +
                (f"{s:.1f}", pct(s), f"{tt:.1f}", pct(tt), f"{s / tt:.2f}×" if tt else "–") +
                ((f"{s / bb:.1f}×" if bb else "–",) if before else ()) + (spread(sk), spread(t)))
w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
for i, r in enumerate(rows):
    print("| " + " | ".join(c.ljust(w[j]) if j < 2 else c.rjust(w[j]) for j, c in enumerate(r)) + " |")
    if i == 0:
        print("| " + " | ".join("-" * (w[j] - 1) + (":" if j >= 2 else "-") for j in range(len(r))) + " |")
print(f"\npeak = {peak:.1f} GFLOP/s: bench/peak.c's faster FMA loop on the same threads ({clock} clock).")
print("Cells are medians of the rounds' medians; spread = worst/best round (1.00 = steady).")
EOF
