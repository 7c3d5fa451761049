"""Change sets through Bitbucket's API when the app repository is not on disk, and the cache
that makes a second collection ask only about what is new."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devex_cli.config import Settings
from tests.conftest import FAST_HTTP, Result
from tests.fakes.bitbucket import FakeBitbucket
from tests.worlds import World

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


def client_settings(bitbucket: FakeBitbucket, tmp_path: Path) -> Settings:
    """Settings for a client of the fake (fast retries), caching under `tmp_path`."""
    from devex_cli.config import load_settings

    config = tmp_path / "devex.toml"
    config.write_text(FAST_HTTP)
    return load_settings(config, environ={**bitbucket.env(), "XDG_CACHE_HOME": str(tmp_path)})


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


@pytest.mark.parametrize("long_history", [False, True])
def test_a_first_collection_reads_the_graph_not_every_range(
        devex: Devex, bitbucket: FakeBitbucket, tmp_path: Path, long_history: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Hundreds of deployments: Bitbucket lists each repository's history once (100 commits a
    page) and devex resolves short SHAs and walks ranges in it; a feature branch deployed to dev
    is listed on its own. A history too long for what was deployed of it (here: 3 commits a
    page) is not listed to the end: its ranges are asked one by one. The figures are the local
    repositories' exactly either way."""
    from datetime import UTC, datetime

    from devex_cli.sources.bitbucket import BitbucketCommits

    if long_history:
        bitbucket.max_pagelen = 3
        monkeypatch.setattr(BitbucketCommits, "MIN_PAGES", 1)

    from devex_cli.demo import build_demo
    from tests.gitworld import GitRepo, image, kustomization, overlay

    bitbucket.page_size = 100
    root = tmp_path / "org"
    local_config = build_demo(root, end=datetime(2026, 11, 20, tzinfo=UTC), days=60, seed=3)
    app = GitRepo.__new__(GitRepo)
    app.path, app.clock = root / "apps" / "payments", datetime(2026, 11, 20, 1, tzinfo=UTC)
    app.git("config", "user.name", "Dev")
    app.git("config", "user.email", "dev@acme.example")
    app.checkout("feature/PAY-900", create=True)
    feature = app.commit("PAY-900 try it in dev", {"feature.txt": "1"})
    app.checkout("main")
    gitops = GitRepo.__new__(GitRepo)
    gitops.path, gitops.clock = root / "gitops", datetime(2026, 11, 20, 2, tzinfo=UTC)
    gitops.git("config", "user.name", "Bot")
    gitops.git("config", "user.email", "bot@acme.example")
    gitops.commit("PR deployment", {overlay("payments", "dev"): kustomization(
        [image("payments", feature[:7], registry="registry.acme.example/shop")])})
    for name in ("payments", "checkout", "catalog", "notifications"):
        bitbucket.repos[name] = root / "apps" / name
    window = ("--since", "2026-09-01", "--until", "2026-11-21")
    local = devex("collect", "--offline", "--format", "json", *window,
                  config=str(local_config))
    assert local.code == 0, local.err
    remote_config = tmp_path / "remote.toml"
    remote_config.write_text(FAST_HTTP + local_config.read_text().split("[services.")[0]
                             .replace('repo = "gitops"', f'repo = "{root / "gitops"}"'))
    remote = devex("collect", "--format", "json", *window, config=str(remote_config),
                   env=bitbucket.env())
    assert remote.code == 0, remote.err
    expected, answer = json.loads(local.out), json.loads(remote.out)
    for key in ("deployments", "services", "tickets_in_environment"):
        assert answer[key] == expected[key], key
    deployments = len(expected["deployments"])
    assert deployments > 300
    assert any(d["commits"] == [feature] for d in answer["deployments"])
    if long_history:
        assert bitbucket.api_requests() > deployments  # one by one, after a cut-short listing
    else:
        assert bitbucket.api_requests() < deployments / 10  # pages and a few tips, not ranges


def test_a_change_set_is_taken_from_the_commits_waiting_for_production(
        bitbucket: FakeBitbucket, tmp_path: Path) -> None:
    """A new deployment to an environment before production needs two ranges from its
    revision: the commits waiting for production (`new ^prod`) and its change set (`new ^old`).
    When production's revision is the old one's ancestor, the change set is the listed commits
    the old one does not reach: one request, not two. When it is not (a hotfix in production the
    old revision lacks), or the old revision is not in the listing, the change set is asked. Each
    answer is `git rev-list` exactly."""
    from datetime import UTC, datetime

    from devex_cli.sources.bitbucket import BitbucketClient, BitbucketCommits
    from tests.gitworld import GitRepo

    app = GitRepo(tmp_path / "app", start=datetime(2026, 10, 1, tzinfo=UTC))
    a = app.commit("PAY-1 a", {"a": "1"})
    app.checkout("hotfix", create=True)
    h = app.commit("PAY-2 hotfix", {"h": "1"})
    app.checkout("main")
    b = app.commit("PAY-3 b", {"b": "1"})
    app.checkout("feature", create=True)
    f = app.commit("PAY-4 feature", {"f": "1"})
    app.checkout("main")
    c = app.merge("feature", "PAY-5 merge feature")
    app.merge("hotfix", "PAY-6 merge hotfix")
    d = app.commit("PAY-7 d", {"d": "1"})
    bitbucket.repos["pay"], bitbucket.page_size = app.path, 100
    settings = client_settings(bitbucket, tmp_path)

    def rev_list(new: str, old: str) -> list[str]:
        return app.git("rev-list", new, f"^{old}").split()

    cases = [((d, a), (d, b), 1),  # production behind the old revision: taken from the first
             ((c, a), (c, f), 1),  # the old revision on a merged branch
             ((d, h), (d, b), 2),  # a hotfix in production the old revision lacks: asked
             ((c, b), (c, a), 2),  # the old revision reachable from production's: asked
             ((d, b), (d, c), 1)]  # walked through a merge to production's revision
    with BitbucketClient(settings) as client:
        for waiting, change_set, requests in cases:
            commits = BitbucketCommits(client, "pay", {})
            before = bitbucket.api_requests()
            commits.prepare([waiting, change_set])
            assert bitbucket.api_requests() - before == requests, (waiting, change_set)
            for pair in (waiting, change_set):
                assert [x.sha for x in commits.only_in(*pair)] == rev_list(*pair), pair
            assert bitbucket.api_requests() - before == requests


def test_the_fake_takes_full_shas_and_ref_names_only(bitbucket: FakeBitbucket,
                                                     tmp_path: Path) -> None:
    """Bitbucket documents `include`/`exclude` as a commit SHA1 or a ref name: the fake
    answers a short SHA there as a commit not found (stricter than the documentation), so a
    client sending one fails here before it fails against Bitbucket."""
    import httpx

    from tests.gitworld import GitRepo

    app = GitRepo(tmp_path / "app")
    a = app.commit("PAY-1 a", {"a": "1"})
    b = app.commit("PAY-2 b", {"b": "1"})
    bitbucket.repos["pay"] = app.path
    headers = {"Authorization": f"Bearer {bitbucket.token}"}
    url = f"{bitbucket.url}/2.0/repositories/acme/pay/commits"
    for params, status in ((f"include={b}&exclude={a}", 200), ("include=main", 200),
                           (f"include={b[:7]}", 404), (f"include={b}&exclude={a[:12]}", 404)):
        answer = httpx.get(f"{url}?{params}", headers=headers)
        assert answer.status_code == status, params
        if status == 404:
            assert answer.json()["error"]["message"].startswith("Commit not found")


def test_revisions_resolved_ahead_are_asked_once(bitbucket: FakeBitbucket,
                                                 tmp_path: Path) -> None:
    """A collection's new deployments have their tags resolved in the background while it
    plans (`resolve_soon`): the `resolve` after it waits for that answer and asks nothing
    again; a failure of the background's is raised by that `resolve`, as asking then would."""
    from devex_cli.errors import UpstreamError
    from devex_cli.sources.bitbucket import BitbucketClient, BitbucketCommits
    from tests.gitworld import GitRepo

    app = GitRepo(tmp_path / "app")
    a, b = app.commit("PAY-1 a", {"a": "1"}), app.commit("PAY-2 b", {"b": "1"})
    bitbucket.repos["pay"] = app.path
    settings = client_settings(bitbucket, tmp_path)
    with BitbucketClient(settings) as client:
        commits = BitbucketCommits(client, "pay", {})
        before = bitbucket.api_requests()
        commits.resolve_soon([b[:7], a[:7]])
        assert commits.resolve([b[:7], a[:7], a[:7]]) == {b[:7]: b, a[:7]: a}
        assert bitbucket.api_requests() - before == 2
        assert commits.resolve([a[:7]]) == {a[:7]: a} and bitbucket.api_requests() - before == 2
        failing = BitbucketCommits(client, "pay", {})
        bitbucket.fail_next(500, {"type": "error", "error": {"message": "Something broke"}},
                            times=50)
        failing.resolve_soon([b[:8]])
        with pytest.raises(UpstreamError):
            failing.resolve([b[:8]])


def test_new_deployments_after_production_are_answered_by_one_listing(
        bitbucket: FakeBitbucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A collection with a few new deployments begins their tags beside its plan, given the
    revision production ran before them: Bitbucket lists every branch's commits production does
    not reach (`commits?exclude=`, one page), which resolves the tags there and gives every
    range between them and production's or a revision production is behind: one request for
    the lot, each answer `git rev-list` exactly. A tag not there (an old
    revision redeployed) is asked as before. A repository with more unmerged work than a page
    is asked tag by tag, and not listed so again for a day."""
    from datetime import UTC, datetime

    from devex_cli.sources.bitbucket import BitbucketClient, BitbucketCommits
    from tests.gitworld import GitRepo

    app = GitRepo(tmp_path / "app", start=datetime(2026, 10, 1, tzinfo=UTC))
    old = app.commit("PAY-1 old", {"o": "1"})
    prod = app.commit("PAY-2 in production", {"a": "1"})
    b = app.commit("PAY-3 b", {"b": "1"})
    app.checkout("feature", create=True)
    f = app.commit("PAY-4 a feature tried in dev", {"f": "1"})
    app.checkout("main")
    d = app.commit("PAY-5 d", {"d": "1"})
    bitbucket.repos["pay"], bitbucket.page_size = app.path, 100
    settings = client_settings(bitbucket, tmp_path)

    def rev_list(new: str, previous: str) -> list[str]:
        return app.git("rev-list", new, f"^{previous}").split()

    tags = [d[:7], f[:7], old[:7]]
    with BitbucketClient(settings) as client:
        store = {"acme/pay": {"resolved": {prod[:7]: prod}}}
        commits = BitbucketCommits(client, "pay", store)
        before = bitbucket.api_requests()
        commits.resolve_soon(tags, base=prod[:7])
        assert commits.resolve(tags) == {d[:7]: d, f[:7]: f, old[:7]: old}
        assert bitbucket.api_requests() - before == 2  # the listing, and the old tag asked
        pairs = [(d, prod), (d, b), (f, prod), (f, b), (f, d), (b, d)]
        commits.prepare(pairs)
        for pair in pairs:
            assert [c.sha for c in commits.only_in(*pair)] == rev_list(*pair), pair
        assert bitbucket.api_requests() - before == 2
        commits.prepare([(d, old)])  # production is not behind `old`: asked
        assert [c.sha for c in commits.only_in(d, old)] == rev_list(d, old)
        assert bitbucket.api_requests() - before == 3

        bitbucket.max_pagelen = 2  # more beyond production than a page

        def again(kept: dict[str, Any]) -> int:
            """The requests of a run with this repository's store, its tags unresolved."""
            mine = {**kept, "resolved": {prod[:7]: prod}}
            commits = BitbucketCommits(client, "pay", {"acme/pay": mine})
            before = bitbucket.api_requests()
            commits.resolve_soon(tags[:2], base=prod[:7])
            assert commits.resolve(tags[:2]) == {d[:7]: d, f[:7]: f}
            kept.clear()
            kept.update(mine)
            return bitbucket.api_requests() - before

        kept: dict[str, Any] = {}
        assert again(kept) == 3 and "beyond_long" in kept  # a page, then each tag
        assert again(kept) == 2  # not listed again today
        monkeypatch.setattr(BitbucketCommits, "RETRY_BEYOND", 0.0)
        bitbucket.max_pagelen = 100
        assert again(kept) == 1 and "beyond_long" not in kept

        unresolved = BitbucketCommits(client, "pay", {})  # production's revision never resolved
        before = bitbucket.api_requests()
        unresolved.resolve_soon(tags[:2], base=prod[:7])
        assert unresolved.resolve(tags[:2]) == {d[:7]: d, f[:7]: f}
        assert bitbucket.api_requests() - before == 2


def test_a_collection_after_new_deployments_asks_once_a_service(
        devex: Devex, bitbucket: FakeBitbucket, tmp_path: Path) -> None:
    """After a collection, new commits deployed to dev (payments) and through to production
    (checkout): the next collection asks Bitbucket once for each of those services (the
    listing beyond production's revision), and its figures are the local repositories'
    exactly."""
    from datetime import UTC, datetime

    from devex_cli.demo import build_demo
    from tests.gitworld import GitRepo, image, kustomization, overlay

    root = tmp_path / "org"
    local_config = build_demo(root, end=datetime(2026, 11, 20, tzinfo=UTC), days=45, seed=5)
    for name in ("payments", "checkout", "catalog", "notifications"):
        bitbucket.repos[name] = root / "apps" / name
    window = ("--since", "2026-10-01", "--until", "2026-11-22")
    remote_config = tmp_path / "remote.toml"
    remote_config.write_text(FAST_HTTP + local_config.read_text().split("[services.")[0]
                             .replace('repo = "gitops"', f'repo = "{root / "gitops"}"'))

    def remote() -> dict[str, Any]:
        result = devex("collect", "--format", "json", *window, config=str(remote_config),
                       env=bitbucket.env())
        assert result.code == 0, result.err
        return json.loads(result.out)  # type: ignore[no-any-return]

    remote()
    gitops = GitRepo.__new__(GitRepo)
    gitops.path, gitops.clock = root / "gitops", datetime(2026, 11, 21, 1, tzinfo=UTC)
    for name, environments in (("payments", ["dev"]), ("checkout", ["dev", "qa", "prod"])):
        app = GitRepo.__new__(GitRepo)
        app.path, app.clock = root / "apps" / name, datetime(2026, 11, 21, tzinfo=UTC)
        for repo in (app, gitops):
            repo.git("config", "user.name", "Dev")
            repo.git("config", "user.email", "dev@acme.example")
        sha = app.commit(f"{name.upper()[:3]}-950 one more change", {"more.txt": name})
        for environment in environments:
            gitops.commit(f"Deploy {name} to {environment}", {overlay(name, environment):
                          kustomization([image(name, f"1.950.0-{sha[:7]}",
                                               registry="registry.acme.example/shop")])})
    before = bitbucket.api_requests()
    answer = remote()
    assert bitbucket.api_requests() - before == 2
    local = devex("collect", "--offline", "--format", "json", *window,
                  config=str(local_config))
    assert local.code == 0, local.err
    expected = json.loads(local.out)
    for key in ("deployments", "services", "tickets_in_environment"):
        assert answer[key] == expected[key], key
    assert [d["environment"] for d in answer["deployments"][-4:]] == ["dev", "dev", "qa", "prod"]


def test_a_failing_listing_beyond_production_falls_back_to_asking_each_tag(
        bitbucket: FakeBitbucket, tmp_path: Path) -> None:
    """The listing beyond production's revision is only a shortcut: when Bitbucket refuses it
    (a 404 for a revision it no longer has, a 5xx for a listing too costly), the tags are asked
    one by one as before, and their ranges too: the service's change sets stay known."""
    from devex_cli.sources.bitbucket import BitbucketClient, BitbucketCommits
    from tests.gitworld import GitRepo

    app = GitRepo(tmp_path / "app")
    prod = app.commit("PAY-1 in production", {"a": "1"})
    new = app.commit("PAY-2 new", {"b": "1"})
    bitbucket.repos["pay"] = app.path
    settings = client_settings(bitbucket, tmp_path)
    with BitbucketClient(settings) as client:
        commits = BitbucketCommits(client, "pay", {"acme/pay": {"resolved": {prod[:7]: prod}}})
        bitbucket.fail_next(404, {"type": "error", "error": {"message": "Commit not found"}},
                            path="/2.0/repositories/acme/pay/commits")
        commits.resolve_soon([new[:7]], base=prod[:7])
        assert commits.resolve([new[:7]]) == {new[:7]: new}
        assert [c.sha for c in commits.only_in(new, prod)] == [new]
