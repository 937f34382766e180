"""The demo scenario of examples/demo/README.md, from Python, on a ManualClock.

Run: python examples/demo/demo.py (with the seawall wheel installed)
"""

import sys

import seawall


def dependency_fails(t_ms: int) -> bool:
    return 2000 <= t_ms < 5000 or 9000 <= t_ms < 15000


def main() -> None:
    clock = seawall.ManualClock()
    breaker = seawall.CircuitBreaker(
        name="inventory",
        consecutive_failures=3,
        open_duration=2.0,
        open_duration_max=8.0,
        backoff_multiplier=2.0,
        half_open_max_calls=2,
        half_open_success_threshold=2,
        clock=clock,
    )
    breaker.on_state_change(
        lambda e: print(f"{round(e.at * 1000):6d} ms  {e.breaker}: {e.from_} -> {e.to} ({e.reason})")
    )
    print("python: flaky dependency behind a breaker, 40 ticks of 500 ms", file=sys.stderr)
    for i in range(40):
        t = 500 * i
        try:
            permit = breaker.try_acquire()
        except seawall.BreakerOpen:
            pass  # counted in the snapshot's "rejected"
        else:
            if dependency_fails(t):
                permit.failure(0.010)
            else:
                permit.success(0.010)
        clock.advance(0.5)
    s = breaker.snapshot()
    print(f"summary: state={s['state']} successes={s['successes']} failures={s['failures']} rejected={s['rejected']}")


if __name__ == "__main__":
    main()
