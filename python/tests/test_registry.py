"""Registry, metrics, Prometheus, health, events, logging and the ASGI endpoints."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from prometheus_client.parser import text_string_to_metric_families

import seawall
import seawall.asgi

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def samples(text: str) -> Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text, parsed by prometheus_client's parser."""
    out: Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(parsed: Dict[Any, float], name: str, **labels: str) -> float:
    return parsed[(name, tuple(sorted(labels.items())))]


# -- the registry ------------------------------------------------------------------------------


def test_breakers_are_get_or_create_and_bounded() -> None:
    registry = seawall.Registry(max_breakers=5)
    db = registry.breaker("db", consecutive_failures=2, critical=False)
    assert registry.breaker("db", consecutive_failures=99) is db  # the first config is kept
    assert isinstance(db, seawall.CircuitBreaker) and db.name == "db"
    for i in range(30):
        registry.breaker(f"tenant-{i}")
    names = registry.breaker_names()
    assert len(names) <= 5 and "tenant-29" in names
    assert len(registry._breakers) <= 6  # the Python side forgets what the core forgot
    with pytest.raises(seawall.ConfigError) as info:
        registry.breaker("bad", consecutive_failures=0)
    assert info.value.field == "consecutive_failures"
    with pytest.raises(seawall.ConfigError) as info:
        registry.breaker("")
    assert info.value.field == "name"
    with pytest.raises(seawall.ConfigError) as info:
        seawall.Registry(max_breakers=0)
    assert info.value.field == "max_breakers"
    assert registry.remove_breaker("tenant-29") and not registry.remove_breaker("tenant-29")
    cache = registry.idempotency_cache("payments", ttl=60)
    assert registry.idempotency_cache("payments") is cache and cache.name == "payments"
    assert registry.idempotency_caches() == {"payments": cache}


def test_metrics_are_exact_after_threads_times_calls() -> None:
    registry = seawall.Registry()
    breaker = registry.breaker("svc")
    breaker.disable()  # admits every call and counts it: the counts are exact
    cache = registry.idempotency_cache("jobs")
    threads, calls = 8, 500

    def boom() -> None:
        raise ConnectionError("down")

    def worker(t: int) -> None:
        for i in range(calls):
            if i % 5 == 0:
                with pytest.raises(ConnectionError):
                    breaker.call(boom)
            else:
                breaker.call(lambda: None)
            cache.run(f"job-{i % 50}", lambda: i)

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    total = threads * calls
    snap = registry.snapshot()
    assert snap["breakers"]["svc"]["successes"] == total * 4 // 5
    assert snap["breakers"]["svc"]["failures"] == total // 5
    jobs = snap["idempotency"]["jobs"]
    assert jobs["executed"] == 50 and jobs["executed"] + jobs["replayed"] == total
    parsed = samples(registry.prometheus())
    assert value(parsed, "seawall_breaker_calls_total", breaker="svc", outcome="success") == total * 4 // 5
    assert value(parsed, "seawall_breaker_calls_total", breaker="svc", outcome="failure") == total // 5
    assert value(parsed, "seawall_breaker_state", breaker="svc", state="disabled") == 1
    assert value(parsed, "seawall_idempotency_requests_total", cache="jobs", result="execute") == 50
    assert value(parsed, "seawall_idempotency_requests_total", cache="jobs", result="replay") == total - 50


def observability_scenario() -> seawall.Registry:
    """bindings/node/examples/observability_scenario.rs, through the Python package."""
    clock = seawall.ManualClock()
    registry = seawall.Registry(clock=clock, max_breakers=100)
    db = registry.breaker("db", consecutive_failures=2)
    cache = registry.breaker("cache", consecutive_failures=1, critical=False, fallback=lambda err: "stale")
    api = registry.breaker('api "v2"', slow_call_duration=0.1, failure_rate_threshold=0.9)

    def boom() -> None:
        raise RuntimeError("boom")

    for _ in range(3):
        db.call(lambda: "ok")
    with pytest.raises(RuntimeError):
        db.call(boom)
    with pytest.raises(RuntimeError):
        cache.call(boom)
    assert cache.call(lambda: "fresh") == "stale"  # rejected, answered by the fallback
    with pytest.raises(seawall.BreakerOpen):
        cache.try_acquire()  # rejected
    clock.advance(0.5)
    api.try_acquire().success(0.15)
    api.try_acquire().timeout(0.04)
    api.try_acquire().ignore()
    payments = registry.idempotency_cache("payments")
    assert payments.run("charge-1", lambda: {"id": 1}, fingerprint={"amount": 100}) == {"id": 1}
    assert payments.run("charge-1", lambda: {"id": 2}, fingerprint={"amount": 100}) == {"id": 1}
    with pytest.raises(seawall.IdempotencyMismatch):
        payments.run("charge-1", lambda: 0, fingerprint={"amount": 200})
    with pytest.raises(RuntimeError):
        payments.run("charge-2", boom)
    registry.add_check("disk", lambda: True)

    def queue() -> None:
        raise RuntimeError("queue is full")

    registry.add_check("queue", queue, critical=False)
    assert registry.health()["status"] == "degraded"
    return registry


def rust_scenario() -> Tuple[str, Any]:
    """The Rust registry's output for the same scenario: $SEAWALL_OBSERVABILITY_FIXTURE, else
    fixtures/observability_rust.txt (regenerate with `cargo run -q --release -p seawall-node
    --example observability_scenario > python/tests/fixtures/observability_rust.txt`)."""
    path = os.environ.get("SEAWALL_OBSERVABILITY_FIXTURE") or str(FIXTURES / "observability_rust.txt")
    text = Path(path).read_text(encoding="utf-8")
    prometheus, snapshot = text.split("---\n")
    return prometheus, json.loads(snapshot)


def test_prometheus_text_and_snapshot_are_identical_to_the_rust_registry() -> None:
    registry = observability_scenario()
    rust_prometheus, rust_snapshot = rust_scenario()
    text = registry.prometheus()
    assert text == rust_prometheus
    assert registry.snapshot() == rust_snapshot
    parsed = samples(text)
    assert value(parsed, "seawall_breaker_state", breaker="cache", state="open") == 1
    assert value(parsed, "seawall_breaker_fallbacks_total", breaker="cache") == 1
    assert value(parsed, "seawall_breaker_calls_total", breaker="cache", outcome="rejected") == 2
    assert value(parsed, "seawall_breaker_calls_total", breaker='api "v2"', outcome="timeout") == 1
    assert value(parsed, "seawall_breaker_slow_calls_total", breaker='api "v2"') == 1
    assert value(parsed, "seawall_health_status", status="degraded") == 1
    assert value(parsed, "seawall_health_check_up", check="queue", kind="check") == 0
    assert value(parsed, "seawall_breaker_transitions_total", breaker="cache", **{"from": "closed", "to": "open"}) == 1
    assert value(parsed, "seawall_idempotency_requests_total", cache="payments", result="execute") == 2
    assert value(parsed, "seawall_idempotency_requests_total", cache="payments", result="mismatch") == 1


# -- health -------------------------------------------------------------------------------------


def test_health_status_from_breakers_and_checks() -> None:
    registry = seawall.Registry()
    db = registry.breaker("db")
    search = registry.breaker("search", critical=False)
    assert registry.health() == {"status": "ok", "checks": registry.report()["checks"]}
    search.force_open()
    h = registry.health()
    assert h["status"] == "degraded"
    search_report = h["checks"]["search"]
    assert (search_report["kind"], search_report["ok"], search_report["error"]) == ("breaker", False, "breaker is forced_open")
    db.force_open()
    assert registry.health()["status"] == "down"
    db.reset()
    search.reset()
    registry.add_check("flag", lambda: False, critical=False)

    def throws() -> None:
        raise ConnectionError("connection refused")

    registry.add_check("db-ping", throws)
    h = registry.health()
    assert h["status"] == "down"
    assert h["checks"]["flag"]["error"] == "the check returned False" and h["checks"]["flag"]["status"] == "degraded"
    assert h["checks"]["db-ping"]["error"] == "connection refused" and h["checks"]["db-ping"]["status"] == "down"
    assert registry.remove_check("db-ping") and registry.health()["status"] == "degraded"


def test_checks_run_once_per_interval() -> None:
    clock = seawall.ManualClock()
    registry = seawall.Registry(clock=clock)
    runs = []
    registry.add_check("db", lambda: runs.append(1), interval=10)
    for _ in range(5):
        assert registry.health()["status"] == "ok"
    assert len(runs) == 1
    clock.advance(10)
    registry.health()
    assert len(runs) == 2
    with pytest.raises(seawall.ConfigError) as info:
        registry.add_check("x", lambda: True, timeout=-1)
    assert info.value.field == "timeout"


def test_a_hanging_check_is_failed_at_its_timeout() -> None:
    registry = seawall.Registry()
    release = threading.Event()
    registry.add_check("hangs", lambda: release.wait(10), timeout=0.2, interval=0)
    try:
        started = time.monotonic()
        h = registry.health()
        assert time.monotonic() - started < 2
        assert h["status"] == "down"
        assert h["checks"]["hangs"]["error"] == "timed out after 200 ms"
        h = registry.health()  # the first run is still hanging: no second run starts
        assert h["checks"]["hangs"]["error"] == "the previous run has not returned; no new run was started"
    finally:
        release.set()


def test_health_async_runs_checks_on_the_loop_bounded_by_their_timeouts() -> None:
    registry = seawall.Registry()
    calls: List[str] = []

    async def ok() -> bool:
        calls.append("ok")
        await asyncio.sleep(0)
        return True

    async def hangs() -> None:
        await asyncio.sleep(30)

    async def stubborn() -> None:  # swallows its cancellation: still bounded
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await asyncio.sleep(0.5)

    def sync_fails() -> None:
        raise RuntimeError("disk full")

    registry.add_check("ok", ok)
    registry.add_check("hangs", hangs, timeout=0.1, critical=False)
    registry.add_check("stubborn", stubborn, timeout=0.1, critical=False)
    registry.add_check("sync", sync_fails, critical=False)

    async def main() -> Tuple[Dict[str, Any], float]:
        started = time.monotonic()
        report = await registry.health_async()
        return report, time.monotonic() - started

    report, took = asyncio.run(main())
    assert took < 1.5  # bounded by the 0.1 s timeouts, not by the checks' 30 s sleeps
    assert report["status"] == "degraded"
    checks = report["checks"]
    assert checks["ok"]["ok"] is True and calls == ["ok"]
    assert checks["hangs"]["error"] == "timed out after 100 ms"
    assert checks["stubborn"]["error"] == "timed out after 100 ms"
    assert checks["sync"]["error"] == "disk full"


# -- events and logging ----------------------------------------------------------------------------


def test_breaker_on_event_reports_every_kind() -> None:
    clock = seawall.ManualClock()
    breaker = seawall.CircuitBreaker(name="pay", clock=clock, consecutive_failures=1, fallback=lambda e: "cached")
    events: List[Dict[str, Any]] = []
    lid = breaker.on_event(events.append)
    breaker.try_acquire().timeout(0.25)
    assert breaker.call(lambda: "x") == "cached"
    with pytest.raises(seawall.BreakerOpen):
        breaker.try_acquire()
    assert [e["type"] for e in events] == ["timeout", "state_change", "rejected", "fallback", "rejected"]
    assert events[0] == {"type": "timeout", "breaker": "pay", "at": 0.0, "took": 0.25}
    assert events[1] == {"type": "state_change", "breaker": "pay", "at": 0.0, "from": "closed", "to": "open", "reason": "consecutive_failures"}
    assert events[2]["state"] == "open" and events[2]["retry_after"] == pytest.approx(30.0)
    assert breaker.remove_listener(lid)

    async def main() -> Any:
        return await breaker.call_async(lambda: "x")

    assert asyncio.run(main()) == "cached"
    assert len(events) == 5  # removed


def test_a_raising_listener_never_breaks_the_primitive(monkeypatch: pytest.MonkeyPatch) -> None:
    reported: List[BaseException] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(u.exc_value))
    registry = seawall.Registry()

    def bad(event: Dict[str, Any]) -> None:
        raise ValueError("listener bug")

    registry.on_event(bad)
    seen: List[str] = []
    registry.on_event(lambda e: seen.append(e["type"]))
    b = registry.breaker("b", consecutive_failures=1)
    b.on_event(bad)

    def boom() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        b.call(boom)
    with pytest.raises(seawall.BreakerOpen):
        b.call(lambda: 1)
    cache = registry.idempotency_cache("c")
    cache.run("k", lambda: 1)
    assert cache.run("k", lambda: 2) == 1
    assert seen == ["state_change", "rejected", "replay"]
    # state_change and rejected to both bad listeners, replay to the registry's: 5 reports.
    assert len(reported) == 5 and all(isinstance(e, ValueError) for e in reported)


def test_events_are_structured_logging_records(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="seawall")
    clock = seawall.ManualClock()
    registry = seawall.Registry(clock=clock)
    b = registry.breaker("inventory", consecutive_failures=1, open_duration=10)

    def boom() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        b.call(boom)
    with pytest.raises(seawall.BreakerOpen):
        b.call(lambda: 1)
    cache = registry.idempotency_cache("payments")
    cache.run("k", lambda: 1, fingerprint="a")
    with pytest.raises(seawall.IdempotencyMismatch):
        cache.run("k", lambda: 1, fingerprint="b")
    records = [r for r in caplog.records if r.name == "seawall"]
    kinds = [r.seawall_event for r in records]  # type: ignore[attr-defined]
    assert kinds == ["state_change", "rejected", "mismatch"]
    change, rejected, mismatch = records
    assert change.levelno == logging.WARNING
    assert change.getMessage() == "breaker 'inventory': closed -> open (consecutive_failures)"
    assert (change.breaker, change.from_state, change.to_state, change.reason) == ("inventory", "closed", "open", "consecutive_failures")  # type: ignore[attr-defined]
    assert rejected.levelno == logging.DEBUG and rejected.retry_after == pytest.approx(10.0)  # type: ignore[attr-defined]
    assert (mismatch.cache, mismatch.key, mismatch.levelno) == ("payments", "k", logging.WARNING)  # type: ignore[attr-defined]
    # A standalone breaker logs when asked to.
    caplog.clear()
    solo = seawall.CircuitBreaker(name="solo", consecutive_failures=1)
    solo.on_event(seawall.log_event)
    with pytest.raises(RuntimeError):
        solo.call(boom)
    assert [r.seawall_event for r in caplog.records] == ["state_change"]  # type: ignore[attr-defined]


# -- ASGI ----------------------------------------------------------------------------------------


def call_asgi(app: Any, method: str, path: str) -> Tuple[int, Dict[str, str], bytes]:
    """Calls an ASGI app directly (no server), as a server would."""
    sent: List[Dict[str, Any]] = []

    async def receive() -> Dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "path": path, "headers": []}
    asyncio.run(app(scope, receive, send))
    start, body = sent[0], sent[1]
    assert start["type"] == "http.response.start" and body["type"] == "http.response.body"
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, body["body"]


def test_asgi_health_and_metrics() -> None:
    registry = seawall.Registry()
    db = registry.breaker("db")
    registry.breaker("search", critical=False)
    registry.add_check("disk", lambda: True)
    app = seawall.asgi.observability_app(registry)
    status, headers, body = call_asgi(app, "GET", "/health")
    assert status == 200 and headers["content-type"] == "application/json" and headers["cache-control"] == "no-store"
    assert json.loads(body)["status"] == "ok"
    registry.breaker("search").force_open()
    status, _, body = call_asgi(app, "GET", "/health")
    assert (status, json.loads(body)["status"]) == (200, "degraded")
    db.force_open()
    status, _, body = call_asgi(app, "GET", "/health")
    assert (status, json.loads(body)["status"]) == (503, "down")
    status, headers, body = call_asgi(app, "GET", "/metrics")
    assert status == 200 and headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    parsed = samples(body.decode())
    assert value(parsed, "seawall_health_status", status="down") == 1
    assert value(parsed, "seawall_breaker_state", breaker="db", state="forced_open") == 1
    status, headers, body = call_asgi(app, "HEAD", "/metrics")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0
    assert call_asgi(app, "POST", "/health")[0] == 405
    assert call_asgi(app, "GET", "/other")[0] == 404


def test_asgi_lifespan_is_acknowledged() -> None:
    app = seawall.asgi.observability_app(seawall.Registry())
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: List[str] = []

    async def receive() -> Dict[str, Any]:
        return incoming.pop(0)

    async def send(message: Dict[str, Any]) -> None:
        sent.append(message["type"])

    asyncio.run(app({"type": "lifespan"}, receive, send))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_each_cache_store_is_a_health_check_down_or_degraded_per_its_criticality() -> None:
    gone = seawall.RedisStore(f"redis://127.0.0.1:{_closed_port()}", connect_timeout=0.2)
    r = seawall.Registry()
    r.idempotency_cache("local")  # a memory store: always able to work
    r.idempotency_cache("search", store=gone, on_store_error="run")  # runs unprotected: degraded
    h = r.health()
    assert h["status"] == "degraded", h
    local, search = h["checks"]["idempotency:local"], h["checks"]["idempotency:search"]
    assert (local["kind"], local["ok"], local["status"]) == ("store", True, "ok")
    assert (search["kind"], search["ok"], search["critical"], search["status"]) == ("store", False, False, "degraded")
    assert search["error"].startswith("redis store unavailable: "), search["error"]
    assert search["last_ok_at_ms"] is None
    assert r.idempotency_caches()["search"].options["critical"] is False

    r.idempotency_cache("payments", store=gone)  # fails its calls when the store does: down
    h = asyncio.run(r.health_async())
    assert h["status"] == "down", h
    assert h["checks"]["idempotency:payments"]["critical"] is True
    assert 'seawall_health_check_up{check="idempotency:payments",kind="store"} 0' in r.prometheus()

    with pytest.raises(seawall.ConfigError, match="critical") as e:
        r.idempotency_cache("bad", critical="yes")
    assert 'critical = "yes"' in str(e.value)
