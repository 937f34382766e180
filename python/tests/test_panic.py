"""Panic containment: a panic armed inside the core (``seawall._native._arm_panic``, see
core/src/failpoint.rs) reaches Python as ``seawall.PanicException`` through the real entry
points, never crashes the interpreter, and leaves the object usable
(docs/hardening.md, "Panic containment")."""

from __future__ import annotations

import pytest

import seawall
from seawall import _native


@pytest.fixture(autouse=True)
def _disarmed():
    yield
    _native._disarm_panics()


def test_panic_exception_is_a_base_exception_not_a_seawall_error() -> None:
    assert issubclass(seawall.PanicException, BaseException)
    assert not issubclass(seawall.PanicException, Exception)
    with pytest.raises(seawall.InvalidArgument, match='site = "nowhere"'):
        _native._arm_panic("nowhere")


def test_a_panic_while_tripping_leaves_the_breaker_closed_and_usable() -> None:
    clock = seawall.ManualClock()
    breaker = seawall.CircuitBreaker(consecutive_failures=2, clock=clock)

    @breaker
    def fail() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        fail()
    _native._arm_panic("breaker.trip")
    with pytest.raises(seawall.PanicException, match="breaker.trip"):
        fail()
    assert breaker.state == "closed"
    assert breaker.snapshot()["failures"] == 2
    with pytest.raises(ConnectionError):
        fail()
    assert breaker.state == "open"
    with pytest.raises(seawall.BreakerOpen):
        fail()


def test_a_panic_in_begin_claims_nothing() -> None:
    cache = seawall.IdempotencyCache()
    _native._arm_panic("idempotency.begin")
    with pytest.raises(seawall.PanicException, match="idempotency.begin"):
        cache.run("order-1", lambda: 1)
    assert cache.run("order-1", lambda: 2) == 2
    assert cache.run("order-1", lambda: 3) == 2


def test_a_panic_while_rendering_leaves_the_registry_usable() -> None:
    registry = seawall.Registry()
    registry.breaker("db")
    _native._arm_panic("registry.render")
    with pytest.raises(seawall.PanicException, match="registry.render"):
        registry.prometheus()
    assert 'seawall_breaker_state{breaker="db"' in registry.prometheus()
