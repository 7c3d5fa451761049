from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

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
        "tools/migrate.yaml": "apiVersion: batch/v1\nkind: Job\nspec:\n  template:\n"
                              "    spec:\n      containers:\n      - image: ghcr.io/acme/migrate:1.0\n",
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
    # only what was not read: web's `latest` is read (a version), shown above, not skipped
    assert [(s["path"], s["commit"]) for s in report["skipped"]] == [
        (overlay("web", "qa"), repo.sha("HEAD")),
        ("tools/migrate.yaml", repo.sha("HEAD"))]
    assert "invalid YAML" in report["skipped"][0]["reason"]
    assert "belongs to no environment" in report["skipped"][1]["reason"]
    assert report["third_party"] == []


def test_status_table_in_the_current_folder(devex: Devex, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    result = devex("status", "--environment", "prod", cwd=repo.path)
    assert result.code == 0, result.err
    assert "pay" in result.out and "58ddfd6" in result.out and "latest" in result.out
    assert "qa" not in result.out.split("Skipped")[0]
    assert "Skipped (2)" in result.out and "names no commit" not in result.out
    assert "Third-party" not in result.out


def test_status_unknown_environment(devex: Devex, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    result = devex("status", "--gitops", str(repo.path), "--environment", "stagin")
    assert result.code == 2
    assert "unknown environment 'stagin'" in result.err and "prod" in result.err


def test_status_of_a_folder_that_is_not_a_repository(devex: Devex, tmp_path: Path) -> None:
    result = devex("status", "--gitops", str(tmp_path))
    assert result.code == 2 and "is not a git repository" in result.err


def test_status_and_collect_report_the_same_skipped_items(devex: Devex, tmp_path: Path) -> None:
    """A manifest that did not parse at one commit (fixed since) and a file that sets images but
    belongs to no environment: both commands list both, and a `latest` tag in neither."""
    repo = GitRepo(tmp_path / "gitops")
    repo.commit("pay", {overlay("pay", "prod"): kustomization([image("pay", "58ddfd6")]),
                        overlay("web", "prod"): kustomization([image("web", "latest")]),
                        "clusters/eu/kustomization.yaml": kustomization([image("eu", "1.0")])})
    broken = repo.commit("typo", {overlay("pay", "prod"): "images: [\n"})
    repo.commit("fixed", {overlay("pay", "prod"): kustomization([image("pay", "6e7f809")])})
    status = devex("status", "--gitops", str(repo.path), "--format", "json")
    assert status.code == 0, status.err
    collect = devex("collect", "--offline", "--gitops", str(repo.path), "--format", "json",
                    "--since", "2000-01-01")
    assert collect.code == 0, collect.err
    skipped = json.loads(status.out)["skipped"]
    assert [(s["path"], s["commit"]) for s in skipped] == [
        (overlay("pay", "prod"), broken), ("clusters/eu/kustomization.yaml", repo.sha("HEAD"))]
    assert json.loads(collect.out)["data_quality"]["manifests_skipped"] == skipped


def test_third_party_images_are_listed_apart(devex: Devex, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader's third-party images (here given to it, as a history carries them) are listed
    in JSON and in a section of their own, for the environments asked for."""
    from devex_cli.sources import gitops

    repo = make_repo(tmp_path)
    read = gitops.read_history

    def reading(*args: Any, **kwargs: Any) -> gitops.GitOpsHistory:
        return replace(read(*args, **kwargs), third_party=(
            gitops.ThirdParty("docker.io/library/redis", "prod", "7.2.4", overlay("pay", "prod")),
            gitops.ThirdParty("docker.io/library/redis", "dev", "7.4.0", overlay("pay", "dev")),
            gitops.ThirdParty("quay.io/keycloak/keycloak", "qa", "24.0",
                              "apps/keycloak/qa/values.yaml")))

    monkeypatch.setattr(gitops, "read_history", reading)
    report = json.loads(devex("status", "--gitops", str(repo.path), "--format", "json").out)
    assert report["third_party"] == [
        {"image": "docker.io/library/redis", "environment": "dev", "version": "7.4.0",
         "manifest": overlay("pay", "dev")},
        {"image": "docker.io/library/redis", "environment": "prod", "version": "7.2.4",
         "manifest": overlay("pay", "prod")},
        {"image": "quay.io/keycloak/keycloak", "environment": "qa", "version": "24.0",
         "manifest": "apps/keycloak/qa/values.yaml"}]
    assert {s["service"] for s in report["services"]} == {"pay", "web"}  # no service of them
    table = devex("status", "--gitops", str(repo.path), "--environment", "prod")
    assert table.code == 0, table.err
    services, third_party = table.out.split("Third-party images")
    assert "redis" not in services and "7.2.4" in third_party
    assert "7.4.0" not in third_party and "keycloak" not in third_party  # other environments
