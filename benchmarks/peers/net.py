#!/usr/bin/env python3
"""The exchanges of bench_net, in Python, on asyncio and on uvloop.

bench_net runs this script in the same run as its C++ contenders and sets
the figures beside theirs. Over loopback TCP, with TCP_NODELAY, one loop
running the echo server and its client, the client sends SIZE bytes, reads
the SIZE bytes the server echoes, and repeats (stop and wait):

  echo_*  SIZE = 64 KiB          figure: ns per exchange (bench_net: MiB/s)
  ping_*  SIZE = 64 bytes        figure: ns per round trip (round trips/s)

each once through protocols (asyncio.Protocol on both sides:
loop.create_server / loop.create_connection) and once through streams
(asyncio.start_server / open_connection; the server reads what is there,
writes it back and drains; the client writes, drains, readexactly(SIZE)).
The client checks that every byte echoed is the byte it sent.

  echo_tls_*  the 64 KiB echo over TLS 1.3 (ssl=, server_hostname
              "localhost"), with the certificate bench_net made

and in memory, no socket: an asyncio.StreamReader(limit=2 MiB) fed with
feed_data and read with await readuntil(b"\r\n"):

  scan_burst  BURST bytes of b"\r" then b"\n", read back whole
              figure: ns per byte fed (bench_net: MiB/s)
  scan_lines  blocks of 1,000 lines of 80 bytes, each block fed at once,
              read back line by line     figure: ns per line (lines/s)

The clock runs from the feed to the return of the read; every result is
compared with what was fed (a burst after the clock stops). Without I/O
the loop is not involved: uvloop runs asyncio's own StreamReader, so its
figures are asyncio's again (kept: the harness runs every program on both).

Usage: net.py ECHO_N PING_N BURST BURST_N LINE_N RUNS [CERT KEY]
(BURST_N bursts, LINE_N lines per run.)
Prints one JSON object: {"asyncio": {"echo_protocols": ns, ...}, "uvloop":
{...}}, each figure the median over RUNS runs of nanoseconds per exchange
(per byte, per line). uvloop is left out when it is not installed (Debian:
python3-uvloop); the TLS figures without CERT and KEY.
"""
import asyncio
import functools
import socket
import ssl
import sys
import time

import peer_runner

ECHO_SIZE = 64 * 1024
PING_SIZE = 64
READ_SIZE = 256 * 1024  # the most one read takes, as asyncio's max_size
SCAN_LIMIT = 2 * 1024 * 1024  # the readuntil rows' reader limit
LINE_SIZE = 80
BLOCK_LINES = 1000


def message(size):
    """What the client sends: the pattern bench_net sends (i % 251)."""
    return bytes(i % 251 for i in range(size))


class Tls:
    """The contexts of both ends, or none (plain TCP)."""

    def __init__(self, cert=None, key=None):
        self.server = self.client = None
        if cert:
            self.server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.server.load_cert_chain(cert, key)
            self.client = ssl.create_default_context(cafile=cert)
            for c in (self.server, self.client):
                c.minimum_version = ssl.TLSVersion.TLSv1_3

    def connect_kwargs(self):
        return {"ssl": self.client, "server_hostname": "localhost"} if self.client else {}


def check_tls13(tls, writer_or_transport):
    if tls.client:
        assert writer_or_transport.get_extra_info("ssl_object").version() == "TLSv1.3"


def nodelay(transport):
    # asyncio sets TCP_NODELAY on its TCP transports already; said here so
    # that every loop (uvloop included) runs with it.
    transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class EchoServer(asyncio.Protocol):
    def connection_made(self, transport):
        nodelay(transport)
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class Client(asyncio.Protocol):
    def __init__(self, message, n, done):
        self.message, self.left, self.done, self.got = message, n, done, 0
        self.view = memoryview(message)

    def connection_made(self, transport):
        nodelay(transport)
        self.transport = transport

    def start(self):
        self.transport.write(self.message)

    def data_received(self, data):
        end = self.got + len(data)
        assert self.view[self.got:end] == data, "the server echoed other bytes than were sent"
        self.got = end
        if self.got < len(self.message):
            return
        self.got = 0
        self.left -= 1
        if self.left:
            self.transport.write(self.message)
        else:
            self.done.set_result(None)


async def protocols_program(size, tls, n):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoServer, "127.0.0.1", 0, ssl=tls.server)
    port = server.sockets[0].getsockname()[1]
    done = loop.create_future()
    transport, client = await loop.create_connection(
        lambda: Client(message(size), n, done), "127.0.0.1", port, **tls.connect_kwargs())
    check_tls13(tls, transport)
    t0 = time.perf_counter()
    client.start()
    await done
    elapsed = time.perf_counter() - t0
    transport.close()
    server.close()
    await server.wait_closed()
    return elapsed


async def streams_program(size, tls, n):
    async def echo(reader, writer):
        nodelay(writer.transport)
        while data := await reader.read(READ_SIZE):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=tls.server)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port, **tls.connect_kwargs())
    nodelay(writer.transport)
    check_tls13(tls, writer)
    sent = message(size)
    t0 = time.perf_counter()
    for _ in range(n):
        writer.write(sent)
        await writer.drain()
        assert await reader.readexactly(size) == sent, "the server echoed other bytes than were sent"
    elapsed = time.perf_counter() - t0
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    return elapsed


def lines_block():
    """bench_net's lines_block(): line i is "%06d:", letters shifted by i, CRLF."""
    lines = []
    for i in range(BLOCK_LINES):
        head = b"%06d:" % i
        body = bytes(ord("a") + (i + j) % 26 for j in range(len(head), LINE_SIZE - 2))
        lines.append(head + body + b"\r\n")
    return lines


async def burst_program(size, n):
    """n bytes' worth of bursts (at least one); seconds spent in them."""
    data = b"\r" * size + b"\n"
    reader = asyncio.StreamReader(limit=SCAN_LIMIT)
    elapsed = 0.0
    for _ in range(max(n // (size + 1), 1)):
        t0 = time.perf_counter()
        reader.feed_data(data)
        got = await reader.readuntil(b"\r\n")
        elapsed += time.perf_counter() - t0
        assert got == data, "readuntil returned other bytes than the burst fed"
    return elapsed


async def lines_program(n):
    lines = lines_block()
    block = b"".join(lines)
    reader = asyncio.StreamReader(limit=SCAN_LIMIT)
    t0 = time.perf_counter()
    done = 0
    while done < n:
        k = min(n - done, BLOCK_LINES)
        reader.feed_data(block[:k * LINE_SIZE])
        for i in range(k):
            assert await reader.readuntil(b"\r\n") == lines[i], "readuntil returned another line than was fed"
        done += k
    return time.perf_counter() - t0


def main():
    echo_n, ping_n, burst, burst_n, line_n, runs = (int(a) for a in sys.argv[1:7])
    plain, tls = Tls(), Tls(*sys.argv[7:9])
    programs = [
        ("echo_protocols", functools.partial(protocols_program, ECHO_SIZE, plain)),
        ("echo_streams", functools.partial(streams_program, ECHO_SIZE, plain)),
        ("ping_protocols", functools.partial(protocols_program, PING_SIZE, plain)),
        ("ping_streams", functools.partial(streams_program, PING_SIZE, plain)),
    ]
    sizes = {"echo_protocols": echo_n, "echo_streams": echo_n, "ping_protocols": ping_n, "ping_streams": ping_n}
    if tls.client:
        programs += [
            ("echo_tls_protocols", functools.partial(protocols_program, ECHO_SIZE, tls)),
            ("echo_tls_streams", functools.partial(streams_program, ECHO_SIZE, tls)),
        ]
        sizes.update(echo_tls_protocols=echo_n, echo_tls_streams=echo_n)
    # In bytes fed, as bench_net counts the burst row's items.
    programs += [
        ("scan_burst", functools.partial(burst_program, burst)),
        ("scan_lines", lines_program),
    ]
    sizes.update(scan_burst=burst_n * (burst + 1), scan_lines=line_n)
    peer_runner.report(programs, sizes, runs)


if __name__ == "__main__":
    main()
