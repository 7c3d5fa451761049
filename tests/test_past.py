"""The figures from the records after a cut and what those before it left (`past_of`) are the
whole history's, for any window starting at the cut or later; and a past read back from its
stored form is the same past."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from devex_cli.dora import past as stored
from devex_cli.dora.compute import (
    STANDARD_WINDOWS,
    build_snapshot,
    environment_evidence,
    failure_signals,
    history_of,
    past_of,
    promotion_evidence,
    ticket_evidence,
)
from devex_cli.dora.model import Change, DeploymentRecord, Incident, RedeploymentRecord

ENVIRONMENTS = ("dev", "qa", "preprod", "prod")
START = datetime(2025, 1, 1, tzinfo=UTC)
DAYS = 400


def world(seed: int) -> tuple[list[DeploymentRecord], list[Incident], list[RedeploymentRecord]]:
    """A random history: services whose commits move through the environments, with rollbacks
    (by the GitOps history or by ancestry), versions without a revision, unknown change sets,
    merges, commits that never reach production, failed syncs, incidents and rebuilds."""
    rng = random.Random(seed)
    records: list[DeploymentRecord] = []
    incidents, rebuilds = [], []
    for s in range(3):
        service = f"svc{s}"
        commits: list[Change] = []
        at = START
        deployed: dict[str, int] = {}  # environment -> index of its revision in commits
        while at < START + timedelta(days=DAYS):
            at += timedelta(hours=rng.uniform(1, 60))
            if rng.random() < 0.5 or not commits:
                commits.append(Change(f"{service}{len(commits):05d}".ljust(40, "a"),
                                      at - timedelta(hours=rng.uniform(0, 50)),
                                      tuple(f"P{s}-{rng.randrange(60)}"
                                            for _ in range(rng.randrange(3))),
                                      merge=rng.random() < 0.1))
            environment = rng.choice(ENVIRONMENTS)
            stage = ENVIRONMENTS.index(environment)
            earlier = deployed.get(ENVIRONMENTS[stage - 1]) if stage else None
            roll = rng.random()
            if roll < 0.1 and environment in deployed:  # back to an older revision
                target = rng.randrange(0, deployed[environment] + 1)
            elif earlier is not None and roll < 0.8:  # a promotion
                target = earlier
            else:  # the newest commit (a hotfix when it skips stages)
                target = len(commits) - 1
            old = deployed.get(environment)
            deployed[environment] = target
            change_set: tuple[Change, ...] | None = None
            if old is not None and rng.random() < 0.95:
                change_set = tuple(commits[old + 1: target + 1])
            revision = commits[target].sha if rng.random() < 0.95 else None
            records.append(DeploymentRecord(
                service, environment, revision, f"1.{target}", at, f"g{len(records):06d}",
                change_set=change_set if revision else None,
                ancestry_rollback=(target < old if old is not None and rng.random() < 0.5
                                   else None),
                failed_sync=rng.random() < 0.03))
            if rng.random() < 0.05:
                incidents.append(Incident(f"INC-{len(incidents)}", service,
                                          at + timedelta(hours=rng.uniform(0, 30))))
            if rng.random() < 0.05:
                rebuilds.append(RedeploymentRecord(service, environment,
                                                   at + timedelta(hours=1)))
    rng.shuffle(records)  # the figures sort them; ties keep the order they came in
    return records, incidents, rebuilds


def figures(records: list[DeploymentRecord], incidents: list[Incident],
            rebuilds: list[RedeploymentRecord], start: datetime, end: datetime,
            now: datetime, history: object = None) -> list[object]:
    """A snapshot and every evidence `devex explain` reads."""
    if history is None:
        history = history_of(records, environments=ENVIRONMENTS, production="prod",
                             incidents=incidents, redeployments=rebuilds)
    snapshot = build_snapshot(records, environments=ENVIRONMENTS, production="prod", now=now,
                              start=start, end=end, incidents=incidents,
                              redeployments=rebuilds, history=history)  # type: ignore[arg-type]
    seen: list[object] = [snapshot]
    keys = sorted(history.by_key)  # type: ignore[attr-defined]
    for service, environment in keys:
        seen.append(environment_evidence(history, service, environment,  # type: ignore[arg-type]
                                         start, end, now))
        if environment != "prod":
            seen.append(ticket_evidence(history, service, environment,  # type: ignore[arg-type]
                                        "prod", {}))
    for service in sorted({s for s, _ in keys}):
        seen.append(promotion_evidence(history, service, ENVIRONMENTS,  # type: ignore[arg-type]
                                       "prod", start, end))
    return seen


@pytest.mark.parametrize("seed", range(6))
def test_figures_after_a_cut_are_the_whole_historys(seed: int) -> None:
    records, incidents, rebuilds = world(seed)
    whole = history_of(records, environments=ENVIRONMENTS, production="prod",
                       incidents=incidents, redeployments=rebuilds)
    rng = random.Random(seed)
    end_of_history = START + timedelta(days=DAYS)
    longest = max(STANDARD_WINDOWS.values())
    for _ in range(4):
        now = end_of_history + timedelta(days=rng.choice([0, 3, 40]))
        cut = now - longest - timedelta(days=rng.uniform(0, 200))
        start = cut + timedelta(days=rng.choice([0, 1, 30]))
        end = rng.choice([now, start + timedelta(days=10)])
        past = past_of(whole, cut)
        # the past as the store gives it back: every arrival (as past_of), or only those of
        # the commits the records after the cut name (as a collection asks for them)
        after = [r for r in records if r.time >= cut]
        named = {c.sha for r in after for c in r.change_set or ()}
        rows = [row for row in stored.arrival_rows(past) if row[0] in named]
        kept = stored.completed(stored.from_body(stored.body(past)), past.before, rows)
        assert replace(kept, arrivals=past.arrivals) == past
        for given in (past, kept):
            history = history_of(after, environments=ENVIRONMENTS, production="prod",
                                 incidents=incidents, redeployments=rebuilds, past=given)
            assert figures(after, incidents, rebuilds, start, end, now, history) == figures(
                records, incidents, rebuilds, start, end, now), (seed, cut, start, end, now)
            assert failure_signals([*after, *past.before.values()], past=given) == \
                failure_signals(records)
        assert len(after) < len(records)  # the cut left records out


def test_a_window_before_the_cut_is_refused() -> None:
    records, _, _ = world(1)
    whole = history_of(records, environments=ENVIRONMENTS, production="prod")
    now = START + timedelta(days=DAYS)
    past = past_of(whole, now - timedelta(days=100))
    after = [r for r in records if r.time >= past.cut]
    history = history_of(after, environments=ENVIRONMENTS, production="prod", past=past)
    with pytest.raises(ValueError, match="before the cut"):
        build_snapshot(after, environments=ENVIRONMENTS, production="prod", now=now,
                       start=now - timedelta(days=101), end=now, history=history)
    with pytest.raises(ValueError, match="before the cut"):
        history_of(records, environments=ENVIRONMENTS, production="prod", past=past)


@pytest.mark.parametrize("damage", [
    lambda body: body.replace('"cut":', '"cut":"x","old":'),
    lambda body: body.replace('"ranks":{', '"ranks":{"a\\nb":{},'),
    lambda body: body[:-5],
    lambda body: body.replace('"judged":{', '"judged":{"x":3,'),
])
def test_a_damaged_stored_past_is_refused(damage: object) -> None:
    records, _, _ = world(2)
    whole = history_of(records, environments=ENVIRONMENTS, production="prod")
    past = past_of(whole, START + timedelta(days=200))
    with pytest.raises(ValueError):
        stored.from_body(damage(stored.body(past)))  # type: ignore[operator]
    kept = stored.from_body(stored.body(past))
    with pytest.raises(ValueError):
        stored.completed(kept, past.before, [("a", "svc0", "dev")])
    with pytest.raises(ValueError):
        stored.completed(kept, {}, stored.arrival_rows(past))


def test_a_window_the_same_as_a_standard_one_is_the_standard_ones() -> None:
    """`--since 90d` asks for the standard 90-day window: computed once, it is the same."""
    records, incidents, rebuilds = world(3)
    now = START + timedelta(days=DAYS)

    def windows(start: datetime) -> dict[str, object]:
        snapshot = build_snapshot(records, environments=ENVIRONMENTS, production="prod",
                                  now=now, start=start, end=now, incidents=incidents,
                                  redeployments=rebuilds)
        return {"window": replace(snapshot.window, name="90d"), **snapshot.windows}

    same, other = windows(now - timedelta(days=90)), windows(now - timedelta(days=89))
    assert same["90d"] == other["90d"] == same["window"]
    assert other["window"] != other["90d"]


def test_ranks_kept_at_any_cut_judge_as_the_whole_history() -> None:
    """Releases named by short and full SHAs (one release), by versions, and full SHAs sharing
    their first 7 digits (two releases): the ranks kept before any cut, read back, judge every
    later deployment as the whole history does."""
    import json

    from devex_cli.dora.rollbacks import Ranks, rollbacks

    a, b, c = "abc1234" + "1" * 33, "abc1234" + "2" * 33, "def5678" + "3" * 33
    names = [a, b, a[:7], c, b, a[:9], None, c[:7], None, a, c, b[:12], "ABC1234" + "2" * 33]
    group = [DeploymentRecord("svc", "prod", name, f"1.{i % 3}" if name is None else f"v{i}",
                              START + timedelta(hours=i), f"g{i}",
                              ancestry_rollback=False if i == 4 else None)
             for i, name in enumerate(names)]
    whole = rollbacks(group)
    # back to A by its short SHA and by 9 digits, to C from a version, to B by 12 digits:
    # rollbacks; B in capitals after B: the same release
    assert whole == [False, False, True, False, False, True, False, True, False, True, False,
                     True, False]
    for cut in range(len(group) + 1):
        kept = Ranks.after(group[:cut])
        state = json.loads(json.dumps(kept.state()))
        read = Ranks.from_state(state)
        assert read == kept
        assert rollbacks(group[cut:], read) == whole[cut:], cut
    # an earlier devex wrote the revisions grouped by their first 7 digits: the same ranks
    state = Ranks.after(group).state()
    state["revisions"] = sorted(state["revisions"], key=lambda pair: pair[0][:7])
    assert Ranks.from_state(state) == Ranks.after(group)
    for damaged in ([[a, 1], [a, 2]], [[a, "1"]], [[a, 1, 2]], [a], ["ab"], [[[a], 1]], {a: 1}):
        with pytest.raises(ValueError, match="not a ranks state"):
            Ranks.from_state({**state, "revisions": damaged})


@pytest.mark.parametrize("seed", range(3))
def test_evidence_is_the_same_whichever_window_asked_first(seed: int) -> None:
    """A commit's lead time and path to production are made once per history and shared by
    the windows that have it: each window's evidence is the same whether it is asked first or
    after others (longer, shorter, overlapping)."""
    records, incidents, rebuilds = world(seed)
    now = START + timedelta(days=DAYS)
    windows = [(now - timedelta(days=days), now - timedelta(days=shift))
               for days, shift in ((90, 0), (7, 0), (30, 0), (60, 20), (200, 100))]

    def evidence(history: object, start: datetime, end: datetime) -> list[object]:
        keys = sorted(history.by_key)  # type: ignore[attr-defined]
        return [*(environment_evidence(history, s, e, start, end, now)  # type: ignore[arg-type]
                  for s, e in keys),
                *(promotion_evidence(history, s, ENVIRONMENTS, "prod",  # type: ignore[arg-type]
                                     start, end) for s in sorted({s for s, _ in keys}))]

    shared = history_of(records, environments=ENVIRONMENTS, production="prod",
                        incidents=incidents, redeployments=rebuilds)
    for start, end in windows:
        alone = history_of(records, environments=ENVIRONMENTS, production="prod",
                           incidents=incidents, redeployments=rebuilds)
        assert evidence(shared, start, end) == evidence(alone, start, end)
    for start, end in reversed(windows):  # and in the other order, the memo full
        alone = history_of(records, environments=ENVIRONMENTS, production="prod",
                           incidents=incidents, redeployments=rebuilds)
        assert evidence(shared, start, end) == evidence(alone, start, end)
