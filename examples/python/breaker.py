"""A breaker around a flaky call, on virtual time (the README's Python example)."""

import seawall

clock = seawall.ManualClock()  # tests run on virtual time; omit clock= in production
breaker = seawall.CircuitBreaker(name="prices", consecutive_failures=2, open_duration=10.0, clock=clock)
breaker.on_state_change(lambda e: print(f"event: {e.from_} -> {e.to} ({e.reason})"))

service_up = False


@breaker
def fetch_price() -> int:
    if not service_up:
        raise ConnectionError("connection refused")
    return 42


for _ in range(2):
    try:
        fetch_price()
    except ConnectionError:
        pass  # counted as a failure, then re-raised to us

try:
    fetch_price()
except seawall.BreakerOpen as e:
    print(f"rejected; retry after {e.retry_after} s")

service_up = True
clock.advance(10.0)
price = fetch_price()  # the probe succeeds and closes the breaker
assert breaker.state == "closed"
print(f"price = {price}, state = {breaker.state}")
