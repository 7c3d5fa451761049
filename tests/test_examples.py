"""The example pipeline, run as Bitbucket would run it, step by step.

Each step's script lines run in one shell in a clone of a generated app repository, with
Bitbucket's variables and the repository variables the example asks for pointing at the loopback
Jira and Teams, a real Pushgateway and a generated GitOps repository. A script stops at its
first failing line and the after-script then runs with BITBUCKET_EXIT_CODE, as in Bitbucket; a
failed step stops its pipeline. `pipe:` entries run pipe/pipe.py (what the pipe's image runs)
with only the variables the entry lists and Bitbucket's own. What the sandbox cannot run (the
images themselves) is checked for its shape.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import FAST_HTTP, Result
from tests.fakes.jira import FakeJira
from tests.fakes.teams import FakeTeams
from tests.gitworld import GitRepo, image, kustomization, overlay
from tests.services import pushgateway, pushgateway_available

Devex = Callable[..., Result]
ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "examples" / "pipelines" / "bitbucket-pipelines.yml"
DOC: dict[str, Any] = yaml.safe_load(PIPELINE.read_text())
PIPE_IMAGE = yaml.safe_load((ROOT / "pipe" / "pipe.yml").read_text())["image"]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

needs_pushgateway = pytest.mark.skipif(
    not pushgateway_available(), reason="needs prometheus-pushgateway (Debian); .ci/run installs it")

# The team's own scripts, as stand-ins that do the real thing against the generated repositories.
BUMP = """#!/usr/bin/env bash
# Set this service's tag in ENVIRONMENT's overlay of the GitOps repository, commit and push.
set -euo pipefail
environment=$1 tag=${2:0:7} work=$(mktemp -d)
git clone -q "$DEVEX_GITOPS_REPO" "$work"
file="$work/apps/$BITBUCKET_REPO_SLUG/overlays/$environment/kustomization.yaml"
mkdir -p "$(dirname "$file")"
sed "s/@TAG@/$tag/" scripts/kustomization.template > "$file"
git -C "$work" add -A
git -C "$work" -c user.name=ci -c user.email=ci@example.com commit -qm "deploy $tag to $environment"
git -C "$work" push -q origin HEAD
"""
SCAN = "#!/usr/bin/env bash\ncp {source} {target}\n"
APP_TEST = "def test_the_app_answers():\n    assert 6 * 7 == 42\n"


@dataclass
class StepRun:
    name: str
    code: int
    after_code: int | None
    out: str
    jira_requests: int  # the questions asked to Jira during the step


@dataclass
class Org:
    """The generated world a pipeline runs in."""

    app: GitRepo
    gitops: GitRepo
    clone: Path
    jira: FakeJira
    teams: FakeTeams
    gateway: str
    variables: dict[str, str] = field(default_factory=dict)

    def head(self) -> str:
        return self.app.sha()

    def gitops_tag(self, environment: str) -> str:
        self.gitops.git("reset", "-q", "--hard")  # pushes update the branch, not the work tree
        text = (self.gitops.path / overlay("pay", environment)).read_text()
        match = re.search(r"newTag: (\S+)", text)
        assert match, text
        return match.group(1)

    def cards(self) -> list[str]:
        return [json.dumps(card) for card in self.teams.received]

    def pushed(self) -> str:
        with urllib.request.urlopen(f"{self.gateway}/metrics", timeout=10) as answer:  # noqa: S310
            return str(answer.read().decode())


def make_app(path: Path, gitops: GitRepo) -> GitRepo:
    app = GitRepo(path)
    app.commit("Initial commit", {
        "requirements.txt": "# the app's own dependencies (devex is not one)\n",
        "tests/test_app.py": APP_TEST,
        "devex.toml": FAST_HTTP,
        "scripts/bump-gitops-tag.sh": BUMP,
        "scripts/kustomization.template": kustomization([image("pay", "@TAG@")]),
        "ci/veracode-pipeline-scan.sh": SCAN.format(
            source=ROOT / "tests" / "data" / "veracode-results.json", target="results.json"),
        "ci/srcclr-scan.sh": SCAN.format(source=ROOT / "tests" / "data" / "sca.json",
                                         target="sca.json"),
        ".gitignore": "reports/\n.devex-cache/\n",
    })
    for script in ("scripts/bump-gitops-tag.sh", "ci/veracode-pipeline-scan.sh", "ci/srcclr-scan.sh"):
        (path / script).chmod(0o755)
    app.git("add", "--chmod=+x", "scripts/bump-gitops-tag.sh", "ci/veracode-pipeline-scan.sh",
            "ci/srcclr-scan.sh")
    deployed = app.commit("PROJ-1 first feature")
    for environment in ("dev", "qa", "prod"):
        gitops.commit(f"deploy pay to {environment}",
                      {overlay("pay", environment): kustomization([image("pay", deployed[:7])])})
    return app


@pytest.fixture
def org(tmp_path: Path) -> Iterator[Org]:
    gitops = GitRepo(tmp_path / "gitops")
    gitops.git("config", "receive.denyCurrentBranch", "updateInstead")
    app = make_app(tmp_path / "pay", gitops)
    jira, teams = FakeJira().start(), FakeTeams().start()
    try:
        with pushgateway(tmp_path / "pushgateway") as gateway:
            world = Org(app, gitops, tmp_path / "clone", jira, teams, gateway)
            world.variables = {  # the repository variables the example's header lists
                **jira.env(), "DEVEX_GITOPS_REPO": str(gitops.path), "PUSHGATEWAY_URL": gateway,
                **{f"TEAMS_WEBHOOK_{channel}": teams.webhook()
                   for channel in ("DEPLOYMENTS", "QA", "PR", "SECURITY")},
                "DEVEX_IMAGE_DIGEST": "sha256:" + "0" * 64,  # the images are not run here
            }
            yield world
    finally:
        jira.stop()
        teams.stop()


def pipe_command(entry: dict[str, Any], bitbucket: dict[str, str]) -> str:
    """The shell line that runs a `pipe:` entry as Bitbucket does: the pipe's image (here its
    entry script) with only the listed variables, expanded by the step's shell, and Bitbucket's."""
    assert entry["pipe"] == f"docker://{PIPE_IMAGE}", entry
    # A value with $VARIABLES is expanded by the step's shell (double quotes), others kept.
    assigned = [f"{name}=" + (f'"{value}"' if "$" in value else shlex.quote(value))
                for name, value in ((n, str(v)) for n, v in entry["variables"].items())]
    passed = [f'{name}="${name}"' for name in sorted(bitbucket)]
    isolation = [f'{name}="${name}"' for name in ("PATH", "HOME", "XDG_CACHE_HOME",
                                                  "GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM")]
    return shlex.join(["env", "-i"]) + " " + " ".join([*isolation, *passed, *assigned]) + \
        f" {shlex.quote(sys.executable)} {shlex.quote(str(ROOT / 'pipe' / 'pipe.py'))}"


def shell_script(lines: list[Any], bitbucket: dict[str, str]) -> str:
    """Bitbucket's way: each command in turn in one shell, the first failure ends the script."""
    body = ["set +e"]
    for line in lines:
        command = pipe_command(line, bitbucket) if isinstance(line, dict) else line
        body += [command, "rc=$?; if [ $rc -ne 0 ]; then exit $rc; fi"]
    return "\n".join(body) + "\n"


def run_step(org: Org, step: dict[str, Any], bitbucket: dict[str, str]) -> StepRun:
    variables = dict(bitbucket)
    if "deployment" in step:
        variables["BITBUCKET_DEPLOYMENT_ENVIRONMENT"] = step["deployment"]
    if org.clone.exists():  # a fresh clone for every step, the cache kept (Bitbucket's caches)
        cache = org.clone / ".devex-cache"
        if cache.exists():
            shutil.move(cache, org.clone.parent / "kept-cache")
        shutil.rmtree(org.clone)
    subprocess.run(["git", "clone", "-q", str(org.app.path), str(org.clone)], check=True)
    subprocess.run(["git", "-C", str(org.clone), "checkout", "-q", bitbucket["BITBUCKET_COMMIT"]],
                   check=True)
    kept = org.clone.parent / "kept-cache"
    if kept.exists() and "devex" in step.get("caches", []):
        shutil.move(kept, org.clone / DOC["definitions"]["caches"]["devex"])
    variables["BITBUCKET_CLONE_DIR"] = str(org.clone)
    environ = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               "HOME": str(org.clone.parent), "XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"],
               "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
               # The app image's pip is this test's: it must install nothing here (an example
               # that installed the index's devex-cli once replaced this venv's devex).
               "PIP_TARGET": str(org.clone.parent / "app-site-packages"), "PIP_NO_INDEX": "1",
               **org.variables, **variables}

    def shell(lines: list[Any], extra: dict[str, str]) -> tuple[int, str]:
        done = subprocess.run(["bash", "-c", shell_script(lines, {**variables, **extra})],
                              cwd=org.clone, env={**environ, **extra}, capture_output=True,
                              text=True, check=False, timeout=300)
        return done.returncode, done.stdout + done.stderr

    asked = len(org.jira.api_requests())
    code, out = shell(step["script"], {})
    after_code = None
    if "after-script" in step:
        after_code, after_out = shell(step["after-script"], {"BITBUCKET_EXIT_CODE": str(code)})
        out += after_out
    cache = org.clone / ".devex-cache"
    if cache.exists() and "devex" in step.get("caches", []) and code == 0:
        shutil.move(cache, kept)  # Bitbucket saves a step's caches when it succeeds
    return StepRun(step["name"], code, after_code, out, len(org.jira.api_requests()) - asked)


def run_pipeline(org: Org, steps: list[dict[str, Any]], bitbucket: dict[str, str]) -> list[StepRun]:
    runs = []
    for item in steps:
        runs.append(run_step(org, item["step"], bitbucket))
        if runs[-1].code != 0:
            break  # a failed step stops the pipeline
    return runs


def main_variables(org: Org) -> dict[str, str]:
    return {"BITBUCKET_BRANCH": "main", "BITBUCKET_COMMIT": org.head(), "BITBUCKET_REPO_SLUG": "pay",
            "BITBUCKET_WORKSPACE": "acme", "BITBUCKET_BUILD_NUMBER": "42",
            "BITBUCKET_PIPELINE_UUID": "{0a1b2c3d-0000-4000-8000-000000000042}"}


@needs_pushgateway
def test_main_pipeline_gates_deploys_to_qa_and_reports(org: Org) -> None:
    org.app.commit("[PROJ-2] Add login form", {"login.py": "x\n"})
    org.jira.add("PROJ-2", "1.4.0", summary="Login form", status="Done")
    runs = run_pipeline(org, DOC["pipelines"]["branches"]["main"], main_variables(org))
    assert [(r.name, r.code, r.after_code) for r in runs] == [
        ("Build and test", 0, 0), ("Security scan", 0, 0), ("QA release gate", 0, None),
        ("Deploy to QA", 0, 0)], "\n".join(r.out for r in runs)
    gate = runs[2].out
    assert "QA release gate: allowed" in gate and "PROJ-2" in gate
    assert runs[2].jira_requests == 2  # one run of the gate: its tickets and their projects
    assert org.gitops_tag("qa") == org.head()[:7]  # the deploy step's script really deployed
    cards = org.cards()
    assert sum("Unit tests: 1/1 passed" in card for card in cards) == 1  # pytest really ran
    assert sum("Security scan: 3 high or very high" in card for card in cards) == 1
    # started and succeeded, each to the deployments and the qa channels
    assert sum(f"42-{org.head()[:7]} \\u2192 qa: started" in card for card in cards) == 2
    assert sum(f"42-{org.head()[:7]} \\u2192 qa: succeeded" in card for card in cards) == 2
    pushed = org.pushed()
    assert 'job="devex"' in pushed and "devex_tests" in pushed and "devex_deployment" in pushed
    secrets = [org.jira.env()["JIRA_API_TOKEN"], org.teams.signature]
    assert not any(secret in run.out for run in runs for secret in secrets)


@needs_pushgateway
def test_main_pipeline_stops_at_the_gate_when_a_ticket_has_no_fix_version(org: Org) -> None:
    org.app.commit("PROJ-3 payment retries", {"retry.py": "x\n"})
    org.jira.add("PROJ-3", summary="Payment retries")
    before = org.gitops_tag("qa")
    runs = run_pipeline(org, DOC["pipelines"]["branches"]["main"], main_variables(org))
    assert [(r.name, r.code) for r in runs] == [
        ("Build and test", 0), ("Security scan", 0), ("QA release gate", 1)]
    assert "QA DEPLOYMENT BLOCKED" in runs[-1].out and "PROJ-3" in runs[-1].out
    assert org.gitops_tag("qa") == before  # no deployment


@needs_pushgateway
def test_pull_request_pipeline_deploys_to_dev_and_reports_to_the_pr_channel(org: Org) -> None:
    org.app.checkout("feature/PROJ-4", create=True)
    org.app.commit("PROJ-4 faster checkout", {"fast.py": "x\n"})
    bitbucket = {**main_variables(org), "BITBUCKET_BRANCH": "feature/PROJ-4",
                 "BITBUCKET_PR_ID": "7", "BITBUCKET_PR_DESTINATION_BRANCH": "main"}
    runs = run_pipeline(org, DOC["pipelines"]["pull-requests"]["**"], bitbucket)
    assert [(r.name, r.code, r.after_code) for r in runs] == [
        ("Build and test", 0, 0), ("Deploy the PR to dev", 0, 0)], "\n".join(r.out for r in runs)
    assert org.gitops_tag("dev") == org.head()[:7]
    cards = org.cards()
    assert any("pr-7" in card for card in cards)
    assert any("Unit tests: 1/1 passed" in card for card in cards)  # to pr: TEAMS_WEBHOOK_PR


@needs_pushgateway
def test_scheduled_collector_reads_devex_toml_from_its_clone_and_keeps_its_cache(
    org: Org, tmp_path: Path
) -> None:
    # The collector runs in the repository holding the organisation's devex.toml: here the
    # GitOps repository itself, naming the app repository of its one service.
    settings = FAST_HTTP + f'\n[services.pay]\nrepo = "{org.app.path}"\n'
    org.gitops.commit("devex settings", {"devex.toml": settings})
    org.app = org.gitops  # the pipeline's repository is now the GitOps one
    steps = DOC["pipelines"]["custom"]["dora-collect"]
    step = steps[0]["step"]
    assert "clone" not in step  # the clone (and its devex.toml) is the point
    bitbucket = {**main_variables(org), "BITBUCKET_REPO_SLUG": "gitops"}
    first = run_pipeline(org, steps, bitbucket)
    assert [(r.name, r.code) for r in first] == [("Collect DORA metrics", 0)], first[0].out
    kept = org.clone.parent / "kept-cache"
    assert kept.is_dir() and any(kept.iterdir())  # saved as the step's cache
    second = run_pipeline(org, steps, bitbucket)
    assert second[0].code == 0, second[0].out
    assert kept.is_dir() and any(kept.iterdir())  # saved again after the second run
    pushed = org.pushed()
    assert 'job="devex-collect"' in pushed and "deployment_desired_state" in pushed


def test_devex_runs_from_the_digest_pinned_image_or_the_pipe_never_from_pip() -> None:
    assert DOC["image"]["name"] == \
        f"registry.acme.example/platform/devex:{VERSION}@${{DEVEX_IMAGE_DIGEST}}"
    assert "DEVEX_IMAGE_DIGEST" in PIPELINE.read_text().split("definitions:")[0]  # explained
    lines = list(script_lines(DOC))
    assert not any(re.search(r"\b(pip3?|pipx)\s+install\b.*\bdevex", line) for line in lines)
    assert not any("apt-get" in line for line in lines)
    pipes = [line for line in script_entries(DOC) if isinstance(line, dict)]
    assert pipes and all(p["pipe"] == f"docker://{PIPE_IMAGE}" for p in pipes)
    for name, step in steps_of(DOC):
        uses_devex = any(isinstance(line, str) and line.startswith("devex ")
                         for line in [*step.get("script", []), *step.get("after-script", [])])
        if uses_devex:  # the step's own image must then be devex's
            assert step.get("image", DOC["image"]) == DOC["image"], name
            assert "pip" not in step.get("caches", []), name


def test_deployment_steps_and_caches_are_declared_where_bitbucket_needs_them() -> None:
    text = PIPELINE.read_text()
    environments = {step["deployment"] for _, step in steps_of(DOC) if "deployment" in step}
    assert environments == {"dev", "qa"}
    header = text.split("definitions:")[0]
    assert "Deployments: create the environments" in header
    assert "x-token-auth" in header and "devex.toml" in header
    assert DOC["definitions"]["caches"]["devex"] == ".devex-cache"
    for name, step in steps_of(DOC):
        if any("DEVEX_CACHE_DIR" in line for line in step.get("script", []) if isinstance(line, str)):
            assert "devex" in step.get("caches", []), name


def steps_of(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    def walk(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, dict):
            if "script" in node and "name" in node:
                yield node
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    for step in walk(doc["pipelines"]):
        yield step["name"], step


def script_entries(doc: dict[str, Any]) -> Iterator[Any]:
    for _, step in steps_of(doc):
        yield from step.get("script", [])
        yield from step.get("after-script", [])


def script_lines(doc: dict[str, Any]) -> Iterator[str]:
    yield from (line for line in script_entries(doc) if isinstance(line, str))


def test_every_devex_line_uses_real_commands_and_flags(devex: Devex) -> None:
    lines = [line for line in script_lines(DOC) if line.startswith("devex ")]
    assert len(lines) >= 7
    for line in lines:
        words = shlex.split(re.sub(r"\$\(.*?\)|\$\{.*?\}|\$\w+", "X", line.split(" > ")[0]
                                   .split(" || ")[0]))
        flags = {w.split("=")[0] for w in words if w.startswith("--")}
        command = [words[1]]
        if words[1] in ("gate", "report") or (words[1] == "push-metrics"
                                               and not words[2].startswith("-")):
            command.append(words[2])
        help_text = devex(*command, "--help").out
        for flag in flags:
            assert flag in help_text, f"{line}: {flag} is not an option of devex {command}"
