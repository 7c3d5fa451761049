"""The exporter under random faults for many cycles: it keeps answering, recovers when the
sources do, and neither memory nor file handles grow."""

from __future__ import annotations

import random
import threading
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devex_cli.collect import CollectOptions, collect
from devex_cli.config import load_settings
from devex_cli.metrics.exporter import Exporter
from tests.conftest import FAST_HTTP
from tests.fakes.argocd import FakeApplication, FakeArgoCD
from tests.fakes.bitbucket import FakeBitbucket
from tests.fakes.jira import FakeJira
from tests.worlds import World

CYCLES = 60


def open_files() -> int:
    return sum(1 for _ in Path("/proc/self/fd").iterdir())


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="counts file handles in /proc")
def test_soak_with_random_faults(tmp_path: Path) -> None:
    world = World(tmp_path / "world")
    jira, argocd, bitbucket = FakeJira().start(), FakeArgoCD().start(), FakeBitbucket().start()
    try:
        jira.add("PAY-4", "2.0")
        argocd.add(FakeApplication("pay-prod", "apps/pay/overlays/prod", sync_revision="x"))
        bitbucket.repos["pay"] = world.root / "pay"
        config = tmp_path / "devex.toml"
        config.write_text(FAST_HTTP.replace("retries = 3", "retries = 0")
                          + f'[gitops]\nrepo = "{world.root / "gitops"}"\n\n'
                          '[jira]\nprojects = ["PAY"]\n\n[bitbucket]\nworkspace = "acme"\n')
        environ = {**jira.env(), **argocd.env(), **bitbucket.env(),
                   "XDG_CACHE_HOME": str(tmp_path / "cache")}
        settings = load_settings(config, environ=environ)
        now = datetime(2026, 11, 1, tzinfo=UTC)
        options = CollectOptions(None, now - timedelta(days=90), now)
        exporter = Exporter(lambda: collect(settings, options, now=now), interval=3600)
        rng = random.Random(11)
        faults = [(500, {"errorMessages": ["boom"]}), (429, {"errorMessages": ["slow down"]}),
                  (200, b"{not json"), (401, {"error": "unauthorized"})]
        scrapes: list[int] = []
        stop = threading.Event()

        def scrape() -> None:
            while not stop.is_set():
                scrapes.append(len(exporter.metrics()))

        scraper = threading.Thread(target=scrape, daemon=True)
        tracemalloc.start()
        baseline_memory = baseline_files = 0
        up_values: list[bool] = []
        try:
            for cycle in range(CYCLES):
                for server in (jira, argocd, bitbucket):
                    server.faults.clear()
                if rng.random() < 0.6:
                    failing = rng.choice([jira, argocd, bitbucket])
                    status, body = rng.choice(faults)
                    failing.fail_next(status, body, times=20)
                exporter.collect()
                assert exporter.snapshot is not None and exporter.last_success
                up_values.append(all(exporter.snapshot.sources.values()))
                if cycle == 9:
                    scraper.start()
                    baseline_memory = tracemalloc.get_traced_memory()[0]
                    baseline_files = open_files()
            final_memory = tracemalloc.get_traced_memory()[0]
            final_files = open_files()
        finally:
            stop.set()
            tracemalloc.stop()
        assert scrapes and min(scrapes) > 1000  # /metrics answered every time, never empty
        assert not all(up_values) and any(up_values)  # sources went down and came back
        assert final_files <= baseline_files + 3, (baseline_files, final_files)
        assert final_memory - baseline_memory < 5 * 1024 * 1024, (baseline_memory, final_memory)
    finally:
        for server in (jira, argocd, bitbucket):
            server.stop()
