#!/usr/bin/env bash
# Regenerates docs/images/<example>.png: runs every widget example of
# python-free-examples/ under Xvfb (a real X server and Qt's xcb platform
# plugin, which Debian 12 ships in libqt6gui6) with its --screenshot option.
# The PNGs are committed; scripts/docs.sh uses them as they are, so run this
# after an example's window changed, and look at the result.
#
# Usage: scripts/screenshots.sh [build-dir]   (default build/dev, where the
#        examples are built first)
set -euo pipefail
cd "$(dirname "$0")/.."

# Second stage, run by xvfb-run below: one X display for every example.
if [ "${1:-}" = --inside-xvfb ]; then
  bin=$2 out=$3 log=$4
  export QT_QPA_PLATFORM=xcb
  "$bin/sleep_button/sleep_button" --screenshot "$out/sleep_button.png" --quit
  "$bin/color_dialog/color_dialog" --accept '#ff8000' --screenshot "$out/color_dialog.png"
  "$bin/worker_coroutine/worker_coroutine" --script --screenshot "$out/worker_coroutine.png"
  # The client needs its server: a free port, and a reply after 400 ms so
  # that the animation has moved when the window is saved after the exchange.
  "$bin/framed/framed_server" --port 0 --once --reply-delay 400 >"$log" &
  server=$!
  port=
  for _ in $(seq 100); do
    port=$(sed -nE 's/.*listening on .*:([0-9]+).*/\1/p' "$log")
    [ -n "$port" ] && break
    sleep 0.05
  done
  if [ -z "$port" ]; then
    echo "screenshots: framed_server printed no port" >&2
    kill "$server"
    exit 1
  fi
  "$bin/framed/framed_client" --port "$port" --auto --quit --screenshot "$out/framed_client.png"
  wait "$server"
  # The web app fetches its own pages (the window saved before its /bye).
  "$bin/web_app_in_process/web_app_in_process" --port 0 --demo --screenshot "$out/web_app_in_process.png" >/dev/null
  exit 0
fi

scripts/deps.sh xvfb xauth
build=${1:-build/dev}
if [ "$build" = build/dev ]; then
  cmake --preset dev >/dev/null
  cmake --build --preset dev -j2 --target sleep_button color_dialog worker_coroutine framed_server framed_client \
    web_app_in_process
fi
out=docs/images
mkdir -p "$out"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
timeout 120 xvfb-run -a -s "-screen 0 1280x1024x24" "$0" --inside-xvfb \
  "$build/python-free-examples" "$out" "$log"
ls -l "$out"/*.png
