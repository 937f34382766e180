"""Eight Python threads hammering one breaker through open / half-open / closed cycles."""

from __future__ import annotations

import random
import sys
import threading
import time
from typing import Dict, List

import seawall

THREADS = 8
CALLS_PER_THREAD = 3000
MAX_PROBES = 3


def test_threads_hammering_one_breaker() -> None:
    clock = seawall.ManualClock()
    b = seawall.CircuitBreaker(
        name="shared", consecutive_failures=3, open_duration=0.010, half_open_max_calls=MAX_PROBES,
        half_open_success_threshold=MAX_PROBES, clock=clock,
    )
    events: List[seawall.StateChange] = []
    b.on_state_change(events.append)

    lock = threading.Lock()
    probes_out: Dict[int, int] = {}  # per generation: a re-open makes older probes late
    max_probes_out = 0
    probes_total = 0
    counts: Dict[str, int] = {"attempts": 0, "success": 0, "failure": 0, "ignore": 0, "rejected": 0}
    snapshot_in_flight_max = 0
    stop = threading.Event()
    errors: List[BaseException] = []

    def worker(seed: int) -> None:
        nonlocal probes_out, max_probes_out, probes_total
        rng = random.Random(seed)
        local = dict.fromkeys(counts, 0)
        try:
            for _ in range(CALLS_PER_THREAD):
                local["attempts"] += 1
                try:
                    permit = b.try_acquire()
                except seawall.BreakerOpen:
                    local["rejected"] += 1
                    clock.advance(0.002)  # time moves only through rejected callers
                    continue
                gen = permit.generation
                if permit.is_probe:
                    # Counted after the core admitted the probe and uncounted before its
                    # outcome frees the slot, so this can only under-count. Limits hold
                    # per half-open generation: when a probe fails, the breaker re-opens and
                    # the probes still out become late (their outcomes change nothing).
                    with lock:
                        probes_out[gen] = probes_out.get(gen, 0) + 1
                        probes_total += 1
                        max_probes_out = max(max_probes_out, probes_out[gen])
                time.sleep(0)  # let other threads in while the permit is out
                r = rng.random()
                outcome = "success" if r < 0.6 else "failure" if r < 0.95 else "ignore"
                if permit.is_probe:
                    with lock:
                        probes_out[gen] -= 1
                if outcome == "success":
                    permit.success()
                elif outcome == "failure":
                    permit.failure()
                else:
                    permit.ignore()
                local[outcome] += 1
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
        with lock:
            for k, v in local.items():
                counts[k] += v

    def monitor() -> None:
        nonlocal snapshot_in_flight_max
        while not stop.is_set():
            snapshot_in_flight_max = max(snapshot_in_flight_max, b.snapshot()["half_open_in_flight"])
            time.sleep(0)

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often
    start = time.monotonic()
    try:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
        mon = threading.Thread(target=monitor)
        mon.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        stop.set()
        mon.join(timeout=10)
    finally:
        sys.setswitchinterval(old_interval)
    elapsed = time.monotonic() - start

    assert not any(t.is_alive() for t in threads), "workers did not finish in time"
    assert not errors, errors
    assert elapsed < 30, f"took {elapsed:.1f} s"

    # Half-open never admitted more than half_open_max_calls probes at once.
    assert max_probes_out <= MAX_PROBES, max_probes_out
    assert snapshot_in_flight_max <= MAX_PROBES, snapshot_in_flight_max
    # ... and the test did exercise it: probes overlapped and the breaker cycled.
    assert probes_total > 0 and max_probes_out >= 2, (probes_total, max_probes_out)
    transitions = {(e.from_, e.to) for e in events}
    assert {("closed", "open"), ("open", "half_open"), ("half_open", "open")} <= transitions, transitions

    # Every call made is counted exactly once.
    s = b.snapshot()
    assert counts["attempts"] == THREADS * CALLS_PER_THREAD
    assert s["successes"] == counts["success"]
    assert s["failures"] == counts["failure"]
    assert s["ignored"] == counts["ignore"]
    assert s["rejected"] == counts["rejected"]
    assert s["successes"] + s["failures"] + s["ignored"] + s["rejected"] == counts["attempts"]
    assert s["half_open_in_flight"] == 0

    # Events were delivered one at a time, in order: each starts where the previous ended.
    assert events[0].from_ == "closed"
    for prev, nxt in zip(events, events[1:]):
        assert prev.to == nxt.from_, (prev, nxt)
        assert prev.at <= nxt.at
