"""Shared helpers for the seawall Python tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def repo_root() -> Path:
    """The seawall repository: $SEAWALL_REPO (set by scripts/test-python.sh), else the
    checkout this test file lives in."""
    env = os.environ.get("SEAWALL_REPO")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parents[2]


@pytest.fixture
def repo() -> Path:
    return repo_root()


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    """Prints how many conformance scenarios were replayed, as every runner does."""
    for module, kind in (("test_conformance.py", "breaker"), ("test_conformance_deadline.py", "deadline")):
        passed = failed = 0
        for key, reports in terminalreporter.stats.items():
            for r in reports:
                nodeid = getattr(r, "nodeid", "")
                if getattr(r, "when", "") != "call" or f"{module}::test_scenario[" not in nodeid:
                    continue
                if key == "passed":
                    passed += 1
                elif key == "failed":
                    failed += 1
        if passed or failed:
            terminalreporter.write_line(f"conformance (Python): {passed} of {passed + failed} {kind} scenarios passed")
