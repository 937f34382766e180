"""RedisStore against a real redis-server that this module starts on a free 127.0.0.1 port
(no mocks). Fails, never skips, when redis-server is missing (scripts/bootstrap.sh installs
Debian's package)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from typing import Any, Iterator, List

import pytest

import seawall


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Resp:
    """A minimal RESP client (GET / INCR / raw commands) to look at what the store wrote."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            self.buf += self.sock.recv(65536)
        data, self.buf = self.buf[:n], self.buf[n + 2 :]
        return data

    def command(self, *args: Any) -> Any:
        parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        msg = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
        self.sock.sendall(msg)
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        raise AssertionError(f"unexpected reply {line!r}")


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not installed: the RedisStore tests need it (scripts/bootstrap.sh installs it)")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                Resp(port).close()
                break
            except OSError:
                assert proc.poll() is None, "redis-server exited at startup"
                assert time.monotonic() < deadline, "redis-server did not accept connections within 10 s"
                time.sleep(0.02)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


def url(port: int) -> str:
    return f"redis://127.0.0.1:{port}/0"


def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}:"


def test_ping_and_options(redis_port: int) -> None:
    store = seawall.RedisStore(url(redis_port), prefix="p:", command_timeout=0.5)
    assert store.kind == "redis" and store.prefix == "p:"
    assert 0 <= store.ping() < 1
    names = store.key_names("k")
    assert names["entry"].startswith("p:{") and names["entry"].endswith("}:e:k")
    with pytest.raises(seawall.ConfigError) as info:
        seawall.RedisStore("http://example.com")
    assert info.value.field == "url"
    with pytest.raises(seawall.ConfigError) as info:
        seawall.RedisStore(url(redis_port), prefix="a{b}")
    assert info.value.field == "prefix"
    with pytest.raises(seawall.ConfigError) as info:
        seawall.RedisStore(url(redis_port), command_timeout=-1)
    assert (info.value.field, info.value.value) == ("command_timeout", "-1s")
    with pytest.raises(seawall.ConfigError) as info:
        seawall.IdempotencyCache(store=store, max_bytes=10)
    assert "a redis store was passed in" in info.value.reason


def test_two_caches_sharing_redis_run_each_key_once(redis_port: int) -> None:
    p = prefix()
    # Two stores: as two processes would have (each its own connection and pub/sub).
    caches = [seawall.IdempotencyCache(store=seawall.RedisStore(url(redis_port), prefix=p)) for _ in range(2)]
    assert caches[0].remote
    runs: Counter = Counter()
    lock = threading.Lock()
    results: List[Any] = []
    keys = [f"k{i}" for i in range(30)]

    def work(key: str) -> dict:
        with lock:
            runs[key] += 1
        time.sleep(0.002)
        return {"key": key}

    def racer(i: int) -> None:
        cache = caches[i % 2]
        for key in keys[i:] + keys[:i]:
            r = cache.run(key, work, key, fingerprint={"k": key})
            with lock:
                results.append((key, r))

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(runs[k] == 1 for k in keys), runs
    assert len(results) == 8 * 30 and all(r == {"key": k} for k, r in results)
    executed = sum(c.stats()["executed"] for c in caches)
    assert executed == 30


def test_the_stored_entry_is_the_language_neutral_record(redis_port: int) -> None:
    p = prefix()
    store = seawall.RedisStore(url(redis_port), prefix=p)
    cache = seawall.IdempotencyCache(store=store)
    assert cache.run("rec", lambda: {"id": "ch_1", "amount": 100}, fingerprint={"amount": 100}) == {"id": "ch_1", "amount": 100}
    r = Resp(redis_port)
    try:
        raw = r.command("GET", store.key_names("rec")["entry"])
    finally:
        r.close()
    record = seawall.Record.decode(raw)
    assert record.content_type == "application/json"
    assert record.result == b'{"id":"ch_1","amount":100}'
    assert record.fingerprint == seawall.fingerprint({"amount": 100})
    assert cache.value(record) == {"id": "ch_1", "amount": 100}


def test_processes_sharing_redis_run_each_key_once(redis_port: int) -> None:
    p = prefix()
    script = textwrap.dedent(
        f"""
        import socket, sys, threading
        import seawall
        store = seawall.RedisStore({url(redis_port)!r}, prefix={p!r})
        cache = seawall.IdempotencyCache(store=store)
        def incr(key):
            s = socket.create_connection(("127.0.0.1", {redis_port}))
            name = ("fx:" + {p!r} + key).encode()
            s.sendall(b"*2\\r\\n$4\\r\\nINCR\\r\\n$%d\\r\\n%s\\r\\n" % (len(name), name))
            s.recv(64)
            s.close()
            return key
        def worker(i):
            keys = ["k%d" % n for n in range(100)]
            for key in keys[i * 50:] + keys[:i * 50]:
                assert cache.run(key, incr, key) == key
        ts = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        print(cache.stats()["executed"])
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
        for _ in range(2)
    ]
    outs = [proc.communicate(timeout=120) for proc in procs]
    for proc, (out, err) in zip(procs, outs):
        assert proc.returncode == 0, err.decode()
    assert sum(int(out) for out, _ in outs) == 100
    r = Resp(redis_port)
    try:
        counts = [r.command("GET", f"fx:{p}k{n}") for n in range(100)]
    finally:
        r.close()
    assert counts == [b"1"] * 100


def test_an_async_waiter_is_woken_by_another_store(redis_port: int) -> None:
    p = prefix()
    owner_cache = seawall.IdempotencyCache(store=seawall.RedisStore(url(redis_port), prefix=p))
    dup_cache = seawall.IdempotencyCache(store=seawall.RedisStore(url(redis_port), prefix=p), wait_timeout=20.0)

    async def main() -> Any:
        owner = owner_cache.begin("k")
        assert owner.kind == "execute"
        dup = asyncio.ensure_future(dup_cache.run_async("k", lambda: "never"))
        for _ in range(500):
            await asyncio.sleep(0.005)
            if dup_cache.waiting:
                break
        assert dup_cache.waiting == 1
        started = time.monotonic()
        await asyncio.get_running_loop().run_in_executor(None, owner_cache.complete, owner.lease, b'"from the owner"', "application/json")
        result = await asyncio.wait_for(dup, 10)
        return result, time.monotonic() - started

    result, took = asyncio.run(main())
    assert result == "from the owner"
    assert took < 5  # pub/sub, not the 30 s lease


def test_redis_down_fails_fast_or_runs_unprotected() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    cache = seawall.IdempotencyCache(store=seawall.RedisStore(dead, connect_timeout=0.5))
    started = time.monotonic()
    with pytest.raises(seawall.StoreUnavailable) as info:
        cache.run("k", lambda: 1)
    assert info.value.code == "SEAWALL_STORE_UNAVAILABLE"
    assert time.monotonic() - started < 3
    open_cache = seawall.IdempotencyCache(store=seawall.RedisStore(dead), on_store_error="run")
    assert open_cache.run("k", lambda: "ran unprotected") == "ran unprotected"
    assert open_cache.stats()["unprotected"] == 1

    async def main() -> None:
        with pytest.raises(seawall.StoreUnavailable):
            await cache.run_async("k2", lambda: 1)

    asyncio.run(main())


def test_a_crashed_owner_is_taken_over_and_then_fenced_off(redis_port: int) -> None:
    clock = seawall.ManualClock()  # the scripts read "now" from it (tests only)
    store = seawall.RedisStore(url(redis_port), prefix=prefix(), _test_clock=clock)
    cache = seawall.IdempotencyCache(store=store, clock=clock, lease=5.0, on_duplicate="reject")
    crashed = cache.begin("k")
    assert crashed.kind == "execute"
    with pytest.raises(seawall.IdempotencyInProgress):
        cache.run("k", lambda: "too early")
    clock.advance(5.0)
    assert cache.run("k", lambda: (seawall.current_run().took_over, "new owner")) == [True, "new owner"]
    with pytest.raises(seawall.LeaseLost):
        cache.complete(crashed.lease, b'"stale"', "application/json")
    assert cache.run("k", lambda: "x") == [True, "new owner"]
    with pytest.raises(seawall.ConfigError) as info:
        seawall.RedisStore(url(redis_port), _test_clock="now")
    assert info.value.field == "_test_clock"
