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

from devex_cli.dora.model import DeploymentRecord

_SHORTEST_REVISION = 7  # the contract's revisions are 7 to 40 hex digits


def rollbacks(group: Sequence[DeploymentRecord]) -> list[bool]:
    """For the deployments of one service to one environment, in time order: whether each is
    a rollback."""
    ranks = _Ranks()
    verdicts = []
    previous: int | None = None
    for record in group:
        rank = ranks.of(record)
        if record.ancestry_rollback is not None:
            verdicts.append(record.ancestry_rollback)
        else:
            verdicts.append(rank is not None and previous is not None and previous > rank)
        previous = rank if rank is not None else ranks.add(record)
    return verdicts


class _Ranks:
    """The order in which releases first reached an environment. A release is its revision,
    else its version (`Release.identity`); a short SHA and the full one are the same release."""

    def __init__(self) -> None:
        self._versions: dict[str, int] = {}
        self._revisions: dict[str, list[tuple[str, int]]] = {}  # by the first 7 characters
        self._count = 0

    def of(self, record: DeploymentRecord) -> int | None:
        if record.revision is None:
            return self._versions.get(record.version)
        revision = record.revision.lower()
        for known, rank in self._revisions.get(revision[:_SHORTEST_REVISION], ()):
            if known.startswith(revision) or revision.startswith(known):
                return rank
        return None

    def add(self, record: DeploymentRecord) -> int:
        rank, self._count = self._count, self._count + 1
        if record.revision is None:
            self._versions[record.version] = rank
        else:
            revision = record.revision.lower()
            self._revisions.setdefault(revision[:_SHORTEST_REVISION], []).append((revision, rank))
        return rank
