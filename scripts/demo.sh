#!/usr/bin/env bash
# Builds qiloop and runs the demos: hello_loop (callback ordering in nested
# and attached mode), hello_tasks (tasks, awaiting, cancellation), and the
# ported programs of python-free-examples/ in modes that finish, offscreen:
# sleep_button, color_dialog, worker_coroutine, framed_server + framed_client,
# web_app_in_process (fetching its own pages, then /bye), websocket_echo
# (with Python's websockets as the client).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh python3-websockets
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
echo
echo "== framed (framed_server, and the Qt Widgets framed_client pressing its own button)"
cmake --build --preset dev --target framed_server framed_client
framed=./build/dev/python-free-examples/framed
server_out=$(mktemp)
"$framed/framed_server" --port 0 --once --reply-delay 300 >"$server_out" &
server=$!
for _ in $(seq 100); do grep -q listening "$server_out" && break; sleep 0.1; done
port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$server_out")
QT_QPA_PLATFORM=offscreen "$framed/framed_client" --port "$port" --auto --quit 2>/dev/null
wait "$server"
cat "$server_out"
rm -f "$server_out"
echo
echo "== web_app_in_process --port 0 --demo (it fetches its own pages as a client would, then /bye)"
cmake --build --preset dev --target web_app_in_process
QT_QPA_PLATFORM=offscreen ./build/dev/python-free-examples/web_app_in_process/web_app_in_process --port 0 --demo 2>/dev/null
echo
echo "== websocket_echo (the page at /, JSON over a WebSocket at /websocket; Python's websockets as the client)"
cmake --build --preset dev --target websocket_echo
ws_out=$(mktemp)
./build/dev/python-free-examples/websocket_echo/websocket_echo --port 0 --once >"$ws_out" &
server=$!
for _ in $(seq 100); do grep -q listening "$ws_out" && break; sleep 0.1; done
port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$ws_out")
/usr/bin/python3 - "$port" <<'PY'
import asyncio, json, sys
import websockets
async def main():
    async with websockets.connect(f"ws://127.0.0.1:{sys.argv[1]}/websocket") as ws:
        await ws.send(json.dumps({"output": "Sent from my browser!"}))
        print("client got:", json.loads(await ws.recv())["output"])
asyncio.run(main())
PY
wait "$server"
cat "$ws_out"
rm -f "$ws_out"
