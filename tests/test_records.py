"""Deployment records kept between collections: a later run computes only new deployments, and
its figures are the ones a run from an empty cache gives."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FAST_HTTP, Result
from tests.fakes.bitbucket import FakeBitbucket
from tests.gitworld import GitRepo, image, kustomization, overlay
from tests.worlds import World, at

Devex = Callable[..., Result]
WINDOW = ("--since", "2026-09-01", "--until", "2026-12-01")


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path / "world")


@pytest.fixture
def bitbucket() -> Iterator[FakeBitbucket]:
    server = FakeBitbucket(page_size=2).start()
    yield server
    server.stop()


def figures(devex: Devex, config: Path, *args: str, cache: Path | None = None,
            env: dict[str, str] | None = None) -> tuple[dict[str, Any], int]:
    """The JSON figures (less the generation time) and how many change sets were computed."""
    result = devex("-v", "collect", "--format", "json", *WINDOW, *args, config=str(config),
                   env={**(env or {}), **({"XDG_CACHE_HOME": str(cache)} if cache else {})})
    assert result.code == 0, result.err
    computed = re.search(r"(\d+) change set\(s\) computed", result.err)
    assert computed, result.err
    report = json.loads(result.out)
    report.pop("generated_at")
    return report, int(computed.group(1))


def deploy_more(world: World) -> None:
    """Two new app commits, deployed to qa and then to production."""
    app = GitRepo.__new__(GitRepo)
    app.path, app.clock = world.root / "pay", at("2026-10-07T09:00")
    c5 = app.commit("PAY-5 five", {"a": "5"}, when=at("2026-10-07T09:00"))
    c6 = app.commit("PAY-6 six", {"a": "6"}, when=at("2026-10-07T10:00"))
    gitops = GitRepo.__new__(GitRepo)
    gitops.path, gitops.clock = world.root / "gitops", at("2026-10-07T12:00")
    gitops.commit("qa c6", {overlay("pay", "qa"): kustomization([image("pay", c6[:7])])},
                  when=at("2026-10-07T12:00"))
    gitops.commit("prod c5", {overlay("pay", "prod"): kustomization([image("pay", c5[:7])])},
                  when=at("2026-10-08T12:00"))


def test_new_deployments_only_are_computed(devex: Devex, world: World, tmp_path: Path) -> None:
    first, computed = figures(devex, world.config, "--offline")
    assert computed == 8  # every deployment of the hand-computed world
    again, computed = figures(devex, world.config, "--offline")
    assert (again, computed) == (first, 0)

    deploy_more(world)
    incremental, computed = figures(devex, world.config, "--offline")
    assert computed == 2
    fresh, computed = figures(devex, world.config, "--offline", cache=tmp_path / "fresh")
    assert computed == 10
    assert incremental == fresh
    prod = [d for d in fresh["deployments"] if d["environment"] == "prod"]
    assert prod[-1]["tickets"] == ["PAY-4", "PAY-5"]  # after the rollback to m1
    assert {t["ticket"] for t in fresh["tickets_in_environment"]} == {"PAY-6"}


def test_a_warm_collection_asks_no_app_source(devex: Devex, world: World,
                                              bitbucket: FakeBitbucket, tmp_path: Path) -> None:
    """With the records kept, Bitbucket's own commit cache is not even needed."""
    bitbucket.repos["pay"] = world.root / "pay"
    config = tmp_path / "remote.toml"
    config.write_text(FAST_HTTP + f'[gitops]\nrepo = "{world.root / "gitops"}"\n\n'
                      '[jira]\nprojects = ["PAY"]\n')
    cold, _ = figures(devex, config, env=bitbucket.env())
    asked = bitbucket.api_requests()
    assert asked > 0
    (tmp_path / "cache" / "devex" / "bitbucket-commits.json").unlink()
    warm, computed = figures(devex, config, env=bitbucket.env())
    assert (warm, computed) == (cold, 0)
    assert bitbucket.api_requests() == asked
    assert warm["sources"]["bitbucket"] is True

    deploy_more(world)
    _, computed = figures(devex, config, env=bitbucket.env())
    assert computed == 2
    assert 0 < bitbucket.api_requests() - asked <= 6  # the two new revisions and ranges


def store(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "devex" / "devex.sqlite3"


def test_a_damaged_record_cache_is_computed_again(devex: Devex, world: World,
                                                  tmp_path: Path) -> None:
    first, _ = figures(devex, world.config, "--offline")
    path = store(tmp_path)
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("DELETE FROM change WHERE sha = (SELECT min(sha) FROM change)")
    again, computed = figures(devex, world.config, "--offline")
    assert again == first
    assert 0 < computed < 8  # the records naming the lost commit
    path.write_text("{not json")
    again, computed = figures(devex, world.config, "--offline")
    assert (again, computed) == (first, 8)


def test_changed_ticket_settings_compute_everything_again(devex: Devex, world: World) -> None:
    figures(devex, world.config, "--offline")
    text = world.config.read_text().replace('projects = ["PAY"]', 'projects = ["OPS"]')
    world.config.write_text(text)
    report, computed = figures(devex, world.config, "--offline")
    assert computed == 8
    assert all(d["tickets"] == [] for d in report["deployments"])


def test_ticket_keys_with_a_space_come_back_from_the_store(devex: Devex, world: World) -> None:
    """A pattern without a group makes its whole match the key, spaces included (`PAY-1
    FEATURE`): a warm collection gives the keys a cold one gives."""
    text = world.config.read_text().replace(
        "[jira]\n", "[jira]\nticket_pattern = 'PAY-[0-9]+ [a-z]+'\n")
    world.config.write_text(text)
    first, computed = figures(devex, world.config, "--offline")
    assert computed == 8
    assert "PAY-1 FEATURE" in {key for d in first["deployments"] for key in d["tickets"]}
    assert figures(devex, world.config, "--offline") == (first, 0)


@pytest.mark.parametrize("keys", [[], ["PAY-1"], ["PAY-1", "OPS-22"], ["PAY-1 FEATURE"],
                                  ["[PAY-12]", "[PAY-13]"], ["PAY-1", ""], ["A\tB", "C\nD"]])
def test_ticket_keys_are_kept_as_they_are(keys: list[str]) -> None:
    from devex_cli.store import keys_text, text_keys

    assert text_keys(keys_text(keys)) == keys


@pytest.mark.parametrize("damage", [
    # rows of the wrong types in every table
    "UPDATE record SET revision = 1, shas = X'00', ancestry_rollback = 5;"
    "UPDATE change SET author_time = 'soon', tickets = 7, merge = 'yes';"
    "UPDATE pending_range SET shas = 2.5",
    # every change set naming a commit the store does not have
    "UPDATE record SET shas = 'f00d'; UPDATE pending_range SET shas = 'f00d'",
    # another schema under the same version number
    "DROP TABLE change; CREATE TABLE change (x)",
    "ALTER TABLE record RENAME COLUMN shas TO commits",
    # another schema version, and the records of another configuration only
    "PRAGMA user_version = 99",
    "UPDATE configuration SET fingerprint = 'another'",
])
def test_any_damaged_cache_shape_is_computed_again(devex: Devex, world: World, tmp_path: Path,
                                                   damage: str) -> None:
    """Caches are files a user (or a full disk) can break: a wrong shape anywhere in the kept
    records or the GitOps reader's state means computing again, never a crash."""
    first, _ = figures(devex, world.config, "--offline")
    with contextlib.closing(sqlite3.connect(store(tmp_path))) as db:
        states = db.execute("SELECT name, body FROM reader_state").fetchall()
        assert states
        for name, body in states:
            broken = json.loads(body)
            broken["path_services"] = ["not", "a", "mapping"]
            broken["current"] = [[1, 2]]
            db.execute("UPDATE reader_state SET body = ? WHERE name = ?",
                       (json.dumps(broken), name))
        db.commit()
        db.executescript(damage)
    again, computed = figures(devex, world.config, "--offline")
    assert again == first
    assert computed == 8
    again, computed = figures(devex, world.config, "--offline")  # and the store is good again
    assert (again, computed) == (first, 0)


def _rows(path: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
                for table in ("record", "change", "pending_range")}


def test_a_warm_collection_writes_only_its_new_rows(devex: Devex, world: World,
                                                    tmp_path: Path) -> None:
    """The store grows by what a run computed: nothing new is no write at all (the file is not
    rewritten), two new deployments are two new records and the commits they name."""
    first, _ = figures(devex, world.config, "--offline")
    path = store(tmp_path)
    before, rows = path.read_bytes(), _rows(path)
    assert rows["record"] == 8
    written = path.stat().st_mtime_ns
    again, computed = figures(devex, world.config, "--offline")
    assert (again, computed) == (first, 0)
    assert path.stat().st_mtime_ns == written and path.read_bytes() == before

    deploy_more(world)
    _, computed = figures(devex, world.config, "--offline")
    after = _rows(path)
    assert computed == 2
    assert after["record"] == rows["record"] + 2
    assert after["change"] - rows["change"] <= 2  # PAY-5, PAY-6: at most the new commits


def test_configurations_sharing_a_cache_keep_their_own_records(devex: Devex, world: World,
                                                               tmp_path: Path) -> None:
    """Switching between two configurations computes nothing again: each has its rows."""
    other = world.config.with_name("other.toml")
    other.write_text(world.config.read_text().replace('projects = ["PAY"]',
                                                      'projects = ["OPS"]'))
    first, computed = figures(devex, world.config, "--offline")
    second, computed_other = figures(devex, other, "--offline")
    assert (computed, computed_other) == (8, 8)
    assert (figures(devex, world.config, "--offline"), figures(devex, other, "--offline")) == (
        (first, 0), (second, 0))
    assert store(tmp_path).stat().st_mode & 0o777 == 0o600


def test_the_json_records_of_earlier_versions_move_into_the_store(
        devex: Devex, world: World, tmp_path: Path) -> None:
    """An upgrade is not a cold run: the records an earlier version kept in
    collect-records.json are read once, written to the store, and the JSON file removed."""
    first, _ = figures(devex, world.config, "--offline")
    path = store(tmp_path)
    with contextlib.closing(sqlite3.connect(path)) as db:
        (fingerprint,) = db.execute("SELECT fingerprint FROM configuration").fetchone()
        content = {
            "fingerprint": fingerprint,
            "records": {key: [revision, None if shas is None else shas.split(),
                              None if verdict is None else bool(verdict)]
                        for key, revision, shas, verdict in db.execute(
                            "SELECT key, revision, shas, ancestry_rollback FROM record")},
            "commits": {sha: [when, tickets.split(), bool(merge)] for sha, when, tickets, merge
                        in db.execute("SELECT sha, author_time, tickets, merge FROM change")},
            "ranges": {key: shas.split() for key, shas in db.execute(
                "SELECT key, shas FROM pending_range")}}
    path.unlink()
    legacy = path.with_name("collect-records.json")
    legacy.write_text(json.dumps({"version": 2, "content": content}))
    again, computed = figures(devex, world.config, "--offline")
    assert (again, computed) == (first, 0)
    assert not legacy.exists() and _rows(path)["record"] == 8
    assert figures(devex, world.config, "--offline") == (first, 0)


@pytest.mark.parametrize("damage", [
    ("commits", "ab" * 20, [10**20, [], False]),  # beyond SQLite's INTEGER
    ("commits", "ab\udc80", [1_700_000_000, [], False]),  # not UTF-8: no SQLite text
    ("records", "pay prod x", ["ab" * 20, [1, 2], None]),  # SHAs that are no text
])
def test_damaged_json_records_of_earlier_versions_are_left_out(
        devex: Devex, world: World, tmp_path: Path, damage: tuple[str, str, Any]) -> None:
    """An entry of collect-records.json the store cannot hold is left out (or, text SQLite
    cannot hold, the store is not written that run): never a crash, and the store good again."""
    first, _ = figures(devex, world.config, "--offline")
    path = store(tmp_path)
    with contextlib.closing(sqlite3.connect(path)) as db:
        (fingerprint,) = db.execute("SELECT fingerprint FROM configuration").fetchone()
    path.unlink()
    part, key, entry = damage
    content: dict[str, Any] = {"fingerprint": fingerprint, "records": {}, "commits": {},
                               "ranges": {}}
    content[part][key] = entry
    legacy = path.with_name("collect-records.json")
    legacy.write_text(json.dumps({"version": 2, "content": content}))
    again, _ = figures(devex, world.config, "--offline")
    assert again == first and not legacy.exists()
    assert figures(devex, world.config, "--offline")[0] == first  # written now, if not before
    assert figures(devex, world.config, "--offline") == (first, 0)


@pytest.mark.parametrize("damage", ["""UPDATE manifest SET facts = '[1, {"x": 2}]'""",
                                    "UPDATE manifest SET facts = 'not json'",
                                    "UPDATE manifest SET facts = NULL",
                                    "DELETE FROM manifest"])
def test_damaged_manifest_facts_are_parsed_again(devex: Devex, world: World, tmp_path: Path,
                                                 damage: str) -> None:
    """What a manifest says, kept by blob: a damaged or lost row is parsed from git again (and
    kept again), the figures unchanged."""
    first, _ = figures(devex, world.config, "--offline")
    path = store(tmp_path)
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        rows = db.execute("SELECT key, facts FROM manifest ORDER BY key").fetchall()
        assert rows
        db.execute(damage)
    with contextlib.closing(sqlite3.connect(path)) as db, db:  # a full read: every blob's facts
        db.execute("DELETE FROM reader_state")
    again, _ = figures(devex, world.config, "--offline")
    assert again == first
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT key, facts FROM manifest ORDER BY key").fetchall() == rows


def test_a_collection_reads_the_manifest_facts_of_its_new_commits_only(
        devex: Devex, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Manifest facts are read from the store by key: none when nothing is new, a handful for
    two new GitOps commits, not the whole history's."""
    from devex_cli.store import ManifestStore

    asked: list[int] = []
    get = ManifestStore.get
    monkeypatch.setattr(ManifestStore, "get",
                        lambda self, keys: asked.append(len(keys)) or get(self, keys))
    figures(devex, world.config, "--offline")
    cold = sum(asked)
    assert cold >= 6
    asked.clear()
    figures(devex, world.config, "--offline")
    assert sum(asked) == 0
    deploy_more(world)
    figures(devex, world.config, "--offline")
    assert sum(asked) == 2  # the two new overlays


def test_tags_resolved_ahead_are_waited_for_when_no_record_asks_them(
        devex: Devex, world: World, bitbucket: FakeBitbucket, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A collection begins resolving its new deployments' tags in the background
    (`resolve_soon`); when another collector sharing the cache made their records already, no
    `resolve` waits for that answer: the collection still does before it closes the Bitbucket
    client, and leaves no thread asking it once it has returned."""
    import threading
    import time

    from devex_cli.sources.bitbucket import BitbucketClient

    bitbucket.repos["pay"] = world.root / "pay"
    every = tmp_path / "every.toml"
    every.write_text(FAST_HTTP + f'[gitops]\nrepo = "{world.root / "gitops"}"\n\n'
                     '[jira]\nprojects = ["PAY"]\n')
    ours = tmp_path / "ours.toml"
    ours.write_text(every.read_text() + '\n[collect]\nservices = ["pay*"]\n')
    for config in (every, ours):
        figures(devex, config, env=bitbucket.env())
    deploy_more(world)
    _, computed = figures(devex, every, env=bitbucket.env())
    assert computed == 2
    # (Bitbucket's own cache of tags is lost: the records do not need it)
    (tmp_path / "cache" / "devex" / "bitbucket-commits.json").unlink()
    commit, late = BitbucketClient.commit, []

    def slow(self: BitbucketClient, repo: str, revision: str) -> Any:
        time.sleep(0.3)
        late.append(commit(self, repo, revision))
        return late[-1]

    monkeypatch.setattr(BitbucketClient, "commit", slow)
    _, computed = figures(devex, ours, env=bitbucket.env())
    assert computed == 0
    left = [t for t in threading.enumerate() if t.name.startswith("devex-bitbucket-resolve")]
    for thread in left:
        thread.join()
    assert not left
    assert late  # (the tags were asked ahead, and answered before the client closed)
