"""`devex gate qa-release` end to end: real git repositories, the loopback Jira, the CLI."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.fakes.jira import FakeJira
from tests.gitworld import GitRepo, overlay
from tests.worlds import GateWorld as World
from tests.worlds import gate_world

Devex = Callable[..., Result]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return gate_world(tmp_path)


def gate(devex: Devex, world: World, jira: FakeJira | None, *args: str,
         env: dict[str, str] | None = None) -> Result:
    return devex("gate", "qa-release", "--service", "pay", "--gitops", str(world.gitops.path),
                 "--repo", str(world.app.path), *args,
                 env={**(jira.env() if jira else {}), **(env or {})})


def test_blocks_tickets_without_fix_version(devex: Devex, world: World, jira: FakeJira) -> None:
    world.app.commit("[PROJ-2] Add login form", {"login.py": "x\n"})
    world.app.commit("PROJ-3: fix logout\n\nRefs PROJ-2", {"logout.py": "y\n"})
    jira.add("PROJ-2", summary="Login form", status="In Review")
    jira.add("PROJ-3", "1.4.0", summary="Logout")
    result = gate(devex, world, jira)
    assert result.code == 1, result.err
    assert "QA DEPLOYMENT BLOCKED" in result.out
    assert "The following 1 ticket(s) are missing Release Version/s:" in result.out
    assert f"{jira.url}/browse/PROJ-2" in result.out
    assert "PROJ-3" not in result.out.split("missing Release Version/s:")[1]
    assert "ACTION REQUIRED" in result.out
    assert "PROJ-1" not in result.out  # deployed already, before the range


def test_allows_when_every_ticket_has_a_fix_version(
    devex: Devex, world: World, jira: FakeJira
) -> None:
    world.app.commit("[PROJ-2] Add login form", {"login.py": "x\n"})
    jira.add("PROJ-2", "1.4.0", "1.4.1", status="Done")
    result = gate(devex, world, jira)
    assert result.code == 0, result.err
    assert "allowed" in result.out
    assert "PROJ-2" in result.out and "1.4.0, 1.4.1" in result.out
    # the tickets, and (side by side) which of their projects exist
    assert sorted(r.path for r in jira.api_requests()) == [
        "/rest/api/3/issue/bulkfetch", "/rest/api/3/project/search"]


def test_json_output(devex: Devex, world: World, jira: FakeJira) -> None:
    merge_base = world.app.sha()
    world.app.checkout("feature", create=True)
    world.app.commit("work on it", {"f.py": "1\n"})
    world.app.checkout("main")
    world.app.merge("feature", "Merge pull request #9 from feature/PROJ-4 (PROJ-4)")
    jira.add("PROJ-4", summary="Via merge only")
    result = gate(devex, world, jira, "--format", "json")
    assert result.code == 1
    report = json.loads(result.out)
    assert report["decision"] == "blocked"
    assert report["deployed_revision"] == world.deployed == merge_base
    assert report["head"] == world.app.sha()
    assert report["commits"] == 2  # the merge and its side commit
    assert report["missing_fix_version"] == ["PROJ-4"]
    assert report["tickets"][0] == {"key": "PROJ-4", "fix_versions": [], "status": "In Progress",
                                    "summary": "Via merge only",
                                    "url": f"{jira.url}/browse/PROJ-4", "moved_to": None}
    assert report["unknown"] == []


def test_ticket_like_words_warn_and_never_block(
    devex: Devex, world: World, jira: FakeJira
) -> None:
    world.app.commit("PROJ-5 read files as UTF-8, hash with SHA-256", {"x.py": "x\n"})
    jira.add("PROJ-5", "2.0")
    result = gate(devex, world, jira, "--format", "json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["unknown"] == ["UTF-8", "SHA-256"]
    assert "UTF-8" in result.err and "warning" in result.err


def test_data_center_unknown_keys(devex: Devex, world: World, jira_dc: FakeJira) -> None:
    world.app.commit("PROJ-5 read files as UTF-8", {"x.py": "x\n"})
    jira_dc.add("PROJ-5")
    result = gate(devex, world, jira_dc, "--format", "json")
    assert result.code == 1, result.err
    assert json.loads(result.out)["unknown"] == ["UTF-8"]


def test_hundreds_of_tickets_are_batched(devex: Devex, world: World, jira: FakeJira) -> None:
    for n in range(2, 302):
        jira.add(f"PROJ-{n}", "3.0")
    for start in range(2, 302, 50):
        world.app.commit("\n".join(f"PROJ-{n} change" for n in range(start, start + 50)))
    result = gate(devex, world, jira, "--format", "json")
    assert result.code == 0, result.err
    assert len(json.loads(result.out)["tickets"]) == 300
    assert sorted(r.path for r in jira.api_requests()) == [
        "/rest/api/3/issue/bulkfetch"] * 3 + ["/rest/api/3/project/search"]


@pytest.mark.parametrize("tag_form", ["short", "full", "semver", "prefixed"])
def test_tag_forms(devex: Devex, world: World, jira: FakeJira, tag_form: str) -> None:
    sha = world.app.commit("PROJ-6 deployed in this form")
    tag = {"short": sha[:7], "full": sha, "semver": f"1.4.2-{sha[:8]}",
           "prefixed": f"sha-{sha[:10]}"}[tag_form]
    world.deploy(tag, extra=[{"name": "docker.io/library/redis", "newTag": "7.2"}])
    world.app.commit("PROJ-7 next")
    jira.add("PROJ-7", "1.0")
    result = gate(devex, world, jira, "--format", "json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["deployed_revision"] == sha
    assert [t["key"] for t in report["tickets"]] == ["PROJ-7"]


def test_no_new_commits_is_allowed_without_asking_jira(
    devex: Devex, world: World, jira: FakeJira
) -> None:
    result = gate(devex, world, jira)
    assert result.code == 0
    assert "0 commit(s)" in result.out
    assert jira.api_requests() == []


def test_first_deployment_to_the_environment(devex: Devex, world: World, jira: FakeJira) -> None:
    world.deploy("0.9.0", environment="preprod", service="other")  # preprod exists
    result = gate(devex, world, jira, "--environment", "preprod", "--format", "json")
    assert result.code == 0
    report = json.loads(result.out)
    assert report["deployed_revision"] is None and report["decision"] == "allowed"
    assert "never been deployed to preprod" in result.err


def test_unknown_service(devex: Devex, world: World, jira: FakeJira) -> None:
    result = devex("gate", "qa-release", "--service", "nope", "--gitops", str(world.gitops.path),
                   "--repo", str(world.app.path), env=jira.env())
    assert result.code == 2
    assert "unknown service 'nope'" in result.err and "pay" in result.err


def test_service_from_bitbucket_variables(devex: Devex, world: World, jira: FakeJira) -> None:
    head = world.app.commit("PROJ-8 one", {"a": "1"})
    world.app.commit("PROJ-9 two", {"b": "2"})
    jira.add("PROJ-8", "1.0")
    jira.add("PROJ-9")
    result = devex("gate", "qa-release", "--format", "json", cwd=world.app.path,
                   env={**jira.env(), "BITBUCKET_REPO_SLUG": "pay", "BITBUCKET_COMMIT": head,
                        "DEVEX_GITOPS_REPO": str(world.gitops.path)})
    assert result.code == 0, result.err
    assert json.loads(result.out)["head"] == head


def test_version_only_tag_in_qa(devex: Devex, world: World, jira: FakeJira) -> None:
    world.deploy("latest")
    result = gate(devex, world, jira)
    assert result.code == 2
    assert "'latest', which names no commit" in result.err


def test_broken_manifest_at_head_is_an_input_error(
    devex: Devex, world: World, jira: FakeJira
) -> None:
    world.gitops.commit("oops", {overlay("pay", "qa"): "images:\n  - name: [\n"})
    result = gate(devex, world, jira)
    assert result.code == 2
    assert "cannot be read" in result.err and overlay("pay", "qa") in result.err


def test_gitops_as_a_git_url(devex: Devex, world: World, jira: FakeJira) -> None:
    world.app.commit("PROJ-2 x", {"x": "1"})
    jira.add("PROJ-2", "1.0")
    url = f"file://{world.gitops.path}"
    assert gate(devex, world, jira, "--gitops", url).code == 0
    later = world.app.commit("PROJ-3 y", {"y": "1"})
    world.deploy(later[:7])  # the cached clone must be updated, not reused as it was
    result = gate(devex, world, jira, "--gitops", url, "--format", "json")
    assert json.loads(result.out)["deployed_revision"] == later


def test_unreachable_git_remote(devex: Devex, world: World, jira: FakeJira, tmp_path: Path) -> None:
    result = gate(devex, world, jira, "--gitops", f"file://{tmp_path}/missing.git")
    assert result.code == 3
    assert "cannot fetch" in result.err


def shallow_clone(source: GitRepo, target: Path, depth: int) -> Path:
    subprocess.run(["git", "clone", "-q", "--depth", str(depth), f"file://{source.path}",
                    str(target)], check=True)
    return target


def test_shallow_clone_is_deepened(devex: Devex, world: World, jira: FakeJira,
                                   tmp_path: Path) -> None:
    for n in range(2, 62):
        world.app.commit(f"PROJ-{n} change {n}")
        jira.add(f"PROJ-{n}", "5.0")
    clone = shallow_clone(world.app, tmp_path / "clone", 50)
    result = devex("gate", "qa-release", "--service", "pay", "--gitops", str(world.gitops.path),
                   "--repo", str(clone), "--format", "json", env=jira.env())
    assert result.code == 0, result.err
    assert json.loads(result.out)["commits"] == 60
    assert "shallow" in result.err


def test_rewritten_history(devex: Devex, world: World, jira: FakeJira, tmp_path: Path) -> None:
    world.app.git("reset", "-q", "--hard", "HEAD~1")
    world.app.commit("PROJ-1 first feature, amended", {"app.py": "print('v2b')\n"})
    world.app.git("reflog", "expire", "--expire=now", "--all")
    world.app.git("gc", "-q", "--prune=now")
    result = gate(devex, world, jira)
    assert result.code == 2
    assert f"revision {world.deployed[:7]} is not in" in result.err

    world.app.git("checkout", "-q", "-b", "old", world.app.sha("HEAD~1"))
    orphan = world.app.commit("elsewhere")
    world.app.checkout("main")
    world.deploy(orphan[:7])
    result = gate(devex, world, jira)
    assert result.code == 2
    assert "not an ancestor" in result.err and "rewritten" in result.err


@pytest.mark.parametrize(("status", "body", "expected"), [
    (401, {"errorMessages": ["You are not authenticated."]}, "401"),
    (500, {"errorMessages": ["Internal server error"]}, "500"),
    (200, b"<html>Atlassian login</html>", "not JSON"),
    (200, {"values": []}, "unexpected shape"),
])
def test_jira_failures_exit_3(devex: Devex, world: World, jira: FakeJira, status: int,
                              body: object, expected: str) -> None:
    world.app.commit("PROJ-2 x", {"x": "1"})
    jira.fail_next(status, body, times=10)  # type: ignore[arg-type]
    result = gate(devex, world, jira)
    assert result.code == 3
    assert expected in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert "Traceback" not in result.err and jira.token not in result.err


def test_jira_429_then_success(devex: Devex, world: World, jira: FakeJira) -> None:
    world.app.commit("PROJ-2 x", {"x": "1"})
    jira.add("PROJ-2", "1.0")
    jira.fail_next(429, {"errorMessages": ["Rate limit exceeded."]}, {"Retry-After": "1"})
    assert gate(devex, world, jira).code == 0


def test_jira_down(devex: Devex, world: World, tmp_path: Path) -> None:
    world.app.commit("PROJ-2 x", {"x": "1"})
    dead = {"JIRA_URL": "http://127.0.0.1:9", "JIRA_EMAIL": "a@b.c", "JIRA_API_TOKEN": "tok-123456"}
    result = gate(devex, world, None, env=dead)
    assert result.code == 3 and "cannot reach" in result.err
    opened = gate(devex, world, None, "--fail-open", env=dead)
    assert opened.code == 0
    assert "FAIL-OPEN" in opened.err and "WITHOUT checking" in opened.err


def test_jira_not_configured(devex: Devex, world: World) -> None:
    world.app.commit("PROJ-2 x", {"x": "1"})
    result = gate(devex, world, None)
    assert result.code == 2 and "JIRA_URL" in result.err


def test_project_filter(devex: Devex, world: World, jira: FakeJira) -> None:
    world.app.commit("PROJ-2 and OTHER-3", {"x": "1"})
    jira.add("PROJ-2", "1.0")
    result = gate(devex, world, jira, "--project", "PROJ", "--format", "json")
    assert [t["key"] for t in json.loads(result.out)["tickets"]] == ["PROJ-2"]
    assert json.loads(result.out)["unknown"] == []


def test_partial_jira_answer_is_never_a_pass(devex: Devex, world: World, jira: FakeJira) -> None:
    """bulkfetch lists keys it could not return under issueErrors: not unknown, not allowed."""
    world.app.commit("PROJ-2 x", {"x": "1"})
    jira.add("PROJ-2")
    jira.fail_next(200, {"issues": [], "issueErrors": [
        {"id": "PROJ-2", "errorMessages": ["Retry later"], "status": 503}]}, times=10)
    result = gate(devex, world, jira, "--format", "json")
    assert result.code == 3 and "issueErrors" in result.err
    assert result.out == ""


# -- Doubt never allows (issue 15): only --fail-open lets a release through unchecked ---------

BULK = "/rest/api/3/issue/bulkfetch"


def test_a_hidden_or_missing_ticket_blocks(devex: Devex, world: World, jira: FakeJira) -> None:
    world.app.commit("PROJ-2 secret work, PROJ-3 typo'd key", {"s.py": "s\n"})
    jira.add("PROJ-2", "1.0")
    jira.hidden.add("PROJ-2")  # exists, but this account may not see it (issue security)
    jira.projects.add("PROJ")  # PROJ-3 does not exist at all; project PROJ does
    result = gate(devex, world, jira, "--format", "json")
    assert result.code == 1, result.err
    report = json.loads(result.out)
    assert report["decision"] == "blocked"
    assert report["not_found"] == ["PROJ-2", "PROJ-3"] and report["unknown"] == []
    text = gate(devex, world, jira)
    assert text.code == 1
    assert "2 ticket(s) were not found in Jira or are not visible to this account" in text.out
    assert f"{jira.url}/browse/PROJ-3" in text.out


def test_an_empty_answer_is_not_a_pass(devex: Devex, world: World, jira: FakeJira) -> None:
    world.app.commit("PROJ-2 work", {"w.py": "w\n"})
    jira.projects.add("PROJ")
    jira.fail_next(200, {"issues": [], "issueErrors": []}, path=BULK)
    result = gate(devex, world, jira, "--format", "json")
    assert result.code == 1, result.err
    assert json.loads(result.out)["not_found"] == ["PROJ-2"]


def test_an_empty_batch_answer_is_checked_one_by_one(
    devex: Devex, world: World, jira: FakeJira
) -> None:
    world.app.commit("PROJ-2 work", {"w.py": "w\n"})
    jira.add("PROJ-2", summary="No version yet")
    jira.fail_next(200, {"issues": [], "issueErrors": []}, path=BULK)
    result = gate(devex, world, jira, "--format", "json")
    assert result.code == 1, result.err
    assert json.loads(result.out)["missing_fix_version"] == ["PROJ-2"]


def test_data_center_400_naming_every_key_blocks(
    devex: Devex, world: World, jira_dc: FakeJira
) -> None:
    world.app.commit("PROJ-2 and PROJ-3", {"w.py": "w\n"})
    jira_dc.add("PROJ-2", "1.0")
    jira_dc.add("PROJ-3", "1.0")
    jira_dc.hidden.update({"PROJ-2", "PROJ-3"})
    jira_dc.projects.add("PROJ")
    # Data Center says "does not exist" for issues the caller may not see.
    jira_dc.fail_next(400, {"errorMessages": [
        "An issue with key 'PROJ-2' does not exist for field 'key'.",
        "An issue with key 'PROJ-3' does not exist for field 'key'."], "errors": {}},
        path="/rest/api/2/search")
    result = gate(devex, world, jira_dc, "--format", "json")
    assert result.code == 1, result.err
    assert json.loads(result.out)["not_found"] == ["PROJ-2", "PROJ-3"]


def test_data_center_permission_warning_is_exit_3(
    devex: Devex, world: World, jira_dc: FakeJira
) -> None:
    world.app.commit("PROJ-2 work", {"w.py": "w\n"})
    jira_dc.add("PROJ-2", "1.0")
    jira_dc.fail_next(200, {"startAt": 0, "maxResults": 50, "total": 0, "issues": [],
                            "warningMessages": [jira_dc.anonymous_warning]},
                      path="/rest/api/2/search")
    result = gate(devex, world, jira_dc)
    assert result.code == 3, result.err
    assert "cannot be viewed by anonymous users" in result.err and "permission" in result.err
    assert "Traceback" not in result.err


def test_an_account_that_sees_nothing_is_exit_3(
    devex: Devex, world: World, jira_dc: FakeJira
) -> None:
    """Data Center with anonymous access, and a token it does not take (a proxy that drops
    the header): 200 everywhere, nothing visible."""
    world.app.commit("PROJ-2 work", {"w.py": "w\n"})
    jira_dc.add("PROJ-2", "1.0")
    jira_dc.anonymous = True
    result = gate(devex, world, jira_dc, env={"JIRA_API_TOKEN": "not-the-token"})
    assert result.code == 3, result.err
    # (the project list and the search are asked side by side: either says it first)
    assert "can see no Jira project" in result.err or "anonymous users" in result.err
    assert "not-the-token" not in result.err + result.out


def test_a_redirect_to_another_host_is_not_followed(
    devex: Devex, world: World, jira: FakeJira
) -> None:
    world.app.commit("PROJ-2 work", {"w.py": "w\n"})
    jira.add("PROJ-2")
    elsewhere = FakeJira().start()  # would answer an anonymous request with nothing
    try:
        elsewhere.fail_next(200, {"issues": [], "values": []}, times=10)
        jira.redirect_to = elsewhere.url
        result = gate(devex, world, jira)
        assert result.code == 3, result.err
        assert "another host" in result.err and elsewhere.url in result.err
        assert elsewhere.requests == []  # not even asked without credentials
    finally:
        elsewhere.stop()


def test_a_moved_ticket_counts_under_the_key_in_the_commit(
    devex: Devex, world: World, jira: FakeJira
) -> None:
    world.app.commit("OLD-2 started before the move", {"w.py": "w\n"})
    jira.add("OLD-2", summary="Moved work")
    jira.move("OLD-2", "NEW-5")
    jira.projects.add("OLD")  # the old project still exists
    result = gate(devex, world, jira)
    assert result.code == 1, result.err
    assert "OLD-2 (now NEW-5)" in result.out and f"{jira.url}/browse/NEW-5" in result.out
    jira.issues["NEW-5"].fix_versions = ["2.1"]
    allowed = gate(devex, world, jira, "--format", "json")
    assert allowed.code == 0, allowed.err
    ticket = json.loads(allowed.out)["tickets"][0]
    assert (ticket["key"], ticket["moved_to"], ticket["fix_versions"]) == ("OLD-2", "NEW-5",
                                                                         ["2.1"])
    assert "OLD-2 is now NEW-5" in allowed.err


def test_configured_projects_are_taken_without_asking(
    devex: Devex, world: World, jira: FakeJira
) -> None:
    world.app.commit("PROJ-2 and OTHER-1", {"w.py": "w\n"})
    result = gate(devex, world, jira, "--project", "PROJ", "--format", "json")
    assert result.code == 1, result.err  # PROJ-2 does not exist: a configured project's key
    assert json.loads(result.out)["not_found"] == ["PROJ-2"]
    assert "/rest/api/3/project/search" not in [r.path for r in jira.api_requests()]


def test_no_credentials_is_exit_2_before_any_request(
    devex: Devex, world: World, jira: FakeJira
) -> None:
    world.app.commit("PROJ-2 work", {"w.py": "w\n"})
    jira.add("PROJ-2", "1.0")
    result = devex("gate", "qa-release", "--service", "pay", "--gitops", str(world.gitops.path),
                   "--repo", str(world.app.path), env={"JIRA_URL": jira.url})
    assert result.code == 2, result.err
    assert "JIRA_API_TOKEN" in result.err and "Traceback" not in result.err
    assert jira.requests == []
    fail_open = devex("gate", "qa-release", "--service", "pay", "--gitops",
                      str(world.gitops.path), "--repo", str(world.app.path), "--fail-open",
                      env={"JIRA_URL": jira.url, "JIRA_EMAIL": "ci@example.com"})
    assert fail_open.code == 2 and jira.requests == []  # a misconfiguration is no doubt


@pytest.mark.parametrize("environment", ["QA", "qa ", "staging"])
def test_an_environment_the_repository_does_not_have_is_exit_2(
    devex: Devex, world: World, jira: FakeJira, environment: str
) -> None:
    world.app.commit("PROJ-2 work", {"w.py": "w\n"})
    jira.fail_next(503, times=20)  # Jira down too: the gate must not get that far
    result = gate(devex, world, jira, "--environment", environment)
    assert result.code == 2, result.err
    assert f"unknown environment {environment!r}" in result.err and "has qa" in result.err
    assert jira.requests == []


def test_fail_open_allows_doubt_and_says_so(devex: Devex, world: World, jira: FakeJira) -> None:
    world.app.commit("PROJ-2 and PROJ-3", {"w.py": "w\n"})
    jira.add("PROJ-2", "1.0")
    jira.projects.add("PROJ")  # PROJ-3 does not exist
    result = gate(devex, world, jira, "--fail-open")
    assert result.code == 0, result.err
    assert "FAIL-OPEN" in result.out and "FAIL-OPEN" in result.err and "PROJ-3" in result.err
    as_json = gate(devex, world, jira, "--fail-open", "--format", "json")
    report = json.loads(as_json.out)
    assert (report["decision"], report["fail_open"], report["not_found"]) == (
        "allowed", True, ["PROJ-3"])
    # A ticket without a fix version is no doubt: --fail-open still blocks it.
    jira.add("PROJ-3")
    assert gate(devex, world, jira, "--fail-open").code == 1


def test_a_broken_base_of_the_qa_manifest_is_exit_2(devex: Devex, world: World,
                                                    jira: FakeJira) -> None:
    """The qa overlay builds on the service's base: a base that does not parse at the head
    leaves the QA release unknown, which is an input error, not the last release read."""
    world.gitops.commit("base", {"apps/pay/base/kustomization.yaml": "resources: [\n"})
    world.app.commit("PROJ-2 work", {"w.py": "w\n"})
    result = gate(devex, world, jira)
    assert result.code == 2, result.err
    assert "apps/pay/base/kustomization.yaml cannot be read" in result.err
    # another service's broken base is not this gate's business
    world.gitops.commit("fixed, other broken", {
        "apps/pay/base/kustomization.yaml": "resources: []\n",
        "apps/web/base/kustomization.yaml": "resources: [\n",
        "apps/web/overlays/qa/kustomization.yaml": "resources: [../../base]\n"})
    jira.add("PROJ-2", "1.0")
    assert gate(devex, world, jira).code == 0
