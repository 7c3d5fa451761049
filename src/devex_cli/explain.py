"""`devex explain`: the deployments, commits and arithmetic behind one figure of `collect`.

The figures are not computed again here: `dora.compute` gives each figure's evidence
(`environment_evidence`, `promotion_evidence`, `ticket_evidence`) and makes the figure from it
(`environment_figures`, `promotion_summaries`), as `build_snapshot` does. This module lays that
evidence out as one JSON shape (docs/dora.md, "Explain: the JSON"); the table is drawn from that
same shape, so the two views cannot differ.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from devex_cli.collect import Collected
from devex_cli.config import Settings, bitbucket_workspace
from devex_cli.dora import compute
from devex_cli.dora.evidence import EnvironmentEvidence, FailureSignal
from devex_cli.dora.model import Change, DeploymentRecord
from devex_cli.dora.stats import (
    Summary,
    median,
    median_positions,
    percentile,
    percentile_position,
)
from devex_cli.errors import UsageError
from devex_cli.gitcli import GitFailed, git
from devex_cli.sources.gitops import in_service_set
from devex_cli.timeutil import rfc3339
from devex_cli.views.json import bottleneck_json, summary_json

log = logging.getLogger("devex.explain")

FIGURES = ("deployments", "lead-time", "change-failure-rate", "recovery-time", "bottleneck",
           "tickets")
P90 = 0.9


@dataclass(frozen=True)
class CommitInfo:
    """What a person recognises a commit by (from git; absent where only an API knows it)."""

    subject: str
    author: str


# sha -> subject and author, for commits of one repository
Annotations = Mapping[str, CommitInfo]


@dataclass(frozen=True)
class Links:
    """Where commits and tickets are shown on the web, where Bitbucket and Jira are set."""

    jira: str | None = None  # Jira base URL
    workspace: str | None = None  # Bitbucket workspace of the app repositories
    app_slugs: Mapping[str, str] | None = None  # service -> Bitbucket repository
    gitops: tuple[str, str] | None = None  # (workspace, repository) of the GitOps repository

    def ticket(self, key: str) -> str | None:
        return f"{self.jira.rstrip('/')}/browse/{key}" if self.jira else None

    def commit(self, service: str, sha: str) -> str | None:
        if self.workspace is None:
            return None
        slug = (self.app_slugs or {}).get(service, service)
        return f"https://bitbucket.org/{self.workspace}/{slug}/commits/{sha}"

    def gitops_commit(self, sha: str) -> str | None:
        if self.gitops is None:
            return None
        return f"https://bitbucket.org/{self.gitops[0]}/{self.gitops[1]}/commits/{sha}"


def links_of(settings: Settings, gitops_spec: str | None = None) -> Links:
    """Links from the configuration: Jira's URL, the Bitbucket workspace and repositories
    (the GitOps repository as `--gitops` gives it, else as configured)."""
    gitops = None
    spec = gitops_spec or settings.gitops.repo or ""
    for marker in ("bitbucket.org/", "bitbucket.org:"):
        if marker in spec:
            parts = spec.split(marker, 1)[1].removesuffix(".git").strip("/").split("/")
            if len(parts) >= 2:
                gitops = (parts[0], parts[1])
    return Links(
        jira=settings.jira.url or None,
        workspace=bitbucket_workspace(settings),
        app_slugs={name: s.bitbucket_repo for name, s in settings.services.items()
                   if s.bitbucket_repo},
        gitops=gitops)


def read_annotations(repo: Path, shas: Sequence[str]) -> dict[str, CommitInfo]:
    """Subjects and authors of `shas` in the git repository `repo`, in one `git log`; none
    when git cannot tell (a commit it does not have)."""
    wanted = list(dict.fromkeys(shas))
    if not wanted:
        return {}
    try:
        out = git(repo, "log", "--no-walk=unsorted", "--stdin", "--ignore-missing",
                  "--format=%x01%H%x02%an%x02%s",
                  input_text="\n".join(wanted) + "\n")
    except GitFailed as exc:
        log.info("commit subjects unknown in %s: %s", repo, exc)
        return {}
    found = {}
    for chunk in out.split("\x01")[1:]:
        sha, author, subject = [*chunk.rstrip("\n").split("\x02", 2), "", ""][:3]
        found[sha] = CommitInfo(subject, author)
    return found


# --- statistics in the open -----------------------------------------------------------------

def worked(values: Sequence[float]) -> dict[str, Any] | None:
    """The median, mean and p90 of `values` with their working: the sorted values, which of them
    the median takes, the sum divided for the mean, the p90's position and interpolation. The
    results are those of `Summary.of` (asserted), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    count = len(ordered)
    middle = median_positions(count)
    position, low, high = percentile_position(count, P90)
    middle_value, mean, p90 = median(ordered), sum(ordered) / count, percentile(ordered, P90)
    # the figures' own arithmetic (Summary.of), shown step by step
    assert Summary.of(values) == Summary(middle_value, mean, p90, count)
    return {
        "sorted": ordered,
        "count": count,
        "median": {"indexes": list(middle), "values": [ordered[i] for i in middle],
                   "value": middle_value},
        "mean": {"sum": sum(ordered), "count": count, "value": mean},
        "p90": {"position": position, "low_index": low, "high_index": high,
                "fraction": position - low, "low": ordered[low], "high": ordered[high],
                "value": p90},
    }


# --- the explanation ------------------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    figure: str
    service: str | None  # None: every service together (the bottleneck's 'all' row)
    environment: str | None


class Explainer:
    """One collection's evidence for any figure of one service."""

    def __init__(self, collected: Collected, links: Links,
                 annotate: Callable[[str | None, Sequence[str]], Annotations]) -> None:
        """`annotate(service, shas)` gives subjects and authors of app commits of `service`, or
        of GitOps commits when `service` is None."""
        self.collected = collected
        self.snapshot = collected.snapshot
        self.links = links
        self.annotate = annotate
        self.history = collected.history  # the one the snapshot's figures came from
        window = self.snapshot.window
        self.start, self.end, self.now = window.start, window.end, self.snapshot.generated_at

    # -- checks ----------------------------------------------------------------------------

    def check(self, request: Request) -> str | None:
        """The environment the figure is about (None: every stage, for a bottleneck).

        Raises UsageError for an unknown figure, service or environment, naming the known ones.
        """
        if request.figure not in FIGURES:
            raise UsageError(f"unknown figure {request.figure!r}: explain one of "
                             f"{', '.join(FIGURES)}")
        services = sorted({r.service for r in self.collected.records})
        if request.service is None and request.figure != "bottleneck":
            raise UsageError(f"explain {request.figure} needs a service: one of "
                             f"{', '.join(services) or 'none'}")
        if request.service is not None and request.service not in services:
            raise UsageError(f"unknown service {request.service!r}: the GitOps repository has "
                             f"{', '.join(services) or 'none'}",
                             hint="names are matched exactly; pass one of them")
        environments = self.snapshot.environments
        production = self.snapshot.production
        if request.environment is not None and request.environment not in environments:
            raise UsageError(f"unknown environment {request.environment!r}: the GitOps "
                             f"repository has {', '.join(environments) or 'none'}",
                             hint="names are matched exactly; pass one of them")
        if request.figure == "bottleneck":
            return request.environment
        if request.figure == "tickets":
            environment = request.environment or self.snapshot.qa_release
            if environment is None:
                raise UsageError("no QA release environment to list tickets of: the repository "
                                 f"has {', '.join(environments)}",
                                 hint="pass --environment ENV, one before production")
            if production is None or environment == production or (
                    list(environments).index(environment)
                    > list(environments).index(production)):
                raise UsageError(f"tickets are listed for an environment before production "
                                 f"({production or 'none'}), not {environment!r}")
            return environment
        environment = request.environment or production
        if environment is None:
            raise UsageError("the GitOps repository has no production environment",
                             hint="pass --environment ENV, or set gitops.production")
        return environment

    def explain(self, request: Request) -> dict[str, Any]:
        """The explanation of one figure as JSON (docs/dora.md, "Explain: the JSON")."""
        environment = self.check(request)
        head = {"figure": request.figure, "service": request.service,
                "environment": environment, "production": self.snapshot.production,
                "window": {"start": rfc3339(self.start), "end": rfc3339(self.end)}}
        if request.figure == "bottleneck":
            return {**head, **self._bottleneck(request.service, environment)}
        assert environment is not None and request.service is not None
        if request.figure == "tickets":
            return {**head, **self._tickets(request.service, environment)}
        evidence = compute.environment_evidence(self.history, request.service, environment,
                                                self.start, self.end, self.now)
        body = {"deployments": self._deployments, "lead-time": self._lead_time,
                "change-failure-rate": self._change_failure_rate,
                "recovery-time": self._recovery_time}[request.figure](evidence)
        return {**head, **body}

    # -- pieces ----------------------------------------------------------------------------

    def _deployment(self, record: DeploymentRecord,
                    gitops: Annotations | None = None) -> dict[str, Any]:
        info = (gitops or {}).get(record.gitops_commit)
        return {"time": rfc3339(record.time), "revision": record.revision,
                "version": record.version, "gitops_commit": record.gitops_commit,
                "gitops_subject": info.subject if info else None,
                "gitops_author": info.author if info else None,
                "gitops_url": self.links.gitops_commit(record.gitops_commit)}

    def _commit(self, service: str, change: Change, apps: Annotations) -> dict[str, Any]:
        info = apps.get(change.sha)
        return {"sha": change.sha, "subject": info.subject if info else None,
                "author": info.author if info else None,
                "author_time": rfc3339(change.author_time), "tickets": list(change.tickets),
                "url": self.links.commit(service, change.sha)}

    def _in_window(self, evidence: EnvironmentEvidence) -> str | None:
        """Why a figure of the window has no value when nothing was deployed in it."""
        if evidence.deployments:
            return None
        if (evidence.service, evidence.environment) not in self.history.by_key:
            return f"{evidence.service} was never deployed to {evidence.environment}"
        return f"no deployment of {evidence.service} to {evidence.environment} in the window"

    def _deployments(self, evidence: EnvironmentEvidence) -> dict[str, Any]:
        figures = compute.environment_figures(evidence)
        gitops = self.annotate(None, [r.gitops_commit for r in evidence.deployments])
        failed = {id(f.deployment) for f in evidence.failures}
        rollbacks = {id(r) for r in evidence.rollbacks}
        hotfixes = {id(r) for r in evidence.hotfixes}
        coverage = evidence.coverage
        unknown = None
        if coverage.days is None:
            unknown = (f"nothing was ever deployed to {evidence.environment}"
                       if coverage.began is None else
                       f"the history of {evidence.environment} starts "
                       f"{rfc3339(coverage.began)}, not before the window ends")
        rate = figures.deployment_frequency_per_day
        return {
            "deployments": [
                {**self._deployment(r, gitops),
                 "commits": None if r.change_set is None
                 else sum(1 for c in r.change_set if not c.merge),
                 "rollback": id(r) in rollbacks, "failed": id(r) in failed,
                 "hotfix": id(r) in hotfixes}
                for r in evidence.deployments],
            "redeployments": [rfc3339(t) for t in evidence.redeployments],
            "days": {
                "window_start": rfc3339(coverage.start), "window_end": rfc3339(coverage.end),
                "now": rfc3339(coverage.now),
                "history_began": rfc3339(coverage.began) if coverage.began else None,
                "from": rfc3339(coverage.covered_from) if coverage.covered_from else None,
                "from_reason": None if coverage.covered_from is None else
                "window start" if coverage.covered_from == coverage.start else "history start",
                "to": rfc3339(coverage.covered_to) if coverage.covered_to else None,
                "to_reason": None if coverage.covered_to is None else
                "window end" if coverage.covered_to == coverage.end else "now",
                "days": coverage.days},
            "result": {"deployments": figures.deployments,
                       # rounded as `collect --format json` rounds it
                       "deployment_frequency_per_day": None if rate is None
                       else round(rate, 6)},
            "unknown_because": unknown,
        }

    def _lead_time(self, evidence: EnvironmentEvidence) -> dict[str, Any]:
        figures = compute.environment_figures(evidence)
        apps = self.annotate(evidence.service, [lead.change.sha for lead in evidence.leads])
        gitops = self.annotate(None, [lead.deployment.gitops_commit for lead in evidence.leads])
        unknown = None
        if not evidence.leads:
            unknown = self._in_window(evidence)
            if unknown is None and all(r.change_set is None for r in evidence.deployments):
                unknown = ("no deployment in the window has a known change set (the first "
                           f"deployment, or no app repository for {evidence.service}: "
                           f"services.{evidence.service}.repo or Bitbucket)")
            elif unknown is None:
                unknown = ("the deployments in the window brought no commit that was not "
                           f"deployed to {evidence.environment} before")
        return {
            "commits": [
                {**self._commit(evidence.service, lead.change, apps),
                 "deployed_at": rfc3339(lead.deployment.time),
                 "deployment": self._deployment(lead.deployment, gitops),
                 "lead_seconds": lead.seconds}
                for lead in evidence.leads],
            "statistics": worked([lead.seconds for lead in evidence.leads]),
            "result": summary_json(figures.lead_time),
            "unknown_because": unknown,
        }

    def _failures(self, evidence: EnvironmentEvidence) -> list[dict[str, Any]]:
        gitops = self.annotate(None, [
            r.gitops_commit for f in evidence.failures
            for r in (f.deployment, f.recovered_by, *(s.by for s in f.signals)) if r is not None])

        def signal(s: FailureSignal) -> dict[str, Any]:
            return {"kind": s.kind, "how": s.how,
                    "by": None if s.by is None else self._deployment(s.by, gitops),
                    "ticket": s.ticket, "ticket_url": self.links.ticket(s.ticket)
                    if s.ticket else None, "at": rfc3339(s.at) if s.at else None}

        return [{"deployment": self._deployment(f.deployment, gitops),
                 "signals": [signal(s) for s in f.signals],
                 "recovered_by": None if f.recovered_by is None
                 else self._deployment(f.recovered_by, gitops),
                 "recovery_seconds": f.recovery_seconds}
                for f in evidence.failures]

    def _signals(self, service: str) -> list[str]:
        return list(self.snapshot.data_quality.failure_signals.get(service, ()))

    def _change_failure_rate(self, evidence: EnvironmentEvidence) -> dict[str, Any]:
        figures = compute.environment_figures(evidence)
        return {
            "failures": self._failures(evidence),
            "failure_signals": self._signals(evidence.service),
            "result": {"change_failure_rate": figures.change_failure_rate,
                       "failed_deployments": figures.failed,
                       "deployments": figures.deployments},
            "unknown_because": self._in_window(evidence),
        }

    def _recovery_time(self, evidence: EnvironmentEvidence) -> dict[str, Any]:
        figures = compute.environment_figures(evidence)
        recoveries = [f.recovery_seconds for f in evidence.failures
                      if f.recovery_seconds is not None]
        unknown = self._in_window(evidence)
        if unknown is None and not evidence.failures:
            unknown = (f"no failed deployment of {evidence.service} to {evidence.environment} "
                       "in the window: nothing to recover from")
        elif unknown is None and not recoveries:
            unknown = "no failed deployment in the window has recovered yet"
        return {
            "failures": self._failures(evidence),
            "failure_signals": self._signals(evidence.service),
            "statistics": worked(recoveries),
            "result": {"median": figures.recovery_time.median,
                       "count": figures.recovery_time.count},
            "unknown_because": unknown,
        }

    def _bottleneck(self, service: str | None, environment: str | None) -> dict[str, Any]:
        """One service's promotions, or (service None) every service's together: the waits
        the tables' 'all' row takes its medians from."""
        environments = self.snapshot.environments
        production = self.snapshot.production
        services = [service] if service is not None else sorted(
            {r.service for r in self.collected.records})
        by_service = [(name, p) for name in services
                      for p in compute.promotion_evidence(self.history, name, environments,
                                                          production, self.start, self.end)]
        promotions = [p for _, p in by_service]
        summaries, neck = compute.promotion_summaries(promotions, environments)
        apps: dict[str, Annotations] = {
            name: self.annotate(name, [p.change.sha for n, p in by_service if n == name])
            for name in services}
        stages = []
        for wait in summaries:
            if environment is not None and environment not in (wait.from_environment,
                                                                wait.to_environment):
                continue
            values = [s for p in promotions for a, b, s in p.waits
                      if (a, b) == (wait.from_environment, wait.to_environment)]
            stages.append({"from": wait.from_environment, "to": wait.to_environment,
                           **summary_json(wait.wait), "statistics": worked(values)})
        unknown = None
        if production is None:
            unknown = "the GitOps repository has no production environment"
        elif not promotions:
            unknown = (f"no commit of {service or 'any service'} was first deployed to "
                       f"{production} in the window")
        elif neck is None:
            unknown = ("no commit first deployed to production in the window reached it through "
                       "an earlier stage")
        return {
            "commits": [
                {**self._commit(name, p.change, apps[name]), "service": name,
                 "path": [{"environment": env, "time": rfc3339(at)} for env, at in p.path],
                 "waits": [{"from": a, "to": b, "seconds": s} for a, b, s in p.waits],
                 "out_of_order": [{"from": a, "to": b} for a, b in p.out_of_order],
                 "skipped": list(p.skipped)}
                for name, p in by_service],
            "stages": stages,
            "result": {"bottleneck": bottleneck_json(neck)},
            "unknown_because": unknown,
        }

    def _tickets(self, service: str, environment: str) -> dict[str, Any]:
        production = self.snapshot.production
        assert production is not None
        listed = {t.ticket: t for t in self.snapshot.tickets_in_environment
                  if (t.service, t.environment) == (service, environment)}
        carriers = compute.ticket_evidence(self.history, service, environment, production,
                                           self.collected.pending)
        apps = self.annotate(service, [c.sha for t in carriers for c in t.changes])
        tickets = []
        for carrier in carriers:
            info = listed.get(carrier.ticket)
            if info is None:  # a key of a project Jira does not have: not a ticket
                continue
            tickets.append({
                "ticket": carrier.ticket, "url": self.links.ticket(carrier.ticket),
                "status": info.status,
                "fix_versions": None if info.fix_versions is None else list(info.fix_versions),
                "commits": [self._commit(service, c, apps) for c in carrier.changes]})
        jira = any(t["fix_versions"] is not None for t in tickets)
        return {
            "source": ("app repository" if (service, environment) in self.collected.pending
                       else "change sets"),
            "tickets": tickets,
            "result": {"tickets": len(tickets),
                       "without_fix_version": sum(1 for t in tickets if t["fix_versions"] == [])
                       if jira else None},
            "unknown_because": None,
        }


# --- the table ------------------------------------------------------------------------------

WIDTH = 100


def duration(seconds: float | None) -> str:
    from devex_cli.views.tables import duration as short

    return short(seconds)


def _seconds(value: float) -> str:
    """Seconds as they are, without an exponent: `792477.5`, `1270267`."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


def _time(text: str | None) -> str:
    return "-" if text is None else text.replace("T", " ").removesuffix("Z")[:16]


def _release(deployment: Mapping[str, Any]) -> str:
    from devex_cli.views.tables import release

    return release(deployment["version"], deployment["revision"])


def render_table(explained: Mapping[str, Any], *, color: bool, file: TextIO | None = None) -> None:
    """The explanation for a person, in at most 100 columns. Every outside value (names,
    subjects, authors, tags) goes through textsafe's `safe_markup`."""
    from rich.console import Console

    console = Console(no_color=not color, highlight=False, emoji=False, width=WIDTH, file=file,
                      soft_wrap=False)
    figure = explained["figure"]
    {"deployments": _table_deployments, "lead-time": _table_lead_time,
     "change-failure-rate": _table_change_failure_rate, "recovery-time": _table_recovery_time,
     "bottleneck": _table_bottleneck, "tickets": _table_tickets}[figure](console, explained)
    if explained.get("unknown_because"):
        from devex_cli.textsafe import safe_markup as m

        console.print(f"No value: {m(explained['unknown_because'])}.", style="bold")


def _title(console: Any, explained: Mapping[str, Any], what: str) -> None:
    from devex_cli.textsafe import safe_markup as m

    window = explained["window"]
    where = f" in {m(explained['environment'])}" if explained["environment"] else ""
    who = m(explained["service"]) if explained["service"] is not None else "every service"
    console.print(f"{what} of {who}{where}, "
                  f"{_time(window['start'])} to {_time(window['end'])} (UTC)", style="bold")


# columns never cut (a cut SHA or time is no use); the others shrink, ending in an ellipsis
_FIXED = {"#": 3, "commit": 7, "gitops": 7, "time": 16, "authored": 16, "deployed": 16,
          "recovered at": 16, "lead": 8, "recovery": 8, "commits": 7, "marks": 5}
# and at most so wide, so that every table's columns add up to 100 at most
_WIDEST = {"subject": 24, "by": 12, "release": 16, "by release": 16}


def _table(*columns: str, right: Sequence[str] = (), widest: Mapping[str, int] | None = None
           ) -> Any:
    from rich.table import Table

    table = Table(box=None, pad_edge=False, show_edge=False)
    for name in columns:
        table.add_column(name, justify="right" if name in right else "left",
                         overflow="ellipsis", no_wrap=True, min_width=_FIXED.get(name),
                         max_width={**_WIDEST, **(widest or {})}.get(name))
    return table


def _subject(commit: Mapping[str, Any], width: int = 40) -> str:
    from devex_cli.textsafe import safe_markup as m

    text = commit.get("subject") or commit.get("gitops_subject") or ""
    return m(text if len(text) <= width else text[: width - 1] + "…")


def _link_notes(console: Any, rows: Sequence[tuple[str, str | None]]) -> None:
    """Links after a table (a URL does not fit in one of 100 columns)."""
    from devex_cli.textsafe import safe_markup as m

    shown = [(name, url) for name, url in rows if url]
    if shown:
        console.print("Links:")
        for name, url in shown:
            console.print(f"  {m(name)}  {m(url)}", overflow="ignore", crop=False)


def _statistics(console: Any, stats: Mapping[str, Any] | None, name: str) -> None:
    """The median, mean and p90 computed in the open."""
    if stats is None:
        return
    ordered = stats["sorted"]
    count = stats["count"]
    console.print(f"{name}, sorted ({count} values, [index] duration):", markup=False)
    cells = [f"[{i}] {duration(v)}".ljust(15) for i, v in enumerate(ordered)]
    for row in range(0, len(cells), 6):
        console.print("  " + "".join(cells[row:row + 6]).rstrip(), markup=False)
    med = stats["median"]
    if len(med["indexes"]) == 1:
        console.print(f"  median: the middle value [{med['indexes'][0]}] = "
                      f"{_seconds(med['value'])} s = {duration(med['value'])}")
    else:
        a, b = med["values"]
        console.print(f"  median: an even count, the mean of the two middle values "
                      f"[{med['indexes'][0]}] and [{med['indexes'][1]}]:")
        console.print(f"       ({_seconds(a)} + {_seconds(b)}) / 2 = {_seconds(med['value'])} s = "
                      f"{duration(med['value'])}")
    mean = stats["mean"]
    console.print(f"  mean: {_seconds(mean['sum'])} s / {mean['count']} = "
                  f"{_seconds(mean['value'])} s = {duration(mean['value'])}")
    p90 = stats["p90"]
    console.print(f"  p90: position (n - 1) x 0.9 = {count - 1} x 0.9 = {p90['position']:g}, "
                  f"linear between [{p90['low_index']}] and [{p90['high_index']}]:")
    console.print(f"       {_seconds(p90['low'])} + ({_seconds(p90['high'])} - "
                  f"{_seconds(p90['low'])}) x {p90['fraction']:.4g} = {_seconds(p90['value'])} s "
                  f"= {duration(p90['value'])}")


def _table_deployments(console: Any, explained: Mapping[str, Any]) -> None:
    from devex_cli.textsafe import safe_markup as m

    _title(console, explained, "Deployments")
    table = _table("#", "time", "release", "gitops", "subject", "by", "commits", "marks",
                   right=("#", "commits"), widest={"subject": 20})
    for n, d in enumerate(explained["deployments"], 1):
        marks = "".join(letter for letter, mark in (("R", "rollback"), ("F", "failed"),
                                                    ("H", "hotfix")) if d[mark])
        table.add_row(str(n), _time(d["time"]), m(_release(d)), d["gitops_commit"][:7],
                      _subject(d, 20), m(d["gitops_author"] or ""),
                      "?" if d["commits"] is None else str(d["commits"]), marks)
    console.print(table)
    console.print("marks: R rollback, F failed, H hotfix (skipped earlier stages); commits: in "
                  "its change set (?: unknown)")
    if explained["redeployments"]:
        console.print(f"Rebuilds of the deployed commit (not deployments): "
                      f"{len(explained['redeployments'])}")
    days = explained["days"]
    result = explained["result"]
    if days["days"] is not None:
        console.print(f"Days: from {_time(days['from'])} ({days['from_reason']}) to "
                      f"{_time(days['to'])} ({days['to_reason']}) = {days['days']:.6g} days")
        console.print(f"Frequency: {result['deployments']} deployments / {days['days']:.6g} "
                      f"days = {result['deployment_frequency_per_day']} per day", style="bold")
    else:
        console.print(f"Deployments: {result['deployments']}; frequency unknown", style="bold")
    _link_notes(console, [(d["gitops_commit"][:7], d["gitops_url"])
                          for d in explained["deployments"]])


def _table_lead_time(console: Any, explained: Mapping[str, Any]) -> None:
    from devex_cli.textsafe import safe_markup as m

    _title(console, explained, "Lead time for changes")
    table = _table("#", "commit", "subject", "authored", "deployed", "release", "lead",
                   right=("#", "lead"), widest={"release": 14})
    for n, c in enumerate(explained["commits"], 1):
        table.add_row(str(n), c["sha"][:7], _subject(c, 24), _time(c["author_time"]),
                      _time(c["deployed_at"]), m(_release(c["deployment"])),
                      duration(c["lead_seconds"]))
    console.print(table)
    console.print("Lead: the first deployment to the environment carrying the commit minus its "
                  "author time.")
    _statistics(console, explained["statistics"], "Leads")
    result = explained["result"]
    if result["count"]:
        console.print(f"Lead time: median {duration(result['median'])}, mean "
                      f"{duration(result['mean'])}, p90 {duration(result['p90'])} over "
                      f"{result['count']} commits", style="bold")
    _link_notes(console, [(c["sha"][:7], c["url"]) for c in explained["commits"]])


def _signal_text(signal: Mapping[str, Any]) -> str:
    from devex_cli.textsafe import safe_markup as m

    if signal["kind"] == "rollback":
        by = signal["by"]
        how = ("by ancestry: an ancestor of the revision it replaced"
               if signal["how"] == "ancestry" else "a tag deployed before, put back")
        return f"rolled back by {m(_release(by)[:14])} ({by['gitops_commit'][:7]}), {how}"
    if signal["kind"] == "argocd":
        return "Argo CD: sync failed or health Degraded"
    return f"incident {m(signal['ticket'])} opened {_time(signal['at'])}"


def _failure_table(console: Any, explained: Mapping[str, Any], *, recovery: bool) -> None:
    from devex_cli.textsafe import safe_markup as m

    table = _table("#", "time", "gitops", "release", "recovered at", "by release",
                   *(("recovery",) if recovery else ()), right=("#", "recovery"))
    for n, f in enumerate(explained["failures"], 1):
        d, r = f["deployment"], f["recovered_by"]
        row = [str(n), _time(d["time"]), d["gitops_commit"][:7], m(_release(d)[:20]),
               "not yet" if r is None else _time(r["time"]),
               "" if r is None else m(_release(r)[:20])]
        if recovery:
            row.append(duration(f["recovery_seconds"]))
        table.add_row(*row)
    console.print(table)
    for n, f in enumerate(explained["failures"], 1):
        for signal in f["signals"]:
            console.print(f"  {n}: {_signal_text(signal)}")
    signals = explained["failure_signals"]
    if signals:
        console.print(f"Failure signals read for {m(explained['service'])}: "
                      f"{', '.join(m(s) for s in signals)}"
                      + (" (GitOps history alone: a bad deployment fixed by rolling forward is "
                         "not seen)" if signals == ["gitops"] else ""))
    links = [(s["ticket"], s["ticket_url"]) for f in explained["failures"]
             for s in f["signals"] if s["ticket"]]
    _link_notes(console, links)


def _table_change_failure_rate(console: Any, explained: Mapping[str, Any]) -> None:
    _title(console, explained, "Change failure rate")
    _failure_table(console, explained, recovery=False)
    result = explained["result"]
    if result["change_failure_rate"] is not None:
        console.print(f"Change failure rate: {result['failed_deployments']} failed / "
                      f"{result['deployments']} deployments = {result['change_failure_rate']!r}"
                      f" ({result['change_failure_rate']:.0%})", style="bold")
    console.print("(`devex explain deployments` lists every deployment counted.)")


def _table_recovery_time(console: Any, explained: Mapping[str, Any]) -> None:
    _title(console, explained, "Failed deployment recovery time")
    _failure_table(console, explained, recovery=True)
    console.print("Recovery: from a failed deployment to the next one there that is not failed.")
    _statistics(console, explained["statistics"], "Recoveries")
    result = explained["result"]
    if result["count"]:
        console.print(f"Recovery time: median {duration(result['median'])} over "
                      f"{result['count']} recovered failures", style="bold")


def _table_bottleneck(console: Any, explained: Mapping[str, Any]) -> None:
    from devex_cli.textsafe import safe_markup as m

    _title(console, explained, "Promotion waits")
    stages = [(s["from"], s["to"]) for s in explained["stages"]]
    every = explained["service"] is None  # the 'all' row: a service column instead of subjects
    table = _table("#", "commit", "service" if every else "subject",
                   *(f"{m(a)}->{m(b)}" for a, b in stages), "notes",
                   right=("#", *(f"{m(a)}->{m(b)}" for a, b in stages)))
    for n, c in enumerate(explained["commits"], 1):
        waits = {(w["from"], w["to"]): w["seconds"] for w in c["waits"]}
        notes = [f"{m(o['from'])}->{m(o['to'])} out of order" for o in c["out_of_order"]]
        notes += [f"skipped {m(s)}" for s in c["skipped"]]
        table.add_row(str(n), c["sha"][:7], m(c["service"]) if every else _subject(c, 24),
                      *(duration(waits.get(stage)) for stage in stages), "; ".join(notes))
    console.print(table)
    console.print("Wait: between a commit's first deployments to consecutive environments of "
                  "its path (the times are in --format json).")
    for stage in explained["stages"]:
        console.print(f"Stage {m(stage['from'])} -> {m(stage['to'])}:", style="bold")
        _statistics(console, stage["statistics"], "  Waits")
    neck = explained["result"]["bottleneck"]
    if neck is not None:
        console.print(f"Bottleneck: {m(neck['from'])} -> {m(neck['to'])}, the largest median "
                      f"wait ({duration(neck['median_seconds'])})", style="bold")


def _table_tickets(console: Any, explained: Mapping[str, Any]) -> None:
    from devex_cli.textsafe import safe_markup as m

    _title(console, explained, "Tickets not yet in "
           f"{m(explained['production'] or 'production')}")
    table = _table("ticket", "status", "fix versions", "commit", "subject")
    for t in explained["tickets"]:
        versions = ("?" if t["fix_versions"] is None
                    else ", ".join(m(v) for v in t["fix_versions"]) or "none")
        for i, c in enumerate(t["commits"]):
            table.add_row(m(t["ticket"]) if i == 0 else "", m(t["status"] or "") if i == 0 else "",
                          versions if i == 0 else "", c["sha"][:7], _subject(c, 36))
    console.print(table)
    source = ("the commits the environment's revision has and production's has not (app "
              "repository)" if explained["source"] == "app repository" else
              "the change sets deployed there and not to production (no app repository)")
    console.print(f"From {source}.")
    result = explained["result"]
    missing = result["without_fix_version"]
    console.print(f"Tickets: {result['tickets']}"
                  + (f", {missing} without a fix version" if missing is not None else
                     " (fix versions come from Jira)"), style="bold")
    _link_notes(console, [(t["ticket"], t["url"]) for t in explained["tickets"]])


def explain(settings: Settings, collected: Collected, request: Request,
            gitops: str | None = None) -> dict[str, Any]:
    """The explanation of `request` over a collection, with commit subjects and authors read
    from the GitOps and app repositories (one `git log` each) and links where Bitbucket and
    Jira are configured. Raises UsageError for an unknown figure, service or environment."""
    def annotate(service: str | None, shas: Sequence[str]) -> Annotations:
        repo = (collected.gitops_repo if service is None
                else collected.app_repos.get(service))
        return read_annotations(repo, shas) if repo is not None else {}

    served = settings.collect.services
    if request.service is not None and not in_service_set(request.service, served):
        raise UsageError(f"service {request.service!r} is not one this collector reads: "
                         f"collect.services is {', '.join(served)}",
                         hint="explain it without collect.services (DEVEX_COLLECT_SERVICES), "
                              "or with a set that has it")
    return Explainer(collected, links_of(settings, gitops), annotate).explain(request)
