#!/usr/bin/env bash
# Builds libseawall (release) and installs the C library into PREFIX:
#   PREFIX/lib/libseawall.so.X.Y.Z, libseawall.so.X -> it, libseawall.so -> it
#   PREFIX/lib/libseawall.a
#   PREFIX/include/seawall.h
#   PREFIX/lib/pkgconfig/seawall.pc   (from bindings/c/seawall.pc.in, with the version)
# Then: PKG_CONFIG_PATH=PREFIX/lib/pkgconfig pkg-config --cflags --libs seawall
#
# Usage: scripts/install-c.sh PREFIX
# Used by scripts/test-c.sh and scripts/demo.sh.
set -euo pipefail
if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 PREFIX" >&2
  exit 2
fi
repo="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$1"
prefix="$(cd "$1" && pwd)"

cd "$repo"
cargo build --release -p seawall-ffi >&2

version="$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml)"
[ -n "$version" ] || { echo "install-c: cannot read the workspace version from Cargo.toml" >&2; exit 1; }
major="${version%%.*}"
target="${CARGO_TARGET_DIR:-$repo/target}/release"

install -d "$prefix/lib/pkgconfig" "$prefix/include"
install -m 0755 "$target/libseawall.so" "$prefix/lib/libseawall.so.$version"
ln -sfn "libseawall.so.$version" "$prefix/lib/libseawall.so.$major"
ln -sfn "libseawall.so.$version" "$prefix/lib/libseawall.so"
install -m 0644 "$target/libseawall.a" "$prefix/lib/libseawall.a"
install -m 0644 include/seawall.h "$prefix/include/seawall.h"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" bindings/c/seawall.pc.in \
  >"$prefix/lib/pkgconfig/seawall.pc"
echo "install-c: libseawall $version installed in $prefix" >&2
