"""The seawall exception classes.

Every error seawall raises is a :class:`SeawallError` with a stable ``code`` (the same
string in every language: ``"SEAWALL_CONFIG"``, ``"SEAWALL_BREAKER_OPEN"``, ...). Where a
builtin exception says the same thing, the class inherits from it too, so existing
``except ValueError`` / ``except TimeoutError`` handlers keep working.

This module is plain Python with no import of the native module; the native code maps
each core error code to one of these classes.
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = [
    "SeawallError",
    "ConfigError",
    "BreakerOpen",
    "PermitConsumed",
    "Timeout",
    "InvalidArgument",
    "IdempotencyInProgress",
    "IdempotencyMismatch",
    "StoreUnavailable",
    "LeaseLost",
    "OutcomeUnknown",
    "ReplayedError",
]


class SeawallError(Exception):
    """Base class of every seawall error. ``code`` is the stable error code."""

    __module__ = "seawall"
    code: str = "SEAWALL_INTERNAL"

    def __init__(self, message: str = "", *, code: Optional[str] = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    def __reduce__(self) -> Any:
        # Picklable (e.g. raised in a multiprocessing worker): the attributes travel as
        # state; a breaker object does not, its name does.
        state = dict(self.__dict__)
        if "breaker" in state and not isinstance(state["breaker"], (str, type(None))):
            state["breaker"] = state.get("breaker_name", "")
        return (type(self), self.args[:1], state)

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigError(SeawallError, ValueError):
    """A configuration value was refused when the breaker was built.

    ``field`` is the option as you spelled it (``"open_duration"``), ``value`` the refused
    value as text in your units (``"-1s"``, ``"0"``, ``"<list>"`` for a wrong type),
    ``reason`` why it was refused.
    """

    __module__ = "seawall"

    code = "SEAWALL_CONFIG"

    def __init__(
        self,
        message: str = "",
        *,
        field: str = "",
        value: str = "",
        reason: str = "",
        type_mismatch: bool = False,
        code: Optional[str] = None,
    ) -> None:
        super().__init__(message, code=code)
        self.field = field
        self.value = value
        self.reason = reason
        self.type_mismatch = type_mismatch


class BreakerOpen(SeawallError):
    """The breaker refused the call; the guarded function did not run.

    ``retry_after`` is the number of seconds until probes are admitted (``0.0`` when the
    half-open breaker is saturated, ``math.inf`` when it was forced open). ``breaker`` is
    the :class:`~seawall.CircuitBreaker` that refused, ``breaker_name`` its name and
    ``state`` the state that refused (``"open"``, ``"half_open"``, ``"forced_open"``).
    """

    __module__ = "seawall"

    code = "SEAWALL_BREAKER_OPEN"

    # The native code builds rejections without calling this (errors.rs, `breaker_open`: it
    # sets the same attributes in the same order); change both together.
    def __init__(
        self,
        message: str = "",
        *,
        breaker: Any = None,
        breaker_name: str = "",
        state: str = "open",
        retry_after: float = 0.0,
        code: Optional[str] = None,
    ) -> None:
        super().__init__(message, code=code)
        self.breaker = breaker
        self.breaker_name = breaker_name
        self.state = state
        self.retry_after = retry_after


class PermitConsumed(SeawallError, RuntimeError):
    """A second outcome was recorded on one permit (or one after ``cancel()``)."""

    __module__ = "seawall"

    code = "SEAWALL_PERMIT_CONSUMED"


class Timeout(SeawallError, TimeoutError):
    """A deadline passed before the work finished. Also a builtin ``TimeoutError``."""

    __module__ = "seawall"

    code = "SEAWALL_TIMEOUT"


class InvalidArgument(SeawallError, ValueError):
    """An argument was malformed (a negative duration, a callback that is not callable)."""

    __module__ = "seawall"

    code = "SEAWALL_INVALID_ARGUMENT"


class IdempotencyInProgress(SeawallError):
    """Another call holds the idempotency key's lease (HTTP 409): refused at once
    (``on_duplicate="reject"``) or still held when the wait ended (``wait_timeout``).

    ``key`` is the key, ``retry_after`` the seconds until the owner's lease expires (when a
    retry could take over), ``waited`` how long this call waited (``0.0`` when refused at once).
    """

    __module__ = "seawall"

    code = "SEAWALL_IDEMPOTENCY_IN_PROGRESS"

    def __init__(
        self, message: str = "", *, key: str = "", retry_after: float = 0.0, waited: float = 0.0, code: Optional[str] = None
    ) -> None:
        super().__init__(message, code=code)
        self.key = key
        self.retry_after = retry_after
        self.waited = waited


class IdempotencyMismatch(SeawallError):
    """The idempotency key was already used with another request payload (its fingerprint
    differs): a client bug, not a retry (HTTP 422). ``key`` is the key."""

    __module__ = "seawall"

    code = "SEAWALL_IDEMPOTENCY_MISMATCH"

    def __init__(self, message: str = "", *, key: str = "", code: Optional[str] = None) -> None:
        super().__init__(message, code=code)
        self.key = key


class StoreUnavailable(SeawallError):
    """The idempotency store could not be reached (Redis down or too slow) or could not take
    the entry (a memory store full of runs in progress). The operation did not run, unless
    ``on_store_error="run"`` was configured."""

    __module__ = "seawall"

    code = "SEAWALL_STORE_UNAVAILABLE"


class LeaseLost(SeawallError):
    """A run's lease no longer holds its key (it expired, another owner took over, or it was
    already completed or released): its result was not stored and cannot overwrite the new
    owner's. ``key``, ``token`` (the stale lease's fencing token) and ``reason``."""

    __module__ = "seawall"

    code = "SEAWALL_LEASE_LOST"

    def __init__(
        self, message: str = "", *, key: str = "", token: int = 0, reason: str = "", code: Optional[str] = None
    ) -> None:
        super().__init__(message, code=code)
        self.key = key
        self.token = token
        self.reason = reason


class OutcomeUnknown(Exception):
    """Raise it from a function run by :meth:`seawall.IdempotencyCache.run` to say "the
    outcome is unknown": it failed after side effects that may have happened (a payment
    request sent, no answer). The key's claim is then kept until its lease expires (the
    duplicates wait), and one of them runs the function afterwards. The exception
    propagates to the caller as raised (chain the original with ``raise ... from err``).

    :meth:`seawall.RunContext.abandon` (``seawall.current_run().abandon()``) does the same
    for whatever the function raises next.
    """

    __module__ = "seawall"


class ReplayedError(Exception):
    """An error stored by an idempotency cache with ``cache_errors=True`` and raised again for
    a duplicate, when its type is not a builtin exception (builtins such as ``ValueError``
    come back as themselves). ``type``, ``message`` and ``code`` are the stored fields
    (``code`` is ``None`` when the original had none); the same form Node writes."""

    __module__ = "seawall"

    def __init__(self, message: str = "", *, type: str = "Error", code: Any = None) -> None:
        super().__init__(message)
        self.type = type
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type
