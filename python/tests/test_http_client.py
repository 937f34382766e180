"""The httpx hooks hand the ambient deadline on (docs/http.md, "Outgoing")."""

import asyncio

import httpx
import pytest

import seawall
from seawall.httpx import MS_HEADER, async_deadline_hooks, deadline_hooks

seen = []


def capture(request: httpx.Request) -> httpx.Response:
    seen.append((dict(request.headers), request.extensions.get("timeout")))
    return httpx.Response(200, text="ok")


def client(**kw) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(capture), event_hooks=deadline_hooks(**kw))


def test_no_deadline_changes_nothing() -> None:
    seen.clear()
    client().get("http://svc/x")
    headers, _ = seen[-1]
    assert "grpc-timeout" not in headers


def test_the_remaining_budget_travels_and_caps_the_timeouts() -> None:
    clock = seawall.ManualClock()
    seen.clear()
    with seawall.deadline(seawall.Deadline.after(1.5, clock=clock)):
        clock.advance(0.25)
        client(ms_header=MS_HEADER).get("http://svc/x", timeout=10.0)
    headers, timeout = seen[-1]
    assert headers["grpc-timeout"] == "1250000u"
    assert headers[MS_HEADER] == "1250"
    assert timeout == {"connect": 1.25, "read": 1.25, "write": 1.25, "pool": 1.25}


def test_a_header_the_caller_set_is_kept_and_shorter_timeouts_stay() -> None:
    clock = seawall.ManualClock()
    seen.clear()
    with seawall.deadline(seawall.Deadline.after(5.0, clock=clock)):
        client().get("http://svc/x", headers={"grpc-timeout": "1S"}, timeout=0.5)
    headers, timeout = seen[-1]
    assert headers["grpc-timeout"] == "1S"
    assert timeout["read"] == 0.5


def test_nothing_is_sent_after_the_deadline() -> None:
    clock = seawall.ManualClock()
    seen.clear()
    with pytest.raises(seawall.Timeout):
        with seawall.deadline(seawall.Deadline.after(0.1, clock=clock)):
            clock.advance(0.2)
            client().get("http://svc/x")
    assert seen == []


def test_async_client() -> None:
    async def main() -> dict:
        seen.clear()
        transport = httpx.MockTransport(capture)
        async with httpx.AsyncClient(transport=transport, event_hooks=async_deadline_hooks()) as c:
            async with seawall.timeout(2.0):
                await c.get("http://svc/x")
        return seen[-1][0]

    headers = asyncio.run(main())
    assert headers["grpc-timeout"].endswith(("u", "m", "n"))
