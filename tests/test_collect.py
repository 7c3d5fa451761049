"""`devex collect` on real git repositories whose figures were worked out by hand."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Result
from tests.fakes.jira import FakeJira
from tests.gitworld import GitRepo, image, kustomization, overlay
from tests.worlds import World, at

Devex = Callable[..., Result]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("world"))


def with_redeployments(monkeypatch: pytest.MonkeyPatch, world: World,
                       *found: tuple[str, datetime]) -> None:
    """The GitOps reader gives these rebuilds of pay in prod (gitops commit subject, time), as
    a history carries them (the reader's own detection is tested with it)."""
    from dataclasses import replace

    from devex_cli.sources import gitops

    read = gitops.read_history
    log = GitRepo.__new__(GitRepo)
    log.path = world.root / "gitops"

    def reading(*args: Any, **kwargs: Any) -> gitops.GitOpsHistory:
        history = read(*args, **kwargs)
        rebuilds = []
        for subject, when in found:
            commit = log.git("log", "--format=%H", "--fixed-strings", f"--grep={subject}")
            previous = [d.release for d in history.deployments
                        if d.environment == "prod" and d.time <= when][-1]
            rebuilds.append(gitops.Redeployment(
                "pay", "prod", gitops.Release(f"1.0.1-{previous.revision}", previous.revision),
                previous, commit.splitlines()[0], when, overlay("pay", "prod")))
        return replace(history, redeployments=tuple(rebuilds))

    monkeypatch.setattr(gitops, "read_history", reading)


def collect_json(devex: Devex, world: World, *args: str) -> dict:  # type: ignore[type-arg]
    result = devex("collect", "--offline", "--format", "json", "--since", "2026-09-01",
                   "--until", "2026-11-01", *args, config=str(world.config))
    assert result.code == 0, result.err
    return json.loads(result.out)  # type: ignore[no-any-return]


def test_hand_computed_figures(devex: Devex, world: World) -> None:
    report = collect_json(devex, world)
    assert report["window"] == {"start": "2026-09-01T00:00:00Z", "end": "2026-11-01T00:00:00Z"}
    prod_deployments = [d for d in report["deployments"] if d["environment"] == "prod"]
    assert [(d["revision"], d["time"], d["failed"], d["rollback"]) for d in prod_deployments] == [
        (world.c0, "2026-09-01T12:00:00Z", False, False),
        (world.m1, "2026-09-06T12:00:00Z", False, False),  # the rebuild on 09-07 is not one
        (world.c4, "2026-10-06T18:00:00Z", True, False),
        (world.m1, "2026-10-06T20:00:00Z", False, True),
    ]
    assert prod_deployments[0]["change_set_known"] is False  # no predecessor
    assert prod_deployments[1]["commits"] == [world.c1, world.c2, world.c3]  # not the merge
    assert prod_deployments[1]["tickets"] == ["PAY-1", "PAY-2", "PAY-3"]
    assert prod_deployments[3]["commits"] == []

    (pay,) = report["services"]
    prod = next(e for e in pay["environments"] if e["environment"] == "prod")
    assert prod["deployments"] == 4
    assert prod["revision"] == world.m1
    assert prod["change_failure_rate"] == 0.25
    assert prod["recovery_time_seconds"] == {"median": 7200.0, "count": 1}
    # c1 4d2h, c2 3d2h, c3 2d2h (first in prod on 09-06 12:00), c4 1d8h
    assert prod["lead_time_seconds"] == {"median": 223200.0, "mean": 228600.0,
                                         "p90": pytest.approx(326880.0), "count": 4}
    # 4 deployments over the 60.5 days from the first one (09-01 12:00) to --until (11-01)
    assert prod["deployment_frequency_per_day"] == pytest.approx(4 / 60.5, abs=1e-6)
    months = {(m["environment"], m["month"]): m["deployments"]
              for m in report["deployments_per_month"]}
    assert months == {("prod", "2026-09"): 2, ("prod", "2026-10"): 2,
                      ("qa", "2026-09"): 3, ("qa", "2026-10"): 1}
    assert report["tickets_in_environment"] == [
        {"ticket": "PAY-4", "service": "pay", "environment": "qa", "fix_versions": None,
         "status": None, "sprint": None}]
    waits = {(w["from"], w["to"]): w["median"] for w in pay["promotion_waits"]}
    # c1, c2: qa 09-03 -> prod 09-06 (3 d); c3: qa 09-05 -> prod 09-06 (1 d); c4: 6 h
    assert waits == {("qa", "prod"): 2 * 86400.0}
    assert report["data_quality"]["deployments_without_change_set"] == 2
    # the app repository judged rollbacks; offline: no Argo CD, no incidents
    assert report["data_quality"]["failure_signals"] == {"pay": ["gitops", "ancestry"]}


def test_window_excludes_earlier_deployments(devex: Devex, world: World) -> None:
    report = devex("collect", "--offline", "--format", "json", "--since", "2026-10-01",
                   "--until", "2026-11-01", config=str(world.config))
    data = json.loads(report.out)
    prod = next(e for e in data["services"][0]["environments"] if e["environment"] == "prod")
    assert prod["deployments"] == 2 and prod["lead_time_seconds"]["count"] == 1


def test_frequency_counts_the_days_the_history_covers(devex: Devex, world: World) -> None:
    """A --since long before the repository's first deployment does not spread its deployments
    over years; a window before it has an unknown rate, not 0."""
    report = collect_json(devex, world, "--since", "2000-01-01")
    prod = next(e for e in report["services"][0]["environments"] if e["environment"] == "prod")
    assert prod["deployments"] == 4
    # from the first production deployment (2026-09-01 12:00) to --until 2026-11-01: 60.5 days
    assert prod["deployment_frequency_per_day"] == pytest.approx(4 / 60.5, abs=1e-6)
    # at least monthly (0.066 a day) makes frequency "medium", and the tier with it; spread over
    # 26 years it was 0.0004 a day and the tier "low"
    assert report["services"][0]["tier"] == "medium"
    before = collect_json(devex, world, "--since", "2026-08-01", "--until", "2026-08-15")
    envs = before["services"][0]["environments"]
    assert [(e["environment"], e["deployments"], e["deployment_frequency_per_day"])
            for e in envs] == [("qa", 0, None), ("prod", 0, None)]
    table = devex("collect", "--offline", "--since", "2026-08-01", "--until", "2026-08-15",
                  config=str(world.config))
    assert table.code == 0, table.err
    dora = table.out.split("DORA figures")[1]
    assert "unknown" in dora and "0.00" not in dora


def test_redeployments_are_counted_apart(devex: Devex, world: World,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The rebuild of 09-07 (`1.0.1-<m1>` after `<m1>`) is no deployment and counts apart."""
    with_redeployments(monkeypatch, world, ("rebuild, same revision", at("2026-09-07T12:00")))
    report = collect_json(devex, world)
    envs = {e["environment"]: e for e in report["services"][0]["environments"]}
    assert (envs["prod"]["redeployments"], envs["prod"]["deployments"]) == (1, 4)
    assert envs["qa"]["redeployments"] == 0
    later = collect_json(devex, world, "--since", "2026-09-08")
    assert [e["redeployments"] for e in later["services"][0]["environments"]] == [0, 0]


@pytest.mark.parametrize(("environments", "gate", "heading"), [
    (("dev", "qa", "prod"), None, "3. Tickets in qa and not yet in prod"),
    (("dev", "staging", "prod"), None, "3. Tickets in staging and not yet in prod"),
    (("dev", "qa", "uat", "prod"), "qa", "3. Tickets in qa and not yet in prod"),
    (("qa", "uat", "prod"), "uat", "3. Tickets in uat and not yet in prod"),
    (("test", "prod"), "uat", "3. Tickets in test and not yet in prod"),
    (("prod",), None, None),
])
def test_the_qa_release_is_the_gates_environment_else_the_one_before_production(
        devex: Devex, tmp_path: Path, environments: tuple[str, ...], gate: str | None,
        heading: str | None) -> None:
    gitops = GitRepo(tmp_path / "gitops")
    gitops.commit("everywhere", {overlay("pay", env): kustomization([image("pay", "abc1234")])
                                 for env in environments}, when=at("2026-09-02T12:00"))
    config = tmp_path / "devex.toml"
    config.write_text(f'[gitops]\nrepo = "{gitops.path}"\n'
                      + (f'\n[gate]\nenvironment = "{gate}"\n' if gate else ""))
    args = ("collect", "--offline", "--since", "2026-09-01", "--until", "2026-10-01")
    result = devex(*args, config=str(config))
    assert result.code == 0, result.err
    report = json.loads(devex(*args, "--format", "json", config=str(config)).out)
    if heading is None:
        assert "Tickets in" not in result.out and report["qa_release"] is None
    else:
        assert heading in result.out and result.out.count("Tickets in") == 1
        assert report["qa_release"] == heading.split()[3]
    assert "4. Bottlenecks" in result.out


def test_jira_fix_versions_and_unknown_keys(devex: Devex, world: World, jira: FakeJira) -> None:
    ticket = jira.add("PAY-4", "2.0", status="Done")
    ticket.sprints = [("Sprint 41", "closed"), ("Sprint 42", "active")]
    result = devex("collect", "--format", "json", "--since", "2026-09-01", "--until",
                   "2026-11-01", config=str(world.config), env=jira.env())
    report = json.loads(result.out)
    assert report["tickets_in_environment"][0]["fix_versions"] == ["2.0"]
    assert report["tickets_in_environment"][0]["sprint"] == "Sprint 42"
    assert report["sources"]["jira"] is True
    assert [r.path for r in jira.api_requests()] == ["/rest/api/3/field",
                                                     "/rest/api/3/issue/bulkfetch"]


def test_the_last_waiting_tickets_are_asked_as_the_collection_begins(
        devex: Devex, world: World, jira: FakeJira, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The tickets waiting for production that a collection asked Jira about are asked by the
    next one of the same configuration as it begins, before its figures are known: what Jira
    says is still read every run (a fix version set meanwhile shows), a key asked ahead that no
    longer waits is left out, one that waits now is asked then; and when Jira fails ahead, the
    collection tells it as before (tickets without fix versions), without asking again."""
    import time

    import devex_cli.collect

    jira.add("PAY-4", status="In Progress")
    jira.add("PAY-9", "3.0", status="Done")
    config = tmp_path / "devex.toml"
    config.write_text(world.config.read_text().replace(
        'repo = "gitops"', f'repo = "{world.root / "gitops"}"').replace(
        'repo = "pay"', f'repo = "{world.root / "pay"}"'))

    def run() -> dict[str, Any]:
        result = devex("collect", "--format", "json", "--since", "2026-09-01", "--until",
                       "2026-11-01", config=str(config), env=jira.env())
        assert result.code == 0, result.err
        return json.loads(result.out)  # type: ignore[no-any-return]

    reading, asked_while_reading = devex_cli.collect._our_history, []

    def reading_once_jira_is_asked(*args: Any, **kwargs: Any) -> Any:
        """The GitOps history, read once Jira has been asked (or after 10 s)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
                r.path.endswith("bulkfetch") for r in jira.api_requests()[before:]):
            time.sleep(0.01)
        asked_while_reading.append(time.monotonic() < deadline)
        return reading(*args, **kwargs)

    assert run()["tickets_in_environment"][0]["fix_versions"] == []
    kept = json.loads((tmp_path / "cache" / "devex" / "jira-waiting.json").read_text())
    assert list(kept["content"].values()) == [["PAY-4"]]

    jira.issues["PAY-4"].fix_versions = ["2.0"]
    before = len(jira.api_requests())
    with monkeypatch.context() as patched:
        patched.setattr(devex_cli.collect, "_our_history", reading_once_jira_is_asked)
        report = run()
    assert asked_while_reading == [True]
    assert report["tickets_in_environment"][0]["fix_versions"] == ["2.0"]
    bulk = [r for r in jira.api_requests()[before:] if r.path.endswith("bulkfetch")]
    assert len(bulk) == 1 and bulk[0].body["issueIdsOrKeys"] == ["PAY-4"]

    # the waiting tickets change: PAY-4 no longer, PAY-9 now (asked once the figures are known)
    (tmp_path / "cache" / "devex" / "jira-waiting.json").write_text(json.dumps(
        {"version": 1, "content": {name: ["PAY-9"] for name in kept["content"]}}))
    before = len(jira.api_requests())
    report = run()
    assert [t["ticket"] for t in report["tickets_in_environment"]] == ["PAY-4"]
    assert report["tickets_in_environment"][0]["fix_versions"] == ["2.0"]
    bulk = [r.body["issueIdsOrKeys"] for r in jira.api_requests()[before:]
            if r.path.endswith("bulkfetch")]
    assert bulk == [["PAY-9"], ["PAY-4"]]

    jira.fail_next(500, {"errorMessages": ["boom"]}, times=10)
    before = len(jira.api_requests())
    report = run()
    assert report["sources"]["jira"] is False
    assert report["tickets_in_environment"][0]["fix_versions"] is None
    assert all(r.path.endswith("bulkfetch") for r in jira.api_requests()[before:])


def _patient_world(world: World, jira: FakeJira, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the world's GitOps repository (to take away) and a config reading it whose
    requests wait 300 s for an answer, never retried; Jira has PAY-4."""
    jira.add("PAY-4", "2.0")
    gitops = tmp_path / "gitops"
    shutil.copytree(world.root / "gitops", gitops)
    config = tmp_path / "devex.toml"
    config.write_text(world.config.read_text().replace(
        'repo = "gitops"', f'repo = "{gitops}"').replace(
        'repo = "pay"', f'repo = "{world.root / "pay"}"').replace(
        "timeout = 5", "timeout = 300").replace("retries = 3", "retries = 0"))
    return gitops, config


def test_a_collection_that_fails_does_not_wait_for_jira_asked_ahead(
        devex: Devex, world: World, jira: FakeJira, tmp_path: Path) -> None:
    """A collection that fails before its figures (the GitOps repository gone) exits at once,
    although the tickets it began asking ahead are still on their way (a Jira that takes
    minutes to answer): the look-up is a help, never a wait."""
    import threading
    import time

    gitops, config = _patient_world(world, jira, tmp_path)
    first = devex("collect", "--format", "json", config=str(config), env=jira.env())
    assert first.code == 0, first.err  # (it keeps the waiting tickets to ask ahead next time)
    jira.latency = 600.0
    gitops.rename(tmp_path / "gone")
    started = time.monotonic()
    failed = devex("collect", "--format", "json", config=str(config), env=jira.env())
    assert failed.code == 2 and "does not exist" in failed.err, failed.err
    assert time.monotonic() - started < 60  # not the 300 s a request may take
    assert any(t.name == "devex-jira-ahead" and t.is_alive() for t in threading.enumerate())


def test_a_failing_collection_process_exits_while_its_tickets_asked_ahead_are_in_a_batch(
        devex: Devex, world: World, jira: FakeJira, tmp_path: Path) -> None:
    """The process of a collection that fails exits at once also when the look-up begun ahead
    has got as far as its batches (each one asked on a helper thread of the look-up's): the
    helpers of a help are not waited for on the way out either."""
    import sys
    import threading
    import time

    gitops, config = _patient_world(world, jira, tmp_path)
    first = devex("collect", "--format", "json", config=str(config), env=jira.env())
    assert first.code == 0, first.err
    asked, release = tmp_path / "asked", threading.Event()
    bulkfetch = jira._routes[("POST", "/rest/api/3/issue/bulkfetch")]

    def held(request: Any) -> Any:
        """The tickets' batch, answered only after minutes."""
        asked.touch()
        release.wait(600)
        return bulkfetch(request)

    jira.route("POST", "/rest/api/3/issue/bulkfetch", held)
    gitops.rename(tmp_path / "gone")
    # the GitOps repository is found gone once the look-up ahead is waiting for its batch
    script = (
        "import pathlib, time\n"
        "import devex_cli.collect as collect\n"
        "from devex_cli.cli import main\n"
        "opened = collect.gitops.open_repository\n"
        "def late(*args, **kwargs):\n"
        "    deadline = time.monotonic() + 30\n"
        f"    while not pathlib.Path({str(asked)!r}).exists() and time.monotonic() < deadline:\n"
        "        time.sleep(0.05)\n"
        "    return opened(*args, **kwargs)\n"
        "collect.gitops.open_repository = late\n"
        f"main(['--config', {str(config)!r}, 'collect', '--format', 'json'])\n")
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              env={**os.environ, **jira.env()}, timeout=90, check=False)
    finally:
        release.set()
    assert asked.exists()
    assert done.returncode == 2 and "does not exist" in done.stderr, done.stderr
    assert time.monotonic() - started < 45  # not the 300 s the batch's request may take


def test_failing_jira_degrades_and_does_not_abort(devex: Devex, world: World,
                                                  jira: FakeJira) -> None:
    jira.fail_next(500, {"errorMessages": ["boom"]}, times=10)
    result = devex("collect", "--format", "json", "--since", "2026-09-01", "--until",
                   "2026-11-01", config=str(world.config), env=jira.env())
    assert result.code == 0
    report = json.loads(result.out)
    assert report["sources"]["jira"] is False
    assert report["tickets_in_environment"][0]["fix_versions"] is None
    assert "fix versions" in result.err
    # the table says Jira did not answer, not "set JIRA_URL" (it is set)
    jira.fail_next(500, {"errorMessages": ["boom"]}, times=10)
    table = devex("collect", "--since", "2026-09-01", "--until", "2026-11-01",
                  config=str(world.config), env=jira.env())
    assert table.code == 0
    assert "which did not answer this time" in table.out and "set JIRA_URL" not in table.out


def test_table_answers_the_four_questions(devex: Devex, world: World) -> None:
    result = devex("collect", "--offline", "--since", "2026-09-01", "--until", "2026-11-01",
                   config=str(world.config))
    assert result.code == 0, result.err
    for heading in ("1. Deployments this month", "2. Lead time from commit to prod",
                    "3. Tickets in qa and not yet in prod (1)", "4. Bottlenecks",
                    "DORA figures in prod"):
        assert heading in result.out
    assert "PAY-4" in result.out and "2d 14h" in result.out  # the median lead time
    assert "GitOps history only" not in result.out  # the app repository judged its rollbacks


@pytest.mark.skipif(shutil.which("promtool") is None and os.environ.get("CI") != "true",
                    reason="needs promtool (Debian prometheus); .ci/run installs it")
def test_prometheus_output_passes_promtool(devex: Devex, world: World, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    with_redeployments(monkeypatch, world, ("roll back prod",
                                            datetime.now(UTC) - timedelta(days=1)))
    out = tmp_path / "devex.prom"
    result = devex("collect", "--offline", "--format", "prometheus", "--output", str(out),
                   config=str(world.config))
    assert result.code == 0, result.err
    text = out.read_text()
    for name in ("deployment_desired_state", "deployment_lead_time_seconds",
                 "deployment_age_seconds", "ticket_in_environment", "dora_change_failure_ratio",
                 "devex_source_up"):
        assert f"# TYPE {name} gauge" in text
    for window in ("7d", "30d", "90d"):  # the rebuild a day ago
        assert (f'dora_redeployments{{environment="prod",service="pay",window="{window}"}} 1.0'
                in text)
    assert f'deployment_desired_state{{environment="prod",revision="{world.m1}"' in text \
        or f'revision="{world.m1}"' in text
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                          text=True, check=False)
    assert lint.returncode == 0 and lint.stdout.strip() == "" and lint.stderr.strip() == "", \
        lint.stdout + lint.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("--since", "yesterday"), "neither a date nor a duration"),
    (("--since", "2026-11-02", "--until", "2026-11-01"), "is not before"),
    (("--format", "xml"), "--format must be table, json or prometheus"),
    (("--serve", "--listen", "nowhere"), "is not HOST:PORT"),
    (("--interval", "soon"), "is not a duration"),
])
def test_bad_options(devex: Devex, world: World, args: tuple[str, ...], message: str) -> None:
    result = devex("collect", "--offline", *args, config=str(world.config))
    assert result.code == 2 and message in result.err


def test_demo_answers_the_four_questions(devex: Devex) -> None:
    result = devex("demo")
    assert result.code == 0, result.err
    assert "Sample organisation in a temporary folder, removed at the end" in result.out
    assert "preprod -> prod" in result.out  # payments' fortnightly change board
    assert "checkout" in result.out and "3h 00m" in result.out  # its production rollback
    # How many production deployments fall in the last 30 days depends on the time of day the
    # demo is built, so the failure rate is checked by its parts.
    report = json.loads(devex("demo", "--format", "json").out)
    checkout = next(s for s in report["services"] if s["service"] == "checkout")
    prod = next(e for e in checkout["environments"] if e["environment"] == "prod")
    assert prod["failed_deployments"] == 1 and prod["rollbacks"] == 1
    assert prod["change_failure_rate"] == 1 / prod["deployments"]
    assert prod["recovery_time_seconds"] == {"median": 3 * 3600.0, "count": 1}


def test_demo_json_keeps_the_organisation(devex: Devex, tmp_path: Path) -> None:
    result = devex("demo", "--format", "json", "--keep", str(tmp_path / "org"))
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert {s["service"] for s in report["services"]} == {"payments", "checkout", "catalog",
                                                          "notifications"}
    assert (tmp_path / "org" / "gitops" / ".git").is_dir()
    assert any(d["rollback"] for d in report["deployments"])


def test_incidents_from_jira_mark_production_deployments_failed(devex: Devex, world: World,
                                                                jira: FakeJira,
                                                                tmp_path: Path) -> None:
    incident = jira.add("OPS-7", issue_type="Incident")
    incident.components = ["pay"]
    incident.created = "2026-09-06T15:00:00.000+0000"
    other = jira.add("OPS-8", issue_type="Incident")
    other.components = ["web"]
    config = _incident_config(world, tmp_path)
    result = devex("collect", "--format", "json", "--since", "2026-09-01", "--until",
                   "2026-11-01", config=str(config), env=jira.env())
    assert result.code == 0, result.err
    report = json.loads(result.out)
    prod = [d for d in report["deployments"] if d["environment"] == "prod"]
    assert [d["failed"] for d in prod] == [False, True, True, False]  # m1 on 09-06, then c4
    figures = next(e for e in report["services"][0]["environments"] if e["environment"] == "prod")
    assert figures["change_failure_rate"] == 0.5
    assert report["data_quality"]["failure_signals"] == {
        "pay": ["gitops", "ancestry", "incidents"]}


@pytest.fixture
def jira_clients(monkeypatch: pytest.MonkeyPatch) -> tuple[list[object], list[object]]:
    """The Jira clients a run opens and those it closes, in order."""
    from devex_cli.sources.jira import JiraClient

    opened: list[object] = []
    closed: list[object] = []
    made, close = JiraClient.__init__, JiraClient.close

    def counting_init(self: JiraClient, *args: object, **kwargs: object) -> None:
        made(self, *args, **kwargs)  # type: ignore[arg-type]
        opened.append(self)

    def counting_close(self: JiraClient) -> None:
        closed.append(self)
        close(self)

    monkeypatch.setattr(JiraClient, "__init__", counting_init)
    monkeypatch.setattr(JiraClient, "close", counting_close)
    return opened, closed


def _with_incidents(world: World, jira: FakeJira, tmp_path: Path) -> Path:
    jira.add("PAY-4", "2.0", status="Done")
    jira.add("OPS-7", issue_type="Incident").components = ["pay"]
    return _incident_config(world, tmp_path)


def _incident_config(world: World, tmp_path: Path) -> Path:
    """The world's configuration with absolute repositories and an incident query."""
    config = tmp_path / "devex.toml"
    config.write_text(world.config.read_text().replace('repo = "gitops"',
                                                       f'repo = "{world.root / "gitops"}"')
                      .replace('repo = "pay"', f'repo = "{world.root / "pay"}"')
                      .replace('projects = ["PAY"]',
                               'projects = ["PAY"]\nincident_jql = "project = OPS"'))
    return config


def test_incidents_and_tickets_are_asked_through_one_jira_client(
        devex: Devex, world: World, jira: FakeJira, tmp_path: Path,
        jira_clients: tuple[list[object], list[object]]) -> None:
    """The incident search and the tickets' look-up share one ticket source: opened once,
    closed once."""
    opened, closed = jira_clients
    config = _with_incidents(world, jira, tmp_path)
    result = devex("collect", "--format", "json", "--since", "2026-09-01", "--until",
                   "2026-11-01", config=str(config), env=jira.env())
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["sources"]["jira"] is True
    assert report["tickets_in_environment"][0]["fix_versions"] == ["2.0"]
    assert any("search" in r.path for r in jira.api_requests())
    assert len(opened) == 1 and closed == opened


def test_the_jira_client_is_closed_when_the_figures_fail(
        devex: Devex, world: World, jira: FakeJira, tmp_path: Path,
        jira_clients: tuple[list[object], list[object]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A collection that fails between the incident search and the look-up still closes the
    client it opened (under --serve, one leaked client a cycle)."""
    import devex_cli.collect

    def failing(*args: object, **kwargs: object) -> None:
        raise RuntimeError("figures failed")

    monkeypatch.setattr(devex_cli.collect, "build_snapshot", failing)
    opened, closed = jira_clients
    config = _with_incidents(world, jira, tmp_path)
    result = devex("collect", "--format", "json", config=str(config), env=jira.env())
    assert result.code == 70, result.err
    assert any("search" in r.path for r in jira.api_requests())
    assert len(opened) == 1 and closed == opened


def test_the_figures_failure_is_the_one_told_while_jira_answers_beside_them(
        devex: Devex, world: World, jira: FakeJira, tmp_path: Path,
        jira_clients: tuple[list[object], list[object]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Jira is asked while the snapshot is computed: when both fail, the error told is the
    snapshot's (the look-up's is not raised over it), and the client is closed once the look-up
    is done."""
    import time

    import devex_cli.collect
    from devex_cli.tickets_ahead import TicketsAhead

    def failing(*args: object, **kwargs: object) -> None:
        raise RuntimeError("figures failed")

    def slow_and_broken(*args: object, **kwargs: object) -> None:
        time.sleep(0.2)
        raise KeyError("look-up broke")

    monkeypatch.setattr(devex_cli.collect, "build_snapshot", failing)
    monkeypatch.setattr(TicketsAhead, "look_up", slow_and_broken)
    opened, closed = jira_clients
    config = _with_incidents(world, jira, tmp_path)
    result = devex("collect", "--format", "json", config=str(config), env=jira.env())
    assert result.code == 70, result.err
    assert "figures failed" in result.err and "look-up broke" not in result.err
    assert len(opened) == 1 and closed == opened


def prod_history(gitops: GitRepo, deployments: list[tuple[str, str]]) -> None:
    for when, tag in deployments:
        gitops.commit(f"prod {tag}", {overlay("pay", "prod"): kustomization([image("pay", tag)])},
                      when=at(when))


def test_rollbacks_from_the_gitops_history_without_an_app_repository(devex: Devex,
                                                                     tmp_path: Path) -> None:
    """Tags put back by hand: A, B, A, B, C. The second A is a rollback (B failed), the
    second B is not a second one."""
    gitops = GitRepo(tmp_path / "gitops")
    prod_history(gitops, [("2026-09-01T12:00", "aaaaaaa"), ("2026-09-02T12:00", "bbbbbbb"),
                          ("2026-09-02T15:00", "aaaaaaa"), ("2026-09-03T12:00", "bbbbbbb"),
                          ("2026-09-04T12:00", "ccccccc")])
    result = devex("collect", "--offline", "--format", "json", "--gitops", str(gitops.path),
                   "--since", "2026-09-01", "--until", "2026-10-01")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert [(d["revision"], d["rollback"], d["failed"]) for d in report["deployments"]] == [
        ("aaaaaaa", False, False), ("bbbbbbb", False, True), ("aaaaaaa", True, False),
        ("bbbbbbb", False, False), ("ccccccc", False, False)]
    (prod,) = report["services"][0]["environments"]
    assert prod["rollbacks"] == 1 and prod["failed_deployments"] == 1
    assert prod["change_failure_rate"] == 0.2  # 1 of 5
    assert prod["recovery_time_seconds"] == {"median": 3 * 3600.0, "count": 1}  # 12:00 -> 15:00
    assert report["data_quality"]["failure_signals"] == {"pay": ["gitops"]}  # git alone
    table = devex("collect", "--offline", "--gitops", str(gitops.path), "--since", "2026-09-01",
                  "--until", "2026-10-01")
    assert table.code == 0, table.err
    assert "20% ^" in table.out and "^ failures from GitOps history only" in table.out


def test_ancestry_decides_rollbacks_with_the_app_repository(devex: Devex, tmp_path: Path) -> None:
    """A, B, A where B is A's parent: deploying B is the rollback (a proper ancestor of A), and
    A again is a roll-forward, though the GitOps history alone would say the opposite."""
    app = GitRepo(tmp_path / "pay")
    b = app.commit("PAY-1 older", {"a": "1"}, when=at("2026-08-30T09:00"))
    a = app.commit("PAY-2 newer", {"a": "2"}, when=at("2026-08-31T09:00"))
    gitops = GitRepo(tmp_path / "gitops")
    prod_history(gitops, [("2026-09-01T12:00", a[:7]), ("2026-09-01T13:00", b[:7]),
                          ("2026-09-01T16:00", a[:7])])
    config = tmp_path / "devex.toml"
    config.write_text(f'[gitops]\nrepo = "{gitops.path}"\n\n[services.pay]\nrepo = "{app.path}"\n')
    result = devex("collect", "--offline", "--format", "json", "--since", "2026-09-01",
                   "--until", "2026-10-01", config=str(config))
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert [(d["revision"], d["rollback"], d["failed"]) for d in report["deployments"]] == [
        (a, False, True), (b, True, False), (a, False, False)]
    (prod,) = report["services"][0]["environments"]
    assert prod["change_failure_rate"] == pytest.approx(1 / 3)
    assert prod["recovery_time_seconds"] == {"median": 3600.0, "count": 1}


def test_an_offline_collection_loads_no_http_stack(world: World) -> None:
    """--offline asks nothing over HTTP, so it pays nothing for httpx and stamina's imports."""
    import subprocess
    import sys

    code = ("import sys\nfrom devex_cli.cli import main\n"
            f"sys.argv = ['devex', '--config', {str(world.config)!r}, 'collect', '--offline',"
            " '--format', 'json', '--output', '/dev/null']\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
            "print(sorted(m for m in ('httpx', 'stamina', 'httpcore') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
