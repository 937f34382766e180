"""The demo's flaky dependency on the real clock, with a progress display.

Same scenario as demo.py, scaled 5x faster so it runs in about 4 seconds: ticks of
0.1 s (40 of them), the dependency down from 0.4 s to 1.0 s and from 1.8 s to 3.0 s,
and open_duration 4 ticks (backoff x2, at most 16 ticks). On a real clock a call lands a
little after its tick, so the open durations are 10 ms short of whole ticks: the tick
that is due to probe then does, as on the virtual clock, and the transitions match the
ManualClock run of demo.py. Every call goes through the `@breaker` decorator; rejected
calls get the fallback. One line per tick, transitions as they happen.

Run: python examples/demo/live.py (with the seawall wheel installed)
"""

import sys
import time

import seawall

TICK = 0.1
TICKS = 40
SLACK = 0.01
COLOR = sys.stdout.isatty()
STATE_COLORS = {"closed": "32", "open": "31", "half_open": "33", "forced_open": "31", "disabled": "36"}


def paint(text: str, state: str) -> str:
    return f"\033[{STATE_COLORS[state]}m{text}\033[0m" if COLOR else text


def main() -> None:
    start = time.monotonic()
    down = [False]

    def fallback(err: seawall.BreakerOpen) -> str:
        return "rejected"

    breaker = seawall.CircuitBreaker(
        name="inventory",
        consecutive_failures=3,
        open_duration=4 * TICK - SLACK,
        open_duration_max=16 * TICK - SLACK,
        backoff_multiplier=2.0,
        half_open_max_calls=2,
        half_open_success_threshold=2,
        fallback=fallback,
    )
    origin = breaker.clock.now() - (time.monotonic() - start)
    breaker.on_state_change(
        lambda e: print(f"         >> {e.at - origin:5.2f} s  {e.from_} -> {paint(e.to, e.to)} ({e.reason})", flush=True)
    )

    @breaker
    def check_stock() -> str:
        time.sleep(0.002)  # the network
        if down[0]:
            raise ConnectionError("inventory service unavailable")
        return "ok"

    counts = {"ok": 0, "failed": 0, "rejected": 0}
    print(f"live: {TICKS} calls, one every {TICK:.1f} s, on the real clock", flush=True)
    for i in range(TICKS):
        deadline = start + i * TICK
        time.sleep(max(0.0, deadline - time.monotonic()))
        t = i * TICK
        down[0] = 0.4 <= t + 1e-9 < 1.0 or 1.8 <= t + 1e-9 < 3.0
        try:
            result = check_stock()
        except ConnectionError:
            result = "failed"
        counts[result] += 1
        state = breaker.state
        bar = "#" * counts["ok"] + "x" * counts["failed"] + "." * counts["rejected"]
        print(
            f"{t:5.1f} s  dependency {'DOWN' if down[0] else 'up  '}  call {result:<8}  "
            f"state {paint(f'{state:<9}', state)}  ok {counts['ok']:2d}  failed {counts['failed']:2d}  "
            f"rejected {counts['rejected']:2d}  {bar}",
            flush=True,
        )
    s = breaker.snapshot()
    print(
        f"summary: state={s['state']} successes={s['successes']} failures={s['failures']} "
        f"rejected={s['rejected']} ({time.monotonic() - start:.1f} s)"
    )


if __name__ == "__main__":
    main()
