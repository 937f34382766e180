"""The public Python API of seawall: calling protocols, errors, listeners, configuration."""

from __future__ import annotations

import asyncio
import gc
import importlib.metadata
import math
import re
import sys
import weakref
from pathlib import Path
from typing import Any, List

import pytest

import seawall
from conftest import repo_root


def make(**config: Any) -> seawall.CircuitBreaker:
    config.setdefault("name", "dep")
    config.setdefault("clock", seawall.ManualClock())
    return seawall.CircuitBreaker(**config)


class Boom(Exception):
    pass


def boom() -> None:
    raise Boom("down")


# -- package ----------------------------------------------------------------------------


def workspace_version(root: Path) -> str:
    text = (root / "Cargo.toml").read_text()
    section = text.split("[workspace.package]", 1)[1]
    m = re.search(r'^version\s*=\s*"([^"]+)"', section, re.M)
    assert m, "no version in [workspace.package] of Cargo.toml"
    return m.group(1)


def test_version_is_the_workspace_version() -> None:
    assert seawall.__version__ == importlib.metadata.version("seawall")
    assert seawall.__version__ == workspace_version(repo_root())


def test_imports_the_installed_wheel_not_the_source_tree() -> None:
    import os

    if not os.environ.get("SEAWALL_REPO"):
        pytest.skip("run by scripts/test-python.sh, which installs the wheel and sets SEAWALL_REPO")
    package = Path(seawall.__file__).resolve().parent
    source = (repo_root() / "python").resolve()
    assert source not in package.parents and package != source / "seawall", package
    # The wheel ships the type information.
    assert (package / "py.typed").is_file()
    assert (package / "_native.pyi").is_file()


def test_public_names() -> None:
    for name in seawall.__all__:
        assert hasattr(seawall, name), name
    for name in ["CircuitBreaker", "ManualClock", "SystemClock", "SeawallError", "ConfigError", "BreakerOpen",
                 "PermitConsumed", "Timeout", "InvalidArgument"]:
        assert name in seawall.__all__


def test_exception_hierarchy_and_codes() -> None:
    assert issubclass(seawall.ConfigError, seawall.SeawallError) and issubclass(seawall.ConfigError, ValueError)
    assert issubclass(seawall.BreakerOpen, seawall.SeawallError)
    assert issubclass(seawall.PermitConsumed, seawall.SeawallError)
    assert issubclass(seawall.Timeout, seawall.SeawallError) and issubclass(seawall.Timeout, TimeoutError)
    assert issubclass(seawall.InvalidArgument, seawall.SeawallError) and issubclass(seawall.InvalidArgument, ValueError)
    assert seawall.ConfigError.code == "SEAWALL_CONFIG"
    assert seawall.BreakerOpen.code == "SEAWALL_BREAKER_OPEN"
    assert seawall.PermitConsumed.code == "SEAWALL_PERMIT_CONSUMED"
    assert seawall.Timeout.code == "SEAWALL_TIMEOUT"
    assert seawall.InvalidArgument.code == "SEAWALL_INVALID_ARGUMENT"


def test_errors_pickle() -> None:
    import pickle

    try:
        seawall.CircuitBreaker(window_size=0)
    except seawall.ConfigError as e:
        err = pickle.loads(pickle.dumps(e))
        assert type(err) is seawall.ConfigError and (err.field, err.value, err.code) == ("window_size", "0", "SEAWALL_CONFIG")
        assert str(err) == str(e)
    b = make(name="inv")
    b.force_open()
    with pytest.raises(seawall.BreakerOpen) as e2:
        b.try_acquire()
    err2 = pickle.loads(pickle.dumps(e2.value))
    assert (err2.breaker, err2.breaker_name, err2.state, err2.retry_after) == ("inv", "inv", "forced_open", math.inf)
    t = pickle.loads(pickle.dumps(seawall.Timeout("late")))
    assert isinstance(t, TimeoutError) and str(t) == "late"
    assert seawall.ConfigError.__module__ == "seawall" and seawall.CircuitBreaker.__module__ == "seawall"


# -- clocks -----------------------------------------------------------------------------


def test_manual_clock() -> None:
    clock = seawall.ManualClock()
    assert clock.now() == 0.0
    clock.advance(1.5)
    clock.advance(0)
    assert clock.now() == 1.5
    for bad in (-1.0, math.nan):
        with pytest.raises(seawall.InvalidArgument, match="seconds") as e:
            clock.advance(bad)
        assert isinstance(e.value, ValueError)
    assert clock.now() == 1.5


def test_system_clock_is_the_default_and_monotonic() -> None:
    b = seawall.CircuitBreaker(name="sys")
    assert isinstance(b.clock, seawall.SystemClock)
    a = b.clock.now()
    assert b.clock.now() >= a


# -- decorator --------------------------------------------------------------------------


def test_sync_decorator_passes_arguments_and_counts() -> None:
    b = make()

    @b
    def add(x: int, y: int = 0, *, z: int = 0) -> int:
        """Adds."""
        return x + y + z

    assert add(1, 2, z=3) == 6
    assert add(1) == 1
    assert add.__name__ == "add" and add.__doc__ == "Adds." and add.__wrapped__ is not None  # type: ignore[attr-defined]
    assert b.snapshot()["successes"] == 2


def test_sync_decorator_failure_propagates_and_opens() -> None:
    b = make(consecutive_failures=2)
    guarded = b(boom)
    for _ in range(2):
        with pytest.raises(Boom):
            guarded()
    assert b.state == "open"
    with pytest.raises(seawall.BreakerOpen):
        guarded()
    s = b.snapshot()
    assert (s["failures"], s["rejected"]) == (2, 1)


def test_decorator_on_a_method() -> None:
    b = make()

    class Client:
        def __init__(self) -> None:
            self.n = 41

        @b
        def get(self) -> int:
            return self.n + 1

    assert Client().get() == 42
    assert b.snapshot()["successes"] == 1


def test_async_decorator() -> None:
    b = make(consecutive_failures=1)

    @b
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    @b
    async def broken() -> None:
        await asyncio.sleep(0)
        raise Boom("down")

    assert asyncio.iscoroutinefunction(fetch)
    assert asyncio.run(fetch(21)) == 42
    with pytest.raises(Boom):
        asyncio.run(broken())
    assert b.state == "open"
    with pytest.raises(seawall.BreakerOpen):
        asyncio.run(fetch(1))
    s = b.snapshot()
    assert (s["successes"], s["failures"], s["rejected"]) == (1, 1, 1)


pickle_breaker = seawall.CircuitBreaker(name="pickle")


@pickle_breaker
def module_level_guarded(x: int) -> int:
    """Doubles."""
    return 2 * x


def test_decorated_function_keeps_its_identity() -> None:
    import inspect
    import pickle

    g = module_level_guarded
    assert g(2) == 4
    assert g.__name__ == "module_level_guarded" and g.__doc__ == "Doubles."
    assert inspect.isfunction(g.__wrapped__)  # type: ignore[attr-defined]
    assert list(inspect.signature(g).parameters) == ["x"]
    assert g.breaker is pickle_breaker  # type: ignore[attr-defined]
    assert "module_level_guarded" in repr(g) and "pickle" in repr(g)
    # Pickled by reference, like a plain function (multiprocessing relies on it).
    assert pickle.loads(pickle.dumps(g)) is g
    assert not inspect.iscoroutinefunction(g)


def test_decorator_refuses_a_non_callable() -> None:
    with pytest.raises(TypeError):
        make()(42)  # type: ignore[arg-type]


# -- call -------------------------------------------------------------------------------


def test_call_and_call_async() -> None:
    b = make()
    assert b.call(lambda a, b=0: a + b, 1, b=2) == 3

    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    assert asyncio.run(b.call_async(double, 4)) == 8
    # call() on a coroutine function returns an awaitable that records when awaited.
    assert asyncio.run(b.call(double, 5)) == 10
    # call_async accepts a sync function too.
    assert asyncio.run(b.call_async(lambda: 7)) == 7
    assert b.snapshot()["successes"] == 4


def test_call_on_coroutine_records_the_outcome_at_await() -> None:
    b = make(consecutive_failures=1)

    async def broken() -> None:
        await asyncio.sleep(0)
        raise Boom("down")

    awaitable = b.call(broken)
    assert b.snapshot()["failures"] == 0 and b.state == "closed"
    with pytest.raises(Boom):
        asyncio.run(awaitable)
    assert b.snapshot()["failures"] == 1 and b.state == "open"


# -- context managers -------------------------------------------------------------------


def test_with_records_success_and_failure() -> None:
    b = make(consecutive_failures=2)
    with b:
        pass
    for _ in range(2):
        with pytest.raises(Boom):
            with b:
                raise Boom("down")
    s = b.snapshot()
    assert (s["successes"], s["failures"], s["state"]) == (1, 2, "open")
    with pytest.raises(seawall.BreakerOpen):
        with b:
            pytest.fail("the block must not run when the breaker rejects")


def test_with_base_exception_cancels() -> None:
    clock = seawall.ManualClock()
    b = make(clock=clock, consecutive_failures=1, open_duration=1.0)
    with pytest.raises(KeyboardInterrupt):
        with b:
            raise KeyboardInterrupt
    s = b.snapshot()
    assert (s["successes"], s["failures"], s["ignored"], s["state"]) == (0, 0, 0, "closed")
    # In half-open a cancelled probe frees its slot: the next call is admitted as a probe.
    b.try_acquire().failure()
    clock.advance(1.0)
    with pytest.raises(SystemExit):
        with b as permit:
            assert permit.is_probe
            raise SystemExit(1)
    assert b.snapshot()["half_open_in_flight"] == 0
    with b:
        pass
    assert b.state == "closed"


def test_with_yields_the_permit_for_manual_outcomes() -> None:
    b = make()
    with b as permit:
        permit.ignore()
    s = b.snapshot()
    assert (s["ignored"], s["successes"]) == (1, 0)


def test_nested_with_on_two_breakers() -> None:
    a, b = make(name="a"), make(name="b", failure_on=KeyError)
    with pytest.raises(KeyError):
        with a:
            with b:
                raise KeyError("x")
    assert a.snapshot()["failures"] == 1
    assert b.snapshot()["failures"] == 1


def test_out_of_order_exits_keep_each_block_its_permit() -> None:
    clock = seawall.ManualClock()
    b = make(clock=clock, slow_call_duration=2.0)
    a = make(name="a", clock=clock, slow_call_duration=2.0)
    b.__enter__()
    a.__enter__()
    clock.advance(3.0)
    b.__exit__(None, None, None)  # b's block ends first although a's was entered later
    a.__exit__(None, None, None)
    assert b.snapshot()["slow"] == 1 and a.snapshot()["slow"] == 1
    assert b.__exit__(None, None, None) is False  # nothing open: records nothing
    assert b.snapshot()["successes"] == 1


def test_sync_with_across_awaits_in_interleaved_tasks() -> None:
    """Two tasks in `with b:` blocks that overlap on one thread each record their own
    permit and start time (a shared per-thread stack would swap them)."""
    clock = seawall.ManualClock()
    b = make(clock=clock, slow_call_duration=2.0)

    async def main() -> None:
        first_in, second_in, go1, go2 = (asyncio.Event() for _ in range(4))

        async def first() -> None:
            with b:  # t=0 .. 2.5: slow
                first_in.set()
                await go1.wait()

        async def second() -> None:
            await first_in.wait()
            clock.advance(1.0)
            with b:  # t=1 .. 4: slow
                second_in.set()
                await go2.wait()

        t1, t2 = asyncio.ensure_future(first()), asyncio.ensure_future(second())
        await second_in.wait()
        clock.advance(1.5)
        go1.set()
        await t1
        clock.advance(1.5)
        go2.set()
        await t2

    asyncio.run(main())
    s = b.snapshot()
    # Swapped starts would give 1.5 s (fast) and 4 s (slow): one slow call, not two.
    assert (s["successes"], s["slow"]) == (2, 2)


def test_async_with_and_cancellation() -> None:
    b = make(consecutive_failures=1)

    async def main() -> None:
        async with b:
            await asyncio.sleep(0)

        async def hang() -> None:
            async with b:
                await asyncio.sleep(10)

        task = asyncio.ensure_future(hang())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    s = b.snapshot()
    assert (s["successes"], s["failures"], s["state"]) == (1, 0, "closed")


def test_cancelled_decorated_coroutine_is_a_cancellation() -> None:
    b = make(consecutive_failures=1)

    @b
    async def hang() -> None:
        await asyncio.sleep(10)

    async def main() -> None:
        task = asyncio.ensure_future(hang())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    s = b.snapshot()
    assert (s["failures"], s["successes"], s["state"]) == (0, 0, "closed")


# -- fallback ---------------------------------------------------------------------------


def test_fallback_only_on_rejection() -> None:
    seen: List[seawall.BreakerOpen] = []

    def fallback(err: seawall.BreakerOpen) -> str:
        seen.append(err)
        return "cached"

    b = make(consecutive_failures=1, fallback=fallback)
    guarded = b(boom)
    with pytest.raises(Boom):  # the function's own error propagates unchanged
        guarded()
    assert seen == []
    assert guarded() == "cached"
    assert b.call(boom) == "cached"
    assert len(seen) == 2 and all(isinstance(e, seawall.BreakerOpen) for e in seen)
    assert seen[0].breaker is b
    assert b.snapshot()["rejected"] == 2


def test_async_fallback() -> None:
    async def fallback(err: seawall.BreakerOpen) -> str:
        await asyncio.sleep(0)
        return f"fallback after {err.state}"

    b = make(fallback=fallback)
    b.force_open()

    @b
    async def fetch() -> str:
        return "live"

    assert asyncio.run(fetch()) == "fallback after forced_open"


def test_fallback_is_not_used_by_with_or_try_acquire() -> None:
    b = make(fallback=lambda e: "x")
    b.force_open()
    with pytest.raises(seawall.BreakerOpen):
        b.try_acquire()
    with pytest.raises(seawall.BreakerOpen):
        with b:
            pass


# -- classification ---------------------------------------------------------------------


def test_failure_on_and_ignore() -> None:
    b = make(failure_on=(ConnectionError, Boom), ignore=KeyError, consecutive_failures=2)
    with pytest.raises(ValueError):
        b.call(lambda: int("x"))  # not in failure_on: says nothing about the dependency (a success)
    with pytest.raises(KeyError):
        b.call(lambda: {}["k"])
    with pytest.raises(ConnectionError):
        b.call(lambda: (_ for _ in ()).throw(ConnectionError()))
    s = b.snapshot()
    assert (s["successes"], s["ignored"], s["failures"], s["consecutive_failures"]) == (1, 1, 1, 1)


def test_ignore_wins_over_failure_on() -> None:
    b = make(failure_on=Exception, ignore=[LookupError])
    with pytest.raises(KeyError):
        b.call(lambda: {}["k"])
    assert b.snapshot()["ignored"] == 1 and b.snapshot()["failures"] == 0


def test_timeout_errors_count_as_timeouts() -> None:
    b = make()

    def slow() -> None:
        raise seawall.Timeout("deadline passed")

    def builtin() -> None:
        raise TimeoutError

    for fn in (slow, builtin):
        with pytest.raises(TimeoutError):
            b.call(fn)
    s = b.snapshot()
    assert (s["failures"], s["timeouts"]) == (2, 2)


def test_durations_are_measured_on_the_breaker_clock() -> None:
    clock = seawall.ManualClock()
    b = make(clock=clock, slow_call_duration=1.0, slow_call_rate_threshold=1.0, minimum_calls=2)
    assert b.needs_duration

    @b
    def slow() -> None:
        clock.advance(1.0)

    @b
    def fast() -> None:
        clock.advance(0.5)

    fast()
    slow()
    s = b.snapshot()
    assert (s["slow"], s["slow_call_rate"]) == (1, 0.5)
    with b:
        clock.advance(2.0)
    assert b.snapshot()["slow"] == 2

    async def aslow() -> None:
        clock.advance(1.0)

    asyncio.run(b.call_async(aslow))
    assert b.snapshot()["slow"] == 3


def test_no_duration_without_slow_threshold() -> None:
    clock = seawall.ManualClock()
    b = make(clock=clock)
    assert not b.needs_duration
    b.call(lambda: clock.advance(100.0))
    assert b.snapshot()["slow"] == 0


# -- rejection --------------------------------------------------------------------------


def test_breaker_open_carries_retry_after_and_breaker() -> None:
    clock = seawall.ManualClock()
    b = make(name="inventory", clock=clock, consecutive_failures=1, open_duration=2.0)
    b.try_acquire().failure(0.01)
    clock.advance(0.5)
    with pytest.raises(seawall.BreakerOpen) as e:
        b.call(lambda: None)
    err = e.value
    assert err.retry_after == pytest.approx(1.5, abs=1e-9)
    assert err.breaker is b and err.breaker_name == "inventory" and err.state == "open"
    assert err.code == "SEAWALL_BREAKER_OPEN"
    assert "inventory" in str(err)
    b.force_open()
    with pytest.raises(seawall.BreakerOpen) as e:
        b.try_acquire()
    assert e.value.retry_after == math.inf and e.value.state == "forced_open"
    assert b.snapshot()["retry_after"] == math.inf


def test_saturated_half_open_rejects_with_zero_retry_after() -> None:
    clock = seawall.ManualClock()
    b = make(clock=clock, consecutive_failures=1, open_duration=1.0)
    b.try_acquire().failure()
    clock.advance(1.0)
    probe = b.try_acquire()
    assert probe.is_probe
    with pytest.raises(seawall.BreakerOpen) as e:
        b.try_acquire()
    assert (e.value.retry_after, e.value.state) == (0.0, "half_open")
    probe.success()
    assert b.state == "closed"


# -- permits ----------------------------------------------------------------------------


def test_second_outcome_is_refused() -> None:
    b = make()
    p = b.try_acquire()
    p.success(0.001)
    assert p.done
    for record in (p.success, p.failure, p.timeout, p.ignore, p.cancel):
        with pytest.raises(seawall.PermitConsumed) as e:
            record()
        assert e.value.code == "SEAWALL_PERMIT_CONSUMED"
    q = b.try_acquire()
    q.cancel()
    with pytest.raises(seawall.PermitConsumed):
        q.failure()
    assert b.snapshot()["successes"] == 1 and b.snapshot()["failures"] == 0


def test_invalid_duration_is_refused() -> None:
    p = make().try_acquire()
    with pytest.raises(seawall.InvalidArgument, match="duration"):
        p.success(-1.0)
    assert not p.done  # nothing was recorded
    p.success(0.0)


def test_dropped_permit_is_a_cancellation() -> None:
    clock = seawall.ManualClock()
    b = make(clock=clock, consecutive_failures=1, open_duration=1.0)
    b.try_acquire().failure()
    clock.advance(1.0)
    p = b.try_acquire()
    assert b.snapshot()["half_open_in_flight"] == 1
    del p
    gc.collect()
    assert b.snapshot()["half_open_in_flight"] == 0


# -- manual states, snapshot ------------------------------------------------------------


def test_manual_states_and_snapshot_fields() -> None:
    b = make()
    b.disable()
    assert b.state == "disabled"
    with pytest.raises(Boom):
        b.call(boom)
    b.reset()
    assert b.state == "closed"
    s = b.snapshot()
    assert set(s) == {
        "name", "state", "successes", "failures", "slow", "ignored", "rejected", "timeouts", "failure_rate",
        "slow_call_rate", "window_calls", "consecutive_failures", "retry_after", "half_open_in_flight",
    }
    assert s["name"] == "dep" and s["failures"] == 1 and s["retry_after"] == 0.0


# -- listeners --------------------------------------------------------------------------


def test_listener_gets_events() -> None:
    clock = seawall.ManualClock()
    b = make(name="inv", clock=clock, consecutive_failures=1, open_duration=2.0)
    events: List[seawall.StateChange] = []
    lid = b.on_state_change(events.append)
    clock.advance(0.25)
    b.try_acquire().failure()
    e = events[0]
    assert (e.breaker, e.from_, e.to, e.at, e.reason) == ("inv", "closed", "open", 0.25, "consecutive_failures")
    assert e["from"] == "closed" and e.as_dict()["to"] == "open"
    assert b.remove_listener(lid) is True
    assert b.remove_listener(lid) is False
    b.reset()
    assert len(events) == 1


def test_listener_that_raises_is_reported_and_the_breaker_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    reported: List[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(u))
    b = make(consecutive_failures=1)
    seen: List[str] = []

    def bad(event: seawall.StateChange) -> None:
        raise RuntimeError("listener bug")

    b.on_state_change(bad)
    b.on_state_change(lambda e: seen.append(e.to))
    b.try_acquire().failure()
    assert b.state == "open"
    assert seen == ["open"]  # the next listener still ran
    assert len(reported) == 1 and isinstance(reported[0].exc_value, RuntimeError)
    b.reset()
    assert b.state == "closed" and seen == ["open", "closed"] and len(reported) == 2


def test_listener_may_call_back_into_the_breaker() -> None:
    b = make(consecutive_failures=1)
    states: List[str] = []
    b.on_state_change(lambda e: states.append(b.snapshot()["state"]))
    b.try_acquire().failure()
    assert states == ["open"]


def test_listener_must_be_callable() -> None:
    with pytest.raises(seawall.InvalidArgument):
        make().on_state_change(42)  # type: ignore[arg-type]


def test_breaker_with_cycles_is_collected() -> None:
    b = make()
    b.on_state_change(lambda e: b.state)  # listener -> breaker -> listener
    holder = {"b": b}
    b2 = make(fallback=lambda e: holder)  # fallback -> dict -> breaker
    holder["b2"] = b2
    refs = [weakref.ref(b), weakref.ref(b2)]
    del b, b2, holder
    gc.collect()
    assert [r() for r in refs] == [None, None]


# -- configuration ----------------------------------------------------------------------

# Every invalid value of docs/breaker.md "Configuration": (options, field, value as the
# error shows it).
INVALID = [
    ({"consecutive_failures": 0}, "consecutive_failures", "0"),
    ({"consecutive_failures": -1}, "consecutive_failures", "-1"),
    ({"consecutive_failures": 2.5}, "consecutive_failures", "2.5"),
    ({"consecutive_failures": True}, "consecutive_failures", "true"),
    ({"window_size": 0}, "window_size", "0"),
    ({"window_size": 1_000_001}, "window_size", "1000001"),
    ({"window_buckets": 0}, "window_buckets", "0"),
    ({"window_buckets": 10_001}, "window_buckets", "10001"),
    ({"minimum_calls": 0}, "minimum_calls", "0"),
    ({"minimum_calls": 1.5}, "minimum_calls", "1.5"),
    ({"half_open_max_calls": 0}, "half_open_max_calls", "0"),
    ({"half_open_max_calls": 10_001}, "half_open_max_calls", "10001"),
    ({"half_open_success_threshold": 0}, "half_open_success_threshold", "0"),
    ({"half_open_success_threshold": 10_001}, "half_open_success_threshold", "10001"),
    ({"failure_rate_threshold": 0}, "failure_rate_threshold", "0"),
    ({"failure_rate_threshold": -0.5}, "failure_rate_threshold", "-0.5"),
    ({"failure_rate_threshold": 1.5}, "failure_rate_threshold", "1.5"),
    ({"failure_rate_threshold": math.nan}, "failure_rate_threshold", "nan"),
    ({"slow_call_rate_threshold": 0.0, "slow_call_duration": 1}, "slow_call_rate_threshold", "0.0"),
    ({"timeout": 0}, "timeout", "0s"),
    ({"timeout": -1}, "timeout", "-1s"),
    ({"timeout": math.inf}, "timeout", "infs"),
    ({"slow_call_rate_threshold": 1.01, "slow_call_duration": 1}, "slow_call_rate_threshold", "1.01"),
    ({"open_duration": -1}, "open_duration", "-1s"),
    ({"open_duration": math.nan}, "open_duration", "nans"),
    ({"slow_call_duration": 0}, "slow_call_duration", "0s"),
    ({"slow_call_duration": -0.5}, "slow_call_duration", "-0.5s"),
    ({"slow_call_duration": math.nan}, "slow_call_duration", "nans"),
    ({"window_duration": 0}, "window_duration", "0s"),
    ({"window_duration": -1}, "window_duration", "-1s"),
    ({"probe_timeout": 0}, "probe_timeout", "0s"),
    ({"probe_timeout": -1}, "probe_timeout", "-1s"),
    ({"open_duration_max": -1}, "open_duration_max", "-1s"),
    ({"backoff_multiplier": 0.5}, "backoff_multiplier", "0.5"),
    ({"backoff_multiplier": math.nan}, "backoff_multiplier", "nan"),
    ({"backoff_multiplier": math.inf}, "backoff_multiplier", "inf"),
    ({"window": "sliding"}, "window", '"sliding"'),
    ({"window": "time", "window_duration": 10, "window_buckets": 3}, "window_buckets", "3"),
    ({"half_open_max_calls": 2, "half_open_success_threshold": 3}, "half_open_success_threshold", "3"),
    ({"open_duration": 5, "open_duration_max": 1}, "open_duration_max", "1s"),
    ({"slow_call_rate_threshold": 0.5}, "slow_call_duration", "unset"),
    ({"window_size": "10"}, "window_size", '"10"'),
    ({"window_size": [10]}, "window_size", "<list>"),
    ({"open_duration": "1s"}, "open_duration", '"1s"'),
    ({"failure_rate_threshold": "0.5"}, "failure_rate_threshold", '"0.5"'),
    ({"name": 5}, "name", "5"),
    ({"max_failures": 3}, "max_failures", "3"),
]


@pytest.mark.parametrize("options,field,value", INVALID, ids=[f"{f}={v}" for _, f, v in INVALID])
def test_invalid_config_is_refused(options: dict, field: str, value: str) -> None:
    with pytest.raises(seawall.ConfigError) as e:
        seawall.CircuitBreaker(**{"name": "dep", **options})
    err = e.value
    assert isinstance(err, ValueError) and isinstance(err, seawall.SeawallError)
    assert err.code == "SEAWALL_CONFIG"
    assert (err.field, err.value) == (field, value), str(err)
    assert field in str(err) and value in str(err)


def test_huge_int_is_refused_not_overflowed() -> None:
    with pytest.raises(seawall.ConfigError, match="window_size") as e:
        seawall.CircuitBreaker(window_size=10**30)
    assert "at most" in str(e.value)


@pytest.mark.parametrize(
    "options,field",
    [
        ({"clock": "wall"}, "clock"),
        ({"failure_on": "Exception"}, "failure_on"),
        ({"failure_on": (ValueError, 3)}, "failure_on"),
        ({"failure_on": int}, "failure_on"),
        ({"ignore": 1}, "ignore"),
        ({"fallback": "cached"}, "fallback"),
    ],
)
def test_invalid_binding_options_are_refused(options: dict, field: str) -> None:
    with pytest.raises(seawall.ConfigError) as e:
        seawall.CircuitBreaker(**options)
    assert e.value.field == field and field in str(e.value)


def test_subclass_with_its_own_init() -> None:
    class Named(seawall.CircuitBreaker):
        def __init__(self, **config: Any) -> None:
            super().__init__(**config)
            self.created = True

    b = Named(name="n", consecutive_failures=1)
    assert b.created and b.name == "n"
    b.try_acquire().failure()
    assert b.state == "open"


def test_valid_config_with_every_option() -> None:
    b = seawall.CircuitBreaker(
        name="all", consecutive_failures=3, failure_rate_threshold=0.5, slow_call_rate_threshold=1,
        slow_call_duration=0.2, window="time", window_size=10, window_duration=10, window_buckets=10,
        minimum_calls=5, open_duration=0, open_duration_max=60, backoff_multiplier=2, half_open_max_calls=3,
        half_open_success_threshold=2, probe_timeout=5.5, clock=seawall.ManualClock(),
    )
    assert b.name == "all" and b.state == "closed" and b.needs_duration
    assert "all" in repr(b)
