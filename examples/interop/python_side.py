"""Python side of the cross-language Redis proof (scripts/test-interop.sh runs it).

    python python_side.py write-a          # completes key A with values.json's A
    python python_side.py replay-b-c       # replays B (Node's) and C (C's)
    python python_side.py race KEY START_MS

Environment: SEAWALL_REDIS_URL, SEAWALL_INTEROP_PREFIX (each run of the script uses a
fresh prefix, so every key starts absent). Prints "PASS: ..." / "FAIL: ..." lines, or for
`race` one line "RACE python executed=<0|1> value=<compact JSON>"; exits 1 on a failure.
"""
import json
import os
import sys
import time

import seawall

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "values.json"), encoding="utf-8") as f:
    VALUES = json.load(f)

store = seawall.RedisStore(os.environ["SEAWALL_REDIS_URL"], prefix=os.environ["SEAWALL_INTEROP_PREFIX"])
cache = seawall.IdempotencyCache(name="interop", store=store)
failed = 0


def check(ok, what):
    global failed
    print(("PASS: " if ok else "FAIL: ") + what, flush=True)
    if not ok:
        failed += 1


def run(key, value):
    """cache.run(key) with a function returning `value`; returns (executed, result)."""
    ran = []

    def work():
        ran.append(1)
        return value

    result = cache.run(key, work)
    return bool(ran), result


def expect_replay(key, expected, wrote_by):
    executed, got = run(key, {"must": "not run"})
    check(not executed, f"python: key {key} replays (written by {wrote_by}), the function did not run")
    check(got == expected, f"python: key {key} replays the value {wrote_by} stored: {json.dumps(got, ensure_ascii=False)}")


def main(argv):
    mode = argv[1] if len(argv) > 1 else ""
    if mode == "write-a":
        executed, got = run("A", VALUES["A"])
        check(executed, "python: key A is fresh and executes")
        check(got == VALUES["A"], "python: key A returns the stored value")
    elif mode == "replay-b-c":
        expect_replay("B", VALUES["B"], "node")
        expect_replay("C", VALUES["C"], "c")
    elif mode == "race":
        key, start_ms = argv[2], int(argv[3])
        time.sleep(max(0.0, start_ms / 1000 - time.time()))
        ran = []

        def work():
            ran.append(1)
            time.sleep(0.5)  # hold the lease so the other processes are duplicates in progress
            return {"winner": "python"}

        got = cache.run(key, work)
        print(f"RACE python executed={len(ran)} value={json.dumps(got, separators=(',', ':'), ensure_ascii=False)}", flush=True)
        # Informational: 1 when this process found the key in progress and waited for the owner.
        print(f"race-info python waited={cache.stats()['waited']}", flush=True)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
