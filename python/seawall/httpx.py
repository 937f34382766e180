"""Hand the ambient deadline on to outgoing ``httpx`` requests (docs/http.md, "Outgoing").

Under ``seawall.timeout(...)`` / ``seawall.deadline(...)`` (or the ASGI
``DeadlineMiddleware``), every request made through a client with these hooks carries the
remaining budget in ``grpc-timeout`` (formatted by the core: rounded up, never ``0`` while
time is left), and its connect / read / write / pool timeouts are capped by what remains.
Once the deadline has passed the request is not sent: ``seawall.Timeout`` is raised. A
``grpc-timeout`` header the caller set is kept. Without an ambient deadline nothing changes.

Example::

    import httpx, seawall
    from seawall.httpx import deadline_hooks

    client = httpx.Client(event_hooks=deadline_hooks())          # or AsyncClient(event_hooks=async_deadline_hooks())
    with seawall.timeout(1.5):
        client.get("http://inventory/stock")                       # grpc-timeout: what is left
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from ._errors import Timeout
from ._native import current_deadline

__all__ = ["deadline_hooks", "async_deadline_hooks", "apply_deadline", "MS_HEADER"]

#: Header for the plain-milliseconds budget, sent when ``ms_header=True``.
MS_HEADER = "x-timeout-ms"


def apply_deadline(request: Any, *, ms_header: Optional[str] = None) -> None:
    """Puts the ambient deadline on ``request`` (an ``httpx.Request``); raises ``Timeout``
    when it has passed. Does nothing outside a deadline."""
    d = current_deadline()
    if d is None:
        return
    left = d.remaining()
    if left <= 0:
        raise Timeout("the deadline passed before the request was sent")
    if "grpc-timeout" not in request.headers:
        request.headers["grpc-timeout"] = d.to_grpc_timeout()
    if ms_header and ms_header not in request.headers:
        request.headers[ms_header] = str(max(1, int(-(-left * 1000 // 1))))
    timeout = dict(request.extensions.get("timeout") or {})
    for part in ("connect", "read", "write", "pool"):
        current = timeout.get(part)
        timeout[part] = left if current is None else min(current, left)
    request.extensions["timeout"] = timeout


def deadline_hooks(*, ms_header: Optional[str] = None) -> Dict[str, List[Callable[..., Any]]]:
    """``event_hooks`` for ``httpx.Client``."""
    return {"request": [lambda request: apply_deadline(request, ms_header=ms_header)]}


def async_deadline_hooks(*, ms_header: Optional[str] = None) -> Dict[str, List[Callable[..., Any]]]:
    """``event_hooks`` for ``httpx.AsyncClient``."""

    async def hook(request: Any) -> None:
        apply_deadline(request, ms_header=ms_header)

    return {"request": [hook]}
