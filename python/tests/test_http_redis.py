"""Two ASGI services (two uvicorn servers, two caches, two RedisStores with the same prefix)
on one real redis-server replay each other's responses (docs/http.md, the cross-service
test). Fails, never skips, without redis-server."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any, Dict, List

import httpx

import seawall
import seawall.asgi
from http_servers import serve_asgi
from test_http_asgi import key, make_app, problem
from test_idempotency_redis import redis_port, url  # noqa: F401  (the redis-server fixture)


def service(port: int, prefix: str, calls: Dict[str, int], gate: "threading.Event | None" = None) -> Any:
    store = seawall.RedisStore(url(port), prefix=prefix, command_timeout=1.0)
    cache = seawall.IdempotencyCache(store=store, lease=5.0, wait_timeout=5.0)
    ident = lambda scope: dict(scope["headers"]).get(b"x-account", b"").decode() or None  # noqa: E731
    return seawall.asgi.IdempotencyMiddleware(make_app(calls, gate), cache=cache, identity=ident)


def test_two_services_share_a_redis_store(redis_port: int) -> None:  # noqa: F811
    prefix = f"h{uuid.uuid4().hex[:8]}:"
    ca: Dict[str, int] = {}
    cb: Dict[str, int] = {}
    with serve_asgi(service(redis_port, prefix, ca)) as a, serve_asgi(service(redis_port, prefix, cb)) as b:
        r1 = httpx.post(a + "/orders", content=b'{"amount":100}', headers=key("o1"))
        r2 = httpx.post(b + "/orders", content=b'{"amount":100}', headers=key("o1"))
        assert r1.status_code == r2.status_code == 201
        assert r2.headers["idempotent-replayed"] == "true"
        assert r2.content == r1.content
        assert (r2.headers["location"], r2.headers["etag"], r2.headers["content-type"]) == (r1.headers["location"], '"v1"', r1.headers["content-type"])
        problem(httpx.post(b + "/orders", content=b'{"amount": 100}', headers=key("o1")), 422, "idempotency-key-reused")
        # Another identity is another scope.
        r3 = httpx.post(b + "/orders", content=b'{"amount":100}', headers={**key("o1"), "x-account": "acct_2"})
        assert r3.status_code == 201 and "idempotent-replayed" not in r3.headers
        # A 5xx on one releases the key for a retry on the other.
        assert httpx.post(a + "/fail", headers=key("f")).status_code == 503
        r = httpx.post(b + "/fail", headers=key("f"))  # the route ran on b (its own first call: 503 too)
        assert r.status_code == 503 and "idempotent-replayed" not in r.headers
    assert ca == {"orders": 1, "fail": 1} and cb == {"orders": 1, "fail": 1}


def test_a_duplicate_on_one_service_waits_for_the_other(redis_port: int) -> None:  # noqa: F811
    prefix = f"h{uuid.uuid4().hex[:8]}:"
    gate = threading.Event()
    ca: Dict[str, int] = {}
    cb: Dict[str, int] = {}
    out: List[Any] = [None, None]
    with serve_asgi(service(redis_port, prefix, ca, gate)) as a, serve_asgi(service(redis_port, prefix, cb, gate)) as b:
        def go(i: int, base: str) -> None:
            out[i] = httpx.post(base + "/orders", content=b"{}", headers=key("w"), timeout=10)

        t0 = threading.Thread(target=go, args=(0, a))
        t1 = threading.Thread(target=go, args=(1, b))
        t0.start()
        time.sleep(0.3)
        t1.start()
        time.sleep(0.3)
        gate.set()
        t0.join(10)
        t1.join(10)
    assert out[0].status_code == out[1].status_code == 201
    assert out[1].headers["idempotent-replayed"] == "true" and out[1].content == out[0].content
    assert ca == {"orders": 1} and "orders" not in cb


NODE_SERVICE = r"""
const http = require('node:http');
const path = require('node:path');
const repo = process.argv[2];
const { IdempotencyCache, RedisStore } = require(path.join(repo, 'node', 'index.js'));
const { idempotency } = require(path.join(repo, 'node', 'express.js'));
const cache = new IdempotencyCache({ store: new RedisStore({ url: process.argv[3], prefix: process.argv[4] }) });
const guard = idempotency(cache, { identity: (req) => req.headers['x-account'] });
let runs = 0;
const server = http.createServer((req, res) => {
  guard(req, res, () => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      runs++;
      const body = JSON.stringify({ by: 'node', runs, body: Buffer.concat(chunks).toString() });
      res.statusCode = 201;
      res.setHeader('Content-Type', 'application/json; charset=utf-8');
      res.setHeader('Location', '/orders/node-' + runs);
      res.setHeader('ETag', '"n' + runs + '"');
      res.setHeader('X-Served-By', 'node');
      res.end(body);
    });
  });
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
"""


def test_python_and_node_services_replay_each_other(redis_port: int, tmp_path: Any) -> None:  # noqa: F811
    """A Node service (node/express.js's idempotency() on node:http, the addon's RedisStore)
    and a Python ASGI service share a redis-server, the Redis prefix and the key prefix."""
    import os
    import shutil
    import subprocess

    from conftest import repo_root

    node = shutil.which("node")
    assert node is not None, "node is not installed: the cross-language test needs it"
    repo = repo_root()
    script = tmp_path / "node_service.js"
    script.write_text(NODE_SERVICE)
    prefix = f"x{uuid.uuid4().hex[:8]}:"
    proc = subprocess.Popen([node, str(script), str(repo), url(redis_port), prefix], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.strip().isdigit(), f"the Node service did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}"
        nb = f"http://127.0.0.1:{line.strip()}"
        calls: Dict[str, int] = {}
        with serve_asgi(service(redis_port, prefix, calls)) as pb:
            # Node stores, Python replays.
            n1 = httpx.post(nb + "/orders", content=b'{"amount":100}', headers=key("n1"))
            assert n1.status_code == 201 and "idempotent-replayed" not in n1.headers
            p1 = httpx.post(pb + "/orders", content=b'{"amount":100}', headers=key("n1"))
            assert p1.status_code == 201 and p1.headers["idempotent-replayed"] == "true"
            assert p1.content == n1.content
            assert p1.headers["content-type"] == "application/json; charset=utf-8"
            assert (p1.headers["location"], p1.headers["etag"]) == ("/orders/node-1", '"n1"')
            assert "x-served-by" not in p1.headers
            problem(httpx.post(pb + "/orders", content=b'{"amount": 100}', headers=key("n1")), 422, "idempotency-key-reused")
            # Python stores, Node replays.
            p2 = httpx.post(pb + "/orders", content=b'{"amount":7}', headers=key("p2"))
            assert p2.status_code == 201 and "idempotent-replayed" not in p2.headers
            n2 = httpx.post(nb + "/orders", content=b'{"amount":7}', headers=key("p2"))
            assert n2.status_code == 201 and n2.headers["idempotent-replayed"] == "true"
            assert n2.content == p2.content
            assert (n2.headers["location"], n2.headers["etag"], n2.headers["content-type"]) == ("/orders/1", '"v1"', "application/json")
            n422 = httpx.post(nb + "/orders", content=b'{"amount":8}', headers=key("p2"))
            assert n422.status_code == 422 and json.loads(n422.content)["type"] == "urn:seawall:problem:idempotency-key-reused"
            # Identity scopes across languages too.
            n3 = httpx.post(nb + "/orders", content=b'{"amount":7}', headers={**key("p2"), "x-account": "acct_9"})
            assert n3.status_code == 201 and "idempotent-replayed" not in n3.headers
        assert calls == {"orders": 1}
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
