#!/usr/bin/env python3
"""websocket_echo against an independent client: Python's websockets library
(Debian's python3-websockets). Usage: ws_client_peer.py PORT MAX_MESSAGE

Opens 7 sessions: JSON text and binary echo, fragmented messages, ping,
a message one byte over the limit (1009) and one exactly at it, a non-JSON
text (1011), and a client-initiated close with a code of its own. Prints
"peer: ... ok" per check and "peer: all ok" at the end; exits 1 on the
first failure."""
import asyncio
import json
import sys

import websockets

PORT = int(sys.argv[1])
MAX_MESSAGE = int(sys.argv[2])
URI = f"ws://127.0.0.1:{PORT}/websocket"


def check(condition, what):
    if not condition:
        print(f"peer: FAILED: {what}", flush=True)
        sys.exit(1)


def connect():
    # No keepalive pings of the library's own, and room for what the server
    # may send back.
    return websockets.connect(URI, ping_interval=None, max_size=4 * MAX_MESSAGE, open_timeout=10, close_timeout=10)


async def echo():
    async with connect() as ws:
        message = {"output": "Sent from my browser!", "unicode": "κόσμε 🌍", "n": [1, 2, 3]}
        await ws.send(json.dumps(message))
        reply = json.loads(await ws.recv())
        check(reply["echo"] == message, f"echo: {reply}")
        check(reply["output"].startswith("I have received this message from you : {"), reply["output"])
        check(reply["output"].endswith("<br>Glad to be your webserver."), reply["output"])
        await ws.send(bytes(range(256)) * 300)  # 76800 bytes: a 64-bit length
        check(await ws.recv() == bytes(range(256)) * 300, "binary echo")
        await ws.send(b"")
        check(await ws.recv() == b"", "empty binary echo")
    check(ws.close_code == 1000, f"close code {ws.close_code}")
    print("peer: text and binary echo ok", flush=True)


async def fragmented():
    async with connect() as ws:
        # An iterable is sent as one fragmented message (text pieces must be
        # str, so they split between characters; ws_raw_peer.py splits one).
        text = json.dumps({"output": "frag€ments"}, ensure_ascii=False)
        await ws.send([text[:10], text[10:17], "", text[17:]])
        check(json.loads(await ws.recv())["echo"] == {"output": "frag€ments"}, "fragmented text")
        await ws.send([b"ab", b"", b"cd"])
        check(await ws.recv() == b"abcd", "fragmented binary")
    print("peer: fragmented messages ok", flush=True)


async def ping():
    async with connect() as ws:
        pong = await ws.ping(b"are you there?")
        await asyncio.wait_for(pong, 10)
        # A ping between two fragments of a message is answered too: the
        # library sends an async iterable's fragments as they come.
        async def slow():
            yield "{\"output\": "
            await ws.ping(b"between")
            yield "\"x\"}"
        await ws.send(slow())
        check(json.loads(await ws.recv())["echo"] == {"output": "x"}, "message around a ping")
    print("peer: ping ok", flush=True)


async def too_big():
    async with connect() as ws:
        await ws.send(b"x" * (MAX_MESSAGE + 1))
        try:
            await ws.recv()
            check(False, "an oversized message was answered")
        except websockets.ConnectionClosedError as e:
            check(e.rcvd is not None and e.rcvd.code == 1009, f"oversized: {e}")
    print("peer: oversized message: 1009 ok", flush=True)
    async with connect() as ws:
        await ws.send(b"y" * MAX_MESSAGE)
        check(await ws.recv() == b"y" * MAX_MESSAGE, "a message exactly at the limit")
    print("peer: message at the limit ok", flush=True)


async def not_json():
    async with connect() as ws:
        await ws.send("this is not JSON")
        try:
            await ws.recv()
            check(False, "a non-JSON text was answered")
        except websockets.ConnectionClosedError as e:
            check(e.rcvd is not None and e.rcvd.code == 1011, f"not JSON: {e}")
            check(e.rcvd.reason == "internal error", f"reason {e.rcvd.reason!r}")
    print("peer: handler failure: 1011 ok", flush=True)


async def client_close():
    async with connect() as ws:
        await ws.close(code=4000, reason="done here")
        check(ws.close_code == 4000, f"the server echoes the code: {ws.close_code}")
    print("peer: client close 4000 ok", flush=True)


async def main():
    for step in (echo, fragmented, ping, too_big, not_json, client_close):
        await asyncio.wait_for(step(), 20)
    print("peer: all ok", flush=True)


asyncio.run(main())
