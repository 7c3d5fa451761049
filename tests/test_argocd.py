"""Argo CD beside the GitOps history: times, failed syncs, drift, and the history cache."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.fakes.argocd import FakeApplication, FakeArgoCD
from tests.worlds import World, at

Devex = Callable[..., Result]


@pytest.fixture
def argocd() -> Iterator[FakeArgoCD]:
    server = FakeArgoCD().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("argo-world"))


def gitops_commits(world: World) -> list[str]:
    import subprocess

    out = subprocess.run(["git", "-C", str(world.root / "gitops"), "rev-list", "--first-parent",
                          "--reverse", "main"], capture_output=True, text=True, check=True)
    return out.stdout.split()


def collect(devex: Devex, world: World, argocd: FakeArgoCD, *args: str) -> dict:  # type: ignore[type-arg]
    result = devex("collect", "--format", "json", "--since", "2026-09-01", "--until",
                   "2026-11-01", *args, config=str(world.config), env=argocd.env())
    assert result.code == 0, result.err
    return json.loads(result.out)  # type: ignore[no-any-return]


def test_deployed_at_failed_sync_and_actual_state(devex: Devex, world: World,
                                                  argocd: FakeArgoCD) -> None:
    commits = gitops_commits(world)
    prod_c4, rollback = commits[6], commits[7]
    argocd.add(FakeApplication(
        "pay-prod", "apps/pay/overlays/prod", sync_revision=rollback,
        history=[(prod_c4, at("2026-10-06T18:07")), (rollback, at("2026-10-06T20:04"))],
        operation={"phase": "Succeeded", "message": "successfully synced",
                   "startedAt": "2026-10-06T20:03:00Z", "finishedAt": "2026-10-06T20:04:00Z",
                   "syncResult": {"revision": rollback}}))
    argocd.add(FakeApplication(
        "qa-pay", "apps/pay/overlays/qa", sync_revision=commits[1], sync_status="OutOfSync",
        health="Degraded",
        operation={"phase": "Failed", "message": "one or more objects failed to apply",
                   "startedAt": "2026-10-06T12:01:00Z", "finishedAt": "2026-10-06T12:02:00Z",
                   "syncResult": {"revision": commits[5]}}))
    report = collect(devex, world, argocd)
    prod = [d for d in report["deployments"] if d["environment"] == "prod"]
    assert [d["time"] for d in prod][-2:] == ["2026-10-06T18:07:00Z", "2026-10-06T20:04:00Z"]
    service = report["services"][0]
    prod_figures = next(e for e in service["environments"] if e["environment"] == "prod")
    assert prod_figures["recovery_time_seconds"]["median"] == 117 * 60.0  # 18:07 -> 20:04
    qa = [d for d in report["deployments"] if d["environment"] == "qa"]
    assert qa[-1]["failed"] is True  # the sync of the last qa deployment failed
    actual = {a["environment"]: a for a in report["actual_state"]}
    assert actual["prod"]["revision"] == world.m1 and actual["prod"]["drift"] is False
    assert actual["qa"]["revision"] == world.c2  # synced to an older GitOps commit
    assert actual["qa"]["drift"] is True and actual["qa"]["health"] == "Degraded"
    assert report["sources"]["argocd"] is True
    assert report["data_quality"]["failure_signals"] == {"pay": ["gitops", "ancestry", "argocd"]}


def test_status_shows_argo_beside_the_desired_state(devex: Devex, world: World,
                                                    argocd: FakeArgoCD) -> None:
    commits = gitops_commits(world)
    argocd.add(FakeApplication("pay-prod", "apps/pay/overlays/prod", sync_revision=commits[-1]))
    result = devex("status", "--format", "json", config=str(world.config), env=argocd.env())
    assert result.code == 0, result.err
    envs = {e["environment"]: e for e in json.loads(result.out)["services"][0]["environments"]}
    assert envs["prod"]["actual"]["sync"] == "Synced"
    assert world.m1.startswith(envs["prod"]["actual"]["revision"])  # the tag's short SHA
    assert envs["qa"]["actual"] is None  # no application maps to it
    offline = devex("status", "--offline", "--format", "json", config=str(world.config),
                    env=argocd.env())
    assert json.loads(offline.out)["services"][0]["environments"][0]["actual"] is None
    table = devex("status", config=str(world.config), env=argocd.env())
    assert "Synced/Healthy" in table.out


def test_history_entries_are_kept_after_argo_forgets_them(
    devex: Devex, world: World, argocd: FakeArgoCD, tmp_path: Path
) -> None:
    commits = gitops_commits(world)
    app = argocd.add(FakeApplication(
        "pay-prod", "apps/pay/overlays/prod", sync_revision=commits[7],
        history=[(commits[3], at("2026-09-06T12:30"))], history_limit=1))
    collect(devex, world, argocd)
    app.history.append((commits[7], at("2026-10-06T20:04")))  # the older entry falls off
    report = collect(devex, world, argocd)
    prod = [d for d in report["deployments"] if d["environment"] == "prod"]
    assert prod[1]["time"] == "2026-09-06T12:30:00Z"  # from the cache
    cache = tmp_path / "cache" / "devex" / "argocd-history.json"
    assert cache.exists()
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert argocd.token not in cache.read_text()


def test_mapping_by_name_and_explicitly(devex: Devex, world: World, argocd: FakeArgoCD,
                                        tmp_path: Path) -> None:
    commits = gitops_commits(world)
    argocd.add(FakeApplication("prod-pay", "elsewhere", sync_revision=commits[-1]))
    argocd.add(FakeApplication("legacy-name", "elsewhere/too", sync_revision=commits[2]))
    config = tmp_path / "devex.toml"
    config.write_text(world.config.read_text().replace(
        'repo = "gitops"', f'repo = "{world.root / "gitops"}"').replace(
        'repo = "pay"', f'repo = "{world.root / "pay"}"')
        + '\n[argocd.applications]\nlegacy-name = "pay/qa"\n')
    result = devex("collect", "--format", "json", config=str(config), env=argocd.env())
    actual = {a["environment"]: a["application"] for a in json.loads(result.out)["actual_state"]}
    assert actual == {"prod": "prod-pay", "qa": "legacy-name"}


@pytest.mark.parametrize(("status", "body"), [
    (401, {"error": "no session information", "code": 16, "message": "no session information"}),
    (503, {"error": "unavailable", "code": 14, "message": "unavailable"}),
    (200, b"<html>sign in</html>"),
    (200, {"items": [{"spec": {}}]}),
])
def test_failing_argocd_degrades_collect(devex: Devex, world: World, argocd: FakeArgoCD,
                                         status: int, body: object) -> None:
    argocd.fail_next(status, body, times=10)  # type: ignore[arg-type]
    report = collect(devex, world, argocd)
    assert report["sources"]["argocd"] is False
    assert len(report["deployments"]) == 8  # the GitOps figures are all there
    assert report["actual_state"] == []
    assert report["data_quality"]["failure_signals"] == {"pay": ["gitops", "ancestry"]}


def test_expired_token_message(devex: Devex, world: World, argocd: FakeArgoCD) -> None:
    env = {**argocd.env(), "ARGOCD_AUTH_TOKEN": "expired-token-value"}
    result = devex("status", config=str(world.config), env=env)
    assert result.code == 0
    assert "401" in result.err and "ARGOCD_AUTH_TOKEN" in result.err
    assert "expired-token-value" not in result.err + result.out


def test_prometheus_has_actual_state_and_drift(devex: Devex, world: World,
                                               argocd: FakeArgoCD) -> None:
    commits = gitops_commits(world)
    argocd.add(FakeApplication("pay-qa", "apps/pay/overlays/qa", sync_revision=commits[1],
                               sync_status="OutOfSync"))
    result = devex("collect", "--format", "prometheus", config=str(world.config),
                   env=argocd.env())
    assert 'deployment_actual_state{environment="qa",health="Healthy",' in result.out
    assert 'deployment_drift{environment="qa",service="pay"} 1.0' in result.out
    assert "deployment_drift_seconds{" in result.out
