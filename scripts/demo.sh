#!/usr/bin/env bash
# The main job: install missing Debian packages, build, train a noise-
# conditional score network on the built-in mog8 data, sample it with annealed
# Langevin dynamics, and write samples.npy and samples.png.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/demo}
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
mkdir -p "$(dirname "$out")"
./build/scorekit train --data mog8 --objective ncsn --steps 4000 --lr 2e-3 --out "$out"
./build/scorekit sample --model "$out/model.safetensors" --n 2000 --steps-per-level 50 \
  --out "$out/samples.npy" --plot "$out/samples.png"
echo "done: $out/model.safetensors, $out/samples.npy, $out/samples.png, $out/log.csv"
