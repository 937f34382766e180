#!/usr/bin/env python3
"""Gathers one `make bench` run into bench/results.md and bench/results.json.

Reads target/bench/{rust,python,node}.json and .md (each written by its language's
benchmark in the same run), and writes:

- bench/results.md: every target with its verdict, then each language's table as its
  benchmark printed it (medians, min-max, overheads, ratios);
- bench/results.json: each language's JSON without the per-round samples (medians,
  min-max, overheads, ratios, targets).

Both are committed, so the README can link the figures of the last run on this machine.
Usage: python3 bench/report.py [--in DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

LANGS = [("rust", "Rust"), ("python", "Python"), ("node", "Node")]


def strip_samples(value):
    """Drops the per-round samples (kept in target/bench) so the committed file stays small."""
    if isinstance(value, dict):
        return {k: strip_samples(v) for k, v in value.items() if k not in ("samples_ns", "samples")}
    if isinstance(value, list):
        return [strip_samples(v) for v in value]
    return value


def target_rows(lang: str, data: dict) -> list[tuple[str, str, bool]]:
    rows = []
    for t in data.get("targets", []):
        if lang == "rust":
            text = f"{t['target']} {t['limit']}"
            measured = t["shown"]
        else:
            text, measured = t["target"], t["measured"]
        rows.append((text, measured, bool(t["met"])))
    return rows


def main() -> int:
    repo = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser()
    ap.add_argument("--in", dest="src", default=str(repo / "target" / "bench"))
    ap.add_argument("--out", default=str(repo / "bench"))
    args = ap.parse_args()
    src, out = Path(args.src), Path(args.out)

    found, missing = {}, []
    for lang, _ in LANGS:
        path = src / f"{lang}.json"
        if path.exists():
            found[lang] = json.loads(path.read_text())
        else:
            missing.append(lang)
    if not found:
        print(f"report: no results in {src} (run `make bench` first)")
        return 1

    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "# Benchmark results",
        "",
        f"Produced by `make bench` on {now}: {os.cpu_count()} CPUs ({platform.machine()}, "
        f"{platform.system()}), load average {load:.1f} when the report was written. The "
        "machine is shared and noisy: every table compares variants measured in the same process, "
        "interleaved round by round; read a row against the bare call and the peers of the same "
        "table, not against another run. How each benchmark works: [bench/README.md](README.md).",
        "",
        "## Targets (issue 8)",
        "",
        "| language | target | measured | met |",
        "|---|---|---|---|",
    ]
    met = total = 0
    for lang, title in LANGS:
        if lang not in found:
            continue
        for text, measured, ok in target_rows(lang, found[lang]):
            total += 1
            met += ok
            cell = measured.replace("|", "\\|")
            lines.append(f"| {title} | {text.replace('|', chr(92) + '|')} | {cell} | {'yes' if ok else '**no**'} |")
    lines += [
        "",
        f"{met} of {total} targets met in this run. Where one is not met, its language's section "
        "of [bench/README.md](README.md) measures what stands in the way (the floor of the "
        "semantics, or the part of the cost that is not seawall's).",
        "",
    ]
    if missing:
        lines += [f"Not in this run: {', '.join(missing)} (their benchmark did not write results).", ""]
    for lang, title in LANGS:
        md = src / f"{lang}.md"
        if lang in found and md.exists():
            body = md.read_text().strip().splitlines()
            # Each language's file starts with its own "## ..." heading; keep it one level down.
            body = ["#" + l if l.startswith("## ") else l for l in body]
            lines += [f"## {title}", ""] + body + [""]
            extra = src / f"{lang}-idempotency.md"  # Rust's idempotency bench (core/benches)
            if extra.exists():
                lines += extra.read_text().strip().splitlines() + [""]
    (out / "results.md").write_text("\n".join(lines))
    summary = {"generated": now, "cpus": os.cpu_count(), "load_average": load}
    summary.update({lang: strip_samples(found[lang]) for lang, _ in LANGS if lang in found})
    extra = src / "rust-idempotency.json"
    if extra.exists():
        summary["rust_idempotency"] = json.loads(extra.read_text())
    (out / "results.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    print(f"report: {met} of {total} targets met; wrote {out / 'results.md'} and {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
