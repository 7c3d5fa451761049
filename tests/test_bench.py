"""The benchmarks keep working (no timing is asserted here: figures are read as ratios in
docs/performance.md), and their request counts hold the properties the design promises."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_bench_runs_and_warm_collect_asks_nothing_immutable() -> None:
    done = subprocess.run([sys.executable, "-m", "bench.run", "--quick", "--latency", "0.01"],
                          capture_output=True, text=True, check=False, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    scenarios = " ".join(str(r.get("scenario", "")) for r in rows)
    for name in ("1 gate", "1 gate, in process", "2 collect cold", "3 collect warm",
                 "4 collect after 10", "4 collect after 40", "(quarter history)",
                 "5 devex --help", "5 devex report tests --dry-run"):
        assert name in scenarios
    gate = next(r for r in rows if str(r.get("scenario", "")).startswith("1 gate:"))
    assert gate["requests"] == 3  # 200 tickets, 100 keys a request; their projects beside
    summaries = [r for r in rows if "immutable requests (bitbucket)" in r]
    assert [s["immutable requests (bitbucket)"] for s in summaries] == [0, 0]  # both histories
    # New work costs requests by the new deployments, whatever the length of the history:
    # a new revision and its range (a page or two) each.
    for count in (10, 40):
        for row in rows:
            if str(row.get("scenario", "")).startswith(f"4 collect after {count} "):
                bitbucket = int(str(row["scenario"]).rsplit("bitbucket ", 1)[1].rstrip(")"))
                assert 0 < bitbucket <= 3 * count, row
    assert any("40 new vs 10 new (same history)" in r for r in rows)
    # A first collection lists each repository's history rather than asking per deployment.
    cold = next(r for r in rows if str(r.get("scenario", "")).startswith("2 collect cold ("))
    found = re.search(r"bitbucket (\d+); (\d+) items", str(cold["scenario"]))
    assert found, cold
    assert int(found.group(1)) * 5 < int(found.group(2)), cold
