"""seawall beside its Python peers, in one process, interleaved round by round.

    python bench/python_overhead.py            # ~1 min; prints the table, writes target/bench/python.{md,json}
    SEAWALL_BENCH_SMOKE=1 python bench/python_overhead.py   # every row, a few seconds, figures meaningless,
                                                            # writes target/bench/python-smoke.{md,json}

Run by bench/run.sh in target/bench/venv (scripts/build-python.sh --venv) with the pinned peers:
pybreaker, circuitbreaker, purgatory, aiobreaker and aws-lambda-powertools. A peer that is not
installed gets a row that says so; nothing else changes.

Scenarios (ns per call unless said otherwise):

- sync success / sync failure / open rejection: a no-op function (or one that raises) called
  bare, through `seawall._native._Floor` (a pyo3 object that only calls the function: the
  least a native wrapper costs), through seawall's `@breaker` and `breaker.call`, and through
  each peer's decorator;
- async success: `await f()` bare and through each library's decorator on an `async def`;
- 2 threads on one breaker: two threads calling one guarded function at once (wall time per
  call of both together), and the same with one thread, per round;
- memory: RSS growth (and tracemalloc's) over 200,000 rejected calls in the open state for
  each library, and over 200,000 calls in every state for seawall, each in a child process;
- idempotency: `cache.run(key, fn, ...)` on the memory store, fresh keys then the same keys
  replayed, beside AWS Powertools' `@idempotent_function` on a dict-backed persistence layer.

Every timed scenario runs its variants one after the other in each round (the first variant
rotates per round) so the noise of this shared machine lands on all of them alike; reported:
median ns/call over the rounds, min-max, overhead = variant - bare of the same round (median
over rounds) and `vs`: another variant's overhead / this one's. The garbage collector stays on.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import warnings
from importlib import metadata

import seawall
from seawall import _native

SMOKE = os.environ.get("SEAWALL_BENCH_SMOKE", "") not in ("", "0")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "target", "bench")

ROUNDS = 3 if SMOKE else 15
BATCH_S = 0.0 if SMOKE else 0.012  # seconds per variant per round (calibrated per variant)
SMOKE_CALLS = 200
THREAD_ROUNDS = 3 if SMOKE else 15
MEMORY_CALLS = 2_000 if SMOKE else 200_000
TRACE_CALLS = 1_000 if SMOKE else 50_000
IDEM_CALLS = 200 if SMOKE else 4_000

# Single-thread batches are timed in this thread's CPU time: other processes on the shared
# cores then slow a batch down only through the caches, not by taking the core away. The
# 2-thread scenario needs wall time (the threads wait for the GIL) and uses perf_counter.
CLOCK = time.thread_time

HOUR = 3600.0
NEVER = 1_000_000_000  # a failure threshold out of reach

PEERS = ["pybreaker", "circuitbreaker", "purgatory", "aiobreaker"]
PINS = {"pybreaker": "1.4.1", "circuitbreaker": "2.1.3", "purgatory": "3.0.1", "aiobreaker": "1.2.0",
        "aws-lambda-powertools": "3.37.0"}


def dist_version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def load_peer(name):
    """The peer's module, or None when it is not installed (its rows then say so)."""
    try:
        return __import__(name)
    except ImportError:
        return None


peer_mods = {name: load_peer(name) for name in PEERS}


class Ran(BaseException):
    """Raised by the function of a rejection row if it ever runs: aborts the benchmark."""


class Boom(Exception):
    """The failure of the failure rows."""


def noop():
    return None


def boom():
    raise Boom()


def must_not_run():
    raise Ran("a rejected call ran the function")


async def anoop():
    return None


# ---------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------


def compile_batch(stmt, ns, is_async=False):
    """A function `batch(n) -> seconds` running `stmt` n times in a compiled loop (timeit's
    way, with the garbage collector left on)."""
    body = "\n".join("        " + line for line in stmt.strip("\n").splitlines())
    kw = "async def" if is_async else "def"
    src = (f"{kw} _batch(_n, _perf=_perf, _repeat=_repeat):\n"
           f"    _t0 = _perf()\n"
           f"    for _ in _repeat(None, _n):\n{body}\n"
           f"    return _perf() - _t0\n")
    scope = dict(ns)
    scope["_perf"] = CLOCK
    scope["_repeat"] = itertools.repeat
    exec(compile(src, f"<bench {stmt.strip()[:40]!r}>", "exec"), scope)
    fn = scope["_batch"]
    if is_async:
        loop = ns["_loop"]
        return lambda n: loop.run_until_complete(fn(n))
    return fn


def calibrate(batch):
    """Calls per batch so one batch takes about BATCH_S."""
    if SMOKE:
        return SMOKE_CALLS
    n = 100
    while True:
        t = batch(n)
        if t >= BATCH_S / 4 or n >= 10_000_000:
            return max(100, int(n * BATCH_S / max(t, 1e-9)))
        n *= 4


class Variant:
    def __init__(self, name, note, batch=None, missing=None, lib=None):
        self.name = name
        self.note = note
        self.batch = batch  # n -> seconds
        self.missing = missing  # why there is no measurement
        self.lib = lib or name
        self.samples = []  # ns/call per round
        self.overheads = []  # ns/call over bare, per round
        self.n = 0


class Scenario:
    def __init__(self, sid, title, unit="ns/call"):
        self.sid = sid
        self.title = title
        self.unit = unit
        self.variants = []
        self.extra = {}  # per-variant note additions

    def add(self, v):
        self.variants.append(v)
        return v

    def get(self, name):
        return next((v for v in self.variants if v.name == name), None)


def run_interleaved(sc, rounds=ROUNDS):
    live = [v for v in sc.variants if v.batch is not None]
    for v in live:
        v.batch(min(200, SMOKE_CALLS))  # warm up
        v.n = calibrate(v.batch)
    for r in range(rounds):
        k = r % len(live)
        order = live[k:] + live[:k]
        this = {}
        for v in order:
            this[v.name] = v.batch(v.n) / v.n * 1e9
        bare = this.get("bare")
        for v in live:
            v.samples.append(this[v.name])
            if bare is not None and v.name != "bare":
                v.overheads.append(this[v.name] - bare)


def med(xs):
    return statistics.median(xs) if xs else None


def overhead(v):
    return med(v.overheads) if v and v.overheads else None


# ---------------------------------------------------------------------------------------
# breakers as each library builds them
# ---------------------------------------------------------------------------------------


def missing_note(lib):
    return f"not installed (pip install {lib}=={PINS[lib]})"


def make_breakers(kind, fn, is_async=False):
    """{library: (guarded function, note)} for one scenario kind: "closed" (thresholds at their
    defaults), "failing" (thresholds out of reach) or "open" (tripped, open for an hour)."""
    out = {}
    trip_fn = boom
    atrip = None

    # seawall
    if kind == "closed":
        b = seawall.CircuitBreaker(name="bench")
    elif kind == "failing":
        b = seawall.CircuitBreaker(name="bench", consecutive_failures=NEVER)
    else:
        b = seawall.CircuitBreaker(name="bench", consecutive_failures=1, open_duration=HOUR)
        try:
            b.call(trip_fn)
        except Boom:
            pass
        assert b.state == "open", b.state
    out["seawall"] = (b(fn), "`@breaker`", b)

    pb = peer_mods["pybreaker"]
    if pb is not None and not is_async:
        if kind == "closed":
            p = pb.CircuitBreaker(fail_max=5, reset_timeout=30)
        elif kind == "failing":
            p = pb.CircuitBreaker(fail_max=NEVER, reset_timeout=30)
        else:
            p = pb.CircuitBreaker(fail_max=1, reset_timeout=HOUR)
            try:
                p.call(trip_fn)
            except Exception:
                pass
            assert p.current_state == "open", p.current_state
        out["pybreaker"] = (p(fn), "`@CircuitBreaker(fail_max=...)`", p)
    elif pb is not None:
        out["pybreaker"] = (None, "no asyncio support (its `call_async` needs Tornado)", None)

    cb = peer_mods["circuitbreaker"]
    if cb is not None:
        if kind == "closed":
            c = cb.CircuitBreaker(failure_threshold=5, recovery_timeout=30, name=None)
        elif kind == "failing":
            c = cb.CircuitBreaker(failure_threshold=NEVER, recovery_timeout=30)
        else:
            c = cb.CircuitBreaker(failure_threshold=1, recovery_timeout=HOUR)
        g = c(fn)
        if kind == "open":
            try:
                c.call(trip_fn)
            except Boom:
                pass
            assert c.opened, c.state
        out["circuitbreaker"] = (g, "`@circuit(failure_threshold=...)`", c)

    pg = peer_mods["purgatory"]
    if pg is not None:
        threshold = {"closed": 5, "failing": NEVER, "open": 1}[kind]
        ttl = HOUR if kind == "open" else 30
        if is_async:
            f = pg.AsyncCircuitBreakerFactory(default_threshold=threshold, default_ttl=ttl)
        else:
            f = pg.SyncCircuitBreakerFactory(default_threshold=threshold, default_ttl=ttl)
        g = f("bench")(fn)
        if kind == "open":
            if is_async:
                tripper = f("bench")(aboom)
                try:
                    asyncio.get_event_loop_policy().get_event_loop().run_until_complete(tripper())
                except Exception:
                    pass
            else:
                try:
                    f("bench")(trip_fn)()
                except Exception:
                    pass
        out["purgatory"] = (g, "factory decorator `@breakers(\"name\")`, in-memory unit of work", f)

    ab = peer_mods["aiobreaker"]
    if ab is not None:
        if kind == "closed":
            a = ab.CircuitBreaker(fail_max=5, timeout_duration=dt.timedelta(seconds=30))
        elif kind == "failing":
            a = ab.CircuitBreaker(fail_max=NEVER, timeout_duration=dt.timedelta(seconds=30))
        else:
            a = ab.CircuitBreaker(fail_max=1, timeout_duration=dt.timedelta(hours=1))
            try:
                a.call(trip_fn)
            except Exception:
                pass
            assert a.current_state == ab.CircuitBreakerState.OPEN, a.current_state
        out["aiobreaker"] = (a(fn), "`@CircuitBreaker(fail_max=...)`", a)
    del atrip
    return out


async def aboom():
    raise Boom()


def add_peer_rows(sc, breakers, stmt_of, ns, is_async=False):
    for lib in ["seawall"] + PEERS:
        if lib not in breakers:
            sc.add(Variant(lib, "", missing=missing_note(lib)))
            continue
        g, note, _ = breakers[lib]
        if g is None:
            sc.add(Variant(lib, "", missing=note))
            continue
        name = f"g_{lib}"
        ns[name] = g
        sc.add(Variant(lib, note, compile_batch(stmt_of(name), ns, is_async)))


# ---------------------------------------------------------------------------------------
# scenarios
# ---------------------------------------------------------------------------------------


def sync_success():
    sc = Scenario("sync_success", "sync call, success")
    ns = {"f": noop}
    b = seawall.CircuitBreaker(name="bench-call")
    ns["b"] = b
    ns["floor"] = _native._Floor(noop)
    sc.add(Variant("bare", "`f()`, a no-op function", compile_batch("f()", ns)))
    sc.add(Variant("floor", "`_Floor(f)()`: a pyo3 object that only calls f (the least a native wrapper costs)",
                   compile_batch("floor()", ns)))
    breakers = make_breakers("closed", noop)
    add_peer_rows(sc, breakers, lambda g: f"{g}()", ns)
    sc.add(Variant("floor .call", "`_Floor().call(f)`: the floor of a method taking f", compile_batch("floor.call(f)", ns)))
    sc.add(Variant("seawall .call", "`breaker.call(f)`", compile_batch("b.call(f)", ns), lib="seawall"))
    run_interleaved(sc)
    return sc


def sync_failure():
    sc = Scenario("sync_failure", "sync call, failure (exception raised and caught; thresholds out of reach)")
    ns = {"f": boom, "Boom": Boom, "floor": _native._Floor(boom)}
    try_stmt = "try:\n    {}\nexcept Boom:\n    pass"
    sc.add(Variant("bare", "`f()` raising, in try/except", compile_batch(try_stmt.format("f()"), ns)))
    sc.add(Variant("floor", "`_Floor(f)()`", compile_batch(try_stmt.format("floor()"), ns)))
    breakers = make_breakers("failing", boom)
    add_peer_rows(sc, breakers, lambda g: try_stmt.format(f"{g}()"), ns)
    run_interleaved(sc)
    return sc


def open_rejection():
    sc = Scenario("open_rejection", "open state, rejection (open for an hour; the function never runs)")
    ns = {"f": noop, "Ran": Ran}
    try_stmt = "try:\n    {}\nexcept Exception:\n    pass"
    sc.add(Variant("bare", "`f()`, a no-op, in try/except (a rejected call skips it)",
                   compile_batch(try_stmt.format("f()"), ns)))
    ns["floor"] = _native._Floor(boom)
    ns["Boom"] = Boom
    sc.add(Variant("floor", "`_Floor(f)()` with f raising a new exception: the least a rejection by exception costs",
                   compile_batch(try_stmt.format("floor()"), ns)))
    breakers = make_breakers("open", must_not_run)
    add_peer_rows(sc, breakers, lambda g: try_stmt.format(f"{g}()"), ns)
    run_interleaved(sc)
    for lib, (_, _, obj) in breakers.items():
        if lib == "seawall":
            assert obj.state == "open"
    return sc


def async_success():
    sc = Scenario("async_success", "async call, success (`await`, one event loop)")
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    ns = {"f": anoop, "_loop": loop}
    sc.add(Variant("bare", "`await f()`, a no-op coroutine function", compile_batch("await f()", ns, True)))

    async def floor(*args, **kwargs):
        return await anoop(*args, **kwargs)

    ns["floor"] = floor
    sc.add(Variant("floor", "`async def w(*a, **k): return await f(*a, **k)`: the least a decorator written in "
                            "Python costs", compile_batch("await floor()", ns, True)))
    breakers = make_breakers("closed", anoop, is_async=True)
    add_peer_rows(sc, breakers, lambda g: f"await {g}()", ns, is_async=True)
    run_interleaved(sc)
    loop.close()
    asyncio.set_event_loop(None)
    return sc


def two_threads():
    """Two threads call one guarded function at once; wall time per call of both together,
    beside one thread alone, per round (the GIL lets one run at a time: this shows what the
    breaker's own locking adds when the interpreter switches threads in the middle of a call)."""
    sc = Scenario("two_threads", "2 threads on one breaker (wall time / calls of both threads)")
    ns = {"f": noop}
    plain = {"bare": (noop, "`f()` in each thread")}
    breakers = make_breakers("closed", noop)
    rows = []
    for lib in ["bare", "seawall"] + PEERS:
        if lib == "bare":
            g, note = plain["bare"]
        elif lib in breakers:
            g, note = breakers[lib][0], breakers[lib][1]
        else:
            sc.add(Variant(lib, "", missing=missing_note(lib)))
            continue
        ns[f"g_{lib}"] = g
        v = sc.add(Variant(lib, note, compile_batch(f"g_{lib}()", ns)))
        v.one = []
        v.ratio = []
        rows.append(v)

    def timed(batch, n, threads):
        barrier = threading.Barrier(threads + 1)
        errors = []

        def work():
            try:
                barrier.wait()
                batch(n)
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        ts = [threading.Thread(target=work) for _ in range(threads)]
        for t in ts:
            t.start()
        barrier.wait()
        t0 = time.perf_counter()
        for t in ts:
            t.join()
        took = time.perf_counter() - t0
        if errors:
            raise errors[0]
        return took / (n * threads) * 1e9

    for v in rows:
        v.batch(200)
        v.n = calibrate(v.batch) // 2 if not SMOKE else SMOKE_CALLS
        v.n = max(v.n, 100)
    for r in range(THREAD_ROUNDS):
        k = r % len(rows)
        this = {}
        for v in rows[k:] + rows[:k]:
            one = timed(v.batch, v.n, 1)
            two = timed(v.batch, v.n, 2)
            this[v.name] = (one, two)
        for v in rows:
            one, two = this[v.name]
            v.samples.append(two)
            v.one.append(one)
            v.ratio.append(one / two)  # throughput of 2 threads / 1 thread
            if v.name != "bare":
                v.overheads.append(two - this["bare"][1])
    for v in rows:
        sc.extra[v.name] = (f"1 thread {med(v.one):.0f} ns/call; 2 threads ÷ 1 thread throughput "
                            f"{med(v.ratio):.2f}× (min {min(v.ratio):.2f}×)")
    return sc


# -- idempotency ---------------------------------------------------------------------------


def charge(order):
    return {"order_id": order["order_id"], "status": "charged"}


def powertools_layer():
    """A minimal dict-backed `BasePersistenceLayer` (Powertools has no in-memory layer): the
    four storage methods over a dict, with the conditions its DynamoDB layer puts on
    `put_item` (no record, an expired one, or an in-progress one past its in-progress expiry)."""
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyItemAlreadyExistsError,
        IdempotencyItemNotFoundError,
    )
    from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer

    class DictPersistenceLayer(BasePersistenceLayer):
        def __init__(self):
            super().__init__()
            self.items = {}

        def _get_record(self, idempotency_key):
            try:
                return self.items[idempotency_key]
            except KeyError as exc:
                raise IdempotencyItemNotFoundError from exc

        def _put_record(self, data_record):
            old = self.items.get(data_record.idempotency_key)
            if old is not None:
                now = time.time()
                expired = old.expiry_timestamp is not None and old.expiry_timestamp < int(now)
                stale = (old.status == "INPROGRESS" and old.in_progress_expiry_timestamp is not None
                         and old.in_progress_expiry_timestamp < int(now * 1000))
                if not (expired or stale):
                    raise IdempotencyItemAlreadyExistsError(old_data_record=old)
            self.items[data_record.idempotency_key] = data_record

        def _update_record(self, data_record):
            self.items[data_record.idempotency_key] = data_record

        def _delete_record(self, data_record):
            self.items.pop(data_record.idempotency_key, None)

    return DictPersistenceLayer


def idempotency():
    """Two scenarios per function (fresh keys, then the same keys replayed): the order dict of
    bench/redis_python.py, and a no-op returning None (the mechanism alone)."""
    pt_note = None
    Layer = None
    try:
        warnings.filterwarnings("ignore", message="Couldn't determine the remaining time left")
        from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function

        Layer = powertools_layer()
    except Exception as err:  # noqa: BLE001 - reported in its rows
        pt_note = f"not installed (pip install aws-lambda-powertools=={PINS['aws-lambda-powertools']} boto3): {type(err).__name__}"

    out = []
    for fn_name, fn, note in [("order", charge, "`charge(order)` returning a 2-key dict"),
                              ("noop", None, "a no-op returning None")]:
        fresh = Scenario(f"idempotency_fresh_{fn_name}", f"idempotency `run`, fresh key, memory store ({note})")
        replay = Scenario(f"idempotency_replay_{fn_name}", f"idempotency `run`, replay, memory store ({note})")
        libs = ["bare", "seawall", "powertools"]
        for sc in (fresh, replay):
            for lib in libs:
                if lib == "powertools" and (Layer is None or fn is None):
                    sc.add(Variant(lib, "", missing=pt_note or "not measured: Powertools' decorator needs a dict argument to key on"))
                else:
                    sc.add(Variant(lib, ""))
        notes = {
            "bare": "the function called with the order" if fn else "`f()`",
            "seawall": "`cache.run(order[\"order_id\"], charge, order)`, `IdempotencyCache()` (its own memory store)"
            if fn else "`cache.run(key, f)`",
            "powertools": "`@idempotent_function(data_keyword_argument=\"order\", config=IdempotencyConfig("
                          "event_key_jmespath=\"order_id\"), persistence_store=<dict-backed layer>)`",
        }
        for sc in (fresh, replay):
            for v in sc.variants:
                if v.missing is None:
                    v.note = notes[v.name]
        n = IDEM_CALLS
        live = [lib for lib in libs if fresh.get(lib).missing is None]
        rounds = ROUNDS
        for r in range(rounds + 1):  # round 0 warms up and is not counted
            k = r % len(live)
            this_f, this_r = {}, {}
            for lib in live[k:] + live[:k]:
                orders = [{"order_id": f"r{r}-{lib}-{i}"} for i in range(n)]
                keys = [o["order_id"] for o in orders]
                if lib == "bare":
                    if fn is not None:
                        def batch(fn=fn, orders=orders):
                            t0 = CLOCK()
                            for o in orders:
                                fn(o)
                            return CLOCK() - t0
                    else:
                        def batch(keys=keys):
                            t0 = CLOCK()
                            for k_ in keys:
                                noop()
                            return CLOCK() - t0
                    t_f, t_r = batch(), batch()
                elif lib == "seawall":
                    cache = seawall.IdempotencyCache(name="bench", max_entries=n + 16)
                    run = cache.run
                    if fn is not None:
                        def batch(run=run, fn=fn, orders=orders):
                            t0 = CLOCK()
                            for o in orders:
                                run(o["order_id"], fn, o)
                            return CLOCK() - t0
                    else:
                        def batch(run=run, keys=keys):
                            t0 = CLOCK()
                            for k_ in keys:
                                run(k_, noop)
                            return CLOCK() - t0
                    t_f, t_r = batch(), batch()
                    assert cache.run(keys[0], must_not_run) == (charge(orders[0]) if fn else None)
                else:
                    layer = Layer()
                    config = IdempotencyConfig(event_key_jmespath="order_id")

                    @idempotent_function(data_keyword_argument="order", config=config, persistence_store=layer)
                    def pt_charge(order):
                        return {"order_id": order["order_id"], "status": "charged"}

                    def batch(g=pt_charge, orders=orders):
                        t0 = CLOCK()
                        for o in orders:
                            g(order=o)
                        return CLOCK() - t0

                    t_f, t_r = batch(), batch()
                    assert len(layer.items) == n, len(layer.items)
                this_f[lib] = t_f / n * 1e9
                this_r[lib] = t_r / n * 1e9
            if r == 0:
                continue
            for sc, this in ((fresh, this_f), (replay, this_r)):
                for lib in live:
                    v = sc.get(lib)
                    v.samples.append(this[lib])
                    if lib != "bare":
                        v.overheads.append(this[lib] - this["bare"])
        for sc in (fresh, replay):
            for v in sc.variants:
                v.n = n
        out += [fresh, replay]
    return out


# -- memory --------------------------------------------------------------------------------


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_step(lib, state):
    """One call of the given library in the given state, as a function (exceptions caught)."""
    if state == "open":
        breakers = make_breakers("open", must_not_run)
        g = breakers[lib][0]

        def step():
            try:
                g()
            except Exception:
                pass
            return 1
        return step
    assert lib == "seawall"
    clock = seawall.ManualClock()
    if state == "closed_success":
        b = seawall.CircuitBreaker(name="mem")
        g = b(noop)

        def step():
            g()
            return 1
    elif state == "closed_failure":
        b = seawall.CircuitBreaker(name="mem", consecutive_failures=NEVER)
        g = b(boom)

        def step():
            try:
                g()
            except Boom:
                pass
            return 1
    elif state == "half_open":
        b = seawall.CircuitBreaker(name="mem", clock=clock, consecutive_failures=1, open_duration=1.0)
        try:
            b.call(boom)
        except Boom:
            pass
        clock.advance(2.0)
        probe = b.try_acquire()  # the one probe is out: every call is rejected in half-open
        assert b.state == "half_open" and probe.is_probe
        g = b(must_not_run)
        step_keep = probe

        def step():
            try:
                g()
            except seawall.BreakerOpen:
                pass
            return 1
        step.keep = step_keep
    elif state == "cycle":
        b = seawall.CircuitBreaker(name="mem", clock=clock, consecutive_failures=1, open_duration=1.0)
        gf, gs = b(boom), b(noop)
        advance = clock.advance

        def step():
            try:
                gf()  # closed -> open
            except Boom:
                pass
            advance(2.0)
            gs()  # half_open probe -> closed
            return 2
    else:
        raise ValueError(state)
    return step


def memory_child(lib, state, calls, trace_calls):
    step = memory_step(lib, state)
    done = 0
    while done < max(calls // 10, 100):  # warm-up: caches, free lists, the first arena
        done += step()
    gc.collect()
    segments = []
    base = start = rss_bytes()
    done = 0
    seg = calls // 4
    for _ in range(4):
        d = 0
        while d < seg:
            d += step()
        done += d
        gc.collect()
        now = rss_bytes()
        segments.append((now - start) / d)
        start = now
    total_rss = rss_bytes() - base
    import tracemalloc

    tracemalloc.start()
    d = 0
    while d < max(trace_calls // 10, 100):
        d += step()
    gc.collect()
    t0 = tracemalloc.get_traced_memory()[0]
    d = 0
    while d < trace_calls:
        d += step()
    gc.collect()
    t1 = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(json.dumps({"calls": done, "rss_total": total_rss, "rss_per_call": total_rss / done,
                      "segments": segments, "traced_per_call": (t1 - t0) / d, "trace_calls": d}))
    sys.stdout.flush()
    os._exit(0)  # skip tearing down what a leaking library kept


def memory_scenarios():
    def child(lib, state):
        cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", lib, state,
               str(MEMORY_CALLS), str(TRACE_CALLS)]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"memory child {lib}/{state} failed:\n{p.stderr}")
        return json.loads(p.stdout.strip().splitlines()[-1])

    def row(sc, name, lib, state, note):
        r = child(lib, state)
        v = sc.add(Variant(name, note))
        v.samples = r["segments"]
        v.n = r["calls"]
        v.mem = r
        v.median_override = r["rss_per_call"]
        sc.extra[name] = (f"RSS +{r['rss_total'] / 1024:.0f} KB over {r['calls']:,} calls "
                          f"(per quarter: {', '.join(f'{s:.2f}' for s in r['segments'])} B/call); "
                          f"tracemalloc {r['traced_per_call']:+.2f} B/call over {r['trace_calls']:,} calls")
        return v

    open_sc = Scenario("memory_open", f"memory growth over {MEMORY_CALLS:,} rejected calls, open state", "bytes/call")
    for lib in ["seawall"] + PEERS:
        if lib != "seawall" and peer_mods[lib] is None:
            open_sc.add(Variant(lib, "", missing=missing_note(lib)))
            continue
        row(open_sc, lib, lib, "open", "RSS growth per call (child process)")

    states = Scenario("memory_seawall", f"seawall memory growth over {MEMORY_CALLS:,} calls in each state", "bytes/call")
    for state, note in [("closed_success", "closed, success"),
                        ("closed_failure", "closed, failure (threshold out of reach)"),
                        ("open", "open, rejection"),
                        ("half_open", "half-open, rejected (the one probe is out)"),
                        ("cycle", "closed -> open -> half-open -> closed, over and over (ManualClock)")]:
        row(states, f"seawall {state}", "seawall", state, note)
    return [open_sc, states]


# ---------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------


def fmt(x, unit):
    if x is None:
        return "—"
    if unit == "bytes/call":
        return f"{x:.2f}"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.1f}"


def fmt_ov(x):
    if x is None:
        return "—"
    return f"{x:+,.0f}" if abs(x) >= 100 else f"{x:+.1f}"


def variant_json(sc, v):
    if v.missing is not None:
        return {"variant": v.name, "note": v.missing, "median": None, "min": None, "max": None,
                "overhead": None, "vs": None}
    m = getattr(v, "median_override", None)
    if m is None:
        m = med(v.samples)
    ov = overhead(v)
    vs = None
    if ov is not None and sc.unit == "ns/call" and ov > 0:
        vs = {}
        for o in sc.variants:
            if o is v or o.name == "bare" or o.missing is not None:
                continue
            oo = overhead(o)
            if oo is not None:
                vs[o.name] = oo / ov
    note = v.note
    if v.name in sc.extra:
        note = f"{note}; {sc.extra[v.name]}" if note else sc.extra[v.name]
    return {"variant": v.name, "note": note, "median": m, "min": min(v.samples), "max": max(v.samples),
            "overhead": ov, "vs": vs}


def evaluate(scs):
    by = {sc.sid: sc for sc in scs}
    targets = []

    def ov(sid, name):
        sc = by.get(sid)
        return overhead(sc.get(name)) if sc and sc.get(name) else None

    sw, fl = ov("sync_success", "seawall"), ov("sync_success", "floor")
    if sw is not None and fl is not None:
        targets.append({"target": "sync decorator overhead ≤ 2× the bare PyO3 floor's overhead",
                        "measured": f"seawall `@breaker` {sw:+.0f} ns, floor `_Floor(f)()` {fl:+.0f} ns: {sw / fl:.2f}×",
                        "met": sw <= 2 * fl})
    pb = ov("sync_success", "pybreaker")
    if sw is not None:
        if pb is None:
            targets.append({"target": "sync decorator overhead ≥ 15× less than pybreaker's",
                            "measured": "pybreaker not installed", "met": False})
        else:
            targets.append({"target": "sync decorator overhead ≥ 15× less than pybreaker's",
                            "measured": f"seawall {sw:+.0f} ns, pybreaker {pb:+.0f} ns: {pb / sw:.1f}× less",
                            "met": pb >= 15 * sw})
    asw = ov("async_success", "seawall")
    for peer in ("purgatory", "aiobreaker"):
        po = ov("async_success", peer)
        if asw is None:
            continue
        if po is None:
            targets.append({"target": f"async overhead ≥ 5× less than {peer}'s", "measured": f"{peer} not installed", "met": False})
        else:
            targets.append({"target": f"async overhead ≥ 5× less than {peer}'s",
                            "measured": f"seawall {asw:+.0f} ns, {peer} {po:+.0f} ns: {po / asw:.1f}× less",
                            "met": po >= 5 * asw})
    mem = by.get("memory_seawall")
    if mem:
        # "No growth": under 0.25 B/call of RSS over the run (50 KB per 200,000 calls: page and
        # arena granularity) and under 0.05 B/call traced by tracemalloc.
        worst_rss = max(v.mem["rss_per_call"] for v in mem.variants)
        worst_tr = max(v.mem["traced_per_call"] for v in mem.variants)
        figures = "; ".join(f"{v.name.split(' ', 1)[1]} {v.mem['rss_per_call']:.3f} B/call RSS, "
                            f"{v.mem['traced_per_call']:+.3f} traced" for v in mem.variants)
        targets.append({"target": "seawall: no memory growth in any state (RSS ≤ 0.25 B/call and tracemalloc ≤ 0.05 B/call "
                                  f"over {MEMORY_CALLS:,} calls)",
                        "measured": figures, "met": worst_rss <= 0.25 and worst_tr <= 0.05})
    for kind, limit in (("replay", 1000), ("fresh", 2000)):
        o = ov(f"idempotency_{kind}_noop", "seawall")
        od = ov(f"idempotency_{kind}_order", "seawall")
        if o is None:
            continue
        targets.append({"target": f"idempotency memory-store {kind} overhead ≤ {limit // 1000} µs",
                        "measured": f"{o / 1000:.2f} µs (no-op returning None); {od / 1000:.2f} µs with the order dict",
                        "met": o <= limit})
    return targets


def report(scs, targets, started):
    cpus = os.cpu_count() or 1
    date = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    doc = {"language": "python", "date": date, "cpus": cpus, "rounds": ROUNDS,
           "python": platform.python_version(), "seawall": seawall.__version__,
           "peers": {k: dist_version(k) for k in PINS}, "smoke": SMOKE,
           "scenarios": [], "targets": targets}
    lines = []
    head = (f"## Python: seawall beside its peers ({date}, {cpus} CPUs, Python {platform.python_version()}"
            f"{', SMOKE RUN: figures meaningless' if SMOKE else ''})\n")
    lines.append(head)
    peers = ", ".join(f"{k} {v or 'not installed'}" for k, v in doc["peers"].items())
    lines.append(f"seawall {seawall.__version__}; {peers}. One process, variants interleaved round by round "
                 f"({ROUNDS} rounds, ~{BATCH_S * 1000:.0f} ms batches timed in thread CPU time; the first variant rotates). Median over rounds "
                 f"(min–max); overhead = variant − bare in the same round, median over rounds; "
                 f"× floor = overhead / the floor's overhead. Memory rows: child processes, bytes per call.\n")
    lines.append("| scenario | variant | median | min–max | overhead | × floor | notes |")
    lines.append("|---|---|---:|---:|---:|---:|---|")
    for sc in scs:
        fl = overhead(sc.get("floor")) if sc.get("floor") else None
        js = {"scenario": sc.sid, "title": sc.title, "unit": sc.unit, "variants": []}
        for v in sc.variants:
            j = variant_json(sc, v)
            js["variants"].append(j)
            if v.missing is not None:
                lines.append(f"| {sc.title} | {v.name} | — | — | — | — | {v.missing} |")
                continue
            x_floor = "—"
            if fl and j["overhead"] is not None and v.name != "floor" and fl > 0:
                x_floor = f"{j['overhead'] / fl:.2f}×"
            unit = "" if sc.unit == "ns/call" else f" {sc.unit}"
            lines.append(f"| {sc.title} | {v.name} | {fmt(j['median'], sc.unit)}{unit} | "
                         f"{fmt(j['min'], sc.unit)}–{fmt(j['max'], sc.unit)} | {fmt_ov(j['overhead'])} | {x_floor} | "
                         f"{j['note']} |")
        doc["scenarios"].append(js)
    lines.append("")
    if targets:
        lines.append("| target | measured | met |")
        lines.append("|---|---|---|")
        for t in targets:
            lines.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else 'no'} |")
    else:
        lines.append("Targets: not evaluated in a smoke run.")
    lines.append(f"\n({time.time() - started:.0f} s)")
    md = "\n".join(lines) + "\n"
    os.makedirs(OUT_DIR, exist_ok=True)
    stem = "python-smoke" if SMOKE else "python"
    with open(os.path.join(OUT_DIR, stem + ".md"), "w") as f:
        f.write(md)
    with open(os.path.join(OUT_DIR, stem + ".json"), "w") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(md)
    print(f"wrote {os.path.join(OUT_DIR, stem + '.md')} and .json")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--memory-child", nargs=4, metavar=("LIB", "STATE", "CALLS", "TRACE_CALLS"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        lib, state, calls, trace = args.memory_child
        memory_child(lib, state, int(calls), int(trace))
        return 0
    started = time.time()
    scs = []
    for fn in (sync_success, sync_failure, open_rejection, async_success, two_threads):
        t = time.time()
        scs.append(fn())
        print(f"  {fn.__name__}: {time.time() - t:.1f} s", file=sys.stderr)
    t = time.time()
    scs += idempotency()
    print(f"  idempotency: {time.time() - t:.1f} s", file=sys.stderr)
    t = time.time()
    scs += memory_scenarios()
    print(f"  memory: {time.time() - t:.1f} s", file=sys.stderr)
    targets = [] if SMOKE else evaluate(scs)
    report(scs, targets, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
