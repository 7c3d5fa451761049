"""The store across histories: a warm collection after new deployments gives the figures a cold
collection of the same state gives, and writes only its new rows."""

from __future__ import annotations

import contextlib
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devex_cli.collect import CollectOptions, collect, collect_inputs
from devex_cli.config import load_settings
from devex_cli.demo import DemoService, build_demo
from devex_cli.dora.compute import environment_evidence
from devex_cli.dora.model import Snapshot
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
