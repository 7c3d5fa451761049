"""`devex demo`: a sample organisation in a temporary folder, built in a second or two.

Four services, four environments, about 90 days of app and GitOps history made with
`git fast-import` (one process per repository): daily development, a QA release twice a week,
pre-production right after each QA release, a weekly production train (fortnightly for payments,
whose change board meets every other week: its bottleneck; for the others the wait for QA and the
one for production are close, and which is the longer depends on the week), a production rollback
and a qa one, and tickets in commit messages. Every commit goes dev -> qa -> preprod -> prod,
never a later stage before an earlier one. The Jira side (`jira/issues.json`: the tickets of those
commits, with fix versions on most and missing on a few not yet released) is what `demo_jira`
serves. Deterministic for a given seed and end time.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import subprocess
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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
_MADE = ("apps", "gitops", "jira", "devex.toml", ".devex-cache", "jira.env", KEPT_MARKER)
ISSUES_FILE = Path("jira") / "issues.json"  # under the organisation's folder
GATE_SERVICE = "payments"  # the service of the gate command the demo prints


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
            "Made by `devex demo --keep`: running it again here replaces apps/, gitops/, jira/ "
            "and devex.toml.\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot build the demo in {folder}: {exc.strerror or exc}",
                         hint=hint) from None


# The caller's own systems are not the demo's: its collection reads its folder and its own Jira.
_NOT_THE_DEMOS = ("JIRA_", "ARGOCD_", "BITBUCKET_", "DEVEX_GITOPS_REPO", "DEVEX_CACHE_DIR")


def demo_environment(environ: Mapping[str, str], jira: Mapping[str, str],
                     folder: Path) -> dict[str, str]:
    """The environment of the demo's collection: `environ` without the caller's Jira, Argo CD,
    Bitbucket and GitOps settings, with the demo Jira's variables, and a cache in the
    organisation's folder (so that nothing of a temporary organisation is left behind)."""
    kept = {k: v for k, v in environ.items() if not k.startswith(_NOT_THE_DEMOS)}
    return {**kept, **jira, "DEVEX_CACHE_DIR": str(folder / ".devex-cache")}


def write_jira_env(folder: Path, jira: Mapping[str, str]) -> Path:
    """`jira.env` in the organisation's folder (owner-only): the demo Jira's variables, one
    NAME=VALUE a line, for `env $(cat jira.env) devex ...`."""
    path = folder / "jira.env"
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text("".join(f"{k}={v}\n" for k, v in jira.items()), encoding="utf-8")
    return path


def gate_command(folder: Path, program: str = "devex") -> str:
    """The QA release gate of GATE_SERVICE against the organisation in `folder` and the demo
    Jira of `folder/jira.env`, as one line for a shell."""
    folder = folder.absolute()

    def q(path: Path) -> str:
        return shlex.quote(str(path))

    return (f"env $(cat {q(folder / 'jira.env')}) {program} --config {q(folder / 'devex.toml')} "
            f"gate qa-release --service {GATE_SERVICE} --repo {q(folder / 'apps' / GATE_SERVICE)}")


def gate_note(folder: Path, program: str, *, kept: bool) -> str:
    """What ends the demo's tables: how to try the QA release gate, its command last.

    The demo's Jira lives only as long as the command, so the gate needs `demo --serve`."""
    target = (folder if kept else Path("devex-demo")).absolute()
    prose = (
        "The QA release gate on this organisation: the demo's Jira stopped with this command, so "
        f"keep both up with `{program} demo --keep {shlex.quote(str(target))} --serve` and run "
        "the line below in another terminal. It blocks (exit 1) on the "
        f"{GATE_SERVICE} tickets without a fix version; give them one in "
        f"{target / ISSUES_FILE} and it allows (exit 0). Against your own Jira, set JIRA_URL, "
        "JIRA_EMAIL and JIRA_API_TOKEN instead.")
    return f"\n{paragraph(prose)}\n  {gate_command(target, program)}\n"


EXPLAIN_FIGURE = "lead-time"  # the figure of the explain command the demo ends with


def explain_command(folder: Path, program: str = "devex") -> str:
    """`devex explain` of GATE_SERVICE's lead time against the organisation in `folder`, as one
    line for a shell (offline: the demo's Jira stops with the demo, and no other is its)."""
    config = shlex.quote(str(folder.absolute() / "devex.toml"))
    return (f"{program} --config {config} explain {EXPLAIN_FIGURE} --service {GATE_SERVICE} "
            "--offline")


def explain_note(folder: Path, program: str, *, kept: bool) -> str:
    """What ends the demo: the command that shows why a figure is what it is, last."""
    target = (folder if kept else Path("devex-demo")).absolute()
    where = ("" if kept else
             f"keep the organisation with `{program} demo --keep {shlex.quote(str(target))}`, "
             "then ")
    prose = (f"Why a figure is what it is: `explain` lists the deployments, commits and "
             f"arithmetic behind any of them (deployments, lead-time, change-failure-rate, "
             f"recovery-time, bottleneck, tickets); {where}run, for {GATE_SERVICE}' lead time:")
    return f"\n{paragraph(prose)}\n  {explain_command(target, program)}\n"


def paragraph(text: str, width: int = 100) -> str:
    """`text` folded at `width` columns, never inside a word, a path or a flag."""
    import textwrap

    return textwrap.fill(text, width=width, break_long_words=False, break_on_hyphens=False)


def serving_note(folder: Path, program: str, jira_url: str) -> str:
    """What `demo --serve` says once up: where its Jira is and the gate command to try."""
    issues = folder.absolute() / ISSUES_FILE
    return (
        f"devex: the demo's Jira answers at {jira_url} with the tickets of {issues} "
        f"(credentials in {folder.absolute() / 'jira.env'}) until this stops; the QA release "
        "gate against it, from another terminal:\n"
        f"  {gate_command(folder, program)}\n"
        f"devex: it blocks (exit 1) on tickets without a fix version; give them one in {issues} "
        "and it allows (exit 0).\n")


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
        stream, self.stream = b"".join(self.stream), []
        subprocess.run(["git", "-C", str(self.path), "fast-import", "--quiet",
                        f"--export-marks={marks_file}"], input=stream,
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
    tickets: dict[int, str] = field(default_factory=dict)  # mark -> the ticket it names
    summaries: dict[str, tuple[str, datetime]] = field(default_factory=dict)  # key -> first subject
    imported: Future[dict[int, str]] | None = None  # the fast-import writing it: its marks

    def latest_before(self, moment: datetime) -> int | None:
        """The last commit at or before `moment` (`commits` is in time order)."""
        found = bisect_right(self.commits, moment, key=lambda commit: commit[0])
        return self.commits[found - 1][1] if found else None


def build_demo(root: Path, *, end: datetime | None = None, days: int = 90,
               seed: int = 7, services: Sequence[DemoService] = SERVICES,
               work_in_progress: bool = False) -> Path:
    """Write the sample organisation under `root`; returns the path of its devex.toml.

    `services` and `days` let the benchmarks build a larger organisation the same way. With
    `work_in_progress`, GATE_SERVICE gets a commit pushed 20 minutes before `end` and in no
    environment yet, so that the QA release gate always has a ticket to check.
    """
    rng = random.Random(seed)  # noqa: S311 - reproducible sample data, not secrets
    end = (end or datetime.now(UTC)).replace(microsecond=0)
    start = (end - timedelta(days=days)).replace(hour=0, minute=0, second=0)
    # Histories are drawn in order (one random sequence); each repository's fast-import runs
    # beside the drawing of the next ones (the benchmark's organisation has 2,000). Interrupted,
    # the imports not started are dropped and the running ones end before the folder is removed.
    imports = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)
    try:
        apps = {service.name: _app_history(root / "apps" / service.name, service, start, end,
                                           rng, imports, work_in_progress=work_in_progress)
                for service in services}
        for app in apps.values():
            app.shas = app.imported.result() if app.imported is not None else app.shas
    finally:
        imports.shutdown(wait=True, cancel_futures=True)
    events = _gitops_history(root / "gitops", apps, services, start, end, rng)
    _write_issues(root / ISSUES_FILE, apps, services, events, start, end,
                  random.Random(seed + 1))  # noqa: S311 - sample data
    config = root / "devex.toml"
    repos = "\n".join(f'[services.{s.name}]\nrepo = "apps/{s.name}"\n' for s in services)
    config.write_text(
        '[gitops]\nrepo = "gitops"\nenvironments = ["dev", "qa", "preprod", "prod"]\n'
        'production = "prod"\n\n'
        f"[jira]\nprojects = [{', '.join(repr(s.project) for s in services)}]\n\n" + repos)
    return config


def _app_history(path: Path, service: DemoService, start: datetime, end: datetime,
                 rng: random.Random, imports: ThreadPoolExecutor, *,
                 work_in_progress: bool = False) -> _AppHistory:
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
                key = f"{service.project}-{ticket}"
                message = f"{key} {subject}"
                if rng.random() < 0.15:
                    message, key = f"{subject} (no ticket)", ""
                authored = when - timedelta(hours=rng.uniform(0.2, 30))
                mark = repo.commit(message, {"src/app.py": f"# {message}\nVERSION = {ticket}\n"},
                                   when, rng.choice(_AUTHORS), authored=authored)
                history.commits.append((when, mark))
                if key:
                    history.tickets[mark] = key
                    history.summaries.setdefault(key, (subject, authored))
        day += timedelta(days=1)
    if work_in_progress and service.name == GATE_SERVICE:
        # Work just pushed, in no environment yet: what the QA release gate checks next (its own
        # random numbers, so that the other services' histories are the same with or without it).
        own = random.Random(ticket)  # noqa: S311 - sample data
        when, ticket = end - timedelta(minutes=20), ticket + 1
        key, subject = f"{service.project}-{ticket}", own.choice(_SUBJECTS).format(
            own.choice(_THINGS))
        mark = repo.commit(f"{key} {subject}", {"src/app.py": f"# {key}\nVERSION = {ticket}\n"},
                           when, own.choice(_AUTHORS), authored=when - timedelta(hours=2))
        history.commits.append((when, mark))
        history.tickets[mark] = key
        history.summaries.setdefault(key, (subject, when - timedelta(hours=2)))
    history.commits.sort()
    history.imported = imports.submit(repo.finish)
    return history


def _poisson(rng: random.Random, mean: float) -> int:
    count, threshold, product = 0, 2.718281828 ** -mean, rng.random()
    while product > threshold:
        count += 1
        product *= rng.random()
    return count


_Event = tuple[datetime, str, str, int]  # (time, service, environment, app mark)


def _train_day(day: datetime, start: datetime, service: DemoService) -> bool:
    """Whether the service's production train runs on `day`: Wednesdays of every
    `prod_every_weeks`-th week, counting the Mondays since `start`."""
    week = ((day.date() - start.date()).days + start.weekday()) // 7
    return day.weekday() == 2 and week % service.prod_every_weeks == 0


def _gitops_history(path: Path, apps: dict[str, _AppHistory], services: Sequence[DemoService],
                    start: datetime, end: datetime, rng: random.Random) -> list[_Event]:
    repo = _FastImport(path)
    events: list[_Event] = []
    for service in services:
        app = apps[service.name]
        deployed: dict[str, int] = {}
        day = start
        while day < end:
            weekday = day.weekday()
            plan = []
            if weekday < 5:
                plan.append(("dev", day + timedelta(hours=17, minutes=rng.randint(0, 50))))
            if weekday in (1, 3):
                plan.append(("qa", day + timedelta(hours=10, minutes=rng.randint(0, 50))))
                plan.append(("preprod", day + timedelta(hours=15, minutes=rng.randint(0, 50))))
            if _train_day(day, start, service):
                plan.append(("prod", day + timedelta(hours=14, minutes=rng.randint(0, 50))))
            # In the day's order: qa at 10:00 takes what dev had before, not dev's 17:00 release.
            plan.sort(key=lambda step: step[1])
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
    by_name = {service.name: service for service in services}
    for when, service_name, environment, mark in events:
        service = by_name[service_name]
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
    return events


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


def _write_issues(path: Path, apps: dict[str, _AppHistory], services: Sequence[DemoService],
                  events: Sequence[_Event], start: datetime, end: datetime,
                  rng: random.Random) -> None:
    """The Jira side of the organisation: every ticket the commits name. A released ticket has
    the release it went out with as fix version, one not yet released the next production
    train's; about one in five of those not yet released (at least one in the QA release and
    one among the newer, per service) has none yet: what the QA release gate is for."""
    issues = []
    by_service: dict[str, list[_Event]] = {}
    for event in events:  # in time order
        by_service.setdefault(event[1], []).append(event)
    for service in services:
        app = apps[service.name]
        mine = by_service.get(service.name, [])
        last = {environment: mark for _, _, environment, mark in mine}  # the state at the end
        prod, qa = last.get("prod", 0), last.get("qa", 0)
        released_with: dict[int, datetime] = {}  # mark -> when it first reached production
        marks = sorted(app.tickets)
        reached = 0
        for when, _, environment, mark in mine:
            if environment == "prod":
                while reached < len(marks) and marks[reached] <= mark:
                    released_with[marks[reached]] = when
                    reached += 1
        latest: dict[str, int] = {}  # ticket -> its latest commit
        for mark, key in sorted(app.tickets.items()):
            latest[key] = mark
        stage = {key: "prod" if mark <= prod else "qa" if mark <= qa else "dev"
                 for key, mark in latest.items()}
        missing: set[str] = set()
        for where in ("qa", "dev"):
            pending = sorted(k for k, at in stage.items() if at == where)
            if pending:
                missing |= set(rng.sample(pending, max(1, round(len(pending) / 5))))
        upcoming = _next_train(end, start, service)
        for key in sorted(latest, key=lambda k: latest[k]):
            subject, created = app.summaries[key]
            if stage[key] == "prod":
                versions = [f"Release {released_with[latest[key]]:%Y-%m-%d}"]
                status = "Done"
            else:
                versions = [] if key in missing else [f"Release {upcoming:%Y-%m-%d}"]
                status = "In QA" if stage[key] == "qa" else "In Progress"
            issues.append({"key": key, "summary": subject,
                           "type": "Bug" if subject.startswith("Fix") else "Story",
                           "status": status, "fix_versions": versions,
                           "created": created.strftime("%Y-%m-%dT%H:%M:%S.000+0000")})
    projects = [{"key": s.project, "name": s.name.capitalize()} for s in services]
    path.parent.mkdir(parents=True, exist_ok=True)
    # One ticket a line, so that a person can give one a fix version in any editor.
    lines = ",\n".join(f"    {json.dumps(issue, ensure_ascii=False)}" for issue in issues)
    path.write_text(
        "{\n  \"about\": \"The Jira of devex demo: its tickets, read anew on every request.\",\n"
        f"  \"projects\": {json.dumps(projects)},\n  \"issues\": [\n{lines}\n  ]\n}}\n",
        encoding="utf-8")


def _next_train(end: datetime, start: datetime, service: DemoService) -> datetime:
    """The day of the service's first production train after `end`."""
    day = end.replace(hour=0, minute=0, second=0)
    while not (_train_day(day, start, service) and day + timedelta(hours=15) > end):
        day += timedelta(days=1)
    return day
