#!/usr/bin/env bash
# Builds the seawall wheel (release, abi3: one wheel for CPython >= 3.9) into target/wheels
# and prints its path on stdout (build output goes to stderr).
#
#   scripts/build-python.sh                 # build, print the wheel path
#   scripts/build-python.sh --venv DIR      # also (re)install it into the virtualenv DIR,
#                                           # creating DIR when missing (used by scripts/demo.sh)
#
# maturin comes from PATH (target/tools/bin when run through make); when it is missing it is
# installed into target/tools, pinned as in scripts/requirements-tools.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

venv=""
while (($#)); do
  case "$1" in
    --venv) venv=${2:?"--venv needs a directory"}; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "build-python: unknown argument $1" >&2; exit 2 ;;
  esac
done

maturin=$(command -v maturin || true)
if [ -z "$maturin" ] && [ -x target/tools/bin/maturin ]; then
  maturin=$repo/target/tools/bin/maturin
fi
if [ -z "$maturin" ]; then
  echo "build-python: maturin not found; installing it into target/tools" >&2
  [ -x target/tools/bin/python ] || python3 -m venv target/tools
  pin=$(grep -E '^maturin' scripts/requirements-tools.txt 2>/dev/null || echo maturin)
  target/tools/bin/python -m pip install -q --disable-pip-version-check "$pin" >&2
  maturin=$repo/target/tools/bin/maturin
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! (cd python && "$maturin" build --release) >"$log" 2>&1; then
  cat "$log" >&2
  echo "build-python: maturin build failed" >&2
  exit 1
fi
cat "$log" >&2
# maturin ends with "Built wheel for ... to /path/to/seawall-<version>-....whl".
wheel=$(sed -n 's/.*Built wheel .* to \(.*\.whl\)$/\1/p' "$log" | tail -n 1)
if [ -z "$wheel" ] || [ ! -f "$wheel" ]; then
  echo "build-python: could not find the wheel maturin built" >&2
  exit 1
fi

if [ -n "$venv" ]; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$wheel" >&2
fi
echo "$wheel"
