#!/usr/bin/env python3
"""The Python side of bench_qt: asyncio.to_thread on asyncio and on uvloop.

bench_qt runs this script in the same run as its C++ contenders and sets the
figures beside theirs. The program is the one bench_qt.cpp's scenario 2
describes, line for line:

  to_thread  N sequential round trips: v = await asyncio.to_thread(plus_one, v),
             plus_one returning its argument + 1, on the loop's default
             executor (a ThreadPoolExecutor of min(32, cores + 4) threads,
             as qiloop's default executor)

Scenarios 1 and 3 (Qt signals) have no Python peer: asyncio has no signals.

Usage: qt_peers.py TO_THREAD_N RUNS
Prints one JSON object: {"asyncio": {"to_thread": ns}, "uvloop": {...}},
each figure the median over RUNS runs of nanoseconds per round trip. uvloop
is left out when it is not installed (Debian: python3-uvloop).
"""
import asyncio
import sys
import time

import peer_runner


def plus_one(i):
    return i + 1


async def to_thread_program(n):
    v = 0
    t0 = time.perf_counter()
    for _ in range(n):
        v = await asyncio.to_thread(plus_one, v)
    elapsed = time.perf_counter() - t0
    assert v == n
    return elapsed


PROGRAMS = (("to_thread", to_thread_program),)


def main():
    to_thread_n, runs = (int(a) for a in sys.argv[1:3])
    sizes = {"to_thread": to_thread_n}
    peer_runner.report(PROGRAMS, sizes, runs)


if __name__ == "__main__":
    main()
