"""Keeps README.md honest.

- Every code block that follows a marker `<!-- example: PATH -->` must equal the file PATH
  (the examples themselves run in the language suites, so the README cannot rot).
- The two commands the README promises exist as Makefile targets, and .ci/run runs the
  README's test command.
"""

import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
readme = (root / "README.md").read_text()
failures, passed = [], 0

for m in re.finditer(r"<!-- example: (\S+) -->\s*```[a-z]*\n(.*?)```", readme, re.S):
    path, block = m.group(1), m.group(2)
    f = root / path
    if not f.exists():
        failures.append(f"README shows {path}, which does not exist")
    elif f.read_text().strip() != block.strip():
        failures.append(f"README block for {path} differs from the file; copy the file into the README")
    else:
        passed += 1
if passed == 0:
    failures.append("README has no example blocks")

makefile = (root / "Makefile").read_text()
for cmd in ("make demo", "make test"):
    passed += 1
    if cmd not in readme:
        failures.append(f"README does not give `{cmd}`")
    if not re.search(rf"^{cmd.split()[1]}:", makefile, re.M):
        failures.append(f"Makefile has no target for `{cmd}`")
ci = (root / ".ci" / "run").read_text()
passed += 1
if "make test" not in ci:
    failures.append(".ci/run does not run the README's test command (make test)")

for f in failures:
    print("FAIL:", f)
print(f"readme: {passed - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
