"""``seawall.IdempotencyCache``: the native cache plus Python's calling protocols.

The cache, its store, leases, records and waiters are the core's (semantics:
docs/idempotency.md). This module serialises results (JSON by default, bytes as bytes,
pluggable), canonicalises fingerprints, implements ``run`` / ``run_async`` / the decorator
over the core's claim, complete, fail, release and abandon, and reports events. ``run``
itself is native (bindings/python/src/idem_fast.rs) for a plain function with the default
serializer and a memory store: the same steps as ``_run`` in one call, calling back here for
anything uncommon (errors, events, other values); every other case is ``_run_general``.

Waiting never holds the GIL and never blocks an event loop:

- ``run`` (sync): a duplicate that finds its key in progress blocks in the native
  ``_claim`` on the core's ``Waiter::wait``, in 50 ms slices with the GIL released and
  signals checked between slices (Ctrl-C works);
- ``run_async``: the waiter's outcome arrives through the core's ``Waiter::on_done`` on
  whatever thread resolved it (the completing owner, the clock's timer thread, the Redis
  store's notifier thread) and is handed to the loop with ``loop.call_soon_threadsafe``,
  where it settles an ``asyncio`` future. Nothing polls.

With a remote store (Redis) every store call is a network round trip: the sync calls make
it with the GIL released; ``run_async`` makes it in a worker thread (``seawall-store``).
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import contextvars
import functools
import inspect
import json
import os
import threading
from types import CoroutineType, FunctionType
from typing import Any, Awaitable, Callable, Dict, Mapping, Optional, Tuple, TypeVar

from . import _native
from ._errors import (
    ConfigError,
    IdempotencyInProgress,
    IdempotencyMismatch,
    InvalidArgument,
    LeaseLost,
    OutcomeUnknown,
    ReplayedError,
    SeawallError,
)
from ._events import call_listeners, check_listener_id

__all__ = [
    "IdempotencyCache",
    "JsonSerializer",
    "RunContext",
    "current_run",
    "canonical_json",
    "fingerprint",
]

F = TypeVar("F", bound=Callable[..., Any])

JSON_TYPE = "application/json"
OCTETS_TYPE = "application/octet-stream"

_Lease = _native.Lease
_Record = _native.Record
_Waiter = _native.Waiter


def _no_json_form(o: Any) -> Any:
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


def _encoder(sort_keys: bool) -> Callable[[Any], str]:
    """``json.dumps(value, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False)``
    with NaN and the infinities refused (they are not JSON: Node could not read them), the
    same bytes, without building an encoder per call (``json.dumps`` with arguments does:
    it costs more than the rest of a replay). A cycle ends in ``RecursionError``."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator: the pure-Python encoder
        return json.JSONEncoder(sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
    encode = make(None, _no_json_form, json.encoder.encode_basestring, None, ":", ",", sort_keys, False, False)
    join = "".join

    def dumps(value: Any) -> str:
        return join(encode(value, 0))

    return dumps


# `json.dumps(value, separators=(",", ":"), ensure_ascii=False)`: what results are stored as.
_result_encode = _encoder(False)
# `json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`: what Node's
# `canonicalJson` writes byte for byte for the same data.
_canonical_encode = _encoder(True)
_scan_once = json.JSONDecoder().scan_once


def _json_loads(data: bytes) -> Any:
    """``json.loads(data)`` for UTF-8 JSON, without its per-call overhead (which is most of a
    replay): one scan, then ``json.loads`` itself for anything unusual (surrounding
    whitespace, a byte order mark, errors)."""
    text = data if isinstance(data, str) else bytes(data).decode()
    try:
        value, end = _scan_once(text, 0)
    except StopIteration:
        return json.loads(text)
    if end != len(text):
        return json.loads(text)
    return value
_BYTES_LIKE = (bytes, bytearray, memoryview)


# -- fingerprints --------------------------------------------------------------------------


def canonical_json(payload: Any) -> str:
    """The canonical JSON text of ``payload``: ``json.dumps(payload, sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)`` (NaN and infinities refused). Node's
    ``canonicalJson`` writes the same bytes for the same data."""
    try:
        return _canonical_encode(payload)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"invalid argument: fingerprint: the payload has no canonical JSON form ({exc})") from exc


def _payload_bytes(payload: Any) -> Optional[bytes]:
    """The bytes a fingerprint hashes: None (no fingerprint), a str's UTF-8, bytes-like as
    they are, anything else as its canonical JSON in UTF-8."""
    if payload is None:
        return None
    t = type(payload)
    if t is bytes:
        return payload
    if t is str:
        try:
            return payload.encode()
        except UnicodeEncodeError as exc:
            raise InvalidArgument(f"invalid argument: fingerprint: the str is not valid UTF-8 ({exc})") from exc
    if isinstance(payload, _BYTES_LIKE):
        return bytes(payload)
    if isinstance(payload, str):
        return str(payload).encode()
    return canonical_json(payload).encode()


def fingerprint(payload: Any) -> str:
    """The core's fingerprint of a request payload (SHA-256, 64 hex digits), as ``run`` and
    ``begin`` compute it from ``fingerprint=``: a str is hashed as its UTF-8 bytes, bytes as
    they are, anything else as its canonical JSON (:func:`canonical_json`)."""
    data = _payload_bytes(payload)
    if data is None:
        raise InvalidArgument("invalid argument: fingerprint: expected a payload, got None")
    return _native._fingerprint_hex(data)


# -- serialisation -------------------------------------------------------------------------


class JsonSerializer:
    """The default serializer, the same forms as Node's:

    - ``bytes`` / ``bytearray`` / ``memoryview``: stored as they are,
      ``application/octet-stream``, replayed as ``bytes``;
    - anything else: ``json.dumps(value, separators=(",", ":"), ensure_ascii=False)`` in
      UTF-8, ``application/json``, replayed with ``json.loads`` (so a tuple comes back as a
      list, non-str keys as str; NaN and infinities are refused);
    - errors (``cache_errors=True``): ``{"type": type(exc).__name__, "message": str(exc),
      "code": exc.code}`` (``code`` only when it is a str or an int), ``application/json``;
      replayed as the builtin exception of that name (``ValueError``, ``KeyError``...)
      or else as :class:`seawall.ReplayedError`, with ``code`` set when stored.

    A custom serializer is any object with ``dumps(value) -> (bytes, content_type)`` and
    ``loads(data, content_type) -> value``, and optionally ``dumps_error(exc) -> (bytes,
    content_type)`` and ``loads_error(data, content_type) -> BaseException`` (else the
    error forms above).
    """

    __slots__ = ()

    def dumps(self, value: Any) -> Tuple[bytes, str]:
        if isinstance(value, _BYTES_LIKE):
            return bytes(value), OCTETS_TYPE
        return _result_encode(value).encode(), JSON_TYPE

    def loads(self, data: bytes, content_type: str) -> Any:
        if content_type == JSON_TYPE:
            return _json_loads(data)
        return bytes(data)

    def dumps_error(self, exc: BaseException) -> Tuple[bytes, str]:
        out: Dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
        code = getattr(exc, "code", None)
        if isinstance(code, (str, int)) and not isinstance(code, bool):
            out["code"] = code
        return _result_encode(out).encode(), JSON_TYPE

    def loads_error(self, data: bytes, content_type: str) -> BaseException:
        fields: Any = None
        if content_type == JSON_TYPE:
            try:
                fields = _json_loads(data)
            except ValueError:
                fields = None
        if not isinstance(fields, dict):
            return ReplayedError(f"the operation failed (a stored error of content type {content_type!r})")
        kind = fields.get("type") if isinstance(fields.get("type"), str) else "Error"
        message = fields.get("message") if isinstance(fields.get("message"), str) else ""
        code = fields.get("code")
        cls = getattr(builtins, kind, None)
        if isinstance(cls, type) and issubclass(cls, Exception) and not issubclass(cls, OSError):
            try:
                err: BaseException = cls(message)
                if code is not None:
                    err.code = code  # type: ignore[attr-defined]
                return err
            except Exception:  # noqa: BLE001 - a builtin that wants other arguments
                pass
        return ReplayedError(message, type=kind, code=code)


_DEFAULT = JsonSerializer()


def _check_serializer(s: Any) -> Any:
    if not (callable(getattr(s, "dumps", None)) and callable(getattr(s, "loads", None))):
        value = repr(s)
        reason = "expected an object with dumps(value) -> (bytes, content_type) and loads(data, content_type)"
        raise ConfigError(
            f"invalid configuration: serializer = {value}: {reason}",
            field="serializer",
            value=value,
            reason=reason,
            type_mismatch=True,
        )
    for m in ("dumps_error", "loads_error"):
        if getattr(s, m, None) is not None and not callable(getattr(s, m)):
            value = repr(getattr(s, m))
            raise ConfigError(
                f"invalid configuration: serializer.{m} = {value}: expected a callable",
                field=f"serializer.{m}",
                value=value,
                reason="expected a callable",
                type_mismatch=True,
            )
    return s


def _checked(out: Any, what: str) -> Tuple[Any, str]:
    """What a custom serializer returned: ``(bytes | str, content_type)``."""
    if (
        isinstance(out, tuple)
        and len(out) == 2
        and isinstance(out[1], str)
        and isinstance(out[0], (bytes, bytearray, memoryview, str))
    ):
        data = out[0]
        return (bytes(data) if not isinstance(data, (bytes, str)) else data), out[1]
    raise TypeError(f"{what} must return (bytes, content_type), got {type(out).__name__}")


# -- helpers ---------------------------------------------------------------------------------

_CO_COROUTINE = inspect.CO_COROUTINE


def _is_coroutine_function(fn: Any) -> bool:
    if type(fn) is FunctionType:
        if fn.__code__.co_flags & _CO_COROUTINE:
            return True
        d = fn.__dict__  # `inspect.markcoroutinefunction` (3.12) leaves its mark here
        return bool(d) and "_is_coroutine_marker" in d
    return inspect.iscoroutinefunction(fn)


# Types whose instances are never awaitable: checked first, because `inspect.isawaitable` on
# a plain result (None, a dict...) goes through the `Awaitable` ABC, ~0.4 µs per call.
_NEVER_AWAITABLE = frozenset({type(None), bool, int, float, str, bytes, dict, list, tuple})


def _is_awaitable(value: Any) -> bool:
    t = type(value)
    return t is CoroutineType or (t not in _NEVER_AWAITABLE and inspect.isawaitable(value))


def _not_callable(fn: Any) -> InvalidArgument:
    return InvalidArgument(f"invalid argument: fn = <{type(fn).__name__}>: expected a callable")


def _quote(key: str) -> str:
    return json.dumps(key, ensure_ascii=False)


_pool_lock = threading.Lock()
_pool_instance: Optional[concurrent.futures.ThreadPoolExecutor] = None


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    """Worker threads for remote store calls made from async code."""
    global _pool_instance
    p = _pool_instance
    if p is None:
        with _pool_lock:
            p = _pool_instance
            if p is None:
                p = _pool_instance = concurrent.futures.ThreadPoolExecutor(
                    max_workers=min(32, (os.cpu_count() or 1) + 4), thread_name_prefix="seawall-store"
                )
    return p


def _forget_pool() -> None:  # in a forked child the parent's threads do not exist
    global _pool_instance, _pool_lock
    _pool_instance = None
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


async def _in_thread(fn: Callable[..., Any], *args: Any, cleanup: Optional[Callable[[Any], None]] = None) -> Any:
    """Runs ``fn(*args)`` in a worker thread; when the awaiting task is cancelled, the
    result (if the call still succeeds) goes to ``cleanup``."""
    cf = _pool().submit(fn, *args)
    try:
        return await asyncio.wrap_future(cf)
    except asyncio.CancelledError:
        if cleanup is not None:

            def done(f: "concurrent.futures.Future[Any]") -> None:
                if not f.cancelled() and f.exception() is None:
                    cleanup(f.result())

            cf.add_done_callback(done)
        raise


_get_running_loop = asyncio._get_running_loop


def _settle(fut: "asyncio.Future[Any]", kind: str, value: Any, cache: "IdempotencyCache") -> None:
    """Hands a waiter's outcome to the future awaiting it (on its loop)."""
    if fut.done():  # the awaiting task was cancelled
        if kind == "execute":
            cache._drop_lease(value)
        return
    if kind == "error":
        fut.set_exception(value)
    else:
        fut.set_result(value)


# -- the run context -------------------------------------------------------------------------

_current_run: "contextvars.ContextVar[Optional[RunContext]]" = contextvars.ContextVar("seawall_run", default=None)


class RunContext:
    """The run of ``cache.run(key, fn)`` that is going on: what ``fn`` sees through
    :func:`seawall.current_run`."""

    __slots__ = ("_cache", "lease", "_over", "_abandoned")

    def __init__(self, cache: "IdempotencyCache", lease: Any) -> None:
        self._cache = cache
        self.lease = lease
        self._over = False
        self._abandoned = False

    @property
    def key(self) -> str:
        """The key being run."""
        return self.lease.key

    @property
    def took_over(self) -> bool:
        """True when this run took the key over from an owner that failed or whose lease expired."""
        return self.lease.took_over

    @property
    def token(self) -> int:
        """The lease's fencing token."""
        return self.lease.token

    def remaining(self) -> float:
        """Seconds until the lease expires (0 once it has)."""
        return self._cache.remaining(self.lease)

    def _check(self) -> None:
        if self._over:
            raise LeaseLost(
                f"lease on idempotency key {_quote(self.key)} is no longer held: the run has finished",
                key=self.key,
                token=self.token,
                reason="the run has finished",
            )

    def renew(self) -> float:
        """Extends the claim to a full lease from now (for work that may outlive the lease);
        returns the seconds until it expires. ``LeaseLost`` when it already expired or was
        taken over. With a Redis store this blocks one round trip (GIL released); in
        async code, ``await ctx.renew_async()``."""
        self._check()
        return self._cache.renew(self.lease)

    async def renew_async(self) -> float:
        """``renew`` without blocking the event loop (a worker thread with a remote store)."""
        self._check()
        if self._cache._remote_:
            return await _in_thread(self._cache.renew, self.lease)
        return self._cache.renew(self.lease)

    def abandon(self) -> None:
        """Says "the outcome is unknown": if the function then raises (anything, a
        cancellation included), the claim is kept until its lease expires instead of being
        released, so duplicates are held off until then and one of them runs afterwards."""
        self._abandoned = True

    def __repr__(self) -> str:
        return f"RunContext(key={self.key!r}, token={self.token}, took_over={self.took_over})"


def current_run() -> Optional[RunContext]:
    """The :class:`RunContext` of the ``cache.run`` whose function is running in this thread
    or task, or None."""
    return _current_run.get()


# -- the cache ----------------------------------------------------------------------------------


class IdempotencyCache(_native.IdempotencyCache):
    """An idempotency cache: ``run(key, fn)`` runs ``fn`` once per key, however often it is
    retried or raced, and every duplicate gets the first run's result.

    ``IdempotencyCache(*, store=None, ttl=86400.0, lease=30.0, on_duplicate="wait",
    wait_timeout=None, cache_errors=False, max_result_bytes=1048576, on_store_error="fail",
    critical=None, max_entries=10000, max_bytes=67108864, clock=None, name="", serializer=None)``: options
    are checked by the core (durations in seconds; a bad one raises
    :class:`seawall.ConfigError` naming it). ``store`` is a :class:`seawall.MemoryStore` to
    share between caches or a :class:`seawall.RedisStore` (default: a memory store of this
    cache's own, bounded by ``max_entries`` and ``max_bytes``). See docs/python.md,
    "Idempotency".
    """

    __module__ = "seawall"
    __slots__ = (
        "_serializer",
        "_dumps",
        "_loads",
        "_dumps_error",
        "_loads_error",
        "_custom",
        "_cache_errors_",
        "_remote_",
        "_listeners",
        "_registry_pump",
        "_watched",
        "_next_listener",
    )

    def __init__(self, *, serializer: Any = None, **options: Any) -> None:
        # The native __new__ built the cache from the options (clock, store, core options).
        if serializer is None:
            self._serializer = None
            s: Any = _DEFAULT
        else:
            s = self._serializer = _check_serializer(serializer)
        self._custom = serializer is not None
        self._dumps = s.dumps
        self._loads = s.loads
        self._dumps_error = getattr(s, "dumps_error", None) or _DEFAULT.dumps_error
        self._loads_error = getattr(s, "loads_error", None) or _DEFAULT.loads_error
        self._cache_errors_ = self.cache_errors
        self._remote_ = self.remote
        self._listeners: Dict[int, Callable[[Dict[str, Any]], Any]] = {}
        self._registry_pump: Optional[Callable[[Dict[str, Any]], None]] = None
        self._watched = False
        self._next_listener = 1
        # `run` takes its native path with the default serializer (and a memory store).
        self._set_fast(not self._custom, False)

    @property
    def serializer(self) -> Any:
        """The custom serializer, or None for the default (:class:`JsonSerializer`)."""
        return self._serializer

    # -- events ----------------------------------------------------------------------------

    def on_event(self, callback: Callable[[Dict[str, Any]], Any]) -> int:
        """Calls ``callback(event)`` for the events of this cache's ``run`` calls (dicts:
        ``{"type": "replay" | "mismatch" | "in_progress" | "takeover" | "lease_lost",
        "cache", "key", "at", ...}``); returns an id for :meth:`remove_listener`. A
        callback that raises is reported through ``sys.unraisablehook``. Events cost
        nothing while nobody listens (and the cache is not in a :class:`seawall.Registry`)."""
        if not callable(callback):
            raise InvalidArgument(f"invalid argument: callback must be callable, got {type(callback).__name__}")
        lid = self._next_listener
        self._next_listener += 1
        self._listeners[lid] = callback
        self._watched = True
        self._set_fast(not self._custom, True)
        return lid

    def remove_listener(self, listener_id: int) -> bool:
        """Removes a listener by the id :meth:`on_event` returned; False when unknown."""
        check_listener_id(listener_id)
        removed = self._listeners.pop(listener_id, None) is not None
        self._watched = bool(self._listeners) or self._registry_pump is not None
        self._set_fast(not self._custom, self._watched)
        return removed

    def _attach(self, pump: Callable[[Dict[str, Any]], None]) -> None:
        """Reports this cache's events to a registry (its listeners and the logger)."""
        self._registry_pump = pump
        self._watched = True
        self._set_fast(not self._custom, True)

    def _emit(self, kind: str, key: str, extra: Optional[Mapping[str, Any]] = None) -> None:
        pump = self._registry_pump
        if pump is not None and not self._listeners and not pump.wants(kind):  # type: ignore[attr-defined]
            return  # nobody listens and the logger would drop it (a replay at DEBUG)
        event: Dict[str, Any] = {"type": kind, "cache": self.name, "key": key, "at": self.clock.now()}
        if extra:
            event.update(extra)
        if self._listeners:
            call_listeners(self._listeners, event)
        if pump is not None:
            pump(event)

    def _emit_refusal(self, key: Any, exc: BaseException) -> None:
        if isinstance(exc, IdempotencyMismatch):
            self._emit("mismatch", key)
        elif isinstance(exc, IdempotencyInProgress):
            self._emit("in_progress", key, {"retry_after": exc.retry_after, "waited": exc.waited})

    # -- serialisation -----------------------------------------------------------------------

    def serialize(self, value: Any) -> Tuple[Any, str]:
        """The stored form of ``value``: ``(bytes, content_type)`` (what ``run`` stores)."""
        out = self._dumps(value)
        return _checked(out, "serializer.dumps") if self._custom else out

    def value(self, record: Any) -> Any:
        """The value ``run`` returns for ``record`` (deserialised), or raises the stored
        error when ``record.is_error``."""
        data, content_type, is_error = record._parts()
        if is_error:
            raise self._loads_error(data, content_type)
        return self._loads(data, content_type)

    def _serialise(self, lease: Any, value: Any) -> Tuple[Any, str]:
        try:
            out = self._dumps(value)
            if self._custom:
                out = _checked(out, "serializer.dumps")
        except Exception as exc:
            self._drop_lease(lease)
            how = "the serializer failed" if self._custom else "it cannot be serialised as JSON"
            raise InvalidArgument(
                f"invalid argument: cannot store the result of idempotency key {_quote(lease.key)}: "
                f"{how} ({exc}); nothing was stored and the key was released"
            ) from exc
        return out

    def _error_output(self, exc: BaseException) -> Optional[Tuple[Any, str]]:
        if not (self._cache_errors_ and isinstance(exc, Exception)):
            return None
        try:
            return _checked(self._dumps_error(exc), "serializer.dumps_error")
        except Exception:  # noqa: BLE001 - an error that cannot be stored is released instead
            return None

    # -- lease endings ---------------------------------------------------------------------

    def _release_quietly(self, lease: Any) -> None:
        try:
            self.release(lease)
        except SeawallError:
            pass

    def _drop_lease(self, lease: Any) -> None:
        """Releases a lease nobody will run (without blocking a loop with a remote store)."""
        if self._remote_:
            _pool().submit(self._release_quietly, lease)
        else:
            self._release_quietly(lease)

    def _discard_claim(self, claimed: Any) -> None:
        if type(claimed) is _Lease:
            self._release_quietly(claimed)
        elif type(claimed) is _Waiter:
            claimed.cancel()

    def _raised(self, ctx: RunContext, exc: BaseException) -> None:
        """The function raised: abandon (outcome unknown), store the error
        (``cache_errors``) or release. Store failures here never mask ``exc``."""
        lease = ctx.lease
        if ctx._abandoned or isinstance(exc, OutcomeUnknown):
            self.abandon(lease)
            return
        out = self._error_output(exc)
        try:
            if out is None:
                self.fail(lease)
            else:
                self.fail(lease, out[0], out[1])
        except LeaseLost:
            if self._watched:
                self._emit("lease_lost", lease.key, {"token": lease.token})
        except SeawallError:
            pass

    def _finished(self, lease: Any, data: Any, content_type: str) -> None:
        try:
            self._finish(lease, data, content_type)
        except LeaseLost:
            if self._watched:
                self._emit("lease_lost", lease.key, {"token": lease.token})
            raise

    # -- run -----------------------------------------------------------------------------

    # `run(key, fn, /, *args, fingerprint=None, **kwargs)` is native (the base class's,
    # bindings/python/src/idem_fast.rs): for a plain function with the default serializer
    # and a memory store it takes `_run`'s steps in one call; otherwise it calls this.

    def _run_general(self, key: str, fn: Callable[..., Any], fingerprint: Any, args: Any, kwargs: Any) -> Any:
        """``run`` for every case (see ``run``)."""
        if _is_coroutine_function(fn):
            return self._run_async(key, _payload_bytes(fingerprint), fn, args, kwargs)
        if not callable(fn):  # before the key is claimed
            raise _not_callable(fn)
        return self._run(key, _payload_bytes(fingerprint), fn, args, kwargs)

    def _run(self, key: Any, fp: Optional[bytes], fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        try:
            r = self._claim(key, fp, True)
        except (IdempotencyMismatch, IdempotencyInProgress) as exc:
            if self._watched:
                self._emit_refusal(key, exc)
            raise
        if type(r) is _Record:
            if self._watched:
                self._emit("replay", key)
            data, content_type, is_error = r._parts()
            if is_error:
                raise self._loads_error(data, content_type)
            return self._loads(data, content_type)
        lease = r
        if self._watched and lease.took_over:
            self._emit("takeover", key, {"token": lease.token})
        ctx = RunContext(self, lease)
        reset = _current_run.set(ctx)
        try:
            value = fn(*args, **kwargs)
        except BaseException as exc:
            ctx._over = True
            self._raised(ctx, exc)
            raise
        finally:
            _current_run.reset(reset)
        ctx._over = True
        if _is_awaitable(value):
            self._awaitable_result(lease, value)
        data, content_type = self._serialise(lease, value)
        self._finished(lease, data, content_type)
        return self._loads(data, content_type)

    def _awaitable_result(self, lease: Any, value: Any) -> None:
        """A sync ``run``'s function returned an awaitable: closed, the key released, refused."""
        close = getattr(value, "close", None)
        if close is not None:
            close()
        self._release_quietly(lease)
        raise InvalidArgument(
            f"invalid argument: the function run for idempotency key {_quote(lease.key)} returned an awaitable; "
            "use await cache.run_async(...); nothing was stored and the key was released"
        )

    async def run_async(self, key: str, fn: Callable[..., Any], /, *args: Any, fingerprint: Any = None, **kwargs: Any) -> Any:
        """``run`` for async code: awaits ``fn(*args, **kwargs)`` when it returns an
        awaitable (``fn`` may be sync or async). A duplicate waits without blocking the event
        loop; with a Redis store the store calls run in a worker thread."""
        if not callable(fn):  # before the key is claimed
            raise _not_callable(fn)
        return await self._run_async(key, _payload_bytes(fingerprint), fn, args, kwargs)

    async def _run_async(self, key: Any, fp: Optional[bytes], fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        remote = self._remote_
        try:
            if remote:
                r = await _in_thread(self._claim, key, fp, False, cleanup=self._discard_claim)
            else:
                r = self._claim(key, fp, False)
            if type(r) is _Waiter:
                r = await self._wait(r)
        except (IdempotencyMismatch, IdempotencyInProgress) as exc:
            if self._watched:
                self._emit_refusal(key, exc)
            raise
        if type(r) is _Record:
            if self._watched:
                self._emit("replay", key)
            return self.value(r)
        lease = r
        if self._watched and lease.took_over:
            self._emit("takeover", key, {"token": lease.token})
        ctx = RunContext(self, lease)
        reset = _current_run.set(ctx)
        try:
            value = fn(*args, **kwargs)
            if _is_awaitable(value):
                value = await value
        except BaseException as exc:
            ctx._over = True
            _current_run.reset(reset)
            if remote:
                await _in_thread(self._raised, ctx, exc)
            else:
                self._raised(ctx, exc)
            raise
        ctx._over = True
        _current_run.reset(reset)
        data, content_type = self._serialise(lease, value)
        if remote:
            await _in_thread(self._finished, lease, data, content_type)
        else:
            self._finished(lease, data, content_type)
        return self._loads(data, content_type)

    async def _wait(self, waiter: Any) -> Any:
        """Awaits a waiter's outcome (a Lease or a Record) without blocking the loop."""
        loop = asyncio.get_running_loop()
        fut: "asyncio.Future[Any]" = loop.create_future()
        cache = self

        def deliver(kind: str, value: Any) -> None:  # on the thread that resolved the waiter
            if _get_running_loop() is loop:
                _settle(fut, kind, value, cache)
                return
            try:
                loop.call_soon_threadsafe(_settle, fut, kind, value, cache)
            except RuntimeError:  # the loop is closed: nobody will run it
                if kind == "execute":
                    cache._drop_lease(value)

        waiter._on_done(deliver)
        try:
            return await fut
        except asyncio.CancelledError:
            waiter.cancel()
            if fut.done() and not fut.cancelled() and fut.exception() is None and type(fut.result()) is _Lease:
                self._drop_lease(fut.result())
            raise

    # -- the decorator ---------------------------------------------------------------------

    def idempotent(
        self, *, key: Callable[..., str], fingerprint: Optional[Callable[..., Any]] = None
    ) -> Callable[[F], F]:
        """Decorates a sync or async function so that every call goes through :meth:`run`
        (or :meth:`run_async`) with the key ``key(*args, **kwargs)`` and the fingerprint
        payload ``fingerprint(*args, **kwargs)`` (optional)::

            @cache.idempotent(key=lambda order_id, body: f"charge:{order_id}", fingerprint=lambda order_id, body: body)
            def charge(order_id, body): ...
        """
        if not callable(key):
            raise InvalidArgument(
                f"invalid argument: key = <{type(key).__name__}>: expected a callable of the function's arguments"
            )
        if fingerprint is not None and not callable(fingerprint):
            raise InvalidArgument(
                f"invalid argument: fingerprint = <{type(fingerprint).__name__}>: expected a callable of the function's arguments"
            )
        cache = self

        def decorate(fn: F) -> F:
            if not callable(fn):
                raise TypeError(f"idempotent decorates a callable, got {type(fn).__name__}")
            if _is_coroutine_function(fn):

                @functools.wraps(fn)
                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    k = key(*args, **kwargs)
                    fp = None if fingerprint is None else _payload_bytes(fingerprint(*args, **kwargs))
                    return await cache._run_async(k, fp, fn, args, kwargs)

                return async_wrapper  # type: ignore[return-value]

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                k = key(*args, **kwargs)
                fp = None if fingerprint is None else _payload_bytes(fingerprint(*args, **kwargs))
                return cache._run(k, fp, fn, args, kwargs)

            return wrapper  # type: ignore[return-value]

        return decorate

    # -- the low-level surface -------------------------------------------------------------

    def begin(self, key: str, fingerprint: Any = None) -> Any:
        """Claims ``key`` and says what was found (a ``Begin``: ``kind`` ``"execute"``,
        ``"replay"``, ``"in_progress"`` or ``"mismatch"``), raising only bad keys and store
        failures. The core's protocol as it is (docs/idempotency.md)."""
        return self._begin(key, _payload_bytes(fingerprint))
