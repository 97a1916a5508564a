#!/usr/bin/env bash
# Inpainting Fashion-MNIST test images with a trained U-Net (scorekit
# inpaint, the predictor-corrector sampler), measured: builds scorekit
# (Release, build-bench/), takes the first N test images, and for each mask
# (the bottom half, the centre 14×14 square, half the pixels at random) fills
# the missing pixels, checks that every known pixel of the output is the
# input's exactly, and scores the filled images as samples: the Fréchet
# distance in the classifier's features to test images beside its
# data-vs-data floor (scorekit eval --classifier), and the share of images
# the classifier gives their true label (scorekit eval --class Y --classifier
# on each class's images, weighted by the class counts). The same two scores
# for the images with their missing pixels set to 0 (no inpainting at all)
# and for the original images frame them. Writes a grid per mask and one
# picture of all three (a column per class: the original, then for each mask
# the input with its missing pixels grey and the output). results.txt has a
# row per mask: missing and known pixels, the inpainting's wall and CPU
# seconds, the Fréchet distance and its floor, the true-label share, and the
# distance and share of the 0-filled images.
# Usage: bench/inpaint.sh MODEL CLASSIFIER [OUT]
#   MODEL: a U-Net score model of Fashion-MNIST (model.safetensors of scorekit
#     train or demo); CLASSIFIER: a classifier of it (classifier/model.safetensors
#     of the demo, or train --objective classifier).
#   OUT (default build-bench/inpaint): inputs, outputs, grids, results.txt.
#   N (default 200): the first N test images. LEVELS (default 300): PC levels.
#   SEED (default 0). THREADS (default 2): OMP_NUM_THREADS. NICE (default 10).
#   FASHION_MNIST (default /usr/share/datasets/fashion-mnist): the IDX files.
#   PYTHON (default /usr/bin/python3; the standard library is enough).
set -euo pipefail

if [ $# -lt 2 ]; then
  sed -n '2,/^set -e/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-bench"
model=$(realpath "$1") clf=$(realpath "$2")
out=${3:-$build/inpaint}
n=${N:-200} levels=${LEVELS:-300} seed=${SEED:-0}
data=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
py=${PYTHON:-/usr/bin/python3}
export OMP_NUM_THREADS=${THREADS:-2}
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"

sk_build "$root" "$build" scorekit_cli
sk=(nice -n "${NICE:-10}" "$build/scorekit")
mkdir -p "$out"
cd "$out"

# NumPy-free .npy and IDX handling (the standard library only).
helper=$(
  cat <<'EOF'
import ast, gzip, json, struct, sys
from array import array

def save(path, shape, values, descr):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        descr, "".join("%d, " % s for s in shape))
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        f.write(array("B" if descr == "|u1" else "f", values).tobytes())

def load(path):  # float32 arrays, as scorekit writes them
    with open(path, "rb") as f:
        raw = f.read()
    hlen = struct.unpack("<H", raw[8:10])[0]
    h = ast.literal_eval(raw[10:10 + hlen].decode())
    assert h["descr"] == "<f4" and not h["fortran_order"], path
    a = array("f")
    a.frombytes(raw[10 + hlen:])
    return h["shape"], a

cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "prep":  # DIR N: in.npy (N, 1, 28, 28) uint8, labels.txt
    d, n = args[0], int(args[1])
    with gzip.open(d + "/t10k-images-idx3-ubyte.gz") as f:
        magic, count, h, w = struct.unpack(">IIII", f.read(16))
        assert magic == 2051 and count >= n
        pix = f.read(n * h * w)
    with gzip.open(d + "/t10k-labels-idx1-ubyte.gz") as f:
        magic, count = struct.unpack(">II", f.read(8))
        assert magic == 2049
        labels = list(f.read(n))
    save("in.npy", (n, 1, h, w), pix, "|u1")
    with open("labels.txt", "w") as f:
        f.write(" ".join(map(str, labels)) + "\n")
elif cmd == "check":  # KIND: the known pixels, per-class files, the 0-filled input
    kind = args[0]
    with open("labels.txt") as f:
        labels = [int(v) for v in f.read().split()]
    with open("in.npy", "rb") as f:
        raw = f.read()
    pix = raw[-len(labels) * 784:]
    shape, got = load("out-%s.npy" % kind)
    _, mask = load("mask-%s.npy" % kind)
    known = sum(1 for m in mask if m == 1)
    kept = sum(1 for j, m in enumerate(mask) if m == 1 and got[j] == pix[j])
    if kept != known or any(m not in (0.0, 1.0) for m in mask):
        sys.exit("%s: %d of %d known pixels kept" % (kind, kept, known))
    save("zero-%s.npy" % kind, shape, [pix[j] if m == 1 else 0 for j, m in enumerate(mask)], "<f4")
    zero = load("zero-%s.npy" % kind)[1]
    for y in range(10):
        rows = [i for i, l in enumerate(labels) if l == y]
        for name, src in (("out", got), ("zero", zero)):
            save("%s-%s.class%d.npy" % (name, kind, y), (len(rows),) + tuple(shape[1:]),
                 [v for i in rows for v in src[i * 784:(i + 1) * 784]], "<f4")
    print(known, len(mask) - known)
elif cmd == "orig":  # per-class files of the original images
    with open("labels.txt") as f:
        labels = [int(v) for v in f.read().split()]
    with open("in.npy", "rb") as f:
        pix = f.read()[-len(labels) * 784:]
    for y in range(10):
        rows = [i for i, l in enumerate(labels) if l == y]
        save("orig.class%d.npy" % y, (len(rows), 1, 28, 28),
             [v for i in rows for v in pix[i * 784:(i + 1) * 784]], "<f4")
elif cmd == "share":  # JSON files of eval --class: the weighted classifier share
    with open("labels.txt") as f:
        labels = [int(v) for v in f.read().split()]
    right = 0.0
    for y, path in enumerate(args):
        with open(path) as f:
            right += json.load(f)["classifier_share"] * labels.count(y)
    print("%.3f" % (right / len(labels)))
elif cmd == "field":  # FILE KEY...: a value of a JSON file
    with open(args[0]) as f:
        v = json.load(f)
    for k in args[1:]:
        v = v[k]
    print("%.3f" % v)
elif cmd == "picture":  # KIND...: rows original, then input (missing grey) and output per kind
    with open("labels.txt") as f:
        labels = [int(v) for v in f.read().split()]
    with open("in.npy", "rb") as f:
        pix = f.read()[-len(labels) * 784:]
    cols = [labels.index(y) for y in range(10)]
    rows = [[pix[i * 784 + j] for j in range(784)] for i in cols]
    for kind in args:
        _, got = load("out-%s.npy" % kind)
        _, mask = load("mask-%s.npy" % kind)
        rows += [[pix[i * 784 + j] if mask[i * 784 + j] == 1 else 128 for j in range(784)]
                 for i in cols]
        rows += [got[i * 784:(i + 1) * 784] for i in cols]
    save("picture.npy", (len(rows), 1, 28, 28), [v for r in rows for v in r], "<f4")
EOF
)
pyh() { "$py" -c "$helper" "$@"; }

pyh prep "$data" "$n"
pyh orig
# Classifier scores of a set of images: "FD FLOOR SHARE" (eval's Fréchet
# distance to test images and its floor, the share given the true label).
scores() { # PREFIX (PREFIX.npy and PREFIX.classY.npy)
  local y files=()
  "${sk[@]}" eval --samples "$1.npy" --data fashion-mnist-test --classifier "$clf" --json \
    >"$1.fd.json"
  for y in 0 1 2 3 4 5 6 7 8 9; do
    "${sk[@]}" eval --samples "$1.class$y.npy" --data fashion-mnist-test --class "$y" \
      --classifier "$clf" --json >"$1.class$y.json"
    files+=("$1.class$y.json")
  done
  echo "$(pyh field "$1.fd.json" frechet) $(pyh field "$1.fd.json" floor frechet)" \
    "$(pyh share "${files[@]}")"
}
cp in.npy orig.npy
read -r fd floor share < <(scores orig)
{
  echo "model $model"
  echo "classifier $clf"
  echo "$n test images, PC at $levels levels, seed $seed, OMP_NUM_THREADS=$OMP_NUM_THREADS," \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs"
  echo "original images: Fréchet $fd (floor $floor), classifier share of the true label $share"
  printf '%-10s %8s %8s %8s %8s %8s %8s %6s %8s %6s\n' mask missing known wall-s cpu-s \
    frechet floor share zero-fd share
} | tee results.txt
for kind in half centre random:0.5; do
  tag=${kind%%:*}
  /usr/bin/time -f '%e %U %S' -o "time-$tag.txt" "${sk[@]}" inpaint --model "$model" \
    --input in.npy --mask-kind "$kind" --steps "$levels" --seed "$seed" --out "out-$tag.npy" \
    --mask-out "mask-$tag.npy" >"inpaint-$tag.log"
  read -r wall user sys <"time-$tag.txt"
  read -r known missing < <(pyh check "$tag")
  "${sk[@]}" grid --in "out-$tag.npy" --out "grid-$tag.png" --lo 0 --hi 255 >/dev/null
  read -r fd floor share < <(scores "out-$tag")
  read -r zfd _ zshare < <(scores "zero-$tag")
  printf '%-10s %8d %8d %8.0f %8.0f %8s %8s %6s %8s %6s\n' "$tag" "$missing" "$known" "$wall" \
    "$(echo "$user + $sys" | bc)" "$fd" "$floor" "$share" "$zfd" "$zshare" | tee -a results.txt
done
pyh picture half centre random
"${sk[@]}" grid --in picture.npy --out inpaint.png --rows 7 --cols 10 --lo 0 --hi 255 >/dev/null
echo "every known pixel kept exactly; wrote $out/results.txt, grid-*.png and inpaint.png"
