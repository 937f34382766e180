"""Soak test of the Python binding: a mixed load for SEAWALL_SOAK_SECS seconds (default 120),
with memory measured after a warm-up and at the end.

Load, round after round:
- breakers through whole cycles on a ManualClock (successes, failures, open, rejections with
  and without a fallback, half-open probes that fail and succeed), a breaker with a
  ``timeout`` option on the system clock (sync calls that run out), on_event listeners;
- timeouts: sync scopes whose token is scheduled on seawall's timer thread (some fire, most
  are unscheduled), late sync blocks, async scopes that cancel their task, CancelTokens with
  cancel_at on the system clock;
- idempotency on a bounded memory store (max_entries=500, so fresh keys evict): fresh runs,
  replays, in-progress duplicates (a held lease, a rejecting cache on the same store), errors
  that release the key, mismatches;
- a registry with max_breakers=200 fed 1000 tenant names (LRU eviction), a health check,
  and its snapshot and Prometheus text rendered every round.

Memory: RSS (/proc/self/status VmRSS) and tracemalloc (Python objects allocated after the
warm-up and still alive at the end). Fails (exit 1) when the growth after the warm-up is over
the thresholds below. Prints the figures.

    SEAWALL_SOAK_SECS=120 python bench/soak/soak.py
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
import tracemalloc

import seawall as sw

SECS = float(os.environ.get("SEAWALL_SOAK_SECS", "120"))
WARMUP = min(10.0, max(2.0, SECS * 0.1))
RSS_LIMIT_MB = float(os.environ.get("SEAWALL_SOAK_RSS_MB", "8"))  # growth after the warm-up
TRACED_LIMIT_MB = float(os.environ.get("SEAWALL_SOAK_TRACED_MB", "1"))


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Fail(Exception):
    pass


counts = {k: 0 for k in ("calls", "opened", "rejected", "fallbacks", "probes", "timeouts", "async_timeouts",
                          "tokens_fired", "fresh", "replayed", "in_progress", "mismatch", "released", "renders")}
events = {"n": 0}


def on_event(e: dict) -> None:
    events["n"] += 1


clock = sw.ManualClock()
breaker = sw.CircuitBreaker(name="cycle", consecutive_failures=3, open_duration=1.0, clock=clock,
                            half_open_max_calls=2, half_open_success_threshold=2)
breaker.on_event(on_event)
degraded = sw.CircuitBreaker(name="degraded", consecutive_failures=1, open_duration=5.0, clock=clock,
                             fallback=lambda err: "fallback")
timed = sw.CircuitBreaker(name="timed", timeout=0.0005, consecutive_failures=1000000)

store = sw.MemoryStore(max_entries=500, max_bytes=1 << 20)
cache = sw.IdempotencyCache(name="soak", store=store, lease=30.0)
rejecting = sw.IdempotencyCache(name="soak-reject", store=store, on_duplicate="reject")
cache.on_event(on_event)

registry = sw.Registry(max_breakers=200)
registry.add_check("ok", lambda: True, timeout=1.0, interval=0.0)
reg_cache = registry.idempotency_cache("reg", max_entries=200)


def boom() -> None:
    raise ConnectionError("down")


def breaker_cycle() -> None:
    for _ in range(5):
        breaker.call(lambda: 1)
        counts["calls"] += 1
    for _ in range(3):
        try:
            breaker.call(boom)
        except ConnectionError:
            pass
    if breaker.state != "open":
        raise Fail(f"breaker did not open: {breaker.snapshot()}")
    counts["opened"] += 1
    try:
        breaker.call(lambda: 1)
        raise Fail("an open breaker admitted a call")
    except sw.BreakerOpen:
        counts["rejected"] += 1
    clock.advance(1.0)
    # A failing probe re-opens; then two successful probes close.
    try:
        breaker.call(boom)
    except ConnectionError:
        pass
    clock.advance(1.0)
    for _ in range(2):
        breaker.call(lambda: 1)
        counts["probes"] += 1
    if breaker.state != "closed":
        raise Fail(f"breaker did not close: {breaker.snapshot()}")
    # Fallback while open.
    try:
        degraded.call(boom)
    except ConnectionError:
        pass
    if degraded.call(lambda: 1) != "fallback":
        raise Fail("no fallback")
    counts["fallbacks"] += 1
    degraded.reset()
    # A permit handled by hand, and one dropped without an outcome.
    p = breaker.try_acquire()
    p.success(0.001)
    breaker.try_acquire()


def timeouts(i: int) -> None:
    # A scope whose token is scheduled on the timer thread and unscheduled at exit.
    with sw.timeout(5.0) as scope:
        scope.token.on_cancel(lambda reason: None)
        sw.check_deadline()
    if i % 20 == 0:
        # A late sync block: Timeout; and a breaker call that runs out.
        try:
            with sw.timeout(0.0002):
                time.sleep(0.0005)
            raise Fail("a late block did not time out")
        except sw.Timeout:
            counts["timeouts"] += 1
        try:
            timed.call(time.sleep, 0.001)
        except sw.Timeout:
            counts["timeouts"] += 1
        # A token cancelled by the timer thread.
        tok = sw.CancelToken()
        tok.cancel_at(sw.Deadline.after(0.0001))
        child = tok.child()
        end = time.monotonic() + 2.0
        while not child.cancelled and time.monotonic() < end:
            time.sleep(0.0002)
        if not child.cancelled:
            raise Fail("the timer thread did not cancel a token")
        counts["tokens_fired"] += 1


async def async_round() -> None:
    for _ in range(5):
        try:
            async with sw.timeout(0.0005):
                await asyncio.sleep(0.01)
        except sw.Timeout:
            counts["async_timeouts"] += 1
    async with sw.timeout(1.0):
        await asyncio.sleep(0)
    await cache.run_async("async-replay", lambda: {"v": 1})


key_seq = [0]


def idempotency(i: int) -> None:
    key_seq[0] += 1
    k = f"fresh-{key_seq[0]}"
    if cache.run(k, lambda: {"n": key_seq[0], "pad": "x" * 64}, fingerprint={"k": k})["n"] != key_seq[0]:
        raise Fail("fresh run returned another result")
    counts["fresh"] += 1
    # Replays of a recent key (still in the bounded store).
    for _ in range(3):
        cache.run(k, lambda: Fail("ran twice"), fingerprint={"k": k})
        counts["replayed"] += 1
    try:
        cache.run(k, lambda: 0, fingerprint={"k": "other"})
    except sw.IdempotencyMismatch:
        counts["mismatch"] += 1
    # In progress: a held lease; the rejecting cache on the same store refuses the duplicate.
    b = cache._begin(f"held-{i % 50}")
    if b.kind == "execute":
        try:
            rejecting.run(f"held-{i % 50}", lambda: 0)
            raise Fail("a duplicate ran while the key was in progress")
        except sw.IdempotencyInProgress:
            counts["in_progress"] += 1
        cache.release(b.lease)
    # An error releases the key.
    try:
        cache.run(f"err-{i % 10}", boom)
    except ConnectionError:
        counts["released"] += 1


def registry_round(i: int) -> None:
    for j in range(5):
        b = registry.breaker(f"tenant-{(i * 5 + j) % 1000}", consecutive_failures=2)
        try:
            b.call(boom if j == 0 else (lambda: 1))
        except ConnectionError:
            pass
    reg_cache.run(f"r{i % 300}", lambda: i)
    if i % 10 == 0:
        text = registry.prometheus()
        snap = registry.snapshot()
        rep = registry.health()
        if "seawall_breaker_state" not in text or rep["status"] not in ("ok", "degraded", "down") or not snap["breakers"]:
            raise Fail("registry rendering")
        counts["renders"] += 1


def round_(i: int, loop: asyncio.AbstractEventLoop) -> None:
    breaker_cycle()
    timeouts(i)
    idempotency(i)
    registry_round(i)
    if i % 10 == 0:
        loop.run_until_complete(async_round())


def main() -> int:
    loop = asyncio.new_event_loop()
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < WARMUP:
        round_(i, loop)
        i += 1
    gc.collect()
    rss0 = rss_mb()
    tracemalloc.start()
    warm_rounds = i
    while time.monotonic() - start < SECS:
        round_(i, loop)
        i += 1
    gc.collect()
    traced, peak = tracemalloc.get_traced_memory()
    top = tracemalloc.take_snapshot().statistics("lineno")[:3]
    tracemalloc.stop()
    gc.collect()
    rss1 = rss_mb()
    loop.close()
    took = time.monotonic() - start
    growth = rss1 - rss0
    traced_mb = traced / (1 << 20)
    print(f"soak.py: {took:.1f} s ({WARMUP:.0f} s warm-up), {i} rounds ({i - warm_rounds} measured), "
          f"python {sys.version.split()[0]}, seawall {sw.__version__}")
    print("soak.py: counts " + " ".join(f"{k}={v}" for k, v in counts.items()) + f" events={events['n']}")
    print(f"soak.py: store {store.stats()}, registry breakers {len(registry.breaker_names())}")
    print(f"soak.py: RSS after warm-up {rss0:.1f} MB, at the end {rss1:.1f} MB, growth {growth:+.2f} MB (limit {RSS_LIMIT_MB} MB)")
    print(f"soak.py: tracemalloc: {traced_mb:.3f} MB allocated after the warm-up still alive (limit {TRACED_LIMIT_MB} MB), peak {peak / (1 << 20):.2f} MB")
    for stat in top:
        print(f"soak.py:   {stat}")
    ok = True
    if growth > RSS_LIMIT_MB:
        print(f"soak.py: FAILED: RSS grew {growth:.2f} MB > {RSS_LIMIT_MB} MB", file=sys.stderr)
        ok = False
    if traced_mb > TRACED_LIMIT_MB:
        print(f"soak.py: FAILED: {traced_mb:.3f} MB of Python objects still alive > {TRACED_LIMIT_MB} MB", file=sys.stderr)
        ok = False
    if min(counts.values()) == 0:
        print(f"soak.py: FAILED: a part of the load never ran: {counts}", file=sys.stderr)
        ok = False
    print("soak.py: ok" if ok else "soak.py: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Fail as exc:
        print(f"soak.py: FAILED: {exc}", file=sys.stderr)
        sys.exit(1)
