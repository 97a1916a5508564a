# shellcheck shell=bash
# Sourced by bench/run.sh and bench/ald.sh: the build, the PyTorch
# configurations they compare, and the wait for quiet CPUs.

# Configures every time (it is quick) because CMake globs bench/*.c: a new
# benchmark source gets its target only from a fresh configure. Two jobs at
# most, so that on a 2-core machine the build leaves room for anything else
# that is being timed.
sk_build() {
  local root=$1 build=$2
  shift 2
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSK_BUILD_TESTS=OFF >/dev/null
  cmake --build "$build" -j2 --target "$@" >/dev/null
}

# PyTorch at its best, not at its defaults: each workload is timed in every
# configuration and the fastest is reported. A configuration is the
# environment (`found`: as the shell has it; `tuned`: with TUNED_ENV added),
# torch's thread count (torch.set_num_threads) and OpenBLAS's
# (OPENBLAS_NUM_THREADS). The two counts are separate because Debian's torch
# does its matrix products in the pthread OpenBLAS, whose own pool
# torch.set_num_threads does not limit.
#
# TUNED_ENV: OpenBLAS's AVX-512 kernels (the environment may force others:
# the one of docs/PERFORMANCE.md exports OPENBLAS_CORETYPE=Haswell, its AVX2
# ones), and glibc malloc thresholds
# raised so that each step's activations are not mmap'd and page-faulted
# afresh (32 MiB is the largest mmap threshold glibc accepts; the big
# workloads' activations are 8 MiB).
TUNED_ENV=(OPENBLAS_CORETYPE=SkylakeX
  GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296)

# Prints one configuration per line: ENV TORCH_THREADS OPENBLAS_THREADS.
# TORCH_CONFIGS=full (default) is the grid {found, tuned} × {1, 2} × {1, 2};
# TORCH_CONFIGS=quick a subset for shorter runs: found 1/1, tuned 1/1, 2/2, 2/1.
torch_configs() {
  local e t b
  case ${TORCH_CONFIGS:-full} in
  full)
    for e in found tuned; do
      for t in 1 2; do
        for b in 1 2; do echo "$e $t $b"; done
      done
    done
    ;;
  quick) printf '%s\n' "found 1 1" "tuned 1 1" "tuned 2 2" "tuned 2 1" ;;
  *)
    echo "TORCH_CONFIGS must be full or quick, not '$TORCH_CONFIGS'" >&2
    return 2
    ;;
  esac
}

# The environment assignments of configuration ENV OPENBLAS_THREADS, one a line.
torch_env() {
  echo "OPENBLAS_NUM_THREADS=$2"
  if [[ $1 == tuned ]]; then printf '%s\n' "${TUNED_ENV[@]}"; fi
}

# Percent of CPU time idle over the next half second, from /proc/stat.
idle_pct() {
  local _ a b c d e f g h i1 t1
  read -r _ a b c d e f g h _ </proc/stat
  t1=$((a + b + c + d + e + f + g + h)) i1=$d
  sleep 0.5
  read -r _ a b c d e f g h _ </proc/stat
  echo $((100 * (d - i1) / (a + b + c + d + e + f + g + h - t1 + 1)))
}

# Other processes on a 2-core machine distort a 2-thread run badly, so each
# measurement waits (up to QUIET_WAIT seconds, default 15) until the CPUs are
# ≥ 90% idle; waited_out counts the measurements that started anyway.
waited_out=0
wait_quiet() {
  local deadline=$((SECONDS + ${QUIET_WAIT:-15}))
  while (($(idle_pct) < 90)); do
    if ((SECONDS >= deadline)); then
      waited_out=$((waited_out + 1))
      return
    fi
  done
}
