"""seawall: circuit breakers with one Rust core for Rust, C, Python and Node.

    >>> import seawall
    >>> breaker = seawall.CircuitBreaker(name="inventory", consecutive_failures=3, open_duration=30.0)
    >>> @breaker
    ... def stock(item): ...

Durations are float seconds. Time comes from a clock: :class:`SystemClock` by default,
:class:`ManualClock` in tests (``clock=seawall.ManualClock()``, then ``clock.advance(s)``).
"""

from ._native import ManualClock, Permit, StateChange, SystemClock, __version__
from ._errors import BreakerOpen, ConfigError, InvalidArgument, PermitConsumed, SeawallError, Timeout
from ._breaker import CircuitBreaker

__all__ = [
    "__version__",
    "CircuitBreaker",
    "Permit",
    "StateChange",
    "ManualClock",
    "SystemClock",
    "SeawallError",
    "ConfigError",
    "BreakerOpen",
    "PermitConsumed",
    "Timeout",
    "InvalidArgument",
]
