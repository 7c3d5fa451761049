"""`devex collect --serve` as a real process, scraped by a real Prometheus on 127.0.0.1."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.services import free_port, get, prometheus, prometheus_available, query, running
from tests.worlds import World

pytestmark = pytest.mark.skipif(not prometheus_available(),
                                reason="needs Prometheus (Debian prometheus); .ci/run installs it")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("exporter-world"))


def devex_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "devex_cli", *args]


def test_prometheus_scrapes_the_exporter(world: World, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    argv = devex_argv("--config", str(world.config), "collect", "--offline", "--serve",
                      "--listen", f"127.0.0.1:{port}", "--interval", "2s")
    with running(argv, f"http://127.0.0.1:{port}/healthz", log=tmp_path / "devex.log", env=env):
        status, body = get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        assert f'revision="{world.m1}"' in body
        assert "devex_collections" in body
        assert get(f"http://127.0.0.1:{port}/nope")[0] == 404
        with prometheus(tmp_path / "prom", [f"127.0.0.1:{port}"]) as url:
            desired = query(url, 'deployment_desired_state{service="pay",environment="prod"}')
            assert [r["metric"]["revision"] for r in desired] == [world.m1]
            monthly = query(url, 'dora_monthly_deployments{environment="prod",'
                                 'month="2026-10"}')
            assert [r["value"][1] for r in monthly] == ["2"]
            up = query(url, 'devex_source_up{source="gitops"}')
            assert [r["value"][1] for r in up] == ["1"]


def test_exporter_keeps_last_good_values_when_the_repository_fails(
    world: World, tmp_path: Path
) -> None:
    import shutil

    copy = tmp_path / "gitops"
    shutil.copytree(world.root / "gitops", copy)
    port = free_port()
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    argv = devex_argv("--config", str(world.config), "collect", "--offline", "--gitops",
                      str(copy), "--serve", "--listen", f"127.0.0.1:{port}", "--interval", "1s")
    with running(argv, f"http://127.0.0.1:{port}/healthz", log=tmp_path / "devex.log", env=env):
        shutil.rmtree(copy)
        import time

        deadline = time.monotonic() + 15
        body = ""
        while time.monotonic() < deadline:
            body = get(f"http://127.0.0.1:{port}/metrics")[1]
            if 'devex_source_up{source="gitops"} 0.0' in body:
                break
            time.sleep(0.3)
        assert 'devex_source_up{source="gitops"} 0.0' in body
        assert f'revision="{world.m1}"' in body  # the last good figures are still served
        assert "devex_last_collection_success 0.0" in body
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
