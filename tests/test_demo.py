"""`devex demo`'s sample organisation: promotions in order, its own Jira, and the QA release gate
it ends with, working as printed."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devex_cli.demo import ISSUES_FILE, build_demo, explain_command, gate_command
from devex_cli.demo_jira import DemoJira
from tests.conftest import Result
from tests.test_demo_lifecycle import WAIT, devex_argv, until

Devex = Callable[..., Result]
ORDER = ("dev", "qa", "preprod", "prod")


@pytest.fixture(scope="module")
def organisation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "org"
    build_demo(root, end=datetime(2026, 11, 19, 12, 30, tzinfo=UTC),  # a Thursday, after qa
               work_in_progress=True)
    return root


def issues(root: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads((root / ISSUES_FILE).read_text())["issues"]
    return found


# --- the history ------------------------------------------------------------------------------


@pytest.mark.parametrize("end", [
    datetime(2026, 11, 19, 12, 30, tzinfo=UTC),  # Thursday, between qa and preprod
    datetime(2026, 11, 17, 22, 0, tzinfo=UTC),  # Tuesday night
    datetime(2026, 12, 1, 9, 0, tzinfo=UTC),  # the 1st, a Tuesday morning
])
def test_every_commit_goes_dev_qa_preprod_prod_in_that_order(devex: Devex, tmp_path: Path,
                                                             end: datetime) -> None:
    config = build_demo(tmp_path / "org", end=end, work_in_progress=True)
    result = devex("collect", "--offline", "--format", "json", "--since", "2026-08-01",
                   "--until", f"{end + timedelta(days=1):%Y-%m-%d}", config=str(config))
    assert result.code == 0, result.err
    first: dict[tuple[str, str], dict[str, str]] = {}  # (service, revision) -> env -> time
    for deployment in json.loads(result.out)["deployments"]:
        times = first.setdefault((deployment["service"], deployment["revision"]), {})
        times.setdefault(deployment["environment"], deployment["time"])
    assert len(first) > 100
    for (service, revision), times in first.items():
        reached = [times[env] for env in ORDER if env in times]
        assert reached == sorted(reached), (service, revision, times)
        # never a later stage without the earlier ones (the first deployments aside)
        stages = [env for env in ORDER if env in times]
        assert stages == list(ORDER[ORDER.index(stages[0]):][:len(stages)]), (service, times)


# --- its Jira ---------------------------------------------------------------------------------


def call(jira: DemoJira, method: str, path: str, body: object = None,
         auth: str | None = "right") -> tuple[int, Any]:
    import httpx

    secret = jira.token if auth == "right" else auth
    answer = httpx.request(method, jira.url + path, json=body, timeout=WAIT,
                           auth=None if secret is None else (jira.email, secret))
    try:
        return answer.status_code, answer.json()
    except ValueError:
        return answer.status_code, answer.text


@pytest.fixture
def jira(organisation: Path) -> Iterator[DemoJira]:
    with DemoJira(organisation / ISSUES_FILE) as server:
        yield server


def test_the_demo_jira_answers_as_jira_cloud(jira: DemoJira, organisation: Path) -> None:
    known = issues(organisation)
    key = known[0]["key"]
    assert call(jira, "GET", "/rest/api/3/field", auth=None)[0] == 401
    status, body = call(jira, "GET", "/rest/api/3/field", auth="wrong-token-123")
    assert status == 401 and "not authenticated" in body["errorMessages"][0]

    status, body = call(jira, "POST", "/rest/api/3/issue/bulkfetch",
                        {"issueIdsOrKeys": [key, "PAY-99999"], "fields": ["fixVersions"]})
    assert status == 200 and body["issueErrors"] == []
    (issue,) = body["issues"]  # an unknown key is left out, as Jira leaves it out
    assert issue["key"] == key and set(issue["fields"]) == {"fixVersions"}
    assert [v["name"] for v in issue["fields"]["fixVersions"]] == known[0]["fix_versions"]
    too_many = {"issueIdsOrKeys": [f"PAY-{n}" for n in range(1, 102)]}
    assert call(jira, "POST", "/rest/api/3/issue/bulkfetch", too_many)[0] == 400

    status, body = call(jira, "GET", "/rest/api/3/project/search?keys=PAY&keys=NOPE")
    assert status == 200 and [p["key"] for p in body["values"]] == ["PAY"]
    assert body["isLast"] is True and body["total"] == 1

    status, body = call(jira, "GET", f"/rest/api/3/issue/{key}?fields=summary,status")
    assert status == 200 and body["fields"]["summary"] == known[0]["summary"]
    assert body["fields"]["status"]["statusCategory"]["key"] in ("done", "indeterminate")
    assert call(jira, "GET", "/rest/api/3/issue/PAY-99999")[0] == 404
    assert call(jira, "GET", "/rest/api/3/search")[0] == 404  # nothing it was not made for

    status, page = call(jira, "GET", f"/browse/{key}", auth=None)  # where the gate links
    assert status == 200 and key in page and "Fix versions:" in page


def test_devex_reads_the_demo_jira_and_an_edit_of_its_file(organisation: Path,
                                                           tmp_path: Path) -> None:
    from devex_cli.config import load_settings
    from devex_cli.sources.jira import JiraClient

    copy = tmp_path / "issues.json"
    copy.write_text((organisation / ISSUES_FILE).read_text())
    pending = next(i for i in issues(organisation) if not i["fix_versions"])
    with DemoJira(copy) as jira:
        settings = load_settings(organisation / "devex.toml",
                                 environ={**jira.environ(), "XDG_CACHE_HOME": str(tmp_path)})
        with JiraClient(settings) as client:
            lookup = client.fetch_tickets([pending["key"], "UTF-8", "PAY-99999"],
                                          projects=["PAY", "CHK", "CAT", "NOT"])
            assert lookup.tickets[pending["key"]].fix_versions == ()
            assert lookup.not_tickets == ("UTF-8",) and lookup.not_found == ("PAY-99999",)
            line = json.dumps(pending)  # the file holds a ticket a line, as written
            assert line in copy.read_text()
            copy.write_text(copy.read_text().replace(
                line, json.dumps({**pending, "fix_versions": ["R 1"]})))
            again = client.fetch_tickets([pending["key"]], projects=["PAY", "CHK", "CAT", "NOT"])
            assert again.tickets[pending["key"]].fix_versions == ("R 1",)
            copy.write_text(copy.read_text()[:-20])  # half saved: what was read before stays
            third = client.fetch_tickets([pending["key"]], projects=["PAY", "CHK", "CAT", "NOT"])
            assert third.tickets[pending["key"]].fix_versions == ("R 1",)
        copy.unlink()  # gone: Jira answers it cannot, and says nothing on the terminal
        status, body = call(jira, "GET", "/rest/api/3/field")
        assert status == 503 and "cannot read its tickets" in body["errorMessages"][0]


def test_most_tickets_have_fix_versions_and_a_few_not_yet_released_do_not(
        organisation: Path) -> None:
    known = issues(organisation)
    released = [i for i in known if i["status"] == "Done"]
    pending = [i for i in known if i["status"] != "Done"]
    assert released and all(i["fix_versions"] for i in released)
    missing = [i for i in pending if not i["fix_versions"]]
    assert 0 < len(missing) < len(pending) / 2
    for status in ("In QA", "In Progress"):  # in the QA release, and newer work
        assert any(i["status"] == status and not i["fix_versions"] for i in pending), status


# --- the demo's answers -----------------------------------------------------------------------


def test_demo_answers_the_tickets_question_with_its_own_jira(devex: Devex) -> None:
    # A Jira, Argo CD and GitOps repository of the caller's own are not the demo's.
    outside = {"JIRA_URL": "http://127.0.0.1:9", "JIRA_EMAIL": "me@example.com",
               "JIRA_API_TOKEN": "my-own-token-1234", "ARGOCD_SERVER": "127.0.0.1:9",
               "DEVEX_GITOPS_REPO": "/nowhere"}
    result = devex("demo", "--format", "json", env=outside)
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["sources"].get("jira") is True and "argocd" not in report["sources"]
    in_qa = [t for t in report["tickets_in_environment"] if t["environment"] == "qa"]
    assert in_qa and all(t["fix_versions"] is not None for t in in_qa)
    without = [t for t in in_qa if t["fix_versions"] == []]
    assert 0 < len(without) < len(in_qa)
    assert {k: os.environ.get(k) for k in outside} == outside  # nothing leaked, nothing lost

    table = devex("demo").out
    tickets = table.split("3. Tickets in qa", 1)[1].split("4. Bottlenecks", 1)[0]
    assert "?" not in tickets and "*" in tickets and "* no fix version in Jira" in tickets


def test_demo_tables_end_with_the_gate_command_against_the_kept_organisation(
        devex: Devex, tmp_path: Path) -> None:
    keep = tmp_path / "org"
    result = devex("demo", "--keep", str(keep))
    assert result.code == 0, result.err
    lines = result.out.rstrip("\n").splitlines()
    program = f"{shlex.quote(sys.executable)} -m devex_cli"
    at = lines.index(f"  {gate_command(keep, program)}")
    *text, last = lines[: at + 1]
    assert f"--config {keep / 'devex.toml'} gate qa-release --service payments" in last
    # and last of all, the explain command
    assert lines[-1] == f"  {explain_command(keep, program)}"
    assert f"--config {keep / 'devex.toml'} explain lead-time --service payments" in lines[-1]
    prose = " ".join(text[-6:])
    assert f"demo --keep {keep} --serve" in prose and "blocks (exit 1)" in prose
    assert not (keep / "jira.env").exists()  # its Jira stopped with the command


def test_the_printed_gate_command_blocks_then_allows_with_demo_serve(tmp_path: Path) -> None:
    keep = tmp_path / "org"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    argv = devex_argv("demo", "--keep", str(keep), "--serve", "--listen", "127.0.0.1:0")
    with (tmp_path / "demo.err").open("wb") as stderr:
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
        try:
            assert until(lambda: "gate qa-release" in (tmp_path / "demo.err").read_text())
            said = (tmp_path / "demo.err").read_text()
            command = next(line.strip() for line in said.splitlines()
                           if "gate qa-release" in line)

            def gate() -> subprocess.CompletedProcess[str]:
                return subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                                      env=env, timeout=WAIT, check=False)

            blocked = gate()
            assert blocked.returncode == 1, blocked.stderr
            assert "QA DEPLOYMENT BLOCKED" in blocked.stdout
            # the release manager gives the tickets a fix version, in the demo's Jira
            issues_file = keep / ISSUES_FILE
            issues_file.write_text(issues_file.read_text().replace(
                '"fix_versions": []', '"fix_versions": ["Release 2026-12-09"]'))
            allowed = gate()
            assert allowed.returncode == 0, allowed.stdout + allowed.stderr
            assert "QA release gate: allowed" in allowed.stdout
            assert "Release 2026-12-09" in allowed.stdout
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=WAIT) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert not (keep / "jira.env").exists()  # its Jira is gone: so are its credentials
    assert (keep / "gitops" / ".git").is_dir()
    assert "Traceback" not in (tmp_path / "demo.err").read_text()
