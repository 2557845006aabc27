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
# The widget examples, in the modes that finish (offscreen: no display needed).
cmake --build --preset dev --target sleep_button color_dialog worker_coroutine
echo
echo "== sleep_button --clicks 1 --quit"
QT_QPA_PLATFORM=offscreen ./build/dev/python-free-examples/sleep_button/sleep_button --clicks 1 --quit
echo
echo "== color_dialog --accept '#ff8000'"
QT_QPA_PLATFORM=offscreen ./build/dev/python-free-examples/color_dialog/color_dialog --accept '#ff8000'
echo
echo "== worker_coroutine --script"
QT_QPA_PLATFORM=offscreen ./build/dev/python-free-examples/worker_coroutine/worker_coroutine --script
