"""Replays every language-neutral breaker scenario (tests/conformance/breaker/*.json,
format in tests/conformance/README.md) through the public Python API on a ManualClock.

One pytest case per file. The scenario directory is $SEAWALL_CONFORMANCE_DIR when set,
else tests/conformance/breaker/ of the repository ($SEAWALL_REPO, else this checkout).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List

import seawall
from conformance_support import ScenarioFailure, Scenarios, expect_reported, load, python_options

RATE_EPSILON = 1e-9
# Durations cross the Python API as float seconds; compare them to the files' whole
# milliseconds within a nanosecond.
MS_EPSILON = 1e-6

SCENARIOS = Scenarios("breaker", "SEAWALL_CONFORMANCE_DIR")


def test_scenarios_exist() -> None:
    SCENARIOS.check_found()


def seconds(ms: Any) -> float:
    assert isinstance(ms, (int, float)) and not isinstance(ms, bool), f"expected a number of ms, got {ms!r}"
    return ms / 1000


def same_ms(actual_seconds: float, expected: Any) -> bool:
    if expected == "inf":
        return math.isinf(actual_seconds)
    return abs(actual_seconds * 1000 - expected) <= MS_EPSILON


def show_ms(s: float) -> str:
    return "inf" if math.isinf(s) else f"{s * 1000:g}"


def check_keys(step: Dict[str, Any], allowed: List[str]) -> None:
    unknown = sorted(set(step) - set(allowed))
    if unknown:
        raise ScenarioFailure(f"unknown key(s) {unknown} in step {step}")


class Runner:
    def __init__(self, data: Dict[str, Any]) -> None:
        self.clock = seawall.ManualClock()
        self.breaker = seawall.CircuitBreaker(clock=self.clock, **python_options(data["config"]))
        self.events: List[seawall.StateChange] = []
        self.breaker.on_state_change(self.events.append)
        self.permits: Dict[str, seawall.Permit] = {}

    def record(self, permit: seawall.Permit, outcome: str, duration: float) -> None:
        if outcome == "success":
            permit.success(duration)
        elif outcome == "failure":
            permit.failure(duration)
        elif outcome == "timeout":
            permit.timeout(duration)
        elif outcome == "ignore":
            permit.ignore()
        elif outcome == "cancel":
            permit.cancel()
        else:
            raise ScenarioFailure(f"unknown outcome {outcome!r}")

    def step(self, s: Dict[str, Any]) -> None:
        if "acquire" in s:
            check_keys(s, ["acquire", "expect", "retry_after_ms", "rejected_state"])
            self.acquire(s)
        elif "record" in s:
            check_keys(s, ["record", "outcome", "duration_ms", "expect_error"])
            permit = self.permits.get(s["record"])
            if permit is None:
                raise ScenarioFailure(f"no permit named {s['record']!r}")
            duration = seconds(s.get("duration_ms", 0))
            if "expect_error" in s:
                try:
                    self.record(permit, s["outcome"], duration)
                except seawall.SeawallError as e:
                    if e.code != s["expect_error"]:
                        raise ScenarioFailure(f"record {s['record']}: expected {s['expect_error']}, got {e.code}: {e}")
                else:
                    raise ScenarioFailure(f"record {s['record']}: expected {s['expect_error']}, but it was accepted")
            else:
                self.record(permit, s["outcome"], duration)
        elif "call" in s:
            check_keys(s, ["call", "duration_ms", "times"])
            duration = seconds(s.get("duration_ms", 0))
            for n in range(s.get("times", 1)):
                try:
                    permit = self.breaker.try_acquire()
                except seawall.BreakerOpen as e:
                    raise ScenarioFailure(
                        f"call {s['call']} #{n + 1}: expected a permit, got rejected "
                        f"(state {e.state}, retry_after_ms {show_ms(e.retry_after)})"
                    )
                self.record(permit, s["call"], duration)
        elif "advance_ms" in s:
            check_keys(s, ["advance_ms"])
            self.clock.advance(seconds(s["advance_ms"]))
        elif "expect_state" in s:
            check_keys(s, ["expect_state"])
            state = self.breaker.state
            if state != s["expect_state"]:
                raise ScenarioFailure(f"expected state {s['expect_state']}, got {state}")
        elif "action" in s:
            check_keys(s, ["action"])
            action = {"force_open": self.breaker.force_open, "disable": self.breaker.disable, "reset": self.breaker.reset}
            if s["action"] not in action:
                raise ScenarioFailure(f"unknown action {s['action']!r}")
            action[s["action"]]()
        elif "expect_snapshot" in s:
            check_keys(s, ["expect_snapshot"])
            self.snapshot(s["expect_snapshot"])
        elif "expect_events" in s:
            check_keys(s, ["expect_events"])
            self.check_events(s["expect_events"])
        else:
            raise ScenarioFailure(f"unknown step {s}")

    def acquire(self, s: Dict[str, Any]) -> None:
        name = s["acquire"]
        expect = s.get("expect", "permit")
        if expect == "permit" and ("retry_after_ms" in s or "rejected_state" in s):
            raise ScenarioFailure('retry_after_ms / rejected_state only go with "expect": "rejected"')
        try:
            permit = self.breaker.try_acquire()
        except seawall.BreakerOpen as e:
            if expect != "rejected":
                raise ScenarioFailure(
                    f"acquire {name!r}: expected a permit, got rejected "
                    f"(state {e.state}, retry_after_ms {show_ms(e.retry_after)})"
                )
            if "retry_after_ms" in s and not same_ms(e.retry_after, s["retry_after_ms"]):
                raise ScenarioFailure(
                    f"acquire {name!r}: expected retry_after_ms {s['retry_after_ms']}, got {show_ms(e.retry_after)}"
                )
            if "rejected_state" in s and e.state != s["rejected_state"]:
                raise ScenarioFailure(f"acquire {name!r}: expected rejected_state {s['rejected_state']}, got {e.state}")
            assert e.code == "SEAWALL_BREAKER_OPEN"
            return
        if expect != "permit":
            raise ScenarioFailure(f"acquire {name!r}: expected {expect}, got a permit")
        self.permits[name] = permit

    def snapshot(self, want: Dict[str, Any]) -> None:
        snap = self.breaker.snapshot()
        problems = []
        for key, expected in want.items():
            if key == "retry_after_ms":
                if not same_ms(snap["retry_after"], expected):
                    problems.append(f"retry_after_ms: expected {expected}, got {show_ms(snap['retry_after'])}")
            elif key in ("failure_rate", "slow_call_rate"):
                if abs(snap[key] - expected) > RATE_EPSILON:
                    problems.append(f"{key}: expected {expected}, got {snap[key]}")
            elif key in snap:
                if snap[key] != expected:
                    problems.append(f"{key}: expected {expected!r}, got {snap[key]!r}")
            else:
                problems.append(f"unknown snapshot field {key!r}")
        if problems:
            raise ScenarioFailure("snapshot: " + "; ".join(problems))

    def check_events(self, want: List[Dict[str, Any]]) -> None:
        def show(e: Dict[str, Any]) -> str:
            return f"{{from: {e['from']}, to: {e['to']}, at_ms: {e['at_ms']}, reason: {e['reason']}}}"

        got = [
            {"from": e["from"], "to": e.to, "at_ms": round(e.at * 1000, 6), "reason": e.reason} for e in self.events
        ]
        ok = len(got) == len(want) and all(
            g["from"] == w["from"]
            and g["to"] == w["to"]
            and abs(g["at_ms"] - w["at_ms"]) <= MS_EPSILON
            and g["reason"] == w["reason"]
            for g, w in zip(got, want)
        )
        for w in want:
            check_keys(w, ["from", "to", "at_ms", "reason"])
        if not ok:
            raise ScenarioFailure(
                "events:\n  expected " + ", ".join(map(show, want)) + "\n  got      " + ", ".join(map(show, got))
            )


def run_scenario(path: Path) -> None:
    data = load(path)
    if "expect_config_error" in data:
        want = data["expect_config_error"]
        assert "steps" not in data, "an expect_config_error scenario has no steps"
        try:
            seawall.CircuitBreaker(clock=seawall.ManualClock(), **python_options(data["config"]))
        except seawall.ConfigError as e:
            assert isinstance(e, ValueError) and isinstance(e, seawall.SeawallError)
            assert e.code == "SEAWALL_CONFIG"
            assert e.field == want["field"], f"expected field {want['field']!r}, got {e.field!r} ({e})"
            assert want["field"] in str(e), f"message does not name {want['field']!r}: {e}"
            return
        raise ScenarioFailure(f"expected ConfigError for field {want['field']!r}, but the breaker was built")
    runner = Runner(data)
    for i, s in enumerate(data["steps"]):
        try:
            runner.step(s)
        except ScenarioFailure as f:
            raise ScenarioFailure(f"{path.name} [step {i}] {data.get('name', '')}: {f}") from None


@SCENARIOS.each
def test_scenario(path: Path) -> None:
    run_scenario(path)


def test_runner_detects_a_wrong_expectation(tmp_path: Path) -> None:
    """The runner must be able to fail: a scenario with a wrong expectation is reported."""
    expect_reported(
        run_scenario,
        tmp_path,
        {
            "name": "wrong on purpose",
            "config": {"name": "dep", "consecutive_failures": 1},
            "steps": [{"call": "failure"}, {"expect_state": "closed"}],
        },
        "expected state closed, got open",
    )
