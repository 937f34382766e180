"""Deadlines, grpc-timeout values and cancel tokens (the native part of issue 3)."""

from __future__ import annotations

import gc
import math
import sys
import threading
import time
from typing import Any, List

import pytest

import seawall
from seawall import _native


# -- Deadline ---------------------------------------------------------------------------


def test_deadline_on_a_manual_clock_is_exact() -> None:
    clock = seawall.ManualClock()
    d = seawall.Deadline.after(0.25, clock=clock)
    assert d.clock is clock
    assert d.instant == 0.25 and d.remaining() == 0.25 and d.remaining_ms() == 250
    assert d.to_grpc_timeout() == "250000u"
    clock.advance(0.2)
    assert not d.expired() and d.remaining_ms() == 50
    d.check()  # not expired: no error
    clock.advance(0.05)
    assert d.expired() and d.remaining() == 0.0 and d.to_grpc_timeout() == "0n"
    with pytest.raises(seawall.Timeout, match="deadline exceeded") as e:
        d.check()
    assert isinstance(e.value, TimeoutError) and e.value.code == "SEAWALL_TIMEOUT"


def test_deadline_on_the_system_clock() -> None:
    d = seawall.Deadline.after(30)
    assert 29.0 < d.remaining() <= 30.0 and not d.expired()
    assert isinstance(d.clock, seawall.SystemClock)
    assert seawall.Deadline.after(0).expired()
    # Every system-clock deadline is on one clock, so any two can be compared.
    a, b = seawall.Deadline.after(5), seawall.Deadline.after(1, clock=seawall.SystemClock())
    assert a.earliest(b) == b and b.earliest(a) == b


def test_deadline_from_grpc_timeout_counts_from_now() -> None:
    clock = seawall.ManualClock()
    clock.advance(10)
    d = seawall.Deadline.from_grpc_timeout("3S", clock=clock)
    assert d.instant == 13.0 and d.remaining() == 3.0
    assert seawall.Deadline.from_grpc_timeout("1500m").remaining() > 1.0
    with pytest.raises(seawall.InvalidArgument, match='"3s"') as e:
        seawall.Deadline.from_grpc_timeout("3s", clock=clock)
    assert isinstance(e.value, ValueError) and e.value.code == "SEAWALL_INVALID_ARGUMENT"


@pytest.mark.parametrize(
    "bad, shown",
    [(-1, "-1s"), (-0.5, "-0.5s"), (math.nan, "nans"), (math.inf, "infs"), (-math.inf, "-infs"), ("1", '"1"'), (None, "<NoneType>"), (True, "true")],
)
def test_bad_durations_are_refused_with_the_argument_and_value(bad: Any, shown: str) -> None:
    for make in (
        lambda: seawall.Deadline.after(bad),
        lambda: seawall.timeout(bad),
        lambda: seawall.deadline(bad),
        lambda: seawall.format_grpc_timeout(bad),
    ):
        with pytest.raises(seawall.InvalidArgument) as e:
            make()
        assert f"seconds = {shown}" in str(e.value), str(e.value)
        assert isinstance(e.value, ValueError) and e.value.code == "SEAWALL_INVALID_ARGUMENT"


def test_other_bad_arguments() -> None:
    d = seawall.Deadline.after(1, clock=seawall.ManualClock())
    with pytest.raises(seawall.InvalidArgument, match="min = -1s"):
        d.budget(0.5, min=-1)
    with pytest.raises(seawall.InvalidArgument, match="clock = <str>"):
        seawall.Deadline.after(1, clock="system")  # type: ignore[arg-type]
    with pytest.raises(seawall.InvalidArgument, match="clock = <int>"):
        seawall.timeout(1, clock=3)  # type: ignore[arg-type]
    with pytest.raises(seawall.InvalidArgument, match="clock"):
        seawall.deadline(d, clock=seawall.ManualClock())
    with pytest.raises(seawall.InvalidArgument, match="different clocks") as e:
        d.earliest(seawall.Deadline.after(1))
    assert isinstance(e.value, ValueError)
    with pytest.raises(seawall.InvalidArgument, match="must be finite"):
        seawall.ManualClock().advance(math.inf)


def test_earliest_and_budget() -> None:
    clock = seawall.ManualClock()
    outer = seawall.Deadline.after(1.0, clock=clock)
    clock.advance(0.2)
    inner = seawall.Deadline.after(0.5, clock=clock)
    assert outer.earliest(inner) == inner and inner.earliest(outer) == inner
    assert outer.earliest(inner).clock is clock
    assert inner.budget(0.4, min=0.005) == pytest.approx(0.2)
    assert inner.budget(0.001, min=0.005) == pytest.approx(0.005)
    assert inner.budget(0.4, min=10) == pytest.approx(0.5)  # never more than what remains
    assert inner.budget(1.0) == pytest.approx(0.5)
    for bad in (40, -0.1, float("nan"), float("inf")):
        with pytest.raises(seawall.InvalidArgument, match="fraction"):
            inner.budget(bad)
    assert inner == seawall.Deadline.after(0.5, clock=clock) and hash(inner) == hash(seawall.Deadline.after(0.5, clock=clock))
    assert inner != seawall.Deadline.after(0.7, clock=seawall.ManualClock()), "same instant, other clock"
    assert "ManualClock" in repr(inner)


def test_grpc_timeout_functions() -> None:
    assert seawall.parse_grpc_timeout("250m") == 0.25
    assert seawall.parse_grpc_timeout("3S") == 3.0
    assert seawall.parse_grpc_timeout("2M") == 120.0
    assert seawall.parse_grpc_timeout("1H") == 3600.0
    assert seawall.parse_grpc_timeout("7u") == pytest.approx(7e-6)
    assert seawall.format_grpc_timeout(0.25) == "250000u"
    assert seawall.format_grpc_timeout(3) == "3000000u"
    assert seawall.format_grpc_timeout(1000) == "1000000m"
    assert seawall.format_grpc_timeout(0) == "0n"
    for bad in ["", "m", "100", "123456789m", "1.5S", "-1S", "10s", " 1S"]:
        with pytest.raises(seawall.InvalidArgument, match="grpc-timeout") as e:
            seawall.parse_grpc_timeout(bad)
        assert f'"{bad}"' in str(e.value), str(e.value)


# -- CancelToken ------------------------------------------------------------------------


def test_token_callbacks_run_once_with_the_reason() -> None:
    token = seawall.CancelToken()
    calls: List[str] = []
    token.on_cancel(calls.append)
    token.on_cancel(lambda r: calls.append("second:" + r))
    assert not token.cancelled and token.reason is None
    assert token.cancel() is True
    assert token.cancel() is False
    assert calls == ["cancelled", "second:cancelled"]
    assert token.cancelled and token.reason == "cancelled"
    token.on_cancel(lambda r: calls.append("late:" + r))  # already cancelled: runs at once
    assert calls[-1] == "late:cancelled" and len(calls) == 3
    assert "cancelled" in repr(token)


def test_token_remove() -> None:
    token = seawall.CancelToken()
    calls: List[str] = []
    keep = token.on_cancel(lambda r: calls.append("keep"))
    gone = token.on_cancel(lambda r: calls.append("gone"))
    assert token.remove(gone) is True
    assert token.remove(gone) is False
    assert token.remove(12345) is False
    token.cancel()
    assert calls == ["keep"]
    assert token.remove(keep) is False  # it ran


def test_token_callback_errors_go_to_unraisablehook(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: List[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    token = seawall.CancelToken()
    calls: List[str] = []
    token.on_cancel(lambda r: 1 / 0)
    token.on_cancel(calls.append)
    token.cancel()
    assert calls == ["cancelled"], "the other callbacks still run"
    assert len(seen) == 1 and isinstance(seen[0].exc_value, ZeroDivisionError)
    with pytest.raises(seawall.InvalidArgument, match="callable"):
        token.on_cancel(42)  # type: ignore[arg-type]


def test_callbacks_may_call_back_into_the_token_and_the_clock() -> None:
    clock = seawall.ManualClock()
    token = seawall.CancelToken()
    calls: List[Any] = []
    token.on_cancel(lambda r: calls.append((token.cancelled, token.cancel(), token.on_cancel(calls.append))))
    token.on_cancel(lambda r: clock.advance(1))  # re-entering the clock that fired it
    guard = token.cancel_at(seawall.Deadline.after(0.5, clock=clock))
    clock.advance(0.5)
    # The callback registered from inside a callback ran at once, before the tuple was appended.
    assert calls[0] == "deadline_exceeded" and calls[1][:2] == (True, False)
    assert clock.now() == 1.5
    guard.cancel()


def test_child_tokens() -> None:
    parent = seawall.CancelToken()
    child = parent.child()
    grandchild = child.child()
    other = parent.child()
    other.cancel()
    assert not parent.cancelled
    parent.cancel()
    assert child.reason == "cancelled" and grandchild.reason == "cancelled"


def test_cancel_at_on_a_manual_clock() -> None:
    clock = seawall.ManualClock()
    token = seawall.CancelToken()
    reasons: List[str] = []
    token.on_cancel(reasons.append)
    guard = token.cancel_at(seawall.Deadline.after(0.1, clock=clock))
    assert clock.pending_timers() == 1 and guard.active
    clock.advance(0.099)
    assert not token.cancelled
    clock.advance(0.001)
    assert token.reason == "deadline_exceeded" and reasons == ["deadline_exceeded"]
    assert clock.pending_timers() == 0
    clock.advance(1)
    assert reasons == ["deadline_exceeded"]
    # A deadline already past cancels at once.
    late = seawall.CancelToken()
    late.cancel_at(seawall.Deadline.after(0, clock=clock))
    assert late.reason == "deadline_exceeded"


def test_guards_unschedule() -> None:
    clock = seawall.ManualClock()
    token = seawall.CancelToken()
    guard = token.cancel_at(seawall.Deadline.after(1, clock=clock))
    guard.cancel()
    assert clock.pending_timers() == 0 and not guard.active
    guard.cancel()  # idempotent
    with token.cancel_at(seawall.Deadline.after(1, clock=clock)) as g:
        assert clock.pending_timers() == 1 and g.active
    assert clock.pending_timers() == 0
    clock.advance(5)
    assert not token.cancelled
    # A guard that is garbage-collected leaves its timer scheduled (as Python timers do).
    token.cancel_at(seawall.Deadline.after(1, clock=clock))
    gc.collect()
    assert clock.pending_timers() == 1
    clock.advance(1)
    assert token.reason == "deadline_exceeded"


def test_cancel_at_on_the_system_clock_fires_on_the_timer_thread() -> None:
    token = seawall.CancelToken()
    fired = threading.Event()
    where: List[int] = []

    def on_cancel(reason: str) -> None:
        where.append(threading.get_ident())
        fired.set()

    token.on_cancel(on_cancel)
    start = time.monotonic()
    guard = token.cancel_at(seawall.Deadline.after(0.05))
    assert fired.wait(5), "the timer thread cancels the token"
    took = time.monotonic() - start
    assert took >= 0.045, took
    assert token.reason == "deadline_exceeded"
    assert where and where[0] != threading.get_ident()
    guard.cancel()
    # And a guard cancelled in time leaves nothing pending.
    base = _native.pending_system_timers()
    other = seawall.CancelToken()
    with other.cancel_at(seawall.Deadline.after(0.05)):
        assert _native.pending_system_timers() == base + 1
    assert _native.pending_system_timers() == base
    time.sleep(0.1)
    assert not other.cancelled
