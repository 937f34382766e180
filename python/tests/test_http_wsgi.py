"""seawall.wsgi.IdempotencyMiddleware on a real wsgiref server (one thread per request) on
127.0.0.1, driven by a real httpx client; plus a WSGI service and an ASGI service sharing
one cache replaying each other's responses."""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Dict, List

import httpx

import seawall
import seawall.asgi
import seawall.wsgi
from seawall import _http
from http_servers import serve_asgi, serve_wsgi
from test_http_asgi import key, make_app, problem


def wsgi_app(calls: Dict[str, int], gate: "threading.Event | None" = None):  # type: ignore[no-untyped-def]
    def app(environ, start_response):  # type: ignore[no-untyped-def]
        path = environ["PATH_INFO"]
        n = calls[path] = calls.get(path, 0) + 1
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        if gate is not None:
            gate.wait(10)
        if path == "/orders":
            data = json.dumps({"id": n, "body": body.decode()}, separators=(",", ":")).encode()
            start_response("201 Created", [("Content-Type", "application/json"), ("Location", f"/orders/{n}"), ("ETag", '"v1"'),
                                           ("X-Request-Id", f"req-{n}"), ("Content-Length", str(len(data)))])
            return [data]
        if path == "/fail":
            start_response("500 Internal Server Error" if n == 1 else "200 OK", [("Content-Type", "text/plain")])
            return [b"n=%d" % n]
        if path == "/big":
            start_response("200 OK", [("Content-Type", "application/octet-stream")])
            return [b"x" * 1000] * 4
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"nope %d" % n]

    return app


def test_wsgi_status_paths() -> None:
    calls: Dict[str, int] = {}
    cache = seawall.IdempotencyCache(max_result_bytes=2000)
    app = seawall.wsgi.IdempotencyMiddleware(wsgi_app(calls), cache=cache, max_body_bytes=100)
    with serve_wsgi(app) as base, httpx.Client(base_url=base, timeout=10) as c:
        r1 = c.post("/orders", content=b'{"a":1}', headers=key("k"))
        assert r1.status_code == 201 and "idempotent-replayed" not in r1.headers
        r2 = c.post("/orders", content=b'{"a":1}', headers=key("k"))
        assert r2.status_code == 201 and r2.headers["idempotent-replayed"] == "true"
        assert r2.content == r1.content and r2.headers["location"] == "/orders/1" and r2.headers["etag"] == '"v1"'
        assert "x-request-id" not in r2.headers
        assert calls["/orders"] == 1
        problem(c.post("/orders", content=b'{"a":2}', headers=key("k")), 422, "idempotency-key-reused")
        problem(c.post("/orders", content=b"{}", headers={"Idempotency-Key": "bare"}), 400, "idempotency-key-invalid")
        problem(c.post("/orders", content=b"x" * 101, headers=key("big")), 413, "request-too-large")
        assert c.post("/fail", headers=key("f")).status_code == 500
        r = c.post("/fail", headers=key("f"))
        assert r.status_code == 200 and calls["/fail"] == 2
        assert c.post("/nothing", headers=key("n")).status_code == 404
        r = c.post("/nothing", headers=key("n"))
        assert r.status_code == 404 and r.headers["idempotent-replayed"] == "true" and calls["/nothing"] == 1
        problem(c.post("/big", headers=key("b")), 500, "response-too-large")
        assert c.get("/orders", headers=key("k")).status_code == 201  # GET is not guarded
    assert calls["/orders"] == 2
    rec = cache.peek(_http.store_key("POST", "/orders", "", "k"))["record"]
    assert rec.metadata == [("seawall-http", "1"), ("status", "201"), ("h:location", "/orders/1"), ("h:etag", '"v1"')]


def test_wsgi_required_and_store_error() -> None:
    from test_http_asgi import _BrokenCache

    calls: Dict[str, int] = {}
    with serve_wsgi(seawall.wsgi.IdempotencyMiddleware(wsgi_app(calls), cache=seawall.IdempotencyCache(), required=True)) as base:
        problem(httpx.post(base + "/orders", content=b"{}"), 400, "idempotency-key-missing")
    with serve_wsgi(seawall.wsgi.IdempotencyMiddleware(wsgi_app(calls), cache=_BrokenCache())) as base:
        r = httpx.post(base + "/orders", content=b"{}", headers=key("s"))
        problem(r, 503, "idempotency-store-unavailable")
        assert r.headers["retry-after"] == "1"
    assert calls == {}


def _race(base: str, n: int, gate: threading.Event) -> List[httpx.Response]:
    out: List[Any] = [None] * n

    def go(i: int) -> None:
        out[i] = httpx.post(base + "/orders", content=b"{}", headers=key("w"), timeout=10)

    ts = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    ts[0].start()
    time.sleep(0.2)
    for t in ts[1:]:
        t.start()
    time.sleep(0.3)
    gate.set()
    for t in ts:
        t.join(10)
    return out


def test_wsgi_duplicate_waits_or_409() -> None:
    calls: Dict[str, int] = {}
    gate = threading.Event()
    app = seawall.wsgi.IdempotencyMiddleware(wsgi_app(calls, gate), cache=seawall.IdempotencyCache(lease=5.0, wait_timeout=5.0))
    with serve_wsgi(app) as base:
        rs = _race(base, 2, gate)
    assert [r.status_code for r in rs] == [201, 201] and rs[1].headers["idempotent-replayed"] == "true"
    assert rs[0].content == rs[1].content and calls["/orders"] == 1
    calls.clear()
    gate = threading.Event()
    app = seawall.wsgi.IdempotencyMiddleware(wsgi_app(calls, gate), cache=seawall.IdempotencyCache(lease=5.0), on_duplicate="reject")
    with serve_wsgi(app) as base:
        rs = _race(base, 2, gate)
    assert rs[0].status_code == 201
    problem(rs[1], 409, "idempotency-key-in-progress")
    assert int(rs[1].headers["retry-after"]) >= 1


def test_wsgi_and_asgi_services_replay_each_other() -> None:
    """Two services (WSGI and ASGI) sharing one cache: same store keys, same records."""
    cache = seawall.IdempotencyCache()
    wcalls: Dict[str, int] = {}
    acalls: Dict[str, int] = {}
    w = seawall.wsgi.IdempotencyMiddleware(wsgi_app(wcalls), cache=cache)
    a = seawall.asgi.IdempotencyMiddleware(make_app(acalls), cache=cache)
    with serve_wsgi(w) as wb, serve_asgi(a) as ab:
        r1 = httpx.post(wb + "/orders", content=b'{"x":1}', headers=key("shared"))
        r2 = httpx.post(ab + "/orders", content=b'{"x":1}', headers=key("shared"))
        assert r1.status_code == r2.status_code == 201
        assert r2.headers["idempotent-replayed"] == "true" and r2.content == r1.content
        assert r2.headers["location"] == r1.headers["location"] and r2.headers["content-type"] == "application/json"
        problem(httpx.post(ab + "/orders", content=b'{"x": 1}', headers=key("shared")), 422, "idempotency-key-reused")
        r3 = httpx.post(ab + "/orders", content=b'{"y":1}', headers=key("other"))
        r4 = httpx.post(wb + "/orders", content=b'{"y":1}', headers=key("other"))
        assert r4.headers["idempotent-replayed"] == "true" and r4.content == r3.content and r4.status_code == 201
    assert wcalls == {"/orders": 1} and acalls == {"orders": 1}
