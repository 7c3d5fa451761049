from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Result
from tests.gitworld import GitRepo, image, kustomization, overlay

Devex = Callable[..., Result]


def make_repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo(tmp_path / "gitops")
    repo.commit("pay everywhere", {
        overlay("pay", "dev"): kustomization([image("pay", "1.2.0-0a1b2c3")]),
        overlay("pay", "qa"): kustomization([image("pay", "58ddfd6")]),
        overlay("pay", "prod"): kustomization([image("pay", "58ddfd6")]),
        overlay("web", "prod"): kustomization([image("web", "latest")]),
        "apps/pay/base/kustomization.yaml": "resources: [deployment.yaml]\n",
        "clusters/eu/kustomization.yaml": "resources: [../../apps]\n",
    })
    repo.commit("break web in qa", {overlay("web", "qa"): "images: [\n"})
    return repo


def test_status_json(devex: Devex, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    result = devex("status", "--gitops", str(repo.path), "--format", "json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    by_service = {s["service"]: s for s in report["services"]}
    assert list(by_service) == ["pay", "web"]
    pay = by_service["pay"]["environments"]
    assert [e["environment"] for e in pay] == ["dev", "qa", "prod"]
    assert pay[0]["revision"] == "0a1b2c3" and pay[0]["version"] == "1.2.0-0a1b2c3"
    assert pay[2]["manifest"] == overlay("pay", "prod")
    assert pay[2]["gitops_commit"] == repo.sha("HEAD~1")
    assert pay[2]["deployed_at"].endswith("Z") and pay[2]["actual"] is None
    web = by_service["web"]["environments"]
    assert web == [{**web[0], "environment": "prod", "revision": None, "version": "latest"}]
    reasons = {s["path"]: s["reason"] for s in report["skipped"]}
    assert reasons == {
        overlay("web", "qa"): reasons[overlay("web", "qa")],
        overlay("web", "prod"): reasons[overlay("web", "prod")],
    }
    assert "invalid YAML" in reasons[overlay("web", "qa")]
    assert "names no commit" in reasons[overlay("web", "prod")]


def test_status_table_in_the_current_folder(devex: Devex, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    result = devex("status", "--environment", "prod", cwd=repo.path)
    assert result.code == 0, result.err
    assert "pay" in result.out and "58ddfd6" in result.out and "latest" in result.out
    assert "qa" not in result.out.split("Skipped")[0]
    assert "Skipped (3)" in result.out


def test_status_unknown_environment(devex: Devex, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    result = devex("status", "--gitops", str(repo.path), "--environment", "stagin")
    assert result.code == 2
    assert "unknown environment 'stagin'" in result.err and "prod" in result.err


def test_status_of_a_folder_that_is_not_a_repository(devex: Devex, tmp_path: Path) -> None:
    result = devex("status", "--gitops", str(tmp_path))
    assert result.code == 2 and "is not a git repository" in result.err
