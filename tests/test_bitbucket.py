"""Change sets through Bitbucket's API when the app repository is not on disk, and the cache
that makes a second collection ask only about what is new."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import FAST_HTTP, Result
from tests.fakes.bitbucket import FakeBitbucket
from tests.test_collect import World

Devex = Callable[..., Result]


@pytest.fixture
def bitbucket() -> Iterator[FakeBitbucket]:
    server = FakeBitbucket(page_size=2).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("bb-world"))


def remote_config(world: World, tmp_path: Path) -> Path:
    config = tmp_path / "devex.toml"
    config.write_text(FAST_HTTP + f'[gitops]\nrepo = "{world.root / "gitops"}"\n\n'
                      '[jira]\nprojects = ["PAY"]\n')
    return config


def collect(devex: Devex, config: Path, bitbucket: FakeBitbucket) -> dict:  # type: ignore[type-arg]
    result = devex("collect", "--format", "json", "--since", "2026-09-01", "--until",
                   "2026-11-01", config=str(config), env=bitbucket.env())
    assert result.code == 0, result.err
    return json.loads(result.out)  # type: ignore[no-any-return]


def test_same_figures_as_the_local_repository(devex: Devex, world: World,
                                              bitbucket: FakeBitbucket, tmp_path: Path) -> None:
    bitbucket.repos["pay"] = world.root / "pay"
    local = devex("collect", "--offline", "--format", "json", "--since", "2026-09-01",
                  "--until", "2026-11-01", config=str(world.config))
    remote = collect(devex, remote_config(world, tmp_path), bitbucket)
    expected = json.loads(local.out)
    for key in ("deployments", "services", "tickets_in_environment"):
        assert remote[key] == expected[key], key
    assert remote["sources"]["bitbucket"] is True
    cold = bitbucket.api_requests()
    assert cold > 0

    again = collect(devex, remote_config(world, tmp_path), bitbucket)
    assert again["services"] == expected["services"]
    assert bitbucket.api_requests() == cold  # everything came from the cache


def test_basic_auth_with_an_api_token(devex: Devex, world: World, tmp_path: Path) -> None:
    server = FakeBitbucket(user="ci@acme.example").start()
    try:
        server.repos["pay"] = world.root / "pay"
        report = collect(devex, remote_config(world, tmp_path), server)
        assert report["sources"]["bitbucket"] is True
        prod = [d for d in report["deployments"] if d["environment"] == "prod"]
        assert prod[1]["commits"] == [world.c1, world.c2, world.c3]
    finally:
        server.stop()


@pytest.mark.parametrize(("status", "body"), [
    (401, {"type": "error", "error": {"message": "Unauthorized"}}),
    (429, {"type": "error", "error": {"message": "Rate limit for this resource has been exceeded"}}),
    (200, b"not json"),
])
def test_failing_bitbucket_degrades(devex: Devex, world: World, bitbucket: FakeBitbucket,
                                    tmp_path: Path, status: int, body: object) -> None:
    bitbucket.repos["pay"] = world.root / "pay"
    bitbucket.fail_next(status, body, times=50)  # type: ignore[arg-type]
    result = devex("collect", "--format", "json", config=str(remote_config(world, tmp_path)),
                   env=bitbucket.env())
    assert result.code == 0
    report = json.loads(result.out)
    assert report["sources"]["bitbucket"] is False
    assert all(not d["change_set_known"] for d in report["deployments"])
    assert bitbucket.token not in result.err


def test_unknown_repository_means_unknown_revisions(devex: Devex, world: World,
                                                    bitbucket: FakeBitbucket,
                                                    tmp_path: Path) -> None:
    report = collect(devex, remote_config(world, tmp_path), bitbucket)  # no repo 'pay' there
    assert {r["revision"] for r in report["data_quality"]["revisions_not_found"]} >= {
        world.c0[:7], world.m1[:7]}
