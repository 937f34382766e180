"""``seawall.timeout`` and ``seawall.deadline``: time limits and the ambient deadline.

The scopes themselves are native (``_native.TimeLimit``, ``_native.Scope``): the deadline,
the context variable that makes it ambient, the lazily made ``CancelToken`` and the rule
that turns a late block into :class:`seawall.Timeout`. This module adds the decorator and
the asyncio part: an ``async with`` scope (and an async function under a time limit)
cancels its task when the deadline passes, through the event loop's own timer on the
system clock (one timer per loop, shared by its scopes: see :class:`_LoopTimer`), or
through the clock's timer on a :class:`seawall.ManualClock` (fired inside ``advance``, from
any thread, and handed to the loop with ``call_soon_threadsafe``).

Cancellation follows asyncio's rules: the scope counts its own ``task.cancel()`` and takes
it back with ``task.uncancel()`` (Python 3.11+), so a cancellation that came from outside
(another task, a ``TaskGroup``, ``asyncio.timeout``) always propagates as
``CancelledError`` and is never turned into a ``Timeout``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import math
import sys
from heapq import heapify, heappop, heappush
from typing import Any, Awaitable, Callable, List, Optional, Tuple, TypeVar, Union, overload

from . import _native
from ._errors import Timeout

__all__ = ["TimeLimit", "timeout", "deadline"]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

_HAS_UNCANCEL = sys.version_info >= (3, 11)

_ENTERED, _FIRED, _DONE = 0, 1, 2


class _Armed:
    """The cancellation of one asyncio scope: the task to cancel and the timer that does."""

    __slots__ = ("task", "loop", "handle", "state", "cancelling")

    def __init__(self, task: "asyncio.Task[Any]", loop: asyncio.AbstractEventLoop) -> None:
        self.task: Optional["asyncio.Task[Any]"] = task
        self.loop = loop
        self.handle: Any = None
        self.state = _ENTERED
        # Cancellation requests already pending when the scope opened (3.11+).
        self.cancelling = task.cancelling() if _HAS_UNCANCEL else 0

    def fire(self) -> None:
        """On the loop's thread, at the deadline: cancels the task (once, while open)."""
        if self.state == _ENTERED and self.task is not None:
            self.state = _FIRED
            self.task.cancel()

    def fire_threadsafe(self) -> None:
        """From the clock's timer (inside ``ManualClock.advance``, on any thread)."""
        if self.state == _ENTERED:
            try:
                self.loop.call_soon_threadsafe(self.fire)
            except RuntimeError:  # the loop is closed: there is nothing left to cancel
                pass


class _LoopTimer:
    """One event-loop timer shared by every armed scope of a loop on the system clock.

    Scopes go into a heap ordered by deadline; the loop's timer is set for the earliest.
    A scope that ends in time is only marked done (no loop call): with one timeout
    used over and over, each new deadline is later than the heap's earliest, so a call
    costs a heap push instead of scheduling and cancelling an event-loop timer handle.
    Done entries are dropped when they reach the top, or all at once when they make up
    more than half of the heap, so the heap stays within twice the open scopes.
    """

    __slots__ = ("loop", "heap", "handle", "when", "done")

    _seq = itertools.count()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.heap: List[Tuple[float, int, _Armed]] = []  # (when, seq, armed)
        self.handle: Optional[asyncio.TimerHandle] = None
        self.when = math.inf
        self.done = 0  # entries in the heap whose scope has ended

    def add(self, when: float, armed: "_Armed") -> None:
        heappush(self.heap, (when, next(self._seq), armed))
        if when < self.when:
            if self.handle is not None:
                self.handle.cancel()
            self.when = when
            self.handle = self.loop.call_at(when, self.run)

    def discard(self) -> None:
        """An entry's scope ended before its deadline."""
        self.done += 1
        if self.done > 64 and 2 * self.done > len(self.heap):
            self.heap = [e for e in self.heap if e[2].state == _ENTERED]
            heapify(self.heap)
            self.done = 0

    def run(self) -> None:
        self.handle = None
        self.when = math.inf
        heap = self.heap
        now = self.loop.time()
        while heap and heap[0][0] <= now:
            armed = heappop(heap)[2]
            if armed.state == _ENTERED:
                armed.fire()
            else:
                self.done -= 1
        while heap and heap[0][2].state != _ENTERED:  # nothing to wake up for
            heappop(heap)
            self.done -= 1
        if heap:
            self.when = heap[0][0]
            self.handle = self.loop.call_at(self.when, self.run)


_ATTR = "_seawall_loop_timer"
_NO_ATTRIBUTES: "set[type]" = set()


def _loop_timer(loop: asyncio.AbstractEventLoop) -> Optional[_LoopTimer]:
    """The shared timer of ``loop``, kept on the loop itself (so it lives and dies with
    it); None for a loop type that takes no attributes (then each scope schedules its own
    event-loop timer)."""
    timer: Optional[_LoopTimer] = getattr(loop, _ATTR, None)
    if timer is None and type(loop) not in _NO_ATTRIBUTES:
        timer = _LoopTimer(loop)
        try:
            setattr(loop, _ATTR, timer)
        except AttributeError:
            _NO_ATTRIBUTES.add(type(loop))
            return None
    return timer


def _arm(scope: _native.Scope) -> None:
    """Cancels the current task when ``scope``'s deadline passes."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError("seawall.timeout: an async scope needs a running asyncio event loop") from None
    task = asyncio.current_task(loop)
    if task is None:
        raise RuntimeError("seawall.timeout: an async scope must run inside an asyncio task")
    armed = _Armed(task, loop)
    scope._armed = armed
    if scope._system:
        # The event loop's own timer (shared by the loop's scopes): exact, and no thread
        # has to wake the loop.
        timer = _loop_timer(loop)
        if timer is not None:
            timer.add(loop.time() + scope._remaining(), armed)
        else:
            armed.handle = loop.call_at(loop.time() + scope._remaining(), armed.fire)
    else:
        armed.handle = scope._schedule(armed.fire_threadsafe)


def _disarm(scope: _native.Scope) -> Tuple[bool, bool]:
    """Unschedules ``scope``'s timer. Returns ``(fired, outside)``: whether the timer
    cancelled the task, and whether a cancellation from outside is pending as well."""
    armed = scope._armed
    if armed is None:
        return False, False
    scope._armed = None
    fired = armed.state == _FIRED
    if armed.handle is not None:
        armed.handle.cancel()
    elif not fired:
        timer = _loop_timer(armed.loop)
        if timer is not None:
            timer.discard()
    armed.state = _DONE
    outside = False
    if fired and _HAS_UNCANCEL:
        outside = armed.task.uncancel() > armed.cancelling
    armed.task = None  # a done entry may wait in the loop timer's heap a little: keep nothing alive
    return fired, outside


def _enter_async(limit: _native.TimeLimit) -> _native.Scope:
    """Opens a scope of ``limit`` in the current task, armed when it raises."""
    scope = limit._enter()
    if scope._raises:
        try:
            _arm(scope)
        except BaseException:
            try:
                limit._exit(scope, None)
            except Timeout:
                pass
            raise
    return scope


def _exit_async(limit: _native.TimeLimit, scope: _native.Scope, exc: Optional[BaseException]) -> None:
    """Closes ``scope`` after its block ended with ``exc``; raises ``Timeout`` when due."""
    fired, outside = _disarm(scope)
    limit._exit(scope, exc, fired, outside)


async def _timed_awaitable(limit: _native.TimeLimit, awaitable: Awaitable[T]) -> T:
    """Awaits ``awaitable`` under ``limit`` (a sync function under a limit returned it)."""
    scope = _enter_async(limit)
    try:
        result = await awaitable
    except BaseException as exc:
        _exit_async(limit, scope, exc)
        raise
    _exit_async(limit, scope, None)
    return result


class TimeLimit(_native.TimeLimit):
    """A time limit (``seawall.timeout(seconds)``) or an ambient deadline
    (``seawall.deadline(seconds)``), usable as decorator and as (async) context manager.

    Each use opens a *scope*: its deadline is ``seconds`` from now, or the enclosing
    scope's deadline when that is earlier, and it is the ambient deadline
    (:func:`seawall.current_deadline`) of the code inside, including functions it calls
    and asyncio tasks it creates. ``with ... as scope`` gives the :class:`seawall.Scope`.

    A ``timeout`` scope raises :class:`seawall.Timeout` (a ``TimeoutError``):

    - ``async with`` and async functions: the task is cancelled at the deadline and the
      ``CancelledError`` becomes ``Timeout``; an outside cancellation stays a
      ``CancelledError``;
    - ``with`` and sync functions (which cannot be pre-empted): when the block returns, or
      raises an ``Exception``, after the deadline (the exception becomes the ``__cause__``),
      or where the code checks (:func:`seawall.check_deadline`); its ``scope.token`` /
      :func:`seawall.current_token` is cancelled on time, for blocking code that registers
      a callback.

    A ``deadline`` scope never raises or cancels: it only sets the ambient deadline.
    """

    __module__ = "seawall"
    __slots__ = ()

    @overload
    def __call__(self, fn: F) -> F: ...
    @overload
    def __call__(self, fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]: ...

    def __call__(self, fn: Any) -> Any:
        """Decorates a sync or async function: each call runs in a new scope."""
        if not callable(fn):
            raise TypeError(f"seawall.timeout decorates a callable, got {type(fn).__name__}")
        if inspect.iscoroutinefunction(fn):
            limit = self

            @functools.wraps(fn)
            async def timed(*args: Any, **kwargs: Any) -> Any:
                scope = _enter_async(limit)
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    _exit_async(limit, scope, exc)
                    raise
                _exit_async(limit, scope, None)
                return result

            return timed
        # One native object: calling it is one FFI call (open the scope, call, close).
        wrapper = _native.TimedFunction(self, fn)
        functools.update_wrapper(wrapper, fn)
        return wrapper

    async def __aenter__(self) -> _native.Scope:
        return _enter_async(self)

    async def __aexit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        scope = self._find()
        if scope is not None:
            _exit_async(self, scope, exc)


def timeout(seconds: float, *, clock: Optional[Union[_native.ManualClock, _native.SystemClock]] = None) -> TimeLimit:
    """A time limit of ``seconds`` (a ``Deadline`` works too) on ``clock`` (default: the
    system clock), as decorator, ``with`` or ``async with``; raises :class:`seawall.Timeout`.
    Negative, NaN and infinite values raise :class:`seawall.InvalidArgument`."""
    return TimeLimit(seconds, clock=clock)


def deadline(
    seconds: Union[float, _native.Deadline], *, clock: Optional[Union[_native.ManualClock, _native.SystemClock]] = None
) -> TimeLimit:
    """Sets the ambient deadline ``seconds`` from now (or the given ``Deadline``, e.g. one
    from an incoming ``grpc-timeout`` header) for the block or function, without raising
    or cancelling anything: callees read it with :func:`seawall.current_deadline`, and
    :func:`seawall.check_deadline` raises once it has passed."""
    return TimeLimit(seconds, clock=clock, raises=False)
