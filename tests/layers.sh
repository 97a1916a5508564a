#!/usr/bin/env bash
# Checks that each layer of src/ (and each public header) includes only its
# own headers and those of the layers below it, as CMakeLists.txt lists them.
# Usage: layers.sh SOURCE_DIR
set -euo pipefail
cd "$1"

# The layers a layer may include, itself first. A public header belongs to the
# layer that implements it.
declare -A allowed=(
  [core]="core"
  [tensor]="tensor core"
  [graph]="graph tensor core"
  [kernels]="kernels graph tensor core"
  [io]="io tensor core"
  [data]="data tensor core"
  [eval]="eval tensor core"
  [nn]="nn graph tensor core"
  [score]="score nn data io graph tensor core"
  [plot]="plot io tensor core"
)
header_layer() {
  case $1 in
    core.h | rng.h | version.h) echo core ;;
    tensor.h) echo tensor ;;
    graph.h) echo graph ;;
    io.h | safetensors.h) echo io ;;
    data.h) echo data ;;
    eval.h) echo eval ;;
    nn.h) echo nn ;;
    score.h | sample.h | train.h) echo score ;;
    plot.h) echo plot ;;
    scorekit.h) echo all ;;
    *) echo unknown ;;
  esac
}

bad=0
check() { # FILE LAYER
  local file=$1 layer=$2 inc to
  while IFS= read -r inc; do
    case $inc in
      scorekit/*) to=$(header_layer "${inc#scorekit/}") ;;
      */*) to=${inc%%/*} ;;
      *) to=$(header_layer "$inc") ;; # a public header including a sibling
    esac
    [ "$to" = "$layer" ] && continue
    if [ "$to" = all ] || [ "$to" = unknown ] || [[ " ${allowed[$layer]:-} " != *" $to "* ]]; then
      echo "$file ($layer) includes $inc ($to)"
      bad=1
    fi
  done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$file")
}

for dir in src/*/; do
  layer=$(basename "$dir")
  [ -n "${allowed[$layer]:-}" ] || { echo "src/$layer: a folder this check does not know"; bad=1; continue; }
  while IFS= read -r f; do check "$f" "$layer"; done < <(find "$dir" -name '*.[ch]' -o -name '*.def')
done
for h in include/scorekit/*.h; do
  layer=$(header_layer "$(basename "$h")")
  [ "$layer" = all ] && continue
  check "$h" "$layer"
done
[ $bad -eq 0 ] && echo "every layer includes only itself and the layers below it"
exit $bad
