"""`devex gate qa-release`: block a QA deployment whose tickets have no Jira Release Version.

`decide` is pure (commits and Jira's answer in, a report out); `run` fetches what it needs.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from devex_cli.changes import TicketRule, look_up, open_tickets
from devex_cli.config import Settings
from devex_cli.errors import DevexError, InputError, UpstreamError, UsageError
from devex_cli.parallel import in_background
from devex_cli.pipeline_context import service_name
from devex_cli.sources import gitops
from devex_cli.sources.apprepo import AppRepo
from devex_cli.sources.commitgraph import GraphCommit
from devex_cli.tickets import TicketLookup

if TYPE_CHECKING:
    from devex_cli.sources.base import TicketSource

log = logging.getLogger("devex.gate")


@dataclass(frozen=True)
class GateOptions:
    service: str | None  # None: $BITBUCKET_REPO_SLUG
    environment: str
    gitops: str | None
    repo: Path
    head: str
    projects: tuple[str, ...] = ()
    ticket_pattern: str | None = None
    fail_open: bool = False


@dataclass(frozen=True)
class GateTicket:
    key: str  # as written in the commits
    fix_versions: tuple[str, ...]
    status: str
    summary: str
    url: str
    moved_to: str | None = None  # the key Jira gives it now, when it was moved


@dataclass(frozen=True)
class GateReport:
    decision: str  # "blocked" | "allowed"
    service: str
    environment: str
    deployed_revision: str | None
    head: str
    commits: int
    tickets: tuple[GateTicket, ...] = ()
    missing_fix_version: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()  # keys whose project is not a Jira project: not tickets
    not_found: tuple[str, ...] = ()  # tickets Jira did not return: block unless --fail-open
    warnings: tuple[str, ...] = field(default=())
    fail_open: bool = False  # allowed on doubt, by --fail-open
    browse_url: str = ""  # {JIRA_URL}/browse

    @property
    def blocked(self) -> bool:
        return self.decision == "blocked"


def decide(
    *,
    service: str,
    environment: str,
    deployed_revision: str | None,
    head: str,
    commits: Sequence[GraphCommit],
    keys: Sequence[str],
    lookup: TicketLookup,
    browse_url: str,
    warnings: Sequence[str] = (),
    fail_open: bool = False,
) -> GateReport:
    """Blocked when a ticket has no fix version, or when Jira did not return a ticket of one of
    its projects (not found, or not visible to this account): a doubt never allows, unless
    `fail_open`, which allows such tickets with a warning. Keys of projects Jira does not have
    (`UTF-8`) are not tickets: they only warn."""
    tickets = tuple(
        GateTicket(key, t.fix_versions, t.status, t.summary, f"{browse_url}/{t.key}",
                   moved_to=t.key if t.key != key else None)
        for key in keys if (t := lookup.tickets.get(key)) is not None
    )
    missing = tuple(t.key for t in tickets if not t.fix_versions)
    unknown = tuple(k for k in keys if k in lookup.not_tickets)
    not_found = tuple(k for k in keys if k in lookup.not_found)
    notes = list(warnings)
    if unknown:
        notes.append(f"not Jira tickets (their projects are not in Jira; ignored): "
                     f"{', '.join(unknown)}")
    moved = [f"{t.key} is now {t.moved_to}" for t in tickets if t.moved_to]
    if moved:
        notes.append(f"moved in Jira: {'; '.join(moved)}")
    doubt_allowed = bool(not_found) and fail_open and not missing
    if doubt_allowed:
        notes.append(f"FAIL-OPEN: {len(not_found)} ticket(s) not found in Jira or not visible "
                     f"to this account ({', '.join(not_found)}); allowed WITHOUT checking them")
    return GateReport(
        decision="blocked" if missing or (not_found and not doubt_allowed) else "allowed",
        service=service, environment=environment, deployed_revision=deployed_revision,
        head=head, commits=len(commits), tickets=tickets, missing_fix_version=missing,
        unknown=unknown, not_found=not_found, warnings=tuple(notes),
        fail_open=doubt_allowed, browse_url=browse_url,
    )


def run(options: GateOptions, settings: Settings) -> GateReport:
    """Read the GitOps repo, the app repo and Jira, and decide.

    Raises UsageError (2) for bad input, UpstreamError (3) when Jira or a remote fails (unless
    `fail_open`, which allows with a warning when Jira cannot be asked).
    """
    jira = _jira_in_background(settings)
    try:
        return _run(options, settings, jira)
    finally:
        if jira is not None:
            with contextlib.suppress(DevexError):  # not needed, or its failure reported
                jira.result().close()


def _jira_in_background(settings: Settings) -> Future[TicketSource] | None:
    """Jira's client (the HTTP stack imported, TLS set up) made while git reads the commits:
    a gate's run is mostly its start, and this hides part of it."""
    if not settings.jira.url:
        return None
    return in_background(lambda: open_tickets(settings), name="jira")


def _run(options: GateOptions, settings: Settings,
         jira_client: Future[TicketSource] | None) -> GateReport:
    service = service_name(options.service, settings.environ)
    app = AppRepo(options.repo)

    def read_gitops() -> gitops.GitOpsHistory:
        repo = gitops.open_repository(options.gitops, settings)
        return gitops.read_history(
            repo, settings,
            has_commit=lambda pairs: [(s, sha) for s, sha in pairs
                                      if s == service and app.has_commit(sha)],
            variant=f"gate-{service}",
        )

    reading = in_background(read_gitops, name="gitops")  # both repositories side by side
    head = app.resolve(options.head)
    if head is None:
        raise UsageError(f"--head {options.head} is not a commit of {app.path}")
    history = reading.result()
    history.require_environments([options.environment])
    current = history.state(service, options.environment)
    for problem in history.broken(service, options.environment):
        raise InputError(
            f"{problem.path} cannot be read at {problem.commit[:12]}: {problem.reason}",
            hint="fix the manifest in the GitOps repository")
    state = current
    if state is None:
        if service not in history.services:
            known = ", ".join(history.services) or "none"
            raise UsageError(f"unknown service {service!r}: the GitOps repository has {known}",
                             hint="pass --service with one of them, or check gitops.manifests")
        warning = (f"{service} has never been deployed to {options.environment}: "
                   "no QA release to compare with, nothing to check")
        return GateReport("allowed", service, options.environment, None, head, 0,
                          warnings=(warning,))
    revision = state.release.revision
    if revision is None:
        raise UsageError(
            f"{service} in {options.environment} runs {state.release.version!r}, "
            "which names no commit",
            hint="tag images with the commit SHA (e.g. 1.4.2-58ddfd6) so the gate can find the "
                 "commits since the QA release",
        )
    base, commits = app.range_commits(revision, head)
    rule = TicketRule(settings, pattern=options.ticket_pattern, projects=options.projects)
    keys = rule.keys(c.message for c in commits)
    log.info("%d commits since %s, %d ticket keys", len(commits), base[:12], len(keys))
    lookup, browse, warnings = TicketLookup(), settings.jira.url or "", []
    if keys:
        try:
            lookup = look_up(settings, keys, rule=rule,
                             client=jira_client.result() if jira_client else None)
        except UpstreamError as exc:
            if not options.fail_open:
                raise
            warnings.append(f"FAIL-OPEN: Jira could not be asked ({exc}); "
                            "the deployment is allowed WITHOUT checking fix versions")
            return GateReport("allowed", service, options.environment, base, head,
                              len(commits), warnings=tuple(warnings), fail_open=True)
    return decide(service=service, environment=options.environment, deployed_revision=base,
                  head=head, commits=commits, keys=keys, lookup=lookup,
                  browse_url=f"{browse.rstrip('/')}/browse", warnings=warnings,
                  fail_open=options.fail_open)

