"""seawall: circuit breakers and deadlines with one Rust core for Rust, C, Python and Node.

    >>> import seawall
    >>> breaker = seawall.CircuitBreaker(name="inventory", consecutive_failures=3, open_duration=30.0)
    >>> @breaker
    ... def stock(item): ...
    >>> @seawall.timeout(2.0)
    ... async def fetch(url): ...

Durations are float seconds. Time comes from a clock: :class:`SystemClock` by default,
:class:`ManualClock` in tests (``clock=seawall.ManualClock()``, then ``clock.advance(s)``).
"""

from ._native import (
    CancelGuard,
    CancelToken,
    Deadline,
    ManualClock,
    Permit,
    Scope,
    StateChange,
    SystemClock,
    __version__,
    check_deadline,
    current_deadline,
    current_token,
    format_grpc_timeout,
    parse_grpc_timeout,
)
from ._errors import BreakerOpen, ConfigError, InvalidArgument, PermitConsumed, SeawallError, Timeout
from ._breaker import CircuitBreaker
from ._timeout import TimeLimit, deadline, timeout
from ._native import Begin, Lease, MemoryStore, Record, RedisStore, WaitPoll, Waiter
from ._errors import (
    IdempotencyInProgress,
    IdempotencyMismatch,
    LeaseLost,
    OutcomeUnknown,
    ReplayedError,
    StoreUnavailable,
)
from ._idempotency import IdempotencyCache, JsonSerializer, RunContext, canonical_json, current_run, fingerprint
from ._events import log_event
from ._registry import Registry

# What a panic inside seawall (a bug) raises: pyo3's ``PanicException``, a
# ``BaseException`` so that ``except Exception`` does not hide it. The process goes on.
from ._native import PanicException  # noqa: E402

__all__ = [
    "IdempotencyCache",
    "MemoryStore",
    "RedisStore",
    "Lease",
    "Record",
    "Waiter",
    "WaitPoll",
    "Begin",
    "RunContext",
    "current_run",
    "JsonSerializer",
    "fingerprint",
    "canonical_json",
    "IdempotencyInProgress",
    "IdempotencyMismatch",
    "StoreUnavailable",
    "LeaseLost",
    "OutcomeUnknown",
    "ReplayedError",
    "Registry",
    "log_event",
    "__version__",
    "CircuitBreaker",
    "Permit",
    "StateChange",
    "ManualClock",
    "SystemClock",
    "SeawallError",
    "PanicException",
    "ConfigError",
    "BreakerOpen",
    "PermitConsumed",
    "Timeout",
    "InvalidArgument",
    "timeout",
    "deadline",
    "TimeLimit",
    "Scope",
    "Deadline",
    "CancelToken",
    "CancelGuard",
    "current_deadline",
    "current_token",
    "check_deadline",
    "parse_grpc_timeout",
    "format_grpc_timeout",
]
