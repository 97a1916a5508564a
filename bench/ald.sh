#!/usr/bin/env bash
# Annealed Langevin, 10,000 particles × 10 levels × 100 steps, with a trained
# noise-conditional MLP (3 × 128 softplus): `scorekit sample` against the same
# loop in PyTorch (bench/torch_ald.py) with the same weights, side by side,
# with each side's peak RSS (/usr/bin/time -f %M). scorekit runs with its
# default threads (OpenMP's: one per core) in the environment as found;
# PyTorch in every
# configuration of TORCH_CONFIGS (bench/lib.sh: as found and tuned, torch
# threads × OPENBLAS_NUM_THREADS), and the best as-found and best tuned ones
# are compared. Both outputs are evaluated by `scorekit eval`, so the two
# samplers are seen to draw the same law. Also run by `bench/run.sh --ald`.
# Usage: bench/ald.sh [REPEATS]   (default 5; each cell is the median)
#   TORCH_CONFIGS (full | quick), QUIET_WAIT, PYTHON: as for bench/run.sh.
#   ALD_N (10000), ALD_STEPS (100 per level), ALD_TRAIN_STEPS (4000): smaller
#     values make a smoke test, not a comparable measurement.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-bench"
py=${PYTHON:-/usr/bin/python3}
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
reps=${1:-5}
n=${ALD_N:-10000} steps=${ALD_STEPS:-100} train_steps=${ALD_TRAIN_STEPS:-4000}
config_lines=$(torch_configs) # fails here on a bad TORCH_CONFIGS
mapfile -t configs <<<"$config_lines"
if [[ ! -x /usr/bin/time ]]; then
  echo "ald.sh: needs GNU time (/usr/bin/time) for the peak RSS" >&2
  exit 1
fi
sk_build "$root" "$build" scorekit_cli
sk="$build/scorekit"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$sk" train --data mog8 --objective ncsn --steps "$train_steps" --batch-size 256 --lr 2e-3 \
  --out "$tmp/m" --quiet >/dev/null
model="$tmp/m/model.safetensors"

# Each run appends "LABEL SECONDS MAXRSS_KiB" to runs.txt. scorekit's time is
# the whole command (start, model load, sampling, writing the .npy); torch's
# is its sampling loop alone, as torch_ald.py prints it.
sk_run() {
  local s e
  wait_quiet
  s=$(date +%s.%N)
  /usr/bin/time -f %M -o "$tmp/rss" "$sk" sample --model "$model" --n "$n" \
    --steps-per-level "$steps" --out "$tmp/sk.npy" >/dev/null
  e=$(date +%s.%N)
  echo "scorekit $(echo "$e - $s" | bc -l) $(tail -1 "$tmp/rss")" >>"$tmp/runs.txt"
}
torch_run() { # ENV TORCH_THREADS OPENBLAS_THREADS
  local sec
  wait_quiet
  # shellcheck disable=SC2046 # torch_env's lines are separate assignments
  sec=$(env $(torch_env "$1" "$3") /usr/bin/time -f %M -o "$tmp/rss" \
    "$py" "$root/bench/torch_ald.py" "$model" --n "$n" --steps-per-level "$steps" \
    --threads "$2" --out "$tmp/t.npy")
  echo "$1:$2:$3 $sec $(tail -1 "$tmp/rss")" >>"$tmp/runs.txt"
}

echo "# annealed Langevin, $n particles x 10 levels x $steps steps, ncmlp 3x128 softplus" \
  "(trained $train_steps steps)"
echo "# $(lscpu | sed -n 's/^Model name: *//p'), nproc $(nproc);" \
  "env as found: $(env | grep -E '^(OMP_|OPENBLAS_|GLIBC_TUNABLES=)' | sort | paste -sd' ')"
echo "# torch configurations (TORCH_CONFIGS=${TORCH_CONFIGS:-full}): env torch-threads/OpenBLAS-threads;" \
  "tuned env: ${TUNED_ENV[*]}"
echo "# median of $reps, interleaved (scorekit, then each torch configuration, per repeat);" \
  "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq "$reps"); do
  sk_run
  for c in "${configs[@]}"; do
    read -r e t b <<<"$c"
    torch_run "$e" "$t" "$b"
  done
done
echo "# measurements started without a quiet machine (waited ${QUIET_WAIT:-15} s): $waited_out"
"$py" - "$tmp/runs.txt" <<'EOF'
import statistics
import sys

secs, rss, order = {}, {}, []
for line in open(sys.argv[1]):
    who, s, kib = line.split()
    if who not in order:
        order.append(who)
    secs.setdefault(who, []).append(float(s))
    rss[who] = max(rss.get(who, 0), int(kib))
med = {w: statistics.median(v) for w, v in secs.items()}


def name(w):
    if w == "scorekit":
        return "scorekit (default threads)"
    e, t, b = w.split(":")
    return f"torch {e} {t}/{b}"


rows = [(name(w), f"{med[w]:.2f}", f"{rss[w] / 1024:.0f}") for w in order]
width = max(len(r[0]) for r in rows + [("sampler",)])
print(f"| {'sampler':{width}} | seconds | peak RSS MiB |")
print(f"| {'-' * width} | ------: | -----------: |")
for r in rows:
    print(f"| {r[0]:{width}} | {r[1]:>7} | {r[2]:>12} |")
best = {}
for env in ("found", "tuned"):
    cands = [(med[w], w) for w in order if w.split(":")[0] == env]
    if cands:
        best[env] = min(cands)
        print(f"best torch {env}: {best[env][0]:.2f} s ({name(best[env][1])})")
if best:
    t = min(best.values())[0]
    print(f"ratio (torch best / scorekit): {t / med['scorekit']:.2f}x")
EOF
echo "# scorekit's seconds include start, model load and writing the samples;" \
  "torch's are the sampling loop alone."
echo "# the two samples (scorekit; torch's last configuration), evaluated against mog8:"
for f in sk t; do
  echo "## $f: $("$sk" eval --samples "$tmp/$f.npy" --data mog8 --json)"
done
