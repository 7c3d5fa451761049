"""Each shape of GitOps repository in the wild, read with no configuration beyond its own."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from devex_cli.config import load_settings
from devex_cli.sources.gitops import read_history
from tests.conftest import Result
from tests.gitops_shapes import SHAPES, Expected, synthetic_history
from tests.gitworld import GitRepo

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


def test_large_history_is_read(tmp_path: Path) -> None:
    repo = synthetic_history(tmp_path / "big", services=5, commits=200)
    history = read_history(repo.path, load_settings(environ={}, cwd=repo.path))
    assert len(history.services) == 5
    assert len(history.deployments) == 200
