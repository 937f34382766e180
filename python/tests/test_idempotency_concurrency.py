"""Races: 8 threads and 200 asyncio tasks on the same keys run each key's function once and
hand every caller the same result; with injected owner crashes (the owner abandons its
lease, and the ManualClock is advanced past it), still exactly one completed result per key.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter, defaultdict
from typing import Any, Dict, List

import seawall

KEYS = [f"order-{i}" for i in range(40)]


def run_threads(n: int, target: Any) -> None:
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
        assert not t.is_alive(), "a racing thread did not finish"


def test_eight_threads_run_each_key_once() -> None:
    cache = seawall.IdempotencyCache(lease=10.0)
    runs: Counter = Counter()
    lock = threading.Lock()
    results: Dict[str, List[Any]] = defaultdict(list)

    def work(key: str, worker: int) -> Dict[str, Any]:
        with lock:
            runs[key] += 1
        time.sleep(0.001)  # widen the window for duplicates
        return {"key": key, "by": worker}

    def racer(worker: int) -> None:
        keys = KEYS[:]
        random.Random(worker).shuffle(keys)
        for key in keys:
            r = cache.run(key, work, key, worker, fingerprint={"key": key})
            with lock:
                results[key].append(r)

    run_threads(8, racer)
    assert all(runs[k] == 1 for k in KEYS), runs
    for key in KEYS:
        assert len(results[key]) == 8
        assert all(r == results[key][0] for r in results[key]), results[key]
    stats = cache.stats()
    assert (stats["executed"], stats["completed"], stats["replayed"]) == (40, 40, 40 * 7)
    assert stats["waited"] > 0  # duplicates really raced running owners (about 35 per run)


def test_two_hundred_tasks_run_each_key_once() -> None:
    cache = seawall.IdempotencyCache(lease=10.0)
    runs: Counter = Counter()

    async def work(key: str) -> str:
        runs[key] += 1
        await asyncio.sleep(0.001)
        return f"{key}:{runs[key]}"

    async def main() -> List[Any]:
        return await asyncio.gather(*(cache.run_async(KEYS[i % 20], work, KEYS[i % 20]) for i in range(200)))

    out = asyncio.run(main())
    assert all(runs[k] == 1 for k in KEYS[:20]), runs
    for i, r in enumerate(out):
        assert r == f"{KEYS[i % 20]}:1"
    assert cache.stats()["waited"] > 0  # duplicates really raced the owners


def test_owner_crashes_in_threads_leave_exactly_one_completed_result_per_key() -> None:
    clock = seawall.ManualClock()
    cache = seawall.IdempotencyCache(clock=clock, lease=5.0, wait_timeout=1e6)
    keys = KEYS[:10]
    lock = threading.Lock()
    attempts: Counter = Counter()
    completions: Counter = Counter()
    results: Dict[str, List[Any]] = defaultdict(list)
    crashes: Counter = Counter()

    def work(key: str) -> str:
        with lock:
            attempts[key] += 1
            first = attempts[key] == 1
        if first:  # the first owner of every key "crashes" after its side effect
            raise seawall.OutcomeUnknown(f"{key}: crashed")
        with lock:
            completions[key] += 1
        return f"{key}:attempt{attempts[key]}"

    done = threading.Event()
    alive = [8]

    def racer(worker: int) -> None:
        try:
            order = keys[:]
            random.Random(worker).shuffle(order)
            for key in order:
                try:
                    r = cache.run(key, work, key)
                except seawall.OutcomeUnknown:
                    with lock:
                        crashes[key] += 1
                    continue
                with lock:
                    results[key].append(r)
        finally:
            with lock:
                alive[0] -= 1
                if alive[0] == 0:
                    done.set()

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    advances = 0
    while not done.wait(0.01):
        assert time.monotonic() < deadline, "the crash race did not finish"
        with lock:
            live = alive[0]
        # Advance only when every live thread is waiting: no owner is mid-run, so only
        # abandoned (crashed) leases expire, and one waiter per key takes over.
        if live and cache.waiting == live:
            time.sleep(0.005)
            if cache.waiting == live:
                clock.advance(5.0)
                advances += 1
    for t in threads:
        t.join(5)
    assert advances >= 1
    assert all(crashes[k] == 1 for k in keys), crashes
    assert all(completions[k] == 1 for k in keys), completions
    for key in keys:
        assert len(results[key]) == 7  # every caller but the crashed one
        assert set(results[key]) == {f"{key}:attempt2"}
    stats = cache.stats()
    assert (stats["completed"], stats["abandoned"], stats["taken_over"]) == (10, 10, 10)


def test_owner_crashes_in_asyncio_tasks_leave_exactly_one_completed_result_per_key() -> None:
    clock = seawall.ManualClock()
    cache = seawall.IdempotencyCache(clock=clock, lease=5.0, wait_timeout=1e6)
    keys = KEYS[:10]
    attempts: Counter = Counter()
    completions: Counter = Counter()

    async def work(key: str) -> str:
        attempts[key] += 1
        n = attempts[key]
        await asyncio.sleep(0)
        if n == 1:
            raise seawall.OutcomeUnknown("crashed")
        completions[key] += 1
        return f"{key}:attempt{n}"

    async def caller(key: str) -> Any:
        try:
            return await cache.run_async(key, work, key)
        except seawall.OutcomeUnknown:
            return "crashed"

    async def main() -> List[Any]:
        tasks = [asyncio.ensure_future(caller(keys[i % 10])) for i in range(200)]
        for _ in range(50):
            await asyncio.sleep(0.001)
            pending = sum(1 for t in tasks if not t.done())
            if pending and cache.waiting == pending:
                clock.advance(5.0)  # every pending task waits: expire the crashed leases
            if not pending:
                break
        return await asyncio.wait_for(asyncio.gather(*tasks), 10)

    out = asyncio.run(main())
    assert Counter(out)["crashed"] == 10
    assert all(completions[k] == 1 for k in keys), completions
    for i, r in enumerate(out):
        if r != "crashed":
            assert r == f"{keys[i % 10]}:attempt2"
    stats = cache.stats()
    assert (stats["completed"], stats["abandoned"], stats["taken_over"]) == (10, 10, 10)
