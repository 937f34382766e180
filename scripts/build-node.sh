#!/usr/bin/env bash
# Builds the Node addon (cargo, release), copies it into node/ under the name index.js
# loads, and packs the npm package. Prints the tarball's absolute path on stdout (and
# nothing else there), so other scripts can do: tarball=$(scripts/build-node.sh DIR).
#
# Usage: scripts/build-node.sh [DEST_DIR]     (default: target/npm)
set -euo pipefail
cd "$(dirname "$0")/.."

dest="${1:-target/npm}"
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"

cargo build --release -p seawall-node >&2

target_dir="${CARGO_TARGET_DIR:-target}"
case "$(uname -s)" in
  Linux) lib="$target_dir/release/libseawall_node.so" ;;
  Darwin) lib="$target_dir/release/libseawall_node.dylib" ;;
  MINGW* | MSYS* | CYGWIN*) lib="$target_dir/release/seawall_node.dll" ;;
  *) echo "build-node.sh: unsupported platform $(uname -s)" >&2; exit 1 ;;
esac
# The same name index.js computes: seawall.<platform>-<arch>[-gnu].node
name="$(node -p '`seawall.${process.platform}-${process.arch}${process.platform === "linux" ? "-gnu" : ""}.node`')"
rm -f node/seawall.*.node
cp "$lib" "node/$name"

# npm pack prints the tarball's file name as its last line.
file="$(cd node && npm pack --silent --pack-destination "$dest" | tail -n 1)"
tarball="$dest/$file"
[ -f "$tarball" ] || { echo "build-node.sh: npm pack did not produce $tarball" >&2; exit 1; }
echo "build-node.sh: packed $tarball (addon $name)" >&2
echo "$tarball"
