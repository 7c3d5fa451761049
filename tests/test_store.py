"""The store across histories: a warm collection after new deployments gives the figures a cold
collection of the same state gives, and writes only its new rows."""

from __future__ import annotations

import contextlib
import json
import random
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devex_cli.collect import CollectOptions, collect, collect_inputs
from devex_cli.config import load_settings
from devex_cli.demo import DemoService, build_demo
from devex_cli.dora.compute import LONGEST_WINDOW, environment_evidence
from devex_cli.dora.model import Snapshot
from devex_cli.horizon import SLACK
from devex_cli.store import SCHEMA_VERSION
from tests.gitworld import GitRepo, image, kustomization, overlay

END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SERVICES = (DemoService("pay", "PAY", 2.0, prod_every_weeks=1),
            DemoService("shop", "SHOP", 1.5, prod_every_weeks=2))
ENVIRONMENTS = ("dev", "qa", "preprod", "prod")


def snapshot(config: Path, cache: Path, now: datetime) -> Snapshot:
    settings = load_settings(config, environ={"XDG_CACHE_HOME": str(cache)})
    return collect(settings, CollectOptions(gitops=None, start=now - timedelta(days=90),
                                            end=now, offline=True), now=now)


def views(config: Path, cache: Path, now: datetime) -> list[object]:
    """What a collection shows over windows of every kind (a week; longer than the history;
    ending in the past; the standard ones moving with a later `now`), and the evidence
    `devex explain` reads for each service and environment."""
    settings = load_settings(config, environ={"XDG_CACHE_HOME": str(cache)})
    seen: list[object] = []
    for start, end, at in ((now - timedelta(days=7), now, now),
                           (now - timedelta(days=400), now, now),
                           (now - timedelta(days=30), now - timedelta(days=10), now),
                           (now - timedelta(days=90), now + timedelta(days=40),
                            now + timedelta(days=40))):
        inputs = collect_inputs(settings, CollectOptions(gitops=None, start=start, end=end,
                                                         offline=True), now=at)
        seen.append(inputs.snapshot)
        seen.extend(environment_evidence(inputs.history, service, environment, start, end, at)
                    for service, environment in sorted(inputs.history.by_key))
    return seen


def records(cache: Path) -> int:
    with contextlib.closing(sqlite3.connect(cache / "devex" / "devex.sqlite3")) as db:
        return int(db.execute("SELECT count(*) FROM record").fetchone()[0])


def deploy_new(root: Path, rng: random.Random, when: datetime, count: int) -> datetime:
    """`count` GitOps commits: a new app commit to an environment, or an older revision (a
    rollback) or the revision of the environment before it (a promotion)."""
    gitops = GitRepo.__new__(GitRepo)
    gitops.path, gitops.clock = root / "gitops", when
    for repo in (gitops.path, *(root / "apps" / s.name for s in SERVICES)):
        for key, value in (("user.name", "Dev"), ("user.email", "dev@acme.example")):
            gitops.git("-C", str(repo), "config", key, value)
    for n in range(count):
        service = rng.choice(SERVICES)
        app = GitRepo.__new__(GitRepo)
        app.path, app.clock = root / "apps" / service.name, when
        shas = app.git("rev-list", "--first-parent", "main").split()
        environment = rng.choice(ENVIRONMENTS)
        roll = rng.random()
        when += timedelta(minutes=7)
        if roll < 0.5:
            sha = app.commit(f"{service.project}-{900 + n} new work", {f"n{n}.txt": str(n)},
                             when=when)
        else:  # an older revision: a rollback somewhere, a promotion elsewhere
            sha = shas[rng.randrange(min(len(shas), 30))]
        when += timedelta(minutes=3)
        gitops.commit(f"deploy {service.name} to {environment}", {
            overlay(service.name, environment): kustomization(
                [image(service.name, sha[:7])])}, when=when)
    return when


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_warm_collection_after_new_deployments_equals_a_cold_one(tmp_path: Path,
                                                                   seed: int) -> None:
    root = tmp_path / "org"
    config = build_demo(root, end=END, days=45, seed=seed, services=SERVICES)
    kept, fresh = tmp_path / "kept", tmp_path / "fresh"
    rng = random.Random(seed)
    snapshot(config, kept, END + timedelta(hours=1))
    before = records(kept)
    assert before > 0
    when = END + timedelta(hours=2)
    for rounds in range(3):  # new work, collected warm, in a few rounds
        when = deploy_new(root, rng, when, count=2 + rounds * 3)
        now = when + timedelta(hours=1)
        warm = snapshot(config, kept, now)
        assert snapshot(config, kept, now) == warm  # and again, with nothing new
    cold = snapshot(config, fresh, now)
    assert warm == cold
    assert records(kept) == records(fresh) > before
    seen = views(config, kept, now)
    assert seen == views(config, fresh, now)
    assert sum(len(v.deployments) for v in seen if isinstance(v, Snapshot)) > len(warm.deployments)


@pytest.mark.parametrize("running", [True, False])
def test_the_cycle_collector_does_not_run_during_a_collection(tmp_path: Path,
                                                              running: bool) -> None:
    """A collection builds tens of thousands of objects; the cycle collector would walk them
    again and again: it is paused while the collection runs (where a collection makes many
    times the objects that start a pass, one pass is counted: when it resumes), and is left as
    it was found."""
    import gc

    config = build_demo(tmp_path / "org", end=END, days=120, seed=4, services=SERVICES)
    settings = load_settings(config, environ={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    options = CollectOptions(gitops=None, start=END - timedelta(days=90), end=END, offline=True)
    passes: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            passes.append(info["generation"])

    (gc.enable if running else gc.disable)()
    try:
        for _ in ("cold", "warm"):
            gc.collect()  # counts from zero
            gc.callbacks.append(count)
            try:
                collect(settings, options, now=END)
            finally:
                gc.callbacks.remove(count)
            # the one pass is the young objects' once it resumes (none when it was paused)
            assert len(passes) == (1 if running else 0), passes
            passes.clear()
            assert gc.isenabled() is running
    finally:
        gc.enable()


def horizon_snapshot(config: Path, cache: Path, now: datetime, days: int = 30
                     ) -> tuple[Snapshot, list[str]]:
    """A collection over the last `days` and the steps it took."""
    settings = load_settings(config, environ={"XDG_CACHE_HOME": str(cache)})
    steps: list[str] = []
    snap = collect(settings, CollectOptions(gitops=None, start=now - timedelta(days=days),
                                            end=now, offline=True), now=now, step=steps.append)
    return snap, [s for s in steps if s.startswith("reading the change sets")]


def pasts(cache: Path) -> list[int]:
    with contextlib.closing(sqlite3.connect(cache / "devex" / "devex.sqlite3")) as db:
        return [cut for (cut,) in db.execute("SELECT cut FROM past ORDER BY cut")]


@pytest.mark.parametrize("seed", [1, 2])
def test_a_warm_collection_reads_only_the_records_its_windows_need(tmp_path: Path,
                                                                   seed: int) -> None:
    """At 240 days of history, a collection whose windows reach 90 days back reads the records
    of about the last three months (and each environment's last one before), not the history: its
    figures, and every evidence `devex explain` reads, are a whole history's."""
    root = tmp_path / "org"
    config = build_demo(root, end=END, days=240, seed=seed, services=SERVICES)
    kept, rng = tmp_path / "kept", random.Random(seed)
    now = END + timedelta(hours=1)
    cold, steps = horizon_snapshot(config, kept, now)
    (total,) = (int(n) for n in re.findall(r"\d+", steps[0]))
    assert steps == [f"reading the change sets of {total} deployments"]  # the whole history
    assert len(pasts(kept)) == 1  # and what it leaves for the next runs
    warm, steps = horizon_snapshot(config, kept, now)
    assert warm == cold
    read, of = (int(n) for n in re.findall(r"\d+", steps[0]))
    assert steps == [f"reading the change sets of {read} of {total} deployments "
                     "(those the windows need)"] and of == total and read < total * 0.7
    when = END + timedelta(hours=2)
    for rounds in range(2):  # new deployments, over windows of every standard length
        when = deploy_new(root, rng, when, count=3 + rounds * 4)
        now = when + timedelta(hours=1)
        days = rng.choice([7, 30, 90])
        warm, steps = horizon_snapshot(config, kept, now, days)
        assert steps[0].endswith("(those the windows need)")
        assert warm == horizon_snapshot(config, tmp_path / f"fresh{rounds}", now, days)[0]
    for n, (start, end) in enumerate(((now - timedelta(days=90), now),
                                      (now - timedelta(days=30), now - timedelta(days=10)))):
        settings = load_settings(config, environ={"XDG_CACHE_HOME": str(kept)})
        fresh = load_settings(config, environ={"XDG_CACHE_HOME": str(tmp_path / f"cold{n}")})
        options = CollectOptions(gitops=None, start=start, end=end, offline=True)
        ours, theirs = (collect_inputs(s, options, now=now) for s in (settings, fresh))
        assert ours.history.past is not None and theirs.history.past is None
        assert ours.snapshot == theirs.snapshot
        for service, environment in sorted(theirs.history.by_key):
            assert environment_evidence(ours.history, service, environment, start, end, now) \
                == environment_evidence(theirs.history, service, environment, start, end, now)


def test_a_history_changed_before_the_cut_is_read_whole(tmp_path: Path) -> None:
    """A deployment dated before the kept cut (a commit with an old date), or a history
    rewritten there, makes the next collection read the whole history: the figures stay a whole
    history's."""
    root = tmp_path / "org"
    config = build_demo(root, end=END, days=200, seed=3, services=SERVICES)
    kept = tmp_path / "kept"
    now = END + timedelta(hours=1)
    horizon_snapshot(config, kept, now)
    assert horizon_snapshot(config, kept, now)[1][0].endswith("(those the windows need)")
    gitops = GitRepo.__new__(GitRepo)
    gitops.path, gitops.clock = root / "gitops", END - timedelta(days=150)
    for key, value in (("user.name", "Dev"), ("user.email", "dev@acme.example")):
        gitops.git("config", key, value)
    app = root / "apps" / "pay"
    old = gitops.git("-C", str(app), "rev-list", "--first-parent", "main").split()[-5]
    gitops.commit("deploy pay to prod, dated long ago", {
        overlay("pay", "prod"): kustomization([image("pay", old[:7])])},
        when=END - timedelta(days=150))
    snap, steps = horizon_snapshot(config, kept, now)
    assert not steps[0].endswith("(those the windows need)")
    assert snap == horizon_snapshot(config, tmp_path / "fresh", now)[0]
    # and the next run goes on from the past this one kept
    assert horizon_snapshot(config, kept, now)[1][0].endswith("(those the windows need)")


_REFINED = {"refined: a list": "[1]", "refined: not a time": '{"abc": {"pay prod": "soon"}}',
            "refined: no offset": '{"abc": {"pay prod": "2026-01-01T00:00:00"}}',
            "refined: not JSON": "{", "refined: nested too deep": "[" * 100_000}
_DEEP = "[" * 100_000  # json recurses once a level


@pytest.mark.parametrize("damage", ["body", "arrivals", "unsettled", "body nested too deep",
                                    "unsettled nested too deep", *_REFINED])
def test_a_damaged_kept_past_is_read_whole(tmp_path: Path, damage: str) -> None:
    config = build_demo(tmp_path / "org", end=END, days=200, seed=4, services=SERVICES)
    kept = tmp_path / "kept"
    now = END + timedelta(hours=1)
    cold = horizon_snapshot(config, kept, now)[0]
    with contextlib.closing(sqlite3.connect(kept / "devex" / "devex.sqlite3")) as db, db:
        if damage == "body":
            db.execute("UPDATE past SET body = '{\"cut\": \"soon\"}'")
        elif damage == "unsettled":
            db.execute("UPDATE past SET unsettled = '[1, 2]'")
        elif damage == "body nested too deep":
            db.execute("UPDATE past SET body = ?", (_DEEP,))
        elif damage == "unsettled nested too deep":
            db.execute("UPDATE past SET unsettled = ?", (_DEEP,))
        elif damage in _REFINED:
            db.execute("UPDATE past SET refined = ?", (_REFINED[damage],))
        else:
            db.execute("UPDATE past_arrival SET arrivals = 'dev'")
    snap, steps = horizon_snapshot(config, kept, now)
    assert snap == cold
    # read whole (after reading the records after the cut, when the arrivals were damaged)
    assert re.fullmatch(r"reading the change sets of \d+ deployments", steps[-1])
    assert len(steps) == (2 if damage == "arrivals" else 1)


_OLD_READER_ROWS = """CREATE TABLE reader_deployment (
    name TEXT NOT NULL, position INTEGER NOT NULL, service TEXT, environment TEXT, version TEXT,
    revision TEXT, previous_version TEXT, previous_revision TEXT, gitops_commit TEXT,
    time INTEGER, manifest TEXT, PRIMARY KEY (name, position)) WITHOUT ROWID"""


def as_version_5(db: sqlite3.Connection) -> None:
    """A store of this version made as version 5 kept it: the reader's batches without their
    checksums and pairs, each state's deployments in one."""
    batches = db.execute("SELECT name, first, count, rows FROM reader_batch ORDER BY name, first"
                         ).fetchall()
    db.execute("ALTER TABLE reader_batch DROP COLUMN crc")
    db.execute("ALTER TABLE reader_batch DROP COLUMN pairs")
    db.execute("DELETE FROM reader_batch")
    joined: dict[str, list[Any]] = {}
    for name, _, _, rows in batches:
        joined.setdefault(name, []).extend(json.loads(rows))
    for name, rows in joined.items():
        db.execute("INSERT INTO reader_batch VALUES (?, 0, ?, ?)", (name, len(rows),
                                                                     json.dumps(rows)))
    db.execute("PRAGMA user_version = 5")


def as_version_4(db: sqlite3.Connection) -> None:
    """A store of this version made as version 4 kept it: no positions with a past."""
    as_version_5(db)
    db.execute("DROP TABLE past_position")
    db.execute("ALTER TABLE past DROP COLUMN prefix")
    db.execute("PRAGMA user_version = 4")


def as_version_3(db: sqlite3.Connection) -> None:
    """A store of this version made as version 3 kept it: the reader's deployments a row each,
    no Argo CD times with a past."""
    as_version_4(db)
    db.execute(_OLD_READER_ROWS)
    for name, first, batch in db.execute("SELECT name, first, rows FROM reader_batch").fetchall():
        db.executemany("INSERT INTO reader_deployment VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       [(name, first + n, *row) for n, row in enumerate(json.loads(batch))])
    db.execute("DROP TABLE reader_batch")
    db.execute("ALTER TABLE past DROP COLUMN refined")
    db.execute("PRAGMA user_version = 3")


@pytest.mark.parametrize("version", [2, 3, 4, 5])
def test_a_store_of_an_earlier_version_keeps_its_rows(tmp_path: Path, version: int) -> None:
    """Upgrading devex keeps what was computed before: the records (the first collection after
    it computes no change set again) and the GitOps reader's states (version 3 kept their
    deployments a row each: they become one batch, and the history is not read again). (A past
    of version 4: tests/test_horizon.py.)"""
    config = build_demo(tmp_path / "org", end=END, days=60, seed=5, services=SERVICES)
    kept = tmp_path / "kept"
    now = END + timedelta(hours=1)
    cold = snapshot(config, kept, now)
    rows = records(kept)
    path = kept / "devex" / "devex.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        states = db.execute("SELECT name, generation FROM reader_state").fetchall()
        assert states
        {5: as_version_5, 4: as_version_4}.get(version, as_version_3)(db)
        if version == 2:
            db.execute("DROP TABLE past")
            db.execute("DROP TABLE past_arrival")
            db.execute("PRAGMA user_version = 2")
    settings = load_settings(config, environ={"XDG_CACHE_HOME": str(kept)})
    inputs = collect_inputs(settings, CollectOptions(gitops=None, start=now - timedelta(days=90),
                                                     end=now, offline=True), now=now)
    assert inputs.snapshot == cold and records(kept) == rows
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        # the same states (a state read again would be of a new generation)
        assert db.execute("SELECT name, generation FROM reader_state").fetchall() == states
        assert "reader_deployment" not in {name for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_argo_cd_times_before_the_cut_are_part_of_the_kept_past(tmp_path: Path) -> None:
    """Argo CD's `deployedAt` is a record's time: the kept past is taken with it, and a new
    history entry for a deployment before the cut (a first sync seen late, or an old GitOps
    commit synced again) makes the next collection read the whole history."""
    from tests.fakes.argocd import FakeApplication, FakeArgoCD

    root = tmp_path / "org"
    config = build_demo(root, end=END, days=200, seed=6, services=SERVICES)
    log = GitRepo.__new__(GitRepo)
    log.path = root / "gitops"
    prod = [line.split() for line in log.git(
        "log", "--first-parent", "--reverse", "--format=%H %ct", "main", "--",
        overlay("pay", "prod")).splitlines()]
    server = FakeArgoCD().start()
    try:
        head = log.git("rev-parse", "main").strip()
        app = server.add(FakeApplication(
            "pay-prod", "apps/pay/overlays/prod", sync_revision=head, history_limit=100,
            history=[(sha, datetime.fromtimestamp(int(t) + 600, UTC)) for sha, t in prod[:5]]))
        now = END + timedelta(hours=1)

        def run(cache: Path) -> tuple[Snapshot, list[str]]:
            settings = load_settings(config, environ={"XDG_CACHE_HOME": str(cache),
                                                      **server.env()})
            steps: list[str] = []
            snap = collect(settings, CollectOptions(gitops=None, start=now - timedelta(days=30),
                                                    end=now, offline=False),
                           now=now, step=steps.append)
            order.append([s.split()[0] for s in steps if s.startswith(("reading the change",
                                                                        "asking Argo CD"))])
            return snap, [s for s in steps if s.startswith("reading the change sets")]

        kept = tmp_path / "kept"
        order: list[list[str]] = []
        cold = run(kept)[0]
        warm, steps = run(kept)
        assert warm == cold and steps[0].endswith("(those the windows need)")
        # Argo CD's answer is waited for after the records, a kept past's plan checked then
        assert order == [["reading", "asking"], ["reading", "asking"]]
        for n, (sha, seconds) in enumerate((prod[8], prod[9])):
            # a first sync of an old commit, seen late; then one a week before now
            late = (datetime.fromtimestamp(int(seconds) + 900, UTC) if n == 0
                    else now - timedelta(days=7))
            app.history.append((sha, late))
            snap, steps = run(kept)
            # planned with the times the past was taken with; read whole once Argo CD answers
            assert order[-1] == ["reading", "asking", "reading"]
            assert steps[0].endswith("(those the windows need)")
            assert "those the windows need" not in steps[1]
            assert snap == run(tmp_path / f"fresh{n}")[0]
            assert run(kept)[1][0].endswith("(those the windows need)")
        assert any(d.time == now - timedelta(days=7) and d.environment == "prod"
                   for d in snap.deployments)
    finally:
        server.stop()


@pytest.mark.parametrize("seed", [21, 22])
def test_argo_cd_times_changing_at_random_keep_warm_figures_cold(tmp_path: Path,
                                                                 seed: int) -> None:
    """Argo CD's history changes between collections at random: a first sync seen late, one
    moving a deployment across the kept past's cut either way, an old GitOps commit synced
    again, Argo CD refusing a run. Each warm collection (planned with the Argo CD times the past
    was taken with) has a cold one's figures, and the steps show both kinds of run happen."""
    from tests.fakes.argocd import FakeApplication, FakeArgoCD

    rng = random.Random(seed)
    root = tmp_path / "org"
    config = build_demo(root, end=END, days=200, seed=seed, services=SERVICES)
    log = GitRepo.__new__(GitRepo)
    log.path = root / "gitops"
    head = log.git("rev-parse", "main").strip()
    now = END + timedelta(hours=1)
    cut = now - LONGEST_WINDOW - SLACK  # where the cold run keeps the past's cut
    server = FakeArgoCD().start()
    try:
        apps, commits = {}, {}
        for service in SERVICES:
            for environment in ("dev", "prod"):
                key = (service.name, environment)
                apps[key] = server.add(FakeApplication(
                    f"{service.name}-{environment}",
                    f"apps/{service.name}/overlays/{environment}", sync_revision=head,
                    history_limit=1000))
                commits[key] = [(sha, datetime.fromtimestamp(int(t), UTC)) for sha, t in (
                    line.split() for line in log.git(
                        "log", "--first-parent", "--format=%H %ct", "main", "--",
                        overlay(service.name, environment)).splitlines())]

        def run(cache: Path, refused: bool) -> tuple[Snapshot, list[str]]:
            env = {**server.env(), **({"ARGOCD_AUTH_TOKEN": "wrong"} if refused else {})}
            settings = load_settings(config, environ={"XDG_CACHE_HOME": str(cache), **env})
            steps: list[str] = []
            snap = collect(settings, CollectOptions(gitops=None, start=now - timedelta(days=30),
                                                    end=now, offline=False),
                           now=now, step=steps.append)
            return snap, [s for s in steps if s.startswith("reading the change sets")]

        kept = tmp_path / "kept"
        run(kept, False)
        kinds = set()
        for step in range(6):
            action = rng.choice(["late", "across", "again", "refused", "none"])
            key = rng.choice(sorted(apps))
            sha, at = rng.choice(commits[key])
            if action == "late":
                apps[key].history.append((sha, at + timedelta(minutes=rng.randint(1, 4000))))
            elif action == "across":
                sha, at = min(commits[key], key=lambda c: abs(c[1] - cut))
                apps[key].history.append((sha, cut + (cut - at) + timedelta(minutes=5)))
            elif action == "again":
                apps[key].history.append((sha, now - timedelta(days=rng.randint(1, 150))))
            warm, steps = run(kept, action == "refused")
            kinds.add(steps[-1].endswith("(those the windows need)"))
            assert warm == run(tmp_path / f"fresh{step}", action == "refused")[0], (step, action)
        assert kinds == {True, False}, kinds
    finally:
        server.stop()


def test_records_an_app_source_could_not_give_are_made_again(tmp_path: Path) -> None:
    """A run whose app repository was missing computes change sets it cannot know; the past it
    keeps names those records, and each later run makes them again: the same while the
    repository is missing (the past is used), others once it is back (the whole history is
    read): the figures are a cold collection's."""
    root = tmp_path / "org"
    config = build_demo(root, end=END, days=200, seed=7, services=SERVICES)
    kept = tmp_path / "kept"
    now = END + timedelta(hours=1)
    app, away = root / "apps" / "pay", root / "apps" / "pay-away"
    app.rename(away)
    missing = horizon_snapshot(config, kept, now)[0]
    assert len(pasts(kept)) == 1
    snap, steps = horizon_snapshot(config, kept, now)
    assert steps[0].endswith("(those the windows need)") and snap == missing
    away.rename(app)
    snap, steps = horizon_snapshot(config, kept, now)
    assert "those the windows need" not in steps[-1]
    assert snap == horizon_snapshot(config, tmp_path / "fresh", now)[0]
    assert snap.data_quality.deployments_without_change_set < 10
    assert missing.data_quality.deployments_without_change_set > 50


@pytest.mark.parametrize("when", ["PRAGMA user_version", "BEGIN IMMEDIATE"])
def test_a_store_upgraded_by_another_process_meanwhile_is_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        when: str) -> None:
    """Two processes open a store of version 3 at once (collectors of several service sets
    started together after an upgrade): both see version 3, one upgrades it while the other
    looks again or waits for the lock. The other then finds it upgraded: it reads it, and
    neither replaces it as damaged nor reads it as empty."""
    from devex_cli import store as module

    reader = module.ReaderStateStore(tmp_path)
    rows = [("web", "prod", "v1", None, None, None, "c1", 1_700_000_000, "m")]
    reader.save("s", "{}", lambda first: rows[first:], 0, None)
    path = tmp_path / module.FILE_NAME
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        as_version_3(db)

    connect = sqlite3.connect

    def upgrade_meanwhile(statement: str) -> None:
        seen.append(statement)
        # the other process, first: once this one saw version 3, before it looks again
        if statement == when and seen.count(when) == (2 if when.startswith("PRAGMA") else 1):
            upgraded.append(True)
            with contextlib.closing(connect(path, isolation_level=None)) as other:
                assert module._upgraded(other)

    def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        db = connect(*args, **kwargs)
        db.set_trace_callback(upgrade_meanwhile)
        return db

    upgraded: list[bool] = []
    seen: list[str] = []
    monkeypatch.setattr(sqlite3, "connect", traced)
    with caplog.at_level("INFO", logger="devex.store"):
        found = reader.load("s")
    assert upgraded
    assert found is not None and list(found[1]) == [list(row) for row in rows]
    assert not [r for r in caplog.records if r.levelname == "WARNING"], caplog.text
    assert "another version" not in caplog.text
