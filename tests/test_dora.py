"""The DORA computation on hand-built records with answers worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devex_cli.dora import tiers
from devex_cli.dora.compute import build_snapshot, failure_signals, qa_release
from devex_cli.dora.model import (
    Change,
    DeploymentRecord,
    Incident,
    RedeploymentRecord,
    TicketInfo,
)
from devex_cli.dora.stats import Summary

T0 = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)
ENVS = ("dev", "qa", "prod")


def change(sha: str, authored: datetime, *tickets: str, merge: bool = False) -> Change:
    return Change(sha, authored, tickets, merge=merge)


def deploy(env: str, rev: str, at: datetime, changes: tuple[Change, ...] | None = (),
           service: str = "pay", rollback: bool | None = False, failed_sync: bool = False
           ) -> DeploymentRecord:
    return DeploymentRecord(service, env, rev, f"1.0-{rev}", at, f"g-{env}-{rev}-{at:%d%H}",
                            changes, ancestry_rollback=rollback, failed_sync=failed_sync)


def snapshot(records: list[DeploymentRecord], **kw: object):  # type: ignore[no-untyped-def]
    defaults: dict[str, object] = {"environments": ENVS, "production": "prod",
                                   "now": T0 + 30 * D, "start": T0 - D, "end": T0 + 30 * D}
    return build_snapshot(records, **{**defaults, **kw})  # type: ignore[arg-type]


def test_summary_statistics() -> None:
    assert Summary.of([]) == Summary(None, None, None, 0)
    assert Summary.of([4, 1, 3, 2]) == Summary(2.5, 2.5, 3.7, 4)
    assert Summary.of([10]) == Summary(10.0, 10.0, 10.0, 1)
    # p90 of 1..10: position 8.1 -> 9 + 0.1 * (10 - 9)
    assert Summary.of(list(range(1, 11))).p90 == pytest.approx(9.1)


def test_lead_time_is_first_production_deployment_minus_author_time() -> None:
    a = change("a", T0 - 10 * H)
    b = change("b", T0 - 4 * H)
    records = [
        deploy("prod", "r0", T0 - 2 * D, None),            # first deployment: no change set
        deploy("qa", "r1", T0, (a, b)),
        deploy("prod", "r1", T0 + 2 * H, (a, b)),
        deploy("prod", "r2", T0 + 5 * H, (change("c", T0 + 4 * H),)),
    ]
    prod = snapshot(records).window.service("pay").environment("prod")
    # a: 12 h, b: 6 h, c: 1 h
    assert prod.lead_time == Summary(6 * 3600.0, 19 * 3600 / 3, 6 * 3600 + 0.8 * 6 * 3600, 3)
    assert prod.deployments == 2  # r0, two days before T0, is before the window
    qa = snapshot(records).window.service("pay").environment("qa")
    assert qa.lead_time.median == 7 * 3600.0  # qa lead times: a 10 h, b 4 h


def test_window_bounds_and_frequency() -> None:
    records = [deploy("prod", f"r{n}", T0 + n * D) for n in range(10)]
    figures = snapshot(records, start=T0 + 2 * D, end=T0 + 6 * D).window
    prod = figures.service("pay").environment("prod")
    assert prod.deployments == 4  # days 2, 3, 4, 5: start <= time < end
    assert prod.deployment_frequency_per_day == 1.0
    assert prod.revision == "r5"


def test_frequency_over_the_days_the_history_covers() -> None:
    """From the later of the window's start and the environment's first deployment of any
    service, to the earlier of its end and now."""
    records = [deploy("qa", "w1", T0 - 5 * D, service="web"),   # qa's history starts here
               deploy("qa", "p1", T0 + D),
               *(deploy("prod", f"p{n}", T0 + n * D) for n in range(4))]
    snap = snapshot(records, start=datetime(2000, 1, 1, tzinfo=UTC), end=T0 + 20 * D,
                    now=T0 + 10 * D)
    pay = snap.window.service("pay")
    # prod: T0 (its first deployment) to T0 + 10 d (now, before the window's end): 4 in 10 days
    assert pay.environment("prod").deployment_frequency_per_day == 0.4
    # qa: from web's first deployment there (T0 - 5 d) to now: 1 in 15 days
    assert pay.environment("qa").deployment_frequency_per_day == pytest.approx(1 / 15)
    assert pay.tier == "high"  # frequency high (0.4 a day), failures elite (none): the lower
    # middle of the two


def test_frequency_before_the_history_is_unknown() -> None:
    from devex_cli.views.prometheus import render

    records = [deploy("prod", "p1", T0), deploy("prod", "p2", T0 + D)]
    before = snapshot(records, start=T0 - 10 * D, end=T0 - 5 * D)
    prod = before.window.service("pay").environment("prod")
    assert (prod.deployments, prod.deployment_frequency_per_day, prod.change_failure_rate) == (
        0, None, None)
    assert before.window.service("pay").tier is None
    after = snapshot(records, start=T0 + 5 * D, end=T0 + 10 * D)
    assert after.window.service("pay").environment("prod").deployment_frequency_per_day == 0.0
    # a clock behind the history: the standard windows cover none of it, so no sample
    behind = snapshot(records, now=T0 - D, start=T0 - 3 * D, end=T0 - D)
    text = render(behind, now=(T0 - D).timestamp())
    assert "dora_deployments{" in text and "dora_deployment_frequency{" not in text


def test_rollback_failure_and_recovery() -> None:
    records = [
        deploy("prod", "good", T0),
        deploy("prod", "bad", T0 + D),
        deploy("prod", "good", T0 + D + 3 * H, rollback=True),
        deploy("prod", "fixed", T0 + 2 * D),
    ]
    snap = snapshot(records)
    prod = snap.window.service("pay").environment("prod")
    assert [d.failed for d in snap.deployments] == [False, True, False, False]
    assert [d.rollback for d in snap.deployments] == [False, False, True, False]
    assert prod.change_failure_rate == 0.25
    assert prod.failed == 1 and prod.rollbacks == 1
    assert prod.recovery_time == Summary(3 * 3600.0, 3 * 3600.0, 3 * 3600.0, 1)


def test_rollbacks_from_the_gitops_history_alone() -> None:
    """No app repository (ancestry unknown): A, B, A, B, C puts A back once; B again is a
    roll-forward, not a second rollback."""
    times = [T0, T0 + D, T0 + D + 2 * H, T0 + 2 * D, T0 + 3 * D]
    records = [deploy("prod", rev, at, None, rollback=None)
               for rev, at in zip(("aaaaaaa", "bbbbbbb", "aaaaaaa", "bbbbbbb", "ccccccc"), times,
                                  strict=True)]
    snap = snapshot(records)
    assert [d.rollback for d in snap.deployments] == [False, False, True, False, False]
    assert [d.failed for d in snap.deployments] == [False, True, False, False, False]
    prod = snap.window.service("pay").environment("prod")
    assert prod.rollbacks == 1 and prod.failed == 1
    assert prod.change_failure_rate == 0.2  # 1 failed (the first B) of 5
    # the first B at T0 + 1 d, recovered by the rollback to A 2 h later
    assert prod.recovery_time == Summary(7200.0, 7200.0, 7200.0, 1)


@pytest.mark.parametrize(("releases", "expected"), [
    # versions only (no revision in the tag): `29.0` put back after `29.1`
    ([(None, "29.0"), (None, "29.1"), (None, "29.0")], [False, False, True]),
    # A, B, A, B, A: every return to A goes back in the environment's order
    ([("aaaaaaa", ""), ("bbbbbbb", ""), ("aaaaaaa", ""), ("bbbbbbb", ""), ("aaaaaaa", "")],
     [False, False, True, False, True]),
    # A, B, C, B: C was first deployed after B, so B is put back
    ([("aaaaaaa", ""), ("bbbbbbb", ""), ("ccccccc", ""), ("bbbbbbb", "")],
     [False, False, False, True]),
    # the short SHA and the full one are one release
    ([("abc1234", ""), ("bcd2345", ""), ("abc1234" + "f" * 33, "")], [False, False, True]),
    # a release never deployed here is not a rollback by the GitOps history
    ([("aaaaaaa", ""), ("bbbbbbb", ""), ("ccccccc", "")], [False, False, False]),
])
def test_gitops_rollback_rule(releases: list[tuple[str | None, str]],
                              expected: list[bool]) -> None:
    records = [DeploymentRecord("pay", "prod", revision, version or f"1.0-{revision}",
                                T0 + n * H, f"g{n}", None)
               for n, (revision, version) in enumerate(releases)]
    assert [d.rollback for d in snapshot(records).deployments] == expected


def test_ancestry_wins_where_it_is_known() -> None:
    """A, B, A where the app repository says B is the older commit: the rollback is B (an
    ancestor of A), and putting A back is a roll-forward, whatever the GitOps history says."""
    records = [deploy("prod", "aaaaaaa", T0, None, rollback=None),
               deploy("prod", "bbbbbbb", T0 + H, (), rollback=True),
               deploy("prod", "aaaaaaa", T0 + 3 * H, (change("a1", T0 - H),), rollback=False)]
    snap = snapshot(records)
    assert [d.rollback for d in snap.deployments] == [False, True, False]
    assert [d.failed for d in snap.deployments] == [True, False, False]
    prod = snap.window.service("pay").environment("prod")
    assert prod.change_failure_rate == pytest.approx(1 / 3)
    assert prod.recovery_time.median == 3600.0  # A at T0, rolled back to B at T0 + 1 h


def test_failure_signals_per_service() -> None:
    records = [deploy("prod", "a", T0, None, rollback=None),
               deploy("prod", "b", T0 + H, (), rollback=False),  # the app repository judged it
               deploy("prod", "x", T0, None, service="web", rollback=None),
               deploy("prod", "y", T0 + H, None, service="web", rollback=None),
               deploy("qa", "z", T0, None, service="api", rollback=None)]
    assert failure_signals(records) == {"api": ("gitops",), "pay": ("gitops", "ancestry"),
                                        "web": ("gitops",)}
    assert failure_signals(records, argocd={"web"}, incidents=True) == {
        "api": ("gitops", "incidents"), "pay": ("gitops", "ancestry", "incidents"),
        "web": ("gitops", "argocd", "incidents")}


def test_redeployments_in_the_window() -> None:
    records = [deploy("prod", "a", T0), deploy("qa", "a", T0 - H)]
    rebuilds = [RedeploymentRecord("pay", "prod", T0 + n * D) for n in (1, 2, 9)] + [
        RedeploymentRecord("pay", "qa", T0 + D)]
    snap = snapshot(records, redeployments=rebuilds, start=T0, end=T0 + 5 * D)
    pay = snap.window.service("pay")
    assert (pay.environment("prod").redeployments, pay.environment("qa").redeployments) == (2, 1)
    assert pay.environment("prod").deployments == 1  # rebuilds are no deployments


def test_failed_sync_recovers_at_the_next_good_deployment() -> None:
    records = [
        deploy("prod", "a", T0, failed_sync=True),
        deploy("prod", "b", T0 + 2 * H, failed_sync=True),
        deploy("prod", "c", T0 + 5 * H),
    ]
    prod = snapshot(records).window.service("pay").environment("prod")
    assert prod.change_failure_rate == pytest.approx(2 / 3)
    assert prod.recovery_time.median == pytest.approx(4 * 3600.0)  # 5 h and 3 h


def test_incident_marks_the_production_deployment_before_it() -> None:
    records = [deploy("prod", "a", T0), deploy("prod", "b", T0 + D), deploy("qa", "b", T0)]
    incidents = [Incident("OPS-1", "pay", T0 + 5 * H), Incident("OPS-2", "web", T0 + 30 * H)]
    snap = snapshot(records, incidents=incidents)
    assert [(d.environment, d.revision, d.failed) for d in snap.deployments] == [
        ("prod", "a", True), ("qa", "b", False), ("prod", "b", False)]


def test_deployments_per_calendar_month() -> None:
    records = [deploy("prod", "a", datetime(2026, 9, 30, 23, tzinfo=UTC)),
               deploy("prod", "b", datetime(2026, 10, 1, 1, tzinfo=UTC)),
               deploy("qa", "b", datetime(2026, 10, 2, tzinfo=UTC))]
    snap = snapshot(records)
    assert snap.monthly == {("pay", "prod", "2026-09"): 1, ("pay", "prod", "2026-10"): 1,
                            ("pay", "qa", "2026-10"): 1}


def test_tickets_in_qa_not_in_production() -> None:
    one = change("c1", T0 - H, "PAY-1")
    two = change("c2", T0 - H, "PAY-2", "PAY-1")
    merge = change("m1", T0 - H, "PAY-3", merge=True)
    records = [
        deploy("prod", "r0", T0 - 3 * D, None), deploy("qa", "r0", T0 - 3 * D, None),
        deploy("qa", "r1", T0, (one,)),
        deploy("prod", "r1", T0 + D, (one,)),
        deploy("qa", "r2", T0 + 2 * D, (two, merge)),
    ]
    snap = snapshot(records, tickets={"PAY-2": TicketInfo("PAY-2", "Done", ("2.0",)),
                                      "PAY-3": TicketInfo("PAY-3", "Open", ())})
    assert [(t.ticket, t.environment, t.fix_versions) for t in snap.tickets_in_environment] == [
        ("PAY-2", "qa", ("2.0",)), ("PAY-1", "qa", ()), ("PAY-3", "qa", ())]
    latest = snap.deployments[-1]
    assert latest.commits == ("c2",)  # the merge is not a change of its own
    assert latest.tickets == ("PAY-2", "PAY-1", "PAY-3")


def test_pending_commits_from_the_app_repository_win() -> None:
    records = [deploy("qa", "r1", T0, None), deploy("prod", "r0", T0, None)]
    pending = {("pay", "qa"): (change("x", T0, "PAY-9"),)}
    snap = snapshot(records, pending=pending)
    assert [(t.ticket, t.fix_versions) for t in snap.tickets_in_environment] == [("PAY-9", None)]


def test_bottleneck_is_the_stage_with_the_largest_median_wait() -> None:
    commits = (change("a", T0 - H), change("b", T0 - H))
    records = [
        deploy("dev", "r1", T0, commits),
        deploy("qa", "r1", T0 + 2 * H, commits),
        deploy("prod", "r1", T0 + 3 * D, commits),
        deploy("dev", "w1", T0, (change("w", T0),), service="web"),
        deploy("prod", "w1", T0 + H, (change("w", T0),), service="web"),
    ]
    window = snapshot(records).window
    pay = window.service("pay")
    assert [(w.from_environment, w.to_environment, w.wait.median) for w in pay.promotion_waits] \
        == [("dev", "qa", 7200.0), ("qa", "prod", 3 * 86400 - 7200.0)]
    assert pay.bottleneck is not None and pay.bottleneck.to_environment == "prod"
    web = window.service("web")
    assert [(w.from_environment, w.to_environment) for w in web.promotion_waits] == [
        ("dev", "prod")]  # web skips qa
    assert window.bottleneck is not None and window.bottleneck.from_environment == "qa"


@pytest.mark.parametrize(("environments", "preferred", "expected"), [
    (("dev", "qa", "prod"), "qa", "qa"),
    (("dev", "staging", "prod"), "qa", "staging"),  # no qa: the one before production
    (("dev", "qa", "uat", "prod"), "qa", "qa"),
    (("dev", "qa", "uat", "prod"), "uat", "uat"),
    (("dev", "qa", "prod"), "uat", "qa"),  # the gate's environment is not there
    (("prod",), "qa", None),
    (("dev", "staging"), "qa", None),  # no production to come before
    (("qa", "prod"), "prod", "qa"),  # production is never the QA release
])
def test_qa_release(environments: tuple[str, ...], preferred: str, expected: str | None) -> None:
    production = "prod" if "prod" in environments else None
    assert qa_release(environments, production, preferred) == expected
    assert snapshot([], environments=environments, production=production,
                    qa_environment=preferred).qa_release == expected


def test_tiers() -> None:
    assert tiers.frequency_tier(3) == 3 and tiers.frequency_tier(0.2) == 2
    assert tiers.frequency_tier(0.05) == 1 and tiers.frequency_tier(0.01) == 0
    assert tiers.lead_time_tier(3600) == 3 and tiers.lead_time_tier(40 * 86400) == 0
    assert tiers.change_failure_tier(0.05) == 3 and tiers.change_failure_tier(0.5) == 0
    assert tiers.recovery_tier(1800) == 3 and tiers.recovery_tier(8 * 86400) == 0
    assert tiers.overall_tier([3, 2, 1, 0]) == "medium"
    assert tiers.overall_tier([3, 3, 2]) == "elite"
    assert tiers.overall_tier([]) is None


def test_service_tier_from_production_figures() -> None:
    records = [deploy("prod", f"r{n}", T0 + n * H, (change(f"c{n}", T0 + n * H - H / 6),))
               for n in range(48)]
    figures = snapshot(records, start=T0, end=T0 + 2 * D).window.service("pay")
    assert figures.tier == "elite"  # 24 a day, 10 minutes, no failure
    assert snapshot([deploy("qa", "a", T0)]).window.service("pay").tier is None


def test_hotfix_skips_the_environments_before_production() -> None:
    normal = change("n", T0 - H)
    urgent = change("u", T0 + 2 * H)
    records = [
        deploy("qa", "r1", T0, (normal,)),
        deploy("prod", "r1", T0 + H, (normal,)),
        deploy("prod", "r2", T0 + 3 * H, (urgent,)),  # never in dev or qa first
        deploy("qa", "r2", T0 + 4 * H, (urgent,)),
        deploy("prod", "w1", T0, (change("w", T0 - H),), service="web"),  # web has no qa at all
    ]
    snap = snapshot(records)
    assert [(d.service, d.revision, d.hotfix) for d in snap.deployments
            if d.environment == "prod"] == [("web", "w1", False), ("pay", "r1", False),
                                            ("pay", "r2", True)]
    assert snap.window.service("pay").environment("prod").hotfixes == 1


class _CountedIncidents(list[Incident]):
    """Incidents that count how many of them are read."""

    reads = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        for incident in super().__iter__():
            type(self).reads += 1
            yield incident


def test_each_deployment_reads_only_its_services_incidents() -> None:
    """200 services with 20 production deployments and an incident each: the incidents are read
    a bounded number of times, not once per production deployment (4,000 x 200)."""
    from devex_cli.dora.compute import history_of

    services = [f"s{n:03d}" for n in range(200)]
    records = [deploy("prod", f"r{d}", T0 + d * D, service=s) for s in services
               for d in range(20)]
    incidents = _CountedIncidents(Incident(f"OPS-{n}", s, T0 + 5 * D + H)
                                  for n, s in enumerate(services))
    history = history_of(records, environments=ENVS, production="prod", incidents=incidents)
    failed = [r for r in records if history.is_failed(r)]
    assert [(r.service, r.revision) for r in failed] == [(s, "r5") for s in services]
    assert _CountedIncidents.reads <= 3 * len(incidents), _CountedIncidents.reads
