#!/usr/bin/env bash
# Sample quality and bits/dim against minutes of training: scorekit and its
# PyTorch twin (bench/torch_unet_train.py) train the same U-Net, vesde
# objective and Adam from the same initial weights on Fashion-MNIST, and
# scorekit's own sampler, eval and likelihood score every checkpoint of both.
#
#   bench/quality.sh                 # MINUTES="4 8 16", results in out/quality
#   MINUTES="0.05 0.1" N=20 LIK_N=2 SAMPLE_STEPS=20 CLF_STEPS=20 \
#     LIK_ARGS="--rtol 1e-2 --atol 1e-2" bench/quality.sh               # a smoke test
#
# Minutes become step budgets at each trainer's quiet-machine rate (the
# train-b64 row of the U-Net table in docs/PERFORMANCE.md, run 1: scorekit on
# 2 threads, PyTorch in its best configuration), so the run is the same on a
# loaded machine; the wall time each run took is printed beside them.
#
# Environment:
#   MINUTES       budgets in minutes (default "4 8 16")
#   RATE_SK       scorekit's steps/s (default: 1 / the table's 2-thread seconds)
#   RATE_TORCH    PyTorch's steps/s (default: 1 / the table's best seconds)
#   RESULTS       results directory (default out/quality under the repository)
#   CLF           a scorekit convnet classifier (model.safetensors) for eval;
#                 default: trained here, CLF_STEPS steps (4500: what 3 minutes
#                 give on the quiet machine), batch 128, lr 2e-3
#   CLF_READY     a file to wait for before using CLF (e.g. the run's
#                 metrics.json, written after its classifier); CLF_WAIT
#                 seconds at most (default 3600)
#   LIK_ARGS      more flags for scorekit likelihood (e.g. --rtol 1e-2 --atol 1e-2
#                 for a smoke test)
#   N             samples a model (default 500); SAMPLE_STEPS pc levels (300);
#                 LIK_N test images for bits/dim (200)
#   SCOREKIT      the scorekit binary (default: build-bench/scorekit, built here)
#   SK_THREADS    scorekit's threads (default 2)
#   TORCH_ENV     the twin's configuration of bench/lib.sh (default tuned: 1
#                 torch thread, 1 OpenBLAS thread, TUNED_ENV)
#   PYTHON        default /usr/bin/python3 (Debian's python3-torch)
#   SCORE_ONLY=1  no training: score the checkpoints that a former run left in
#                 RESULTS for MINUTES (evaluating those not yet evaluated)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"

MINUTES=${MINUTES:-4 8 16}
RESULTS=${RESULTS:-$root/out/quality}
N=${N:-500}
SAMPLE_STEPS=${SAMPLE_STEPS:-300}
LIK_N=${LIK_N:-200}
SK_THREADS=${SK_THREADS:-2}
TORCH_ENV=${TORCH_ENV:-tuned}
PYTHON=${PYTHON:-/usr/bin/python3}
SEED=0
TRAIN=(--data fashion-mnist --model unet --objective vesde --batch-size 64 --lr 2e-3
  --seed "$SEED" --quiet)

if [[ -z ${SCOREKIT:-} ]]; then
  sk_build "$root" "$root/build-bench" scorekit_cli
  SCOREKIT=$root/build-bench/scorekit
fi
# Passive OpenMP waits: the trainers and the evaluation share the CPUs, and
# spinning threads would take them from each other (the results do not
# depend on the threads, docs/MATH.md).
sk() { OMP_NUM_THREADS=$SK_THREADS OMP_WAIT_POLICY=passive "$SCOREKIT" "$@"; }

# The train-b64 row of run 1 (wall clock, quiet CPUs) of the U-Net table:
# column 2 scorekit on 2 threads, column 5 PyTorch's best configuration.
perf=$root/docs/PERFORMANCE.md
row=$(awk '/^Run 1, wall clock, quiet CPUs/ { on = 1 } on && /^\| train-b64 \|/ { print; exit }' "$perf")
if [[ -z $row ]]; then
  echo "quality.sh: no train-b64 row under 'Run 1, wall clock, quiet CPUs' in $perf" >&2
  exit 1
fi
sec_sk=$(awk -F'|' '{ gsub(/[ s]/, "", $3); print $3 }' <<<"$row")
sec_torch=$(awk -F'|' '{ gsub(/[ s]/, "", $6); print $6 }' <<<"$row")
cfg_torch=$(awk -F'|' '{ gsub(/^ +| +$/, "", $7); print $7 }' <<<"$row")
given="${RATE_SK:+RATE_SK }${RATE_TORCH:+RATE_TORCH}"
RATE_SK=${RATE_SK:-$(awk -v s="$sec_sk" 'BEGIN { printf "%.3f", 1 / s }')}
RATE_TORCH=${RATE_TORCH:-$(awk -v s="$sec_torch" 'BEGIN { printf "%.3f", 1 / s }')}
steps_of() { awk -v m="$1" -v r="$2" 'BEGIN { s = int(m * 60 * r + 0.5); print (s < 1 ? 1 : s) }'; }

mkdir -p "$RESULTS"
log=$RESULTS/quality.log
[[ ${SCORE_ONLY:-0} == 1 ]] && log=$RESULTS/quality-score.log
exec > >(tee "$log") 2>&1
echo "quality.sh: $(date -u '+%F %T') UTC, $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
echo "rates: scorekit $RATE_SK steps/s ($SK_THREADS threads), PyTorch $RATE_TORCH steps/s ($cfg_torch)"
echo "  source: $perf, U-Net table, run 1, train-b64: scorekit 2 thr $sec_sk s, PyTorch best $sec_torch s ($cfg_torch)"
echo "  overridden by the environment: ${given:-none}"
budgets=()
for m in $MINUTES; do
  budgets+=("$m $(steps_of "$m" "$RATE_SK") $(steps_of "$m" "$RATE_TORCH")")
  echo "  $m min: scorekit $(steps_of "$m" "$RATE_SK") steps, PyTorch $(steps_of "$m" "$RATE_TORCH") steps"
done

# The twin's checkpoints.
at=$(for b in "${budgets[@]}"; do set -- $b; echo "$3"; done | paste -sd,)

# The export check: scorekit's score of the twin's last file against the
# twin's own forward of the same inputs, raw and EMA weights.
export_check() {
  local last=$RESULTS/torch/steps-${at##*,}.safetensors
  sk score --model "$last" --input "$RESULTS/torch/check_x.npy" --sigma 1 \
    --out "$RESULTS/torch/sk_raw.npy" >/dev/null
  sk score --model "$last" --input "$RESULTS/torch/check_x.npy" --sigma 1 --ema \
    --out "$RESULTS/torch/sk_ema.npy" >/dev/null
  "$PYTHON" "$root/bench/torch_unet_train.py" --check "$last" --twin "$RESULTS/torch/check_raw.npy" \
    --expect "$RESULTS/torch/sk_raw.npy"
  "$PYTHON" "$root/bench/torch_unet_train.py" --check "$last" --twin "$RESULTS/torch/check_ema.npy" \
    --expect "$RESULTS/torch/sk_ema.npy" --ema-weights
}

# A model's samples (and grid) and bits/dim, once its file is there: one
# model after another, in the background while the trainers run, so that
# the CPUs stay busy when one trainer is done.
model_of() { # TRAINER MINUTES SK_STEPS TORCH_STEPS -> file, steps, dir
  if [[ $1 == scorekit ]]; then
    echo "$RESULTS/sk-$2/model.safetensors $3 $RESULTS/sk-$2"
  else
    echo "$RESULTS/torch/steps-$4.safetensors $4 $RESULTS/torch-$2"
  fi
}
evaluate_all() {
  local b model steps dir who
  for b in "${budgets[@]}"; do
    for who in scorekit torch; do
      read -r model steps dir <<<"$(model_of $who $b)"
      if [[ -s $dir/likelihood.json && -f $dir/samples.npy ]]; then continue; fi
      until [[ -f $model ]]; do
        kill -0 "$trainers" 2>/dev/null || [[ -f $model ]] || { echo "no $model" >&2; return 1; }
        sleep 10
      done
      mkdir -p "$dir"
      local start=$SECONDS
      sk sample --model "$model" --sampler pc --steps "$SAMPLE_STEPS" --n "$N" --seed "$SEED" \
        --out "$dir/samples.npy" --grid "$dir/grid.png" >/dev/null
      # shellcheck disable=SC2086
      sk likelihood --model "$model" --data fashion-mnist-test --n "$LIK_N" --seed "$SEED" \
        ${LIK_ARGS:-} --json >"$dir/likelihood.json" 2>"$dir/likelihood.log"
      echo "evaluated $who at ${b%% *} min (step $steps) in $((SECONDS - start)) s"
    done
  done
}

if [[ ${SCORE_ONLY:-0} == 1 ]]; then
  # The checkpoints of a former run, scored again: the models not yet
  # evaluated, then the Fréchet distances and the table.
  evaluate_all
else
# The template, and the twin's initial weights: a 1-step scorekit run of the
# same configuration and seed as the chain below.
rm -rf "$RESULTS/template"
sk train "${TRAIN[@]}" --steps 1 --out "$RESULTS/template"
template=$RESULTS/template/model.safetensors
# A former run's results go first: the evaluation starts on a model as soon
# as its file is there.
rm -rf "$RESULTS/torch" "$RESULTS"/torch-* "$RESULTS"/sk-* "$RESULTS/table.tsv"

# The trainers: scorekit's chain, and the twin in the background.
(
  (
    start=$SECONDS
    # shellcheck disable=SC2046
    env $(torch_env "$TORCH_ENV" 1) "$PYTHON" "$root/bench/torch_unet_train.py" \
      --template "$template" --at "$at" --out "$RESULTS/torch" --threads 1 --seed "$SEED"
    echo "twin: trained to step ${at##*,} in $((SECONDS - start)) s of wall time"
  ) >"$RESULTS/torch.log" 2>&1 &
  twin=$!
  # scorekit: one chain resumed to each budget, each budget's run copied.
  first=1
  for b in "${budgets[@]}"; do
    set -- $b
    start=$SECONDS
    if ((first)); then
      sk train "${TRAIN[@]}" --steps "$2" --out "$RESULTS/sk-run"
    else
      sk train "${TRAIN[@]}" --steps "$2" --out "$RESULTS/sk-run" --resume "$RESULTS/sk-run"
    fi
    first=0
    cp -r "$RESULTS/sk-run" "$RESULTS/sk-$1.tmp"
    mv "$RESULTS/sk-$1.tmp" "$RESULTS/sk-$1"
    echo "scorekit: $1 min = step $2, this leg $((SECONDS - start)) s of wall time"
  done
  if ! wait "$twin"; then
    cat "$RESULTS/torch.log"
    echo "quality.sh: the twin failed" >&2
    exit 1
  fi
  tail -n 1 "$RESULTS/torch.log"
) &
trainers=$!
evaluate_all &
evaluator=$!
if ! wait "$trainers"; then
  kill "$evaluator" 2>/dev/null
  exit 1
fi
export_check
wait "$evaluator"
fi

if [[ -z ${CLF:-} ]]; then
  # A step count, not minutes: a classifier trained for 3 minutes on a loaded
  # machine is a weaker one, and its distances order models differently.
  sk train --data fashion-mnist --objective classifier --model convnet --steps "${CLF_STEPS:-4500}" \
    --batch-size 128 --lr 2e-3 --seed "$SEED" --quiet --out "$RESULTS/classifier" --overwrite
  CLF=$RESULTS/classifier/model.safetensors
fi
waited=0
while [[ ! -f $CLF || (-n ${CLF_READY:-} && ! -f $CLF_READY) ]]; do
  if ((waited >= ${CLF_WAIT:-3600})); then
    echo "quality.sh: $CLF (or ${CLF_READY:-}) not there after $waited s" >&2
    exit 1
  fi
  ((waited == 0)) && echo "waiting for $CLF ${CLF_READY:+and $CLF_READY}"
  sleep 30
  waited=$((waited + 30))
done
echo "classifier: $CLF"

# The Fréchet distance in the classifier's features, with its data-vs-data
# floor, and the table.
table=$RESULTS/table.tsv
printf 'minutes\ttrainer\tsteps\tfrechet\tfloor\tbits_dim\tbits_dim_stderr\n' >"$table"
for b in "${budgets[@]}"; do
  for who in scorekit torch; do
    read -r model steps dir <<<"$(model_of $who $b)"
    sk eval --samples "$dir/samples.npy" --data fashion-mnist-test --classifier "$CLF" \
      --seed "$SEED" --json >"$dir/eval.json"
    row=$("$PYTHON" -c '
import json, sys
e, l = (json.load(open(p)) for p in sys.argv[1:])
print(e["frechet"], e["floor"]["frechet"], l["bits_per_dim"], l["bits_per_dim_stderr"], sep="\t")
' "$dir/eval.json" "$dir/likelihood.json")
    printf '%s\t%s\t%s\t%s\n' "${b%% *}" "$who" "$steps" "$row" | tee -a "$table"
  done
done

echo
echo "Sample quality against training minutes ($N samples, pc $SAMPLE_STEPS levels; bits/dim on $LIK_N test images)"
echo "| minutes | scorekit steps | scorekit Fréchet (floor) | scorekit bits/dim | PyTorch steps | PyTorch Fréchet (floor) | PyTorch bits/dim |"
awk -F'\t' 'NR > 1 { k = $1; c = sprintf("%s | %.2f (%.2f) | %.3f ± %.3f", $3, $4, $5, $6, $7)
    if ($2 == "scorekit") { sk[k] = c; o[++n] = k } else { pt[k] = c } }
  END { print "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    for (i = 1; i <= n; i++) printf "| %s | %s | %s |\n", o[i], sk[o[i]], pt[o[i]] }' "$table"

# The two grids of the largest budget side by side, each under its caption
# (PIL, Debian's python3-pil, when it is there).
read -r m sks pts <<<"${budgets[-1]}"
"$PYTHON" - "$RESULTS/sk-$m/grid.png" "$RESULTS/torch-$m/grid.png" "$RESULTS/side-by-side.png" \
  "scorekit, $m min ($sks steps)" "PyTorch, $m min ($pts steps)" <<'EOF' || echo "no side-by-side picture (PIL?)"
import sys
from PIL import Image, ImageDraw
a, b, out, ta, tb = sys.argv[1:]
ga, gb = Image.open(a).convert("L"), Image.open(b).convert("L")
pad, cap = 16, 24
w, h = ga.width + gb.width + 3 * pad, max(ga.height, gb.height) + cap + pad
pic = Image.new("L", (w, h), 255)
d = ImageDraw.Draw(pic)
for x, g, t in ((pad, ga, ta), (2 * pad + ga.width, gb, tb)):
    pic.paste(g, (x, cap))
    d.text((x, 6), t, fill=0)
# 16 grey levels, 4 bits a pixel: half the size, the same picture to the eye.
pic.point(lambda v: v // 16 * 17).quantize(colors=16).save(out, optimize=True, bits=4)
print(f"wrote {out}")
EOF
echo "results: $RESULTS (table.tsv, */grid.png, */eval.json, */likelihood.json, side-by-side.png)"
