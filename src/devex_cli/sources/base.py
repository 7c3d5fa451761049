"""What the core asks of an outside system, as protocols: a new source (GitLab, GitHub) is one
module that implements them, plus its configuration keys, and nothing else changes.

- A `CommitSource` answers for one app repository: the local clone (`commitgraph.CommitGraph`)
  and Bitbucket's API (`bitbucket.BitbucketCommits`) today.
- A `TicketSource` answers for tickets: Jira (`jira.JiraClient`) today.
- Every source reports under its `system` name (`devex_source_up{source}`, the JSON's
  `sources`) into one `SourceHealth` per run.

Every API source has the same lifecycle (`ApiSource`): its constructor is its factory from the
settings (`Source(settings, *, api=None)`; ConfigError when it is not configured, an `ApiClient`
injected by tests), it is used as a context manager and closed once; `OnFirstUse` opens one
only when something asks it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Generic, Protocol, Self, TypeVar

from devex_cli.errors import UpstreamError
from devex_cli.sources.commitgraph import GraphCommit

if TYPE_CHECKING:  # the HTTP stack loads only when an API source is used
    from devex_cli.http import ApiClient
    from devex_cli.tickets import Ticket, TicketLookup


class Source(Protocol):
    """What every source has: the name it reports its health under, and a lifecycle."""

    system: str  # its name in `devex_source_up{source}`: "git", "bitbucket", "jira", "argocd"


class ClosableSource(Source, Protocol):
    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


class CommitSource(Source, Protocol):
    """One repository's commits: revisions resolved, and the change set between two of them."""

    def resolve(self, revisions: Iterable[str]) -> dict[str, str | None]:
        """Full SHAs of (short) revisions, None for one the repository does not have. Many at
        once are answered together (one process, or one listing). Raises UpstreamError."""
        ...

    def resolve_soon(self, revisions: Iterable[str], base: str | None = None) -> None:
        """Begin resolving these revisions beside the caller's work, when each costs a round
        trip (an API): `resolve` then answers from them (and raises what asking them raised).
        `base`: a revision resolved before that they are compared with (production's): an API
        may answer their ranges from it by the same round trip. A local repository answers at
        once anyway: nothing to begin."""
        ...

    def prepare(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Make these (new, old) ranges of full SHAs answerable by `only_in`, all at once (a
        local graph reads the history reachable from them; an API lists it, or asks the
        ranges side by side). Raises UpstreamError."""
        ...

    def only_in(self, new: str, old: str | None) -> list[GraphCommit]:
        """The commits of `git rev-list new ^old`, newest first (none when `old` is None)."""
        ...


class TicketSource(ClosableSource, Protocol):
    """Tickets: what the gate, the deployment card and collect ask of a ticket system. Every
    method raises UpstreamError when the system cannot be asked or answers what cannot be
    read."""

    def fetch_tickets(self, keys: Sequence[str], *, with_sprint: bool = False,
                      projects: Sequence[str] = ()) -> TicketLookup:
        """What the system says of the keys: tickets, keys that are not tickets (their project
        is unknown; only `projects` count when given), tickets not found or not visible."""
        ...

    def search(self, jql: str) -> list[Ticket]:
        """The tickets a query finds (incidents)."""
        ...

    def known_projects(self, wanted: Collection[str]) -> set[str]:
        """Which of these project keys are projects of the system."""
        ...


class ApiSource:
    """The lifecycle of a source reached over HTTP: its shared client (`api`) is closed when the
    source is."""

    system: str
    api: ApiClient

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.api.close()


S = TypeVar("S", bound=ClosableSource)


class OnFirstUse(Generic[S]):
    """A source opened when first asked for (never when nothing asks) and closed once. Opening
    again after a failed opening raises again: each caller hears why. Threads asking at once
    get the one source; one asking after it was closed (a thread asking ahead for a command
    that ended meanwhile) is told so (UpstreamError), and nothing is opened."""

    def __init__(self, system: str, open_source: Callable[[], S]) -> None:
        self.system = system  # the source's, known before it is opened
        self._open = open_source
        self._source: S | None = None
        self._opening = threading.Lock()
        self._closed = False

    def get(self) -> S:
        with self._opening:
            if self._closed:
                raise UpstreamError(self.system, "was closed before it was asked")
            if self._source is None:
                self._source = self._open()
            return self._source

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._opening:
            self._closed = True
            if self._source is not None:
                self._source.close()
                self._source = None


class SourceHealth:
    """Whether each outside system answered this run, by the name it reports under: written by
    the collection as sources answer (`ok`) or fail (`failed`), read as (system, healthy) pairs
    in the order systems were first heard of. A system that failed stays down for the run."""

    def __init__(self, known: Mapping[str, bool] | Iterable[tuple[str, bool]] = ()) -> None:
        self._up: dict[str, bool] = dict(known)
        self._reasons: dict[str, str] = {}

    def ok(self, system: str) -> None:
        """The system answered (or is configured and will be asked), unless it failed already."""
        self._up.setdefault(system, True)

    def failed(self, system: str, reason: str) -> None:
        self._up[system] = False
        self._reasons.setdefault(system, reason)

    def reason(self, system: str) -> str | None:
        """Why the system is down (its first failure this run), None when it is not."""
        return self._reasons.get(system)

    def __iter__(self) -> Iterator[tuple[str, bool]]:
        return iter(list(self._up.items()))

    def __repr__(self) -> str:
        return f"SourceHealth({self._up!r})"
