#!/usr/bin/env python
"""Benchmark: `schoolplan run` on the embedded Fuling data, all outputs included (issue 8 target: ≤ 60 s).

    python bench/bench_run.py [scenario ...]      → bench/results/run.md
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    scenarios = argv or ["baseline"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in scenarios:
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "schoolplan.cli", "run", str(ROOT / "scenarios" / f"{name}.toml"),
                                   "--outputs", tmp, "-q"], cwd=ROOT, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return proc.returncode
            man = json.loads((Path(tmp) / name / "manifest.json").read_text())
            rows.append((name, wall, load, man["timings_s"]))
            print(f"{name}: {wall:.1f} s (load {load:.1f})")
    lines = ["# `schoolplan run` wall time", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
             f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Command: `python bench/bench_run.py {' '.join(scenarios)}`.",
             "Target (issue 8): baseline with default draws, all outputs, ≤ 60 s.", "",
             "| scenario | wall s | load avg at start | slowest stages (s) |", "|---|---|---|---|"]
    for name, wall, load, t in rows:
        slow = ", ".join(f"{k} {v:.1f}" for k, v in sorted(t.items(), key=lambda kv: -kv[1])[:5])
        lines.append(f"| {name} | {wall:.1f} | {load:.1f} | {slow} |")
    out = ROOT / "bench" / "results" / "run.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
