"""Ticket keys from commit messages. Pure: no I/O."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from devex_cli.errors import UsageError

DEFAULT_TICKET_PATTERN = r"\b[A-Z][A-Z0-9_]+-[1-9][0-9]*\b"


def compile_ticket_pattern(pattern: str | None) -> re.Pattern[str]:
    """The ticket regex; a pattern that does not compile is a usage error."""
    try:
        return re.compile(pattern or DEFAULT_TICKET_PATTERN)
    except re.error as exc:
        raise UsageError(
            f"the ticket pattern {pattern!r} is not a valid regular expression: {exc}",
            hint="fix --ticket-pattern or jira.ticket_pattern",
        ) from None


def extract_ticket_keys(
    messages: Iterable[str],
    *,
    pattern: re.Pattern[str] | None = None,
    projects: Sequence[str] = (),
) -> list[str]:
    """Keys in the messages, de-duplicated, in order of first appearance.

    With `projects`, only keys of those Jira projects count. A pattern with a group gives the key
    in its first group (`(?:refs|fixes) ([A-Z]+-[0-9]+)`), else the whole match is the key.
    """
    regex = pattern or compile_ticket_pattern(None)
    wanted = {p.upper() for p in projects}
    seen: dict[str, None] = {}
    for message in messages:
        for match in regex.finditer(message):
            key = (match.group(1) if regex.groups else match.group(0)).upper()
            if wanted and key.rsplit("-", 1)[0] not in wanted:
                continue
            seen.setdefault(key, None)
    return list(seen)
