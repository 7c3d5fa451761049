"""The terminal tables of `devex collect` (and so of the demo), as a manager reads them."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from devex_cli.dora import tiers
from devex_cli.dora.compute import build_snapshot
from devex_cli.dora.model import Change, DeploymentRecord, Snapshot
from devex_cli.views.tables import release, render_tables

D = timedelta(days=1)
H = timedelta(hours=1)


def deploy(env: str, rev: str, at: datetime, *, tag: str | None = None,
           service: str = "pay", rollback: bool = False) -> DeploymentRecord:
    changes = (Change(f"{rev}-c", at - 5 * H, ()),)
    return DeploymentRecord(service, env, rev, tag or f"1.0-{rev}", at, f"g-{env}-{rev}",
                            changes, ancestry_rollback=rollback)


def tables(snapshot: Snapshot) -> str:
    out = io.StringIO()
    render_tables(snapshot, color=False, file=out)
    return out.getvalue()


def rows(text: str, title: str) -> dict[str, list[str]]:
    """The body rows of the table under `title`: first cell -> the other cells."""
    block = text.split(title, 1)[1].split("\n\n", 1)[0]
    found = {}
    for line in block.splitlines():
        if line.startswith("│"):
            cells = [c.strip() for c in line.strip("│").split("│")]
            found[cells[0]] = cells[1:]
    return found


def test_on_the_first_of_a_month_last_month_is_shown_beside_this_month_so_far() -> None:
    now = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)  # the 1st: nothing deployed this month yet
    records = [deploy(env, f"r{n}", datetime(2026, 11, 3 + 7 * n, 10, tzinfo=UTC) + i * H)
               for n in range(3) for i, env in enumerate(("dev", "qa", "prod"))]
    records.append(deploy("dev", "r9", datetime(2026, 10, 20, tzinfo=UTC)))
    snapshot = build_snapshot(records, environments=("dev", "qa", "prod"), production="prod",
                              now=now, start=now - 30 * D, end=now)
    text = tables(snapshot)
    assert "1. Deployments this month so far (2026-12) and last month (2026-11)" in text
    header = text.split("1. Deployments", 1)[1].split("│", 1)[0]
    assert "2026-12" in header and "2026-11" in header
    #             2026-12: dev qa prod | 2026-11: dev qa prod
    assert rows(text, "1. Deployments")["pay"] == ["0", "0", "0", "3", "3", "3"]
    assert rows(text, "1. Deployments")["all"] == ["0", "0", "0", "3", "3", "3"]


def test_a_window_ending_in_the_past_shows_its_own_last_month_in_full() -> None:
    now = datetime(2026, 12, 15, tzinfo=UTC)
    end = datetime(2026, 11, 1, tzinfo=UTC)
    records = [deploy("prod", "r1", datetime(2026, 10, 5, tzinfo=UTC)),
               deploy("prod", "r2", datetime(2026, 9, 5, tzinfo=UTC)),
               deploy("prod", "r3", datetime(2026, 9, 25, tzinfo=UTC))]
    snapshot = build_snapshot(sorted(records, key=lambda r: r.time), environments=("prod",),
                              production="prod", now=now, start=end - 30 * D, end=end)
    text = tables(snapshot)
    assert "1. Deployments this month (2026-10) and last month (2026-09)" in text
    assert "so far" not in text
    assert rows(text, "1. Deployments")["pay"] == ["1", "2"]
    assert "in prod at the end" in text  # not "now": --until put the window in the past


def test_many_environments_get_a_table_a_month() -> None:
    now = datetime(2026, 12, 10, tzinfo=UTC)
    environments = ("local", "dev", "test", "qa", "uat", "staging", "preprod", "prod")
    records = [deploy(env, "r1", datetime(2026, 11, 2, tzinfo=UTC) + i * H,
                      service="a-rather-long-service-name")
               for i, env in enumerate(environments)]
    snapshot = build_snapshot(records, environments=environments, production="prod", now=now,
                              start=now - 30 * D, end=now)
    text = tables(snapshot)
    section = text.split("1. Deployments", 1)[1].split("2. Lead time", 1)[0]
    assert "   2026-12 so far" in section and "   2026-11\n" in section
    assert max(len(line) for line in section.splitlines()) <= 120


def test_dora_table_says_what_runs_in_production_now_and_how_the_tier_is_made() -> None:
    now = datetime(2026, 12, 10, tzinfo=UTC)
    full = "58ddfd6a91c3b7e2d4f5a6b7c8d9e0f1a2b3c4d5"
    records = [deploy("prod", f"r{n}", now - (29 - 6 * n) * D) for n in range(4)]
    records.append(deploy("prod", "r2", now - 11 * D + 3 * H, rollback=True))  # r3 failed
    records.append(deploy("prod", full, now - 2 * D, tag=f"1.4.2-{full}"))
    snapshot = build_snapshot(records, environments=("prod",), production="prod", now=now,
                              start=now - 30 * D, end=now)
    service = snapshot.window.service("pay")
    assert service is not None
    prod = service.environment("prod")
    assert prod is not None and prod.change_failure_rate == 1 / 6
    # deploys 0.2 a day: high; lead time 5h: elite; recovery 3h: high; failure rate 17%:
    # medium on its own, and the service "high" (the lower middle of four): the footnote says why
    assert tiers.TIERS[tiers.change_failure_tier(1 / 6)] == "medium" and service.tier == "high"
    text = tables(snapshot)
    dora = text.split("DORA figures", 1)[1]
    assert "runs" not in dora
    assert "in prod now" in dora
    assert rows(text, "DORA figures")["pay"][0] == "1.4.2-58ddfd6"
    assert "tier: the median of the four measures' own tiers (of four, the lower middle one" in dora
    assert "one measure can rank below it" in dora


def test_release_names_a_deployment_as_people_do() -> None:
    assert release("1.4.2-58ddfd6", "58ddfd6a91c3b7e2d4f5") == "1.4.2-58ddfd6"
    assert release("58ddfd6a91c3b7e2d4f5a6b7c8d9e0f1a2b3c4d5", None) == "58ddfd6"
    assert release("sha-58ddfd6a91c3", None) == "sha-58ddfd6"
    assert release("v202411051230", None) == "v202411051230"  # digits: a build, not a SHA
    assert release("build-202411051230", None) == "build-202411051230"
    assert release(None, "58ddfd6a91c3b7e2") == "58ddfd6"
    assert release(None, None) == "-"
