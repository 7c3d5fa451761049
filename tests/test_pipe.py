"""The devex pipe's entry (pipe/pipe.py): variables in, one devex command, its exit code out.

Run as Bitbucket runs it (a process whose environment is the pipe's variables, the clone as its
working folder) against the loopback Jira and Teams and generated git repositories.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.conftest import FAST_HTTP, Result
from tests.fakes.jira import FakeJira
from tests.fakes.teams import FakeTeams
from tests.gitworld import GitRepo
from tests.worlds import gate_world

ROOT = Path(__file__).resolve().parents[1]
PIPE = ROOT / "pipe"
Devex = Callable[..., Result]


def load_pipe() -> ModuleType:
    spec = importlib.util.spec_from_file_location("devex_pipe", PIPE / "pipe.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pipe = load_pipe()


@dataclass
class Run:
    code: int
    out: str
    err: str


def run_pipe(variables: Mapping[str, str], cwd: Path) -> Run:
    """pipe.py with only the pipe's variables (and what any container has) as its environment."""
    environ = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               "HOME": os.environ.get("HOME", str(cwd)),
               "XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"],
               "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", **variables}
    done = subprocess.run([sys.executable, str(PIPE / "pipe.py")], env=environ, cwd=cwd,
                          capture_output=True, text=True, check=False, timeout=120)
    return Run(done.returncode, done.stdout, done.stderr)


@dataclass
class Clone:
    """An app repository as Bitbucket clones it, and the GitOps repository it deploys with."""

    app: GitRepo
    gitops: GitRepo
    config: Path

    def variables(self, **more: str) -> dict[str, str]:
        return {"BITBUCKET_REPO_SLUG": "pay", "BITBUCKET_COMMIT": self.app.sha(),
                "BITBUCKET_BRANCH": "main", "BITBUCKET_BUILD_NUMBER": "42",
                "BITBUCKET_CLONE_DIR": str(self.app.path), "CONFIG": str(self.config),
                "DEVEX_GITOPS_REPO": str(self.gitops.path), **more}


@pytest.fixture
def clone(tmp_path: Path) -> Clone:
    world = gate_world(tmp_path)
    world.app.commit("[PROJ-2] Add login form", {"login.py": "x\n"})
    config = tmp_path / "fast-devex.toml"
    config.write_text(FAST_HTTP)
    return Clone(world.app, world.gitops, config)


def test_gate_blocked_is_exit_1_and_the_token_never_shows(clone: Clone, jira: FakeJira) -> None:
    jira.add("PROJ-2", summary="Login form")
    done = run_pipe(clone.variables(COMMAND="gate", ENVIRONMENT="qa", **jira.env()),
                    clone.app.path)
    assert done.code == 1, done.err
    assert "QA DEPLOYMENT BLOCKED" in done.out and f"{jira.url}/browse/PROJ-2" in done.out
    assert "devex pipe: devex" in done.err and "gate qa-release --environment qa" in done.err
    assert "devex pipe: exit 1" in done.err
    assert jira.env()["JIRA_API_TOKEN"] not in done.out + done.err


def test_gate_allowed_is_exit_0_with_json_in_the_output_file(clone: Clone, jira: FakeJira) -> None:
    jira.add("PROJ-2", "1.4.0", status="Done")
    done = run_pipe(clone.variables(COMMAND="gate", FORMAT="json", OUTPUT_FILE="out/gate.json",
                                    PROJECTS_COUNT="1", PROJECTS_0="PROJ", **jira.env()),
                    clone.app.path)
    assert done.code == 0, done.err
    assert done.out == ""  # the JSON went to the file, the log keeps the pipe's own lines
    report = json.loads((clone.app.path / "out" / "gate.json").read_text())
    assert report["decision"] == "allowed" and report["head"] == clone.app.sha()
    assert [t["key"] for t in report["tickets"]] == ["PROJ-2"]
    assert len([r for r in jira.api_requests() if "bulkfetch" in r.path]) == 1  # one run


def test_deployment_card_status_comes_from_the_exit_code_and_the_webhook_stays_secret(
    clone: Clone, tmp_path: Path
) -> None:
    teams = FakeTeams().start()
    try:
        webhook = teams.webhook()
        done = run_pipe(clone.variables(COMMAND="report", EVENT="deployment", ENVIRONMENT="qa",
                                        VERSION="42-abc1234", BITBUCKET_EXIT_CODE="1",
                                        TEAMS_WEBHOOK_DEPLOYMENTS=webhook,
                                        TEAMS_WEBHOOK_QA=webhook), clone.app.path)
    finally:
        teams.stop()
    assert done.code == 0, done.err
    assert "--status failed" in done.err
    assert len(teams.received) == 2  # deployments and qa
    assert "failed" in json.dumps(teams.received[0]).lower()
    assert teams.signature not in done.out + done.err


def test_an_upstream_failure_is_exit_3_and_credentials_in_urls_are_masked(clone: Clone) -> None:
    secret_url = "http://x-token-auth:tok3n-SECRET-42@127.0.0.1:9/acme/gitops.git"
    done = run_pipe(clone.variables(COMMAND="status", OFFLINE="true", DEVEX_GITOPS_REPO=secret_url,
                                    EXTRA_ARGS=f"--gitops {secret_url}"), clone.app.path)
    assert done.code == 3, done.err
    assert "tok3n-SECRET-42" not in done.out + done.err
    assert "http://****@127.0.0.1:9/acme/gitops.git" in done.err  # the pipe's own line, masked


@pytest.mark.parametrize(("variables", "message"), [
    ({}, "COMMAND is required"),
    ({"COMMAND": "deploy"}, "COMMAND must be one of gate, report, push-metrics"),
    ({"COMMAND": "report"}, "EVENT is required"),
    ({"COMMAND": "gate", "FAIL_OPEN": "yes"}, "FAIL_OPEN must be true or false"),
    ({"COMMAND": "push-metrics", "EVENT": "tests", "FROM_FILE": "devex.prom"}, "not both"),
    ({"COMMAND": "gate", "PROJECTS_COUNT": "two"}, "PROJECTS_COUNT must be a number"),
])
def test_a_wrong_variable_is_exit_2_before_devex_runs(
    tmp_path: Path, variables: dict[str, str], message: str
) -> None:
    done = run_pipe(variables, tmp_path)
    assert done.code == 2
    assert message in done.err
    assert "devex pipe: devex " not in done.err  # nothing was run


@pytest.mark.parametrize(("variables", "expected"), [
    ({"COMMAND": "gate"}, ["gate", "qa-release"]),
    ({"COMMAND": "gate", "ENVIRONMENT": "uat", "PROJECTS": "PAY CORE", "FAIL_OPEN": "true",
      "DEBUG": "true", "CONFIG": "ci/devex.toml"},
     ["--config", "ci/devex.toml", "--verbose", "gate", "qa-release", "--environment", "uat",
      "--project", "PAY", "--project", "CORE", "--fail-open"]),
    ({"COMMAND": "report", "EVENT": "deployment", "ENVIRONMENT": "dev", "STATUS": "started",
      "BITBUCKET_EXIT_CODE": "1"},
     ["report", "deployment", "--environment", "dev", "--status", "started"]),
    ({"COMMAND": "report", "EVENT": "deployment", "ENVIRONMENT": "dev", "BITBUCKET_EXIT_CODE": "0"},
     ["report", "deployment", "--environment", "dev", "--status", "succeeded"]),
    ({"COMMAND": "report", "EVENT": "tests", "JUNIT_COUNT": "2", "JUNIT_0": "a b.xml",
      "JUNIT_1": "c.xml", "CHANNELS": "pr", "DRY_RUN": "true"},
     ["report", "tests", "--junit", "a b.xml", "--junit", "c.xml", "--channel", "pr", "--dry-run"]),
    ({"COMMAND": "push-metrics", "FROM_FILE": "devex.prom", "JOB": "devex-collect",
      "REPLACE": "true"},
     ["push-metrics", "--from", "devex.prom", "--job", "devex-collect", "--replace"]),
    ({"COMMAND": "collect", "SINCE": "30d", "FORMAT": "prometheus", "EXTRA_ARGS_COUNT": "1",
      "EXTRA_ARGS_0": "--offline"},
     ["collect", "--since", "30d", "--format", "prometheus", "--offline"]),
    ({"COMMAND": "status", "ENVIRONMENTS": "qa prod", "FORMAT": "json"},
     ["status", "--environment", "qa", "--environment", "prod", "--format", "json"]),
])
def test_variables_map_to_the_devex_command_line(
    variables: dict[str, str], expected: list[str]
) -> None:
    assert pipe.devex_arguments(variables) == expected


def every_variable(command: str, event: str | None = None) -> dict[str, str]:
    """Every variable pipe.yml declares, set, for one command (and event)."""
    declared = yaml.safe_load((PIPE / "pipe.yml").read_text())["variables"]
    values = {v["name"]: "true" if v.get("default") == "false" else "x" for v in declared}
    values.update(COMMAND=command, STATUS="started", FORMAT="json")
    values.pop("FROM_FILE" if event else "EVENT", None)
    if event:
        values["EVENT"] = event
    values.pop("EXTRA_ARGS")
    values.pop("DEBUG")  # a global option, checked on `devex --help`
    values.pop("BITBUCKET_EXIT_CODE", None)
    return values


@pytest.mark.parametrize(("command", "event"), [
    ("gate", None), ("report", "deployment"), ("report", "tests"), ("report", "security"),
    ("push-metrics", "deployment"), ("push-metrics", "tests"), ("push-metrics", "security"),
    ("push-metrics", None), ("collect", None), ("status", None),
])
def test_every_flag_the_pipe_passes_is_an_option_of_that_devex_command(
    devex: Devex, command: str, event: str | None
) -> None:
    args = pipe.devex_arguments(every_variable(command, event))
    assert args[:2] == ["--config", "x"]
    words = args[2:]
    help_path = words[:2] if command in ("gate", "report") or event else words[:1]
    help_text = devex(*help_path, "--help").out
    flags = {w for w in words if w.startswith("--")}
    assert flags, args
    for flag in flags:
        assert re.search(rf"(^|\s){re.escape(flag)}[\s/]", help_text), \
            f"{flag} is not an option of devex {' '.join(help_path)}"
    assert "--verbose" in devex("--help").out


def test_pipe_yml_declares_what_the_convention_asks_and_every_variable_the_pipe_reads() -> None:
    meta = yaml.safe_load((PIPE / "pipe.yml").read_text())
    for key in ("name", "image", "category", "description", "repository", "maintainer",
                "variables"):
        assert meta.get(key), key
    declared = {v["name"] for v in meta["variables"]}
    source = (PIPE / "pipe.py").read_text()
    read = set(re.findall(r'v\.(?:text|flag|items|required)\("([A-Z_]+)"', source))
    assert read - {"BITBUCKET_EXIT_CODE"} <= declared
    readme = (PIPE / "README.md").read_text()
    for name in read - {"BITBUCKET_EXIT_CODE"}:
        assert name in readme, f"{name} is not in pipe/README.md"
    for secret in ("JIRA_API_TOKEN", "TEAMS_WEBHOOK_DEPLOYMENTS", "ARGOCD_AUTH_TOKEN",
                   "DEVEX_GITOPS_REPO"):
        assert next(v for v in meta["variables"] if v["name"] == secret).get("secret") is True
    # The README's YAML snippets are valid and run the pipe's own image.
    snippets = re.findall(r"```yaml\n(.*?)```", readme, re.DOTALL)
    assert len(snippets) >= 5
    for snippet in snippets:
        yaml.safe_load(snippet)
        assert f"docker://{meta['image']}" in snippet or "pipe:" not in snippet
