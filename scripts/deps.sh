#!/usr/bin/env bash
# Installs the Debian packages scorekit needs, if any is missing
# (dataset-fashion-mnist: `--data fashion-mnist`, checked by tests/test_images.c;
# libopenmpi-dev openmpi-bin: `mpirun scorekit train|sample`, optional for the
# build, checked by the mpi_* tests).
set -euo pipefail
pkgs=(build-essential cmake libopenblas-dev libxsmm-dev zlib1g-dev pkg-config python3-numpy
  dataset-fashion-mnist libopenmpi-dev openmpi-bin)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}" >/dev/null
