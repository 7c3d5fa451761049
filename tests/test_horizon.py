"""A warm collection that goes on from a kept past (horizon.py) against a cold one, in
histories of the shapes that reach back across the cut."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devex_cli.collect import Collected, CollectOptions, collect_inputs
from devex_cli.config import load_settings
from tests.gitworld import GitRepo, image, kustomization, overlay

END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def inputs(config: Path, cache: Path, now: datetime, days: int = 30) -> Collected:
    settings = load_settings(config, environ={"XDG_CACHE_HOME": str(cache)})
    return collect_inputs(settings, CollectOptions(gitops=None, start=now - timedelta(days=days),
                                                   end=now, offline=True), now=now)


def one_service(root: Path, start: datetime) -> tuple[GitRepo, GitRepo, Path]:
    """An app repository and a GitOps repository of one service, `pay`, in dev, qa and prod."""
    app, gitops = GitRepo(root / "apps" / "pay", start=start), GitRepo(root / "gitops",
                                                                        start=start)
    config = root / "devex.toml"
    config.write_text('[gitops]\nrepo = "gitops"\nenvironments = ["dev", "qa", "prod"]\n'
                      'production = "prod"\n\n[jira]\nprojects = ["PAY"]\n\n'
                      '[services.pay]\nrepo = "apps/pay"\n')
    return app, gitops, config


def deploy(gitops: GitRepo, environment: str, tag: str, when: datetime) -> None:
    gitops.commit(f"deploy pay {tag} to {environment}",
                  {overlay("pay", environment): kustomization([image("pay", tag)])}, when=when)


def test_a_revision_running_now_that_only_an_old_deployment_names(tmp_path: Path) -> None:
    """dev runs X re-tagged from its short SHA to the full one (a redeployment) before the cut;
    only an older qa deployment has the full SHA as its tag. The commits dev has and prod has
    not (`git rev-list PROD..DEV`) are asked of the app repository as in a cold collection: the
    horizon reads a deployment of each revision a current state runs."""
    start = END - timedelta(days=200)
    app, gitops, config = one_service(tmp_path / "org", start)
    w = app.commit("PAY-1 first", {"1": "1"}, when=start + HOUR)
    deploy(gitops, "prod", w[:7], start + 2 * HOUR)
    second = app.commit("PAY-2 second", {"2": "2"}, when=start + 3 * HOUR)
    x = app.commit("PAY-3 third", {"3": "3"}, when=start + 4 * HOUR)
    deploy(gitops, "dev", x[:7], start + 5 * HOUR)
    deploy(gitops, "qa", x, start + 6 * HOUR)  # the full SHA as the tag
    y = app.commit("PAY-4 fourth", {"4": "4"}, when=start + 7 * HOUR)
    deploy(gitops, "qa", y[:7], start + 8 * HOUR)
    deploy(gitops, "dev", x, start + 9 * HOUR)  # a redeployment: X's full SHA
    for n in range(3):  # work after the cut
        z = app.commit(f"PAY-{10 + n} later", {f"z{n}": "z"}, when=END - timedelta(days=20 - n))
        deploy(gitops, "qa", z[:7], END - timedelta(days=20 - n) + HOUR)
    kept = tmp_path / "kept"
    inputs(config, kept, END)
    warm, cold = inputs(config, kept, END), inputs(config, tmp_path / "fresh", END)
    assert warm.history.past is not None and cold.history.past is None
    assert [c.sha for c in cold.pending[("pay", "dev")]] == [second, x]
    assert warm.pending == cold.pending
    assert warm.snapshot == cold.snapshot
    assert {("PAY-2", "dev"), ("PAY-3", "dev")} <= {
        (t.ticket, t.environment) for t in warm.snapshot.tickets_in_environment}


def unsettled(cache: Path) -> list[dict[str, Any]]:
    import contextlib
    import json
    import sqlite3

    with contextlib.closing(sqlite3.connect(cache / "devex" / "devex.sqlite3")) as db:
        return [json.loads(text) for (text,) in db.execute("SELECT unsettled FROM past")]


def test_records_without_the_bitbucket_token_are_made_again(tmp_path: Path) -> None:
    """Services whose app source is Bitbucket (a workspace configured), collected once without
    BITBUCKET_API_TOKEN: their change sets are unknown that run, not settled. The past kept
    then names their records, which every later run makes again (the run with the token finds
    them changed and reads the whole history, its lead times and tickets not short of the
    commits before the cut); with no Bitbucket at all they are settled."""
    from devex_cli.demo import DemoService, build_demo

    config = build_demo(tmp_path / "org", end=END, days=200, seed=8,
                        services=(DemoService("pay", "PAY", 2.0, prod_every_weeks=1),))
    text = config.read_text()
    config.write_text(text.replace('[services.pay]\nrepo = "apps/pay"\n', "")
                      + '\n[bitbucket]\nworkspace = "acme"\n')
    kept = tmp_path / "kept"
    assert inputs(config, kept, END).history.past is None
    (forms,) = unsettled(kept)
    assert len(forms) > 20 and all(form[1] is None for form in forms.values())
    assert inputs(config, kept, END).history.past is not None  # made again: the same
    # as with no Bitbucket at all: nothing to wait for
    config.write_text(text.replace('[services.pay]\nrepo = "apps/pay"\n', ""))
    inputs(config, kept, END)
    assert {len(forms) for forms in unsettled(kept)} == {0, len(forms)}


def test_a_past_replaced_while_a_collection_reads_it(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Another collection (a longer window) keeps new pasts while this one computes its records,
    and the oldest one it was going on from goes (`PastStore.KEPT`): the arrivals this one then
    asks for are not those of its past; it reads the whole history, as a cold collection."""
    from devex_cli.horizon import Horizon
    from devex_cli.store import PastStore

    start = END - timedelta(days=200)
    app, gitops, config = one_service(tmp_path / "org", start)
    x = app.commit("PAY-1 first", {"1": "1"}, when=start + HOUR)
    for environment in ("dev", "qa", "prod"):
        deploy(gitops, environment, x[:7], start + 2 * HOUR)
    y = app.commit("PAY-2 second", {"2": "2"}, when=start + 3 * HOUR)
    deploy(gitops, "dev", y[:7], start + 4 * HOUR)  # before the cut; to prod after it
    deploy(gitops, "qa", y[:7], END - timedelta(days=10))
    deploy(gitops, "prod", y[:7], END - timedelta(days=5))
    kept, now = tmp_path / "kept", END
    inputs(config, kept, now)
    completed = Horizon.completed

    def meanwhile(self: Horizon, records: list[Any]) -> Any:
        assert self.past is not None
        for n in range(1, PastStore.KEPT + 1):  # later cuts: the one in use goes
            self.store.save(int(self.past.cut.timestamp()) + n, "other", "{}", [], "{}", "{}")
        return completed(self, records)

    monkeypatch.setattr(Horizon, "completed", meanwhile)
    warm = inputs(config, kept, now)
    monkeypatch.undo()
    cold = inputs(config, tmp_path / "fresh", now)
    assert warm.snapshot == cold.snapshot
    assert warm.history.past is None


def test_a_revision_not_found_before_the_cut_keeps_the_horizon(tmp_path: Path) -> None:
    """A tag naming a commit the app repository does not have (a deleted branch, a typo) leaves
    its record and the next one unsettled: they are made again each run (and still not
    found), the rest is the kept past's; the figures and what data quality says of the
    revision are a cold collection's."""
    start = END - timedelta(days=200)
    app, gitops, config = one_service(tmp_path / "org", start)
    w = app.commit("PAY-1 first", {"1": "1"}, when=start + HOUR)
    for environment in ("dev", "qa", "prod"):
        deploy(gitops, environment, w[:7], start + 2 * HOUR)
    deploy(gitops, "dev", "deadbee", start + 3 * HOUR)  # not in the app repository
    x = app.commit("PAY-2 second", {"2": "2"}, when=start + 4 * HOUR)
    deploy(gitops, "dev", x[:7], start + 5 * HOUR)
    for n in range(3):  # work after the cut
        z = app.commit(f"PAY-{10 + n} later", {f"z{n}": "z"}, when=END - timedelta(days=20 - n))
        for environment in ("dev", "qa", "prod"):
            deploy(gitops, environment, z[:7], END - timedelta(days=20 - n) + HOUR)
    kept = tmp_path / "kept"
    inputs(config, kept, END)
    assert len(unsettled(kept)[0]) == 2
    warm, cold = inputs(config, kept, END), inputs(config, tmp_path / "fresh", END)
    assert warm.history.past is not None and cold.history.past is None
    assert warm.snapshot == cold.snapshot
    assert ("pay", "deadbee") in cold.snapshot.data_quality.revisions_not_found


def test_a_release_read_again_otherwise_before_the_cut_is_another_past(tmp_path: Path) -> None:
    """The kept past is of the deployments' releases too: the same GitOps commits read with
    another release (a digits-only tag judged a version, then a commit) do not match it."""
    from dataclasses import replace

    from devex_cli.gitops_reader import Release
    from devex_cli.horizon import Horizon
    from devex_cli.sources import gitops as source

    start = END - timedelta(days=200)
    app, repo, config = one_service(tmp_path / "org", start)
    for n in range(4):
        x = app.commit(f"PAY-{n} work", {f"{n}": "1"}, when=start + n * HOUR)
        deploy(repo, "dev", x[:7], start + n * HOUR + HOUR / 2)
    settings = load_settings(config, environ={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    history = source.read_history(repo.path, settings)
    first = history.deployments[0]
    other = replace(history, deployments=(
        replace(first, release=Release("1234567", None)), *history.deployments[1:]))
    digests = {Horizon(None, h, lambda: [], END)._validity(  # type: ignore[arg-type]
        END, [d.time for d in h.deployments]) for h in (history, other)}
    assert len(digests) == 2


def _worked(root: Path) -> tuple[GitRepo, GitRepo, Path]:
    """One service deployed to dev, qa and prod every few days for 200 days; prod's last
    deployment (what it runs now) 150 days ago, before the cut."""
    start = END - timedelta(days=200)
    app, gitops, config = one_service(root, start)
    for n in range(60):
        at = start + timedelta(days=3 * n)
        sha = app.commit(f"PAY-{n} work", {f"{n}": "1"}, when=at)
        for hours, environment in enumerate(("dev", "qa", "prod")[: 1 + n % 3]):
            if environment != "prod" or at < END - timedelta(days=150):
                deploy(gitops, environment, sha[:7], at + (hours + 1) * HOUR)
    return app, gitops, config


def past_rows(cache: Path) -> list[tuple[Any, ...]]:
    import contextlib
    import sqlite3

    with contextlib.closing(sqlite3.connect(cache / "devex" / "devex.sqlite3")) as db:
        return db.execute("SELECT cut, prefix != '' FROM past").fetchall() + db.execute(
            "SELECT count(*) FROM past_position").fetchall()


def test_a_warm_collection_plans_from_where_the_kept_deployments_are(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A past is kept with where the deployments before its cut are: a later collection (new
    deployments after the cut read since) plans from them and the new ones, not from the whole
    history, and builds no other deployment before the cut than the few its figures read (each
    key's last, what runs now); its figures are a cold collection's (conftest compares each
    such plan with the whole history's)."""
    from devex_cli.gitops_reader import Deployments
    from tests.conftest import PLANS_GONE_ON, WHOLE_PLAN

    app, gitops, config = _worked(tmp_path / "org")
    kept = tmp_path / "kept"
    cold = inputs(config, kept, END)
    ((_, prefixed), (positions,)) = past_rows(kept)
    assert prefixed and positions > 40
    gone_on = len(PLANS_GONE_ON)
    built: list[Any] = []
    build = Deployments._build

    def counted(self: Deployments, row: Any) -> Any:
        made = build(self, row)
        if not WHOLE_PLAN:  # (the suite's check of the plan builds them all)
            built.append(made)
        return made

    monkeypatch.setattr(Deployments, "_build", counted)
    warm = inputs(config, kept, END)
    assert warm.history.past is not None and len(PLANS_GONE_ON) == gone_on + 1
    assert warm.snapshot == cold.snapshot
    assert 0 < len([d for d in built if d.time < warm.history.past.cut]) <= 6
    sha = app.commit("PAY-99 later", {"99": "1"}, when=END - 2 * HOUR)
    deploy(gitops, "dev", sha[:7], END - HOUR)
    warm = inputs(config, kept, END)
    assert warm.history.past is not None and len(PLANS_GONE_ON) == gone_on + 2
    assert warm.snapshot == inputs(config, tmp_path / "fresh", END).snapshot


def test_the_cut_follows_the_earliest_window(tmp_path: Path) -> None:
    """A past is kept a day before the earliest window (the longest standard one, 90 days), so
    a warm collection reads about the records its windows need; later collections go on from it
    while its cut is within `STALE` of their earliest window, then one reads the whole history
    and keeps a cut a day before its own. Each one's figures are a cold collection's."""
    from devex_cli.horizon import SLACK, STALE

    _, _, config = _worked(tmp_path / "org")
    kept = tmp_path / "kept"
    inputs(config, kept, END)
    ((cut, _), _) = past_rows(kept)
    need = END - timedelta(days=90)
    assert cut == int((need - SLACK).timestamp())
    assert timedelta(days=1) >= SLACK
    later = END + STALE - SLACK - timedelta(hours=1)  # the same cut still serves
    warm = inputs(config, kept, later)
    assert warm.history.past is not None and warm.history.past.cut.timestamp() == cut
    assert warm.snapshot == inputs(config, tmp_path / "fresh", later).snapshot
    stale = END + STALE  # its cut now further back than STALE: read whole, cut again
    whole = inputs(config, kept, stale)
    assert whole.history.past is None
    assert whole.snapshot == inputs(config, tmp_path / "fresh2", stale).snapshot
    cuts = sorted(row[0] for row in past_rows(kept)[:-1])
    assert cuts[-1] == int((stale - timedelta(days=90) - SLACK).timestamp())
    assert inputs(config, kept, stale).history.past is not None


def test_a_deployment_read_since_dated_before_the_cut_plans_from_the_whole_history(
        tmp_path: Path) -> None:
    """A GitOps commit read since the past was kept but dated before its cut (a rebase kept
    its old date) is a deployment before the cut the past was not taken with: the plan is the
    whole history's, which finds the past is not of this history, and reads it whole."""
    from tests.conftest import PLANS_GONE_ON

    app, gitops, config = _worked(tmp_path / "org")
    kept = tmp_path / "kept"
    inputs(config, kept, END)
    sha = app.commit("PAY-98 old", {"98": "1"}, when=END - timedelta(days=150))
    deploy(gitops, "dev", sha[:7], END - timedelta(days=150) + HOUR)
    gone_on = len(PLANS_GONE_ON)
    warm = inputs(config, kept, END)
    assert warm.history.past is None and len(PLANS_GONE_ON) == gone_on
    assert warm.snapshot == inputs(config, tmp_path / "fresh", END).snapshot


_TEXT_DAMAGE = {  # what the past's prefix says, changed with its digest made again
    "count": lambda data: {**data, "count": 1},
    "rows": lambda data: {**data, "rows": data["rows"] + 1},
}


@pytest.mark.parametrize("damage", [
    "UPDATE past_position SET position = position + 1",
    "UPDATE past_position SET position = -1",
    "UPDATE past_position SET position = 'x'",
    "DELETE FROM past_position WHERE position % 2 = 0",
    "UPDATE past SET prefix = '{\"count\": 3}'",
    "UPDATE past SET prefix = substr(prefix, 1, 40) || replace(substr(prefix, 41), '1', '2')",
    *_TEXT_DAMAGE,
])
def test_where_the_kept_deployments_are_damaged(tmp_path: Path, damage: str) -> None:
    """A store whose positions (or what the past was taken from) are not as written: the
    collection plans from the whole history, and its figures are a cold collection's."""
    import contextlib
    import sqlite3

    from tests.conftest import PLANS_GONE_ON

    _, _, config = _worked(tmp_path / "org")
    kept = tmp_path / "kept"
    inputs(config, kept, END)
    with contextlib.closing(sqlite3.connect(kept / "devex" / "devex.sqlite3")) as db, db:
        if damage in _TEXT_DAMAGE:
            import hashlib
            import json

            (text,) = db.execute("SELECT prefix FROM past").fetchone()
            body = json.dumps(_TEXT_DAMAGE[damage](json.loads(text.partition(" ")[2])))
            db.execute("UPDATE past SET prefix = ?",
                       (f"{hashlib.sha256(body.encode()).hexdigest()[:32]} {body}",))
        else:
            db.execute(damage)
    gone_on = len(PLANS_GONE_ON)
    warm = inputs(config, kept, END)
    assert len(PLANS_GONE_ON) == gone_on
    assert warm.snapshot == inputs(config, tmp_path / "fresh", END).snapshot


def test_a_past_of_an_earlier_devex_is_kept_again_with_its_positions(tmp_path: Path) -> None:
    """A store upgraded from version 4 has pasts that do not say where their deployments are:
    the first collection after the upgrade reads the whole history once (its records are all
    kept: nothing is asked again) and keeps one that does; the next goes on from it."""
    import contextlib
    import sqlite3

    from tests.conftest import PLANS_GONE_ON
    from tests.test_store import as_version_4

    _, _, config = _worked(tmp_path / "org")
    kept = tmp_path / "kept"
    cold = inputs(config, kept, END)
    with contextlib.closing(sqlite3.connect(kept / "devex" / "devex.sqlite3")) as db, db:
        as_version_4(db)
    gone_on = len(PLANS_GONE_ON)
    first = inputs(config, kept, END)
    assert len(PLANS_GONE_ON) == gone_on and first.snapshot == cold.snapshot
    ((_, prefixed), (positions,)) = past_rows(kept)
    assert prefixed and positions > 40
    assert inputs(config, kept, END).snapshot == cold.snapshot
    assert len(PLANS_GONE_ON) == gone_on + 1


def test_a_past_kept_again_while_a_collection_plans_from_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another collection keeps the same cut again (another reader state) between this one's
    reading of the past and of its positions: the positions are not taken (they may be the
    other state's), the plan is the whole history's, the figures a cold collection's."""
    import contextlib
    import sqlite3

    from devex_cli.store import PastStore
    from tests.conftest import PLANS_GONE_ON

    _, _, config = _worked(tmp_path / "org")
    kept = tmp_path / "kept"
    cold = inputs(config, kept, END)
    latest = PastStore.latest

    def meanwhile(self: PastStore, need: int) -> Any:
        found = latest(self, need)
        with contextlib.closing(sqlite3.connect(kept / "devex" / "devex.sqlite3")) as db, db:
            db.execute("UPDATE past SET prefix = replace(prefix, ?, ?)",
                       ('"reading":"', '"reading":"x'))
        return found

    monkeypatch.setattr(PastStore, "latest", meanwhile)
    gone_on = len(PLANS_GONE_ON)
    assert inputs(config, kept, END).snapshot == cold.snapshot
    assert len(PLANS_GONE_ON) == gone_on
