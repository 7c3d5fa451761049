"""Each shape of GitOps repository in the wild, read with no configuration beyond its own."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from devex_cli.config import load_settings
from devex_cli.sources.gitops import read_history
from tests.conftest import Result
from tests.gitops_shapes import SHAPES, Expected, synthetic_history
from tests.gitworld import GitRepo, kustomization

Devex = Callable[..., Result]


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_shape(shape: str, tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "gitops")
    expected: Expected = SHAPES[shape](repo)
    config = tmp_path / "devex.toml"
    config.write_text(expected.config)
    history = read_history(repo.path, load_settings(config, environ={}))
    assert set(history.services) == expected.services
    assert list(history.environments) == expected.environments
    counts = Counter((d.service, d.environment) for d in history.deployments)
    assert dict(counts) == expected.deployments, expected.notes
    heads = {key: state.release.revision or f"v:{state.release.version}"
             for key, state in history.current.items()}
    assert heads == expected.head
    assert history.skipped == ()
    assert {(t.image, t.environment) for t in history.third_party} == expected.third_party
    rebuilt = Counter((r.service, r.environment) for r in history.redeployments)
    assert dict(rebuilt) == expected.redeployments


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_shape_rollbacks_from_the_gitops_history(shape: str, devex: Devex,
                                                 tmp_path: Path) -> None:
    """Tags put back by hand are rollbacks with no app repository (the collector's figures)."""
    repo = GitRepo(tmp_path / "gitops")
    expected: Expected = SHAPES[shape](repo)
    config = tmp_path / "devex.toml"
    config.write_text(expected.config)
    result = devex("collect", "--offline", "--format", "json", "--gitops", str(repo.path),
                   "--since", "2000-01-01", config=str(config))
    assert result.code == 0, result.err
    rolled = Counter((d["service"], d["environment"])
                     for d in json.loads(result.out)["deployments"] if d["rollback"])
    assert dict(rolled) == expected.rollbacks


def test_status_of_every_shape_together(devex: Devex, tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "gitops")
    config = ""
    services: set[str] = set()
    for shape in sorted(SHAPES):
        expected = SHAPES[shape](repo)
        config += expected.config
        services |= expected.services
    (tmp_path / "devex.toml").write_text(config)
    result = devex("status", "--gitops", str(repo.path), "--format", "json",
                   config=str(tmp_path / "devex.toml"))
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert {s["service"] for s in report["services"]} == services
    auth = next(s for s in report["services"] if s["service"] == "auth")
    assert auth["environments"][0]["version"] == "0054442"
    # `latest` is read (a version), not skipped: only what was not read is listed
    api = next(s for s in report["services"] if s["service"] == "api")
    assert {e["environment"]: e["version"] for e in api["environments"]}["local"] == "latest"
    assert not any("names no commit" in s["reason"] for s in report["skipped"])


def test_digits_only_sha_with_its_app_repository(devex: Devex, tmp_path: Path) -> None:
    """A tag such as `0054442` is a revision when the app repository has that commit."""
    app = GitRepo(tmp_path / "auth")
    sha = app.commit("seed")
    n = 0
    while not sha[:7].isdigit():  # about 1 in 27 commits has a 7-digit prefix
        n += 1
        sha = app.commit(f"seed {n}")
    gitops = GitRepo(tmp_path / "gitops")
    gitops.commit("qa", {"apps/auth/overlays/qa/kustomization.yaml":
                         f"images:\n- name: auth\n  newTag: {sha[:7]}\n"})
    config = tmp_path / "devex.toml"
    config.write_text(f'[services.auth]\nrepo = "{app.path}"\n')
    result = devex("collect", "--offline", "--format", "json", "--gitops", str(gitops.path),
                   "--since", "3650d", config=str(config))
    assert result.code == 0, result.err
    (deployment,) = json.loads(result.out)["deployments"]
    assert deployment["revision"] == sha
    # status judges the tag as collect does: a revision, since the app repository has it
    status = devex("status", "--format", "json", "--gitops", str(gitops.path), config=str(config))
    assert status.code == 0, status.err
    (auth,) = json.loads(status.out)["services"]
    assert auth["environments"][0]["revision"] == sha[:7]


def test_large_history_is_read(tmp_path: Path) -> None:
    repo = synthetic_history(tmp_path / "big", services=5, commits=200)
    history = read_history(repo.path, load_settings(environ={}, cwd=repo.path))
    assert len(history.services) == 5
    assert len(history.deployments) == 200


def nothing_to_find(repo: GitRepo) -> None:
    """A repository whose manifests name no environment: a production-only layout."""
    repo.commit("argocd", {
        "argocd/kustomization.yaml": kustomization([
            {"name": "quay.io/argoproj/argocd", "newTag": "3.6.0-4d09b7bd"}]),
        "README.md": "# platform\n",
        "ci/pipeline.yaml": "steps: [build, test]\n"})


def test_nothing_found_is_exit_2_with_the_closest_files(devex: Devex, tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "gitops")
    nothing_to_find(repo)
    for command in (("status",), ("collect", "--offline")):
        result = devex(*command, "--gitops", str(repo.path))
        assert result.code == 2, (command, result.out, result.err)
        assert result.out == "", command  # never empty figures
        assert "no service found" in result.err and "looked for" in result.err
        assert "closest: argocd/kustomization.yaml" in result.err
        assert "gitops.manifests" in result.err and result.err.count("\n") == 1
    # the one template the hint suggests reads it, as production
    config = tmp_path / "devex.toml"
    config.write_text('[gitops]\nmanifests = ["{service}/kustomization.yaml"]\n')
    result = devex("status", "--gitops", str(repo.path), "--format", "json", config=str(config))
    assert result.code == 0, result.err
    (argocd,) = json.loads(result.out)["services"]
    assert (argocd["service"], argocd["environments"][0]["environment"]) == ("argocd", "prod")
    assert argocd["environments"][0]["revision"] == "4d09b7bd"


def test_nothing_found_makes_the_exporter_unhealthy_and_says_why(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys
    import time

    from tests.services import free_port, get

    repo = GitRepo(tmp_path / "gitops")
    nothing_to_find(repo)
    port = free_port()
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "devex_cli", "collect", "--offline", "--gitops",
             str(repo.path), "--serve", "--listen", f"127.0.0.1:{port}", "--interval", "1h"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
        try:
            answer = (0, "")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and "no service found" not in answer[1]:
                assert process.poll() is None, (tmp_path / "serve.log").read_text()
                with contextlib.suppress(OSError):
                    answer = get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                if "no service found" not in answer[1]:
                    time.sleep(0.1)  # not up yet, or not collected yet
            assert answer[0] == 503
            assert "no collection has succeeded yet: no service found" in answer[1]
        finally:
            process.terminate()
            process.wait(timeout=10)
