"""What every peer script shares: runs each program on asyncio and, when
installed, uvloop, and prints {"asyncio": {name: ns per op}, "uvloop": ...}
as JSON for the C++ benchmark that started it (bench::run_python_peers).

A program is a function of n returning a coroutine that performs n
operations and returns the seconds they took."""
import asyncio
import json
import statistics


def measure(run, programs, sizes, runs):
    out = {}
    for name, program in programs:
        n = sizes[name]
        run(program(max(n // 10, 2)))  # warm up
        out[name] = statistics.median(run(program(n)) / n * 1e9 for _ in range(runs))
    return out


def report(programs, sizes, runs):
    result = {"asyncio": measure(asyncio.run, programs, sizes, runs)}
    try:
        import uvloop
    except ImportError:
        uvloop = None
    if uvloop is not None:
        def run_uv(coro):
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(coro)
        result["uvloop"] = measure(run_uv, programs, sizes, runs)
    print(json.dumps(result))
