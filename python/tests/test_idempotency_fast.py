"""`IdempotencyCache.run`'s native path (bindings/python/src/idem_fast.rs, json.rs).

For a plain function, the default serializer and a memory store, `run` takes the Python
layer's steps in one native call, with its own JSON reader and writer for plain values. These
tests hold it to the Python path (`_run_general` on a cache with a listener, which always
takes it, or `json` itself): the same values, errors, records, events and counts.
"""

from __future__ import annotations

import enum
import json
import math
from typing import Any, Dict, List, Tuple

import pytest

import seawall

JSON = "application/json"


class Color(enum.IntEnum):
    RED = 1


class Text(str):
    pass


def outcome(fn: Any, *args: Any, **kwargs: Any) -> Tuple[str, Any]:
    try:
        v = fn(*args, **kwargs)
    except BaseException as e:  # noqa: BLE001 - compared
        return ("raised", (type(e), str(e)))
    return ("ok", (type(v), repr(v)))


def stored(cache: seawall.IdempotencyCache, key: str) -> Tuple[bytes, str, bool]:
    p = cache.peek(key)
    if p["state"] != "completed":
        return (b"", p["state"], False)
    r = p["record"]
    return (r.result, r.content_type, r.is_error)


def fast_and_general(value: Any, **options: Any) -> None:
    """The value as the function's result: run natively and through the Python path."""
    fast = seawall.IdempotencyCache(name="fast", **options)
    general = seawall.IdempotencyCache(name="general", **options)
    general.on_event(lambda e: None)  # a listener: `run` takes the Python path
    fn = lambda: value  # noqa: E731
    a = outcome(fast.run, "k", fn)
    b = outcome(general._run_general, "k", fn, None, (), {})
    assert a == b, (value, a, b)
    assert stored(fast, "k") == stored(general, "k")
    # ...and replayed (or run again, after an error released the key), the same again.
    assert outcome(fast.run, "k", fn) == outcome(general._run_general, "k", fn, None, (), {})
    sf, sg = fast.stats(), general.stats()
    assert sf == sg


nested: Any = {"a": [1, 2.5, None, True, False, "x"], "b": {"c": (1, 2), "d": []}, "": {}}
deep: Any = []
cur = deep
for _ in range(450):
    nxt: Any = []
    cur.append(nxt)
    cur = nxt
cycle: List[Any] = []
cycle.append(cycle)

VALUES = [
    None, True, False, 0, -1, 2**63 - 1, -(2**63), 2**63, 10**40, Color.RED,
    0.0, -0.0, 0.1, 1e22, 1e-7, 5e-324, 1.7976931348623157e308, 123456789.123456789, 1e16, 1.5e300,
    math.nan, math.inf, -math.inf,
    "", "plain", 'quote " backslash \\ slash /', "\n\r\t\b\f", "\x00\x01\x1f\x7f", "é ü ∑ 😀 \u2028",
    "\ud800", Text("sub"),
    [], (), [1, [2, [3]]], (1, "two", None), nested, deep, cycle,
    {"x": 1}, {1: "int key"}, {1.5: "float key"}, {None: "none key"}, {True: "bool key"}, {(1,): "tuple key"},
    {Text("k"): 1}, {"a": 1, "b": {"c": [1.0, "d"]}},
    b"raw bytes", b"", bytearray(b"ba"), memoryview(b"mv"),
    {1, 2}, object(), [math.nan], {"k": math.inf},
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_results_are_stored_and_returned_as_the_python_path_does(value: Any) -> None:
    fast_and_general(value)


def test_result_over_max_result_bytes_is_refused_the_same_way() -> None:
    fast_and_general("x" * 100, max_result_bytes=64)


REPLAYED = [
    b"null", b" null ", b"\n\t[1 , 2 ]\r", b"{}", b"[]", b'{"a":1,"a":2,"b":3}', b'{"b":1,"a":{"b":[]}}',
    b"0", b"-0", b"-0.0", b"1E5", b"1e+2", b"1.0e-2", b"123456789012345678", b"1234567890123456789",
    b"-9223372036854775808", b"99999999999999999999999", b"1e400", b"-1e400", b"2.5e-400",
    b"0.1", b"3.141592653589793238462643383279", b"NaN", b"Infinity", b"-Infinity",
    b'"\\u00e9\\ud83d\\ude00\\/\\b\\f\\n\\r\\t\\"\\\\"', b'"\\ud800"', b'"\\udc00x"', b'"\\ud800\\u0041"',
    '"é 😀"'.encode(), b'"a\x01b"', b'"\xff"', b"\xef\xbb\xbfnull", b"", b" ", b"[1,]", b"{\"a\" 1}",
    b"01", b"1.", b".5", b"-", b"tru", b"null x", b"[" * 300 + b"]" * 300, b'{"k":' * 150 + b"1" + b"}" * 150,
    b'"' + "ü".encode() * 40 + b'\\n"', b'{"order_id":"r1-seawall-12","status":"charged"}',
]


def python_loads(data: bytes) -> Tuple[str, Any]:
    def load() -> Any:
        return json.loads(bytes(data).decode())

    return outcome(load)


@pytest.mark.parametrize("data", REPLAYED, ids=lambda d: repr(d[:20]))
def test_replayed_json_reads_as_json_loads(data: bytes) -> None:
    cache = seawall.IdempotencyCache()
    b = cache.begin("k")
    cache.complete(b.lease, data, JSON)
    got = outcome(cache.run, "k", lambda: pytest.fail("replayed: must not run"))
    want = python_loads(data)
    if want[0] == "raised":  # the same error type (json.JSONDecodeError, UnicodeDecodeError...)
        assert got[0] == "raised" and got[1][0] is want[1][0], (got, want)
    else:
        assert got == want
    assert cache.stats()["replayed"] == 1


def test_replayed_values_are_equal_objects() -> None:
    cache = seawall.IdempotencyCache()
    data = b'{"a": [1, 2.5, null, true, "\\u00e9"], "b": {"c": -0.0}, "a": 7}'
    b = cache.begin("k")
    cache.complete(b.lease, data, JSON)
    v = cache.run("k", lambda: None)
    assert v == json.loads(data) and list(v) == ["a", "b"] and v["a"] == 7
    assert math.copysign(1.0, v["b"]["c"]) == -1.0


def test_other_content_types_replay_as_bytes() -> None:
    cache = seawall.IdempotencyCache()
    for key, ct in (("t", "text/plain"), ("o", "application/octet-stream"), ("e", "")):
        b = cache.begin(key)
        cache.complete(b.lease, b"not json {", ct)
        assert cache.run(key, lambda: None) == b"not json {"


@pytest.mark.parametrize("exc", [ValueError("bad"), KeyError("k"), seawall.InvalidArgument("x"), RuntimeError("r")])
def test_errors_are_cached_and_replayed_the_same_way(exc: BaseException) -> None:
    caches = [seawall.IdempotencyCache(cache_errors=True) for _ in range(2)]
    caches[1].on_event(lambda e: None)

    def raise_it() -> None:
        raise exc

    first = [outcome(c.run, "k", raise_it) for c in caches]
    again = [outcome(c.run, "k", raise_it) for c in caches]
    assert first[0] == first[1] and again[0] == again[1]
    assert stored(caches[0], "k") == stored(caches[1], "k")
    assert caches[0].stats() == caches[1].stats()


def test_an_error_releases_the_key_and_propagates_unchanged() -> None:
    cache = seawall.IdempotencyCache()
    err = ValueError("once")
    calls: List[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise err
        return "ok"

    with pytest.raises(ValueError) as e:
        cache.run("k", flaky)
    assert e.value is err
    assert cache.peek("k")["state"] == "absent"
    assert cache.run("k", flaky) == "ok" and len(calls) == 2
    assert cache.stats()["released"] == 1


def test_outcome_unknown_and_abandon_keep_the_claim() -> None:
    cache = seawall.IdempotencyCache(on_duplicate="reject")

    def unknown() -> None:
        raise seawall.OutcomeUnknown("sent, no answer")

    def abandons() -> None:
        seawall.current_run().abandon()  # type: ignore[union-attr]
        raise KeyboardInterrupt()

    with pytest.raises(seawall.OutcomeUnknown):
        cache.run("a", unknown)
    with pytest.raises(KeyboardInterrupt):
        cache.run("b", abandons)
    for key in ("a", "b"):
        assert cache.peek(key)["state"] == "in_progress"
        with pytest.raises(seawall.IdempotencyInProgress):
            cache.run(key, lambda: None)
    assert cache.stats()["abandoned"] == 2


def test_current_run_inside_the_function() -> None:
    cache = seawall.IdempotencyCache(lease=10.0)
    seen: Dict[str, Any] = {}

    def work(x: int, *, y: int) -> int:
        ctx = seawall.current_run()
        assert isinstance(ctx, seawall.RunContext)
        seen.update(key=ctx.key, took_over=ctx.took_over, token=ctx.token, remaining=ctx.remaining())
        seen["renewed"] = ctx.renew()
        seen["ctx"] = ctx
        return x + y

    assert seawall.current_run() is None
    assert cache.run("k", work, 1, y=2) == 3
    assert seawall.current_run() is None
    assert seen["key"] == "k" and seen["took_over"] is False and seen["token"] > 0
    assert 0 < seen["remaining"] <= 10.0 and 0 < seen["renewed"] <= 10.0
    with pytest.raises(seawall.LeaseLost):
        seen["ctx"].renew()  # the run is over
    assert repr(seen["ctx"]).startswith("RunContext(key='k'")


def test_fingerprints_and_mismatch() -> None:
    cache = seawall.IdempotencyCache()
    assert cache.run("k", lambda: 1, fingerprint={"amount": 5}) == 1
    assert cache.run("k", lambda: 2, fingerprint={"amount": 5}) == 1
    for other in ({"amount": 6}, "text", b"bytes", None):
        with pytest.raises(seawall.IdempotencyMismatch):
            cache.run("k", lambda: 3, fingerprint=other)
    assert cache.run("s", lambda: "s", fingerprint="text") == "s"
    assert cache.run("s", lambda: "t", fingerprint=b"text") == "s"  # the same bytes
    with pytest.raises(seawall.InvalidArgument, match="fingerprint"):
        cache.run("n", lambda: 1, fingerprint={1, 2})
    assert cache.peek("n")["state"] == "absent"
    s = cache.stats()
    assert (s["executed"], s["replayed"], s["mismatched"]) == (2, 2, 4)


@pytest.mark.parametrize("key", [42, b"bytes", "", "x" * 256, "\ud800"])
def test_bad_keys_are_refused_as_before(key: Any) -> None:
    fast = seawall.IdempotencyCache()
    general = seawall.IdempotencyCache()
    general.on_event(lambda e: None)
    assert outcome(fast.run, key, lambda: 1) == outcome(general._run_general, key, lambda: 1, None, (), {})


def test_an_awaitable_result_is_refused_and_released() -> None:
    cache = seawall.IdempotencyCache()

    async def coro() -> int:
        return 1

    def returns_awaitable() -> Any:
        return coro()

    with pytest.raises(seawall.InvalidArgument, match="returned an awaitable"):
        cache.run("k", returns_awaitable)
    assert cache.peek("k")["state"] == "absent"


def test_other_callables_take_the_python_path() -> None:
    cache = seawall.IdempotencyCache()

    class Callable_:
        def __call__(self, x: int) -> int:
            return x * 2

    class Obj:
        def method(self, x: int) -> int:
            return x + 1

    assert cache.run("a", Callable_(), 2) == 4
    assert cache.run("b", Obj().method, 2) == 3
    assert cache.run("c", len, "abc") == 3
    with pytest.raises(seawall.InvalidArgument, match="expected a callable"):
        cache.run("d", 42)

    async def acoro() -> str:
        return "async"

    import asyncio

    assert asyncio.run(cache.run("e", acoro)) == "async"
    assert cache.stats()["executed"] == 4


def test_events_are_reported_on_the_native_path_too() -> None:
    clock = seawall.ManualClock()
    cache = seawall.IdempotencyCache(clock=clock, lease=1.0, on_duplicate="reject")
    events: List[Dict[str, Any]] = []
    cache.run("k", lambda: 1)  # nobody listens yet
    lid = cache.on_event(events.append)
    cache.run("k", lambda: 2)
    with pytest.raises(seawall.IdempotencyMismatch):
        cache.run("k", lambda: 2, fingerprint="other")
    b = cache.begin("p")
    with pytest.raises(seawall.IdempotencyInProgress):
        cache.run("p", lambda: 1)
    clock.advance(2.0)  # the lease expires: the next run takes over
    assert cache.run("p", lambda: 5) == 5
    with pytest.raises(seawall.LeaseLost):
        cache.complete(b.lease, b"1", JSON)
    assert [e["type"] for e in events] == ["replay", "mismatch", "in_progress", "takeover"]
    assert cache.remove_listener(lid)
    cache.run("k", lambda: 3)
    assert len(events) == 4


def test_a_custom_serializer_is_used() -> None:
    class Upper:
        def dumps(self, value: Any) -> Tuple[bytes, str]:
            return str(value).upper().encode(), "text/upper"

        def loads(self, data: bytes, content_type: str) -> Any:
            return ("loaded", data.decode(), content_type)

    cache = seawall.IdempotencyCache(serializer=Upper())
    assert cache.run("k", lambda: "abc") == ("loaded", "ABC", "text/upper")
    assert cache.run("k", lambda: "zzz") == ("loaded", "ABC", "text/upper")


def test_which_path_run_takes() -> None:
    general: List[str] = []

    class Spy(seawall.IdempotencyCache):
        __slots__ = ()

        def _run_general(self, key: str, fn: Any, fingerprint: Any, args: Any, kwargs: Any) -> Any:
            general.append(key)
            return super()._run_general(key, fn, fingerprint, args, kwargs)

    def plain() -> int:
        return 1

    cache = Spy()
    assert cache.run("native", plain) == 1 and cache.run("native", plain) == 1
    assert cache.run("lambda", lambda: 2) == 2  # a lambda is a plain function too
    assert general == []
    cache.run("method", [].copy)  # a builtin: the Python path
    lid = cache.on_event(lambda e: None)
    cache.run("watched", plain)  # listened to: still native, events reported from there
    assert general == ["method"]
    cache.remove_listener(lid)
    custom = Spy(serializer=seawall.JsonSerializer())  # any serializer given: the Python path
    custom.run("custom", plain)
    assert general == ["method", "custom"]
