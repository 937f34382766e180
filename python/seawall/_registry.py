"""``seawall.Registry``: named breakers, idempotency caches and health checks, with one
snapshot, one Prometheus exposition and one health report (the core's ``Registry``).

Breakers and caches are the core's: the registry creates them in the core registry (so
they are in its snapshot and metrics) and keeps one Python object per core primitive.
Every event of its primitives goes to the ``seawall`` logger (:func:`seawall.log_event`)
and to the callbacks of :meth:`Registry.on_event`.

Health checks: sync functions run on the core's check threads (``health()``; they take the
GIL to call into Python), async ones on a private event loop in such a thread; with
``await health_async()`` the due checks run on the caller's loop instead (sync ones in a
worker thread), bounded by their timeouts; the interval cache, timeouts and the report
are the core's.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import weakref
from typing import Any, Awaitable, Callable, Dict, Optional

from . import _native
from ._breaker import CircuitBreaker
from ._errors import InvalidArgument
from ._events import _LEVELS, call_listeners, check_listener_id, log_event, logger
from ._idempotency import IdempotencyCache, _is_coroutine_function, _pool

__all__ = ["Registry"]

_DEFAULT_MAX_BREAKERS = 10_000


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return text if text else type(exc).__name__


def _verdict(result: Any) -> Optional[str]:
    return "the check returned False" if result is False else None


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _run_check(fn: Callable[[], Any]) -> Optional[str]:
    """Runs a check function to completion in this thread: None when it passed, else why it
    failed. An awaitable it returns (an async check) runs on a private event loop."""
    try:
        result = fn()
        if inspect.isawaitable(result):
            result = asyncio.run(_await(result))
    except BaseException as exc:  # noqa: BLE001 - a check's failure is its report
        return _describe(exc)
    return _verdict(result)


async def _run_check_async(fn: Callable[[], Any]) -> Optional[str]:
    try:
        result = fn()
        if inspect.isawaitable(result):
            result = await result
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # noqa: BLE001
        return _describe(exc)
    return _verdict(result)


_PREVIOUS = "the previous run has not returned; no new run was started"


class Registry(_native.Registry):
    """Named breakers, idempotency caches and health checks: ``Registry(*, clock=None,
    max_breakers=10000)``. See docs/python.md, "Observability"."""

    __module__ = "seawall"
    __slots__ = ("_lock", "_breakers", "_caches", "_checks", "_listeners", "_next_listener", "_hanging", "_max", "_pump")

    def __init__(self, *, clock: Any = None, max_breakers: Any = None) -> None:
        # The native __new__ validated max_breakers (core count rule).
        self._lock = threading.RLock()
        self._breakers: Dict[str, Any] = {}  # name -> (core identity, CircuitBreaker)
        self._caches: Dict[str, IdempotencyCache] = {}
        self._checks: Dict[str, Callable[[], Any]] = {}
        self._listeners: Dict[int, Callable[[Dict[str, Any]], Any]] = {}
        self._next_listener = 1
        self._hanging: set = set()
        self._max = _DEFAULT_MAX_BREAKERS if max_breakers is None else int(max_breakers)
        ref = weakref.ref(self)

        def pump(event: Dict[str, Any]) -> None:
            registry = ref()
            if registry is not None:
                registry._dispatch(event)
            else:
                log_event(event)

        def wants(kind: str) -> bool:
            registry = ref()
            return bool(registry is not None and registry._listeners) or logger.isEnabledFor(_LEVELS.get(kind, logging.INFO))

        pump.wants = wants  # type: ignore[attr-defined]
        self._pump = pump

    def _dispatch(self, event: Dict[str, Any]) -> None:
        log_event(event)
        if self._listeners:
            call_listeners(self._listeners, event)

    # -- primitives --------------------------------------------------------------------------

    def breaker(self, name: str, **config: Any) -> CircuitBreaker:
        """The breaker named ``name``, created with ``config`` (the keywords of
        :class:`seawall.CircuitBreaker`, ``critical`` included) if the registry has none; the
        config of an existing breaker is kept. Its clock defaults to the registry's. The
        registry keeps at most ``max_breakers`` and forgets the least recently used past
        that (a caller holding one keeps using it; it is just no longer reported)."""
        if not isinstance(name, str):
            raise InvalidArgument(f"invalid argument: name = <{type(name).__name__}>: a breaker's name is a str")
        clock = config.pop("clock", None)
        if clock is None:
            clock = self.clock
        failure_on = config.pop("failure_on", None)
        ignore = config.pop("ignore", None)
        fallback = config.pop("fallback", None)
        with self._lock:
            known = self._breakers.get(name)
            if known is not None and self._touch(name) == known[0]:
                return known[1]
            handle, identity, created = self._breaker(name, clock, config)
            b = CircuitBreaker(_core=handle, clock=clock, failure_on=failure_on, ignore=ignore, fallback=fallback)
            if created:
                b.on_event(self._pump)
            self._breakers[name] = (identity, b)
            if len(self._breakers) > self._max:
                # The core forgot the least recently used ones: forget them here too.
                live = set(self.breaker_names())
                for n in [n for n in self._breakers if n not in live]:
                    del self._breakers[n]
        return b

    def remove_breaker(self, name: str) -> bool:
        """Forgets a breaker (a caller holding it keeps using it); False when there was none."""
        with self._lock:
            self._breakers.pop(name, None)
            return super().remove_breaker(name)

    def idempotency_cache(self, name: str, **config: Any) -> IdempotencyCache:
        """The idempotency cache named ``name``, created with ``config`` (the keywords of
        :class:`seawall.IdempotencyCache`) if the registry has none; later configs are
        ignored. Its clock defaults to the registry's. Its counts are in the snapshot and the
        metrics (``seawall_idempotency_requests_total{cache,result}``)."""
        if not isinstance(name, str):
            raise InvalidArgument(f"invalid argument: name = <{type(name).__name__}>: a cache's name is a str")
        with self._lock:
            known = self._caches.get(name)
            if known is not None:
                return known
            clock = config.pop("clock", None)
            if clock is None:
                clock = self.clock
            store = config.pop("store", None)
            serializer = config.pop("serializer", None)
            handle = self._idempotency_cache(name, clock, store, config)
            cache = IdempotencyCache(_core=handle, clock=clock, store=store, serializer=serializer)
            cache._attach(self._pump)
            self._caches[name] = cache
            return cache

    def idempotency_caches(self) -> Dict[str, IdempotencyCache]:
        """The registry's idempotency caches, by name."""
        with self._lock:
            return dict(self._caches)

    # -- events ----------------------------------------------------------------------------

    def on_event(self, callback: Callable[[Dict[str, Any]], Any]) -> int:
        """Calls ``callback(event)`` for every event of the registry's breakers
        (``state_change``, ``rejected``, ``timeout``, ``fallback``) and caches (``replay``,
        ``mismatch``, ``in_progress``, ``takeover``, ``lease_lost``); returns an id for
        :meth:`remove_listener`. A callback that raises is reported through
        ``sys.unraisablehook`` and never breaks the primitive."""
        if not callable(callback):
            raise InvalidArgument(f"invalid argument: callback must be callable, got {type(callback).__name__}")
        with self._lock:
            lid = self._next_listener
            self._next_listener += 1
            self._listeners[lid] = callback
        return lid

    def remove_listener(self, listener_id: int) -> bool:
        """Removes a listener by the id :meth:`on_event` returned; False when unknown."""
        check_listener_id(listener_id)
        with self._lock:
            return self._listeners.pop(listener_id, None) is not None

    # -- health ----------------------------------------------------------------------------

    def add_check(
        self,
        name: str,
        fn: Callable[[], Any],
        *,
        timeout: Optional[float] = None,
        interval: Optional[float] = None,
        critical: Optional[bool] = None,
    ) -> "Registry":
        """Registers (or replaces) a health check: ``fn()``, sync or async, passes unless it
        raises or returns ``False``. ``timeout`` (seconds, default 5): a run that takes
        longer fails ("timed out after 5000 ms") and never holds ``health()`` up.
        ``interval`` (default 5): results are reused that long, so a flood of ``/health``
        requests runs the check once per interval. ``critical`` (default True): a failure
        makes the service ``down``; False: ``degraded``."""
        if not isinstance(name, str):
            raise InvalidArgument(f"invalid argument: name = <{type(name).__name__}>: a check's name is a str")
        options = {"timeout": timeout, "interval": interval, "critical": critical}
        with self._lock:
            self._add_check(name, fn, options)
            self._checks[name] = fn
        return self

    def remove_check(self, name: str) -> bool:
        """Removes a check; False when there was none."""
        with self._lock:
            self._checks.pop(name, None)
            return super().remove_check(name)

    async def health_async(self) -> Dict[str, Any]:
        """``health()`` for async code: runs the due checks on this event loop (async
        checks as tasks, sync ones in a worker thread), each bounded by its timeout (a
        check that hangs, or ignores its cancellation, fails at its timeout and is left
        behind; its next run starts only once it returned), then reports."""
        due = self._due()
        runs = [self._run_due(name, run, timeout) for name, run, timeout in due]
        if self._caches:
            # The stores' checks (one per idempotency cache) are the core's: a worker thread.
            runs.append(asyncio.get_running_loop().run_in_executor(_pool(), self._run_store_checks))
        if runs:
            await asyncio.gather(*runs)
        return self.report()

    async def _run_due(self, name: str, run: int, timeout: float) -> None:
        fn = self._checks.get(name)
        if fn is None:
            self._finish(name, run, "the check was removed")
            return
        with self._lock:
            if name in self._hanging:
                self._finish(name, run, _PREVIOUS)
                return
            self._hanging.add(name)
        hanging = self._hanging

        def returned(_: Any) -> None:
            hanging.discard(name)

        task: "asyncio.Future[Optional[str]]"
        if _is_coroutine_function(fn):
            task = asyncio.ensure_future(_run_check_async(fn))
            task.add_done_callback(returned)
        else:
            cf = _pool().submit(_run_check, fn)
            cf.add_done_callback(returned)
            task = asyncio.wrap_future(cf)
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if task in done and not task.cancelled():
            self._finish(name, run, task.result())
        else:
            self._time_out(name, run)
            task.cancel()

    # -- rendering -----------------------------------------------------------------------------

    def __repr__(self) -> str:
        with self._lock:
            return f"<Registry breakers={len(self._breakers)} caches={len(self._caches)} checks={len(self._checks)}>"
