"""What the core asks of an outside system, as protocols: a new source (GitLab, GitHub) is one
module that implements them, and nothing else changes.

A `CommitSource` answers for one app repository: the local clone (`commitgraph.CommitGraph`) and
Bitbucket's API (`bitbucket.BitbucketCommits`) today.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from devex_cli.sources.commitgraph import GraphCommit


class CommitSource(Protocol):
    """One repository's commits: revisions resolved, and the change set between two of them."""

    system: str  # its name in `devex_source_up{source}`: "git", "bitbucket"

    def resolve(self, revisions: Iterable[str]) -> dict[str, str | None]:
        """Full SHAs of (short) revisions, None for one the repository does not have. Many at
        once are answered together (one process, or one listing). Raises UpstreamError."""
        ...

    def load(self, tips: Iterable[str]) -> None:
        """Make the history reachable from these revisions answerable (a source that fetches
        ranges on demand does nothing here)."""
        ...

    def prefetch(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Make these (new, old) ranges answerable, side by side where the source allows."""
        ...

    def only_in(self, new: str, old: str | None) -> list[GraphCommit]:
        """The commits of `git rev-list new ^old`, newest first (none when `old` is None)."""
        ...
