#!/usr/bin/env bash
# Builds scorekit and runs the whole test suite twice: a Release build, then
# an AddressSanitizer + UndefinedBehaviorSanitizer build. Under ASan a huge
# allocation returns NULL, as malloc does, instead of aborting
# (allocator_may_return_null=1), so the out-of-memory paths are tested there too.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSK_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSK_SANITIZE=ON -DSK_WERROR=ON >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure -j"$jobs")
