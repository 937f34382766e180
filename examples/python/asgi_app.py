"""An HTTP API protected by seawall's Idempotency-Key and deadline middlewares (docs/http.md):
a Starlette app (FastAPI works the same: it is a Starlette app), served by uvicorn on a free
127.0.0.1 port, called with httpx. Run: python examples/python/asgi_app.py (with seawall,
starlette, uvicorn and httpx installed).

Prints exactly:

    first:  201 {"id":1,"amount":100} replayed=None
    retry:  201 {"id":1,"amount":100} replayed=true location=/orders/1
    other payload: 422 urn:seawall:problem:idempotency-key-reused
    bad key: 400 urn:seawall:problem:idempotency-key-invalid
    slow route, grpc-timeout 100m: 504 urn:seawall:problem:deadline-exceeded
    orders created: 1
"""

import asyncio
import json
import socket
import threading
import time

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

import seawall
import seawall.asgi

orders = []


async def create_order(request):
    body = await request.json()
    orders.append(body)
    return JSONResponse({"id": len(orders), "amount": body["amount"]}, status_code=201, headers={"Location": f"/orders/{len(orders)}"})


async def slow(request):
    await asyncio.sleep(2)  # cancelled at the client's deadline
    return JSONResponse({"done": True})


app = Starlette(routes=[Route("/orders", create_order, methods=["POST"]), Route("/slow", slow, methods=["POST"])])

# The protection: two lines. The deadline middleware goes outside.
app = seawall.asgi.IdempotencyMiddleware(app, cache=seawall.IdempotencyCache(), required=True)
app = seawall.asgi.DeadlineMiddleware(app, max_timeout=30.0)


def main() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            key = {"Idempotency-Key": '"8e03978e-40d5-43e8-bc93-6894a57f9324"'}
            r = client.post("/orders", content=b'{"amount":100}', headers=key)
            print(f"first:  {r.status_code} {r.text} replayed={r.headers.get('idempotent-replayed')}")
            r = client.post("/orders", content=b'{"amount":100}', headers=key)
            print(f"retry:  {r.status_code} {r.text} replayed={r.headers['idempotent-replayed']} location={r.headers['location']}")
            r = client.post("/orders", content=b'{"amount":999}', headers=key)
            print(f"other payload: {r.status_code} {json.loads(r.text)['type']}")
            r = client.post("/orders", content=b'{"amount":100}', headers={"Idempotency-Key": "not quoted"})
            print(f"bad key: {r.status_code} {json.loads(r.text)['type']}")
            r = client.post("/slow", headers={"grpc-timeout": "100m", "Idempotency-Key": '"s1"'})
            print(f"slow route, grpc-timeout 100m: {r.status_code} {json.loads(r.text)['type']}")
        print(f"orders created: {len(orders)}")
    finally:
        server.should_exit = True
        thread.join(10)


if __name__ == "__main__":
    main()
