#!/usr/bin/env bash
# Runs CMD with SEAWALL_REDIS_URL pointing at a redis-server of its own on a free loopback
# port (no persistence; its log in ./redis.log), stops the server and exits with CMD's
# status. Without redis-server it fails (never skips): scripts/bootstrap.sh installs it.
#
# Usage: scripts/with-redis.sh CMD [ARGS...]
set -uo pipefail
command -v redis-server >/dev/null || { echo "redis-server is missing (scripts/bootstrap.sh installs it)" >&2; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >redis.log 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.05
done
SEAWALL_REDIS_URL="redis://127.0.0.1:$port/0" "$@"
rc=$?
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
exit $rc
