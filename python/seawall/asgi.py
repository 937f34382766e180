"""ASGI helpers: ``/health`` and ``/metrics`` for a :class:`seawall.Registry`.

::

    import seawall, seawall.asgi

    registry = seawall.Registry()
    app = seawall.asgi.observability_app(registry)        # uvicorn module:app, or mount it:
    # Starlette: Mount("/", app=...); FastAPI: app.mount("/ops", seawall.asgi.observability_app(registry))

- ``GET``/``HEAD`` ``/health``: ``await registry.health_async()`` (the due checks run on
  the server's event loop, each bounded by its timeout); 200 for ``ok`` and ``degraded``,
  503 for ``down``; the report as JSON (``{"status", "checks"}``).
- ``GET``/``HEAD`` ``/metrics``: ``registry.prometheus()`` as
  ``text/plain; version=0.0.4; charset=utf-8``.
- Other methods on those paths: 405 (with ``Allow``); other paths: 404, or the ``app``
  passed as ``fallback`` (so it can wrap an application). Responses carry
  ``Cache-Control: no-store``. Lifespan events are acknowledged.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable, Dict, List, MutableMapping, Optional, Tuple

__all__ = ["observability_app", "METRICS_CONTENT_TYPE", "IdempotencyMiddleware", "DeadlineMiddleware"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_JSON = "application/json"


async def _respond(send: Send, status: int, body: bytes, content_type: str, head: bool, extra: Optional[List[Tuple[bytes, bytes]]] = None) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def observability_app(
    registry: Any,
    *,
    health_path: str = "/health",
    metrics_path: str = "/metrics",
    fallback: Optional[ASGIApp] = None,
) -> ASGIApp:
    """An ASGI 3 application serving ``health_path`` and ``metrics_path`` for ``registry``
    (see the module docs). Requests to other paths go to ``fallback`` when given, else 404."""
    if not all(callable(getattr(registry, m, None)) for m in ("health_async", "prometheus")):
        raise _InvalidArgument(f"invalid argument: registry = <{type(registry).__name__}>: expected a seawall.Registry")
    for field, v in (("health_path", health_path), ("metrics_path", metrics_path)):
        if not isinstance(v, str):
            raise _InvalidArgument(f"invalid argument: {field} = {v!r}: expected a str")
    if fallback is not None and not callable(fallback):
        raise _InvalidArgument(f"invalid argument: fallback = <{type(fallback).__name__}>: expected an ASGI app (or None)")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "lifespan":
            if fallback is not None:
                await fallback(scope, receive, send)
            else:
                await _lifespan(receive, send)
            return
        if kind != "http":
            if fallback is not None:
                await fallback(scope, receive, send)
            return
        path = scope.get("path", "")
        if path not in (health_path, metrics_path):
            if fallback is not None:
                await fallback(scope, receive, send)
            else:
                await _respond(send, 404, b"not found\n", "text/plain; charset=utf-8", scope.get("method") == "HEAD")
            return
        method = scope.get("method", "GET")
        if method not in ("GET", "HEAD"):
            await _respond(send, 405, b"method not allowed\n", "text/plain; charset=utf-8", False, [(b"allow", b"GET, HEAD")])
            return
        head = method == "HEAD"
        if path == health_path:
            report: Dict[str, Any] = await registry.health_async()
            status = 503 if report.get("status") == "down" else 200
            await _respond(send, status, json.dumps(report).encode(), _JSON, head)
        else:
            await _respond(send, 200, registry.prometheus().encode(), METRICS_CONTENT_TYPE, head)

    return app


# --- the Idempotency-Key middleware (docs/http.md) -------------------------------------------

import asyncio as _asyncio
import inspect as _inspect
import re as _re
from urllib.parse import quote as _quote

from . import _http
from ._errors import IdempotencyInProgress as _InProgress
from ._errors import InvalidArgument as _InvalidArgument
from ._errors import LeaseLost as _LeaseLost
from ._errors import SeawallError as _SeawallError
from ._errors import StoreUnavailable as _StoreUnavailable
from ._errors import Timeout as _Timeout


async def _problem(send: Send, slug: str, detail: str, method: str, extra: Optional[List[Tuple[bytes, bytes]]] = None) -> None:
    status, headers, body = _http.problem_headers(slug, detail, extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


def _header(scope: Scope, name: bytes) -> Optional[bytes]:
    """Every value of header ``name`` (lowercase), joined with ", ", or None."""
    values = [v for n, v in scope.get("headers", ()) if n.lower() == name]
    return b", ".join(v.strip(b" \t") for v in values) if values else None


def _path_of(scope: Scope) -> bytes:
    raw = scope.get("raw_path")
    if raw is None:
        raw = _quote(scope.get("path", "/")).encode("ascii")
    q = raw.find(b"?")
    if q != -1:
        raw = raw[:q]
    return _http.strip_absolute(raw or b"/")


def _run_maybe_thread(remote: bool, fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
    from ._idempotency import _in_thread

    if remote:
        return _in_thread(fn, *args)

    async def direct() -> Any:
        return fn(*args)

    return direct()


class IdempotencyMiddleware:
    """ASGI middleware implementing the Idempotency-Key contract of docs/http.md over an
    :class:`seawall.IdempotencyCache`::

        app = seawall.asgi.IdempotencyMiddleware(app, cache=seawall.IdempotencyCache())

    ``identity(scope)`` (sync or async) returns the caller's scope (a str, or None).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        cache: Any,
        required: bool = False,
        methods: Any = ("POST", "PATCH"),
        identity: Optional[Callable[[Scope], Any]] = None,
        on_duplicate: Optional[str] = None,
        fingerprint_headers: Any = (),
        replay_headers: Any = None,
        should_store: Optional[Callable[[int], bool]] = None,
        max_body_bytes: int = 1048576,
        allow_unquoted_key: bool = False,
        key_prefix: str = "http:",
    ) -> None:
        _check_options(cache, methods, on_duplicate, fingerprint_headers, max_body_bytes, key_prefix)
        self.app = app
        self.cache = cache
        self.required = bool(required)
        self.methods = frozenset(m.upper() for m in methods)
        self.identity = _http.check_callable("identity", identity)
        self.on_duplicate = on_duplicate
        self.fingerprint_headers = tuple(h.lower() for h in fingerprint_headers)
        self.replay_headers = _http.replay_allow_list(replay_headers)
        self.should_store = _http.check_callable("should_store", should_store) or _http.default_should_store
        self.max_body_bytes = int(max_body_bytes)
        self.allow_unquoted_key = bool(allow_unquoted_key)
        self.key_prefix = key_prefix
        self.max_result_bytes = int(cache.options.get("max_result_bytes", 1048576))
        self.remote = bool(getattr(cache, "remote", False))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("method") not in self.methods:
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        raw_key = _header(scope, b"idempotency-key")
        if raw_key is None:
            if self.required:
                await _problem(send, "idempotency-key-missing", "this endpoint requires an Idempotency-Key header", method)
                return
            await self.app(scope, receive, send)
            return
        key, reason = _http.parse_idempotency_key(raw_key, self.allow_unquoted_key)
        if key is None:
            await _problem(send, "idempotency-key-invalid", reason or "", method)
            return
        identity = ""
        if self.identity is not None:
            got = self.identity(scope)
            if _inspect.isawaitable(got):
                got = await got
            if got is None:
                got = ""
            if not isinstance(got, str):
                raise TypeError(f"identity(scope) returned <{type(got).__name__}>: expected a str or None")
            identity = got

        # The body, bounded.
        announced = _header(scope, b"content-length")
        if announced is not None and announced.isdigit() and int(announced) > self.max_body_bytes:
            await _problem(
                send, "request-too-large",
                f"the request body is {int(announced)} bytes; this endpoint accepts at most {self.max_body_bytes}",
                method, [(b"connection", b"close")],
            )
            return
        chunks: List[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            if message["type"] != "http.request":
                continue
            part = message.get("body", b"")
            size += len(part)
            if size > self.max_body_bytes:
                await _problem(
                    send, "request-too-large",
                    f"the request body is over {self.max_body_bytes} bytes, the most this endpoint accepts",
                    method, [(b"connection", b"close")],
                )
                return
            chunks.append(part)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)

        path = _path_of(scope)
        query = scope.get("query_string", b"") or b""
        target = path + b"?" + query if query else path
        headers = [(h, _header(scope, h.encode("latin-1"))) for h in self.fingerprint_headers]
        skey = _http.store_key(method, path, identity, key, self.key_prefix)
        fp = _http.fingerprint_bytes(method, target, headers, body)

        cache = self.cache
        try:
            b = await _run_maybe_thread(self.remote, cache._begin, skey, fp)
        except _StoreUnavailable as exc:
            await _problem(send, "idempotency-store-unavailable", f"the idempotency store is unavailable: {exc}", method, [(b"retry-after", b"1")])
            return
        outcome: Any
        if b.kind == "execute":
            outcome = b.lease
        elif b.kind == "replay":
            outcome = b.record
        elif b.kind == "mismatch":
            await _problem(send, "idempotency-key-reused", "this Idempotency-Key was already used with a different request (method, target, headers or body)", method)
            return
        else:  # in_progress
            waiter = b.waiter
            if waiter is None or self.on_duplicate == "reject":
                if waiter is not None:
                    waiter.cancel()
                await self._in_progress(send, b.retry_after, method)
                return
            try:
                outcome = await self._wait(waiter, receive)
            except _InProgress as exc:
                await self._in_progress(send, exc.retry_after, method)
                return
            except _StoreUnavailable as exc:
                await _problem(send, "idempotency-store-unavailable", f"the idempotency store is unavailable: {exc}", method, [(b"retry-after", b"1")])
                return
            if outcome is None:  # the client went away
                return
        if type(outcome).__name__ == "Record":
            await self._replay(send, outcome, method)
            return
        await self._execute(scope, receive, send, outcome, body, method)

    async def _in_progress(self, send: Send, retry_after: Optional[float], method: str) -> None:
        secs = _http.retry_after_seconds(retry_after)
        await _problem(
            send, "idempotency-key-in-progress",
            f"a request with this Idempotency-Key is still being processed; retry in {secs} s",
            method, [(b"retry-after", str(secs).encode())],
        )

    async def _wait(self, waiter: Any, receive: Receive) -> Any:
        """The owner's outcome (a Lease or a Record), or None when the client disconnected."""
        wait = _asyncio.ensure_future(self.cache._wait(waiter))
        watch = _asyncio.ensure_future(receive())
        try:
            done, _ = await _asyncio.wait((wait, watch), return_when=_asyncio.FIRST_COMPLETED)
        except BaseException:
            wait.cancel()
            watch.cancel()
            raise
        if wait in done:
            watch.cancel()
            return wait.result()
        if watch.result().get("type") == "http.disconnect":
            wait.cancel()
            try:
                await wait
            except BaseException:
                pass
            return None
        return await wait

    async def _replay(self, send: Send, record: Any, method: str) -> None:
        stored = _http.stored_response(record)
        if isinstance(stored, str):
            await _problem(send, "stored-response-unreadable", stored, method)
            return
        headers, body = _http.replay_headers_bytes(stored, method)
        await send({"type": "http.response.start", "status": stored.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _release(self, lease: Any) -> None:
        try:
            await _run_maybe_thread(self.remote, self.cache.release, lease)
        except _SeawallError:
            pass

    async def _execute(self, scope: Scope, receive: Receive, send: Send, lease: Any, body: bytes, method: str) -> None:
        replayed = False

        async def replay_receive() -> MutableMapping[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        state = {"started": False, "storing": False, "finished": False}
        start: Dict[str, Any] = {}
        chunks: List[bytes] = []
        size = 0
        too_large = False

        async def capture(message: MutableMapping[str, Any]) -> None:
            nonlocal size, too_large
            kind = message["type"]
            if kind == "http.response.start":
                state["started"] = True
                start.update(message)
                if self.should_store(int(message["status"])):
                    state["storing"] = True
                    return
                await send(message)
                return
            if kind != "http.response.body" or state["finished"]:
                await send(message)
                return
            more = bool(message.get("more_body", False))
            if not state["storing"]:
                await send(message)
                if not more:
                    state["finished"] = True
                    await self._release(lease)
                return
            part = message.get("body", b"")
            if not too_large:
                size += len(part)
                if size > self.max_result_bytes:
                    too_large = True
                    chunks.clear()
                else:
                    chunks.append(part)
            if more:
                return
            state["finished"] = True
            await self._finish(send, lease, start, b"".join(chunks), too_large, method)

        try:
            await self.app(scope, replay_receive, capture)
        except BaseException:
            if not state["finished"]:
                state["finished"] = True
                await self._release(lease)
            raise
        if not state["finished"]:
            # The app returned without completing a response: nothing to store.
            state["finished"] = True
            await self._release(lease)

    async def _finish(self, send: Send, lease: Any, start: Dict[str, Any], data: bytes, too_large: bool, method: str) -> None:
        status = int(start["status"])
        headers = list(start.get("headers") or [])
        if too_large:
            await self._release(lease)
            await _problem(send, "response-too-large", f"the response is over {self.max_result_bytes} bytes (the cache's max_result_bytes); it was not stored", method)
            return
        content_type = ""
        for n, v in headers:
            if n.lower() == b"content-type":
                content_type = bytes(v).decode("latin-1")
                break
        metadata = _http.response_metadata(status, headers, self.replay_headers)
        try:
            await _run_maybe_thread(self.remote, self.cache.complete, lease, data, content_type, metadata)
        except _InvalidArgument:
            await _problem(send, "response-too-large", f"the response is over {self.max_result_bytes} bytes (the cache's max_result_bytes); it was not stored", method)
            return
        except (_LeaseLost, _StoreUnavailable):
            pass  # the response is still this request's answer; only its replay is lost
        await send({"type": "http.response.start", "status": status, "headers": headers, **{k: v for k, v in start.items() if k not in ("type", "status", "headers")}})
        await send({"type": "http.response.body", "body": data})


def _check_options(cache: Any, methods: Any, on_duplicate: Any, fingerprint_headers: Any, max_body_bytes: Any, key_prefix: Any) -> None:
    if not hasattr(cache, "_begin") or not hasattr(cache, "complete"):
        raise _InvalidArgument(f"invalid argument: cache = <{type(cache).__name__}>: expected a seawall.IdempotencyCache")
    if isinstance(methods, (str, bytes)) or not all(isinstance(m, str) and _http.TOKEN.match(m) for m in methods):
        raise _InvalidArgument(f"invalid argument: methods = {methods!r}: expected a list of HTTP methods")
    if on_duplicate not in (None, "wait", "reject"):
        raise _InvalidArgument(f"invalid argument: on_duplicate = {on_duplicate!r}: expected \"wait\" or \"reject\" (or None: the cache's)")
    if isinstance(fingerprint_headers, (str, bytes)) or not all(isinstance(h, str) and _http.TOKEN.match(h) for h in fingerprint_headers):
        raise _InvalidArgument(f"invalid argument: fingerprint_headers = {fingerprint_headers!r}: expected a list of header names")
    if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) or max_body_bytes < 0:
        raise _InvalidArgument(f"invalid argument: max_body_bytes = {max_body_bytes!r}: expected a whole number of bytes >= 0")
    if not isinstance(key_prefix, str):
        raise _InvalidArgument(f"invalid argument: key_prefix = {key_prefix!r}: expected a str")


# --- the deadline middleware -------------------------------------------------------------------

_MS = _re.compile(rb"^[0-9]{1,15}$")


class DeadlineMiddleware:
    """ASGI middleware: reads the client's budget (``grpc-timeout``, and the milliseconds
    header ``timeout_header`` when configured; the earlier wins; ``default_timeout`` without
    either; capped at ``max_timeout``; seconds), runs the app under that ambient deadline
    (``seawall.timeout``: :func:`seawall.current_deadline` inside) and answers 504
    ``deadline-exceeded`` when it passes before the response started (after that, the
    connection is closed). A malformed value is a 400 ``invalid-timeout``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        grpc_timeout: bool = True,
        timeout_header: Optional[str] = None,
        default_timeout: Optional[float] = None,
        max_timeout: Optional[float] = None,
        clock: Any = None,
    ) -> None:
        if timeout_header is not None and (not isinstance(timeout_header, str) or not _http.TOKEN.match(timeout_header)):
            raise _InvalidArgument(f"invalid argument: timeout_header = {timeout_header!r}: expected a header name (or None)")
        for field, v in (("default_timeout", default_timeout), ("max_timeout", max_timeout)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0 or v == float("inf")):
                raise _InvalidArgument(f"invalid argument: {field} = {v!r}: expected seconds >= 0 (or None)")
        from ._native import ManualClock, SystemClock

        if clock is not None and not isinstance(clock, (ManualClock, SystemClock)):
            raise _InvalidArgument(
                f"invalid argument: clock = <{type(clock).__name__}>: expected seawall.ManualClock or seawall.SystemClock"
            )
        self.app = app
        self.grpc_timeout = bool(grpc_timeout)
        self.timeout_header = timeout_header.lower().encode() if timeout_header else None
        self.default_timeout = default_timeout
        self.max_timeout = max_timeout
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        from . import parse_grpc_timeout, timeout

        method = scope.get("method", "GET")
        secs: Optional[float] = None
        if self.grpc_timeout:
            h = _header(scope, b"grpc-timeout")
            if h is not None:
                try:
                    secs = parse_grpc_timeout(h.decode("latin-1"))
                except (_SeawallError, ValueError) as exc:
                    await _problem(send, "invalid-timeout", f"grpc-timeout: {exc}", method)
                    return
        if self.timeout_header is not None:
            h = _header(scope, self.timeout_header)
            if h is not None:
                name = self.timeout_header.decode()
                if not _MS.match(h):
                    await _problem(send, "invalid-timeout", f"{name}: expected a whole number of milliseconds (1 to 15 digits), got {json.dumps(h[:40].decode('latin-1'))}", method)
                    return
                v = int(h) / 1000.0
                secs = v if secs is None else min(secs, v)
        if secs is None:
            secs = self.default_timeout
        if secs is None:
            await self.app(scope, receive, send)
            return
        if self.max_timeout is not None and secs > self.max_timeout:
            secs = self.max_timeout
        if secs <= 0:
            await _problem(send, "deadline-exceeded", "the request's deadline had already passed when it arrived", method)
            return
        started = False
        expired = False

        async def guarded(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            if expired:
                return  # the route's late writes are ignored
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            async with timeout(secs, clock=self.clock):
                await self.app(scope, receive, guarded)
        except _Timeout:
            expired = True
            if not started:
                await _problem(send, "deadline-exceeded", f"the request's deadline ({secs:g} s) passed before the response was ready", method)
                return
            raise
