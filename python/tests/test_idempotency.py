"""The idempotency cache through the public Python API: run / run_async / the decorator,
serialisation, the error policy, waiting (without the GIL, without blocking the loop,
Ctrl-C), events, options and the low-level surface."""

from __future__ import annotations

import _thread
import asyncio
import hashlib
import json
import signal
import sys
import threading
import time
from typing import Any, Dict, List

import pytest

import seawall


def counter() -> Dict[str, int]:
    return {"n": 0}


# -- run, replay, fingerprints ---------------------------------------------------------------


def test_run_once_and_every_caller_gets_the_stored_form() -> None:
    cache = seawall.IdempotencyCache(name="orders")
    calls = counter()

    def create(order_id: int, *, qty: int) -> Any:
        calls["n"] += 1
        return {"id": order_id, "qty": qty, "tags": ("a", "b")}

    first = cache.run("order-1", create, 7, qty=2)
    again = cache.run("order-1", create, 8, qty=3)
    assert calls["n"] == 1
    # The owner gets what duplicates get: the JSON round trip (a tuple becomes a list).
    assert first == again == {"id": 7, "qty": 2, "tags": ["a", "b"]}
    stats = cache.stats()
    assert (stats["executed"], stats["replayed"], stats["completed"]) == (1, 1, 1)
    assert cache.peek("order-1")["state"] == "completed"


def test_bytes_are_stored_as_bytes() -> None:
    cache = seawall.IdempotencyCache()
    assert cache.run("b", lambda: bytearray(b"\x00\xff")) == b"\x00\xff"
    assert cache.run("b", lambda: b"other") == b"\x00\xff"
    record = cache.peek("b")["record"]
    assert (record.content_type, record.result) == ("application/octet-stream", b"\x00\xff")


def test_fingerprint_mismatch_is_refused() -> None:
    cache = seawall.IdempotencyCache()
    cache.run("k", lambda: 1, fingerprint={"amount": 100, "currency": "EUR"})
    # Same payload, keys in another order: the canonical JSON is the same.
    assert cache.run("k", lambda: 2, fingerprint={"currency": "EUR", "amount": 100}) == 1
    with pytest.raises(seawall.IdempotencyMismatch) as info:
        cache.run("k", lambda: 3, fingerprint={"amount": 200, "currency": "EUR"})
    assert info.value.code == "SEAWALL_IDEMPOTENCY_MISMATCH"
    assert info.value.key == "k"
    assert isinstance(info.value, seawall.SeawallError)
    # No fingerprint matches only itself.
    with pytest.raises(seawall.IdempotencyMismatch):
        cache.run("k", lambda: 4)


def test_fingerprint_forms() -> None:
    assert seawall.fingerprint("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert seawall.fingerprint(b"abc") == seawall.fingerprint("abc")
    assert seawall.canonical_json({"b": [1, 2.5], "a": "é"}) == '{"a":"é","b":[1,2.5]}'
    assert seawall.fingerprint({"b": 1, "a": 2}) == hashlib.sha256(b'{"a":2,"b":1}').hexdigest()
    assert seawall.fingerprint({"b": 1, "a": 2}) == hashlib.sha256(
        json.dumps({"b": 1, "a": 2}, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()
    with pytest.raises(seawall.InvalidArgument, match="canonical JSON"):
        seawall.fingerprint({"x": float("nan")})
    with pytest.raises(seawall.InvalidArgument, match="canonical JSON"):
        seawall.fingerprint({1, 2})


def test_bad_keys_are_refused_with_their_length() -> None:
    cache = seawall.IdempotencyCache()
    with pytest.raises(seawall.InvalidArgument, match="256 bytes"):
        cache.run("é" * 128, lambda: 1)
    with pytest.raises(seawall.InvalidArgument, match="empty"):
        cache.run("", lambda: 1)
    with pytest.raises(seawall.InvalidArgument, match="is a str"):
        cache.run(42, lambda: 1)  # type: ignore[arg-type]
    assert cache.run("é" * 127, lambda: "ok") == "ok"  # 254 bytes


# -- the error policy -------------------------------------------------------------------------


def test_an_error_releases_the_key_so_a_retry_runs() -> None:
    cache = seawall.IdempotencyCache()
    attempts = counter()

    def flaky() -> str:
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise ConnectionError("provider down")
        return "done"

    with pytest.raises(ConnectionError, match="provider down"):
        cache.run("k", flaky)
    assert cache.peek("k")["state"] == "absent"
    assert cache.run("k", flaky) == "done"
    assert attempts["n"] == 2
    assert cache.stats()["released"] == 1


def test_cache_errors_stores_the_error_and_replays_it() -> None:
    cache = seawall.IdempotencyCache(cache_errors=True)

    class Declined(Exception):
        code = "card_declined"

    def charge() -> None:
        raise Declined("insufficient funds")

    with pytest.raises(Declined):  # the owner gets its own exception unchanged
        cache.run("c1", charge)
    with pytest.raises(seawall.ReplayedError) as info:  # duplicates get it rebuilt
        cache.run("c1", charge)
    assert (info.value.type, info.value.message, info.value.code) == ("Declined", "insufficient funds", "card_declined")
    record = cache.peek("c1")["record"]
    assert record.is_error
    assert json.loads(record.result) == {"type": "Declined", "message": "insufficient funds", "code": "card_declined"}
    # A builtin exception comes back as itself.
    with pytest.raises(ValueError):
        cache.run("c2", lambda: int("x"))
    with pytest.raises(ValueError, match="invalid literal"):
        cache.run("c2", lambda: 1)


def test_outcome_unknown_keeps_the_lease_until_it_expires() -> None:
    clock = seawall.ManualClock()
    cache = seawall.IdempotencyCache(clock=clock, lease=10.0, on_duplicate="reject")

    def crash() -> None:
        try:
            raise TimeoutError("no answer from the provider")
        except TimeoutError as err:
            raise seawall.OutcomeUnknown("sent, no answer") from err

    with pytest.raises(seawall.OutcomeUnknown):
        cache.run("k", crash)
    assert cache.peek("k")["state"] == "in_progress"
    with pytest.raises(seawall.IdempotencyInProgress) as info:
        cache.run("k", lambda: "second")
    assert info.value.retry_after == pytest.approx(10.0)
    clock.advance(10.0)
    seen: List[Any] = []

    def recover() -> str:
        ctx = seawall.current_run()
        assert ctx is not None
        seen.append((ctx.key, ctx.took_over))
        return "recovered"

    assert cache.run("k", recover) == "recovered"
    assert seen == [("k", True)]
    stats = cache.stats()
    assert (stats["abandoned"], stats["taken_over"], stats["released"]) == (1, 1, 0)


def test_current_run_abandon_applies_to_any_exception() -> None:
    cache = seawall.IdempotencyCache(clock=seawall.ManualClock())

    def partial() -> None:
        ctx = seawall.current_run()
        assert ctx is not None
        ctx.abandon()
        raise RuntimeError("failed after the side effect")

    with pytest.raises(RuntimeError):
        cache.run("k", partial)
    assert cache.peek("k")["state"] == "in_progress"
    assert seawall.current_run() is None


def test_unserialisable_results_are_refused_and_the_key_released() -> None:
    cache = seawall.IdempotencyCache()
    with pytest.raises(seawall.InvalidArgument) as info:
        cache.run("k", lambda: {"when": object()})
    message = str(info.value)
    assert 'idempotency key "k"' in message and "cannot be serialised as JSON" in message
    assert "nothing was stored and the key was released" in message
    assert isinstance(info.value.__cause__, TypeError)
    assert cache.peek("k")["state"] == "absent"
    with pytest.raises(seawall.InvalidArgument):
        cache.run("k", lambda: float("inf"))  # not JSON: Node could not read it
    assert cache.run("k", lambda: "fine") == "fine"


def test_results_over_max_result_bytes_are_refused() -> None:
    cache = seawall.IdempotencyCache(max_result_bytes=10)
    with pytest.raises(seawall.InvalidArgument, match="over max_result_bytes"):
        cache.run("k", lambda: "x" * 20)
    assert cache.peek("k")["state"] == "absent"
    assert cache.run("k", lambda: "short") == "short"


def test_lease_lost_when_the_run_outlives_its_lease_and_another_took_over() -> None:
    clock = seawall.ManualClock()
    cache = seawall.IdempotencyCache(clock=clock, lease=1.0)
    events: List[Dict[str, Any]] = []
    cache.on_event(events.append)

    def slow() -> str:
        clock.advance(2.0)  # the lease expired meanwhile...
        assert cache.run("k", lambda: "second owner") == "second owner"  # ...and another owner took over
        return "first owner"

    with pytest.raises(seawall.LeaseLost) as info:
        cache.run("k", slow)
    assert info.value.code == "SEAWALL_LEASE_LOST" and info.value.key == "k"
    assert cache.run("k", lambda: "x") == "second owner"
    assert [e["type"] for e in events] == ["takeover", "lease_lost", "replay"]


def test_renew_from_the_run_context() -> None:
    clock = seawall.ManualClock()
    cache = seawall.IdempotencyCache(clock=clock, lease=1.0)

    def long_job() -> str:
        ctx = seawall.current_run()
        assert ctx is not None
        clock.advance(0.8)
        assert ctx.remaining() == pytest.approx(0.2)
        assert ctx.renew() == pytest.approx(1.0)
        clock.advance(0.8)
        return "done"

    assert cache.run("k", long_job) == "done"
    ctx_after = []
    cache.run("k2", lambda: ctx_after.append(seawall.current_run()))
    with pytest.raises(seawall.LeaseLost, match="the run has finished"):
        ctx_after[0].renew()


def test_on_store_error_run_runs_unprotected_when_the_store_is_full() -> None:
    clock = seawall.ManualClock()
    cache = seawall.IdempotencyCache(clock=clock, max_entries=1, on_store_error="run")
    held = cache.begin("a")
    assert held.kind == "execute"
    assert cache.run("b", lambda: "unprotected") == "unprotected"
    assert cache.peek("b")["state"] == "absent"
    assert cache.stats()["unprotected"] == 1
    strict = seawall.IdempotencyCache(clock=clock, max_entries=1)
    strict.begin("a")
    with pytest.raises(seawall.StoreUnavailable, match="memory store is full"):
        strict.run("b", lambda: 1)


# -- duplicates: waiting, rejecting --------------------------------------------------------------


def test_reject_mode_refuses_duplicates_at_once() -> None:
    clock = seawall.ManualClock()
    cache = seawall.IdempotencyCache(clock=clock, on_duplicate="reject", lease=6.0)
    owner = cache.begin("k")
    clock.advance(1.0)
    with pytest.raises(seawall.IdempotencyInProgress) as info:
        cache.run("k", lambda: 1)
    assert info.value.retry_after == pytest.approx(5.0)
    assert info.value.waited == 0.0
    cache.complete(owner.lease, b'"done"', "application/json")
    assert cache.run("k", lambda: 1) == "done"


def test_a_blocked_duplicate_does_not_hold_the_gil() -> None:
    cache = seawall.IdempotencyCache(wait_timeout=5.0)
    owner = cache.begin("k")
    got: List[Any] = []
    waiter = threading.Thread(target=lambda: got.append(cache.run("k", lambda: "never")))
    waiter.start()
    while cache.waiting == 0:
        time.sleep(0.001)
    # While the duplicate waits, this thread runs pure Python work at full speed.
    spins = 0
    end = time.perf_counter() + 0.2
    while time.perf_counter() < end:
        spins += 1
    assert spins > 10_000
    cache.complete(owner.lease, b'{"v":1}', "application/json")
    waiter.join(5)
    assert got == [{"v": 1}]


def test_wait_timeout_raises_in_progress_with_the_time_waited() -> None:
    clock = seawall.ManualClock()
    cache = seawall.IdempotencyCache(clock=clock, lease=10.0, wait_timeout=3.0)
    cache.begin("k")
    errors: List[BaseException] = []

    def duplicate() -> None:
        try:
            cache.run("k", lambda: 1)
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    t = threading.Thread(target=duplicate)
    t.start()
    while cache.waiting == 0:
        time.sleep(0.001)
    clock.advance(3.0)  # the wait's timer fires inside advance
    t.join(5)
    assert len(errors) == 1 and isinstance(errors[0], seawall.IdempotencyInProgress)
    assert errors[0].waited == pytest.approx(3.0)
    assert "after waiting 3000 ms" in str(errors[0])


def test_ctrl_c_interrupts_a_waiting_duplicate() -> None:
    # A process started in the background by a non-interactive shell (a CI runner, nohup)
    # inherits SIGINT as ignored, and interrupt_main() then does nothing: install Python's
    # own handler for this test, as an interactive interpreter has it.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        cache = seawall.IdempotencyCache(wait_timeout=30.0)
        owner = cache.begin("k")

        # Ctrl-C once the duplicate is waiting (a fixed delay could land before that on a
        # loaded machine, where CPython may deliver it inside a finalizer, which swallows it).
        def interrupt_when_waiting() -> None:
            deadline = time.monotonic() + 10
            while cache.waiting == 0 and time.monotonic() < deadline:
                time.sleep(0.005)
            _thread.interrupt_main()

        interrupter = threading.Thread(target=interrupt_when_waiting)
        interrupter.start()
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            cache.run("k", lambda: 1)
        assert time.monotonic() - started < 5
        interrupter.join()
        assert cache.waiting == 0
        assert owner.kind == "execute"  # the owner's lease was never touched
    finally:
        signal.signal(signal.SIGINT, previous)


def test_release_hands_the_key_to_a_waiting_duplicate() -> None:
    cache = seawall.IdempotencyCache()
    owner = cache.begin("k")
    got: List[Any] = []
    t = threading.Thread(target=lambda: got.append(cache.run("k", lambda: (seawall.current_run().took_over, "ran"))))
    t.start()
    while cache.waiting == 0:
        time.sleep(0.001)
    cache.release(owner.lease)
    t.join(5)
    assert got == [[True, "ran"]]


def test_shared_memory_store_wakes_waiters_of_another_cache() -> None:
    store = seawall.MemoryStore(max_entries=100)
    a = seawall.IdempotencyCache(store=store)
    b = seawall.IdempotencyCache(store=store)
    owner = a.begin("k")
    got: List[Any] = []
    t = threading.Thread(target=lambda: got.append(b.run("k", lambda: "b ran")))
    t.start()
    while b.waiting == 0:
        time.sleep(0.001)
    a.complete(owner.lease, b'"a ran"', "application/json")
    t.join(5)
    assert got == ["a ran"]
    assert store.stats()["entries"] == 1


# -- async ---------------------------------------------------------------------------------


def test_run_with_a_coroutine_function_returns_an_awaitable() -> None:
    cache = seawall.IdempotencyCache()
    calls = counter()

    async def fetch(x: int) -> Dict[str, int]:
        calls["n"] += 1
        await asyncio.sleep(0)
        return {"x": x}

    async def main() -> Any:
        return await cache.run("k", fetch, 1), await cache.run_async("k", fetch, 2), await cache.run_async("k2", lambda: "sync fn")

    assert asyncio.run(main()) == ({"x": 1}, {"x": 1}, "sync fn")
    assert calls["n"] == 1


def test_sync_run_of_a_function_returning_a_coroutine_is_refused() -> None:
    cache = seawall.IdempotencyCache()

    async def coro() -> int:
        return 1

    with pytest.raises(seawall.InvalidArgument, match="run_async"):
        cache.run("k", lambda: coro())
    assert cache.peek("k")["state"] == "absent"


def test_async_waiting_does_not_block_the_loop() -> None:
    cache = seawall.IdempotencyCache()

    async def main() -> Any:
        owner = cache.begin("k")
        ticks = counter()

        async def ticker() -> None:
            while True:
                ticks["n"] += 1
                await asyncio.sleep(0.005)

        tick = asyncio.ensure_future(ticker())
        dup = asyncio.ensure_future(cache.run_async("k", lambda: "never"))
        await asyncio.sleep(0.01)
        assert cache.waiting == 1
        # The owner completes on another thread; the outcome hops to this loop.
        threading.Timer(0.1, lambda: cache.complete(owner.lease, b"[1,2]", "application/json")).start()
        result = await asyncio.wait_for(dup, 5)
        tick.cancel()
        return result, ticks["n"]

    result, ticks = asyncio.run(main())
    assert result == [1, 2]
    assert ticks >= 10


def test_async_takeover_at_lease_expiry_on_the_system_clock() -> None:
    cache = seawall.IdempotencyCache(lease=0.2, wait_timeout=5.0)
    events: List[str] = []
    cache.on_event(lambda e: events.append(e["type"]))

    async def main() -> Any:
        async def crash() -> None:
            raise seawall.OutcomeUnknown("crashed")

        with pytest.raises(seawall.OutcomeUnknown):
            await cache.run_async("k", crash)
        started = time.monotonic()

        async def recover() -> str:
            return "recovered"

        result = await cache.run_async("k", recover)
        return result, time.monotonic() - started

    result, took = asyncio.run(main())
    assert result == "recovered"
    assert 0.1 < took < 3.0  # woken by the lease's timer, not by polling or the wait timeout
    assert events == ["takeover"]


def test_a_cancelled_async_waiter_stops_waiting() -> None:
    cache = seawall.IdempotencyCache()

    async def main() -> None:
        owner = cache.begin("k")
        dup = asyncio.ensure_future(cache.run_async("k", lambda: 1))
        await asyncio.sleep(0.01)
        assert cache.waiting == 1
        dup.cancel()
        with pytest.raises(asyncio.CancelledError):
            await dup
        assert cache.waiting == 0
        cache.complete(owner.lease, b"7", "application/json")
        assert await cache.run_async("k", lambda: 1) == 7

    asyncio.run(main())


# -- the decorator --------------------------------------------------------------------------


def test_idempotent_decorator_sync_and_async() -> None:
    cache = seawall.IdempotencyCache()
    calls = counter()

    @cache.idempotent(key=lambda order_id, body: f"charge:{order_id}", fingerprint=lambda order_id, body: body)
    def charge(order_id: int, body: Dict[str, Any]) -> Dict[str, Any]:
        calls["n"] += 1
        return {"order": order_id, "charged": body["amount"]}

    assert charge(1, {"amount": 5}) == charge(1, {"amount": 5}) == {"order": 1, "charged": 5}
    assert calls["n"] == 1
    with pytest.raises(seawall.IdempotencyMismatch):
        charge(1, {"amount": 6})
    assert charge.__name__ == "charge"

    @cache.idempotent(key=lambda n: f"async:{n}")
    async def work(n: int) -> int:
        calls["n"] += 1
        await asyncio.sleep(0)
        return n * 2

    async def main() -> Any:
        return await asyncio.gather(*(work(3) for _ in range(5)))

    assert asyncio.run(main()) == [6] * 5
    assert calls["n"] == 2
    with pytest.raises(seawall.InvalidArgument, match="callable"):
        cache.idempotent(key="not callable")  # type: ignore[arg-type]


# -- serializers, options, stores ---------------------------------------------------------------


class UpperSerializer:
    """Stores str results as upper-case text/plain; anything else refused."""

    def dumps(self, value: Any) -> Any:
        if not isinstance(value, str):
            raise TypeError(f"only str, got {type(value).__name__}")
        return value.upper().encode(), "text/plain"

    def loads(self, data: bytes, content_type: str) -> Any:
        assert content_type == "text/plain"
        return data.decode()


def test_a_custom_serializer() -> None:
    cache = seawall.IdempotencyCache(serializer=UpperSerializer())
    assert cache.serializer is not None
    assert cache.run("k", lambda: "hello") == "HELLO"
    assert cache.peek("k")["record"].content_type == "text/plain"
    with pytest.raises(seawall.InvalidArgument, match="the serializer failed"):
        cache.run("k2", lambda: 42)
    assert cache.peek("k2")["state"] == "absent"
    with pytest.raises(seawall.ConfigError) as info:
        seawall.IdempotencyCache(serializer=object())
    assert info.value.field == "serializer"


def test_options_are_checked_by_the_core() -> None:
    with pytest.raises(seawall.ConfigError) as info:
        seawall.IdempotencyCache(ttl=-1)
    assert (info.value.field, info.value.value) == ("ttl", "-1s")
    with pytest.raises(seawall.ConfigError, match="unknown option"):
        seawall.IdempotencyCache(bogus=1)
    with pytest.raises(seawall.ConfigError) as info:
        seawall.IdempotencyCache(on_duplicate="later")
    assert info.value.field == "on_duplicate" and '"wait" or "reject"' in info.value.reason
    with pytest.raises(seawall.ConfigError) as info:
        seawall.IdempotencyCache(store=seawall.MemoryStore(), max_entries=5)
    assert "a memory store was passed in" in info.value.reason
    with pytest.raises(seawall.ConfigError) as info:
        seawall.IdempotencyCache(store="redis://x")
    assert info.value.field == "store"
    with pytest.raises(seawall.ConfigError) as info:
        seawall.MemoryStore(max_entries=0)
    assert info.value.field == "max_entries"
    # None means the default; an unknown name is refused even with None.
    assert seawall.IdempotencyCache(ttl=None, wait_timeout=None, name=None).options["ttl"] == 86400.0
    with pytest.raises(seawall.ConfigError, match="unknown option"):
        seawall.IdempotencyCache(bogus=None)
    options = seawall.IdempotencyCache(name="p", ttl=60, lease=5.5).options
    assert (options["name"], options["ttl"], options["lease"], options["wait_timeout"]) == ("p", 60.0, 5.5, 5.5)
    assert options["on_duplicate"] == "wait" and options["store"] == "memory"


def test_memory_store_evicts_least_recently_used_results() -> None:
    store = seawall.MemoryStore(max_entries=2)
    cache = seawall.IdempotencyCache(store=store)
    cache.run("a", lambda: 1)
    cache.run("b", lambda: 2)
    cache.run("a", lambda: 0)  # a replay: "a" is now the most recently used
    cache.run("c", lambda: 3)
    assert [cache.peek(k)["state"] for k in "abc"] == ["completed", "absent", "completed"]
    assert store.stats()["evictions"] == 1


# -- events ----------------------------------------------------------------------------------


def test_cache_events_and_contained_listener_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = seawall.ManualClock()
    cache = seawall.IdempotencyCache(clock=clock, on_duplicate="reject", name="pay")
    events: List[Dict[str, Any]] = []
    reported: List[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(u.exc_value))

    def broken(_: Any) -> None:
        raise RuntimeError("listener bug")

    cache.on_event(events.append)
    bad = cache.on_event(broken)
    cache.run("k", lambda: 1, fingerprint="a")
    assert cache.run("k", lambda: 2, fingerprint="a") == 1  # the listener's error did not reach run
    with pytest.raises(seawall.IdempotencyMismatch):
        cache.run("k", lambda: 2, fingerprint="b")
    held = cache.begin("busy")
    clock.advance(1.0)
    with pytest.raises(seawall.IdempotencyInProgress):
        cache.run("busy", lambda: 3)
    assert [e["type"] for e in events] == ["replay", "mismatch", "in_progress"]
    assert events[0] == {"type": "replay", "cache": "pay", "key": "k", "at": 0.0}
    assert events[2]["retry_after"] == pytest.approx(29.0) and events[2]["waited"] == 0.0
    assert len(reported) == 3 and all(isinstance(e, RuntimeError) for e in reported)
    assert cache.remove_listener(bad) and not cache.remove_listener(bad)
    cache.complete(held.lease, b"3", "application/json")


# -- the low-level surface and records ---------------------------------------------------------


def test_low_level_begin_complete_and_waiter_poll() -> None:
    clock = seawall.ManualClock()
    cache = seawall.IdempotencyCache(clock=clock, lease=2.0)
    b = cache.begin("k", fingerprint={"a": 1})
    assert b.kind == "execute" and b.lease.protected and not b.lease.took_over
    assert b.lease.fingerprint == seawall.fingerprint({"a": 1})
    dup = cache.begin("k", fingerprint={"a": 1})
    assert dup.kind == "in_progress" and dup.retry_after == pytest.approx(2.0)
    p = dup.waiter.poll()
    assert (p.state, p.lease_expires_in, p.timeout_in) == ("pending", 2.0, 2.0)
    record = cache.complete(b.lease, "ok", "text/plain", [("status", "201")])
    assert (record.result, record.metadata, record.expires_ms) == (b"ok", [("status", "201")], 86_400_000)
    done = dup.waiter.poll()
    assert done.state == "replay" and done.record == record
    assert dup.waiter.poll().state == "taken"
    other = cache.begin("k", fingerprint={"a": 2})
    assert other.kind == "mismatch" and other.completed and isinstance(other.error, seawall.IdempotencyMismatch)
    with pytest.raises(seawall.LeaseLost, match="already completed"):
        cache.release(b.lease)


def test_record_format_round_trip_and_the_documented_example() -> None:
    # docs/idempotency.md: result "ok", content type "t", error flag, token 1, created 2, expires 3,
    # then the CRC-32C of bytes 0-8 and 64-75 and the CRC-32C of bytes 0-64 (format version 2).
    expected = bytes.fromhex(
        "53575202010000000000000000000001000000000000000200000000000000 03".replace(" ", "")
        + "00" * 32
        + "000174" + "0000" + "000000026f6b"
        + "e7297c37" + "8c7466d5"
    )
    record = seawall.Record("ok", "t", error=True, token=1, created_ms=2, expires_ms=3)
    assert record.encode() == expected
    back = seawall.Record.decode(expected)
    assert back == record and back.is_error and back.fingerprint is None
    with pytest.raises(seawall.InvalidArgument, match="not a seawall record"):
        seawall.Record.decode(b"XYZ" + expected[3:])
    with pytest.raises(seawall.InvalidArgument, match=r"version 1 is not supported \(this build reads version 2\)"):
        seawall.Record.decode(expected[:3] + b"\x01" + expected[4:])
    # Every single-bit flip is refused: never another record (issue 9).
    for at in range(len(expected)):
        for bit in range(8):
            bad = bytearray(expected)
            bad[at] ^= 1 << bit
            with pytest.raises(seawall.InvalidArgument, match="cannot decode idempotency record"):
                seawall.Record.decode(bytes(bad))
    with pytest.raises(seawall.InvalidArgument, match="body checksum mismatch"):
        seawall.Record.decode(expected[:73] + b"p" + expected[74:])


def test_exception_classes_codes_and_pickling() -> None:
    import pickle

    for cls, code in [
        (seawall.IdempotencyInProgress, "SEAWALL_IDEMPOTENCY_IN_PROGRESS"),
        (seawall.IdempotencyMismatch, "SEAWALL_IDEMPOTENCY_MISMATCH"),
        (seawall.StoreUnavailable, "SEAWALL_STORE_UNAVAILABLE"),
        (seawall.LeaseLost, "SEAWALL_LEASE_LOST"),
    ]:
        assert issubclass(cls, seawall.SeawallError) and cls.code == code
        assert cls.__module__ == "seawall"
    assert not issubclass(seawall.OutcomeUnknown, seawall.SeawallError)  # the user's signal
    cache = seawall.IdempotencyCache(on_duplicate="reject")
    cache.begin("k")
    with pytest.raises(seawall.IdempotencyInProgress) as info:
        cache.run("k", lambda: 1)
    back = pickle.loads(pickle.dumps(info.value))
    assert (type(back), back.key, back.retry_after, str(back)) == (
        seawall.IdempotencyInProgress,
        "k",
        info.value.retry_after,
        str(info.value),
    )


def test_low_level_waiter_wait_blocks_without_the_gil() -> None:
    cache = seawall.IdempotencyCache()
    owner = cache.begin("k")
    dup = cache.begin("k")
    assert dup.waiter.wait(timeout=0.05) is None  # not yet: it goes on waiting
    threading.Timer(0.05, lambda: cache.complete(owner.lease, b"1", "application/json")).start()
    got = dup.waiter.wait(timeout=5)
    assert got is not None and got.state == "replay" and got.record.result == b"1"
    assert cache.value(got.record) == 1


def test_a_lease_is_finished_only_by_the_cache_that_issued_it() -> None:
    a, b = seawall.IdempotencyCache(name="a"), seawall.IdempotencyCache(name="b")
    la, lb = a.begin("k").lease, b.begin("k").lease
    assert la.token == lb.token  # two memory stores: the same token for the same key
    with pytest.raises(seawall.InvalidArgument, match=r'lease = <idempotency key "k", token 1>: issued by another cache'):
        b.complete(la, b"from a")
    with pytest.raises(seawall.InvalidArgument, match="issued by another cache"):
        b.release(la)
    assert b.complete(lb, b"from b").result == b"from b"
    assert a.complete(la, b"from a").result == b"from a"
