"""seawall.timeout / seawall.deadline: scopes, the ambient deadline, cancellation of
coroutines, the cooperative sync path, the breaker's `timeout` option, fork safety.

Real-clock tests use generous bounds (the machines are shared) and assert that the
cancellation really happened (the coroutine's `finally` ran, the blocked socket woke up);
ManualClock tests are exact.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import gc
import os
import socket
import sys
import threading
import time
from typing import Any, List, Optional

import pytest

import seawall
from seawall import _native

HAS_UNCANCEL = sys.version_info >= (3, 11)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def ambient() -> seawall.Deadline:
    d = seawall.current_deadline()
    assert d is not None, "no ambient deadline"
    return d


def scope_token() -> seawall.CancelToken:
    t = seawall.current_token()
    assert t is not None, "no scope token"
    return t


@pytest.fixture
def clock() -> seawall.ManualClock:
    return seawall.ManualClock()


@pytest.fixture(autouse=True)
def no_scope_leaks() -> Any:
    """Every test starts and ends outside any scope."""
    assert seawall.current_deadline() is None
    yield
    assert seawall.current_deadline() is None


# -- the Timeout error ------------------------------------------------------------------


def test_timeout_is_a_timeout_error_and_a_seawall_error(clock: seawall.ManualClock) -> None:
    with pytest.raises(TimeoutError) as e:
        with seawall.timeout(1, clock=clock):
            clock.advance(2)
    assert isinstance(e.value, seawall.Timeout) and isinstance(e.value, seawall.SeawallError)
    assert e.value.code == "SEAWALL_TIMEOUT"
    assert str(e.value) == "timed out: 1 s timeout exceeded"


# -- sync: the cooperative path ---------------------------------------------------------


def test_sync_decorator_passes_results_and_errors_through(clock: seawall.ManualClock) -> None:
    @seawall.timeout(1.0, clock=clock)
    def add(a: int, b: int = 0) -> int:
        """Adds."""
        assert seawall.current_deadline() is not None
        return a + b

    assert add(1, b=2) == 3
    assert add.__name__ == "add" and add.__doc__ == "Adds." and add.__wrapped__ is not None  # type: ignore[attr-defined]

    @seawall.timeout(1.0, clock=clock)
    def boom() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):  # in time: the error itself
        boom()

    class Service:
        @seawall.timeout(1.0, clock=clock)
        def get(self, x: int) -> int:
            return x * 2

    assert Service().get(4) == 8


def test_sync_late_return_raises_exactly_at_the_deadline(clock: seawall.ManualClock) -> None:
    @seawall.timeout(1.0, clock=clock)
    def work(took: float) -> str:
        clock.advance(took)
        return "done"

    assert work(0.999) == "done"
    with pytest.raises(seawall.Timeout):
        work(1.0)
    with pytest.raises(seawall.Timeout):
        work(5.0)


def test_sync_late_exception_becomes_the_cause(clock: seawall.ManualClock) -> None:
    with pytest.raises(seawall.Timeout) as e:
        with seawall.timeout(1, clock=clock):
            clock.advance(1.5)
            raise ConnectionError("socket closed")
    assert isinstance(e.value.__cause__, ConnectionError)

    # A BaseException that is not an Exception (KeyboardInterrupt, SystemExit) is never replaced.
    with pytest.raises(KeyboardInterrupt):
        with seawall.timeout(1, clock=clock):
            clock.advance(1.5)
            raise KeyboardInterrupt


def test_with_gives_the_scope_and_check_raises(clock: seawall.ManualClock) -> None:
    with pytest.raises(seawall.Timeout):
        with seawall.timeout(2, clock=clock) as scope:
            assert isinstance(scope, seawall.Scope)
            assert scope.timeout == 2.0 and scope.deadline.remaining() == 2.0 and not scope.expired
            assert seawall.current_deadline() == scope.deadline
            scope.check()
            seawall.check_deadline()
            clock.advance(2)
            assert scope.expired
            with pytest.raises(seawall.Timeout):
                scope.check()
            seawall.check_deadline()  # raises: the test checks that the block does not go on
            pytest.fail("check_deadline() did not raise")


def test_check_deadline_outside_any_scope_does_nothing() -> None:
    seawall.check_deadline()
    assert seawall.current_token() is None


def test_sync_real_clock() -> None:
    @seawall.timeout(0.02)
    def slow() -> None:
        time.sleep(0.1)

    start = time.monotonic()
    with pytest.raises(seawall.Timeout):
        slow()
    assert time.monotonic() - start >= 0.02

    @seawall.timeout(5)
    def fast() -> int:
        return 1

    assert fast() == 1


def test_token_wakes_blocking_io_on_time() -> None:
    """Blocking code registers a callback on the scope's token: the shared timer thread
    cancels it at the deadline while this thread is blocked in recv()."""
    a, b = socket.socketpair()
    a.settimeout(10)  # the test's own safety net
    woke: List[str] = []
    start = time.monotonic()
    try:
        with pytest.raises(seawall.Timeout):
            with seawall.timeout(0.1):
                token = seawall.current_token()
                assert token is not None and not token.cancelled

                def unblock(reason: str) -> None:
                    woke.append(reason)
                    a.shutdown(socket.SHUT_RDWR)

                token.on_cancel(unblock)
                data = a.recv(10)  # blocks until the token's callback shuts the socket down
                assert data == b""
    finally:
        a.close()
        b.close()
    took = time.monotonic() - start
    assert woke == ["deadline_exceeded"]
    assert 0.09 <= took < 5, took


def test_no_timer_is_left_after_a_scope(clock: seawall.ManualClock) -> None:
    with seawall.timeout(1, clock=clock):
        assert clock.pending_timers() == 0, "no timer until the token is asked for"
        token = scope_token()
        assert token is seawall.current_token(), "one token per scope"
        assert clock.pending_timers() == 1
    assert clock.pending_timers() == 0
    clock.advance(2)
    assert not token.cancelled, "unscheduled when the scope closed"

    base = _native.pending_system_timers()
    for _ in range(100):
        with seawall.timeout(10):
            seawall.current_token()
            assert _native.pending_system_timers() == base + 1
    assert _native.pending_system_timers() == base


def test_token_asked_for_after_the_deadline_is_already_cancelled(clock: seawall.ManualClock) -> None:
    with pytest.raises(seawall.Timeout):
        with seawall.timeout(1, clock=clock):
            clock.advance(1)
            token = seawall.current_token()
            assert token is not None and token.reason == "deadline_exceeded"
    assert clock.pending_timers() == 0


# -- nesting and the ambient deadline ---------------------------------------------------


def test_nested_scopes_take_the_earliest(clock: seawall.ManualClock) -> None:
    with seawall.timeout(1, clock=clock) as outer:
        with seawall.timeout(5, clock=clock) as inner:
            assert inner.deadline == outer.deadline and inner.deadline.remaining() == 1.0
        with seawall.timeout(0.5, clock=clock) as inner:
            assert ambient().remaining() == 0.5
            with seawall.deadline(10, clock=clock):
                assert ambient().remaining() == 0.5
        assert seawall.current_deadline() == outer.deadline
    assert seawall.current_deadline() is None


def test_an_inner_timeout_and_the_outer_one(clock: seawall.ManualClock) -> None:
    # The inner (shorter) one runs out: the outer block goes on.
    with seawall.timeout(10, clock=clock):
        with pytest.raises(seawall.Timeout, match="0.5 s timeout exceeded"):
            with seawall.timeout(0.5, clock=clock):
                clock.advance(1)
    # The outer deadline comes first: the inner scope raises, the outer lets it through.
    with pytest.raises(seawall.Timeout, match="deadline exceeded") as e:
        with seawall.timeout(1, clock=clock):
            with seawall.timeout(10, clock=clock):
                clock.advance(1)
    assert e.value.__cause__ is None and e.value.__context__ is None


def test_scopes_on_different_clocks_do_not_nest(clock: seawall.ManualClock) -> None:
    with seawall.timeout(1):
        with pytest.raises(seawall.InvalidArgument, match="different clocks"):
            with seawall.timeout(1, clock=clock):
                pass  # pragma: no cover


def test_one_limit_object_used_many_times(clock: seawall.ManualClock) -> None:
    limit = seawall.timeout(1, clock=clock)
    with limit as a:
        clock.advance(0.5)
        with limit as b:
            assert b.deadline == a.deadline  # the outer one is earlier
        with limit as c:
            assert c.deadline.remaining() == 0.5
    with limit as d:
        assert d.deadline.remaining() == 1.0


def test_ambient_deadline_reaches_called_functions(clock: seawall.ManualClock) -> None:
    def callee() -> Optional[float]:
        d = seawall.current_deadline()
        return None if d is None else d.remaining()

    assert callee() is None
    with seawall.timeout(3, clock=clock):
        clock.advance(1)
        assert callee() == 2.0


def test_deadline_scope_never_raises(clock: seawall.ManualClock) -> None:
    with seawall.deadline(1, clock=clock) as scope:
        assert scope.timeout is None
        clock.advance(5)
        with pytest.raises(seawall.Timeout):
            seawall.check_deadline()  # but callees that check see it
    # From a header value: the server's budget for this request.
    incoming = seawall.Deadline.from_grpc_timeout("250m", clock=clock)

    @seawall.deadline(incoming)
    def handler() -> str:
        return ambient().to_grpc_timeout()

    assert handler() == "250000u"


def test_scopes_belong_to_their_thread(clock: seawall.ManualClock) -> None:
    seen: List[Any] = []
    with seawall.timeout(1, clock=clock):
        t = threading.Thread(target=lambda: seen.append(seawall.current_deadline()))
        t.start()
        t.join()
        ctx = contextvars.copy_context()
    assert seen == [None]
    assert ctx.run(seawall.current_deadline) is not None  # a copied context carries it


def test_one_token_per_scope_across_threads() -> None:
    with seawall.timeout(10):
        contexts = [contextvars.copy_context() for _ in range(8)]
        tokens: List[Any] = []
        barrier = threading.Barrier(8)

        def ask(ctx: contextvars.Context) -> None:
            barrier.wait()
            tokens.append(ctx.run(seawall.current_token))

        threads = [threading.Thread(target=ask, args=(c,)) for c in contexts]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(tokens) == 8 and all(t is seawall.current_token() for t in tokens)


def test_tokens_follow_the_enclosing_scope(clock: seawall.ManualClock) -> None:
    with seawall.timeout(10, clock=clock):
        outer = scope_token()
        with seawall.timeout(5, clock=clock):
            inner = scope_token()
            outer.cancel()  # e.g. the client went away
            assert inner.reason == "cancelled"
    with seawall.timeout(10, clock=clock):
        with seawall.timeout(5, clock=clock):
            scope_token().cancel()
        assert not scope_token().cancelled, "an inner token does not cancel the outer one"


def test_out_of_order_exit_does_not_leave_a_closed_scope_current(clock: seawall.ManualClock) -> None:
    a, b = seawall.timeout(1, clock=clock), seawall.timeout(2, clock=clock)
    a.__enter__()
    b.__enter__()
    a.__exit__(None, None, None)
    assert seawall.current_deadline() is not None  # b is still open
    b.__exit__(None, None, None)
    assert seawall.current_deadline() is None


def test_sync_function_returning_a_coroutine(clock: seawall.ManualClock) -> None:
    async def slow() -> str:
        await asyncio.sleep(10)
        return "never"

    @seawall.timeout(0.05)
    def make() -> Any:
        return slow()

    async def main() -> None:
        with pytest.raises(seawall.Timeout):
            await make()

    run(main())


# -- coroutines -------------------------------------------------------------------------


def test_async_decorator_cancels_the_coroutine_on_time() -> None:
    cleanup: List[str] = []

    @seawall.timeout(0.05)
    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cleanup.append("finally ran")

    async def main() -> None:
        start = time.monotonic()
        with pytest.raises(seawall.Timeout) as e:
            await slow()
        took = time.monotonic() - start
        assert 0.045 <= took < 5, took
        assert cleanup == ["finally ran"]
        assert isinstance(e.value.__cause__, asyncio.CancelledError)
        if HAS_UNCANCEL:
            assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
        await asyncio.sleep(0.01)  # the task is not cancelled again

    run(main())


def test_async_with_and_results() -> None:
    @seawall.timeout(5)
    async def fast(x: int) -> int:
        await asyncio.sleep(0)
        return x + 1

    async def main() -> None:
        assert await fast(1) == 2
        assert fast.__name__ == "fast"
        async with seawall.timeout(5) as scope:
            assert seawall.current_deadline() == scope.deadline
            await asyncio.sleep(0)
        cleanup: List[str] = []
        with pytest.raises(seawall.Timeout):
            async with seawall.timeout(0.05):
                try:
                    await asyncio.sleep(10)
                finally:
                    cleanup.append("finally")
        assert cleanup == ["finally"]
        # A scope that ended in time never cancels the task afterwards.
        async with seawall.timeout(0.05):
            pass
        await asyncio.sleep(0.15)

    run(main())


def test_async_on_a_manual_clock_is_exact(clock: seawall.ManualClock) -> None:
    cleanup: List[str] = []

    @seawall.timeout(1, clock=clock)
    async def work() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleanup.append("finally")

    async def main() -> None:
        task = asyncio.ensure_future(work())
        await asyncio.sleep(0)
        assert clock.pending_timers() == 1
        clock.advance(0.999)
        for _ in range(5):
            await asyncio.sleep(0)
        assert not task.done()
        clock.advance(0.001)
        with pytest.raises(seawall.Timeout):
            await task
        assert cleanup == ["finally"]
        assert clock.pending_timers() == 0

    run(main())


def test_async_manual_clock_advanced_from_another_thread(clock: seawall.ManualClock) -> None:
    async def main() -> None:
        started = threading.Event()

        def advance() -> None:
            started.wait(5)
            clock.advance(1)

        t = threading.Thread(target=advance)
        t.start()
        with pytest.raises(seawall.Timeout):
            async with seawall.timeout(1, clock=clock):
                started.set()
                await asyncio.sleep(10)
        t.join()

    run(asyncio.wait_for(main(), 5))


def test_async_scope_exited_in_time_leaves_no_timer(clock: seawall.ManualClock) -> None:
    async def main() -> None:
        for _ in range(10):
            async with seawall.timeout(1, clock=clock):
                await asyncio.sleep(0)
        assert clock.pending_timers() == 0
        clock.advance(5)
        await asyncio.sleep(0)  # nothing cancels us

    run(main())


def test_outside_cancellation_is_not_turned_into_a_timeout() -> None:
    async def main() -> None:
        cleanup: List[str] = []

        async def worker() -> None:
            async with seawall.timeout(10):
                try:
                    await asyncio.sleep(10)
                finally:
                    cleanup.append("finally")

        task = asyncio.ensure_future(worker())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cleanup == ["finally"]
        assert task.cancelled()

    run(main())


@pytest.mark.skipif(not HAS_UNCANCEL, reason="needs Task.uncancel (Python 3.11+) to tell the two apart")
def test_outside_cancellation_at_the_deadline_still_wins(clock: seawall.ManualClock) -> None:
    async def main() -> None:
        async def worker() -> None:
            async with seawall.timeout(1, clock=clock):
                await asyncio.sleep(10)

        task = asyncio.ensure_future(worker())
        await asyncio.sleep(0)
        clock.advance(1)  # the scope's cancel is on its way...
        await asyncio.sleep(0)
        task.cancel()  # ...and someone else cancels the task too
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()

    run(main())


def test_coroutine_that_swallows_the_cancellation_still_times_out() -> None:
    async def main() -> None:
        with pytest.raises(seawall.Timeout):
            async with seawall.timeout(0.02):
                try:
                    await asyncio.sleep(10)
                except asyncio.CancelledError:
                    pass  # bad manners, but the deadline still passed

    run(main())


def test_nested_async_scopes(clock: seawall.ManualClock) -> None:
    async def main() -> None:
        # Inner shorter: it times out, the outer block goes on.
        async with seawall.timeout(10):
            with pytest.raises(seawall.Timeout):
                async with seawall.timeout(0.02):
                    await asyncio.sleep(10)
            await asyncio.sleep(0.01)
        # Outer shorter: the outer scope raises; the inner one lets the cancellation through.
        reached: List[str] = []
        # Before 3.11 the inner scope cannot tell the outer's cancel from its own (both
        # fire at the same deadline) and raises the Timeout itself; the outer lets it through.
        message = "0.02 s timeout exceeded" if HAS_UNCANCEL else "timeout exceeded|deadline exceeded"
        with pytest.raises(seawall.Timeout, match=message):
            async with seawall.timeout(0.02):
                try:
                    async with seawall.timeout(10):
                        await asyncio.sleep(10)
                except seawall.Timeout:
                    reached.append("inner")  # the inner deadline is the outer's: it raises Timeout too
                    raise
        if HAS_UNCANCEL:
            assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
            assert reached == []  # 3.11+: the inner scope sees the outer's cancel as outside
        await asyncio.sleep(0.01)

    run(main())


def test_ambient_deadline_reaches_tasks_created_inside(clock: seawall.ManualClock) -> None:
    async def child() -> Optional[float]:
        d = seawall.current_deadline()
        return None if d is None else d.remaining()

    async def main() -> None:
        async with seawall.timeout(2, clock=clock):
            task = asyncio.ensure_future(child())
            clock.advance(0.5)
            assert await task == 1.5
        assert await asyncio.ensure_future(child()) is None

    run(main())


def test_async_deadline_scope_does_not_cancel(clock: seawall.ManualClock) -> None:
    async def main() -> None:
        async with seawall.deadline(1, clock=clock):
            clock.advance(2)
            await asyncio.sleep(0)
            assert ambient().expired()
        assert clock.pending_timers() == 0

    run(main())


def test_concurrent_async_scopes_each_fire_at_their_own_deadline() -> None:
    """The scopes of a loop share one event-loop timer: a later scope must not delay an
    earlier one, and an earlier one added later must reschedule it."""

    async def worker(seconds: float, log: List[Any]) -> None:
        start = time.monotonic()
        try:
            async with seawall.timeout(seconds):
                await asyncio.sleep(10)
        except seawall.Timeout:
            log.append((seconds, time.monotonic() - start))

    async def main() -> None:
        log: List[Any] = []
        tasks = [asyncio.ensure_future(worker(s, log)) for s in (0.5, 0.3, 0.05, 0.15)]
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        assert [s for s, _ in log] == [0.05, 0.15, 0.3, 0.5]
        for s, took in log:
            assert s - 0.005 <= took < s + 2, (s, took)

    run(main())


def test_the_shared_loop_timer_stays_small() -> None:
    from seawall import _timeout

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(5000):
            async with seawall.timeout(30):
                pass
        timer = _timeout._loop_timer(loop)
        assert timer is not None
        assert len(timer.heap) <= 2 * 64 + 2, len(timer.heap)
        # One scope that fires after thousands that ended in time.
        with pytest.raises(seawall.Timeout):
            async with seawall.timeout(0.02):
                await asyncio.sleep(10)

    run(main())


def test_event_loops_are_not_kept_alive() -> None:
    import weakref

    loops: List[Any] = []

    async def main() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        async with seawall.timeout(30):
            pass
        with pytest.raises(seawall.Timeout):
            async with seawall.timeout(0.01):
                await asyncio.sleep(10)

    for _ in range(3):
        run(main())
    gc.collect()
    assert [r() for r in loops] == [None, None, None]


def test_async_timeouts_in_two_threads_at_once() -> None:
    results: List[Any] = []

    def thread_main(seconds: float) -> None:
        async def main() -> None:
            try:
                async with seawall.timeout(seconds):
                    await asyncio.sleep(10)
            except seawall.Timeout:
                results.append(seconds)

        asyncio.run(main())

    threads = [threading.Thread(target=thread_main, args=(s,)) for s in (0.05, 0.1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == [0.05, 0.1]


def test_async_scope_needs_a_running_task() -> None:
    coro = seawall.timeout(1).__aenter__()
    with pytest.raises(RuntimeError, match="running asyncio event loop"):
        coro.send(None)


# -- the breaker's timeout option -------------------------------------------------------


def test_breaker_timeout_option_is_validated() -> None:
    assert seawall.CircuitBreaker(timeout=2.5).timeout == 2.5
    assert seawall.CircuitBreaker().timeout is None
    for bad in (-1, 0, float("nan")):
        with pytest.raises(seawall.ConfigError) as e:
            seawall.CircuitBreaker(timeout=bad)
        assert e.value.field == "timeout"


def test_breaker_timeout_sync_on_a_manual_clock(clock: seawall.ManualClock) -> None:
    breaker = seawall.CircuitBreaker(timeout=1.0, clock=clock, consecutive_failures=2)

    @breaker
    def call(took: float) -> str:
        assert ambient().remaining() == 1.0
        clock.advance(took)
        return "ok"

    assert call(0.5) == "ok"
    with pytest.raises(seawall.Timeout):
        call(1.0)
    snap = breaker.snapshot()
    assert (snap["successes"], snap["failures"], snap["timeouts"]) == (1, 1, 1)
    # call(), with-block: the same.
    with pytest.raises(seawall.Timeout):
        breaker.call(call.__wrapped__, 2.0)  # type: ignore[attr-defined]
    assert breaker.state == "open"
    breaker.reset()
    with pytest.raises(seawall.Timeout):
        with breaker:
            clock.advance(1)
    assert breaker.snapshot()["timeouts"] == 3


def test_breaker_timeout_counts_even_when_failure_on_excludes_it(clock: seawall.ManualClock) -> None:
    breaker = seawall.CircuitBreaker(timeout=1.0, clock=clock, failure_on=ConnectionError)

    @breaker
    def call() -> None:
        clock.advance(2)

    with pytest.raises(seawall.Timeout):
        call()
    assert breaker.snapshot()["timeouts"] == 1 and breaker.snapshot()["failures"] == 1


def test_breaker_timeout_async_on_a_manual_clock(clock: seawall.ManualClock) -> None:
    breaker = seawall.CircuitBreaker(timeout=1.0, clock=clock)
    cleanup: List[str] = []

    @breaker
    async def call() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleanup.append("finally")

    async def fetch() -> str:
        await asyncio.Event().wait()
        return "never"  # pragma: no cover

    async def block() -> None:
        async with breaker:
            await asyncio.Event().wait()

    async def main() -> None:
        for make in (call, lambda: breaker.call(fetch), lambda: breaker.call_async(fetch), block):
            task = asyncio.ensure_future(make())
            await asyncio.sleep(0)
            clock.advance(1)
            with pytest.raises(seawall.Timeout):
                await task
        assert clock.pending_timers() == 0

    run(main())
    assert cleanup == ["finally"]
    snap = breaker.snapshot()
    assert (snap["failures"], snap["timeouts"], snap["successes"]) == (4, 4, 0)


def test_breaker_timeout_on_the_real_clock() -> None:
    breaker = seawall.CircuitBreaker(timeout=0.05)
    cleanup: List[str] = []

    @breaker
    def slow_sync() -> None:
        time.sleep(0.1)

    @breaker
    async def slow_async() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cleanup.append("finally")

    @breaker
    async def fast_async() -> int:
        await asyncio.sleep(0)
        return 7

    with pytest.raises(seawall.Timeout):
        slow_sync()

    async def main() -> None:
        start = time.monotonic()
        with pytest.raises(seawall.Timeout):
            await slow_async()
        assert 0.045 <= time.monotonic() - start < 5
        assert await fast_async() == 7

    run(main())
    assert cleanup == ["finally"]
    snap = breaker.snapshot()
    assert (snap["timeouts"], snap["failures"], snap["successes"]) == (2, 2, 1)


def test_breaker_timeout_inside_an_earlier_ambient_deadline(clock: seawall.ManualClock) -> None:
    breaker = seawall.CircuitBreaker(timeout=10.0, clock=clock)

    @breaker
    def remaining() -> float:
        return ambient().remaining()

    with seawall.timeout(2, clock=clock):
        assert remaining() == 2.0
    # Another clock than the ambient one: refused before the call, and nothing recorded.
    with seawall.timeout(2):
        with pytest.raises(seawall.InvalidArgument):
            remaining()
    snap = breaker.snapshot()
    assert snap["successes"] == 1 and snap["failures"] == 0


def test_ambient_timeout_checked_inside_a_breaker_counts_as_timeout(clock: seawall.ManualClock) -> None:
    breaker = seawall.CircuitBreaker(clock=clock)

    @breaker
    def call() -> None:
        clock.advance(2)
        seawall.check_deadline()

    with pytest.raises(seawall.Timeout):
        with seawall.timeout(1, clock=clock):
            call()
    assert breaker.snapshot()["timeouts"] == 1


# -- fork -------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_gets_its_own_timer_thread() -> None:
    # The parent's timer thread is running (a real-clock timer fired here first).
    token = seawall.CancelToken()
    fired = threading.Event()
    token.on_cancel(lambda r: fired.set())
    guard = token.cancel_at(seawall.Deadline.after(0.01))
    assert fired.wait(5)
    guard.cancel()

    pid = os.fork()
    if pid == 0:  # the child: no pytest from here on, and always os._exit
        code = 1
        try:
            woke = threading.Event()
            with seawall.timeout(0.05):
                scope_token().on_cancel(lambda r: woke.set())
                ok = woke.wait(5)
            code = 0 if ok else 2
        except seawall.Timeout:
            code = 0 if woke.is_set() else 3
        except BaseException:
            code = 4
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    # TODO(core): core/src/timer.rs parks its thread on a parking_lot Condvar; parking_lot's
    # global table of parked threads is not fork-safe (upstream issue Amanieu/parking_lot#515),
    # so until the timer uses std::sync::{Mutex, Condvar} the child can die here of SIGSEGV
    # (signal 11) in a few percent of runs. Not worked around: the failure is real.
    assert os.WIFEXITED(status), f"the child died of signal {os.WTERMSIG(status)}"
    assert os.WEXITSTATUS(status) == 0, f"child exit status {os.WEXITSTATUS(status)}"
    # The parent's timer thread still works.
    again = seawall.CancelToken()
    g = again.cancel_at(seawall.Deadline.after(0.01))
    deadline = time.monotonic() + 5
    while not again.cancelled and time.monotonic() < deadline:
        time.sleep(0.005)
    assert again.reason == "deadline_exceeded"
    g.cancel()


# -- misc -------------------------------------------------------------------------------


def test_decorator_refuses_a_non_callable() -> None:
    with pytest.raises(TypeError, match="callable"):
        seawall.timeout(1)(42)  # type: ignore[call-overload]


def test_repr_and_attributes(clock: seawall.ManualClock) -> None:
    assert repr(seawall.timeout(1.5)) == "seawall.timeout(1.5)"
    assert repr(seawall.deadline(2, clock=clock)) == "seawall.deadline(2, clock=ManualClock)"
    limit = seawall.timeout(1.5, clock=clock)
    assert limit.seconds == 1.5 and limit.clock is clock and limit.raises and limit.deadline is None
    d = seawall.Deadline.after(3, clock=clock)
    assert seawall.deadline(d).deadline == d and seawall.deadline(d).seconds is None


def test_scopes_are_collected(clock: seawall.ManualClock) -> None:
    import weakref

    limit = seawall.timeout(1, clock=clock)
    with limit as scope:
        scope_token().on_cancel(lambda r: None)
    ref = weakref.ref(limit)
    del limit, scope
    gc.collect()
    assert ref() is None
