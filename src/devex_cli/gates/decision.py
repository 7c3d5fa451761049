"""The QA release gate's decision, pure: the commits since the release and Jira's answer in, a
report out (`decide`). `gates.qa_release` gathers the inputs; `gates.messages` renders the
report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from devex_cli.sources.commitgraph import GraphCommit
from devex_cli.tickets import TicketLookup


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
