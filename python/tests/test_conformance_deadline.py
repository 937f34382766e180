"""Replays every language-neutral deadline scenario (tests/conformance/deadline/*.json,
format in tests/conformance/README.md, "Deadline scenarios") through the public Python API
on ManualClocks, with durations in seconds as Python users pass them.

One pytest case per file. The scenario directory is $SEAWALL_DEADLINE_CONFORMANCE_DIR when
set, else tests/conformance/deadline/ of the repository ($SEAWALL_REPO, else this checkout).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import seawall
from conformance_support import SPECIAL_NUMBERS, ScenarioFailure, Scenarios, expect_reported, load

SCENARIOS = Scenarios("deadline", "SEAWALL_DEADLINE_CONFORMANCE_DIR")


def test_deadline_scenarios_exist() -> None:
    SCENARIOS.check_found("deadline scenario files")


def seconds(ms: Any) -> Any:
    """A file's milliseconds as the seconds a Python caller passes; the special number
    strings become floats; anything else (a wrong type) goes through as it is."""
    if isinstance(ms, str) and ms in SPECIAL_NUMBERS:
        return SPECIAL_NUMBERS[ms] / 1000
    if isinstance(ms, (int, float)) and not isinstance(ms, bool):
        return ms / 1000
    return ms


def whole_ms(s: float) -> int:
    """Seconds (an exact count of nanoseconds in the core) as whole ms, rounded down."""
    return int(round(s * 1e9)) // 1_000_000


def check_keys(step: Dict[str, Any], allowed: List[str]) -> None:
    unknown = sorted(set(step) - set(allowed))
    if unknown:
        raise ScenarioFailure(f"unknown key(s) {unknown} in step {step}")


class Runner:
    def __init__(self) -> None:
        self.clocks: Dict[str, seawall.ManualClock] = {"main": seawall.ManualClock()}
        self.deadlines: Dict[str, seawall.Deadline] = {}
        self.tokens: Dict[str, seawall.CancelToken] = {}
        self.guards: List[seawall.CancelGuard] = []

    def clock(self, s: Dict[str, Any]) -> seawall.ManualClock:
        name = s.get("clock", "main")
        if name not in self.clocks:
            raise ScenarioFailure(f"no clock {name!r}")
        return self.clocks[name]

    def deadline(self, name: str) -> seawall.Deadline:
        if name not in self.deadlines:
            raise ScenarioFailure(f"no deadline {name!r}")
        return self.deadlines[name]

    def token(self, name: str) -> seawall.CancelToken:
        if name not in self.tokens:
            raise ScenarioFailure(f"no token {name!r}")
        return self.tokens[name]

    def step(self, s: Dict[str, Any]) -> None:
        """Runs one step; an API error propagates (for `expect_error`)."""
        if "clock" in s and len(s) == 1:
            self.clocks[s["clock"]] = seawall.ManualClock()
        elif "advance_ms" in s:
            check_keys(s, ["advance_ms", "clock"])
            self.clock(s).advance(seconds(s["advance_ms"]))
        elif "deadline" in s:
            check_keys(s, ["deadline", "after_ms", "grpc", "clock", "expect_error"])
            clock = self.clock(s)
            if "after_ms" in s:
                d = seawall.Deadline.after(seconds(s["after_ms"]), clock=clock)
            elif "grpc" in s:
                d = seawall.Deadline.from_grpc_timeout(s["grpc"], clock=clock)
            else:
                raise ScenarioFailure("a deadline step needs after_ms or grpc")
            self.deadlines[s["deadline"]] = d
        elif "grpc_format_ms" in s:
            check_keys(s, ["grpc_format_ms", "expect"])
            header = seawall.format_grpc_timeout(seconds(s["grpc_format_ms"]))
            if header != s["expect"]:
                raise ScenarioFailure(f"format_grpc_timeout({s['grpc_format_ms']} ms): expected {s['expect']!r}, got {header!r}")
        elif "expect" in s:
            check_keys(s, ["expect"])
            self.expect(s["expect"])
        elif "earliest" in s:
            check_keys(s, ["earliest", "as", "expect_error"])
            a, b = s["earliest"]
            d = self.deadline(a).earliest(self.deadline(b))
            self.deadlines[s["as"]] = d
        elif "budget" in s:
            check_keys(s, ["budget", "fraction", "min_ms", "expect_ms"])
            got = self.deadline(s["budget"]).budget(s["fraction"], min=seconds(s["min_ms"]))
            if whole_ms(got) != s["expect_ms"]:
                raise ScenarioFailure(f"budget: expected {s['expect_ms']} ms, got {got * 1000:g} ms")
        elif "grpc_parse" in s:
            check_keys(s, ["grpc_parse", "expect_ms", "expect_error"])
            got = seawall.parse_grpc_timeout(s["grpc_parse"])
            if "expect_ms" not in s:
                if "expect_error" not in s:
                    raise ScenarioFailure(f"grpc_parse {s['grpc_parse']!r} needs expect_ms or expect_error")
            elif abs(got * 1000 - s["expect_ms"]) > 1e-9:
                raise ScenarioFailure(f"parse_grpc_timeout({s['grpc_parse']!r}): expected {s['expect_ms']} ms, got {got * 1000!r} ms")
        elif "cancel_at" in s:
            check_keys(s, ["cancel_at", "token"])
            self.guards.append(self.token(s["token"]).cancel_at(self.deadline(s["cancel_at"])))
        elif "token" in s:
            check_keys(s, ["token"])
            self.tokens[s["token"]] = seawall.CancelToken()
        elif "cancel" in s:
            check_keys(s, ["cancel"])
            self.token(s["cancel"]).cancel()
        elif "expect_token" in s:
            check_keys(s, ["expect_token"])
            for name, want in s["expect_token"].items():
                t = self.token(name)
                if t.reason != want:
                    raise ScenarioFailure(f"token {name}: expected {want!r}, got {t.reason!r}")
                if t.cancelled != (want is not None):
                    raise ScenarioFailure(f"token {name}: cancelled is {t.cancelled} with reason {t.reason!r}")
        else:
            raise ScenarioFailure(f"unknown step {s}")

    def expect(self, want: Dict[str, Dict[str, Any]]) -> None:
        problems = []
        for name, fields in want.items():
            d = self.deadline(name)
            for field, expected in fields.items():
                if field == "remaining_ms":
                    got: Any = d.remaining_ms()
                    if whole_ms(d.remaining()) != got:
                        problems.append(f"{name}: remaining() {d.remaining()!r} s disagrees with remaining_ms() {got}")
                elif field == "expired":
                    got = d.expired()
                elif field == "grpc":
                    got = d.to_grpc_timeout()
                else:
                    raise ScenarioFailure(f"unknown deadline field {field!r}")
                if got != expected:
                    problems.append(f"{name}.{field}: expected {expected!r}, got {got!r}")
        if problems:
            raise ScenarioFailure("; ".join(problems))


def run_scenario(path: Path) -> None:
    data = load(path)
    runner = Runner()
    for i, s in enumerate(data["steps"]):
        where = f"{path.name} [step {i}] {data.get('name', '')}"
        want = s.get("expect_error")
        try:
            runner.step(s)
        except ScenarioFailure as f:
            raise ScenarioFailure(f"{where}: {f}") from None
        except seawall.SeawallError as e:
            if want is None:
                raise ScenarioFailure(f"{where}: unexpected error {e.code}: {e}") from None
            if e.code != want:
                raise ScenarioFailure(f"{where}: expected error {want}, got {e.code}: {e}") from None
            if want == "SEAWALL_INVALID_ARGUMENT":
                assert isinstance(e, seawall.InvalidArgument) and isinstance(e, ValueError), type(e)
            continue
        if want is not None:
            raise ScenarioFailure(f"{where}: expected error {want}, got success")


@SCENARIOS.each
def test_scenario(path: Path) -> None:
    run_scenario(path)


def test_runner_detects_a_wrong_expectation(tmp_path: Path) -> None:
    """The runner must be able to fail: wrong expectations and unmet errors are reported."""
    wrong = [{"deadline": "d1", "after_ms": 100}, {"advance_ms": 40}, {"expect": {"d1": {"remaining_ms": 61}}}]
    expect_reported(run_scenario, tmp_path, {"name": "wrong on purpose", "steps": wrong}, "d1.remaining_ms: expected 61, got 60")
    unmet = [{"grpc_parse": "3S", "expect_error": "SEAWALL_INVALID_ARGUMENT"}]
    expect_reported(run_scenario, tmp_path, {"name": "x", "steps": unmet}, "expected error SEAWALL_INVALID_ARGUMENT, got success")
    not_cancelled = [{"token": "t"}, {"expect_token": {"t": "cancelled"}}]
    expect_reported(run_scenario, tmp_path, {"name": "x", "steps": not_cancelled}, "token t: expected 'cancelled', got None")
