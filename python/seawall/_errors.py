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
