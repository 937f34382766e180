"""The bad-input table (docs/bad-input.md, "Python"): every wrong type or value a user can
pass to a public constructor, function or method, and the error they get.

Each row is run once in a child interpreter (``python test_bad_input.py --child``), so a
row that crashed the process would fail the table instead of killing pytest; the child
prints each row's id to stderr before running it, which names the row that crashed. Then
one test per row checks the class, the code and that the message names the field and the
value (``must`` lists the pieces the message must contain).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import pytest

import seawall
import seawall.asgi
import seawall.wsgi

sw = seawall
CB = seawall.CircuitBreaker
IC = seawall.IdempotencyCache


class Row(NamedTuple):
    id: str
    call: Callable[[], Any]
    cls: Optional[str]  # the exception class name; None: accepted (no exception)
    code: Optional[str]  # `code` attribute (SeawallError subclasses)
    must: Tuple[str, ...]  # pieces the message must contain (field and value)


CONFIG, INVALID = "SEAWALL_CONFIG", "SEAWALL_INVALID_ARGUMENT"


def cfg(id: str, call: Callable[[], Any], *must: str) -> Row:
    return Row(id, call, "ConfigError", CONFIG, must)


def inv(id: str, call: Callable[[], Any], *must: str) -> Row:
    return Row(id, call, "InvalidArgument", INVALID, must)


def _asgi_app(scope: Any, receive: Any, send: Any) -> None:
    pass


def _wsgi_app(environ: Any, start_response: Any) -> List[bytes]:
    return []


class _NoLoads:
    def dumps(self, value: Any) -> Tuple[bytes, str]:
        return b"", "x"


class _BadDumps:
    def dumps(self, value: Any) -> Any:
        return 5

    def loads(self, data: bytes, content_type: str) -> Any:
        return data


def _permit() -> Any:
    return CB(clock=sw.ManualClock()).try_acquire()


def _second_outcome() -> None:
    p = _permit()
    p.success(0.0)
    p.failure(0.0)


def _complete_twice() -> None:
    c = IC(clock=sw.ManualClock())
    lease = c._begin("k").lease
    c.complete(lease, b"1", "text/plain")
    c.complete(lease, b"2", "text/plain")


def _renew_after_run() -> None:
    c = IC(clock=sw.ManualClock())
    seen: List[Any] = []
    c.run("k", lambda: seen.append(sw.current_run()) or 1)
    seen[0].renew()


def _waiter(timeout: Any) -> None:
    c = IC(clock=sw.ManualClock())
    c._begin("k")
    c._begin("k").waiter.wait(timeout)


def _waiter_cancelled() -> None:
    c = IC(clock=sw.ManualClock())
    c._begin("k")
    w = c._begin("k").waiter
    w.cancel()
    w.wait(0.01)


def _clocks_differ() -> None:
    sw.Deadline.after(1.0).earliest(sw.Deadline.after(1.0, clock=sw.ManualClock()))


def _asgi(**kw: Any) -> Any:
    kw.setdefault("cache", IC())
    return seawall.asgi.IdempotencyMiddleware(_asgi_app, **kw)


ROWS: List[Row] = [
    # -- CircuitBreaker options (checked by the core) --------------------------------------
    cfg("breaker_duration_none", lambda: CB(open_duration=None), "open_duration", "<NoneType>"),
    cfg("breaker_duration_str", lambda: CB(open_duration="30"), "open_duration", '"30"', "expected a duration"),
    cfg("breaker_duration_bytes", lambda: CB(open_duration=b"1"), "open_duration", "<bytes>"),
    cfg("breaker_duration_bool", lambda: CB(open_duration=True), "open_duration", "true", "expected a duration"),
    cfg("breaker_duration_nan", lambda: CB(open_duration=math.nan), "open_duration", "nan", "NaN"),
    cfg("breaker_duration_inf", lambda: CB(open_duration=math.inf), "open_duration", "inf", "too large"),
    cfg("breaker_duration_negative", lambda: CB(open_duration=-1), "open_duration", "-1s", "must not be negative"),
    cfg("breaker_duration_huge", lambda: CB(open_duration=1e300), "open_duration", "1e300s", "too large"),
    cfg("breaker_timeout_zero", lambda: CB(timeout=0), "timeout", "0s", "greater than zero"),
    cfg("breaker_timeout_negative", lambda: CB(timeout=-1), "timeout", "-1s"),
    cfg("breaker_count_zero", lambda: CB(consecutive_failures=0), "consecutive_failures", "0", "at least 1"),
    cfg("breaker_count_negative", lambda: CB(consecutive_failures=-1), "consecutive_failures", "-1"),
    cfg("breaker_count_fraction", lambda: CB(consecutive_failures=2.5), "consecutive_failures", "2.5", "whole number"),
    cfg("breaker_count_str", lambda: CB(consecutive_failures="5"), "consecutive_failures", '"5"'),
    cfg("breaker_count_bool", lambda: CB(consecutive_failures=True), "consecutive_failures", "true"),
    cfg("breaker_count_none", lambda: CB(consecutive_failures=None), "consecutive_failures", "<NoneType>"),
    cfg("breaker_count_huge", lambda: CB(consecutive_failures=2**64), "consecutive_failures", "1.8446744073709552e19", "at most"),
    cfg("breaker_rate_over_one", lambda: CB(failure_rate_threshold=1.5), "failure_rate_threshold", "1.5", "(0, 1]"),
    cfg("breaker_rate_zero", lambda: CB(failure_rate_threshold=0), "failure_rate_threshold", "= 0"),
    cfg("breaker_rate_nan", lambda: CB(failure_rate_threshold=math.nan), "failure_rate_threshold", "nan"),
    cfg("breaker_window_unknown", lambda: CB(window="sliding"), "window", '"sliding"', '"count" or "time"'),
    cfg("breaker_window_int", lambda: CB(window=1), "window", "1", "expected a string"),
    cfg("breaker_window_size_zero", lambda: CB(window_size=0), "window_size", "0"),
    cfg("breaker_window_size_huge", lambda: CB(window_size=10**7), "window_size", "10000000", "at most 1000000"),
    cfg("breaker_buckets_not_dividing", lambda: CB(window="time", window_duration=10.0, window_buckets=3), "window_buckets", "3", "divide"),
    cfg("breaker_success_over_max", lambda: CB(half_open_max_calls=1, half_open_success_threshold=2), "half_open_success_threshold", "2", "half_open_max_calls"),
    cfg("breaker_backoff_below_one", lambda: CB(backoff_multiplier=0.5), "backoff_multiplier", "0.5"),
    cfg("breaker_max_below_open", lambda: CB(open_duration=10, open_duration_max=5), "open_duration_max", "5s", "open_duration"),
    cfg("breaker_slow_rate_alone", lambda: CB(slow_call_rate_threshold=0.5), "slow_call_duration", "slow_call_rate_threshold"),
    cfg("breaker_name_int", lambda: CB(name=1), "name", "1", "expected a string"),
    cfg("breaker_name_bytes", lambda: CB(name=b"x"), "name", "<bytes>"),
    cfg("breaker_unknown_option", lambda: CB(max_failures=3), "max_failures", "3", "unknown option"),
    cfg("breaker_critical_str", lambda: CB(critical="yes"), "critical", '"yes"', "boolean"),
    cfg("breaker_clock_str", lambda: CB(clock="system"), "clock", "'system'", "ManualClock"),
    cfg("breaker_clock_object", lambda: CB(clock=object()), "clock", "<object object"),
    cfg("breaker_failure_on_str", lambda: CB(failure_on="ValueError"), "failure_on", "'ValueError'", "exception type"),
    cfg("breaker_failure_on_tuple", lambda: CB(failure_on=(ValueError, 1)), "failure_on", "1)"),
    cfg("breaker_failure_on_not_exception", lambda: CB(failure_on=int), "failure_on", "<class 'int'>"),
    cfg("breaker_ignore_int", lambda: CB(ignore=5), "ignore", "5"),
    cfg("breaker_fallback_not_callable", lambda: CB(fallback=5), "fallback", "5", "callable"),
    Row("breaker_positional", lambda: CB(5), "TypeError", None, ("positional",)),
    Row("breaker_decorate_int", lambda: CB()(5), "TypeError", None, ("callable", "int")),
    inv("breaker_call_not_callable", lambda: CB().call(5), "fn", "<int>", "callable"),
    inv("breaker_on_state_change_int", lambda: CB().on_state_change(5), "callback", "int"),
    inv("breaker_on_event_int", lambda: CB().on_event(5), "callback", "int"),
    inv("breaker_remove_listener_str", lambda: CB().remove_listener("x"), "listener_id", "<str>", "on_event returned"),
    inv("breaker_remove_listener_callback", lambda: CB().remove_listener(print), "listener_id", "<builtin_function_or_method>"),
    Row("breaker_remove_listener_negative", lambda: CB().remove_listener(-1), None, None, ()),
    # -- permits ---------------------------------------------------------------------------
    inv("permit_duration_negative", lambda: _permit().success(-1), "duration", "-1s", "negative"),
    inv("permit_duration_nan", lambda: _permit().success(math.nan), "duration", "nan"),
    inv("permit_duration_inf", lambda: _permit().failure(math.inf), "duration", "inf", "finite"),
    inv("permit_duration_str", lambda: _permit().success("1"), "duration", '"1"'),
    inv("permit_duration_bool", lambda: _permit().timeout(True), "duration", "true"),
    Row("permit_duration_none", lambda: _permit().success(None), None, None, ()),
    Row("permit_second_outcome", _second_outcome, "PermitConsumed", "SEAWALL_PERMIT_CONSUMED", ("already recorded",)),
    # -- clocks ----------------------------------------------------------------------------
    inv("clock_advance_negative", lambda: sw.ManualClock().advance(-1), "seconds", "-1", "negative"),
    inv("clock_advance_nan", lambda: sw.ManualClock().advance(math.nan), "seconds", "nan"),
    inv("clock_advance_inf", lambda: sw.ManualClock().advance(math.inf), "seconds", "inf"),
    inv("clock_advance_huge", lambda: sw.ManualClock().advance(1e300), "seconds", "1e300s", "too large"),
    inv("clock_advance_str", lambda: sw.ManualClock().advance("1"), "seconds", '"1"'),
    inv("clock_advance_none", lambda: sw.ManualClock().advance(None), "seconds", "<NoneType>"),
    # -- timeout / deadline / Deadline / grpc-timeout / CancelToken ------------------------
    inv("timeout_negative", lambda: sw.timeout(-1), "seconds", "-1s", "negative"),
    inv("timeout_nan", lambda: sw.timeout(math.nan), "seconds", "nan"),
    inv("timeout_inf", lambda: sw.timeout(math.inf), "seconds", "inf", "finite"),
    inv("timeout_huge", lambda: sw.timeout(1e300), "seconds", "1e300s"),
    inv("timeout_str", lambda: sw.timeout("1"), "seconds", '"1"'),
    inv("timeout_none", lambda: sw.timeout(None), "seconds", "<NoneType>"),
    inv("timeout_bool", lambda: sw.timeout(True), "seconds", "true"),
    inv("timeout_clock_str", lambda: sw.timeout(1, clock="x"), "clock", "<str>"),
    Row("timeout_decorate_int", lambda: sw.timeout(1)(5), "TypeError", None, ("callable", "int")),
    inv("deadline_negative", lambda: sw.deadline(-1), "seconds", "-1s"),
    inv("deadline_str", lambda: sw.deadline("x"), "seconds", '"x"'),
    inv("deadline_after_negative", lambda: sw.Deadline.after(-1), "seconds", "-1s"),
    inv("deadline_after_nan", lambda: sw.Deadline.after(math.nan), "seconds", "nan"),
    inv("deadline_after_none", lambda: sw.Deadline.after(None), "seconds", "<NoneType>"),
    inv("deadline_after_huge", lambda: sw.Deadline.after(1e300), "seconds", "1e300s"),
    inv("grpc_malformed", lambda: sw.Deadline.from_grpc_timeout("abc"), "grpc-timeout", '"abc"'),
    inv("grpc_nine_digits", lambda: sw.Deadline.from_grpc_timeout("123456789S"), "grpc-timeout", '"123456789S"', "8 digits"),
    inv("grpc_empty", lambda: sw.Deadline.from_grpc_timeout(""), "grpc-timeout", '""', "empty"),
    inv("grpc_int", lambda: sw.Deadline.from_grpc_timeout(5), "header", "<int>"),
    inv("grpc_bytes", lambda: sw.Deadline.from_grpc_timeout(b"1S"), "header", "<bytes>"),
    inv("parse_grpc_unit", lambda: sw.parse_grpc_timeout("1x"), "grpc-timeout", '"1x"', "unit"),
    inv("parse_grpc_none", lambda: sw.parse_grpc_timeout(None), "value", "<NoneType>"),
    inv("format_grpc_negative", lambda: sw.format_grpc_timeout(-1), "seconds", "-1s"),
    inv("format_grpc_str", lambda: sw.format_grpc_timeout("1"), "seconds", '"1"'),
    inv("budget_over_one", lambda: sw.Deadline.after(1).budget(1.5), "fraction", "1.5", "[0, 1]"),
    inv("budget_nan", lambda: sw.Deadline.after(1).budget(math.nan), "fraction", "NaN"),
    inv("budget_negative", lambda: sw.Deadline.after(1).budget(-0.1), "fraction", "-0.1"),
    inv("budget_str", lambda: sw.Deadline.after(1).budget("x"), "fraction", "<str>"),
    inv("budget_min_negative", lambda: sw.Deadline.after(1).budget(0.5, min=-1), "min", "-1s"),
    Row("earliest_int", lambda: sw.Deadline.after(1).earliest(5), "TypeError", None, ("int", "Deadline")),
    inv("earliest_other_clock", _clocks_differ, "different clocks"),
    inv("token_on_cancel_int", lambda: sw.CancelToken().on_cancel(5), "callback", "<int>"),
    Row("token_cancel_at_str", lambda: sw.CancelToken().cancel_at("x"), "TypeError", None, ("str", "Deadline")),
    # -- IdempotencyCache options ----------------------------------------------------------
    cfg("cache_ttl_zero", lambda: IC(ttl=0), "ttl", "0s", "greater than zero"),
    cfg("cache_ttl_negative", lambda: IC(ttl=-1), "ttl", "-1s"),
    cfg("cache_ttl_nan", lambda: IC(ttl=math.nan), "ttl", "nan"),
    cfg("cache_ttl_inf", lambda: IC(ttl=math.inf), "ttl", "inf"),
    cfg("cache_ttl_str", lambda: IC(ttl="1"), "ttl", '"1"'),
    cfg("cache_ttl_bool", lambda: IC(ttl=True), "ttl", "true"),
    cfg("cache_lease_zero", lambda: IC(lease=0), "lease", "0s"),
    cfg("cache_on_duplicate", lambda: IC(on_duplicate="sometimes"), "on_duplicate", '"sometimes"', '"wait" or "reject"'),
    cfg("cache_wait_timeout_negative", lambda: IC(wait_timeout=-1), "wait_timeout", "-1s"),
    cfg("cache_cache_errors_str", lambda: IC(cache_errors="yes"), "cache_errors", '"yes"', "boolean"),
    cfg("cache_cache_errors_int", lambda: IC(cache_errors=1), "cache_errors", "1", "boolean"),
    cfg("cache_max_result_zero", lambda: IC(max_result_bytes=0), "max_result_bytes", "0"),
    cfg("cache_max_result_negative", lambda: IC(max_result_bytes=-1), "max_result_bytes", "-1"),
    cfg("cache_max_result_fraction", lambda: IC(max_result_bytes=1.5), "max_result_bytes", "1.5"),
    cfg("cache_max_result_huge", lambda: IC(max_result_bytes=2**70), "max_result_bytes", "1.1805916207174113e21", "at most"),
    cfg("cache_on_store_error", lambda: IC(on_store_error="ignore"), "on_store_error", '"ignore"'),
    cfg("cache_max_entries_zero", lambda: IC(max_entries=0), "max_entries", "0"),
    cfg("cache_max_bytes_below_result", lambda: IC(max_bytes=10, max_result_bytes=100), "max_result_bytes", "100", "max_bytes (10)"),
    cfg("cache_store_str", lambda: IC(store="memory"), "store", "'memory'"),
    cfg("cache_store_and_bound", lambda: IC(store=sw.MemoryStore(), max_entries=5), "max_entries", "5", "memory store was passed"),
    cfg("cache_serializer_int", lambda: IC(serializer=5), "serializer", "5", "dumps"),
    cfg("cache_serializer_no_loads", lambda: IC(serializer=_NoLoads()), "serializer", "_NoLoads", "loads"),
    cfg("cache_unknown_option", lambda: IC(foo=1), "foo", "1", "unknown option"),
    cfg("cache_name_int", lambda: IC(name=5), "name", "5"),
    inv("cache_clock_int", lambda: IC(clock=5), "clock", "<int>"),
    # -- IdempotencyCache calls ------------------------------------------------------------
    inv("run_key_empty", lambda: IC().run("", lambda: 1), "key", "0 bytes"),
    inv("run_key_too_long", lambda: IC().run("k" * 256, lambda: 1), "key", "256 bytes"),
    inv("run_key_int", lambda: IC().run(5, lambda: 1), "key", "<int>"),
    inv("run_key_none", lambda: IC().run(None, lambda: 1), "key", "<NoneType>"),
    inv("run_key_bytes", lambda: IC().run(b"k", lambda: 1), "key", "<bytes>"),
    inv("run_key_lone_surrogate", lambda: IC().run("a\ud800", lambda: 1), "key", "surrogate"),
    inv("run_fn_not_callable", lambda: IC().run("k", 5), "fn", "<int>", "callable"),
    inv("run_result_set", lambda: IC().run("k", lambda: {1}), '"k"', "set", "JSON", "released"),
    inv("run_result_nan", lambda: IC().run("k", lambda: math.nan), '"k"', "float", "JSON"),
    inv("run_result_object", lambda: IC().run("k", lambda: object()), '"k"', "object", "JSON"),
    inv("run_result_too_big", lambda: IC(max_result_bytes=10).run("k", lambda: "x" * 100), '"k"', "102 bytes", "max_result_bytes (10)"),
    inv("run_serializer_bad_return", lambda: IC(serializer=_BadDumps()).run("k", lambda: 1), '"k"', "serializer.dumps", "int"),
    inv("run_fingerprint_set", lambda: IC().run("k", lambda: 1, fingerprint={1}), "fingerprint", "set"),
    inv("run_fingerprint_nan", lambda: IC().run("k", lambda: 1, fingerprint=math.nan), "fingerprint", "float"),
    inv("complete_not_a_lease", lambda: IC().complete("x", b"1"), "lease", "<str>"),
    inv("complete_result_int", lambda: (lambda c: c.complete(c._begin("k").lease, 5))(IC()), "result", "<int>"),
    Row("complete_twice", _complete_twice, "LeaseLost", "SEAWALL_LEASE_LOST", ('"k"', "token 1", "already completed")),
    Row("renew_after_run", _renew_after_run, "LeaseLost", "SEAWALL_LEASE_LOST", ('"k"', "finished")),
    inv("waiter_timeout_negative", lambda: _waiter(-1), "timeout", "-1s"),
    inv("waiter_timeout_str", lambda: _waiter("x"), "timeout", '"x"'),
    Row("waiter_after_cancel", _waiter_cancelled, "SeawallError", "SEAWALL_CANCELLED", ('"k"', "stopped waiting")),
    inv("peek_int", lambda: IC().peek(5), "key", "<int>"),
    inv("record_decode_garbage", lambda: sw.Record.decode(b"xx"), "not a seawall record"),
    inv("fingerprint_none", lambda: sw.fingerprint(None), "fingerprint", "None"),
    inv("canonical_json_nan", lambda: sw.canonical_json(math.nan), "fingerprint", "float"),
    # -- MemoryStore / RedisStore options --------------------------------------------------
    cfg("memory_max_entries_zero", lambda: sw.MemoryStore(max_entries=0), "max_entries", "0"),
    cfg("memory_max_entries_negative", lambda: sw.MemoryStore(max_entries=-1), "max_entries", "-1"),
    cfg("memory_max_entries_str", lambda: sw.MemoryStore(max_entries="10"), "max_entries", '"10"'),
    cfg("memory_max_entries_fraction", lambda: sw.MemoryStore(max_entries=1.5), "max_entries", "1.5"),
    cfg("memory_max_entries_bool", lambda: sw.MemoryStore(max_entries=True), "max_entries", "true"),
    cfg("memory_max_bytes_zero", lambda: sw.MemoryStore(max_bytes=0), "max_bytes", "0"),
    cfg("memory_max_bytes_huge", lambda: sw.MemoryStore(max_bytes=2**70), "max_bytes", "at most"),
    cfg("memory_unknown_option", lambda: sw.MemoryStore(size=5), "size", "5", "unknown option"),
    inv("memory_clock_int", lambda: sw.MemoryStore(clock=5), "clock", "<int>"),
    cfg("redis_url_http", lambda: sw.RedisStore("http://x"), "url", '"http://x"', "Redis URL"),
    cfg("redis_url_int", lambda: sw.RedisStore(5), "url", "5", "string"),
    cfg("redis_url_garbage", lambda: sw.RedisStore("redis://:::"), "url", '"redis://:::"'),
    cfg("redis_prefix_braces", lambda: sw.RedisStore(prefix="{a}"), "prefix", '"{a}"'),
    cfg("redis_prefix_too_long", lambda: sw.RedisStore(prefix="p" * 200), "prefix", "200 bytes"),
    cfg("redis_prefix_int", lambda: sw.RedisStore(prefix=5), "prefix", "5"),
    cfg("redis_connect_timeout_negative", lambda: sw.RedisStore(connect_timeout=-1), "connect_timeout", "-1s"),
    cfg("redis_connect_timeout_nan", lambda: sw.RedisStore(connect_timeout=math.nan), "connect_timeout", "nan"),
    cfg("redis_command_timeout_str", lambda: sw.RedisStore(command_timeout="1"), "command_timeout", '"1"'),
    cfg("redis_reconnect_max_below", lambda: sw.RedisStore(reconnect_delay=5, reconnect_max_delay=1), "reconnect_max_delay", "1s", "reconnect_delay"),
    cfg("redis_retry_window_negative", lambda: sw.RedisStore(completion_retry_window=-1), "completion_retry_window", "-1s"),
    cfg("redis_unknown_option", lambda: sw.RedisStore(timeout=1), "timeout", "1", "unknown option"),
    # -- Registry, health checks -----------------------------------------------------------
    cfg("registry_max_breakers_zero", lambda: sw.Registry(max_breakers=0), "max_breakers", "0"),
    cfg("registry_max_breakers_negative", lambda: sw.Registry(max_breakers=-1), "max_breakers", "-1"),
    cfg("registry_max_breakers_fraction", lambda: sw.Registry(max_breakers=1.5), "max_breakers", "1.5"),
    cfg("registry_max_breakers_str", lambda: sw.Registry(max_breakers="10"), "max_breakers", '"10"'),
    cfg("registry_max_breakers_bool", lambda: sw.Registry(max_breakers=True), "max_breakers", "true"),
    inv("registry_clock_int", lambda: sw.Registry(clock=5), "clock", "<int>"),
    Row("registry_unknown_option", lambda: sw.Registry(size=1), "TypeError", None, ("size",)),
    inv("registry_breaker_name_int", lambda: sw.Registry().breaker(5), "name", "<int>"),
    cfg("registry_breaker_bad_option", lambda: sw.Registry().breaker("x", open_duration=-1), "open_duration", "-1s"),
    cfg("registry_breaker_unknown_option", lambda: sw.Registry().breaker("x", max_failures=1), "max_failures", "unknown option"),
    inv("registry_cache_name_int", lambda: sw.Registry().idempotency_cache(5), "name", "<int>"),
    cfg("registry_cache_bad_option", lambda: sw.Registry().idempotency_cache("x", ttl=0), "ttl", "0s"),
    inv("check_fn_int", lambda: sw.Registry().add_check("x", 5), "callable", "int"),
    inv("check_name_int", lambda: sw.Registry().add_check(5, lambda: True), "name", "<int>"),
    cfg("check_timeout_negative", lambda: sw.Registry().add_check("x", lambda: True, timeout=-1), "timeout", "-1s"),
    cfg("check_timeout_zero", lambda: sw.Registry().add_check("x", lambda: True, timeout=0), "timeout", "0s"),
    cfg("check_timeout_nan", lambda: sw.Registry().add_check("x", lambda: True, timeout=math.nan), "timeout", "nan"),
    cfg("check_timeout_str", lambda: sw.Registry().add_check("x", lambda: True, timeout="1"), "timeout", '"1"'),
    cfg("check_interval_negative", lambda: sw.Registry().add_check("x", lambda: True, interval=-1), "interval", "-1s"),
    cfg("check_critical_str", lambda: sw.Registry().add_check("x", lambda: True, critical="yes"), "critical", '"yes"'),
    inv("registry_on_event_int", lambda: sw.Registry().on_event(5), "callback", "int"),
    inv("registry_remove_listener_str", lambda: sw.Registry().remove_listener("x"), "listener_id", "<str>"),
    inv("cache_remove_listener_float", lambda: IC().remove_listener(1.0), "listener_id", "<float>"),
    inv("observability_app_int", lambda: seawall.asgi.observability_app(5), "registry", "<int>"),
    inv("observability_app_path_int", lambda: seawall.asgi.observability_app(sw.Registry(), health_path=5), "health_path", "5"),
    # -- HTTP middlewares ------------------------------------------------------------------
    inv("asgi_cache_int", lambda: seawall.asgi.IdempotencyMiddleware(_asgi_app, cache=5), "cache", "<int>"),
    inv("asgi_methods_str", lambda: _asgi(methods="POST"), "methods", "'POST'"),
    inv("asgi_methods_int", lambda: _asgi(methods=[1]), "methods", "[1]"),
    inv("asgi_on_duplicate", lambda: _asgi(on_duplicate="x"), "on_duplicate", "'x'"),
    inv("asgi_fingerprint_headers_str", lambda: _asgi(fingerprint_headers="a"), "fingerprint_headers", "'a'"),
    inv("asgi_max_body_negative", lambda: _asgi(max_body_bytes=-1), "max_body_bytes", "-1"),
    inv("asgi_max_body_bool", lambda: _asgi(max_body_bytes=True), "max_body_bytes", "True"),
    inv("asgi_max_body_str", lambda: _asgi(max_body_bytes="1"), "max_body_bytes", "'1'"),
    inv("asgi_key_prefix_int", lambda: _asgi(key_prefix=5), "key_prefix", "5"),
    inv("asgi_identity_int", lambda: _asgi(identity=5), "identity", "<int>"),
    inv("asgi_should_store_int", lambda: _asgi(should_store=5), "should_store", "<int>"),
    inv("asgi_replay_headers_str", lambda: _asgi(replay_headers="etag"), "replay_headers", "'etag'"),
    inv("asgi_replay_headers_never", lambda: _asgi(replay_headers=["content-length"]), "replay_headers", "'content-length'", "never"),
    Row("asgi_unknown_option", lambda: _asgi(foo=1), "TypeError", None, ("foo",)),
    inv("deadline_mw_header", lambda: seawall.asgi.DeadlineMiddleware(_asgi_app, timeout_header="bad header"), "timeout_header", "'bad header'"),
    inv("deadline_mw_default_negative", lambda: seawall.asgi.DeadlineMiddleware(_asgi_app, default_timeout=-1), "default_timeout", "-1"),
    inv("deadline_mw_default_nan", lambda: seawall.asgi.DeadlineMiddleware(_asgi_app, default_timeout=math.nan), "default_timeout", "nan"),
    inv("deadline_mw_max_str", lambda: seawall.asgi.DeadlineMiddleware(_asgi_app, max_timeout="1"), "max_timeout", "'1'"),
    inv("deadline_mw_max_inf", lambda: seawall.asgi.DeadlineMiddleware(_asgi_app, max_timeout=math.inf), "max_timeout", "inf"),
    inv("deadline_mw_clock_int", lambda: seawall.asgi.DeadlineMiddleware(_asgi_app, clock=5), "clock", "<int>"),
    inv("wsgi_cache_none", lambda: seawall.wsgi.IdempotencyMiddleware(_wsgi_app, cache=None), "cache", "<NoneType>"),
    inv("wsgi_max_body_negative", lambda: seawall.wsgi.IdempotencyMiddleware(_wsgi_app, cache=IC(), max_body_bytes=-1), "max_body_bytes", "-1"),
]


def _outcome(row: Row) -> Dict[str, Any]:
    try:
        row.call()
    except BaseException as exc:  # noqa: BLE001 - what the row raises is the result
        return {
            "cls": type(exc).__name__,
            "mro": [c.__name__ for c in type(exc).__mro__],
            "code": getattr(exc, "code", None),
            "message": str(exc),
            "field": getattr(exc, "field", None),
            "value": getattr(exc, "value", None),
        }
    return {"cls": None}


def _child() -> None:
    for row in ROWS:
        print(row.id, file=sys.stderr, flush=True)
        print(json.dumps({"id": row.id, **_outcome(row)}), flush=True)
    print(json.dumps({"id": "<end>"}), flush=True)


@pytest.fixture(scope="module")
def table() -> Dict[str, Dict[str, Any]]:
    env = dict(os.environ, PYTHONFAULTHANDLER="1")
    p = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=os.path.dirname(os.path.abspath(__file__)),
    )
    out = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    last = p.stderr.strip().splitlines()[-1:] if p.stderr.strip() else ["<none>"]
    assert p.returncode == 0 and out and out[-1]["id"] == "<end>", (
        f"the bad-input child exited with {p.returncode} during row {last[0]!r}:\n{p.stderr[-3000:]}"
    )
    return {o["id"]: o for o in out}


def test_row_ids_are_unique() -> None:
    ids = [r.id for r in ROWS]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input(row: Row, table: Dict[str, Dict[str, Any]]) -> None:
    got = table[row.id]
    if row.cls is None:
        assert got["cls"] is None, f"{row.id}: expected to be accepted, got {got}"
        return
    assert got["cls"] == row.cls, f"{row.id}: expected {row.cls}, got {got}"
    if row.code is not None:
        assert got["code"] == row.code, got
        assert "SeawallError" in got["mro"]
    if row.cls == "ConfigError":
        assert "ValueError" in got["mro"]
        assert got["field"] and got["field"] in got["message"], got
        assert got["value"] and got["value"] in got["message"], got
    if row.cls == "InvalidArgument":
        assert "ValueError" in got["mro"]
    for piece in row.must:
        assert piece in got["message"], f"{row.id}: {piece!r} not in {got['message']!r}"


# -- a refused input changes nothing ---------------------------------------------------------


def test_a_call_of_a_non_callable_records_nothing() -> None:
    b = CB(consecutive_failures=1, clock=sw.ManualClock())
    with pytest.raises(sw.InvalidArgument):
        b.call(5)
    with pytest.raises(sw.InvalidArgument):
        import asyncio

        asyncio.run(b.call_async(5))
    snap = b.snapshot()
    assert (b.state, snap["failures"], snap["successes"]) == ("closed", 0, 0)


def test_a_refused_run_leaves_the_key_free() -> None:
    c = IC(clock=sw.ManualClock())
    with pytest.raises(sw.InvalidArgument):
        c.run("k", 5)
    with pytest.raises(sw.InvalidArgument):
        c.run("k", lambda: {1})  # not JSON: nothing stored, the key released
    assert c.peek("k") == {"state": "absent"}
    assert c.run("k", lambda: 7) == 7
    assert c.run("k", lambda: 8) == 7


def test_a_refused_duration_leaves_the_permit_usable() -> None:
    b = CB(clock=sw.ManualClock())
    p = b.try_acquire()
    for bad in (-1, math.nan, "1", True):
        with pytest.raises(sw.InvalidArgument):
            p.success(bad)
    assert not p.done
    p.failure(0.5)
    assert p.done and b.snapshot()["failures"] == 1


def test_a_refused_advance_leaves_the_clock() -> None:
    clock = sw.ManualClock()
    clock.advance(1.5)
    for bad in (-1, math.nan, math.inf, "1", None, True):
        with pytest.raises(sw.InvalidArgument):
            clock.advance(bad)
    assert clock.now() == 1.5


def test_unknown_option_leaves_no_breaker_in_the_registry() -> None:
    r = sw.Registry()
    with pytest.raises(sw.ConfigError):
        r.breaker("x", max_failures=1)
    assert r.breaker_names() == []
    assert r.breaker("x", consecutive_failures=2).snapshot()["state"] == "closed"


if __name__ == "__main__" and sys.argv[1:] == ["--child"]:
    _child()
