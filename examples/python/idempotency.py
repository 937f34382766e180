"""Idempotency: a payment that must be charged once, however often the request is retried
or raced. Run: python examples/python/idempotency.py (with the seawall wheel installed).

The lease and the TTL run on a ManualClock so the output is the same on every run; the
"payment provider" is a real 10 ms sleep, and the duplicates really wait for it (in
threads, without the GIL; then in asyncio tasks, without blocking the loop).

Prints exactly:

    5 concurrent requests: 1 charge; every caller got ch_1: True
    retry an hour later: ch_1, charges = 1
    same key, another amount: SEAWALL_IDEMPOTENCY_MISMATCH
    owner: crashed after calling the provider
    duplicate, once the lease expired: recovered (took over: True)
    asyncio: 5 concurrent requests, 1 charge, ch_2
    stats: executed=4 replayed=9 mismatched=1 taken_over=1
"""

import asyncio
import threading
import time

import seawall

clock = seawall.ManualClock()
payments = seawall.IdempotencyCache(name="payments", clock=clock, lease=5.0)
charges = 0
lock = threading.Lock()


# The handler of POST /orders/<id>/charge: the key says "this order's charge", the
# fingerprint says "with this payload" (the same key with another amount is refused).
@payments.idempotent(key=lambda order_id, amount: f"charge:{order_id}", fingerprint=lambda order_id, amount: {"order": order_id, "amount": amount})
def charge(order_id: str, amount: int) -> dict:
    global charges
    with lock:
        charges += 1
        n = charges
    time.sleep(0.01)  # the payment provider
    return {"charge_id": f"ch_{n}", "order_id": order_id, "amount": amount}


# 1. A client times out and retries while the first request is still running: five
#    concurrent requests for one order. One charge; every caller gets its result.
results = []
threads = [threading.Thread(target=lambda: results.append(charge("o-1", 100))) for _ in range(5)]
for t in threads:
    t.start()
for t in threads:
    t.join()
same = all(r == results[0] for r in results)
print(f"5 concurrent requests: {charges} charge; every caller got {results[0]['charge_id']}: {same}")

# 2. A retry an hour later gets the stored result (kept for the TTL, 24 h by default).
clock.advance(3600)
print(f"retry an hour later: {charge('o-1', 100)['charge_id']}, charges = {charges}")

# 3. The same key with another payload is a client bug (HTTP 422).
try:
    charge("o-1", 999)
except seawall.IdempotencyMismatch as err:
    print(f"same key, another amount: {err.code}")


# 4. An owner fails after side effects (outcome unknown): it raises OutcomeUnknown, its
#    claim is kept, the duplicate waits until the lease expires, then takes over and runs.
def crash() -> None:
    raise seawall.OutcomeUnknown("crashed after calling the provider")


try:
    payments.run("charge:o-2", crash)
except seawall.OutcomeUnknown as err:
    print(f"owner: {err}")

outcome = []


def recover() -> str:
    return f"recovered (took over: {seawall.current_run().took_over})"


duplicate = threading.Thread(target=lambda: outcome.append(payments.run("charge:o-2", recover)))
duplicate.start()
while payments.waiting == 0:  # the duplicate waits for the lease...
    time.sleep(0.001)
clock.advance(5.0)  # ...which expires: the duplicate takes over
duplicate.join()
print(f"duplicate, once the lease expired: {outcome[0]}")


# 5. The same in asyncio: duplicates wait without blocking the event loop.
async def charge_async(order_id: str) -> dict:
    async def provider() -> dict:
        global charges
        charges += 1
        await asyncio.sleep(0.01)
        return {"charge_id": f"ch_{charges}"}

    return await payments.run_async(f"charge:{order_id}", provider, fingerprint={"order": order_id})


async def main() -> None:
    before = charges
    got = await asyncio.gather(*(charge_async("o-3") for _ in range(5)))
    assert all(g == got[0] for g in got)
    print(f"asyncio: 5 concurrent requests, {charges - before} charge, {got[0]['charge_id']}")


asyncio.run(main())

s = payments.stats()
print(f"stats: executed={s['executed']} replayed={s['replayed']} mismatched={s['mismatched']} taken_over={s['taken_over']}")
