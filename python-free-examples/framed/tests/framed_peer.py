#!/usr/bin/env python3
"""An independent client of framed_server, on Python's asyncio.

    framed_peer.py PORT [HOST]

Three connections, each a line of output, then "peer: all ok" (status 0):
  1. echo: "hello"; a frame split across writes (the prefix itself cut in
     two, with pauses between the pieces); three frames in one write; a
     0-length frame; a large frame (768 KiB) - each must come back as sent;
  2. oversize: a prefix announcing 2 GiB - the server must close the
     connection without a reply;
  3. truncated: a prefix announcing 10 bytes, 3 bytes, then EOF - the
     server must close the connection without a reply.
Any failure is an exception (status 1). Every wait is bounded.
"""
import asyncio
import struct
import sys

TIMEOUT = 20.0


def frame(payload: bytes) -> bytes:
    return struct.pack("<L", len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = struct.unpack("<L", await reader.readexactly(4))
    return await reader.readexactly(size)


async def expect_echo(reader, payload: bytes, what: str) -> None:
    got = await asyncio.wait_for(read_frame(reader), TIMEOUT)
    if got != payload:
        raise AssertionError(f"{what}: sent {len(payload)} bytes, got {len(got)} back (or different bytes)")


async def expect_closed_without_reply(reader, what: str) -> None:
    try:
        rest = await asyncio.wait_for(reader.read(), TIMEOUT)  # to EOF
    except ConnectionResetError:  # closed with our bytes unread: a reset, no reply either
        return
    if rest:
        raise AssertionError(f"{what}: the server replied {rest[:32]!r} instead of closing")


async def echo(host: str, port: int) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(frame(b"hello"))
    await writer.drain()
    await expect_echo(reader, b"hello", "hello")

    split = frame(b"split across writes")
    for piece in (split[:2], split[2:7], split[7:]):
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.05)
    await expect_echo(reader, b"split across writes", "split frame")

    several = [b"one", b"two", b"three"]
    writer.write(b"".join(frame(p) for p in several))
    await writer.drain()
    for p in several:
        await expect_echo(reader, p, "several in one write")

    writer.write(frame(b""))
    await writer.drain()
    await expect_echo(reader, b"", "0-length frame")

    large = bytes((i * 131 + 7) % 251 for i in range(768 * 1024))
    writer.write(frame(large))
    await writer.drain()
    await expect_echo(reader, large, "large frame")

    writer.close()
    await writer.wait_closed()
    print("peer: echo ok (hello, split, several, empty, 768 KiB)", flush=True)


async def oversize(host: str, port: int) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(struct.pack("<L", 2**31) + b"not really two gigabytes")
    await writer.drain()
    await expect_closed_without_reply(reader, "oversize prefix")
    writer.close()
    print("peer: oversize prefix: closed by the server", flush=True)


async def truncated(host: str, port: int) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(struct.pack("<L", 10) + b"abc")
    writer.write_eof()
    await expect_closed_without_reply(reader, "truncated frame")
    writer.close()
    print("peer: truncated frame: closed by the server", flush=True)


async def main(port: int, host: str) -> None:
    await echo(host, port)
    await oversize(host, port)
    await truncated(host, port)
    print("peer: all ok", flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"))
