"""Jira asked for a collection's waiting tickets before they are known.

The tickets waiting for production are known only once the figures are (late in a collection),
and asking Jira for a few hundred of them takes a round trip or two (100 keys a request, a few
requests at a time). Most are the ones the last collection of the same configuration asked:
those (kept in `jira-waiting.json`) are asked as the collection begins, beside the reading of
the GitOps history; once the snapshot's keys are known, only the keys not asked yet are. What
Jira says is still asked every run (a ticket's status and fix versions change): only the moment
moves, and a key asked ahead that is no longer waiting is left out of the answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from devex_cli.cache import TEXT, JsonCache, entries, list_of
from devex_cli.changes import look_up
from devex_cli.config import Settings
from devex_cli.errors import DevexError
from devex_cli.parallel import in_background
from devex_cli.tickets import TicketLookup

if TYPE_CHECKING:
    from concurrent.futures import Future

    from devex_cli.sources.base import OnFirstUse, TicketSource

KEPT = 16  # configurations whose last keys are kept (the oldest are dropped)


class TicketsAhead:
    """The waiting tickets' look-up of one collection (`look_up`), begun with the last keys of
    its configuration (`name`) on a thread the process does not wait for on its way out (a
    collection that fails before it looks up exits at once, whatever Jira does)."""

    def __init__(self, settings: Settings, source: OnFirstUse[TicketSource], name: str) -> None:
        self._settings = settings
        self._source = source
        self._name = hashlib.sha256(name.encode()).hexdigest()[:16]
        self._cache = JsonCache(settings.cache_dir(), "jira-waiting", version=1,
                                shape=entries(list_of(TEXT)), grows_only=False)
        self._kept = self._cache.load()
        self._asked: list[str] = list(self._kept.get(self._name, ()))
        self._early: Future[TicketLookup | DevexError | None] | None = (
            in_background(lambda: self._ask(self._asked), name="jira-ahead", daemon=True)
            if self._asked else None)

    def _ask(self, keys: Sequence[str]) -> TicketLookup | DevexError | None:
        """What Jira says of the keys (None: no key to ask), or why it could not say."""
        try:
            return look_up(self._settings, keys, with_sprint=True,
                           client=self._source.get()) if keys else None
        except DevexError as exc:
            return exc

    def look_up(self, keys: Sequence[str]) -> TicketLookup | DevexError | None:
        """What Jira says of these keys: the answer begun ahead for the keys it asked (its
        failure, when it failed: asking again would only wait as long), the rest asked now.
        Asked once, when the figures are known."""
        early = self._early.result() if self._early is not None else None
        if isinstance(early, DevexError):
            return early
        asked = set(self._asked)
        later = self._ask([k for k in keys if k not in asked])
        if isinstance(later, DevexError):
            return later
        if list(keys) != self._asked:
            self._keep(keys)
        if not keys:
            return None
        wanted = set(keys)
        answers = [lookup for lookup in (early, later) if lookup is not None]
        return TicketLookup(
            tickets={k: t for lookup in answers for k, t in lookup.tickets.items()
                     if k in wanted},
            not_tickets=tuple(k for lookup in answers for k in lookup.not_tickets
                              if k in wanted),
            not_found=tuple(k for lookup in answers for k in lookup.not_found if k in wanted))

    def _keep(self, keys: Sequence[str]) -> None:
        """These keys are the ones the next collection of this configuration asks ahead."""
        kept = {name: value for name, value in self._kept.items() if name != self._name}
        kept = dict(list(kept.items())[-(KEPT - 1):])
        kept[self._name] = list(keys)
        self._cache.save(kept)
