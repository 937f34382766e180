"""``seawall.CircuitBreaker``: the native breaker plus Python's calling protocols.

Everything that decides lives in the Rust core; this module adds the decorator, the
(async) context-manager protocol and the coroutine path on top of the native class.
"""

from __future__ import annotations

import functools
import inspect
import sys
from types import CoroutineType, FunctionType
from typing import Any, Awaitable, Callable, Optional, TypeVar

from . import _native
from ._errors import BreakerOpen, InvalidArgument, Timeout
from ._timeout import _arm, _disarm, _enter_async, _exit_async

__all__ = ["CircuitBreaker"]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

# Types whose instances are never awaitable: checked first, because `inspect.isawaitable` on
# a plain result (None, a dict...) goes through the `Awaitable` ABC, ~0.4 µs per call.
_NEVER_AWAITABLE = frozenset({type(None), bool, int, float, str, bytes, dict, list, tuple})


def _is_awaitable(value: Any) -> bool:
    t = type(value)
    return t is CoroutineType or (t not in _NEVER_AWAITABLE and inspect.isawaitable(value))


# `@breaker` on an `async def` returns the native awaitable where `inspect.iscoroutinefunction`
# recognises a function-like object (3.10+); on 3.9 it only recognises real functions.
_NATIVE_ASYNC = sys.version_info >= (3, 10)


async def _await_any(awaitable: Awaitable[T]) -> T:
    """``await awaitable``: how the native awaitable of ``@breaker`` (``_native.AsyncGuarded``)
    awaits a result or a fallback's result that is awaitable but not a coroutine."""
    return await awaitable


def _idle() -> Any:
    return
    yield  # a generator that never ran


def _raise_thrown(*args: Any) -> None:
    """Raises what ``coroutine.throw(*args)`` raises into a coroutine that has not started:
    the native awaitable's ``throw`` in that state."""
    _idle().throw(*args)


def _open_limit(breaker: "CircuitBreaker", permit: _native.Permit) -> Optional[_native.Scope]:
    """Opens the scope of the breaker's ``timeout`` (if any) in the current task, armed to
    cancel it at the deadline. When that fails the call does not run: the permit is cancelled."""
    limit = breaker._time_limit
    if limit is None:
        return None
    try:
        return _enter_async(limit)
    except BaseException:
        permit.cancel()
        raise


def _settle_after(
    breaker: "CircuitBreaker",
    permit: _native.Permit,
    start: Optional[int],
    scope: Optional[_native.Scope],
    exc: Optional[BaseException],
) -> None:
    """Closes the call's time-limit scope and records the outcome: a timeout when the
    scope raises ``Timeout`` (which then propagates), else from ``exc``."""
    limit = breaker._time_limit
    if scope is not None and limit is not None:
        try:
            _exit_async(limit, scope, exc)
        except Timeout as timeout:
            breaker._settle(permit, timeout, start, True)
            raise
    breaker._settle(permit, exc, start)


async def _guard_awaitable(breaker: "CircuitBreaker", permit: _native.Permit, awaitable: Awaitable[T], start: Optional[int]) -> T:
    """Awaits ``awaitable`` (under the breaker's ``timeout``) and records its outcome on
    ``permit``.

    Cancellation (``asyncio.CancelledError``, a ``BaseException``) cancels the permit; the
    breaker's own timeout records a timeout.
    """
    scope = _open_limit(breaker, permit)
    try:
        result = await awaitable
    except BaseException as exc:
        _settle_after(breaker, permit, start, scope, exc)
        raise
    _settle_after(breaker, permit, start, scope, None)
    return result


class CircuitBreaker(_native.CircuitBreaker):
    """A circuit breaker.

    ``CircuitBreaker(**config)`` takes the options of SPEC "Configuration" as keywords
    (durations in seconds), plus:

    - ``clock=``: a :class:`seawall.ManualClock` or :class:`seawall.SystemClock` (default);
    - ``failure_on=``: exception type(s) that count as failures (default ``Exception``);
    - ``ignore=``: exception type(s) counted nowhere (only in ``snapshot()["ignored"]``);
    - ``fallback=``: called with the :class:`~seawall.BreakerOpen` error when the breaker
      rejects a call; its result is returned instead (awaited if it is awaitable on the
      async path). Errors of the guarded function itself always propagate.

    The ``timeout=`` option (seconds) puts a time limit (:func:`seawall.timeout`) on every
    guarded call, inside the breaker: a call that runs out raises :class:`seawall.Timeout`
    and is recorded as a timeout (a failure, also counted in ``snapshot()["timeouts"]``).
    Coroutines are cancelled at the deadline; sync code is cooperative (see
    :func:`seawall.timeout`).

    An exception raised by the guarded code counts as: ``ignored`` when it matches
    ``ignore``; a failure when it matches ``failure_on`` (a *timeout* when it is a
    ``TimeoutError``, e.g. :class:`seawall.Timeout`); a success when it is any other
    ``Exception`` (it says nothing about the dependency); and a cancellation (counted
    nowhere, frees a half-open slot) when it is a bare ``BaseException`` such as
    ``KeyboardInterrupt`` or ``asyncio.CancelledError``.

    Use it as a decorator (``@breaker`` on sync and async functions), as a context
    manager (``with breaker:`` / ``async with breaker:``), or with
    ``breaker.call(fn, *args, **kwargs)`` / ``await breaker.call_async(fn, ...)``. Invalid
    options raise :class:`seawall.ConfigError`.
    """

    __module__ = "seawall"
    __slots__ = ()

    def __init__(self, **config: Any) -> None:
        # Built by the native __new__ (which validates `config`); this only lets
        # subclasses call super().__init__(**config).
        pass

    # -- decorator ---------------------------------------------------------------------

    def __call__(self, fn: F) -> F:
        """Decorates a sync or async function so every call goes through the breaker."""
        if not callable(fn):
            raise TypeError(f"CircuitBreaker decorates a callable, got {type(fn).__name__}")
        if inspect.iscoroutinefunction(fn):
            call_async = self.call_async
            if self._time_limit is None and type(self).call_async is CircuitBreaker.call_async:
                if type(fn) is FunctionType and _NATIVE_ASYNC:
                    # One native object: each call returns a native awaitable that takes the
                    # permit when first awaited, drives fn's coroutine and records its outcome
                    # (`call_async`'s steps, fallback included, with no Python frame).
                    guarded = _native.AsyncGuarded(self, fn)
                    functools.update_wrapper(guarded, fn)
                    # Function-like for `inspect.iscoroutinefunction` (and asyncio's) on every
                    # Python version: the coroutine function's code and defaults.
                    guarded.__code__ = fn.__code__
                    guarded.__defaults__ = fn.__defaults__
                    guarded.__kwdefaults__ = fn.__kwdefaults__
                    return guarded  # type: ignore[return-value]
                # `call_async` without a time limit, inlined (one coroutine frame less, no
                # clock read when the breaker does not measure durations): the same steps.
                try_acquire, settle, start_of = self.try_acquire, self._settle, self._start
                timed = self.needs_duration

                @functools.wraps(fn)
                async def fast_async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    try:
                        permit = try_acquire()
                    except BreakerOpen as err:
                        fallback = self.fallback
                        if fallback is None:
                            raise
                        self._record_fallback()  # served degraded: counted in `fallbacks`
                        served = fallback(err)
                        if _is_awaitable(served):
                            served = await served
                        return served
                    start = start_of() if timed else None
                    try:
                        result = fn(*args, **kwargs)
                        if type(result) is CoroutineType or _is_awaitable(result):
                            result = await result
                    except BaseException as exc:
                        settle(permit, exc, start)
                        raise
                    if timed:
                        settle(permit, None, start)
                    else:
                        permit.success()  # what `_settle` records for a success with no duration
                    return result

                return fast_async_wrapper  # type: ignore[return-value]

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await call_async(fn, *args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        # One native object: calling it is one FFI call (acquire, call, classify, record).
        wrapper = _native.Guarded(self, fn)
        functools.update_wrapper(wrapper, fn)
        return wrapper  # type: ignore[return-value]

    # -- async call --------------------------------------------------------------------

    async def call_async(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Awaits ``fn(*args, **kwargs)`` under the breaker (``fn`` may also be sync)."""
        if not callable(fn):  # before a permit is taken: not the dependency's failure
            raise InvalidArgument(f"invalid argument: fn = <{type(fn).__name__}>: expected a callable")
        try:
            permit = self.try_acquire()
        except BreakerOpen as err:
            fallback = self.fallback
            if fallback is None:
                raise
            self._record_fallback()  # served degraded: counted in `fallbacks`
            result = fallback(err)
            if _is_awaitable(result):
                result = await result
            return result
        start = self._start()
        scope = _open_limit(self, permit)
        try:
            result = fn(*args, **kwargs)
            if _is_awaitable(result):
                result = await result
        except BaseException as exc:
            _settle_after(self, permit, start, scope, exc)
            raise
        _settle_after(self, permit, start, scope, None)
        return result

    # -- context managers --------------------------------------------------------------
    # `with breaker:` is native (__enter__ / __exit__ of the base class): it acquires a
    # permit (or raises BreakerOpen; no fallback), returns it, and on exit records the
    # outcome from the exception as a call would. The permits of open blocks live in a
    # context variable, so threads and asyncio tasks never see each other's.

    async def __aenter__(self) -> _native.Permit:
        permit, scope = self._enter_async()
        if scope is not None:
            try:
                _arm(scope)
            except BaseException as exc:
                permit.cancel()
                try:
                    self._exit_async(exc, False, False)
                except Timeout:
                    pass
                raise
        return permit

    async def __aexit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        scope = self._block_scope()
        fired, outside = _disarm(scope) if scope is not None else (False, False)
        self._exit_async(exc, fired, outside)
