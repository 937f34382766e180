"""What the Python conformance runners share (test_conformance.py,
test_conformance_deadline.py, test_conformance_idempotency.py): where a kind of scenario
files is, one pytest case per file, reading a file, and a file's config as Python keywords.

Imported as a sibling module (`from conformance_support import ...`), as conftest is:
pytest puts python/tests on sys.path (rootdir python/, no __init__.py), also when
scripts/test-python.sh runs the suite from a directory outside the repository.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Dict

import pytest

from conftest import repo_root

SPECIAL_NUMBERS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class ScenarioFailure(AssertionError):
    """A scenario did not go the way its file says."""


class Scenarios:
    """The *.json files of tests/conformance/<kind>/ of the repository ($SEAWALL_REPO, else
    this checkout), or of the directory in $<env> when set, sorted by name. `each` is the
    parametrize mark that makes one pytest case per file (its id: `ids(path)`)."""

    def __init__(self, kind: str, env: str, ids: Callable[[Path], str] = lambda p: p.stem) -> None:
        override = os.environ.get(env)
        self.dir = Path(override) if override else repo_root() / "tests" / "conformance" / kind
        self.files = sorted(self.dir.glob("*.json")) if self.dir.is_dir() else []
        self.each = pytest.mark.parametrize("path", self.files, ids=[ids(p) for p in self.files])

    def check_found(self, what: str = "scenario files") -> None:
        """Fails when the directory holds no file (a runner that replays nothing fails)."""
        assert self.files, f"no {what} (*.json) found in {self.dir}"


def load(path: Path) -> Dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def expect_reported(run: Callable[[Path], None], tmp_path: Path, doc: Dict[str, Any], match: str) -> None:
    """The runner can fail: `doc` written as a scenario file, `run` reports it failing with
    a message matching `match`."""
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(ScenarioFailure, match=match):
        run(bad)


def python_options(config: Dict[str, Any]) -> Dict[str, Any]:
    """The file's config as Python keywords: `_ms` options in seconds, the special number
    strings as floats, anything else as it is (a wrong type reaches the core as that type)."""
    out: Dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, str) and value in SPECIAL_NUMBERS:
            value = SPECIAL_NUMBERS[value]
        if key.endswith("_ms"):
            key = key[: -len("_ms")]
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = value / 1000
        out[key] = value
    return out
