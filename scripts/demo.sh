#!/usr/bin/env bash
# Builds everything (Rust core, libseawall + header + .pc, the wheel, the npm package),
# installs each the way a user would (a prefix, a virtualenv, an npm project, all under
# target/demo), runs the demo scenario (examples/demo/README.md) from Rust, C, Python and
# Node on a ManualClock, prints the four transition logs and checks they are identical.
# Then runs the scenario from Python on the real clock.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=$repo/target/demo
rm -rf "$work"
mkdir -p "$work/logs" "$work/npm-app"

step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

step "building the Rust core and the Rust demo"
cargo build --release -p seawall --example demo >&2

step "building libseawall and installing it into $work/prefix"
scripts/install-c.sh "$work/prefix"
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
# shellcheck disable=SC2046
gcc -std=c11 -Wall -Wextra -Werror examples/demo/demo.c $(pkg-config --cflags --libs seawall) \
  -Wl,-rpath,"$work/prefix/lib" -o "$work/demo-c"

step "building the wheel and installing it into a fresh virtualenv"
scripts/build-python.sh --venv "$work/venv" >/dev/null

step "packing the npm package and installing it into a fresh npm project"
tarball=$(scripts/build-node.sh "$work")
(cd "$work/npm-app" && npm init -y >/dev/null && npm install --offline --no-audit --no-fund "$tarball" >&2)
cp examples/demo/demo.js "$work/npm-app/demo.js"

run() { # name, command...
  local name=$1; shift
  "$@" >"$work/logs/$name.log"
  printf '\n-- %s --\n' "$name"
  cat "$work/logs/$name.log"
}
step "the same flaky dependency behind a breaker, on a ManualClock, in four languages"
run rust "target/release/examples/demo"
run c "$work/demo-c"
run python "$work/venv/bin/python" examples/demo/demo.py
run node node "$work/npm-app/demo.js"

echo
same=1
for lang in c python node; do
  if ! diff -u "$work/logs/rust.log" "$work/logs/$lang.log"; then same=0; fi
done
if ((same)); then
  echo "identical: the Rust, C, Python and Node transition logs are the same, byte for byte."
else
  echo "DIFFERENT: the logs above differ" >&2
  exit 1
fi

step "the same scenario from Python, on the real clock"
"$work/venv/bin/python" examples/demo/live.py
