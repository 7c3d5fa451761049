"""Secrets at rest and in every line devex writes: credentials echoed back by an upstream, webhook
paths in request logs, git credentials kept out of cached clones, and git's own reasons shown
without them; retries reported by devex alone, one line at -v."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.fakes.githttp import FakeGitServer
from tests.fakes.server import Answer, FakeServer, Request
from tests.fakes.teams import FakeTeams
from tests.gitworld import GitRepo, image, kustomization, overlay
from tests.services import free_port

Devex = Callable[..., Result]
DATA = Path(__file__).parent / "data"
HTTP = "[http]\ntimeout = 2\nretries = 1\nbackoff = 0.01\nmax_retry_after = 0.2\n"
TOKEN = "canary-token-4b8d2e"


@dataclass
class World:
    app: GitRepo
    gitops: GitRepo
    config: Path


@pytest.fixture
def world(tmp_path: Path) -> World:
    app = GitRepo(tmp_path / "pay")
    first = app.commit("PAY-1 first", {"a": "1"})
    app.commit("PAY-2 second", {"a": "2"})
    gitops = GitRepo(tmp_path / "gitops")
    gitops.commit("qa", {overlay("pay", "qa"): kustomization([image("pay", first[:7])])})
    config = tmp_path / "devex.toml"
    config.write_text(HTTP + f'[gitops]\nrepo = "{gitops.path}"\n\n[jira]\nprojects = ["PAY"]\n')
    return World(app, gitops, config)


class EchoServer(FakeServer):
    """An upstream that answers every request 401 with the Authorization header it was sent."""

    def __init__(self) -> None:
        super().__init__()
        for method in ("GET", "POST"):
            self.route_prefix(method, "/", self._echo)

    def _echo(self, request: Request) -> Answer:
        header = request.headers.get("authorization", "")
        return Answer(401, {"errorMessages": [f"cannot use the credentials in {header}"],
                            "error": f"Authorization: {header}"})


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer().start()
    yield server
    server.stop()


def test_basic_credentials_echoed_back_are_never_printed(devex: Devex, world: World,
                                                        echo: EchoServer) -> None:
    encoded = base64.b64encode(f"ci@example.com:{TOKEN}".encode()).decode()
    result = devex("-v", "gate", "qa-release", "--service", "pay", "--repo", str(world.app.path),
                   config=str(world.config), env={"JIRA_URL": echo.url,
                                                  "JIRA_EMAIL": "ci@example.com",
                                                  "JIRA_API_TOKEN": TOKEN})
    assert result.code == 3, result.err
    assert echo.requests[0].headers["authorization"] == f"Basic {encoded}"  # it was echoed
    assert "Basic ****" in result.err  # the echo is in the message, the credential is not
    for secret in (TOKEN, encoded, encoded.rstrip("=")):
        assert secret not in result.out and secret not in result.err


def test_webhook_paths_are_masked_in_every_log_line(devex: Devex, world: World) -> None:
    teams = FakeTeams(signature=TOKEN).start()
    try:
        teams.fail_next(503)  # a retry: one more line that could show the URL
        result = devex("-v", "report", "security", "--sca", str(DATA / "sca.json"),
                       config=str(world.config),
                       env={"TEAMS_WEBHOOK_SECURITY": teams.webhook()})
    finally:
        teams.stop()
    assert result.code == 0, result.err
    assert len(teams.received) == 1
    lines = result.err.splitlines()
    assert any("/workflows/****" in line for line in lines), result.err
    flow = "0a1b2c3d4e5f"  # the workflow's id, in tests/fakes/teams.py
    for line in lines:
        assert flow not in line and "triggers" not in line and TOKEN not in line, line
        assert "sig" not in line, line


def test_retries_are_one_line_at_verbose_and_silent_otherwise(world: World,
                                                              tmp_path: Path) -> None:
    """In a process of its own: stamina's default hook logs through the root logger, which
    pytest's own logging capture would hide in-process."""
    teams = FakeTeams(signature=TOKEN).start()
    try:
        env = {**os.environ, "TEAMS_WEBHOOK_SECURITY": teams.webhook()}

        def run(*flags: str) -> subprocess.CompletedProcess[str]:
            teams.fail_next(503)
            return subprocess.run(
                [sys.executable, "-m", "devex_cli", "--config", str(world.config), *flags,
                 "report", "security", "--sca", str(DATA / "sca.json")],
                capture_output=True, text=True, env=env, cwd=tmp_path, check=False, timeout=60)

        quiet, default, verbose = run("-q"), run(), run("-v")
    finally:
        teams.stop()
    assert len(teams.received) == 3
    assert (quiet.returncode, default.returncode, verbose.returncode) == (0, 0, 0)
    assert quiet.stderr == "" and default.stderr == ""
    retries = [line for line in verbose.stderr.splitlines() if "retry" in line]
    assert len(retries) == 1, verbose.stderr
    assert retries[0].startswith("devex: info: Teams: HTTP 503, retrying in ")
    assert retries[0].endswith(" s (attempt 2 of 2)")
    assert "stamina" not in verbose.stderr


def test_git_failures_show_gits_reason_without_credentials(devex: Devex, world: World) -> None:
    port = free_port()  # nothing listens on it
    cases = [(f"http://ci:{TOKEN}@127.0.0.1:{port}/acme/gitops.git",
              f"Failed to connect to 127.0.0.1 port {port}")]
    if shutil.which("ssh"):  # ssh puts its reason before three lines of git's boilerplate
        cases.append((f"ssh://git@127.0.0.1:{port}/acme/gitops.git", "Connection refused"))
    for url, reason in cases:
        result = devex("-v", "status", "--gitops", url, config=str(world.config))
        assert result.code == 3, result.err
        (line,) = [line for line in result.err.splitlines() if line.startswith("devex: error:")]
        assert "cannot fetch" in line and reason in line, line
        assert "repository exists" not in line
        assert TOKEN not in result.err and TOKEN not in result.out


@pytest.fixture
def git_server(world: World, tmp_path: Path) -> Iterator[FakeGitServer]:
    served = tmp_path / "served"
    served.mkdir()
    subprocess.run(["git", "clone", "-q", "--bare", str(world.gitops.path),
                    str(served / "gitops.git")], check=True)
    server = FakeGitServer(served, "x-token-auth", TOKEN).start()
    yield server
    server.stop()


def clones(tmp_path: Path) -> list[Path]:
    return [path.parent for path in (tmp_path / "cache").rglob("HEAD")
            if (path.parent / "config").is_file()]


def test_git_credentials_stay_out_of_the_clone(devex: Devex, world: World,
                                               git_server: FakeGitServer,
                                               tmp_path: Path) -> None:
    host = git_server.url.removeprefix("http://")
    url = f"http://x-token-auth:{TOKEN}@{host}/gitops.git"
    for _ in range(2):  # a clone, then a fetch into it
        result = devex("-v", "status", "--offline", "--format", "json", "--gitops", url,
                       config=str(world.config))
        assert result.code == 0, result.err
        assert '"service": "pay"' in result.out
        assert TOKEN not in result.err and TOKEN not in result.out
    encoded = base64.b64encode(f"x-token-auth:{TOKEN}".encode()).decode()
    # the server refuses requests without the header: it was sent every time
    assert git_server.authorizations and \
        set(git_server.authorizations) == {f"Basic {encoded}"}
    (clone,) = clones(tmp_path)
    config = (clone / "config").read_text()
    assert f"url = {git_server.url}/gitops.git" in config
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert TOKEN.encode() not in data and encoded.encode() not in data, path


def test_a_clone_made_with_credentials_in_its_config_is_cleaned(devex: Devex, world: World,
                                                                git_server: FakeGitServer,
                                                                tmp_path: Path) -> None:
    host = git_server.url.removeprefix("http://")
    url = f"http://x-token-auth:{TOKEN}@{host}/gitops.git"
    assert devex("status", "--offline", "--gitops", url, config=str(world.config)).code == 0
    (clone,) = clones(tmp_path)
    # as devex left clones before: the credential URL in the config
    subprocess.run(["git", "-C", str(clone), "config", "remote.origin.url", url], check=True)
    assert TOKEN in (clone / "config").read_text()
    world.gitops.commit("prod", {overlay("pay", "prod"): kustomization([image("pay", "v2")])})
    subprocess.run(["git", "-C", str(world.gitops.path), "push", "-q",
                    str(git_server.root / "gitops.git"), "main"], check=True)
    result = devex("status", "--offline", "--format", "json", "--gitops", url,
                   config=str(world.config))
    assert result.code == 0, result.err
    assert '"environment": "prod"' in result.out  # fetched through the cleaned remote
    assert clones(tmp_path) == [clone]
    assert TOKEN not in (clone / "config").read_text()
    assert f"url = {git_server.url}/gitops.git" in (clone / "config").read_text()
