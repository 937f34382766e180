"""`@breaker` on an `async def`: the native awaitable (`seawall._native.AsyncGuarded`).

Every scenario is run twice, once through the decorator and once through
`breaker.call_async` (the Python path), on identical breakers: the results, the
exceptions and the counts must be the same.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import pickle
import sys
import warnings
from typing import Any, Awaitable, Callable, List, Tuple

import pytest

import seawall
from seawall import _native


class Boom(Exception):
    pass


class Skip(Exception):
    pass


def make(**config: Any) -> seawall.CircuitBreaker:
    config.setdefault("name", "dep")
    config.setdefault("clock", seawall.ManualClock())
    return seawall.CircuitBreaker(**config)


COUNTS = ("successes", "failures", "slow", "ignored", "rejected", "timeouts", "consecutive_failures",
          "half_open_in_flight", "state")


def counts(b: seawall.CircuitBreaker) -> Tuple[Any, ...]:
    s = b.snapshot()
    return tuple(s[k] for k in COUNTS)


def outcome(coro: Awaitable[Any]) -> Tuple[str, Any]:
    async def main() -> Any:
        return await coro

    try:
        value = asyncio.run(main())
        if isinstance(value, BaseException):
            return ("ok", (type(value), str(value)))
        return ("ok", value)
    except BaseException as e:  # noqa: BLE001 - compared below
        return ("raised", (type(e), str(e)))


# Python 3.9's `inspect.iscoroutinefunction` knows only real functions: the decorator keeps
# its Python wrapper there (and these tests then compare it with `call_async`).
NATIVE = sys.version_info >= (3, 10)


def both(config: dict, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Runs fn through the native decorator and through call_async; same answer and counts."""
    b1, b2 = make(**config), make(**config)
    guarded = b1(fn)
    assert (type(guarded) is _native.AsyncGuarded) == NATIVE
    r1 = outcome(guarded(*args, **kwargs))
    r2 = outcome(b2.call_async(fn, *args, **kwargs))
    assert r1 == r2
    assert counts(b1) == counts(b2)


async def ok(x: int, y: int = 1) -> Tuple[int, int]:
    await asyncio.sleep(0)
    return (x, y)


async def fails() -> None:
    await asyncio.sleep(0)
    raise Boom("down")


async def raises_at_once() -> None:
    raise Boom("at once")


async def times_out() -> None:
    raise seawall.Timeout("timed out: inner")


async def skips() -> None:
    raise Skip("skip")


async def interrupted() -> None:
    raise KeyboardInterrupt()


async def returns_tuple() -> Tuple[int, int]:
    return (1, 2)


async def returns_exception() -> BaseException:
    return ValueError("a value")


@pytest.mark.parametrize(
    "config,fn,args",
    [
        ({}, ok, (3,)),
        ({}, fails, ()),
        ({}, raises_at_once, ()),
        ({}, times_out, ()),
        ({}, skips, ()),
        ({"failure_on": Boom}, skips, ()),  # another Exception: a success
        ({"ignore": Skip}, skips, ()),
        ({"failure_on": (Boom, Skip), "ignore": Skip}, skips, ()),  # ignore wins
        ({}, interrupted, ()),  # a bare BaseException: cancelled
        ({"failure_on": BaseException}, interrupted, ()),
        ({}, returns_tuple, ()),
        ({}, returns_exception, ()),
        ({}, ok, ()),  # a TypeError from the call itself
    ],
)
def test_same_outcome_and_counts_as_call_async(config: dict, fn: Callable[..., Any], args: tuple) -> None:
    both(config, fn, *args)


def test_keyword_arguments_reach_the_function() -> None:
    both({}, ok, 4, y=5)
    b = make()
    assert asyncio.run(b(ok)(x=2, y=3)) == (2, 3)


def test_decorated_coroutine_function_keeps_its_identity() -> None:
    b = make()
    g = b(ok)
    assert inspect.iscoroutinefunction(g) and asyncio.iscoroutinefunction(g)
    assert g.__name__ == "ok" and g.__wrapped__ is ok  # type: ignore[attr-defined]
    assert list(inspect.signature(g).parameters) == ["x", "y"]
    if NATIVE:
        assert g.breaker is b  # type: ignore[attr-defined]
        assert "ok" in repr(g) and "dep" in repr(g)


guarded_at_module_level = seawall.CircuitBreaker(name="pickle-async")(ok)
guarded_at_module_level.__qualname__ = "guarded_at_module_level"  # type: ignore[attr-defined]


def test_pickled_by_reference() -> None:
    assert pickle.loads(pickle.dumps(guarded_at_module_level)) is guarded_at_module_level


def test_methods_bind_and_stay_coroutine_functions() -> None:
    b = make()

    class Client:
        def __init__(self) -> None:
            self.n = 40

        @b
        async def get(self, k: int) -> int:
            await asyncio.sleep(0)
            return self.n + k

    c = Client()
    assert inspect.iscoroutinefunction(c.get)
    assert asyncio.run(c.get(2)) == 42
    assert b.snapshot()["successes"] == 1


def test_the_call_is_a_coroutine_for_asyncio() -> None:
    b = make()
    g = b(ok)

    async def main() -> List[Any]:
        t = asyncio.ensure_future(g(9))
        return list(await asyncio.gather(g(1), g(2), t))

    c = g(0)
    assert asyncio.iscoroutine(c) and inspect.isawaitable(c)
    assert asyncio.run(c) == (0, 1)
    assert asyncio.run(main()) == [(1, 1), (2, 1), (9, 1)]
    assert b.snapshot()["successes"] == 4


def test_rejection_raises_breaker_open_when_awaited_not_when_called() -> None:
    b = make()
    g = b(ok)
    b.force_open()
    c = g(1)  # nothing happens yet
    assert b.snapshot()["rejected"] == 0
    with pytest.raises(seawall.BreakerOpen) as e:
        asyncio.run(c)
    assert e.value.breaker is b and e.value.state == "forced_open"
    assert b.snapshot()["rejected"] == 1


@pytest.mark.parametrize("kind", ["sync", "async", "awaitable"])
def test_fallback_is_served_and_awaited(kind: str) -> None:
    seen: List[Any] = []

    class Later:
        def __await__(self) -> Any:
            yield from asyncio.sleep(0).__await__()
            return "later"

    def sync_fb(err: seawall.BreakerOpen) -> Any:
        seen.append(err)
        return ("fb", 1)

    async def async_fb(err: seawall.BreakerOpen) -> Any:
        seen.append(err)
        await asyncio.sleep(0)
        return "async fb"

    def awaitable_fb(err: seawall.BreakerOpen) -> Any:
        seen.append(err)
        return Later()

    fb = {"sync": sync_fb, "async": async_fb, "awaitable": awaitable_fb}[kind]
    expected = {"sync": ("fb", 1), "async": "async fb", "awaitable": "later"}[kind]
    b = make(fallback=fb)
    b.force_open()
    assert asyncio.run(b(ok)(1)) == expected
    assert isinstance(seen[0], seawall.BreakerOpen)
    s = b.snapshot()
    assert (s["rejected"], s["successes"], s["failures"]) == (1, 0, 0)
    both({"fallback": fb}, ok, 1)  # closed: the function runs, the fallback does not


def test_an_error_of_the_fallback_propagates() -> None:
    def fb(err: seawall.BreakerOpen) -> Any:
        raise Skip("no fallback today")

    b = make(fallback=fb)
    b.force_open()
    with pytest.raises(Skip):
        asyncio.run(b(ok)(1))


def test_cancellation_cancels_the_permit_and_frees_the_half_open_slot() -> None:
    clock = seawall.ManualClock()
    b = make(clock=clock, consecutive_failures=1, open_duration=1.0)

    @b
    async def hang() -> None:
        await asyncio.Event().wait()

    with pytest.raises(Boom):
        asyncio.run(b(fails)())
    clock.advance(1.0)

    async def main() -> None:
        t = asyncio.ensure_future(hang())
        await asyncio.sleep(0)
        assert b.snapshot()["half_open_in_flight"] == 1  # the probe is out
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t

    asyncio.run(main())
    s = b.snapshot()
    assert (s["state"], s["half_open_in_flight"], s["successes"], s["failures"]) == ("half_open", 0, 0, 1)
    assert asyncio.run(b(ok)(1)) == (1, 1)  # the next probe is admitted
    assert b.state == "closed"


def test_slow_calls_are_measured_on_the_breaker_clock() -> None:
    clock = seawall.ManualClock()
    b = make(clock=clock, slow_call_duration=1.0, slow_call_rate_threshold=0.6, minimum_calls=2)

    @b
    async def slow() -> None:
        await asyncio.sleep(0)
        clock.advance(1.5)

    @b
    async def quick() -> None:
        await asyncio.sleep(0)

    asyncio.run(slow())
    asyncio.run(quick())
    assert (b.snapshot()["slow"], b.state) == (1, "closed")
    asyncio.run(slow())
    assert (b.snapshot()["slow"], b.state) == (2, "open")


def test_with_a_timeout_option_the_python_path_is_kept() -> None:
    b = make(timeout=1.0)
    g = b(ok)
    assert type(g) is not _native.AsyncGuarded and inspect.iscoroutinefunction(g)
    assert asyncio.run(g(1)) == (1, 1)


def test_a_subclass_overriding_call_async_keeps_its_path() -> None:
    calls: List[Any] = []

    class Logged(seawall.CircuitBreaker):
        async def call_async(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            calls.append(fn)
            return await super().call_async(fn, *args, **kwargs)

    b = Logged(name="logged", clock=seawall.ManualClock())
    g = b(ok)
    assert type(g) is not _native.AsyncGuarded
    assert asyncio.run(g(2)) == (2, 1) and calls == [ok]


def test_protocol_send_throw_close() -> None:
    b = make()
    g = b(ok)

    # Stepped by hand: yields once (asyncio.sleep(0)), then returns.
    c = g(5)
    assert c.send(None) is None
    with pytest.raises(StopIteration) as stop:
        c.send(None)
    assert stop.value.value == (5, 1)
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        c.send(None)
    assert b.snapshot()["successes"] == 1

    # A non-None value into a coroutine that has not started.
    c = g(1)
    with pytest.raises(TypeError, match="just-started"):
        c.send(42)
    c.close()

    # Thrown in before the start: raised, nothing acquired, the function never runs.
    c = g(1)
    with pytest.raises(KeyError):
        c.throw(KeyError("k"))
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        c.throw(ValueError("after the end"))
    assert b.snapshot()["successes"] == 1

    # Thrown in while suspended: the function's coroutine sees it; counted as it classifies.
    c = g(1)
    c.send(None)
    with pytest.raises(Boom):
        c.throw(Boom("thrown"))
    assert b.snapshot()["failures"] == 1

    # Closed while suspended: GeneratorExit, a cancellation (counted nowhere).
    before = counts(b)
    c = g(1)
    c.send(None)
    c.close()
    c.close()  # again: nothing
    assert counts(b) == before

    # A coroutine that catches the thrown exception and returns.
    @b
    async def resilient() -> str:
        try:
            await asyncio.sleep(0)
        except Skip:
            return "caught"
        return "not thrown"

    c = resilient()
    c.send(None)
    with pytest.raises(StopIteration) as stop:
        c.throw(Skip())
    assert stop.value.value == "caught"


def test_close_with_failure_on_base_exception_counts_generator_exit() -> None:
    b = make(failure_on=BaseException, consecutive_failures=100)
    c = b(ok)(1)
    c.send(None)
    c.close()
    assert b.snapshot()["failures"] == 1


def test_an_unfinished_call_that_is_collected_releases_its_permit() -> None:
    clock = seawall.ManualClock()
    b = make(clock=clock, consecutive_failures=1, open_duration=1.0)
    with pytest.raises(Boom):
        asyncio.run(b(fails)())
    clock.advance(1.0)
    c = b(ok)(1)
    c.send(None)  # the probe is out
    assert b.snapshot()["half_open_in_flight"] == 1
    del c
    gc.collect()
    assert b.snapshot()["half_open_in_flight"] == 0


def test_the_protocol_answers_as_a_coroutine_does() -> None:
    """Every state x every action, against a plain coroutine (the reference)."""
    b = make()

    async def f() -> int:
        await asyncio.sleep(0)
        return 1

    def answers(make_coro: Callable[[], Any]) -> List[Any]:
        out: List[Any] = []

        def step(label: str, fn: Callable[[], Any]) -> None:
            try:
                out.append((label, "->", repr(fn())))
            except StopIteration as e:
                out.append((label, "stop", repr(e.value)))
            except BaseException as e:  # noqa: BLE001 - compared
                out.append((label, type(e).__name__, str(e)))

        c = make_coro()
        step("throw unstarted", lambda: c.throw(KeyError("k")))
        step("throw after", lambda: c.throw(ValueError("v")))
        step("send after", lambda: c.send(None))
        step("close after", c.close)
        c = make_coro()
        step("first", lambda: c.send(None))
        step("second", lambda: c.send(None))
        step("throw finished", lambda: c.throw(ValueError("v")))
        step("close finished", c.close)
        c = make_coro()
        c.close()
        step("throw closed", lambda: c.throw(ValueError("v")))
        step("send closed", lambda: c.send(None))
        c = make_coro()
        step("send value first", lambda: c.send(1))
        step("then None", lambda: c.send(None))
        step("throw suspended", lambda: c.throw(ValueError("in")))
        step("send after raise", lambda: c.send(None))
        return out

    assert answers(b(f)) == answers(f)


def test_a_call_never_awaited_warns_like_a_coroutine() -> None:
    b = make()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        b(ok)(1)
        gc.collect()
    assert any("coroutine 'ok' was never awaited" in str(x.message) for x in w)
    assert b.snapshot()["successes"] == 0


def test_reentrant_send_is_refused() -> None:
    b = make()
    holder: List[Any] = []

    @b
    async def reenter() -> None:
        holder[0].send(None)

    c = reenter()
    holder.append(c)
    with pytest.raises(ValueError, match="already executing"):
        asyncio.run(c)


def test_a_cycle_through_the_call_is_collected() -> None:
    b = make()
    import weakref

    class Box:
        pass

    @b
    async def keep(box: Box) -> None:
        await asyncio.sleep(0)

    box = Box()
    c = keep(box)
    box.c = c  # type: ignore[attr-defined]  # box -> call -> args -> box
    c.send(None)
    ref = weakref.ref(box)
    del box, c
    gc.collect()
    assert ref() is None


# -- BreakerOpen, built natively without the Python __init__ chain (errors.rs) -------------


def rejections(b: seawall.CircuitBreaker) -> List[seawall.BreakerOpen]:
    out: List[seawall.BreakerOpen] = []

    async def anything() -> None:
        return None

    for attempt in (b.try_acquire, lambda: b.call(lambda: None), lambda: b(lambda: None)(),
                    lambda: asyncio.run(b(anything)()), lambda: b.__enter__()):
        with pytest.raises(seawall.BreakerOpen) as e:
            attempt()
        out.append(e.value)
    return out


def test_breaker_open_is_what_its_constructor_builds() -> None:
    clock = seawall.ManualClock()
    b = make(name="inv", clock=clock, consecutive_failures=1, open_duration=10.0)
    with pytest.raises(Boom):
        asyncio.run(b(fails)())
    clock.advance(4.0)
    errors = rejections(b)  # open
    clock.advance(6.0)
    probe = b.try_acquire()  # half-open, the one probe out: saturated
    errors += rejections(b)
    probe.cancel()
    b.force_open()
    errors += rejections(b)
    assert [e.state for e in errors] == ["open"] * 5 + ["half_open"] * 5 + ["forced_open"] * 5
    assert {e.retry_after for e in errors} == {6.0, 0.0, float("inf")}
    for e in errors:
        ref = seawall.BreakerOpen(str(e), code="SEAWALL_BREAKER_OPEN", breaker=e.breaker,
                                  breaker_name=e.breaker_name, state=e.state, retry_after=e.retry_after)
        assert type(e) is seawall.BreakerOpen and isinstance(e, seawall.SeawallError)
        assert e.args == ref.args and str(e) == str(ref) and repr(e) == repr(ref)
        assert list(e.__dict__.items()) == list(ref.__dict__.items())
        assert e.breaker is b and e.breaker_name == "inv" and e.code == "SEAWALL_BREAKER_OPEN"
        assert e.message == str(e) == e.args[0]
        copy = pickle.loads(pickle.dumps(e))
        assert (type(copy), copy.args, copy.breaker, copy.state, copy.retry_after) == (
            seawall.BreakerOpen, e.args, "inv", e.state, e.retry_after)
