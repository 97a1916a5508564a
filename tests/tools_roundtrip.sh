#!/usr/bin/env bash
# tools/load_model.py reproduces scorekit's scores to 1e-5 for several model
# kinds, activations and noise levels, with PyTorch when installed and with
# NumPy alone (the U-Net with PyTorch only). Usage: tools_roundtrip.sh SCOREKIT
# SOURCE_DIR
set -euo pipefail
sk=$1; src=$2
py=/usr/bin/python3
if ! $py -c 'import numpy' 2>/dev/null; then echo "no numpy for $py: skipped"; exit 77; fi
backends=numpy
$py -c 'import torch' 2>/dev/null && backends="numpy torch"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
$py -c "import numpy as np; np.save('$tmp/x.npy', (np.random.RandomState(0).randn(500, 2) * 4).astype(np.float32))"
n=0
for spec in "ncsn softplus" "dsm elu" "ssm-vr silu" "esm tanh"; do
  set -- $spec
  $sk train --quiet --objective "$1" --activation "$2" --steps 30 --hidden 32 --depth 2 \
    --n-data 500 --out "$tmp/$1" >/dev/null
  # Only a noise-conditional model (ncsn's) has a σ to choose: score refuses
  # --sigma for an unconditional one.
  levels="0.05 3"
  [ "$1" = ncsn ] || levels=none
  for sigma in $levels; do
    flag=(--sigma "$sigma")
    [ "$sigma" != none ] || flag=()
    for ema in "" --ema; do
      $sk score --model "$tmp/$1/model.safetensors" --input "$tmp/x.npy" "${flag[@]}" $ema \
        --out "$tmp/s.npy"
      for b in $backends; do
        $py "$src/tools/load_model.py" "$tmp/$1/model.safetensors" --x "$tmp/x.npy" \
          "${flag[@]}" $ema --expect "$tmp/s.npy" --backend "$b" | tail -1
        n=$((n + 1))
      done
    done
  done
done
# The U-Net loads into PyTorch only (its twin, unet_class); tiny widths keep
# its few training steps to a second.
if [[ $backends == *torch* ]]; then
  $py -c "import numpy as np; np.save('$tmp/img.npy', np.random.RandomState(1).rand(64, 784).astype(np.float32))"
  $sk train --quiet --model unet --channels 8,16,16,16 --steps 3 --batch-size 8 --sigmas 3,0.05 \
    --data "$tmp/img.npy" --out "$tmp/unet" >/dev/null
  for sigma in 0.05 3; do
    for ema in "" --ema; do
      $sk score --model "$tmp/unet/model.safetensors" --input "$tmp/img.npy" --sigma $sigma $ema \
        --out "$tmp/s.npy"
      $py "$src/tools/load_model.py" "$tmp/unet/model.safetensors" --x "$tmp/img.npy" \
        --sigma $sigma $ema --expect "$tmp/s.npy" --backend torch | tail -1
      n=$((n + 1))
    done
  done
fi
echo "$n comparisons within 1e-5 ($backends)"
