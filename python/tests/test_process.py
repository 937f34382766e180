"""Process safety (docs/hardening.md, "Bindings: process safety"): processes made with the
``fork`` start method after the parent used a breaker, a timeout (whose tokens run on
seawall's shared timer thread) and an idempotency cache. The children use the inherited
objects and new ones and exit cleanly; the parent keeps working afterwards. Every child is
joined with a time limit, so a deadlock after fork fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sys
import threading
import time
from typing import Any, Dict

import pytest

import seawall as sw

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="fork start method: Linux only")

JOIN = 30.0  # seconds a child may take before it counts as hung


def _wait_for(predicate: Any, limit: float = 5.0) -> bool:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def _timer_fires(seconds: float = 0.02) -> bool:
    """A system-clock token cancellation, which only seawall's timer thread can deliver."""
    token = sw.CancelToken()
    fired = threading.Event()
    token.on_cancel(lambda reason: fired.set())
    guard = token.cancel_at(sw.Deadline.after(seconds))
    ok = fired.wait(5.0) and token.reason == "deadline_exceeded"
    guard.cancel()
    return ok


def _use_everything(breaker: Any, cache: Any) -> Dict[str, Any]:
    """What a child (or the parent, afterwards) does with the inherited objects and new ones."""
    out: Dict[str, Any] = {"pid": os.getpid()}
    # The inherited breaker: open in the parent, still open here; reset, then calls go through.
    try:
        breaker.call(lambda: 1)
        out["inherited_open"] = False
    except sw.BreakerOpen:
        out["inherited_open"] = True
    breaker.reset()
    out["inherited_call"] = breaker.call(lambda: 2)
    # A new breaker through a whole cycle on a manual clock.
    clock = sw.ManualClock()
    b = sw.CircuitBreaker(name="child", consecutive_failures=1, open_duration=1.0, clock=clock)
    with pytest.raises(ZeroDivisionError):
        b.call(lambda: 1 / 0)
    out["new_open"] = b.state
    clock.advance(1.0)
    out["new_probe"] = b.call(lambda: 3)
    out["new_closed"] = b.state
    # Timeouts: the shared timer thread delivers a token's cancellation, a sync scope
    # raises after its deadline, an async scope cancels its task.
    out["timer_fires"] = _timer_fires()
    try:
        with sw.timeout(0.01) as scope:
            scope.token  # scheduled on the timer thread
            time.sleep(0.03)
        out["sync_timeout"] = False
    except sw.Timeout:
        out["sync_timeout"] = True

    async def slow() -> None:
        async with sw.timeout(0.01):
            await asyncio.sleep(5)

    try:
        asyncio.run(slow())
        out["async_timeout"] = False
    except sw.Timeout:
        out["async_timeout"] = True
    # The inherited cache replays what the parent stored; fresh keys run; a new cache works.
    out["replay"] = cache.run("parent-key", lambda: "child ran it")
    out["fresh"] = cache.run(f"child-{os.getpid()}", lambda: {"pid": os.getpid()})
    out["fresh_again"] = cache.run(f"child-{os.getpid()}", lambda: "ran twice")
    c2 = sw.IdempotencyCache(name="child-cache", max_entries=10)
    for i in range(50):
        c2.run(f"k{i}", lambda i=i: i)
    out["bounded"] = c2.stats()["executed"]
    r = sw.Registry()
    r.breaker("child-db").call(lambda: 1)
    out["registry"] = 'seawall_breaker_state{breaker="child-db"' in r.prometheus()
    return out


def _child(breaker: Any, cache: Any, q: Any) -> None:
    try:
        q.put(_use_everything(breaker, cache))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        q.put({"error": repr(exc)})
        raise


def _parent_objects() -> Any:
    breaker = sw.CircuitBreaker(name="parent", consecutive_failures=2, open_duration=60.0)
    for _ in range(2):
        with pytest.raises(ValueError):
            breaker.call(lambda: (_ for _ in ()).throw(ValueError("down")))
    assert breaker.state == "open"
    cache = sw.IdempotencyCache(name="parent-cache")
    assert cache.run("parent-key", lambda: "parent ran it") == "parent ran it"
    # The timer thread is running in the parent (started by this token).
    assert _timer_fires()
    with sw.timeout(5.0) as scope:
        assert scope.token is not None
    return breaker, cache


def _check_child(got: Dict[str, Any]) -> None:
    assert "error" not in got, got
    assert got["inherited_open"] is True
    assert got["inherited_call"] == 2
    assert (got["new_open"], got["new_probe"], got["new_closed"]) == ("open", 3, "closed")
    assert got["timer_fires"] is True, "the timer thread does not run in the forked child"
    assert got["sync_timeout"] is True and got["async_timeout"] is True
    assert got["replay"] == "parent ran it"
    assert got["fresh"] == {"pid": got["pid"]} and got["fresh_again"] == {"pid": got["pid"]}
    assert got["bounded"] == 50 and got["registry"] is True


def test_fork_children_use_inherited_and_new_objects_and_exit_cleanly() -> None:
    breaker, cache = _parent_objects()
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    children = [ctx.Process(target=_child, args=(breaker, cache, q)) for _ in range(4)]
    for p in children:
        p.start()
    results = [q.get(timeout=JOIN) for _ in children]
    for p in children:
        p.join(JOIN)
        assert p.exitcode == 0, f"child {p.pid} exit code {p.exitcode}"
    assert len({r["pid"] for r in results}) == 4
    for got in results:
        _check_child(got)
    # The parent afterwards: its objects and new ones, and its timer thread, still work.
    assert breaker.state == "open"  # the children's reset did not reach the parent
    assert cache.run("parent-key", lambda: "again") == "parent ran it"
    assert cache.peek(f"child-{results[0]['pid']}") == {"state": "absent"}
    _check_child({**_use_everything(breaker, cache), "replay": "parent ran it"})


def test_a_timer_pending_at_fork_fires_in_the_parent_only() -> None:
    token = sw.CancelToken()
    fired = threading.Event()
    token.on_cancel(lambda reason: fired.set())
    token.cancel_at(sw.Deadline.after(0.3))
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()

    def child() -> None:
        time.sleep(0.6)
        # The parent's timer did not fire here, and new timers do.
        q.put((token.cancelled, _timer_fires()))

    p = ctx.Process(target=child)
    p.start()
    assert fired.wait(5.0) and token.reason == "deadline_exceeded"
    cancelled_in_child, timer_in_child = q.get(timeout=JOIN)
    p.join(JOIN)
    assert p.exitcode == 0
    assert cancelled_in_child is False and timer_in_child is True


def test_fork_while_another_thread_waits_on_the_cache() -> None:
    """A parent thread blocked in a duplicate ``run`` (waiting on the core's waiter) while
    the process forks: the child's store is not left locked."""
    cache = sw.IdempotencyCache(name="busy", lease=30.0)
    owner_in = threading.Event()
    release = threading.Event()
    results: Dict[str, Any] = {}

    def owner() -> None:
        results["owner"] = cache.run("busy", lambda: (owner_in.set(), release.wait(10), "owner")[2])

    def duplicate() -> None:
        results["dup"] = cache.run("busy", lambda: "dup ran")

    t1 = threading.Thread(target=owner)
    t1.start()
    assert owner_in.wait(5)
    t2 = threading.Thread(target=duplicate)
    t2.start()
    assert _wait_for(lambda: cache.waiting == 1)
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()

    def child() -> None:
        state = cache.peek("busy")["state"]
        other = cache.run("other", lambda: "child")
        b = sw.CircuitBreaker()
        q.put((state, other, b.call(lambda: 5), _timer_fires()))

    p = ctx.Process(target=child)
    p.start()
    got = q.get(timeout=JOIN)
    p.join(JOIN)
    assert p.exitcode == 0
    assert got == ("in_progress", "child", 5, True)
    release.set()
    t1.join(10)
    t2.join(10)
    assert results == {"owner": "owner", "dup": "owner"}


def _pool_work(i: int) -> int:
    b = sw.CircuitBreaker(consecutive_failures=3)
    c = sw.IdempotencyCache(max_entries=100)
    total = 0
    for j in range(200):
        total += b.call(lambda: 1)
        total += c.run(f"k{j % 50}", lambda j=j: j % 50)
    with sw.timeout(1.0):
        sw.check_deadline()
    return total + i


def test_a_fork_pool_runs_many_tasks() -> None:
    _parent_objects()
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(3) as pool:
        res = pool.map_async(_pool_work, range(12))
        got = res.get(JOIN)
    expected = [200 + sum(j % 50 for j in range(200)) + i for i in range(12)]
    assert got == expected
    assert _timer_fires()
