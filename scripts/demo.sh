#!/usr/bin/env bash
# Builds qiloop and runs the demos: hello_loop (callback ordering in nested
# and attached mode) and hello_tasks (tasks, awaiting, cancellation).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake --preset dev >/dev/null
cmake --build --preset dev --target hello_loop hello_tasks
QT_QPA_PLATFORM=offscreen ./build/dev/python-free-examples/hello_loop/hello_loop
echo
echo "== hello_tasks"
QT_QPA_PLATFORM=offscreen ./build/dev/python-free-examples/hello_tasks/hello_tasks
