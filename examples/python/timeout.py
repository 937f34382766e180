"""Timeouts and deadlines (docs/python.md, "Timeouts and deadlines").

Prints one line per case; every line is also asserted, so the script fails loudly if the
behaviour changes. Virtual time (ManualClock) where the numbers matter, the real clock
where the point is that work really stops.
"""

import asyncio
import socket

import seawall

# 1. A coroutine is cancelled at its deadline, and its cleanup runs.
cleanup = []


@seawall.timeout(0.05)
async def fetch_report() -> str:
    try:
        await asyncio.sleep(10)  # a slow dependency
        return "report"
    finally:
        cleanup.append("closed the connection")


async def main() -> None:
    try:
        await fetch_report()
    except seawall.Timeout as e:
        assert isinstance(e, TimeoutError) and cleanup == ["closed the connection"]
        print(f"async: {e}; cleanup ran: {cleanup == ['closed the connection']}")


asyncio.run(main())

# 2. The ambient deadline: nested scopes keep the earliest; a callee reads what is left
#    and hands it on (a header for the next service, a share for one attempt).
clock = seawall.ManualClock()  # virtual time; omit clock= in production


def call_inventory() -> None:
    d = seawall.current_deadline()
    headers = {"grpc-timeout": d.to_grpc_timeout()}
    attempt = d.budget(0.4, min=0.005)  # this attempt gets 40 % of what is left
    assert headers == {"grpc-timeout": "1500000u"} and attempt == 0.6
    print(f"ambient: {d.remaining()} s left, headers {headers}, one attempt gets {attempt} s")


with seawall.timeout(2.0, clock=clock):
    clock.advance(0.5)
    with seawall.timeout(5.0, clock=clock):  # the outer deadline (1.5 s left) is earlier
        call_inventory()

# 3. Synchronous code is cooperative: it checks the deadline between units of work.
@seawall.timeout(1.0, clock=clock)
def import_rows(rows: int) -> int:
    done = 0
    for _ in range(rows):
        seawall.check_deadline()  # raises seawall.Timeout once the deadline has passed
        clock.advance(0.3)  # one row takes 0.3 s
        done += 1
    return done


try:
    import_rows(10)
except seawall.Timeout as e:
    print(f"sync: {e}")

# 4. Blocking I/O: give the socket what is left of the budget, and let the scope's token
#    shut it down on time (for calls that have no timeout of their own).
a, b = socket.socketpair()
woken = []
try:
    with seawall.timeout(0.05):

        def unblock(reason: str) -> None:  # runs on seawall's timer thread at the deadline
            woken.append(reason)
            a.shutdown(socket.SHUT_RDWR)

        seawall.current_token().on_cancel(unblock)
        a.settimeout(seawall.current_deadline().remaining() + 1.0)  # belt and braces
        a.recv(1024)  # woken by the token at the deadline
except seawall.Timeout as e:
    assert woken == ["deadline_exceeded"]
    print(f"socket: {e}; token reason {woken[0]}")
finally:
    a.close()
    b.close()

# 5. A breaker with a timeout: a call that runs out counts as a failure and a timeout.
breaker = seawall.CircuitBreaker(name="pricing", timeout=0.5, consecutive_failures=2, clock=clock)


@breaker
def price() -> int:
    clock.advance(0.75)  # the dependency is slow today
    return 42


for _ in range(2):
    try:
        price()
    except seawall.Timeout:
        pass
snap = breaker.snapshot()
assert (snap["state"], snap["failures"], snap["timeouts"]) == ("open", 2, 2)
print(f"breaker: state={snap['state']} failures={snap['failures']} timeouts={snap['timeouts']}")

# 6. A server handler that honours its caller's deadline (from a grpc-timeout header).
incoming = seawall.Deadline.from_grpc_timeout("250m", clock=clock)
with seawall.deadline(incoming):
    assert seawall.current_deadline().remaining_ms() == 250
    print(f"server: caller's budget {seawall.current_deadline().remaining_ms()} ms")
