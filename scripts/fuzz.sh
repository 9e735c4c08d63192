#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang-14 under ASan + UBSan in
# their own build directory and runs each for a bounded time through ctest
# (label "fuzz"). A crash fails the run; libFuzzer leaves the input as
# crash-* in the test's working directory: fix the bug and commit the input
# under tests/fuzz/corpus/<target>/ as a regression seed.
#   scripts/fuzz.sh [seconds per target, default 20]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
dir=${SONDE_FUZZ_BUILD_DIR:-build-fuzz}
if ! command -v clang++-14 >/dev/null 2>&1; then
  echo "fuzz.sh: clang++-14 missing (scripts/setup.sh installs clang-14 and libfuzzer-14-dev)" >&2
  exit 1
fi
CC=clang-14 CXX=clang++-14 cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSONDE_FUZZ=ON \
  -DSONDE_BUILD_TESTS=OFF -DSONDE_BUILD_BENCH=OFF -DSONDE_FUZZ_SECONDS="$seconds" >/dev/null
targets=$(sed -n 's/^sonde_fuzz_target(\([a-z0-9_]*\).*/\1_fuzz/p' tests/fuzz/CMakeLists.txt)
# shellcheck disable=SC2086
cmake --build "$dir" -j"$(nproc)" --target $targets
cd "$dir"
ctest -L fuzz --output-on-failure
