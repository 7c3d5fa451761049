"""`devex gate qa-release`: block a QA deployment whose tickets have no Jira Release Version.

`run` fetches what the gate needs (commits since the release, Jira's answer) and hands it to
`gates.decision.decide`, which is pure.
"""

from __future__ import annotations

import contextlib
import logging
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from devex_cli.changes import TicketRule, look_up, open_tickets
from devex_cli.config import Settings
from devex_cli.errors import DevexError, InputError, UpstreamError, UsageError
from devex_cli.gates.decision import GateReport, decide
from devex_cli.parallel import in_background
from devex_cli.pipeline_context import service_name
from devex_cli.sources import gitops
from devex_cli.sources.apprepo import AppRepo
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

