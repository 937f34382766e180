"""examples/python/idempotency.py and observability.py print exactly what their docstrings
say (the block after "Prints exactly:"), run as a user runs them."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap

import pytest

from conftest import repo_root


def expected_output(path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")), clean=False) or ""
    assert "Prints exactly:" in doc, f"{path.name}: no 'Prints exactly:' block in its docstring"
    block = doc.split("Prints exactly:", 1)[1]
    return textwrap.dedent(block).strip("\n") + "\n"


@pytest.mark.parametrize("name", ["idempotency.py", "observability.py"])
def test_example_prints_what_its_docstring_says(name: str) -> None:
    path = repo_root() / "examples" / "python" / name
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected_output(path)
