"""Observability: one registry for breakers, an idempotency cache and health checks, its
events on the `seawall` logger and a callback, and /health and /metrics served by the ASGI
app of seawall.asgi. Run: python examples/python/observability.py

The app is called here the way an ASGI server calls it (no server needed to run the
example); serve it for real with any ASGI server, e.g. `uvicorn module:app`, or mount it in
Starlette / FastAPI.

Prints exactly:

    /health: 200 ok
    log: WARNING state_change breaker 'recommendations': closed -> open (consecutive_failures)
    event: state_change recommendations -> open
    event: rejected recommendations
    log: INFO fallback breaker 'recommendations': rejected call answered by the fallback (degraded)
    event: fallback recommendations
    recommendations while open: []
    /health: 200 degraded
    log: WARNING state_change breaker 'db': closed -> forced_open (force_open)
    event: state_change db -> forced_open
    /health: 503 down
    /metrics: 200 text/plain; version=0.0.4; charset=utf-8
      seawall_breaker_calls_total{breaker="db",outcome="success"} 1
      seawall_breaker_fallbacks_total{breaker="db"} 0
      seawall_breaker_fallbacks_total{breaker="recommendations"} 1
      seawall_idempotency_requests_total{cache="orders",result="replay"} 1
      seawall_health_status{status="ok"} 0
      seawall_health_status{status="degraded"} 0
      seawall_health_status{status="down"} 1
"""

import asyncio
import json
import logging
import re
import sys

import seawall
import seawall.asgi

# Structured records: the event's fields are attributes of the record (`extra`).
handler = logging.StreamHandler(sys.stdout)
handler.setFormatter(logging.Formatter("log: %(levelname)s %(seawall_event)s %(message)s"))
handler.setLevel(logging.INFO)
log = logging.getLogger("seawall")
log.addHandler(handler)
log.setLevel(logging.INFO)

registry = seawall.Registry()
# A critical dependency and a non-critical one (the service works without it, degraded).
db = registry.breaker("db", consecutive_failures=3)
recommendations = registry.breaker(
    "recommendations",
    consecutive_failures=1,
    critical=False,
    fallback=lambda err: [],  # served degraded: counted in seawall_breaker_fallbacks_total
)
orders = registry.idempotency_cache("orders")
registry.add_check("disk", lambda: True, timeout=1.0)
registry.on_event(lambda e: print(f"event: {e['type']} {e['breaker']}{' -> ' + e['to'] if 'to' in e else ''}") if "breaker" in e else None)

app = seawall.asgi.observability_app(registry)


async def get(path: str):
    """One GET request through the ASGI app, as a server makes it."""
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await app({"type": "http", "method": "GET", "path": path, "headers": []}, receive, send)
    headers = dict(sent[0]["headers"])
    return sent[0]["status"], headers[b"content-type"].decode(), sent[1]["body"].decode()


async def main() -> None:
    db.call(lambda: "row")
    orders.run("order-1", lambda: {"id": 1})
    orders.run("order-1", lambda: {"id": 1})  # a retry: replayed
    status, _, body = await get("/health")
    print(f"/health: {status} {json.loads(body)['status']}")

    def unreachable():
        raise ConnectionError("recommendations service unreachable")

    try:
        recommendations.call(unreachable)
    except ConnectionError:
        pass
    recs = recommendations.call(lambda: ["fresh"])  # open: the fallback answers
    print(f"recommendations while open: {recs}")
    status, _, body = await get("/health")
    print(f"/health: {status} {json.loads(body)['status']}")

    db.force_open()
    status, _, body = await get("/health")
    print(f"/health: {status} {json.loads(body)['status']}")

    status, content_type, body = await get("/metrics")
    print(f"/metrics: {status} {content_type}")
    wanted = re.compile(
        r'^seawall_breaker_(fallbacks_total|calls_total\{breaker="db",outcome="success"\})'
        r'|^seawall_health_status|^seawall_idempotency_requests_total\{.*result="replay"'
    )
    for line in body.splitlines():
        if wanted.search(line):
            print(f"  {line}")


asyncio.run(main())
