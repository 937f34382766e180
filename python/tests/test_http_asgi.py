"""seawall.asgi.IdempotencyMiddleware and DeadlineMiddleware against a real Starlette app
served by a real uvicorn server on 127.0.0.1, driven by a real httpx client (docs/http.md)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any, Dict, List

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

import seawall
import seawall.asgi
from seawall import _http
from http_servers import serve_asgi


def make_app(calls: Dict[str, int], gate: "threading.Event | None" = None) -> Starlette:
    async def orders(request: Request) -> Response:
        body = await request.body()
        calls["orders"] = calls.get("orders", 0) + 1
        n = calls["orders"]
        if gate is not None:
            while not gate.is_set():
                await asyncio.sleep(0.01)
        r = JSONResponse({"id": n, "body": body.decode()}, status_code=201)
        r.headers["location"] = f"/orders/{n}"
        r.headers["etag"] = '"v1"'
        r.headers["x-request-id"] = f"req-{n}"
        r.set_cookie("session", "s1")
        return r

    async def fail(request: Request) -> Response:
        calls["fail"] = calls.get("fail", 0) + 1
        return JSONResponse({"error": "boom", "n": calls["fail"]}, status_code=503 if calls["fail"] == 1 else 200)

    async def bad(request: Request) -> Response:
        calls["bad"] = calls.get("bad", 0) + 1
        return JSONResponse({"error": "nope", "n": calls["bad"]}, status_code=404)

    async def limited(request: Request) -> Response:
        calls["limited"] = calls.get("limited", 0) + 1
        return JSONResponse({"n": calls["limited"]}, status_code=429)

    async def big(request: Request) -> Response:
        calls["big"] = calls.get("big", 0) + 1

        async def gen():  # type: ignore[no-untyped-def]
            for _ in range(4):
                yield b"x" * 1000

        return StreamingResponse(gen(), media_type="application/octet-stream")

    async def crash(request: Request) -> Response:
        calls["crash"] = calls.get("crash", 0) + 1
        if calls["crash"] == 1:
            raise RuntimeError("route crashed")
        return JSONResponse({"ok": True}, status_code=200)

    async def read(request: Request) -> Response:
        calls["get"] = calls.get("get", 0) + 1
        return JSONResponse({"n": calls["get"]})

    async def empty(request: Request) -> Response:
        calls["empty"] = calls.get("empty", 0) + 1
        return Response(status_code=204)

    async def slow(request: Request) -> Response:
        calls["slow"] = calls.get("slow", 0) + 1
        await asyncio.sleep(1.0)
        return JSONResponse({"late": True})

    async def budget(request: Request) -> Response:
        d = seawall.current_deadline()
        return JSONResponse({"remaining": None if d is None else d.remaining()})

    return Starlette(
        routes=[
            Route("/orders", orders, methods=["POST", "PATCH", "GET"]),
            Route("/fail", fail, methods=["POST"]),
            Route("/bad", bad, methods=["POST"]),
            Route("/limited", limited, methods=["POST"]),
            Route("/big", big, methods=["POST"]),
            Route("/crash", crash, methods=["POST"]),
            Route("/read", read, methods=["GET", "POST", "PUT"]),
            Route("/empty", empty, methods=["POST"]),
            Route("/slow", slow, methods=["GET", "POST"]),
            Route("/budget", budget, methods=["GET"]),
        ]
    )


def key(k: str) -> Dict[str, str]:
    return {"Idempotency-Key": f'"{k}"'}


def problem(r: httpx.Response, status: int, slug: str) -> Dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["cache-control"] == "no-store"
    doc = json.loads(r.content)
    assert list(doc) == ["type", "title", "status", "detail"]
    assert doc["type"] == "urn:seawall:problem:" + slug
    assert doc["title"] == _http.PROBLEMS[slug][1]
    assert doc["status"] == status
    assert isinstance(doc["detail"], str) and doc["detail"]
    return doc


@pytest.fixture
def server():  # type: ignore[no-untyped-def]
    calls: Dict[str, int] = {}
    cache = seawall.IdempotencyCache(max_result_bytes=2000, lease=5.0, wait_timeout=3.0)
    app = seawall.asgi.IdempotencyMiddleware(
        make_app(calls), cache=cache, max_body_bytes=100, identity=lambda scope: dict(scope["headers"]).get(b"x-account", b"").decode() or None
    )
    with serve_asgi(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        yield client, calls, cache


def test_execute_then_replay_with_stored_headers(server) -> None:  # type: ignore[no-untyped-def]
    client, calls, cache = server
    r1 = client.post("/orders", content=b'{"amount":100}', headers=key("k1"))
    assert r1.status_code == 201
    assert "idempotent-replayed" not in r1.headers
    assert r1.headers["x-request-id"] == "req-1"
    assert "set-cookie" in r1.headers
    r2 = client.post("/orders", content=b'{"amount":100}', headers=key("k1"))
    assert r2.status_code == 201
    assert r2.headers["idempotent-replayed"] == "true"
    assert r2.content == r1.content
    assert r2.headers["location"] == "/orders/1"
    assert r2.headers["etag"] == '"v1"'
    assert r2.headers["content-type"] == "application/json"
    assert r2.headers["content-length"] == str(len(r1.content))
    assert "x-request-id" not in r2.headers and "set-cookie" not in r2.headers
    assert calls["orders"] == 1
    # The record is the contract's layout.
    skey = _http.store_key("POST", "/orders", "", "k1")
    rec = cache.peek(skey)["record"]
    assert rec.metadata == [("seawall-http", "1"), ("status", "201"), ("h:location", "/orders/1"), ("h:etag", '"v1"')]
    assert rec.content_type == "application/json"
    assert not rec.is_error


def test_unquoted_key_is_invalid_and_methods_pass_through(server) -> None:  # type: ignore[no-untyped-def]
    client, calls, _ = server
    doc = problem(client.post("/orders", content=b"{}", headers={"Idempotency-Key": "bare"}), 400, "idempotency-key-invalid")
    assert "Structured Field string" in doc["detail"]
    doc = problem(client.post("/orders", content=b"{}", headers={"Idempotency-Key": '"' + "a" * 256 + '"'}), 400, "idempotency-key-invalid")
    assert "256 bytes" in doc["detail"]
    problem(client.post("/orders", content=b"{}", headers=[("Idempotency-Key", '"a"'), ("Idempotency-Key", '"b"')]), 400, "idempotency-key-invalid")
    assert "orders" not in calls
    # GET is not guarded; no key: unprotected pass-through.
    assert client.get("/read", headers=key("g")).status_code == 200
    assert client.get("/read", headers=key("g")).json() == {"n": 2}
    assert client.post("/read").json() == {"n": 3}
    assert client.post("/read").json() == {"n": 4}


def test_required_key_missing_is_400() -> None:
    calls: Dict[str, int] = {}
    app = seawall.asgi.IdempotencyMiddleware(make_app(calls), cache=seawall.IdempotencyCache(), required=True)
    with serve_asgi(app) as base, httpx.Client(base_url=base) as client:
        problem(client.post("/orders", content=b"{}"), 400, "idempotency-key-missing")
        assert "orders" not in calls
        assert client.get("/read").status_code == 200


def test_other_payload_is_422(server) -> None:  # type: ignore[no-untyped-def]
    client, calls, _ = server
    assert client.post("/orders", content=b'{"amount":1}', headers=key("m")).status_code == 201
    problem(client.post("/orders", content=b'{"amount":2}', headers=key("m")), 422, "idempotency-key-reused")
    problem(client.post("/orders?x=1", content=b'{"amount":1}', headers=key("m")), 422, "idempotency-key-reused")
    # Another method on the same path is another operation.
    assert client.patch("/orders", content=b'{"amount":2}', headers=key("m")).status_code == 201
    assert calls["orders"] == 2


def test_identity_scopes_keys(server) -> None:  # type: ignore[no-untyped-def]
    client, calls, _ = server
    a = client.post("/orders", content=b"{}", headers={**key("i"), "x-account": "a"})
    b = client.post("/orders", content=b"{}", headers={**key("i"), "x-account": "b"})
    assert a.status_code == b.status_code == 201
    assert "idempotent-replayed" not in b.headers
    assert calls["orders"] == 2
    again = client.post("/orders", content=b"{}", headers={**key("i"), "x-account": "a"})
    assert again.headers["idempotent-replayed"] == "true" and again.content == a.content


def test_5xx_releases_4xx_stored_429_not(server) -> None:  # type: ignore[no-untyped-def]
    client, calls, _ = server
    assert client.post("/fail", content=b"", headers=key("f")).status_code == 503
    r = client.post("/fail", content=b"", headers=key("f"))
    assert r.status_code == 200 and "idempotent-replayed" not in r.headers
    assert calls["fail"] == 2
    assert client.post("/bad", headers=key("b")).status_code == 404
    r = client.post("/bad", headers=key("b"))
    assert r.status_code == 404 and r.headers["idempotent-replayed"] == "true" and calls["bad"] == 1
    client.post("/limited", headers=key("l"))
    r = client.post("/limited", headers=key("l"))
    assert r.status_code == 429 and "idempotent-replayed" not in r.headers and calls["limited"] == 2


def test_request_too_large_is_413(server) -> None:  # type: ignore[no-untyped-def]
    client, calls, _ = server
    r = client.post("/orders", content=b"x" * 101, headers=key("big"))
    problem(r, 413, "request-too-large")
    assert r.headers["connection"] == "close"

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(5):
            yield b"y" * 30

    problem(client.post("/orders", content=chunks(), headers=key("big2")), 413, "request-too-large")
    assert "orders" not in calls


def test_response_too_large_is_500_and_released(server) -> None:  # type: ignore[no-untyped-def]
    client, calls, cache = server
    doc = problem(client.post("/big", headers=key("rb")), 500, "response-too-large")
    assert "2000" in doc["detail"]
    problem(client.post("/big", headers=key("rb")), 500, "response-too-large")
    assert calls["big"] == 2  # released: the retry ran again


def test_route_that_raises_releases(server) -> None:  # type: ignore[no-untyped-def]
    client, calls, _ = server
    assert client.post("/crash", headers=key("c")).status_code == 500
    # uvicorn closes the connection after an exception: the retry comes on a new one.
    with httpx.Client(base_url=str(client.base_url), timeout=10) as fresh:
        r = fresh.post("/crash", headers=key("c"))
    assert r.status_code == 200 and calls["crash"] == 2


def test_204_replay_has_no_body(server) -> None:  # type: ignore[no-untyped-def]
    client, calls, _ = server
    assert client.post("/empty", headers=key("e")).status_code == 204
    r = client.post("/empty", headers=key("e"))
    assert r.status_code == 204 and r.headers["idempotent-replayed"] == "true" and r.content == b""
    assert "content-length" not in r.headers and calls["empty"] == 1


def _concurrent(base: str, n: int, path: str, headers: Dict[str, str], gate: threading.Event, delay: float = 0.3) -> List[httpx.Response]:
    out: List[Any] = [None] * n

    def go(i: int) -> None:
        with httpx.Client(base_url=base, timeout=10) as c:
            out[i] = c.post(path, content=b"{}", headers=headers)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    threads[0].start()
    time.sleep(0.2)
    for t in threads[1:]:
        t.start()
    time.sleep(delay)
    gate.set()
    for t in threads:
        t.join(10)
    return out


def test_duplicate_in_progress_waits_for_the_owner() -> None:
    calls: Dict[str, int] = {}
    gate = threading.Event()
    cache = seawall.IdempotencyCache(lease=5.0, wait_timeout=5.0)
    app = seawall.asgi.IdempotencyMiddleware(make_app(calls, gate), cache=cache)
    with serve_asgi(app) as base:
        rs = _concurrent(base, 3, "/orders", key("w"), gate)
    assert calls["orders"] == 1
    assert [r.status_code for r in rs] == [201, 201, 201]
    assert rs[1].content == rs[0].content == rs[2].content
    assert [r.headers.get("idempotent-replayed") for r in rs] == [None, "true", "true"]


def test_duplicate_in_progress_rejected_with_409() -> None:
    calls: Dict[str, int] = {}
    gate = threading.Event()
    cache = seawall.IdempotencyCache(lease=5.0)
    app = seawall.asgi.IdempotencyMiddleware(make_app(calls, gate), cache=cache, on_duplicate="reject")
    with serve_asgi(app) as base:
        rs = _concurrent(base, 2, "/orders", key("r"), gate)
    assert rs[0].status_code == 201
    problem(rs[1], 409, "idempotency-key-in-progress")
    assert 1 <= int(rs[1].headers["retry-after"]) <= 5
    assert calls["orders"] == 1


def test_wait_timeout_answers_409() -> None:
    calls: Dict[str, int] = {}
    gate = threading.Event()
    cache = seawall.IdempotencyCache(lease=5.0, wait_timeout=0.2)
    app = seawall.asgi.IdempotencyMiddleware(make_app(calls, gate), cache=cache)
    with serve_asgi(app) as base:
        rs = _concurrent(base, 2, "/orders", key("t"), gate, delay=0.6)
    assert rs[0].status_code == 201
    problem(rs[1], 409, "idempotency-key-in-progress")
    assert int(rs[1].headers["retry-after"]) >= 1


class _BrokenCache(seawall.IdempotencyCache):
    def _begin(self, key: str, fingerprint: Any = None) -> Any:  # type: ignore[override]
        raise seawall.StoreUnavailable("redis did not answer")


def test_store_error_is_503_without_hanging() -> None:
    calls: Dict[str, int] = {}
    app = seawall.asgi.IdempotencyMiddleware(make_app(calls), cache=_BrokenCache())
    with serve_asgi(app) as base, httpx.Client(base_url=base, timeout=5) as client:
        t0 = time.monotonic()
        r = client.post("/orders", content=b"{}", headers=key("s"))
        assert time.monotonic() - t0 < 2
    problem(r, 503, "idempotency-store-unavailable")
    assert r.headers["retry-after"] == "1"
    assert "orders" not in calls


def test_store_error_with_a_real_unreachable_redis_is_503() -> None:
    from http_servers import free_port

    store = seawall.RedisStore(f"redis://127.0.0.1:{free_port()}/0", command_timeout=0.2)
    calls: Dict[str, int] = {}
    app = seawall.asgi.IdempotencyMiddleware(make_app(calls), cache=seawall.IdempotencyCache(store=store))
    with serve_asgi(app) as base, httpx.Client(base_url=base, timeout=5) as client:
        r = client.post("/orders", content=b"{}", headers=key("s"))
    problem(r, 503, "idempotency-store-unavailable")
    assert "orders" not in calls


def test_cross_language_record_replays() -> None:
    """A record in the layout the Node middleware writes (docs/http.md's example), encoded to
    the core's bytes and decoded again, replays through the Python middleware."""
    cache = seawall.IdempotencyCache()
    node_md = [("seawall-http", "1"), ("status", "201"), ("h:location", "/orders/1"), ("h:etag", '"v1"'),
               ("h:set-cookie", "a=1"), ("h:set-cookie", "b=2"), ("future", "x"), ("h:content-length", "9"), ("h:x-bad", "a\r\nb")]
    body = b'{"id":1,"amount":100}'
    rec = seawall.Record(body, "application/json; charset=utf-8", metadata=node_md)
    assert seawall.Record.decode(rec.encode()).metadata == node_md
    skey = _http.store_key("POST", "/orders", "", "order-1")
    assert skey == "http:973109c04d5956190edf56742ab68999acf34400410a2dcd70627a6522ed2d5b"
    fp = _http.fingerprint_bytes("POST", "/orders", [], body)
    b = cache.begin(skey, fingerprint=fp)
    assert b.kind == "execute"
    cache.complete(b.lease, rec.result, rec.content_type, rec.metadata)
    calls: Dict[str, int] = {}
    app = seawall.asgi.IdempotencyMiddleware(make_app(calls), cache=cache)
    with serve_asgi(app) as base, httpx.Client(base_url=base) as client:
        r = client.post("/orders", content=body, headers={"Idempotency-Key": '"order-1"'})
        assert r.status_code == 201 and r.content == body
        assert r.headers["content-type"] == "application/json; charset=utf-8"
        assert r.headers["location"] == "/orders/1" and r.headers["etag"] == '"v1"'
        assert r.headers.get_list("set-cookie") == ["a=1", "b=2"]
        assert r.headers["idempotent-replayed"] == "true"
        assert r.headers["content-length"] == str(len(body))
        assert "x-bad" not in r.headers
        problem(client.post("/orders", content=b'{"id":1, "amount":100}', headers={"Idempotency-Key": '"order-1"'}), 422, "idempotency-key-reused")
        # An unreadable record (another layout version) is a 500, left as it is.
        skey2 = _http.store_key("POST", "/orders", "", "v2")
        b = cache.begin(skey2, fingerprint=_http.fingerprint_bytes("POST", "/orders", [], b""))
        cache.complete(b.lease, b"x", "", [("seawall-http", "2"), ("status", "200")])
        problem(client.post("/orders", headers=key("v2")), 500, "stored-response-unreadable")
    assert "orders" not in calls
    assert cache.peek(skey2)["state"] == "completed"


def test_http_vectors() -> None:
    assert _http.store_key("POST", "/orders", "acct_1", "order-1") == "http:6f8051b4a7e3ecf42ba447c4518ccd01db33638af082b48861930f8b706b3ff3"
    assert _http.store_key("POST", "/orders", "zoë", "order-1", "billing:") == "billing:27a4ba367795bc1165217565b7100a1776476297a8fb51883c72f6e774a5f913"
    fp = _http.fingerprint_bytes("POST", "/orders?currency=eur", [("x-account", b"acct_1"), ("x-absent", None)], b'{"amount":100}')
    assert fp == b'seawall-http-fingerprint/1\nPOST\n/orders?currency=eur\nx-account:acct_1\nx-absent\n\n{"amount":100}'
    assert seawall.fingerprint(fp) == "39ff5d48f8acf5a7a589ad9a8ce57ada6c60dfd3b43dc13700057e2c338c9f02"
    assert seawall.fingerprint(_http.fingerprint_bytes("POST", "/orders", [], b"")) == "ff7414096008c7afad793ccd4a76c2e787c04449e90735baf6e096418d988d9d"


@pytest.mark.parametrize(
    "value,key",
    [('"abc"', "abc"), (' "a\\"b\\\\";v=1;w="x";z=?1;n=-1.5 ', 'a"b\\'), ('"k"; a=tok/x:y', "k"), ('"' + "a" * 255 + '"', "a" * 255)],
)
def test_key_parser_accepts(value: str, key: str) -> None:
    assert _http.parse_idempotency_key(value) == (key, None)


@pytest.mark.parametrize(
    "value,reason",
    [("abc", "Structured Field string"), ('""', "empty"), ('"' + "a" * 256 + '"', "256 bytes"), ('"a\\x"', "backslash"),
     ('"a', "not closed"), ('"a", "b"', "unexpected"), ('"a";V=1', "lowercase"), ('"a";v=?2', "?0 or ?1"), ('"é"', "printable ASCII"),
     ("12", "Structured Field string")],
)
def test_key_parser_refuses(value: str, reason: str) -> None:
    k, why = _http.parse_idempotency_key(value)
    assert k is None and reason in (why or "")


def test_unquoted_keys_when_allowed() -> None:
    assert _http.parse_idempotency_key(" abc-1 ", True) == ("abc-1", None)
    assert _http.parse_idempotency_key('"abc-1"', True) == ("abc-1", None)
    assert _http.parse_idempotency_key("a,b", True)[0] is None
    assert _http.parse_idempotency_key("a" * 256, True)[0] is None


def test_bad_options_name_the_field() -> None:
    cache = seawall.IdempotencyCache()
    with pytest.raises(seawall.InvalidArgument, match="on_duplicate"):
        seawall.asgi.IdempotencyMiddleware(make_app({}), cache=cache, on_duplicate="later")
    with pytest.raises(seawall.InvalidArgument, match="replay_headers"):
        seawall.asgi.IdempotencyMiddleware(make_app({}), cache=cache, replay_headers=["content-length"])
    with pytest.raises(seawall.InvalidArgument, match="cache"):
        seawall.asgi.IdempotencyMiddleware(make_app({}), cache=object())
    with pytest.raises(seawall.InvalidArgument, match="timeout_header"):
        seawall.asgi.DeadlineMiddleware(make_app({}), timeout_header="bad header")


# --- deadlines ------------------------------------------------------------------------------


@pytest.fixture
def deadline_server():  # type: ignore[no-untyped-def]
    calls: Dict[str, int] = {}
    app = seawall.asgi.DeadlineMiddleware(make_app(calls), timeout_header="request-timeout", max_timeout=10.0)
    with serve_asgi(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        yield client, calls


def test_deadline_sets_the_ambient_deadline(deadline_server) -> None:  # type: ignore[no-untyped-def]
    client, _ = deadline_server
    assert client.get("/budget").json() == {"remaining": None}
    rem = client.get("/budget", headers={"grpc-timeout": "3S"}).json()["remaining"]
    assert 2.0 < rem <= 3.0
    rem = client.get("/budget", headers={"grpc-timeout": "3S", "request-timeout": "1500"}).json()["remaining"]
    assert 0.5 < rem <= 1.5
    rem = client.get("/budget", headers={"grpc-timeout": "100S"}).json()["remaining"]
    assert 9.0 < rem <= 10.0  # max_timeout caps it


def test_deadline_expiry_is_504(deadline_server) -> None:  # type: ignore[no-untyped-def]
    client, calls = deadline_server
    t0 = time.monotonic()
    doc = problem(client.get("/slow", headers={"grpc-timeout": "200m"}), 504, "deadline-exceeded")
    assert time.monotonic() - t0 < 0.9
    assert doc["status"] == 504
    problem(client.get("/slow", headers={"grpc-timeout": "0n"}), 504, "deadline-exceeded")
    assert calls["slow"] == 1  # a spent budget does not run the route


def test_invalid_timeout_is_400(deadline_server) -> None:  # type: ignore[no-untyped-def]
    client, calls = deadline_server
    doc = problem(client.get("/slow", headers={"grpc-timeout": "soon"}), 400, "invalid-timeout")
    assert doc["detail"].startswith("grpc-timeout")
    doc = problem(client.get("/slow", headers={"request-timeout": "1.5"}), 400, "invalid-timeout")
    assert "request-timeout" in doc["detail"]
    assert "slow" not in calls


def test_waiting_duplicate_stops_at_its_deadline_with_504() -> None:
    calls: Dict[str, int] = {}
    gate = threading.Event()
    cache = seawall.IdempotencyCache(lease=5.0, wait_timeout=5.0)
    app = seawall.asgi.DeadlineMiddleware(seawall.asgi.IdempotencyMiddleware(make_app(calls, gate), cache=cache))
    out: List[Any] = [None]
    with serve_asgi(app) as base:
        def owner() -> None:
            out[0] = httpx.post(base + "/orders", content=b"{}", headers=key("d"), timeout=10)

        t = threading.Thread(target=owner)
        t.start()
        time.sleep(0.2)
        t0 = time.monotonic()
        dup = httpx.post(base + "/orders", content=b"{}", headers={**key("d"), "grpc-timeout": "200m"}, timeout=10)
        elapsed = time.monotonic() - t0
        problem(dup, 504, "deadline-exceeded")
        assert elapsed < 1.5
        assert cache.waiting == 0  # the waiter was cancelled
        gate.set()
        t.join(10)
        assert out[0].status_code == 201
        again = httpx.post(base + "/orders", content=b"{}", headers=key("d"), timeout=10)
        assert again.headers["idempotent-replayed"] == "true" and again.content == out[0].content
    assert calls["orders"] == 1


def test_waiting_duplicate_stops_when_its_client_disconnects() -> None:
    import socket

    calls: Dict[str, int] = {}
    gate = threading.Event()
    cache = seawall.IdempotencyCache(lease=5.0, wait_timeout=5.0)
    app = seawall.asgi.IdempotencyMiddleware(make_app(calls, gate), cache=cache)
    out: List[Any] = [None]
    with serve_asgi(app) as base:
        t = threading.Thread(target=lambda: out.__setitem__(0, httpx.post(base + "/orders", content=b"{}", headers=key("x"), timeout=10)))
        t.start()
        time.sleep(0.2)
        host, port = base.rsplit(":", 1)
        s = socket.create_connection(("127.0.0.1", int(port)))
        s.sendall(b'POST /orders HTTP/1.1\r\nHost: x\r\nIdempotency-Key: "x"\r\nContent-Length: 2\r\n\r\n{}')
        deadline = time.monotonic() + 3
        while cache.waiting == 0:
            assert time.monotonic() < deadline, "the duplicate never waited"
            time.sleep(0.01)
        s.close()
        while cache.waiting != 0:
            assert time.monotonic() < deadline, "the duplicate kept waiting after its client left"
            time.sleep(0.01)
        gate.set()
        t.join(10)
    assert out[0].status_code == 201 and calls["orders"] == 1
