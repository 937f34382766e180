"""Events of seawall's primitives: callbacks and structured ``logging`` records.

Every event is a plain dict with a ``type`` and the primitive's name:

- breakers (``CircuitBreaker.on_event``, ``Registry.on_event``): ``state_change`` (``from``,
  ``to``, ``reason``), ``rejected`` (``state``, ``retry_after``), ``timeout`` (``took``),
  ``fallback``; each with ``breaker`` and ``at`` (seconds on the breaker's clock);
- idempotency caches (``IdempotencyCache.on_event``, ``Registry.on_event``): ``replay``,
  ``mismatch``, ``in_progress`` (``retry_after``, ``waited``), ``takeover`` and
  ``lease_lost`` (``token``); each with ``cache``, ``key`` and ``at``.

:func:`log_event` writes one to the ``seawall`` logger as a structured record: the message
reads well, and the fields are on the record (``extra``) as ``seawall_event`` (the type),
``breaker`` / ``cache``, ``from_state``, ``to_state``, ``reason``, ``state``,
``retry_after``, ``took``, ``key``, ``waited``, ``token`` and ``at``. The primitives of a
:class:`seawall.Registry` log every event this way; pass ``seawall.log_event`` to
``on_event`` to log a standalone one.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Mapping

from . import _native
from ._errors import InvalidArgument

__all__ = ["log_event", "logger"]

logger = logging.getLogger("seawall")
# A library's logger: records reach the application's handlers (or none), never Python's
# last-resort stderr handler.
logger.addHandler(logging.NullHandler())

# Levels: what an operator should see by default (WARNING) is what needs attention.
_LEVELS = {
    "rejected": logging.DEBUG,
    "replay": logging.DEBUG,
    "fallback": logging.INFO,
    "in_progress": logging.INFO,
    "takeover": logging.WARNING,
    "timeout": logging.WARNING,
    "mismatch": logging.WARNING,
    "lease_lost": logging.WARNING,
}

# Event keys renamed on the log record (``from`` is a keyword; ``to`` alone is vague).
_RENAMED = {"type": "seawall_event", "from": "from_state", "to": "to_state"}


def level_of(event: Mapping[str, Any]) -> int:
    """The logging level of an event."""
    kind = event.get("type")
    if kind == "state_change":
        return logging.WARNING if event.get("to") in ("open", "forced_open") else logging.INFO
    return _LEVELS.get(kind, logging.INFO)  # type: ignore[arg-type]


def _message(event: Mapping[str, Any]) -> str:
    kind = event.get("type")
    if "breaker" in event:
        who = f"breaker {event['breaker']!r}"
        if kind == "state_change":
            return f"{who}: {event['from']} -> {event['to']} ({event['reason']})"
        if kind == "rejected":
            return f"{who}: call rejected ({event['state']}, retry after {event['retry_after']:g} s)"
        if kind == "timeout":
            return f"{who}: call timed out after {event['took']:g} s"
        if kind == "fallback":
            return f"{who}: rejected call answered by the fallback (degraded)"
    else:
        who = f"idempotency cache {event.get('cache', '')!r}, key {event.get('key')!r}"
        if kind == "replay":
            return f"{who}: replayed the stored result"
        if kind == "mismatch":
            return f"{who}: refused, the key was used with another payload"
        if kind == "in_progress":
            return f"{who}: refused, still in progress (retry after {event.get('retry_after', 0):g} s)"
        if kind == "takeover":
            return f"{who}: took over from an owner that failed or whose lease expired"
        if kind == "lease_lost":
            return f"{who}: the run's lease was lost (token {event.get('token')}); its result was not stored"
    return f"{who}: {kind}"


def log_event(event: Mapping[str, Any]) -> None:
    """Writes ``event`` to the ``seawall`` logger as a structured record (see the module
    docs); a no-op when that level is disabled. Usable as a listener:
    ``breaker.on_event(seawall.log_event)``."""
    level = level_of(event)
    if not logger.isEnabledFor(level):
        return
    extra: Dict[str, Any] = {_RENAMED.get(k, k): v for k, v in event.items()}
    logger.log(level, _message(event), extra=extra)


def call_listeners(listeners: Mapping[int, Callable[[Dict[str, Any]], Any]], event: Dict[str, Any]) -> None:
    """Calls every listener with ``event``; one that raises is reported through
    ``sys.unraisablehook`` and never reaches the primitive."""
    for cb in tuple(listeners.values()):
        try:
            cb(event)
        except Exception as exc:  # noqa: BLE001 - contained by design
            _native._report_unraisable(exc, cb)


def check_listener_id(listener_id: Any) -> None:
    """``remove_listener``'s argument: the int ``on_event`` returned (a misspelt call such
    as ``remove_listener(callback)`` is refused, like the breaker's, not answered False)."""
    if not isinstance(listener_id, int) or isinstance(listener_id, bool):
        raise InvalidArgument(
            f"invalid argument: listener_id = <{type(listener_id).__name__}>: "
            "expected the int that on_state_change or on_event returned"
        )
