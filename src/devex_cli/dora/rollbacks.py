"""Which deployments are rollbacks, by the contract's "Rollback".

Where the app repository could compare the two revisions, ancestry decides: a deployment whose
revision is a proper ancestor of the one it replaces. Elsewhere the GitOps history alone
decides: a deployment that puts back a release deployed there before, while the release it
replaces was first deployed there after it. Releases are ranked by their first deployment to the
environment, so going back in that order is a rollback and going forward again is not (A, B, A:
the second A is one; A, B, A, B: the second B is not).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from devex_cli.dora.model import DeploymentRecord

_SHORTEST_REVISION = 7  # the contract's revisions are 7 to 40 hex digits


def rollbacks(group: Sequence[DeploymentRecord], ranks: Ranks | None = None) -> list[bool]:
    """For the deployments of one service to one environment, in time order: whether each is
    a rollback. `ranks`: what the deployments before `group` left (`Ranks.after`); it goes on
    from there (and is updated)."""
    ranks = Ranks() if ranks is None else ranks
    verdicts = []
    for record in group:
        rank = ranks.of(record)
        if record.ancestry_rollback is not None:
            verdicts.append(record.ancestry_rollback)
        else:
            verdicts.append(rank is not None and ranks.previous is not None
                            and ranks.previous > rank)
        ranks.previous = rank if rank is not None else ranks.add(record)
    return verdicts


class Ranks:
    """The order in which releases first reached an environment, and the rank of the release
    deployed last. A release is its revision, else its version (`Release.identity`); a short SHA
    and the full one are the same release."""

    def __init__(self) -> None:
        self._versions: dict[str, int] = {}
        self._revisions: dict[str, int] = {}  # lower case, in the order they came
        self._prefixes: set[str] | None = None  # their first 7 characters, made on first miss
        self._count = 0
        self.previous: int | None = None

    @classmethod
    def after(cls, group: Sequence[DeploymentRecord]) -> Ranks:
        """The ranks the deployments of `group` (in time order) leave."""
        ranks = cls()
        rollbacks(group, ranks)
        return ranks

    def state(self) -> dict[str, Any]:
        """As JSON values (`from_state` reads them back)."""
        return {"versions": self._versions, "count": self._count, "previous": self.previous,
                "revisions": [[r, n] for r, n in self._revisions.items()]}

    @classmethod
    def from_state(cls, state: Any) -> Ranks:
        """The ranks `state` wrote; ValueError for a value it cannot have written. (A kept past
        holds every release each environment had: read at C speed, checked after.)"""
        ranks = cls()
        try:
            versions, count, previous = state["versions"], state["count"], state["previous"]
            revisions = state["revisions"]
            known = dict(revisions) if type(revisions) is list else None
        except (KeyError, TypeError, ValueError) as exc:  # the last two: not (revision, rank)
            raise ValueError("not a ranks state") from exc
        if not (type(versions) is dict and type(count) is int and known is not None
                and (previous is None or type(previous) is int)
                and len(known) == len(revisions)  # each release once, as `add` keeps them
                and all(type(pair) is list for pair in revisions)
                and all(type(k) is str and type(v) is int for k, v in versions.items())
                and all(type(k) is str and type(v) is int for k, v in known.items())):
            raise ValueError("not a ranks state")
        ranks._versions, ranks._revisions = dict(versions), known
        ranks._count, ranks.previous = count, previous
        return ranks

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ranks) and (
            self._versions, self._revisions, self._count, self.previous) == (
            other._versions, other._revisions, other._count, other.previous)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def copy(self) -> Ranks:
        ranks = Ranks()
        ranks._versions, ranks._revisions = dict(self._versions), dict(self._revisions)
        ranks._count, ranks.previous = self._count, self.previous
        ranks._prefixes = None if self._prefixes is None else set(self._prefixes)
        return ranks

    def of(self, record: DeploymentRecord) -> int | None:
        if record.revision is None:
            return self._versions.get(record.version)
        revision = record.revision.lower()
        rank = self._revisions.get(revision)
        if rank is not None:  # the first release it names (`add` keeps no other it names)
            return rank
        if self._prefixes is None:
            self._prefixes = {known[:_SHORTEST_REVISION] for known in self._revisions}
        if revision[:_SHORTEST_REVISION] not in self._prefixes:
            return None
        for known, rank in self._revisions.items():  # a short SHA and a full one: rare
            if known.startswith(revision) or revision.startswith(known):
                return rank
        return None

    def add(self, record: DeploymentRecord) -> int:
        rank, self._count = self._count, self._count + 1
        if record.revision is None:
            self._versions[record.version] = rank
        else:
            revision = record.revision.lower()
            self._revisions[revision] = rank
            if self._prefixes is not None:
                self._prefixes.add(revision[:_SHORTEST_REVISION])
        return rank
