#!/usr/bin/env bash
# Builds qiloop and runs the hello_loop demo (nested and attached mode).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake --preset dev >/dev/null
cmake --build --preset dev --target hello_loop
QT_QPA_PLATFORM=offscreen ./build/dev/python-free-examples/hello_loop/hello_loop
