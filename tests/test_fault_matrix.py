"""The fault matrix: every outside system x every fault x the command that uses it, with the
outcome the contract defines (docs/reliability.md holds the table). Every cell runs at -v with
canary secrets and checks that none of them is printed."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.fakes.argocd import FakeApplication, FakeArgoCD
from tests.fakes.bitbucket import FakeBitbucket
from tests.fakes.jira import FakeJira
from tests.fakes.server import FakeServer
from tests.fakes.teams import FakeTeams
from tests.gitworld import GitRepo, image, kustomization, overlay

Devex = Callable[..., Result]
DATA = Path(__file__).parent / "data"
MATRIX_HTTP = "[http]\ntimeout = 0.4\nretries = 1\nbackoff = 0.01\nmax_retry_after = 0.2\n"
CANARY = "canary-secret-7f3a9c"


@dataclass(frozen=True)
class Fault:
    name: str
    status: int | None = None  # None: not an HTTP answer (refused, timeout)
    body: object = b""
    headers: tuple[tuple[str, str], ...] = ()


FAULTS = [
    Fault("connection refused"),
    Fault("timeout"),
    Fault("slow trickle"),
    Fault("401", 401, {"errorMessages": ["You are not authenticated."], "error": "unauthorized"}),
    Fault("403", 403, {"errorMessages": ["Forbidden"], "error": "permission denied"}),
    Fault("404", 404, {"errorMessages": ["Not found"], "error": "not found"}),
    Fault("429 Retry-After", 429, {"errorMessages": ["Rate limit exceeded"]},
          (("Retry-After", "1"),)),
    Fault("429 no Retry-After", 429, {"errorMessages": ["Rate limit exceeded"]}),
    Fault("500", 500, {"errorMessages": ["Internal server error"]}),
    Fault("502", 502, b"<html>Bad Gateway</html>"),
    Fault("503", 503, {"error": "unavailable"}),
    Fault("malformed JSON", 200, b'{"issues": [{"key": '),
    Fault("wrong shape", 200, [{"unexpected": True}]),
]


@dataclass
class World:
    root: Path
    app: GitRepo
    gitops: GitRepo
    config: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("faults")
    app = GitRepo(root / "pay")
    first = app.commit("PAY-1 first", {"a": "1"})
    app.commit("PAY-2 second", {"a": "2"})
    gitops = GitRepo(root / "gitops")
    gitops.commit("qa", {overlay("pay", "qa"): kustomization([image("pay", first[:7])])})
    gitops.commit("prod", {overlay("pay", "prod"): kustomization([image("pay", first[:7])])})
    gitops.commit("dev", {overlay("pay", "dev"): kustomization([image("pay", app.sha()[:7])])})
    config = root / "devex.toml"
    config.write_text(MATRIX_HTTP + f'[gitops]\nrepo = "{gitops.path}"\n\n'
                      '[jira]\nprojects = ["PAY"]\n\n[bitbucket]\nworkspace = "acme"\n')
    return World(root, app, gitops, config)


def inject(server: FakeServer, fault: Fault) -> str | None:
    """Make the server misbehave; returns a URL to use instead when the fault is no server."""
    if fault.name == "connection refused":
        return "http://127.0.0.1:9"
    if fault.name == "timeout":
        server.latency = 1.5
        return None
    if fault.name == "slow trickle":  # each byte in time, the whole answer far too late
        server.trickle = 0.05
        server.fail_next(200, {"padding": "x" * 200}, times=50)
        return None
    server.fail_next(fault.status or 500, fault.body, dict(fault.headers), times=50)  # type: ignore[arg-type]
    return None


@pytest.fixture
def servers() -> Iterator[dict[str, FakeServer]]:
    running: dict[str, FakeServer] = {
        "jira": FakeJira(token=CANARY).start(), "argocd": FakeArgoCD(token=CANARY).start(),
        "bitbucket": FakeBitbucket(token=CANARY).start(),
        "teams": FakeTeams(signature=CANARY).start()}
    yield running
    for server in running.values():
        server.latency = server.trickle = 0
        server.stop()


def check_no_secret(result: Result, *places: Path) -> None:
    assert CANARY not in result.out and CANARY not in result.err
    assert "Traceback" not in result.err
    for folder in places:
        for path in folder.rglob("*") if folder.exists() else []:
            if path.is_file():
                assert CANARY.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_gate_with_jira_failing(devex: Devex, world: World, servers: dict[str, FakeServer],
                                fault: Fault, tmp_path: Path) -> None:
    jira = servers["jira"]
    url = inject(jira, fault) or jira.url
    env = {"JIRA_URL": url, "JIRA_EMAIL": "ci@example.com", "JIRA_API_TOKEN": CANARY}
    result = devex("-v", "gate", "qa-release", "--service", "pay", "--repo", str(world.app.path),
                   config=str(world.config), env=env)
    assert result.code == 3, (fault, result.err)  # never allowed by guessing
    opened = devex("gate", "qa-release", "--service", "pay", "--repo", str(world.app.path),
                   "--fail-open", config=str(world.config), env=env)
    assert opened.code == 0 and "FAIL-OPEN" in opened.err
    check_no_secret(result, tmp_path / "cache")


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
@pytest.mark.parametrize("system", ["argocd", "bitbucket", "jira"])
def test_collect_degrades(devex: Devex, world: World, servers: dict[str, FakeServer],
                          system: str, fault: Fault, tmp_path: Path) -> None:
    argocd, bitbucket, jira = servers["argocd"], servers["bitbucket"], servers["jira"]
    assert isinstance(argocd, FakeArgoCD) and isinstance(bitbucket, FakeBitbucket)
    argocd.add(FakeApplication("pay-qa", "apps/pay/overlays/qa",
                               sync_revision=world.gitops.sha()))
    bitbucket.repos["pay"] = world.app.path
    failing = servers[system]
    url = inject(failing, fault)
    env = {"ARGOCD_SERVER": argocd.url, "ARGOCD_AUTH_TOKEN": CANARY,
           "BITBUCKET_API_URL": f"{bitbucket.url}/2.0", "BITBUCKET_API_TOKEN": CANARY,
           "JIRA_URL": jira.url, "JIRA_EMAIL": "ci@example.com", "JIRA_API_TOKEN": CANARY}
    if url is not None:
        key = {"argocd": "ARGOCD_SERVER", "bitbucket": "BITBUCKET_API_URL",
               "jira": "JIRA_URL"}[system]
        env[key] = url + ("/2.0" if system == "bitbucket" else "")
    result = devex("-v", "collect", "--format", "json", "--since", "3650d",
                   config=str(world.config), env=env)
    assert result.code == 0, (system, fault, result.err)
    report = json.loads(result.out)
    if system == "bitbucket" and fault.status == 404:
        # Bitbucket's 404 for a commit means "no such revision": not a failure of the source,
        # but every deployed revision is reported as missing from the app repository.
        assert report["sources"]["bitbucket"] is True
        assert {r["service"] for r in report["data_quality"]["revisions_not_found"]} == {"pay"}
        return
    assert report["sources"][system] is False, (system, fault, report["sources"])
    assert report["sources"]["gitops"] is True
    assert len(report["deployments"]) >= 2  # the GitOps figures are all there
    check_no_secret(result, tmp_path / "cache")


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_report_with_teams_failing(devex: Devex, world: World, servers: dict[str, FakeServer],
                                   fault: Fault, tmp_path: Path) -> None:
    teams = servers["teams"]
    assert isinstance(teams, FakeTeams)
    url = inject(teams, fault)
    webhook = (url + "/workflows/x/triggers/manual/paths/invoke?sig=" + CANARY) if url \
        else teams.webhook()
    args = ("-v", "report", "security", "--sca", str(DATA / "sca.json"))
    env = {"TEAMS_WEBHOOK_SECURITY": webhook}
    if fault.status == 200:  # Workflows answer 2xx whatever the body: delivered
        assert devex(*args, config=str(world.config), env=env).code == 0
        return
    result = devex(*args, config=str(world.config), env=env)
    assert result.code == 0 and "not delivered to security" in result.err, (fault, result.err)
    strict = devex(*args, "--strict", config=str(world.config), env=env)
    assert strict.code == 3
    check_no_secret(result)
    check_no_secret(strict)


@pytest.mark.parametrize("fault", [f for f in FAULTS if f.status != 200],
                         ids=[f.name for f in FAULTS if f.status != 200])
def test_push_metrics_with_gateway_failing(devex: Devex, world: World,
                                           servers: dict[str, FakeServer], fault: Fault) -> None:
    gateway = servers["jira"]  # any loopback server: it answers the faults as scripted
    url = inject(gateway, fault) or gateway.url
    parts = url.split("://", 1)
    result = devex("-v", "push-metrics", "deployment", "--environment", "qa", "--status",
                   "started", "--service", "pay", "--gateway", f"{parts[0]}://ci:{CANARY}@{parts[1]}",
                   config=str(world.config))
    assert result.code == 3, (fault, result.err)
    check_no_secret(result)


def test_git_remote_unreachable(devex: Devex, world: World, tmp_path: Path) -> None:
    url = f"https://ci:{CANARY}@127.0.0.1:9/acme/gitops.git"
    for args in (("status", "--gitops", url), ("collect", "--gitops", url),
                 ("gate", "qa-release", "--service", "pay", "--repo", str(world.app.path),
                  "--gitops", url)):
        result = devex("-v", *args, config=str(world.config))
        assert result.code == 3, (args, result.err)
        assert "cannot fetch" in result.err
        check_no_secret(result, tmp_path / "cache")


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_status_with_argocd_failing(devex: Devex, world: World, servers: dict[str, FakeServer],
                                    fault: Fault) -> None:
    argocd = servers["argocd"]
    assert isinstance(argocd, FakeArgoCD)
    argocd.add(FakeApplication("pay-qa", "apps/pay/overlays/qa", sync_revision=world.gitops.sha()))
    url = inject(argocd, fault) or argocd.url
    result = devex("-v", "status", "--format", "json", config=str(world.config),
                   env={"ARGOCD_SERVER": url, "ARGOCD_AUTH_TOKEN": CANARY})
    assert result.code == 0, (fault, result.err)
    services = json.loads(result.out)["services"]
    assert all(e["actual"] is None for s in services for e in s["environments"])
    assert "Argo CD" in result.err
    check_no_secret(result)


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
@pytest.mark.parametrize("system", ["jira", "bitbucket"])
def test_deployment_card_with_sources_failing(devex: Devex, world: World,
                                              servers: dict[str, FakeServer], system: str,
                                              fault: Fault) -> None:
    jira, bitbucket = servers["jira"], servers["bitbucket"]
    assert isinstance(jira, FakeJira) and isinstance(bitbucket, FakeBitbucket)
    jira.add("PAY-2", "1.0")
    bitbucket.repos["pay"] = world.app.path
    failing = servers[system]
    url = inject(failing, fault)
    env = {"JIRA_URL": jira.url, "JIRA_EMAIL": "ci@example.com", "JIRA_API_TOKEN": CANARY,
           "BITBUCKET_API_URL": f"{bitbucket.url}/2.0", "BITBUCKET_API_TOKEN": CANARY,
           "BITBUCKET_REPO_SLUG": "pay", "BITBUCKET_PR_ID": "5",
           "BITBUCKET_STEP_TRIGGERER_UUID": "{abc}"}
    if url is not None:
        env["JIRA_URL" if system == "jira" else "BITBUCKET_API_URL"] = \
            url + ("/2.0" if system == "bitbucket" else "")
    result = devex("-v", "report", "deployment", "--environment", "qa", "--status", "started",
                   "--dry-run", cwd=world.app.path, config=str(world.config), env=env)
    assert result.code == 0, (system, fault, result.err)
    (posted,) = json.loads(result.out)
    assert posted["channel"] == "pr"  # the card goes out, without what the source would add
    check_no_secret(result)


def test_an_answer_past_the_size_cap(devex: Devex, world: World,
                                     servers: dict[str, FakeServer], tmp_path: Path) -> None:
    """5 MB from Jira with `http.max_response_bytes` at 1 MB: exit 3 naming Jira and the cap."""
    jira = servers["jira"]
    jira.fail_next(200, {"issues": [], "padding": "x" * (5 << 20)}, times=50)
    config = tmp_path / "capped.toml"
    config.write_text(world.config.read_text().replace(
        "[http]\n", "[http]\nmax_response_bytes = 1048576\n"))
    env = {"JIRA_URL": jira.url, "JIRA_EMAIL": "ci@example.com", "JIRA_API_TOKEN": CANARY}
    result = devex("-v", "gate", "qa-release", "--service", "pay", "--repo", str(world.app.path),
                   config=str(config), env=env)
    assert result.code == 3, result.err
    assert "devex: error: Jira: answer larger than 1 MB (http.max_response_bytes); stopped " \
           "reading" in result.err
    assert len(jira.requests) == 1  # not retried: it would be as large again
    check_no_secret(result, tmp_path / "cache")
