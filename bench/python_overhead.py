"""Per-call overhead of a guarded no-op call in Python, next to a bare call and pybreaker.

Run by bench/run.sh in a virtualenv with the seawall wheel and pybreaker installed.
Prints ns per call (best of 5 repeats) and the overhead over the bare call.
"""

import sys
import timeit

import seawall

try:
    import pybreaker
except ImportError:  # the peer is optional when run by hand
    pybreaker = None

N = 200_000


def best_ns(fn):
    t = min(timeit.repeat(fn, number=N, repeat=5))
    return t / N * 1e9


def noop():
    return None


breaker = seawall.CircuitBreaker(name="bench")


@breaker
def guarded():
    return None


rows = [("bare call", best_ns(noop))]
rows.append(("seawall @breaker (sync decorator)", best_ns(guarded)))
rows.append(("seawall breaker.call(fn)", best_ns(lambda: breaker.call(noop))))


def with_block():
    with breaker:
        pass


rows.append(("seawall `with breaker:`", best_ns(with_block)))
if pybreaker is not None:
    peer = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)

    @peer
    def peer_guarded():
        return None

    rows.append(("pybreaker @breaker (peer)", best_ns(peer_guarded)))

bare = rows[0][1]
print(f"python {sys.version.split()[0]}, seawall {seawall.__version__}, best of 5 x {N} calls")
for label, ns in rows:
    extra = "" if label == "bare call" else f"  (+{ns - bare:.0f} ns over bare, x{ns / bare:.1f})"
    print(f"{label:<40} {ns:8.0f} ns/call{extra}")
