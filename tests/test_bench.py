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
    # a new revision and one range each (the benchmark deploys to dev: its change set is
    # taken from its commits waiting for production, tests/test_bitbucket.py).
    for count in (10, 40):
        for row in rows:
            if str(row.get("scenario", "")).startswith(f"4 collect after {count} "):
                bitbucket = int(str(row["scenario"]).rsplit("bitbucket ", 1)[1].rstrip(")"))
                assert 0 < bitbucket <= 2 * count, row
    assert any("40 new vs 10 new (same history)" in r for r in rows)
    # A first collection lists each repository's history rather than asking per deployment.
    cold = next(r for r in rows if str(r.get("scenario", "")).startswith("2 collect cold ("))
    found = re.search(r"bitbucket (\d+); (\d+) items", str(cold["scenario"]))
    assert found, cold
    assert int(found.group(1)) * 5 < int(found.group(2)), cold


@pytest.mark.slow
def test_a_first_collection_at_a_year_lists_each_history_once(tmp_path: Path) -> None:
    """At the scale where it regressed 13x (20 services x a year, the fakes at zero latency):
    each repository's history is listed once, for the digits-only tags the GitOps read judges
    and the change sets alike, and requests stay within 1.5x the pages a complete listing of
    every repository needs, plus one a side branch (4,667 when the listing was abandoned for
    one request per range, 418 when the digits-only check asked its tags one by one and listed
    a second time, against some 160 pages)."""
    import math

    sys.path.insert(0, str(ROOT))
    from bench.run import collect_once, organisation

    org = organisation(tmp_path, services_count=20, days=365, seed=1, latency=0.0)
    try:
        _, (_, _, bitbucket) = collect_once(org)
        listed = sum(1 for r in org.bitbucket.requests if r.path.endswith("/commits"))
    finally:
        org.stop()
    pages = side = 0
    for app in (tmp_path / "org" / "apps").iterdir():
        commits = int(subprocess.run(["git", "-C", str(app), "rev-list", "--count", "--all"],
                                     capture_output=True, text=True, check=True).stdout)
        pages += math.ceil(commits / 100)
        side += len(subprocess.run(["git", "-C", str(app), "for-each-ref", "refs/heads"],
                                   capture_output=True, text=True,
                                   check=True).stdout.splitlines()) - 1
    assert 0 < listed <= pages + side, (listed, pages, side)
    assert bitbucket <= 1.5 * pages + side, (bitbucket, pages, side)


def test_a_run_reads_its_own_peak_memory_not_the_benchmarks() -> None:
    """A child forked from the benchmark kept its parent's high-water mark: `devex --version`
    read 210 MiB beside a parent holding 200."""
    import os

    sys.path.insert(0, str(ROOT))
    from bench.run import run_devex

    ballast = bytearray(200 << 20)
    ballast[::4096] = b"x" * len(ballast[::4096])  # touched: resident, not just reserved
    run = run_devex(["--version"], dict(os.environ))
    assert run.code == 0, run.err
    assert 5 < run.peak_mib < 100, run.peak_mib
    del ballast


def test_the_performance_figures_are_written_by_the_report_script() -> None:
    """docs/performance.md's figures section is bench.report's output (markers in place, and
    what it renders from a run's rows)."""
    sys.path.insert(0, str(ROOT))
    from bench.report import DOC, END, START, render

    text = DOC.read_text()
    section = text[text.index(START):text.index(END)]
    assert "by `python -m bench.report`" in section and "| scenario |" in section
    rendered = render([{"scenario": "2 collect cold", "seconds": 8.9, "requests": 418,
                        "peak_mib": 78.0}, {"warm/cold": 0.15}], "python -m bench.run", [])
    assert "| 2 collect cold | 8.9 | 418 | 78 |" in rendered and "- warm/cold: 0.15" in rendered


def test_the_organisation_benchmark_runs_and_its_exposition_holds() -> None:
    """bench.org, small: a cold and a warm offline collection, then the exporter on a loopback
    port scraped, its series counted by prometheus_client's parser and checked by promtool."""
    import shutil

    done = subprocess.run([sys.executable, "-m", "bench.org", "--services", "4", "--days", "30",
                           "--scrapes", "1"], capture_output=True, text=True, check=False,
                          cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    scenarios = {str(r["scenario"]).split(" (")[0]: r for r in rows if "scenario" in r}
    assert set(scenarios) == {"org 1 collect cold", "org 2 collect warm",
                              "org 3 exporter: first collection, then 1 scrapes"}
    served = scenarios["org 3 exporter: first collection, then 1 scrapes"]
    assert int(served["series"]) > 4 * 50  # some 200 a service
    assert abs(int(served["series"]) / 4 - int(served["series/service"])) <= 1
    assert served["promtool"] == ("ok" if shutil.which("promtool") else "not installed")
    assert all(float(r["peak_mib"]) > 5 for r in scenarios.values())
    assert any("org series by family (per service)" in r for r in rows)
    assert any(int(r.get("one collector serves (services, linear in these figures)", 0)) > 0
               for r in rows)
    assert done.stdout.startswith("org world: 4 services x 4 environments x 30 days")


def test_the_organisation_figures_are_written_by_the_report_script() -> None:
    """bench.report --org writes bench.org's block inside the figures section, and a run of
    bench.report without it keeps that block."""
    sys.path.insert(0, str(ROOT))
    from bench.report import DOC, END, ORG_END, ORG_START, START, org_block, render, render_org

    block = render_org([{"scenario": "org 1 collect cold (2000 services)", "seconds": 612.0,
                         "peak_mib": 3900.0},
                        {"scenario": "org 3 exporter", "seconds": 80.0, "peak_mib": 4100.0,
                         "series": 530000, "series/service": 265, "metrics_mib": 45.0,
                         "scrape_seconds": 5.2, "promtool": "ok"},
                        {"org series by family (per service)": {"dora_deployments": 12.0}}],
                       "python -m bench.org", ["org world: 2000 services"])
    assert "| org 1 collect cold (2000 services) | 612 | 3900 |" in block
    assert "| org 3 exporter | 80 | 4100 | 530000 | 265 | 45 | 5.2 | ok |" in block
    assert "- org series by family (per service): dora_deployments 12" in block
    assert "by `python -m bench.report --org` running `python -m bench.org`" in block
    section = render([{"scenario": "2 collect cold", "seconds": 8.9}], "python -m bench.run",
                     [], block)
    assert org_block(section) == block and section.index(block) < section.index(END)
    text = DOC.read_text()
    if ORG_START in text:  # what is in the doc is the script's
        assert text.index(START) < text.index(ORG_START) < text.index(ORG_END) < \
            text.index(END)
        assert "by `python -m bench.report --org`" in org_block(text)
