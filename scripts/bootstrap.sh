#!/usr/bin/env bash
# Installs what building and testing seawall needs, and nothing when it is already there.
#   - Debian packages: pkg-config and libcjson-dev (the C conformance runner parses JSON with cJSON),
#     redis-server (the Redis store's tests start their own server on a free loopback port),
#     valgrind (scripts/test-c-sanitize.sh runs the C tests under memcheck);
#   - a tools virtualenv in target/tools with maturin (builds the wheel) and pytest.
# Needs: cargo, gcc, python3 (>= 3.9, with venv), node (>= 18) and npm on PATH.
# Usage: scripts/bootstrap.sh   (then put target/tools/bin on PATH; the Makefile does)
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for tool in cargo gcc python3 node npm; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "bootstrap: missing ${missing[*]}; install them first (see README.md, Requirements)" >&2
  exit 1
fi

scripts/apt-ensure.sh bootstrap pkg-config libcjson-dev redis-server valgrind

tools=target/tools
if [ ! -x "$tools/bin/python" ]; then
  python3 -m venv "$tools"
fi
if ! "$tools/bin/python" -c 'import maturin, pytest' >/dev/null 2>&1 \
   || ! cmp -s scripts/requirements-tools.txt "$tools/.requirements" ; then
  echo "bootstrap: installing build and test tools into $tools" >&2
  "$tools/bin/python" -m pip install -q --disable-pip-version-check -r scripts/requirements-tools.txt
  cp scripts/requirements-tools.txt "$tools/.requirements"
fi
