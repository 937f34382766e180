"""Python and Node share stores: results written by one replay in the other.

fixtures/node_records.json holds records written by the Node package (seawall's record
format, version 2; regenerate with `node python/tests/fixtures/gen_node_records.js ./node`)
for values and request payloads. Python must replay each to the same value, and writing
the same value for the same payload on a ManualClock must produce the *same bytes*
(serialised result, content type, fingerprint of the canonical JSON, token, times), so Node
replays what Python writes. When the Node package is built in this checkout, a live Node
process also decodes records Python wrote.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict

import pytest

import seawall
from conftest import repo_root

FIXTURES = Path(__file__).resolve().parent / "fixtures"

# The values and payloads of gen_node_records.js, as Python holds them.
CASES: Dict[str, Dict[str, Any]] = {
    "dict": {"payload": {"amount": 100, "currency": "EUR"}, "value": {"id": "ch_1", "amount": 100, "ok": True, "none": None}},
    "unicode": {"payload": {"name": "Zoë 😀", "é": 1}, "value": {"text": "Grüße 😀 \u2028", "list": [1, 2.5, -3, "x"]}},
    "nested": {"payload": [3, {"b": 1, "a": [True, False, None]}], "value": [{"z": 1, "a": 2}, [], {}]},
    "number": {"payload": "plain string payload", "value": 1.5},
    "string": {"payload": None, "value": "just a string"},
    "bytes": {"payload": bytes([0, 1, 2, 255]), "value": bytes.fromhex("deadbeef")},
}


def node_fixture() -> Dict[str, Any]:
    return json.loads((FIXTURES / "node_records.json").read_text(encoding="utf-8"))


def python_record(key: str, value: Any, payload: Any) -> bytes:
    clock = seawall.ManualClock()
    cache = seawall.IdempotencyCache(clock=clock, ttl=1.0)
    assert cache.run(key, lambda: value, fingerprint=payload) == value
    return cache.peek(key)["record"].encode()


def test_node_records_replay_in_python_and_python_writes_the_same_bytes() -> None:
    records = {r["key"]: r for r in node_fixture()["records"]}
    assert set(CASES) <= set(records)
    for key, case in CASES.items():
        node_bytes = bytes.fromhex(records[key]["hex"])
        record = seawall.Record.decode(node_bytes)
        cache = seawall.IdempotencyCache()
        assert cache.value(record) == case["value"], key
        if case["payload"] is not None:
            assert record.fingerprint == seawall.fingerprint(case["payload"]), key
        else:
            assert record.fingerprint is None
        assert python_record(key, case["value"], case["payload"]) == node_bytes, key


def test_a_node_error_record_replays_as_the_error() -> None:
    records = {r["key"]: r for r in node_fixture()["records"]}
    record = seawall.Record.decode(bytes.fromhex(records["error"]["hex"]))
    assert record.is_error
    cache = seawall.IdempotencyCache()
    with pytest.raises(seawall.ReplayedError) as info:  # Node's RangeError has no Python builtin
        cache.value(record)
    assert (info.value.type, info.value.message, info.value.code) == ("RangeError", "amount too large", "E_LIMIT")
    # And the form Python writes for the same error is the form Node wrote.
    class RangeError(Exception):  # noqa: N818 - named as Node names it
        code = "E_LIMIT"

    clock = seawall.ManualClock()
    py = seawall.IdempotencyCache(clock=clock, ttl=1.0, cache_errors=True)

    def fail() -> None:
        raise RangeError("amount too large")

    with pytest.raises(RangeError):
        py.run("error", fail)
    assert py.peek("error")["record"].encode() == bytes.fromhex(records["error"]["hex"])


def test_canonical_json_matches_node() -> None:
    for entry in node_fixture()["canonical"]:
        assert seawall.canonical_json(CASES[entry["key"]]["payload"]) == entry["text"], entry["key"]


def node_package() -> Path:
    return repo_root() / "node"


@pytest.mark.skipif(
    shutil.which("node") is None or not (node_package() / "seawall.linux-x64-gnu.node").exists(),
    reason="the Node package is not built in this checkout (the fixture test above covers the bytes)",
)
def test_live_node_replays_records_written_by_python() -> None:
    written = {key: python_record(key, c["value"], c["payload"]).hex() for key, c in CASES.items()}
    script = """
const { IdempotencyRecord } = require(process.argv[1]);
const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = {};
for (const [key, hex] of Object.entries(input)) {
  const v = IdempotencyRecord.decode(Buffer.from(hex, 'hex')).value();
  out[key] = Buffer.isBuffer(v) ? { bytes: v.toString('hex') } : v;
}
process.stdout.write(JSON.stringify(out));
"""
    proc = subprocess.run(
        ["node", "-e", script, str(node_package())],
        input=json.dumps(written),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    for key, case in CASES.items():
        want = case["value"]
        if isinstance(want, bytes):
            assert got[key] == {"bytes": want.hex()}
        else:
            assert got[key] == want, key
