"""Replays every language-neutral idempotency scenario (tests/conformance/idempotency/*.json,
format in tests/conformance/README.md, "Idempotency scenarios") through the low-level API
of the installed package (cache.begin / complete / fail / release / renew, waiters' poll
and cancel, peek, stats) on a ManualClock. One pytest case per file; the suite fails when
it finds no file. Option names in messages are spelled as Python spells them (snake case,
the files' own spelling).

The scenario directory is $SEAWALL_IDEMPOTENCY_CONFORMANCE_DIR when set, else
tests/conformance/idempotency/ of the repository ($SEAWALL_REPO, else this checkout).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import pytest

import seawall
from conformance_support import Scenarios, load, python_options

MS_EPSILON = 1e-6
STATS = [
    "executed",
    "replayed",
    "in_progress",
    "mismatched",
    "waited",
    "taken_over",
    "completed",
    "released",
    "lease_lost",
    "store_errors",
    "unprotected",
]
ERROR_KEYS = ["expect_error", "message_contains"]
RESULTS = {"passed": 0, "failed": 0}


SCENARIOS = Scenarios("idempotency", "SEAWALL_IDEMPOTENCY_CONFORMANCE_DIR", ids=lambda p: p.name)
FILES = SCENARIOS.files


def test_scenarios_exist() -> None:
    SCENARIOS.check_found()


def same_ms(seconds: float, ms: Any) -> bool:
    return abs(seconds * 1000 - ms) <= MS_EPSILON


def check_keys(where: str, step: Dict[str, Any], allowed: List[str]) -> None:
    for k in step:
        assert k in allowed, f"{where}: unknown key {k!r} (allowed: {', '.join(allowed)})"


def key_of(step: Dict[str, Any], field: str) -> str:
    base = step[field]
    assert isinstance(base, str), f"{field} must be a string"
    return base if "repeat" not in step else base * step["repeat"]


def output(step: Dict[str, Any]) -> Dict[str, Any]:
    result = step.get("result", "")
    if "repeat" in step:
        result = result * step["repeat"]
    return {
        "result": result,
        "content_type": step.get("content_type", ""),
        "metadata": [tuple(p) for p in step.get("metadata", [])],
    }


class Run:
    def __init__(self, file: str, cache: seawall.IdempotencyCache, clock: seawall.ManualClock) -> None:
        self.file = file
        self.cache = cache
        self.clock = clock
        self.leases: Dict[str, Any] = {}
        self.waiters: Dict[str, Any] = {}

    def attempt(self, where: str, step: Dict[str, Any], what: str, fn: Any) -> Any:
        """Runs fn; checks its error against the step's expect_error / message_contains.
        Returns (True, value) when it succeeded and no error was expected."""
        try:
            value = fn()
        except seawall.SeawallError as err:
            assert "expect_error" in step, f"{where}: {what}: expected success, got {err.code} ({err})"
            assert err.code == step["expect_error"], f"{where}: {what}: error code {err.code} ({err})"
            if "message_contains" in step:
                assert step["message_contains"] in str(err), (
                    f"{where}: {what}: expected the message to contain {step['message_contains']!r}, got: {err}"
                )
            return False, None
        assert "expect_error" not in step, f"{where}: {what}: expected error {step['expect_error']}, but it succeeded"
        return True, value

    def lease(self, where: str, name: str) -> Any:
        assert name in self.leases, f"{where}: no lease named {name!r}"
        return self.leases[name]

    def keep_lease(self, where: str, step: Dict[str, Any], lease: Any) -> None:
        assert isinstance(lease, seawall.Lease), f"{where}: expected a Lease, got {lease!r}"
        if "token_above" in step:
            other = self.lease(where, step["token_above"])
            assert lease.token > other.token, f"{where}: expected a token above {step['token_above']}'s ({other.token}), got {lease.token}"
        if "took_over" in step:
            assert lease.took_over is step["took_over"], f"{where}: took_over is {lease.took_over}"
        if "protected" in step:
            assert lease.protected is step["protected"], f"{where}: protected is {lease.protected}"
        if "as" in step:
            self.leases[step["as"]] = lease

    def check_record(self, where: str, want: Any, record: Any) -> None:
        if want is None:
            return
        check_keys(f"{where} record", want, ["result", "result_bytes", "content_type", "metadata", "error", "created_ms", "expires_ms", "token_of"])
        assert isinstance(record, seawall.Record), f"{where}: expected a Record, got {record!r}"
        if "result" in want:
            assert record.result == want["result"].encode(), f"{where}: record result {record.result!r}"
        if "result_bytes" in want:
            assert len(record.result) == want["result_bytes"], f"{where}: result_bytes {len(record.result)}"
        if "content_type" in want:
            assert record.content_type == want["content_type"], f"{where}: content_type {record.content_type!r}"
        if "metadata" in want:
            assert record.metadata == [tuple(p) for p in want["metadata"]], f"{where}: metadata {record.metadata!r}"
        if "error" in want:
            assert record.is_error is want["error"], f"{where}: error flag {record.is_error}"
        if "created_ms" in want:
            assert record.created_ms == want["created_ms"], f"{where}: created_ms {record.created_ms}"
        if "expires_ms" in want:
            assert record.expires_ms == want["expires_ms"], f"{where}: expires_ms {record.expires_ms}"
        if "token_of" in want:
            lease = self.lease(where, want["token_of"])
            assert record.token == lease.token, f"{where}: token_of {want['token_of']}: {record.token} != {lease.token}"

    def step(self, i: int, step: Dict[str, Any]) -> None:
        where = f"{self.file} [step {i}]"
        c = self.cache
        if "begin" in step:
            check_keys(where, step, ["begin", "repeat", "fingerprint", "as", "expect", "token_above", "took_over", "protected", "retry_after_ms", "completed", "record", *ERROR_KEYS])
            key = key_of(step, "begin")
            ok, o = self.attempt(where, step, f"begin {key!r}", lambda: c.begin(key, step.get("fingerprint")))
            if not ok:
                return
            got = "wait" if o.kind == "in_progress" and o.waiter is not None else o.kind
            assert got == step["expect"], f"{where}: begin {key!r}: got {got}, expected {step['expect']}"
            if o.kind == "execute":
                self.keep_lease(where, step, o.lease)
            elif o.kind == "replay":
                self.check_record(where, step.get("record"), o.record)
            elif o.kind == "mismatch":
                if "completed" in step:
                    assert o.completed is step["completed"], f"{where}: mismatch completed is {o.completed}"
                assert isinstance(o.error, seawall.IdempotencyMismatch) and o.error.code == "SEAWALL_IDEMPOTENCY_MISMATCH", where
            else:
                if "retry_after_ms" in step:
                    assert same_ms(o.retry_after, step["retry_after_ms"]), f"{where}: retry_after {o.retry_after} s"
                if o.waiter is not None:
                    assert "as" in step, f'{where}: a "wait" begin needs "as"'
                    self.waiters[step["as"]] = o.waiter
                else:
                    assert isinstance(o.error, seawall.IdempotencyInProgress), f"{where}: the in-progress error {o.error!r}"
                    assert same_ms(o.error.retry_after, step.get("retry_after_ms", o.error.retry_after * 1000)), where
        elif "complete" in step:
            check_keys(where, step, ["complete", "result", "repeat", "content_type", "metadata", "record", *ERROR_KEYS])
            lease = self.lease(where, step["complete"])
            out = output(step)
            ok, r = self.attempt(where, step, "complete", lambda: c.complete(lease, out["result"], out["content_type"], out["metadata"]))
            if ok:
                self.check_record(where, step.get("record"), r)
        elif "fail" in step:
            check_keys(where, step, ["fail", "result", "content_type", "expect", "record", *ERROR_KEYS])
            lease = self.lease(where, step["fail"])
            if "result" in step:
                out = output(step)
                call = lambda: c.fail(lease, out["result"], out["content_type"], out["metadata"])  # noqa: E731
            else:
                call = lambda: c.fail(lease)  # noqa: E731
            ok, r = self.attempt(where, step, "fail", call)
            if not ok:
                return
            got = "released" if r is None else "stored"
            if "expect" in step:
                assert got == step["expect"], f"{where}: fail: {got}"
            if r is not None:
                self.check_record(where, step.get("record"), r)
        elif "release" in step:
            check_keys(where, step, ["release", *ERROR_KEYS])
            lease = self.lease(where, step["release"])
            self.attempt(where, step, "release", lambda: c.release(lease))
        elif "renew" in step:
            check_keys(where, step, ["renew", "remaining_ms", *ERROR_KEYS])
            lease = self.lease(where, step["renew"])
            ok, left = self.attempt(where, step, "renew", lambda: c.renew(lease))
            if ok and "remaining_ms" in step:
                assert same_ms(left, step["remaining_ms"]), f"{where}: renew remaining {left} s"
        elif "poll" in step:
            check_keys(where, step, ["poll", "expect", "as", "token_above", "took_over", "protected", "record", "lease_expires_in_ms", "timeout_in_ms", *ERROR_KEYS])
            assert step["poll"] in self.waiters, f"{where}: no waiter named {step['poll']!r}"
            w = self.waiters[step["poll"]]
            ok, p = self.attempt(where, step, f"poll {step['poll']}", w.poll)
            if not ok:
                return
            assert p.state == step["expect"], f"{where}: poll {step['poll']}: {p.state}"
            if p.state == "pending":
                if "lease_expires_in_ms" in step:
                    assert same_ms(p.lease_expires_in, step["lease_expires_in_ms"]), f"{where}: lease_expires_in {p.lease_expires_in}"
                if "timeout_in_ms" in step:
                    assert same_ms(p.timeout_in, step["timeout_in_ms"]), f"{where}: timeout_in {p.timeout_in}"
            elif p.state == "execute":
                self.keep_lease(where, step, p.lease)
            elif p.state == "replay":
                self.check_record(where, step.get("record"), p.record)
        elif "cancel" in step:
            check_keys(where, step, ["cancel"])
            assert step["cancel"] in self.waiters, f"{where}: no waiter named {step['cancel']!r}"
            self.waiters[step["cancel"]].cancel()
        elif "advance_ms" in step:
            check_keys(where, step, ["advance_ms"])
            self.clock.advance(step["advance_ms"] / 1000)
        elif "expect_key" in step:
            check_keys(where, step, ["expect_key", "repeat", "state"])
            key = key_of(step, "expect_key")
            state = c.peek(key)["state"]
            assert state == step["state"], f"{where}: expect_key {key!r}: {state}"
        elif "expect_stats" in step:
            check_keys(where, step, ["expect_stats"])
            stats = c.stats()
            for field, want in step["expect_stats"].items():
                assert field in STATS, f"{where}: unknown stats field {field!r}"
                assert stats[field] == want, f"{where}: stats {field} = {stats[field]}, expected {want}"
        else:
            raise AssertionError(f"{where}: unknown step kind: {step!r}")


def replay(path: Path) -> None:
    doc = load(path)
    file = path.name
    check_keys(file, doc, ["name", "config", "steps", "expect_config_error"])
    assert isinstance(doc.get("name"), str), f"{file}: missing name"
    clock = seawall.ManualClock()
    options = {**python_options(doc.get("config", {})), "clock": clock}
    if "expect_config_error" in doc:
        assert "steps" not in doc, f"{file}: a scenario with expect_config_error must not have steps"
        want = doc["expect_config_error"]
        with pytest.raises(seawall.ConfigError) as info:
            seawall.IdempotencyCache(**options)
        err = info.value
        assert err.code == "SEAWALL_CONFIG", f"{file}: {err.code}"
        assert want["field"] in str(err), f"{file}: expected the message to name {want['field']}: {err}"
        assert err.field == want["field"], f"{file}: field {err.field!r}"
        if "type_error" in want:
            assert err.type_mismatch is want["type_error"], f"{file}: type_mismatch {err.type_mismatch} ({err})"
        return
    steps = doc.get("steps")
    assert isinstance(steps, list) and steps, f"{file}: missing steps"
    run = Run(file, seawall.IdempotencyCache(**options), clock)
    for i, step in enumerate(steps):
        run.step(i, step)


@SCENARIOS.each
def test_scenario(path: Path) -> None:
    try:
        replay(path)
    except BaseException:
        RESULTS["failed"] += 1
        raise
    RESULTS["passed"] += 1


def test_zz_report(capsys: pytest.CaptureFixture[str]) -> None:
    """Prints how many scenarios were replayed (each runner does), after them."""
    total = RESULTS["passed"] + RESULTS["failed"]
    with capsys.disabled():
        print(f"\nconformance (Python): {RESULTS['passed']} of {total} idempotency scenarios passed")
    assert total == len(FILES), f"replayed {total} of {len(FILES)} scenarios (run the whole module)"
