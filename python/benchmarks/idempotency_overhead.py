"""Per-call cost of the idempotency cache's `run` on the memory store, beside a bare call,
in one run (and of a breaker rejection with and without a Registry's event pump).

    python python/benchmarks/idempotency_overhead.py [N]

Prints one line per case: microseconds per call (best of 5 rounds of N calls).
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Callable

import seawall

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000


def best(label: str, round_: Callable[[int], None], n: int = N) -> float:
    times = []
    for _ in range(5):
        started = time.perf_counter()
        round_(n)
        times.append(time.perf_counter() - started)
    per = min(times) / n * 1e6
    print(f"{label:<58} {per:7.3f} us/call")
    return per


def result() -> dict:
    return {"id": "ch_1", "amount": 100}


def bare(n: int) -> None:
    f = result
    for _ in range(n):
        f()


replay_cache = seawall.IdempotencyCache()
replay_cache.run("k", result)


def replayed(n: int) -> None:
    run, f = replay_cache.run, result
    for _ in range(n):
        run("k", f)


def replayed_fp(n: int) -> None:
    run, f = replay_cache.run, result
    fp = {"amount": 100}
    replay_cache.run("kfp", f, fingerprint=fp)
    for _ in range(n):
        run("kfp", f, fingerprint=fp)


fresh_cache = seawall.IdempotencyCache(max_entries=50 * N, max_bytes=1 << 34, max_result_bytes=1 << 20)
counter = [0]


def fresh(n: int) -> None:
    run, f = fresh_cache.run, result
    base = counter[0]
    counter[0] += n
    keys = [f"key-{i}" for i in range(base, base + n)]
    for k in keys:
        run(k, f)


bounded_cache = seawall.IdempotencyCache()  # 10 000 entries: every fresh run evicts one result
bcounter = [0]


def fresh_bounded(n: int) -> None:
    run, f = bounded_cache.run, result
    base = bcounter[0]
    bcounter[0] += n
    keys = [f"key-{i}" for i in range(base, base + n)]
    for k in keys:
        run(k, f)


async_cache = seawall.IdempotencyCache(max_entries=50 * N, max_bytes=1 << 34)


async def aresult() -> dict:
    return {"id": "ch_1", "amount": 100}


def replayed_async(n: int) -> None:
    async def main() -> None:
        await async_cache.run_async("k", aresult)
        run = async_cache.run_async
        for _ in range(n):
            await run("k", aresult)

    asyncio.run(main())


def bare_async(n: int) -> None:
    async def main() -> None:
        for _ in range(n):
            await aresult()

    asyncio.run(main())


def rejections(breaker: seawall.CircuitBreaker) -> Callable[[int], None]:
    breaker.force_open()

    def go(n: int) -> None:
        acquire, open_ = breaker.try_acquire, seawall.BreakerOpen
        for _ in range(n):
            try:
                acquire()
            except open_:
                pass

    return go


if __name__ == "__main__":
    print(f"seawall {seawall.__version__}, Python {sys.version.split()[0]}, {N} calls per round")
    best("bare call of fn()", bare)
    best("run(key, fn): replay (JSON result)", replayed)
    best("run(key, fn, fingerprint={...}): replay", replayed_fp)
    best("run(key, fn): fresh (claim + fn + json + complete)", fresh)
    best("run(key, fn): fresh, store at max_entries (evicts)", fresh_bounded)
    best("await fn() (async, bare)", bare_async)
    best("await run_async(key, fn): replay", replayed_async)
    best("breaker rejection (standalone)", rejections(seawall.CircuitBreaker(name="solo")))
    best("breaker rejection (in a Registry: event pump)", rejections(seawall.Registry().breaker("reg")))
