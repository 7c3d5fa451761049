"""An application repository on disk: commits, their messages, and shallow clones made whole.

Bitbucket Pipelines clone with depth 50; when the range a command needs reaches past the clone's
history, the clone is deepened (then unshallowed) rather than silently walking a partial range.
"""

from __future__ import annotations

import logging
from concurrent.futures import wait
from pathlib import Path

from devex_cli.errors import UsageError
from devex_cli.gitcli import GitFailed, git, remote_error
from devex_cli.parallel import in_background
from devex_cli.sources.commitgraph import LOG_FORMAT, GraphCommit, parse_log

log = logging.getLogger("devex.apprepo")

_DEEPEN_STEPS = (100, 500)


class AppRepo:
    """A local clone of an application repository."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            top = git(path, "rev-parse", "--show-toplevel").strip()
        except GitFailed:
            raise UsageError(f"{path} is not a git repository",
                             hint="run devex in the app repository or pass --repo PATH") from None
        self.path = Path(top)
        self._present: dict[str, str | None] = {}

    def resolve(self, rev: str) -> str | None:
        """The full SHA of a commit (a SHA, short SHA, branch or tag), or None if absent here.

        Raises UsageError when a short SHA is ambiguous.
        """
        if rev in self._present:
            return self._present[rev]
        try:
            sha: str | None = git(self.path, "rev-parse", "--verify", "--quiet",
                                  f"{rev}^{{commit}}").strip() or None
        except GitFailed as exc:
            if "ambiguous" in exc.stderr:
                raise UsageError(f"the short SHA {rev} is ambiguous in {self.path}",
                                 hint="tag images with a longer SHA") from None
            sha = None
        self._present[rev] = sha
        return sha

    def has_commit(self, rev: str) -> bool:
        return self.resolve(rev) is not None

    def is_shallow(self) -> bool:
        return git(self.path, "rev-parse", "--is-shallow-repository").strip() == "true"

    def range_base(self, base: str, head: str) -> str:
        """The full SHA of `base`, once it is present and an ancestor of `head`.

        A shallow clone is deepened until it is. Raises UsageError when, with the whole history
        at hand, `base` does not exist or is not an ancestor of `head` (history rewritten).
        """
        steps = list(_DEEPEN_STEPS)
        while True:
            full = self.resolve(base)
            if full is not None and self._is_ancestor(full, head):
                return full
            if not self.is_shallow():
                break
            self._deepen(steps.pop(0) if steps else None)
        if full is None:
            raise UsageError(
                f"revision {base} is not in {self.path}",
                hint="is --repo the service's app repository? was its history rewritten?",
            )
        raise UsageError(
            f"revision {base} is not an ancestor of {head[:12]}: the history was rewritten "
            "(force-push or rebase) since it was deployed",
            hint="check the deployed revision; there is no range of commits to inspect",
        )

    def range_commits(self, base: str, head: str) -> tuple[str, list[GraphCommit]]:
        """`range_base` and then `commits`, with the ancestry check and the log run side by
        side when the base is already here (the usual case)."""
        full = self.resolve(base)
        if full is not None:
            listing = in_background(lambda: self.commits(full, head), name="app-log")
            if self._is_ancestor(full, head):
                return full, listing.result()
            wait([listing])  # not used: the base is checked and listed again below
        full = self.range_base(base, head)
        return full, self.commits(full, head)

    def commits(self, base: str | None, head: str) -> list[GraphCommit]:
        """Commits in `git rev-list base..head` (merges included), oldest first."""
        spec = f"{base}..{head}" if base else head
        return list(parse_log(git(self.path, "log", "--reverse", LOG_FORMAT, spec, "--")))

    def is_ancestor(self, ancestor: str, head: str) -> bool:
        return self._is_ancestor(ancestor, head)

    def _is_ancestor(self, ancestor: str, head: str) -> bool:
        try:
            git(self.path, "merge-base", "--is-ancestor", ancestor, head)
        except GitFailed as exc:
            if exc.returncode == 1:
                return False
            raise UsageError(f"cannot compare {ancestor[:12]} with {head}: {exc}") from None
        return True

    def _deepen(self, by: int | None) -> None:
        args = ["fetch", "--quiet"] + ([f"--deepen={by}"] if by else ["--unshallow"])
        log.warning("the clone of %s is shallow; fetching %s", self.path,
                    f"{by} more commits" if by else "the whole history")
        try:
            git(self.path, *args)
        except GitFailed as exc:
            error = remote_error(self._remote_url(), exc)
            error.hint = ("the clone is shallow and could not be deepened: clone with "
                          "'clone: depth: full' in bitbucket-pipelines.yml or run "
                          "'git fetch --unshallow' first")
            raise error from None
        self._present = {k: v for k, v in self._present.items() if v is not None}

    def _remote_url(self) -> str:
        try:
            return git(self.path, "remote", "get-url", "origin").strip()
        except GitFailed:
            return str(self.path)
