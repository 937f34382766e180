"""The Redis store from Python, beside AWS Powertools' Redis persistence layer, in one run.

Starts its own redis-server on a free 127.0.0.1 port (fails without one), then measures:

- round trips per call, read from the server's INFO commandstats before and after a batch
  (every command the server executed, INFO itself excluded): seawall must make 2 per fresh
  call (claim + complete) and 1 per replay (claim); the script exits 1 otherwise;
- calls per second of `cache.run(key, fn)`, fresh (a new key each call) and replayed (the
  keys again), beside Powertools' `@idempotent_function` with `RedisCachePersistenceLayer`
  and an `IdempotencyConfig(event_key_jmespath="order_id")`, the way its docs show.

Rounds interleave the libraries (each round: seawall fresh, seawall replay, Powertools
fresh, Powertools replay, order rotated per round) so the noise of this shared machine lands
on both alike; the table gives the median over rounds. Prints a Markdown table and the
ratio seawall / Powertools.

    python bench/redis_python.py [--calls N] [--rounds R]

Needs seawall in the interpreter (scripts/build-python.sh --venv DIR) and, for the peer
rows, `pip install aws-lambda-powertools redis` (bench/run.sh does both); without
Powertools its rows say why and seawall's are still reported.
"""
import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import seawall


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_redis():
    exe = shutil.which("redis-server")
    if not exe:
        sys.exit("redis_python: redis-server is missing (scripts/bootstrap.sh installs it)")
    port = free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("redis_python: redis-server did not start")


class Info:
    """Counts what the server executes for a batch: INFO commandstats before and after (every
    command, those run inside Lua scripts included), and MONITOR at the same time, which marks
    each command as sent by a client or run by a script: the client's commands are the round
    trips (no pipelining is involved). Raw RESP over sockets: needs no client library."""

    def __init__(self, port):
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.f = self.sock.makefile("rb")

    def commandstats(self):
        self.sock.sendall(b"*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n")
        header = self.f.readline()
        assert header.startswith(b"$"), header
        body = self.f.read(int(header[1:]) + 2).decode()
        stats = {}
        for line in body.splitlines():
            if line.startswith("cmdstat_"):
                name, rest = line[len("cmdstat_"):].split(":", 1)
                fields = dict(kv.split("=") for kv in rest.split(","))
                if name not in ("info", "echo", "monitor"):
                    stats[name] = int(fields["calls"])
        return stats

    def count(self, fn, n):
        """(round trips per call, their commands, all executed commands per call incl. in scripts)."""
        mon = socket.create_connection(("127.0.0.1", self.port))
        mf = mon.makefile("rb")
        mon.sendall(b"*1\r\n$7\r\nMONITOR\r\n")
        assert mf.readline().startswith(b"+OK")
        before = self.commandstats()
        fn()
        after = self.commandstats()
        sentinel = f"bench-sentinel-{time.time_ns()}".encode()
        self.sock.sendall(b"*2\r\n$4\r\nECHO\r\n$%d\r\n%s\r\n" % (len(sentinel), sentinel))
        self.f.readline()
        self.f.readline()
        client_cmds = {}
        while True:
            line = mf.readline().decode("utf-8", "replace")
            if not line:
                raise RuntimeError("MONITOR connection closed")
            if sentinel.decode() in line:
                break
            # +1700000000.123456 [0 127.0.0.1:40000] "evalsha" "..."   or   [0 lua] "get" ...
            try:
                where, rest = line.split("[", 1)[1].split("]", 1)
            except (IndexError, ValueError):
                continue
            if "lua" in where:
                continue
            cmd = rest.strip().split(" ", 1)[0].strip('"').lower()
            if cmd in ("info",):
                continue
            client_cmds[cmd] = client_cmds.get(cmd, 0) + 1
        mf.close()
        mon.close()  # both, or the socket stays open and MONITOR slows every later call
        executed = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        executed = {k: v for k, v in executed.items() if v}

        def fmt(d):
            return ", ".join(f"{k} {v / n:g}" for k, v in sorted(d.items()))

        return sum(client_cmds.values()) / n, fmt(client_cmds), sum(executed.values()) / n, fmt(executed)


def seawall_side(port):
    store = seawall.RedisStore(f"redis://127.0.0.1:{port}/0", prefix="bench:seawall:")
    cache = seawall.IdempotencyCache(name="bench", store=store)

    def work(order):
        return {"order_id": order["order_id"], "status": "charged"}

    def batch(keys):
        run = cache.run
        for k in keys:
            run(k, work, {"order_id": k})

    return batch


def powertools_side(port):
    """Powertools' documented idempotent_function + RedisCachePersistenceLayer, or the reason it cannot run."""
    try:
        from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
        from aws_lambda_powertools.utilities.idempotency.persistence.redis import RedisCachePersistenceLayer
        import aws_lambda_powertools
    except Exception as err:  # noqa: BLE001 - reported as the reason for the missing rows
        return None, f"aws-lambda-powertools could not be imported: {type(err).__name__}: {err}"
    # Outside Lambda there is no context to register: Powertools warns once that it cannot
    # tell the remaining time (so its in-progress records get no deadline), and 3.x warns
    # that RedisCachePersistenceLayer (the documented Redis layer) is renamed
    # CachePersistenceLayer in 4.0. Both are expected here; they are silenced, not hidden.
    warnings.filterwarnings("ignore", message="Couldn't determine the remaining time left")
    warnings.filterwarnings("ignore", message="RedisCachePersistenceLayer will be removed")
    try:
        persistence = RedisCachePersistenceLayer(host="127.0.0.1", port=port, ssl=False)
        config = IdempotencyConfig(event_key_jmespath="order_id")

        @idempotent_function(data_keyword_argument="order", config=config, persistence_store=persistence)
        def charge(order):
            return {"order_id": order["order_id"], "status": "charged"}

        def batch(keys):
            for k in keys:
                charge(order={"order_id": k})

        batch(["pt-probe"])
        batch(["pt-probe"])
    except Exception as err:  # noqa: BLE001
        return None, f"Powertools failed outside Lambda: {type(err).__name__}: {err}"
    version = getattr(aws_lambda_powertools, "__version__", None)
    if version is None:
        from importlib.metadata import version as dist_version
        version = dist_version("aws-lambda-powertools")
    return batch, f"aws-lambda-powertools {version}"


def rate(batch, keys):
    t0 = time.perf_counter()
    batch(keys)
    return len(keys) / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=int(os.environ.get("SEAWALL_BENCH_REDIS_CALLS", 1000)),
                    help="calls per batch (default 1000)")
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("SEAWALL_BENCH_REDIS_ROUNDS", 7)),
                    help="rounds (default 7)")
    args = ap.parse_args()

    proc, port = start_redis()
    try:
        info = Info(port)
        sw = seawall_side(port)
        pt, pt_note = powertools_side(port)

        # Warm-up: connections made, scripts loaded, before anything is counted.
        sw([f"warm-{i}" for i in range(20)])
        sw([f"warm-{i}" for i in range(20)])

        # Round trips per call.
        n = 200
        keys = [f"rt-{i}" for i in range(n)]
        counts = {"sw_fresh": info.count(lambda: sw(keys), n), "sw_replay": info.count(lambda: sw(keys), n)}
        if pt:
            counts["pt_fresh"] = info.count(lambda: pt(keys), n)
            counts["pt_replay"] = info.count(lambda: pt(keys), n)

        # Throughput, interleaved rounds.
        results = {name: [] for name in ("sw_fresh", "sw_replay", "pt_fresh", "pt_replay")}
        sides = [("sw", sw)] + ([("pt", pt)] if pt else [])
        for r in range(args.rounds):
            order = sides[r % len(sides):] + sides[:r % len(sides)]
            for name, batch in order:
                keys = [f"r{r}-{i}" for i in range(args.calls)]
                results[f"{name}_fresh"].append(rate(batch, keys))
                results[f"{name}_replay"].append(rate(batch, keys))
        med = {k: statistics.median(v) for k, v in results.items() if v}
    finally:
        proc.terminate()
        proc.wait()

    print(f"Python {platform.python_version()}, seawall {seawall.__version__}, one local redis-server "
          f"(127.0.0.1:{port}), {args.rounds} rounds x {args.calls} calls per row, median calls/s")
    print(f"peer: {pt_note}")
    print()
    print("| library | round trips / fresh call | round trips / replay | fresh calls/s | replayed calls/s |")
    print("|---|---|---|---|---|")

    def row(label, side):
        fr, fr_cmds = counts[f"{side}_fresh"][:2]
        rr, rr_cmds = counts[f"{side}_replay"][:2]
        print(f"| {label} | {fr:g} ({fr_cmds}) | {rr:g} ({rr_cmds}) | {med[side + '_fresh']:,.0f} | {med[side + '_replay']:,.0f} |")

    row("seawall `RedisStore` + `cache.run`", "sw")
    if pt:
        row("Powertools `@idempotent_function` + `RedisCachePersistenceLayer`", "pt")
    else:
        print(f"| Powertools | not measured: {pt_note} | | | |")
    print()
    print("Commands the server executed per call (INFO commandstats, those inside Lua scripts included):")
    for key, label in (("sw_fresh", "seawall fresh"), ("sw_replay", "seawall replay"),
                       ("pt_fresh", "Powertools fresh"), ("pt_replay", "Powertools replay")):
        if key in counts:
            print(f"- {label}: {counts[key][2]:g} ({counts[key][3]})")
    if pt:
        print()
        print(f"ratio seawall / Powertools (calls/s): fresh x{med['sw_fresh'] / med['pt_fresh']:.2f}, "
              f"replay x{med['sw_replay'] / med['pt_replay']:.2f}")

    sw_fresh_rt, sw_replay_rt = counts["sw_fresh"][0], counts["sw_replay"][0]
    if sw_fresh_rt != 2 or sw_replay_rt != 1:
        print(f"FAIL: seawall must make 2 round trips per fresh call and 1 per replay; "
              f"measured {sw_fresh_rt:g} and {sw_replay_rt:g}")
        return 1
    print("round trips: seawall makes 2 per fresh call and 1 per replay (as required)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
