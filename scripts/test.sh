#!/usr/bin/env bash
# Sets up dependencies, builds everything and runs every test (unit, kernel,
# e2e) through ctest. Run as root: kernel tests load BPF programs.
# Extra arguments go to ctest (e.g. -L unit, -R http1).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
BUILD_DIR=${SONDE_BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSONDE_BUILD_TESTS=ON -DSONDE_BUILD_BENCH=ON
cmake --build "$BUILD_DIR" -j"$(nproc)"

cd "$BUILD_DIR"
# Kernel and e2e tests start real servers and agents: run them one at a time.
# A test that fails is retried (at most twice more) so one timing-dependent
# e2e run cannot hide the result of the other ~240; a consistent failure still fails.
ctest --output-on-failure --timeout 900 --repeat until-pass:3 "$@"
cd - >/dev/null

# libFuzzer targets under ASan + UBSan, 20 s each (9 targets: ~3 min), in
# their own clang build (build-fuzz). SONDE_SKIP_FUZZ=1 skips them.
if [ "${SONDE_SKIP_FUZZ:-0}" != 1 ] && [ $# -eq 0 ]; then
  bash scripts/fuzz.sh "${SONDE_FUZZ_SECONDS:-20}"
fi
