"""Ticket keys from commit messages, and what Jira says of tickets. Pure: no I/O."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from devex_cli.errors import UsageError

DEFAULT_TICKET_PATTERN = r"\b[A-Z][A-Z0-9_]+-[1-9][0-9]*\b"


PATTERN_TIMEOUT = 0.25  # seconds per message for a configured pattern


class TicketPattern:
    """A ticket regex. The default one is linear; a configured one runs under the `regex`
    module's timeout, so a pattern with catastrophic backtracking fails fast instead of hanging
    a pipeline."""

    def __init__(self, pattern: str | None) -> None:
        self.source = pattern or DEFAULT_TICKET_PATTERN
        self.configured = pattern is not None
        engine: Any = re
        if self.configured:
            import regex

            engine = regex
        try:
            self._compiled: Any = engine.compile(self.source)
        except engine.error as exc:
            raise UsageError(
                f"the ticket pattern {pattern!r} is not a valid regular expression: {exc}",
                hint="fix --ticket-pattern or jira.ticket_pattern",
            ) from None
        self.groups: int = self._compiled.groups

    def finditer(self, text: str) -> Iterator[Any]:
        if not self.configured:
            return iter(self._compiled.finditer(text))
        try:
            return iter(list(self._compiled.finditer(text, timeout=PATTERN_TIMEOUT)))
        except TimeoutError:
            raise UsageError(
                f"the ticket pattern {self.source!r} took over {PATTERN_TIMEOUT}s on one commit "
                "message (catastrophic backtracking?)",
                hint="simplify --ticket-pattern or jira.ticket_pattern") from None


def compile_ticket_pattern(pattern: str | None) -> TicketPattern:
    """The ticket regex; a pattern that does not compile is a usage error."""
    return TicketPattern(pattern)


def project_set(projects: Iterable[str]) -> frozenset[str]:
    """Project keys as `extract_ticket_keys` compares them (upper case)."""
    return frozenset(p.upper() for p in projects)


def extract_ticket_keys(
    messages: Iterable[str],
    *,
    pattern: TicketPattern | None = None,
    projects: Sequence[str] | frozenset[str] = (),
) -> list[str]:
    """Keys in the messages, de-duplicated, in order of first appearance.

    With `projects`, only keys of those Jira projects count (a `project_set` is used as it is:
    a caller asking once per commit of thousands of projects' histories makes it once). A
    pattern with a group gives the key in its first group (`(?:refs|fixes) ([A-Z]+-[0-9]+)`),
    else the whole match is the key.
    """
    regex = pattern or compile_ticket_pattern(None)
    wanted = projects if isinstance(projects, frozenset) else project_set(projects)
    seen: dict[str, None] = {}
    for message in messages:
        for match in regex.finditer(message):
            key = (match.group(1) if regex.groups else match.group(0)).upper()
            if wanted and project_of(key) not in wanted:
                continue
            seen.setdefault(key, None)
    return list(seen)


@dataclass(frozen=True)
class Ticket:
    key: str
    summary: str
    status: str
    status_category: str
    issue_type: str
    fix_versions: tuple[str, ...]
    created: datetime | None = None
    components: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    sprint: str | None = None


@dataclass(frozen=True)
class TicketLookup:
    """What Jira said about a set of keys, each key as written in the commits.

    `tickets`: the keys Jira answered (a moved issue under the commit's key; its `Ticket.key` is
    the key it has now). `not_tickets`: keys whose project is not a Jira project (`UTF-8`,
    `SHA-256`): not tickets at all. `not_found`: keys of a Jira project that Jira did not return,
    because the issue does not exist or this account may not see it: a gate must not read them
    as tickets without a problem.
    """

    tickets: Mapping[str, Ticket] = field(default_factory=dict)
    not_tickets: tuple[str, ...] = ()
    not_found: tuple[str, ...] = ()


def project_of(key: str) -> str:
    """The project part of a ticket key (`PAY` of `PAY-12`)."""
    return key.rsplit("-", 1)[0].upper()
