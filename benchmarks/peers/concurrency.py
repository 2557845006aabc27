#!/usr/bin/env python3
"""The programs of bench_concurrency, in Python, on asyncio and on uvloop.

bench_concurrency runs this script in the same run as its C++ contenders and
sets the figures beside theirs. Each program is the one the C++ file
describes, line for line:

  gather  N tasks that each return their index, awaited with gather
  lock    2 tasks hand a Lock back and forth: each acquires it, yields once
          (sleep(0)) while holding it, releases it; N hand-offs in all
  queue   a producer puts N items into a Queue(maxsize=128), a consumer gets
          them

Usage: concurrency.py GATHER_N LOCK_N QUEUE_N RUNS
Prints one JSON object: {"asyncio": {"gather": ns, ...}, "uvloop": {...}},
each figure the median over RUNS runs of nanoseconds per item. uvloop is
left out when it is not installed (Debian: python3-uvloop).
"""
import asyncio
import sys
import time

import peer_runner


async def gather_program(n):
    async def child(i):
        return i

    t0 = time.perf_counter()
    results = await asyncio.gather(*(child(i) for i in range(n)))
    elapsed = time.perf_counter() - t0
    assert results[-1] == n - 1
    return elapsed


async def lock_program(n):
    lock = asyncio.Lock()
    per_task = n // 2

    async def worker():
        for _ in range(per_task):
            async with lock:
                await asyncio.sleep(0)

    t0 = time.perf_counter()
    await asyncio.gather(worker(), worker())
    return time.perf_counter() - t0


async def queue_program(n):
    q = asyncio.Queue(maxsize=128)

    async def producer():
        for i in range(n):
            await q.put(i)

    async def consumer():
        total = 0
        for _ in range(n):
            total += await q.get()
        return total

    t0 = time.perf_counter()
    _, total = await asyncio.gather(producer(), consumer())
    elapsed = time.perf_counter() - t0
    assert total == n * (n - 1) // 2
    return elapsed


PROGRAMS = (("gather", gather_program), ("lock", lock_program), ("queue", queue_program))


def main():
    gather_n, lock_n, queue_n, runs = (int(a) for a in sys.argv[1:5])
    sizes = {"gather": gather_n, "lock": lock_n, "queue": queue_n}
    peer_runner.report(PROGRAMS, sizes, runs)


if __name__ == "__main__":
    main()
