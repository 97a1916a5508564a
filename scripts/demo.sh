#!/usr/bin/env bash
# The main job: install missing Debian packages, build, then `scorekit demo`:
# train a noise-conditional score network on the built-in mog8 data, sample it
# with the predictor-corrector sampler, print the metrics and write the pictures.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/demo}
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
./build/scorekit demo --out "$out"
