"""Per-call cost of ``@seawall.timeout(1.0)`` on a no-op, sync and async, next to a bare call
(and to ``asyncio.timeout`` on Python 3.11+), measured in the same run.

    python python/benchmarks/timeout_overhead.py [N]

Prints ns per call (best of 5 repeats of N calls) and the overhead over the bare call.
"""

import asyncio
import sys
import time
import timeit

import seawall

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
REPEAT = 5


def best_ns(fn) -> float:
    return min(timeit.repeat(fn, number=N, repeat=REPEAT)) / N * 1e9


def noop():
    return None


@seawall.timeout(1.0)
def timed_noop():
    return None


def with_block():
    with seawall.timeout(1.0):
        pass


async def anoop():
    return None


@seawall.timeout(1.0)
async def timed_anoop():
    return None


async def asyncio_timeout_noop():
    async with asyncio.timeout(1.0):  # type: ignore[attr-defined]
        return None


async def async_best_ns(fn) -> float:
    # The loop runs every 1000 calls, as it would in a real program: asyncio drops the
    # cancelled timer handles of finished timeouts only when it runs.
    best = float("inf")
    for _ in range(REPEAT):
        start = time.perf_counter()
        for _ in range(N // 1000):
            for _ in range(1000):
                await fn()
            await asyncio.sleep(0)
        best = min(best, time.perf_counter() - start)
    return best / (N // 1000 * 1000) * 1e9


rows = [("sync: bare call", best_ns(noop))]
rows.append(("sync: @seawall.timeout(1.0)", best_ns(timed_noop)))
rows.append(("sync: with seawall.timeout(1.0):", best_ns(with_block)))


async def async_rows() -> None:
    rows.append(("async: bare await", await async_best_ns(anoop)))
    rows.append(("async: @seawall.timeout(1.0)", await async_best_ns(timed_anoop)))
    if sys.version_info >= (3, 11):
        rows.append(("async: asyncio.timeout(1.0)", await async_best_ns(asyncio_timeout_noop)))


asyncio.run(async_rows())

print(f"Python {sys.version.split()[0]}, seawall {seawall.__version__}, N={N}, best of {REPEAT}")
base = {"sync": rows[0][1], "async": rows[3][1]}
for name, ns in rows:
    over = ns - base[name.split(":")[0]]
    print(f"{name:36s} {ns:8.0f} ns/call   overhead {over:+8.0f} ns")
