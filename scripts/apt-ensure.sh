#!/usr/bin/env bash
# Installs the Debian packages given that are not installed yet: as root with apt-get,
# otherwise it prints the command to run and fails. One place for what bootstrap.sh and the
# C test scripts need from Debian.
# Usage: scripts/apt-ensure.sh WHO PACKAGE...   (WHO names the caller in messages)
set -euo pipefail
who=$1
shift
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0
if [ "$(id -u)" = 0 ]; then
  echo "$who: apt-get install ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "$who: missing ${missing[*]}; run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
