"""An app repository's commit graph in memory: one `git log` for every commit devex needs, then
ranges (`git rev-list NEW ^OLD`) and ancestry answered without another process.

Ranges use git's own approach: walk both sides newest-first by commit time and stop once every
commit left to visit is reachable from the excluded side.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from devex_cli.errors import DevexError
from devex_cli.gitcli import GitFailed, git, git_bytes, is_url
from devex_cli.parallel import SERVICES_AT_ONCE, each

if TYPE_CHECKING:
    from devex_cli.sources.base import CommitSource

log = logging.getLogger("devex.commits")

_NEW, _OLD = 1, 2


@dataclass(frozen=True)
class GraphCommit:
    """An application commit, from a local repository or Bitbucket."""

    sha: str
    parents: tuple[str, ...]
    commit_time: int  # Unix time; 0 when the source does not say (Bitbucket)
    author_time: datetime
    message: str
    author: str = ""

    @property
    def is_merge(self) -> bool:
        return len(self.parents) > 1

    @property
    def subject(self) -> str:
        return self.message.split("\n", 1)[0]


# One commit a record of `git log LOG_FORMAT`: \x01 before each, \x02 between its fields.
LOG_FORMAT = "--format=%x01%H%x02%P%x02%ct%x02%at%x02%an%x02%B"


def parse_log(out: str) -> Iterator[GraphCommit]:
    """The commits of `git log LOG_FORMAT`'s output, in its order."""
    for chunk in out.split("\x01")[1:]:
        sha, parents, committed, authored, author, message = chunk.split("\x02", 5)
        yield GraphCommit(sha, tuple(parents.split()), int(committed),
                          datetime.fromtimestamp(int(authored), UTC), message.strip(), author)


class CommitGraph:
    """The commits reachable from a set of revisions of one repository (a local clone): a
    `sources.base.CommitSource`."""

    system = "git"

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.commits: dict[str, GraphCommit] = {}
        self._resolved: dict[str, str | None] = {}
        self._tips: list[str] = []

    def resolve_soon(self, revisions: Iterable[str], base: str | None = None) -> None:
        """Nothing to begin: `resolve` asks the local repository in one process."""

    def resolve(self, revisions: Iterable[str]) -> dict[str, str | None]:
        """Full SHAs of (short) SHAs in one `git cat-file --batch-check`; None if absent or not
        a commit, or ambiguous."""
        wanted = [r for r in dict.fromkeys(revisions) if r not in self._resolved]
        if wanted:
            out = git_bytes(self.repo, "cat-file", "--batch-check=%(objectname) %(objecttype)",
                            input_bytes=("\n".join(wanted) + "\n").encode()).decode()
            for revision, line in zip(wanted, out.splitlines(), strict=False):
                parts = line.split()
                ok = len(parts) == 2 and parts[1] == "commit"
                self._resolved[revision] = parts[0] if ok else None
        return {r: self._resolved.get(r) for r in revisions}

    def load(self, tips: Iterable[str]) -> None:
        """Read every commit reachable from the tips (full SHAs) that is not loaded yet."""
        missing = [t for t in dict.fromkeys(tips) if t not in self.commits]
        if not missing:
            return
        exclude = [f"^{sha}" for sha in self._tips]  # what is loaded is not read again
        try:
            out = git(self.repo, "log", LOG_FORMAT, "--stdin",
                      input_text="\n".join(missing + exclude) + "\n")
        except GitFailed:
            return
        self._tips.extend(missing)
        for commit in parse_log(out):
            self.commits.setdefault(commit.sha, commit)

    def prepare(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Read the history reachable from both ends of the ranges: `only_in` answers them from
        memory."""
        self.load(sha for pair in pairs for sha in pair)

    def only_in(self, new: str, old: str | None) -> list[GraphCommit]:
        """Commits reachable from `new` and not from `old` (`git rev-list new ^old`), newest first."""
        return only_in(self.commits, self._time, new, old)

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """True when `ancestor` is reachable from `descendant` (or is it)."""
        return not self.only_in(ancestor, descendant)

    def _time(self, sha: str) -> int:
        commit = self.commits.get(sha)
        return commit.commit_time if commit else 0


def only_in(commits: Mapping[str, GraphCommit], rank: Callable[[str], int], new: str,
            old: str | None) -> list[GraphCommit]:
    """`git rev-list new ^old` over the commits in memory, highest `rank` first.

    Both sides are walked together, highest rank first, until every commit left to visit is
    reachable from `old`. With commit times as the rank this is git's own walk; with generation
    numbers (a commit's is one more than its parents' highest) it is exact whatever the clocks.
    """
    flags: dict[str, int] = {new: _NEW}
    heap: list[tuple[int, str]] = [(-rank(new), new)]
    if old is not None:
        flags[old] = flags.get(old, 0) | _OLD
        heapq.heappush(heap, (-rank(old), old))
    popped: list[str] = []
    while heap and any(flags[sha] & _OLD == 0 for _, sha in heap):
        _, sha = heapq.heappop(heap)
        flag = flags[sha]
        popped.append(sha)
        commit = commits.get(sha)
        for parent in commit.parents if commit else ():
            before = flags.get(parent, 0)
            if before | flag != before:
                flags[parent] = before | flag
                heapq.heappush(heap, (-rank(parent), parent))
    seen: set[str] = set()
    result = []
    for sha in popped:
        if flags[sha] == _NEW and sha not in seen and sha in commits:
            seen.add(sha)
            result.append(commits[sha])
    return result


def generations(commits: Mapping[str, GraphCommit]) -> dict[str, int]:
    """Each commit's generation: 1 + its parents' highest (a parent not in memory counts 0)."""
    found: dict[str, int] = {}
    for start in commits:
        if start in found:
            continue
        stack = [start]
        while stack:
            sha = stack[-1]
            parents = [p for p in commits[sha].parents if p in commits and p not in found]
            if parents:
                stack.extend(parents)
                continue
            stack.pop()
            if sha not in found:
                found[sha] = 1 + max((found.get(p, 0) for p in commits[sha].parents), default=0)
    return found


class CommitCheck:
    """The GitOps reader's digits-only check (`gitops.CommitChecker`), the same for every
    command: which (service, digits-only tag) pairs name a commit of the service's app source
    (`source_of(service)`, None: the service has none), services side by side. A source that
    cannot answer says no, so the tag stays a version this run and is asked again next run.

    `expect` is the reader's `met`: the revisions the read names are resolved together with
    the tags, so a source that answers many at once from one listing of the history
    (Bitbucket) reads it once, for the tags and for the change sets that follow.
    """

    def __init__(self, source_of: Callable[[str], CommitSource | None]) -> None:
        self._source_of = source_of
        self._expected: dict[str, list[str]] = {}

    def expect(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Revisions the read names, newest first, by service."""
        self._expected = {}
        for service, revision in pairs:
            self._expected.setdefault(service, []).append(revision)

    def __call__(self, pairs: Collection[tuple[str, str]]) -> list[tuple[str, str]]:
        by_service: dict[str, list[str]] = {}
        for service, sha in pairs:
            by_service.setdefault(service, []).append(sha)
        asked = {s: source for s in by_service if (source := self._source_of(s)) is not None}

        def commits(service: str) -> list[tuple[str, str]]:
            tags = by_service[service]
            try:
                found = asked[service].resolve(
                    dict.fromkeys([*self._expected.get(service, ()), *tags]))
            except DevexError as exc:
                log.warning("%s; digits-only tags of %s are read as versions this run",
                            exc, service)
                return []
            except GitFailed as exc:  # not a repository (yet)
                log.info("%s; digits-only tags of %s are read as versions this run",
                         exc, service)
                return []
            return [(service, tag) for tag in tags if found.get(tag) is not None]

        return [pair for found in each(commits, asked, limit=SERVICES_AT_ONCE) for pair in found]


def local_commit_checker(repositories: Mapping[str, str]) -> CommitCheck | None:
    """The digits-only check against the services' local app repositories (`services.<name>.repo`
    paths; URLs are not fetched here): for a reader that asks no API, so that `status` judges
    such tags as `collect` does. Each repository is opened on first need (none when no tag
    asks)."""
    local = {name: path for name, path in repositories.items() if not is_url(path)}
    if not local:
        return None
    graphs: dict[str, CommitGraph] = {}

    def source_of(service: str) -> CommitGraph | None:
        if service not in local:
            return None
        if service not in graphs:
            graphs[service] = CommitGraph(Path(local[service]).expanduser())
        return graphs[service]

    return CommitCheck(source_of)
