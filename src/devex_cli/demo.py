"""`devex demo`: a sample organisation in a temporary folder, built in a second or two.

Four services, four environments, about 90 days of app and GitOps history made with
`git fast-import` (one process per repository): daily development, a QA release twice a week,
pre-production right after each QA release, a weekly production train (fortnightly for payments,
whose change board meets every other week) that shows up as the bottleneck, a production rollback
and a qa one, and tickets in commit messages. Deterministic for a given seed and end time.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from devex_cli.errors import UsageError
from devex_cli.gitcli import git

ENVIRONMENTS = ("dev", "qa", "preprod", "prod")
REGISTRY = "registry.acme.example/shop"


# Written in a --keep folder: a later `demo --keep` there may replace what the demo made (and only
# that), where any other folder with something in it is refused.
KEPT_MARKER = ".devex-demo"
_MADE = ("apps", "gitops", "devex.toml", KEPT_MARKER)


def prepare_kept_folder(folder: Path) -> None:
    """Make `folder` ready for build_demo: create it, or empty a previous demo's of what it made.

    Raises UsageError when `folder` is a file, holds anything but a previous demo, or cannot be
    created or written.
    """
    hint = "give --keep a new or empty folder, or one a previous demo made"
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--keep {folder} is a file, not a folder", hint=hint)
    try:
        if folder.is_dir():
            entries = {entry.name for entry in folder.iterdir()}
            if entries and KEPT_MARKER not in entries:
                raise UsageError(f"--keep {folder} is not empty, and not a previous demo's",
                                 hint=hint)
            for name in entries.intersection(_MADE):
                made = folder / name
                if made.is_dir() and not made.is_symlink():
                    shutil.rmtree(made)
                else:
                    made.unlink()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / KEPT_MARKER).write_text(
            "Made by `devex demo --keep`: running it again here replaces apps/, gitops/ and "
            "devex.toml.\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot build the demo in {folder}: {exc.strerror or exc}",
                         hint=hint) from None


@dataclass(frozen=True)
class DemoService:
    name: str
    project: str
    commits_per_day: float
    prod_every_weeks: int = 1  # a change board that meets every N weeks
    sidecar: str | None = None


SERVICES = (
    DemoService("payments", "PAY", 2.0, prod_every_weeks=2),
    DemoService("checkout", "CHK", 3.0),
    DemoService("catalog", "CAT", 1.5),
    DemoService("notifications", "NOT", 1.0, sidecar="docker.io/library/redis"),
)

_SUBJECTS = ("Add {}", "Fix {}", "Refactor {}", "Speed up {}", "Log {}", "Validate {}")
_THINGS = ("refund flow", "basket totals", "search filters", "email templates", "retry policy",
           "price rounding", "webhook signatures", "stock levels", "currency display",
           "receipt PDF", "UTF-8 product names", "rate limits")
_AUTHORS = ("Ana Lima <ana@acme.example>", "Ben Okafor <ben@acme.example>",
            "Chen Wei <chen@acme.example>", "Dara Novak <dara@acme.example>")


class _FastImport:
    """Writes one repository's history through a single `git fast-import`."""

    def __init__(self, path: Path) -> None:
        self.path = path.absolute()  # git -C would read a relative marks file from inside it
        path.mkdir(parents=True)
        git(path, "init", "-q", "-b", "main")
        self.stream: list[bytes] = []
        self.marks = 0

    def commit(self, message: str, files: dict[str, str], when: datetime, author: str,
               authored: datetime | None = None) -> int:
        self.marks += 1
        stamp = int(when.timestamp())
        author_stamp = int((authored or when).timestamp())
        data = message.encode()
        out = [f"commit refs/heads/main\nmark :{self.marks}\n".encode(),
               f"author {author} {author_stamp} +0000\n".encode(),
               f"committer {author} {stamp} +0000\n".encode(),
               f"data {len(data)}\n".encode(), data, b"\n"]
        for name, content in files.items():
            body = content.encode()
            out += [f"M 100644 inline {name}\ndata {len(body)}\n".encode(), body, b"\n"]
        self.stream.append(b"".join(out))
        return self.marks

    def finish(self) -> dict[int, str]:
        marks_file = self.path / ".git" / "demo-marks"
        subprocess.run(["git", "-C", str(self.path), "fast-import", "--quiet",
                        f"--export-marks={marks_file}"], input=b"".join(self.stream),
                       check=True, capture_output=True)
        marks = {}
        for line in marks_file.read_text().splitlines():
            mark, sha = line.split()
            marks[int(mark[1:])] = sha
        marks_file.unlink()
        git(self.path, "checkout", "-q", "-f", "main")
        return marks


@dataclass
class _AppHistory:
    commits: list[tuple[datetime, int]] = field(default_factory=list)  # (time, mark)
    shas: dict[int, str] = field(default_factory=dict)

    def latest_before(self, moment: datetime) -> int | None:
        marks = [m for t, m in self.commits if t <= moment]
        return marks[-1] if marks else None


def build_demo(root: Path, *, end: datetime | None = None, days: int = 90,
               seed: int = 7, services: Sequence[DemoService] = SERVICES) -> Path:
    """Write the sample organisation under `root`; returns the path of its devex.toml.

    `services` and `days` let the benchmarks build a larger organisation the same way.
    """
    rng = random.Random(seed)  # noqa: S311 - reproducible sample data, not secrets
    end = (end or datetime.now(UTC)).replace(microsecond=0)
    start = (end - timedelta(days=days)).replace(hour=0, minute=0, second=0)
    apps = {service.name: _app_history(root / "apps" / service.name, service, start, end, rng)
            for service in services}
    _gitops_history(root / "gitops", apps, services, start, end, rng)
    config = root / "devex.toml"
    repos = "\n".join(f'[services.{s.name}]\nrepo = "apps/{s.name}"\n' for s in services)
    config.write_text(
        '[gitops]\nrepo = "gitops"\nenvironments = ["dev", "qa", "preprod", "prod"]\n'
        'production = "prod"\n\n'
        f"[jira]\nprojects = [{', '.join(repr(s.project) for s in services)}]\n\n" + repos)
    return config


def _app_history(path: Path, service: DemoService, start: datetime, end: datetime,
                 rng: random.Random) -> _AppHistory:
    repo = _FastImport(path)
    history = _AppHistory()
    ticket = 100
    repo.commit("Initial commit", {"README.md": f"# {service.name}\n"}, start - timedelta(days=1),
                _AUTHORS[0])
    history.commits.append((start - timedelta(days=1), repo.marks))
    day = start
    while day < end:
        if day.weekday() < 5:
            hours = sorted(rng.uniform(9, 18) for _ in range(_poisson(rng, service.commits_per_day)))
            for hour in hours:  # in time order, so that history and clock agree
                when = day + timedelta(hours=hour)
                if when >= end:
                    continue
                ticket += rng.choice((0, 1, 1))
                subject = rng.choice(_SUBJECTS).format(rng.choice(_THINGS))
                message = f"{service.project}-{ticket} {subject}"
                if rng.random() < 0.15:
                    message = f"{subject} (no ticket)"
                authored = when - timedelta(hours=rng.uniform(0.2, 30))
                mark = repo.commit(message, {"src/app.py": f"# {message}\nVERSION = {ticket}\n"},
                                   when, rng.choice(_AUTHORS), authored=authored)
                history.commits.append((when, mark))
        day += timedelta(days=1)
    history.commits.sort()
    history.shas = repo.finish()
    return history


def _poisson(rng: random.Random, mean: float) -> int:
    count, threshold, product = 0, 2.718281828 ** -mean, rng.random()
    while product > threshold:
        count += 1
        product *= rng.random()
    return count


def _gitops_history(path: Path, apps: dict[str, _AppHistory], services: Sequence[DemoService],
                    start: datetime, end: datetime, rng: random.Random) -> None:
    repo = _FastImport(path)
    events: list[tuple[datetime, str, str, int]] = []  # (time, service, environment, app mark)
    for service in services:
        app = apps[service.name]
        deployed: dict[str, int] = {}
        day = start
        week = 0
        while day < end:
            weekday = day.weekday()
            if weekday == 0 and day > start:
                week += 1
            plan = []
            if weekday < 5:
                plan.append(("dev", day + timedelta(hours=17, minutes=rng.randint(0, 50))))
            if weekday in (1, 3):
                plan.append(("qa", day + timedelta(hours=10, minutes=rng.randint(0, 50))))
                plan.append(("preprod", day + timedelta(hours=15, minutes=rng.randint(0, 50))))
            if weekday == 2 and week % service.prod_every_weeks == 0:
                plan.append(("prod", day + timedelta(hours=14, minutes=rng.randint(0, 50))))
            for environment, when in plan:
                if when >= end:
                    continue
                source = {"dev": None, "qa": "dev", "preprod": "qa", "prod": "preprod"}[environment]
                mark = (app.latest_before(when - timedelta(hours=1)) if source is None
                        else deployed.get(source))
                if mark is None or mark == deployed.get(environment):
                    continue
                deployed[environment] = mark
                events.append((when, service.name, environment, mark))
            day += timedelta(days=1)
    events.sort()
    events = _with_rollbacks(events, apps, end)
    state: dict[tuple[str, str], int] = {}
    repo.commit("Bootstrap the GitOps repository", {"README.md": "# GitOps\n"},
                start - timedelta(days=1), "Platform Bot <platform@acme.example>")
    for when, service_name, environment, mark in events:
        service = next(s for s in services if s.name == service_name)
        sha = apps[service_name].shas[mark]
        state[(service_name, environment)] = mark
        images = [f"  - name: {REGISTRY}/{service_name}\n    newTag: 1.{mark}.0-{sha[:7]}\n"]
        if service.sidecar:
            images.append(f"  - name: {service.sidecar}\n    newTag: \"7.2\"\n")
        manifest = ("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                    "resources:\n  - ../../base\nimages:\n" + "".join(images))
        repo.commit(f"Deploy {service_name} 1.{mark}.0-{sha[:7]} to {environment}",
                    {f"apps/{service_name}/overlays/{environment}/kustomization.yaml": manifest},
                    when, "Deploy Bot <deploy@acme.example>")
    repo.finish()


def _with_rollbacks(events: list[tuple[datetime, str, str, int]], apps: dict[str, _AppHistory],
                    end: datetime) -> list[tuple[datetime, str, str, int]]:
    """A production rollback of checkout about 20 days ago (recovered three hours later) and a
    qa rollback of catalog about 10 days ago."""
    result = list(events)
    for service, environment, days_ago, hours in (("checkout", "prod", 20, 3),
                                                 ("catalog", "qa", 10, 5)):
        target = end - timedelta(days=days_ago)
        history = [e for e in result if e[1] == service and e[2] == environment]
        after = [i for i, e in enumerate(history) if e[0] >= target and i > 0]
        if not after:
            continue
        bad = history[after[0]]
        previous = history[after[0] - 1]
        result.append((bad[0] + timedelta(hours=hours), service, environment, previous[3]))
    result.sort()
    return result
