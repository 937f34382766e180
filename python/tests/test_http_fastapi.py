"""The Idempotency-Key and deadline middlewares on a FastAPI app, served by a real uvicorn
server on 127.0.0.1 and driven by a real httpx client: the README's FastAPI snippet."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

import seawall
import seawall.asgi
from http_servers import serve_asgi


def make_app() -> "tuple[FastAPI, dict]":
    created = {"n": 0}
    orders = seawall.IdempotencyCache(name="orders")
    app = FastAPI()

    @app.post("/orders", status_code=201)
    async def create(order: dict) -> dict:
        if order.get("slow"):
            await asyncio.sleep(1.0)
        created["n"] += 1
        return {"id": created["n"], "item": order["item"]}

    # As in the README: the idempotency middleware, then the deadline middleware outermost.
    app.add_middleware(seawall.asgi.IdempotencyMiddleware, cache=orders, required=True)
    app.add_middleware(seawall.asgi.DeadlineMiddleware, default_timeout=5.0)
    return app, created


def test_fastapi_app_protected_in_a_few_lines() -> None:
    app, created = make_app()
    with serve_asgi(app) as base:
        with httpx.Client(base_url=base, timeout=10) as c:
            key = {"idempotency-key": '"order-1"'}
            first = c.post("/orders", json={"item": "book"}, headers=key)
            retry = c.post("/orders", json={"item": "book"}, headers=key)
            other = c.post("/orders", json={"item": "lamp"}, headers=key)
            missing = c.post("/orders", json={"item": "book"})
            late = c.post(
                "/orders",
                json={"item": "desk", "slow": True},
                headers={"idempotency-key": '"order-2"', "grpc-timeout": "50m"},
            )
    assert first.status_code == 201 and first.json() == {"id": 1, "item": "book"}
    assert retry.status_code == 201 and retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"
    assert other.status_code == 422
    assert other.headers["content-type"].startswith("application/problem+json")
    assert missing.status_code == 400
    assert late.status_code == 504
    assert created["n"] == 1, "the retry replayed; the late order was cancelled at its deadline"
