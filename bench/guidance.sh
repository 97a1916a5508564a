#!/usr/bin/env bash
# Classifier-free guidance against classifier guidance on Fashion-MNIST, with
# one network for both: a class-conditional U-Net trained with label dropout
# is guided by its own conditional branch (classifier-free), or its
# unconditional branch by a noise-conditional convnet classifier (classifier
# guidance). A second convnet, trained apart with another seed, judges the
# samples: the share it assigns to the requested class and the Fréchet
# distance in its features against the test images of that class, beside
# the same distance between two sets of those test images (the floor).
#
# Usage: bench/guidance.sh [OUT]        (default out/guidance)
#   STEPS (10000): U-Net training steps (batch 64, lr 2e-3, vesde)
#   CLF_STEPS (3000): steps of each classifier (batch 128, lr 2e-3)
#   N (50): samples a class and setting; LEVELS (300): PC noise levels
#   WEIGHTS ("0 1 3"): guidance weights; w = 0 is the unconditional branch,
#     the same for both kinds (drawn once)
#   SK (build/scorekit), PYTHON (/usr/bin/python3, with NumPy)
# Steps already done (a file that exists) are not redone: rerun to resume.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-out/guidance}
sk=${SK:-$root/build/scorekit}
py=${PYTHON:-/usr/bin/python3}
steps=${STEPS:-10000} clf_steps=${CLF_STEPS:-3000} n=${N:-50} levels=${LEVELS:-300}
weights=${WEIGHTS:-0 1 3}
mkdir -p "$out"
[ -x "$sk" ] || { echo "guidance.sh: no $sk (build first: cmake --build build)" >&2; exit 2; }
log() { echo "[$(date +%T)] $*"; }

train() { # DIR, then flags
  local dir=$1
  shift
  [ -f "$dir/model.safetensors" ] && return 0
  log "train $*"
  "$sk" train --data fashion-mnist --quiet --out "$dir" --overwrite "$@"
}
train "$out/unet" --model unet --objective vesde --conditional --label-dropout 0.1 \
  --steps "$steps" --batch-size 64 --lr 2e-3 --seed 0
train "$out/guide" --objective classifier --model convnet --steps "$clf_steps" \
  --batch-size 128 --lr 2e-3 --seed 0
train "$out/judge" --objective classifier --model convnet --steps "$clf_steps" \
  --batch-size 128 --lr 2e-3 --seed 1

# Samples: --class all gives N of each class, class after class.
draw() { # NAME, then flags
  local name=$1
  shift
  [ -f "$out/$name.npy" ] && return 0
  log "sample $name"
  "$sk" sample --model "$out/unet/model.safetensors" --class all --n "$n" --sampler pc \
    --steps "$levels" --seed 0 --out "$out/$name.npy" "$@" >"$out/$name.log"
}
for w in $weights; do
  if [ "$w" = 0 ]; then
    draw uncond --guidance 0
    continue
  fi
  draw "cfg-w$w" --guidance "$w"
  draw "cg-w$w" --guidance "$w" --classifier "$out/guide/model.safetensors"
done

# Each class's block of each file, and the judge's view of it.
"$py" - "$out" "$n" <<'EOF'
import glob, os, sys
import numpy as np
out, n = sys.argv[1], int(sys.argv[2])
for f in sorted(glob.glob(os.path.join(out, "*.npy"))):
    if "-class" in f or f.endswith("labels.npy"):
        continue
    x = np.load(f)
    for y in range(x.shape[0] // n):
        np.save(f[:-4] + f"-class{y}.npy", x[y * n:(y + 1) * n])
    np.save(f[:-4] + "-labels.npy", np.repeat(np.arange(x.shape[0] // n), n).astype(np.int32))
EOF
judge="$out/judge/model.safetensors"
for f in "$out"/*-class*.npy; do
  j=${f%.npy}.json
  [ -f "$j" ] && continue
  y=${f##*-class}
  y=${y%.npy}
  "$sk" eval --samples "$f" --data fashion-mnist-test --class "$y" --classifier "$judge" \
    --json >"$j"
done
for f in "$out"/uncond.npy "$out"/cfg-w*.npy "$out"/cg-w*.npy; do
  case $f in *-class* | *-labels*) continue ;; esac
  [ -f "${f%.npy}.png" ] || "$sk" grid --in "$f" --labels "${f%.npy}-labels.npy" \
    --cols 10 --out "${f%.npy}.png" >/dev/null
  [ -f "${f%.npy}.json" ] || "$sk" eval --samples "$f" --data fashion-mnist-test \
    --classifier "$judge" --json >"${f%.npy}.json"
done

"$py" - "$out" "$weights" <<'EOF'
import glob, json, os, sys
out, weights = sys.argv[1], sys.argv[2].split()
names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
         "Sneaker", "Bag", "Ankle boot"]
cols = [("uncond", "w = 0")]
for w in weights:
    if w != "0":
        cols += [(f"cfg-w{w}", f"free w = {w}"), (f"cg-w{w}", f"clf w = {w}")]
def cell(name, y):
    with open(os.path.join(out, f"{name}-class{y}.json")) as f:
        return json.load(f)
k = len(glob.glob(os.path.join(out, "uncond-class*.json")))
print("share the judge assigns to the requested class; Fréchet distance in its features "
      "against that class's test images (floor: two sets of them)")
print("| class | " + " | ".join(c[1] for c in cols) + " | Fréchet " +
      " / ".join(c[1] for c in cols) + " | floor |")
print("|" + " --- |" * (len(cols) + 3))
mean_s = [0.0] * len(cols)
mean_f = [0.0] * len(cols)
mean_floor = 0.0
for y in range(k):
    cells = [cell(c[0], y) for c in cols]
    for i, c in enumerate(cells):
        mean_s[i] += c["classifier_share"] / k
        mean_f[i] += c["frechet"] / k
    mean_floor += cells[0]["frechet_floor"] / k
    print(f"| {names[y] if k == 10 else y} | " +
          " | ".join(f"{c['classifier_share']:.2f}" for c in cells) + " | " +
          " / ".join(f"{c['frechet']:.2f}" for c in cells) +
          f" | {cells[0]['frechet_floor']:.2f} |")
print("| mean | " + " | ".join(f"{s:.2f}" for s in mean_s) + " | " +
      " / ".join(f"{f:.2f}" for f in mean_f) + f" | {mean_floor:.2f} |")
print()
print("all classes together (Fréchet against the whole test set, floor, judge accuracy on "
      "test images):")
for name, label in cols:
    with open(os.path.join(out, name + ".json")) as f:
        j = json.load(f)
    print(f"  {label:12s} Fréchet {j['frechet']:.3f} (floor {j['floor']['frechet']:.3f}); "
          f"judge accuracy on test images {j.get('data_accuracy', float('nan')):.3f}")
EOF
