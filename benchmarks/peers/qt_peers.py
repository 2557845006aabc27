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
import json
import statistics
import sys
import time


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


def measure(run, sizes, runs):
    out = {}
    for name, program in (("to_thread", to_thread_program),):
        n = sizes[name]
        run(program(max(n // 10, 2)))  # warm up
        out[name] = statistics.median(run(program(n)) / n * 1e9 for _ in range(runs))
    return out


def main():
    to_thread_n, runs = (int(a) for a in sys.argv[1:3])
    sizes = {"to_thread": to_thread_n}
    result = {"asyncio": measure(asyncio.run, sizes, runs)}
    try:
        import uvloop
    except ImportError:
        uvloop = None
    if uvloop is not None:
        def run_uv(coro):
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(coro)
        result["uvloop"] = measure(run_uv, sizes, runs)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
