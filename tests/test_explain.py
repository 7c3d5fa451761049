"""`devex explain`: the figure it explains equals collect's, on the hand-computed World of
test_collect and on the demo organisation, with the evidence that makes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devex_cli.config import load_settings
from devex_cli.explain import FIGURES, links_of
from tests.conftest import Result
from tests.fakes.jira import FakeJira
from tests.worlds import World

Devex = Callable[..., Result]
WINDOW = ("--since", "2026-09-01", "--until", "2026-11-01")

SHAPE = {
    "deployments": {"deployments", "redeployments", "days"},
    "lead-time": {"commits", "statistics"},
    "change-failure-rate": {"failures", "failure_signals"},
    "recovery-time": {"failures", "failure_signals", "statistics"},
    "bottleneck": {"commits", "stages"},
    "tickets": {"source", "tickets"},
}
COMMON = {"figure", "service", "environment", "production", "window", "result",
          "unknown_because"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("world"))


def run_json(devex: Devex, config: Path, *args: str) -> dict[str, Any]:
    result = devex(*args, "--offline", "--format", "json", config=str(config))
    assert result.code == 0, result.err
    return json.loads(result.out)  # type: ignore[no-any-return]


def figures_of(report: dict[str, Any], service: str, environment: str) -> dict[str, Any]:
    (found,) = [s for s in report["services"] if s["service"] == service]
    return next(e for e in found["environments"] if e["environment"] == environment)


def assert_equals_collect(report: dict[str, Any], explained: dict[str, Any]) -> None:
    """The explained figure is collect's, to the last digit (==, never approx)."""
    figure, service = explained["figure"], explained["service"]
    result = explained["result"]
    if figure == "bottleneck":
        (found,) = ([s for s in report["services"] if s["service"] == service]
                    if service is not None else [report["organisation"]])
        neck = found["bottleneck"]
        assert result["bottleneck"] == (None if neck is None else {
            "from": neck["from"], "to": neck["to"], "median_seconds": neck["median_seconds"]})
        assert [{k: s[k] for k in ("from", "to", "median", "mean", "p90", "count")}
                for s in explained["stages"]] == found["promotion_waits"]
        for stage in explained["stages"]:
            waits = sorted(w["seconds"] for c in explained["commits"] for w in c["waits"]
                           if (w["from"], w["to"]) == (stage["from"], stage["to"]))
            assert stage["statistics"]["sorted"] == waits
        return
    environment = explained["environment"]
    if figure == "tickets":
        listed = [t for t in report["tickets_in_environment"]
                  if (t["service"], t["environment"]) == (service, environment)]
        assert [t["ticket"] for t in explained["tickets"]] == [t["ticket"] for t in listed]
        assert [t["fix_versions"] for t in explained["tickets"]] == [
            t["fix_versions"] for t in listed]
        assert result["tickets"] == len(listed)
        for ticket in explained["tickets"]:  # each one is carried by a commit that names it
            assert ticket["commits"]
            assert all(ticket["ticket"] in c["tickets"] for c in ticket["commits"])
        return
    figures = figures_of(report, service, environment)
    if figure == "deployments":
        assert result == {"deployments": figures["deployments"],
                          "deployment_frequency_per_day": figures["deployment_frequency_per_day"]}
        assert len(explained["deployments"]) == figures["deployments"]
        in_window = [d for d in report["deployments"]
                     if (d["service"], d["environment"]) == (service, environment)]
        assert [(d["time"], d["gitops_commit"], d["rollback"], d["failed"], d["hotfix"])
                for d in explained["deployments"]] == [
            (d["time"], d["gitops_commit"], d["rollback"], d["failed"], d["hotfix"])
            for d in in_window]
        assert len(explained["redeployments"]) == figures["redeployments"]
    elif figure == "lead-time":
        assert result == figures["lead_time_seconds"]
        leads = [c["lead_seconds"] for c in explained["commits"]]
        assert len(leads) == result["count"]
        if leads:
            stats = explained["statistics"]
            assert stats["sorted"] == sorted(leads)
            assert stats["median"]["value"] == result["median"]
            assert stats["p90"]["value"] == result["p90"]
        carried = {sha for d in report["deployments"] for sha in d["commits"]
                   if (d["service"], d["environment"]) == (service, environment)}
        assert {c["sha"] for c in explained["commits"]} <= carried
    elif figure == "change-failure-rate":
        assert result["change_failure_rate"] == figures["change_failure_rate"]
        assert result["failed_deployments"] == figures["failed_deployments"]
        assert result["deployments"] == figures["deployments"]
        assert len(explained["failures"]) == figures["failed_deployments"]
        assert all(f["signals"] for f in explained["failures"])
    else:
        assert result == figures["recovery_time_seconds"]
        recovered = [f["recovery_seconds"] for f in explained["failures"]
                     if f["recovered_by"] is not None]
        assert len(recovered) == result["count"]


def explain_args(figure: str, service: str, environment: str | None = None) -> list[str]:
    return ["explain", figure, "--service", service,
            *(("--environment", environment) if environment else ())]


# --- the hand-computed World ------------------------------------------------------------------

@pytest.mark.parametrize("figure", FIGURES)
@pytest.mark.parametrize("environment", [None, "qa"])
def test_world_every_figure_equals_collect(devex: Devex, world: World, figure: str,
                                           environment: str | None) -> None:
    report = run_json(devex, world.config, "collect", *WINDOW)
    if figure == "tickets" and environment is None:
        environment = "qa"  # the QA release; explained below without --environment too
    explained = run_json(devex, world.config, *explain_args(figure, "pay", environment),
                         *WINDOW)
    assert set(explained) == COMMON | SHAPE[figure]
    assert explained["window"] == report["window"]
    assert_equals_collect(report, explained)


def test_world_hand_computed_evidence(devex: Devex, world: World) -> None:
    """The numbers of test_collect's test_hand_computed_figures, with what they are made of."""
    deployments = run_json(devex, world.config, *explain_args("deployments", "pay"), *WINDOW)
    assert [d["gitops_subject"] for d in deployments["deployments"]] == [
        "first", "prod m1", "prod c4", "roll back prod"]
    assert [d["commits"] for d in deployments["deployments"]] == [None, 3, 1, 0]
    assert deployments["days"]["from_reason"] == "history start"
    assert deployments["days"]["to_reason"] == "window end"
    assert deployments["days"]["days"] == 60.5

    lead = run_json(devex, world.config, *explain_args("lead-time", "pay"), *WINDOW)
    # c1 4d2h, c2 3d2h, c3 2d2h, c4 1d8h
    assert {c["sha"]: c["lead_seconds"] for c in lead["commits"]} == {
        world.c1: 352800.0, world.c2: 266400.0, world.c3: 180000.0, world.c4: 115200.0}
    assert {c["sha"]: c["subject"] for c in lead["commits"]}[world.c1] == "PAY-1 feature one"
    stats = lead["statistics"]
    assert stats["sorted"] == [115200.0, 180000.0, 266400.0, 352800.0]
    assert stats["median"] == {"indexes": [1, 2], "values": [180000.0, 266400.0],
                               "value": 223200.0}
    assert stats["mean"] == {"sum": 914400.0, "count": 4, "value": 228600.0}
    # p90 at (4 - 1) x 0.9 = 2.7: 266400 + 0.7 x (352800 - 266400)
    assert stats["p90"]["position"] == pytest.approx(2.7)
    assert (stats["p90"]["low_index"], stats["p90"]["high_index"]) == (2, 3)
    assert stats["p90"]["value"] == lead["result"]["p90"]

    failures = run_json(devex, world.config, *explain_args("recovery-time", "pay"), *WINDOW)
    (failure,) = failures["failures"]
    assert failure["deployment"]["revision"] == world.c4
    (signal,) = failure["signals"]
    assert (signal["kind"], signal["how"]) == ("rollback", "ancestry")
    assert signal["by"]["gitops_commit"] == world.rollback
    assert failure["recovered_by"]["gitops_commit"] == world.rollback
    assert failure["recovery_seconds"] == 7200.0

    neck = run_json(devex, world.config, *explain_args("bottleneck", "pay"), *WINDOW)
    assert neck["result"]["bottleneck"] == {"from": "qa", "to": "prod",
                                            "median_seconds": 2 * 86400.0}
    tickets = run_json(devex, world.config, *explain_args("tickets", "pay"), *WINDOW)
    assert tickets["environment"] == "qa"
    assert [(t["ticket"], [c["sha"] for c in t["commits"]]) for t in tickets["tickets"]] == [
        ("PAY-4", [world.c4])]


def test_world_tables_fit_100_columns(devex: Devex, world: World) -> None:
    for figure in FIGURES:
        result = devex(*explain_args(figure, "pay"), *WINDOW, "--offline",
                       config=str(world.config))
        assert result.code == 0, result.err
        lines = result.out.splitlines()
        assert lines and max(map(len, lines)) <= 100, (figure, result.out)


def test_world_links_to_bitbucket_and_jira(devex: Devex, world: World, jira: FakeJira) -> None:
    jira.add("PAY-4", "2.0", status="In QA")
    env = {**jira.env(), "BITBUCKET_WORKSPACE": "acme"}
    result = devex(*explain_args("tickets", "pay"), *WINDOW, "--format", "json",
                   config=str(world.config), env=env)
    assert result.code == 0, result.err
    (ticket,) = json.loads(result.out)["tickets"]
    assert ticket["url"] == f"{jira.env()['JIRA_URL']}/browse/PAY-4"
    assert ticket["fix_versions"] == ["2.0"] and ticket["status"] == "In QA"
    assert ticket["commits"][0]["url"] == (
        f"https://bitbucket.org/acme/pay/commits/{world.c4}")
    table = devex(*explain_args("tickets", "pay"), *WINDOW, config=str(world.config), env=env)
    assert f"{jira.env()['JIRA_URL']}/browse/PAY-4" in table.out
    assert "Tickets: 1, 0 without a fix version" in table.out


def test_no_data_says_why_never_0(devex: Devex, world: World) -> None:
    before = ("--since", "2026-08-01", "--until", "2026-08-15")
    deployments = run_json(devex, world.config, *explain_args("deployments", "pay"), *before)
    assert deployments["result"] == {"deployments": 0, "deployment_frequency_per_day": None}
    assert "not before the window ends" in deployments["unknown_because"]
    lead = run_json(devex, world.config, *explain_args("lead-time", "pay"), *before)
    assert lead["result"]["median"] is None and lead["statistics"] is None
    assert lead["unknown_because"] == "no deployment of pay to prod in the window"
    rate = run_json(devex, world.config, *explain_args("change-failure-rate", "pay"), *before)
    assert rate["result"]["change_failure_rate"] is None and rate["unknown_because"]
    september = ("--since", "2026-09-01", "--until", "2026-10-01")
    recovery = run_json(devex, world.config, *explain_args("recovery-time", "pay"), *september)
    assert recovery["result"] == {"median": None, "count": 0}
    assert "nothing to recover from" in recovery["unknown_because"]
    table = devex(*explain_args("lead-time", "pay"), *before, "--offline",
                  config=str(world.config))
    assert "No value: no deployment of pay to prod in the window." in table.out


@pytest.mark.parametrize(("args", "message"), [
    (["explain", "lead-time", "--service", "nope"], "unknown service 'nope': the GitOps "
                                                    "repository has pay"),
    (["explain", "lead-time", "--service", "pay", "--environment", "QA"],
     "unknown environment 'QA': the GitOps repository has qa, prod"),
    (["explain", "velocity", "--service", "pay"], "unknown figure 'velocity': explain one of "
                                                  "deployments, lead-time"),
    (["explain", "tickets", "--service", "pay", "--environment", "prod"],
     "an environment before production"),
    (["explain", "lead-time", "--service", "pay", "--format", "xml"], "--format must be"),
])
def test_errors_exit_2_naming_the_known_ones(devex: Devex, world: World, args: list[str],
                                              message: str) -> None:
    result = devex(*args, *WINDOW, "--offline", config=str(world.config))
    assert result.code == 2
    assert message in result.err and "Traceback" not in result.err


def test_the_cli_module_stays_light() -> None:
    code = ("import sys, devex_cli.cli; "
            "print(sorted(m for m in ('devex_cli.explain', 'devex_cli.collect', 'rich') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


# --- the demo organisation --------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[str, ...]]:
    """`devex demo --keep DIR` (a subprocess: its own Jira and cache), and a past window over
    its history (an end in the past: no figure depends on the minute the tests run)."""
    root = tmp_path_factory.mktemp("demo")
    keep = root / "org"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JIRA_", "ARGOCD_", "BITBUCKET_", "DEVEX_"))}
    env.update(XDG_CACHE_HOME=str(root / "cache"), GIT_CONFIG_GLOBAL="/dev/null",
               GIT_CONFIG_NOSYSTEM="1")
    done = subprocess.run([sys.executable, "-m", "devex_cli", "demo", "--keep", str(keep)],
                          capture_output=True, text=True, env=env, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    today = datetime.now(UTC).date()
    window = ("--since", f"{today - timedelta(days=60)}", "--until", f"{today}")
    return keep / "devex.toml", window


def test_demo_every_figure_of_every_service_equals_collect(
        devex: Devex, demo: tuple[Path, tuple[str, ...]]) -> None:
    config, window = demo
    report = run_json(devex, config, "collect", *window)
    checked = 0
    for service in sorted({s["service"] for s in report["services"]}):
        for figure in FIGURES:
            explained = run_json(devex, config, *explain_args(figure, service), *window)
            assert set(explained) == COMMON | SHAPE[figure]
            assert_equals_collect(report, explained)
            checked += 1
    assert checked == 4 * len(FIGURES)
    # the tables' 'all' row: every service's waits together
    every = run_json(devex, config, "explain", "bottleneck", *window)
    assert every["service"] is None and every["result"]["bottleneck"] is not None
    assert {c["service"] for c in every["commits"]} == {
        "payments", "checkout", "catalog", "notifications"}
    assert_equals_collect(report, every)
    # and in the environments before production
    for environment in ("dev", "qa", "preprod"):
        for figure in ("deployments", "lead-time", "change-failure-rate", "recovery-time"):
            explained = run_json(devex, config, *explain_args(figure, "checkout", environment),
                                 *window)
            assert_equals_collect(report, explained)


def test_demo_has_data_behind_each_figure(devex: Devex,
                                          demo: tuple[Path, tuple[str, ...]]) -> None:
    """The demo's rollback, its promotions and its pending tickets are explained, not empty."""
    config, window = demo
    found = {figure: [] for figure in FIGURES}  # type: dict[str, list[Any]]
    for service in ("payments", "checkout", "catalog", "notifications"):
        found["change-failure-rate"] += run_json(
            devex, config, *explain_args("change-failure-rate", service), *window)["failures"]
        found["bottleneck"] += run_json(
            devex, config, *explain_args("bottleneck", service), *window)["commits"]
        found["tickets"] += run_json(
            devex, config, *explain_args("tickets", service), *window)["tickets"]
    assert found["change-failure-rate"] and found["bottleneck"] and found["tickets"]
    assert all(len(c["path"]) == 4 and not c["skipped"] and not c["out_of_order"]
               for c in found["bottleneck"])  # dev -> qa -> preprod -> prod, always


HEADERS = {
    "deployments": ("time", "release", "gitops", "subject", "by", "commits", "marks"),
    "lead-time": ("commit", "subject", "authored", "deployed", "release", "lead"),
    "change-failure-rate": ("time", "gitops", "release", "recovered at", "by release"),
    "recovery-time": ("time", "gitops", "release", "recovered at", "by release", "recovery"),
    "bottleneck": ("commit", "subject", "dev->qa", "qa->preprod", "preprod->prod", "notes"),
    "tickets": ("ticket", "status", "fix versions", "commit", "subject"),
}


def test_demo_tables_fit_100_columns(devex: Devex, demo: tuple[Path, tuple[str, ...]]) -> None:
    """Within 100 columns, and no column cut to nothing: every heading is there in full."""
    config, window = demo
    for figure in FIGURES:
        service = "checkout" if figure in ("change-failure-rate", "recovery-time") else "payments"
        result = devex(*explain_args(figure, service), *window, "--offline",
                       config=str(config))
        assert result.code == 0, result.err
        lines = result.out.splitlines()
        assert max(map(len, lines)) <= 100, (figure, result.out)
        assert all(f" {h}" in lines[1] or lines[1].startswith(h) for h in HEADERS[figure]), (
            figure, lines[1])


def test_every_service_together_is_the_bottleneck_only(devex: Devex, world: World) -> None:
    """Without --service, the bottleneck is every service's (the tables' 'all' row); the other
    figures are a service's and say so."""
    report = run_json(devex, world.config, "collect", *WINDOW)
    every = run_json(devex, world.config, "explain", "bottleneck", *WINDOW)
    assert_equals_collect(report, every)
    table = devex("explain", "bottleneck", *WINDOW, "--offline", config=str(world.config))
    assert table.code == 0 and "Promotion waits of every service" in table.out
    lead = devex("explain", "lead-time", *WINDOW, "--offline", config=str(world.config))
    assert lead.code == 2 and "needs --service NAME" in lead.err


def test_a_months_deployments_are_explained_by_that_months_window(
        devex: Devex, demo: tuple[Path, tuple[str, ...]]) -> None:
    """Table 1's cells (a service's deployments to an environment in a month) are what
    `explain deployments` lists over that month; its 'all' row is their sum."""
    config, _ = demo
    report = run_json(devex, config, "collect")
    months = sorted({m["month"] for m in report["deployments_per_month"]})
    month = months[-2]  # the last full month
    year, number = (int(part) for part in month.split("-"))
    following = f"{year + number // 12}-{number % 12 + 1:02d}-01"
    checked = 0
    for row in report["deployments_per_month"]:
        if row["month"] != month:
            continue
        explained = run_json(devex, config, "explain", "deployments", "--service", row["service"],
                             "--environment", row["environment"], "--since", f"{month}-01",
                             "--until", following)
        assert explained["result"]["deployments"] == row["deployments"], row
        checked += 1
    assert checked >= 8


def test_links_follow_the_gitops_repository_given_on_the_command_line(tmp_path: Path) -> None:
    settings = load_settings(environ={"DEVEX_GITOPS_REPO": "git@bitbucket.org:acme/deploys.git"},
                             cwd=tmp_path)
    assert links_of(settings).gitops_commit("abc") == (
        "https://bitbucket.org/acme/deploys/commits/abc")
    given = links_of(settings, "https://bitbucket.org/other/gitops.git")
    assert given.gitops_commit("abc") == "https://bitbucket.org/other/gitops/commits/abc"
    assert links_of(settings, str(tmp_path)).gitops_commit("abc") is None
