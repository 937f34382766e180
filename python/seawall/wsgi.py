"""WSGI (PEP 3333) Idempotency-Key middleware for Flask-style apps (docs/http.md)::

    app.wsgi_app = seawall.wsgi.IdempotencyMiddleware(app.wsgi_app, cache=seawall.IdempotencyCache())

Same contract, store keys, fingerprints and stored-response records as
:class:`seawall.asgi.IdempotencyMiddleware` and the Node middleware: they replay each
other's responses. A duplicate in progress blocks its worker thread while it waits (up to
the cache's ``wait_timeout``), with the GIL released.
"""

from __future__ import annotations

import io
from typing import Any, Callable, Iterable, List, Optional, Tuple
from urllib.parse import quote

from . import _http
from ._errors import IdempotencyInProgress, InvalidArgument, LeaseLost, SeawallError, StoreUnavailable

__all__ = ["IdempotencyMiddleware"]

_REASONS = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 301: "Moved Permanently", 302: "Found",
    303: "See Other", 304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 409: "Conflict", 410: "Gone", 412: "Precondition Failed", 413: "Content Too Large",
    415: "Unsupported Media Type", 422: "Unprocessable Content", 500: "Internal Server Error",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}


def _status_line(status: int) -> str:
    return f"{status} {_REASONS.get(status, 'Status')}"


def _problem(start_response: Callable[..., Any], slug: str, detail: str, method: str, extra: Optional[List[Tuple[bytes, bytes]]] = None) -> List[bytes]:
    status, headers, body = _http.problem_headers(slug, detail, extra)
    start_response(_status_line(status), [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers])
    return [b"" if method == "HEAD" else body]


def _env_header(environ: dict, name: str) -> Optional[bytes]:
    if name == "content-type":
        v = environ.get("CONTENT_TYPE")
    elif name == "content-length":
        v = environ.get("CONTENT_LENGTH")
    else:
        v = environ.get("HTTP_" + name.upper().replace("-", "_"))
    return None if v is None else v.encode("latin-1")


def _path(environ: dict) -> bytes:
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        p = raw.encode("latin-1")
        q = p.find(b"?")
        if q != -1:
            p = p[:q]
        return _http.strip_absolute(p or b"/")
    s = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    return quote(s.encode("latin-1")).encode("ascii") or b"/"


class IdempotencyMiddleware:
    """The WSGI variant of :class:`seawall.asgi.IdempotencyMiddleware` (same options;
    ``identity(environ)`` returns a str or None)."""

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        *,
        cache: Any,
        required: bool = False,
        methods: Any = ("POST", "PATCH"),
        identity: Optional[Callable[[dict], Any]] = None,
        on_duplicate: Optional[str] = None,
        fingerprint_headers: Any = (),
        replay_headers: Any = None,
        should_store: Optional[Callable[[int], bool]] = None,
        max_body_bytes: int = 1048576,
        allow_unquoted_key: bool = False,
        key_prefix: str = "http:",
    ) -> None:
        from .asgi import _check_options

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

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in self.methods:
            return self.app(environ, start_response)
        raw_key = _env_header(environ, "idempotency-key")
        if raw_key is None:
            if self.required:
                return _problem(start_response, "idempotency-key-missing", "this endpoint requires an Idempotency-Key header", method)
            return self.app(environ, start_response)
        key, reason = _http.parse_idempotency_key(raw_key, self.allow_unquoted_key)
        if key is None:
            return _problem(start_response, "idempotency-key-invalid", reason or "", method)
        identity = ""
        if self.identity is not None:
            got = self.identity(environ)
            if got is None:
                got = ""
            if not isinstance(got, str):
                raise TypeError(f"identity(environ) returned <{type(got).__name__}>: expected a str or None")
            identity = got

        length_s = environ.get("CONTENT_LENGTH") or ""
        length = int(length_s) if length_s.isdigit() else 0
        if length > self.max_body_bytes:
            return _problem(
                start_response, "request-too-large",
                f"the request body is {length} bytes; this endpoint accepts at most {self.max_body_bytes}",
                method,  # no Connection: close: PEP 3333 forbids hop-by-hop headers (the server decides)
            )
        stream = environ.get("wsgi.input")
        body = stream.read(length) if (stream is not None and length > 0) else b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))

        path = _path(environ)
        query = environ.get("QUERY_STRING", "").encode("latin-1")
        target = path + b"?" + query if query else path
        headers = [(h, _env_header(environ, h)) for h in self.fingerprint_headers]
        skey = _http.store_key(method, path, identity, key, self.key_prefix)
        fp = _http.fingerprint_bytes(method, target, headers, body)

        cache = self.cache
        unavailable = (b"retry-after", b"1")
        try:
            b = cache._begin(skey, fp)
        except StoreUnavailable as exc:
            return _problem(start_response, "idempotency-store-unavailable", f"the idempotency store is unavailable: {exc}", method, [unavailable])
        if b.kind == "execute":
            outcome: Any = b.lease
        elif b.kind == "replay":
            outcome = b.record
        elif b.kind == "mismatch":
            return _problem(start_response, "idempotency-key-reused", "this Idempotency-Key was already used with a different request (method, target, headers or body)", method)
        else:
            waiter = b.waiter
            if waiter is None or self.on_duplicate == "reject":
                if waiter is not None:
                    waiter.cancel()
                return self._in_progress(start_response, b.retry_after, method)
            try:
                poll = waiter.wait(None)
            except IdempotencyInProgress as exc:
                return self._in_progress(start_response, exc.retry_after, method)
            except StoreUnavailable as exc:
                return _problem(start_response, "idempotency-store-unavailable", f"the idempotency store is unavailable: {exc}", method, [unavailable])
            if poll is None or poll.state not in ("execute", "replay"):
                return self._in_progress(start_response, getattr(poll, "lease_expires_in", None), method)
            outcome = poll.lease if poll.state == "execute" else poll.record
        if type(outcome).__name__ == "Record":
            stored = _http.stored_response(outcome)
            if isinstance(stored, str):
                return _problem(start_response, "stored-response-unreadable", stored, method)
            hs, data = _http.replay_headers_bytes(stored, method)
            start_response(_status_line(stored.status), [(n.decode("latin-1"), v.decode("latin-1")) for n, v in hs])
            return [data]
        return self._execute(environ, start_response, outcome, method)

    def _in_progress(self, start_response: Callable[..., Any], retry_after: Optional[float], method: str) -> List[bytes]:
        secs = _http.retry_after_seconds(retry_after)
        return _problem(
            start_response, "idempotency-key-in-progress",
            f"a request with this Idempotency-Key is still being processed; retry in {secs} s",
            method, [(b"retry-after", str(secs).encode())],
        )

    def _release(self, lease: Any) -> None:
        try:
            self.cache.release(lease)
        except SeawallError:
            pass

    def _execute(self, environ: dict, start_response: Callable[..., Any], lease: Any, method: str) -> Iterable[bytes]:
        captured: dict = {}

        def capture(status: str, headers: List[Tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            captured["status"] = status
            captured["headers"] = list(headers)
            return lambda data: captured.setdefault("written", []).append(data)

        try:
            result = self.app(environ, capture)
            try:
                chunks: List[bytes] = list(captured.pop("written", []))
                size = sum(len(c) for c in chunks)
                too_large = False
                for chunk in result:
                    chunks.extend(captured.pop("written", []))
                    if too_large:
                        continue
                    size += len(chunk)
                    if size > self.max_result_bytes and "status" in captured and self.should_store(int(captured["status"][:3])):
                        too_large = True
                        chunks.clear()
                    else:
                        chunks.append(chunk)
                chunks.extend(captured.pop("written", []))
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except BaseException:
            self._release(lease)
            raise
        if "status" not in captured:
            self._release(lease)
            raise RuntimeError("the WSGI application returned without calling start_response")
        status_line = captured["status"]
        status = int(status_line[:3])
        headers = captured["headers"]
        if not self.should_store(status):
            self._release(lease)
            start_response(status_line, headers)
            return chunks
        if too_large:
            self._release(lease)
            return _problem(start_response, "response-too-large", f"the response is over {self.max_result_bytes} bytes (the cache's max_result_bytes); it was not stored", method)
        data = b"".join(chunks)
        content_type = ""
        for n, v in headers:
            if n.lower() == "content-type":
                content_type = v
                break
        metadata = _http.response_metadata(status, [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers], self.replay_headers)
        try:
            self.cache.complete(lease, data, content_type, metadata)
        except InvalidArgument:
            return _problem(start_response, "response-too-large", f"the response is over {self.max_result_bytes} bytes (the cache's max_result_bytes); it was not stored", method)
        except (LeaseLost, StoreUnavailable):
            pass
        start_response(status_line, headers)
        return [data]
