"""From commits to their tickets and what Jira says of them: one path, taken by the gate, the
deployment card and the collector, so that the rule for what a ticket is lives in one place.

`TicketRule` is pure (the ticket pattern and projects, from the settings and the command's
flags); `look_up` is the one way to ask Jira (the client's lifecycle included), and
`open_tickets` the one way to open the ticket source (a `sources.base.TicketSource`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from devex_cli.config import Settings
from devex_cli.sources.base import OnFirstUse
from devex_cli.tickets import (
    TicketLookup,
    TicketPattern,
    compile_ticket_pattern,
    extract_ticket_keys,
    project_set,
)

if TYPE_CHECKING:
    from devex_cli.sources.base import TicketSource


class TicketRule:
    """Which words of a commit message are ticket keys: the pattern (`--ticket-pattern`, else
    `jira.ticket_pattern`, else the contract's) and the projects (`--project`, else
    `jira.projects`, else any). Raises UsageError for a pattern that does not compile."""

    def __init__(self, settings: Settings, *, pattern: str | None = None,
                 projects: Sequence[str] = ()) -> None:
        self.pattern: TicketPattern = compile_ticket_pattern(
            pattern or settings.jira.ticket_pattern)
        self.projects: tuple[str, ...] = tuple(projects) or settings.jira.projects
        self._wanted = project_set(self.projects)  # once: keys() is asked once per commit

    def keys(self, messages: Iterable[str]) -> list[str]:
        """The keys in the messages, once each, in order of first appearance."""
        return extract_ticket_keys(messages, pattern=self.pattern, projects=self._wanted)


def look_up(settings: Settings, keys: Sequence[str], *, rule: TicketRule | None = None,
            with_sprint: bool = False, client: TicketSource | None = None) -> TicketLookup:
    """What Jira says of the keys (tickets, keys that are not tickets, tickets not found), asked
    in batches; through `client` when one is open, else a client opened and closed here.

    Raises ConfigError when Jira is not configured or has no credentials, UpstreamError when it
    cannot be asked or answers what cannot be read.
    """
    if not keys:
        return TicketLookup()
    projects = rule.projects if rule is not None else ()
    if client is not None:
        return client.fetch_tickets(keys, projects=projects, with_sprint=with_sprint)
    with open_tickets(settings) as tickets:
        return tickets.fetch_tickets(keys, projects=projects, with_sprint=with_sprint)


def open_tickets(settings: Settings) -> TicketSource:
    """The configured ticket source (Jira), to be closed by the caller (a context manager).
    Raises ConfigError when it is not configured or has no credentials."""
    from devex_cli.sources.jira import JiraClient  # the HTTP stack, now it is used

    return JiraClient(settings)


def ticket_source(settings: Settings) -> OnFirstUse[TicketSource]:
    """The ticket source, opened when first asked (never when nothing asks) and closed once:
    for a caller that may ask it several times, or not at all."""
    from devex_cli.sources.jira import JiraClient

    return OnFirstUse(JiraClient.system, lambda: open_tickets(settings))
