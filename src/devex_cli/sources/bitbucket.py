"""Bitbucket Cloud: commit metadata and change sets for services whose app repository is not
on disk.

`GET /repositories/{ws}/{repo}/commit/{rev}` resolves a (short) revision; `GET
.../commits?include=NEW&exclude=OLD` lists `git rev-list NEW ^OLD`, following `next` pages
(without `include`: every branch and tag, `git rev-list --all ^OLD`). For many deployments at
once the history is listed once and ranges are walked in memory (see `BitbucketCommits`).
Resolved revisions are immutable and cached between runs.
"""

from __future__ import annotations

import logging
import threading
import time
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from devex_cli.config import Settings, bitbucket_workspace
from devex_cli.errors import ConfigError, UpstreamError, UpstreamHTTPError
from devex_cli.parallel import each, in_background
from devex_cli.sources.base import ApiSource
from devex_cli.sources.commitgraph import GraphCommit, generations, only_in

if TYPE_CHECKING:  # the HTTP stack loads when a client is made, not with its system's name
    from concurrent.futures import Future

    from devex_cli.http import ApiClient, Params

log = logging.getLogger("devex.bitbucket")

DEFAULT_API = "https://api.bitbucket.org/2.0"
PAGE = 100


class BitbucketClient(ApiSource):
    """Bitbucket Cloud's API. Use it as a context manager. Raises ConfigError when it is not
    configured (no token or no workspace)."""

    system = "bitbucket"

    def __init__(self, settings: Settings, *, api: ApiClient | None = None) -> None:
        token = settings.environ.get("BITBUCKET_API_TOKEN")
        workspace = bitbucket_workspace(settings)
        if not token or not workspace:
            raise ConfigError("Bitbucket is not configured",
                              hint="set BITBUCKET_API_TOKEN (and BITBUCKET_API_USER for an API "
                                   "token) and bitbucket.workspace or BITBUCKET_WORKSPACE")
        user = settings.environ.get("BITBUCKET_API_USER")
        from devex_cli.http import ApiClient, BearerAuth, basic_auth

        self.workspace = workspace
        self.concurrency = max(1, settings.bitbucket.concurrency)
        # Every request of this client, from any thread, counts against one limit.
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self.api = api or ApiClient(
            "Bitbucket", settings.environ.get("BITBUCKET_API_URL") or DEFAULT_API,
            settings=settings.http,
            auth=basic_auth(user, token) if user else BearerAuth(token),
            auth_hint="check BITBUCKET_API_USER and BITBUCKET_API_TOKEN (app passwords stopped "
                      "working in 2026: use an API token or an access token)")

    def _get(self, path: str, params: Params | None = None) -> Any:
        with self._slots:
            return self.api.get_json(path, params=params)

    def commit(self, repo: str, revision: str) -> GraphCommit | None:
        """One commit, or None when the repository has no such revision (404)."""
        try:
            body = self._get(f"/repositories/{self.workspace}/{repo}/commit/{revision}")
        except UpstreamHTTPError as exc:
            if exc.status == 404:
                return None
            raise
        return _commit(body)

    def user_name(self, uuid: str) -> str | None:
        """A user's display name from the `{uuid}` Pipelines gives the step's triggerer."""
        body = self._get(f"/users/{uuid}")
        name = body.get("display_name") if isinstance(body, Mapping) else None
        return str(name) if name else None

    def pull_request_title(self, repo: str, pr_id: str) -> str | None:
        body = self._get(f"/repositories/{self.workspace}/{repo}/pullrequests/{pr_id}")
        title = body.get("title") if isinstance(body, Mapping) else None
        return str(title) if title else None

    def range(self, repo: str, new: str, old: str) -> list[GraphCommit]:
        """`git rev-list new ^old`, newest first, every page."""
        return self.listing(repo, new, [old]).commits

    def listing(self, repo: str, include: str | None, exclude: Sequence[str],
                max_pages: int | None = None, *, after: Listing | None = None) -> Listing:
        """`git rev-list include ^exclude...` (`--all` for an include of None), newest first,
        at most `max_pages` pages (all of them without a bound); a listing cut short says where
        it stopped (`next`), and `after` continues it there."""
        commits: list[GraphCommit] = list(after.commits) if after else []
        pages = 0
        url: str | None = f"/repositories/{self.workspace}/{repo}/commits"
        params: list[tuple[str, Any]] | None = [
            *((("include", include),) if include is not None else ()),
            *(("exclude", sha) for sha in exclude), ("pagelen", PAGE)]
        seen: set[str] = set(after.seen) if after else set()
        if after is not None:
            url, params = after.next, None
        while url:
            if max_pages is not None and pages >= max_pages:
                return Listing(commits, url, frozenset(seen), (after.pages if after else 0)
                               + pages)
            body = self._get(url, params=params)
            pages += 1
            if not isinstance(body, Mapping) or not isinstance(body.get("values"), list):
                raise UpstreamError("Bitbucket", "commits answered an unexpected shape "
                                    "(no 'values' list)")
            commits.extend(_commit(value) for value in body["values"])
            following = body.get("next")
            if following in seen:
                raise UpstreamError("Bitbucket", "commits repeated a 'next' page; stopped paging")
            url, params = (str(following), None) if following else (None, None)
            if url:
                seen.add(url)
        return Listing(commits, None, frozenset(seen), (after.pages if after else 0) + pages)


@dataclass(frozen=True)
class Listing:
    """Commits listed so far, newest first; `next` is the page to continue from when the
    listing was cut short (None: complete)."""

    commits: list[GraphCommit]
    next: str | None
    seen: frozenset[str] = frozenset()
    pages: int = 0


def _named(shas: Sequence[str], revision: str) -> str | None:
    """The one SHA of `shas` (sorted) a revision names: a full SHA, or a short one (4 or more
    characters) naming exactly one of them; None for none, or an ambiguous one."""
    if len(revision) < 4:
        return None
    start = bisect_left(shas, revision)
    matches = [sha for sha in shas[start:start + 2] if sha.startswith(revision)]
    return matches[0] if len(matches) == 1 else None


def _reach(listed: Mapping[str, GraphCommit], start: str, base: str) -> tuple[set[str], bool]:
    """The listed commits `start` (listed) reaches through listed commits, and whether one of
    them has `base` as a parent."""
    reached, todo, meets_base = {start}, [start], False
    while todo:
        for parent in listed[todo.pop()].parents:
            if parent in listed:
                if parent not in reached:
                    reached.add(parent)
                    todo.append(parent)
            elif parent == base:
                meets_base = True
    return reached, meets_base


def _commit(value: Any) -> GraphCommit:
    try:
        return GraphCommit(
            sha=str(value["hash"]),
            parents=tuple(str(p["hash"]) for p in value.get("parents") or []),
            commit_time=0,
            author_time=datetime.fromisoformat(str(value["date"]).replace("Z", "+00:00")),
            message=str(value.get("message") or "").strip(),
            author=str((value.get("author") or {}).get("raw") or "").split(" <", 1)[0],
        )
    except (KeyError, TypeError, ValueError):
        raise UpstreamError("Bitbucket", "answered a commit of an unexpected shape") from None


class BitbucketCommits:
    """The commit-graph interface of collect, answered by Bitbucket.

    A few revisions and ranges are asked one by one (`commit/{rev}`, `commits?include&exclude`).
    Many at once (a first collection: thousands of deployments) are answered from the commit
    graph instead: the history reachable from the newest deployed revisions is listed once, 100
    commits a page, short SHAs are resolved in it and ranges walked in memory (exactly, by
    generation numbers), so the requests follow the size of the repository, not the number of
    deployments. What the graph does not hold (another branch) is asked one by one.

    A few new deployments (a collection after a warm one) are answered by one listing of what
    the repository has beyond a base revision already resolved (production's, `resolve_soon`):
    their short SHAs are resolved in it and their ranges from the base walked in it, one round
    trip for both (see `_beyond`).

    Resolved revisions go into `store` (shared by every repository of a run, guarded by one lock;
    the caller saves it once). Ranges and the graph stay in memory: the change sets made of them
    are kept by collect's records.
    """

    system = BitbucketClient.system
    lock = threading.Lock()
    MANY = 8  # more revisions or ranges than this at once: read the graph instead
    MIN_PAGES = 4  # a listing may always take this many pages
    TIPS = 3  # the newest revisions the graph is listed from
    EXCLUDED = 20  # at most this many listed tips excluded from a further listing
    BEYOND_PAGES = 1  # what a listing beyond the base may take: more, and the tags are asked
    RETRY_BEYOND = 86400.0  # seconds before a repository whose listing was long is listed again

    def __init__(self, client: BitbucketClient, repo: str, store: dict[str, Any]) -> None:
        self.client = client
        self.repo = repo
        with self.lock:
            mine = store.setdefault(f"{client.workspace}/{repo}", {})
            mine.pop("ranges", None)  # kept by earlier versions
            self._resolved: dict[str, str | None] = mine.setdefault("resolved", {})
            self._mine: dict[str, Any] = mine
        self._ranges: dict[tuple[str, str], list[GraphCommit]] = {}
        self._bases: dict[str, list[str]] = {}  # new -> the olds of the ranges asked from it
        self._graph: dict[str, GraphCommit] = {}
        self._listed: list[str] = []  # tips the graph was listed from
        self._shas: list[str] = []  # the graph's SHAs, sorted, for short-SHA lookups
        self._rank: dict[str, int] = {}
        self._cut: dict[str, Listing] = {}  # listings cut short, by tip: continued later
        self._soon: Future[dict[str, str | None]] | None = None  # `resolve_soon`'s
        # `_beyond`'s listing: the base, its commits by SHA and in Bitbucket's order
        self._beyond_base: tuple[str, dict[str, GraphCommit], list[GraphCommit]] | None = None

    def resolve_soon(self, revisions: Iterable[str], base: str | None = None) -> None:
        """Begin resolving these revisions in the background (a few new deployments' tags: one
        round trip, beside the caller's work); the next `resolve` waits for it. With a `base`
        resolved before (production's revision), what the repository has beyond it is listed
        instead: the revisions found there are resolved and their ranges from it known by the
        same round trip (see `_beyond`)."""
        wanted = list(revisions)
        if self._soon is None and wanted:
            full = self._resolved.get(base) if base else None

            def ahead() -> dict[str, str | None]:
                if full:
                    try:
                        self._beyond(full, wanted)
                    except UpstreamError as exc:  # a shortcut: its tags are asked as before
                        log.debug("listing %s beyond %s failed: %s", self.repo, full, exc)
                return self._resolve(wanted)

            self._soon = in_background(ahead, name="bitbucket-resolve")

    def resolve(self, revisions: Iterable[str]) -> dict[str, str | None]:
        """Full SHAs of (short) revisions; give them newest first, so that for many at once the
        graph is listed from the newest."""
        soon, self._soon = self._soon, None
        if soon is not None:
            soon.result()  # what it asked is resolved now (or its failure raised here)
        return self._resolve(revisions)

    def settle(self) -> None:
        """Wait for what `resolve_soon` began when no `resolve` did (the records needed none
        of it): the client is closed, and the store saved, only after. Its failure is not the
        caller's: nothing asked for the answer."""
        soon, self._soon = self._soon, None
        if soon is not None and (exc := soon.exception()) is not None:
            log.debug("resolving ahead in %s failed, unneeded: %s", self.repo, exc)

    def _beyond(self, base: str, revisions: list[str]) -> None:
        """List every branch's commits that `base` does not reach (`commits?exclude=base`, no
        `include`: `git rev-list --all ^base`), when that is one page. Each revision matching
        exactly one commit there is resolved to it, and a range from it to the base, or to a
        listed revision that reaches the base, is walked in the listing (`_from_beyond`). A
        revision not there (a rollback, a deleted branch's) is asked as before. A repository
        with more unmerged work than a page is not listed so again for a day: its tags are
        asked one by one."""
        long_since = self._mine.get("beyond_long")
        if isinstance(long_since, (int, float)) and time.time() - long_since < self.RETRY_BEYOND:
            return
        listed = self.client.listing(self.repo, None, [base], max_pages=self.BEYOND_PAGES)
        if listed.next is not None:
            with self.lock:
                self._mine["beyond_long"] = time.time()
            log.info("%s has more commits beyond its production revision than a page; its "
                     "new revisions are asked one by one", self.repo)
            return
        by_sha = {c.sha: c for c in listed.commits}
        shas = sorted(by_sha)
        found = {revision: full for revision in revisions
                 if (full := _named(shas, revision)) is not None}
        with self.lock:
            self._mine.pop("beyond_long", None)
            self._resolved.update(found)
            self._beyond_base = (base, by_sha, listed.commits)

    def _from_beyond(self, new: str, old: str) -> bool:
        """Keep `new ^old` taken from the listing beyond the base (`_beyond`), when `new` is in
        it and `old` is the base or reaches it: everything the base reaches, `old` does, and
        what `old` reaches in the listing is reached through the listing, so the range is the
        listed commits `new` reaches and `old` does not."""
        if self._beyond_base is None:
            return False
        base, by_sha, listed = self._beyond_base
        if new not in by_sha or (old != base and old not in by_sha):
            return False
        behind: set[str] = set()
        if old != base:
            behind, meets_base = _reach(by_sha, old, base)
            if not meets_base:
                return False
        ahead, _ = _reach(by_sha, new, base)
        with self.lock:
            self._ranges[(new, old)] = [c for c in listed if c.sha in ahead and c.sha not in behind]
        return True

    def _resolve(self, revisions: Iterable[str]) -> dict[str, str | None]:
        wanted = list(dict.fromkeys(revisions))
        missing = [r for r in wanted if r not in self._resolved and not self._in_graph(r)]
        if len(missing) > self.MANY:
            tips = self._ask(missing[: self.TIPS])
            self._list((sha for sha in tips.values() if sha), worth=len(missing) // 2)
            missing = [r for r in missing if r not in self._resolved and not self._in_graph(r)]
        self._ask(missing)
        return {r: self._resolved.get(r) for r in wanted}

    def _ask(self, revisions: list[str]) -> dict[str, str | None]:
        found = each(lambda r: self.client.commit(self.repo, r), revisions,
                     limit=self.client.concurrency)
        answers = {r: c.sha if c else None for r, c in zip(revisions, found, strict=True)}
        with self.lock:
            self._resolved.update(answers)
        return answers

    def _in_graph(self, revision: str) -> bool:
        """Resolve a revision in the listed graph: a full SHA, or a short one naming exactly one
        commit there (an ambiguous one is left to Bitbucket)."""
        full = _named(self._shas, revision)
        if full is None:
            return False
        with self.lock:
            self._resolved[revision] = full
        return True

    def _list(self, tips: Iterable[str], worth: int) -> None:
        """Add the history reachable from each tip not in the graph yet (excluding what earlier
        listings brought: a side branch costs its own commits only).

        A listing is worth at most `worth` pages (half the requests it saves): a repository
        whose history is far longer than what was deployed of it (an old monorepo) stops there,
        and its ranges are asked one by one, as an incomplete graph cannot answer them. A
        listing cut short is kept where it stopped: a later call that may spend more (the bulk
        of a first collection, after a small digits-only check) continues it, never from the
        start again."""
        for tip in tips:
            if tip in self._graph:
                continue
            cut = self._cut.get(tip)
            budget = max(self.MIN_PAGES, worth) - (cut.pages if cut else 0)
            if cut is not None and budget <= 0:
                continue  # worth no more than it was: ask its ranges one by one
            listed = self.client.listing(self.repo, tip, self._listed[-self.EXCLUDED:],
                                         max_pages=budget, after=cut)
            if listed.next is not None:
                log.info("the history of %s is long for what was deployed of it (%d pages "
                         "so far); its ranges are asked one by one", self.repo, listed.pages)
                self._cut[tip] = listed
                break
            self._cut.pop(tip, None)
            self._graph.update((c.sha, c) for c in listed.commits)
            self._listed.append(tip)
        self._shas = sorted(self._graph)
        self._rank = generations(self._graph)

    def prepare(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Make the ranges (new, old) answerable: from the graph when it holds both ends (many
        at once read it first), else asked one by one, several at a time. Of the ranges from
        one revision, the first is asked and the later ones are taken from its answer when its
        old revision is theirs or one of their ancestors (give the widest first: a deployment's
        commits waiting for production before its change set), else asked after it."""
        missing = [p for p in dict.fromkeys(pairs) if p not in self._ranges
                   and not self._walkable(*p) and not self._from_beyond(*p)]
        if len(missing) > self.MANY:
            self._list(dict.fromkeys(sha for pair in missing for sha in pair),
                       worth=len(missing) // 2)
            missing = [p for p in missing if not self._walkable(*p)]
        missing = [p for p in missing if not self._derived(*p)]
        first = {new: (new, old) for new, old in reversed(missing)}
        self._ask_ranges([p for p in missing if first[p[0]] == p])
        self._ask_ranges([p for p in missing if first[p[0]] != p and not self._derived(*p)])

    def _ask_ranges(self, pairs: list[tuple[str, str]]) -> None:
        results = each(lambda p: self.client.range(self.repo, *p), pairs,
                       limit=self.client.concurrency)
        with self.lock:
            for (new, old), listed in zip(pairs, results, strict=True):
                self._ranges[(new, old)] = listed
                self._bases.setdefault(new, []).append(old)

    def _derived(self, new: str, old: str) -> bool:
        """Keep `new ^old` taken from a range `new ^base` asked this run, when `base` is `old`
        or one of its ancestors: then it is the listed commits `old` does not reach. `old`
        reaches `base` only through a listed commit whose parent `base` is (past the listing,
        everything is reachable from `base`), so walking the listing from `old` decides it."""
        for base in self._bases.get(new, ()):
            listed = self._ranges[(new, base)]
            by_sha = {c.sha: c for c in listed}
            if old not in by_sha:
                continue  # `old` is reachable from `base` (or not from `new`): not from this
            reached, reaches_base = _reach(by_sha, old, base)
            if reaches_base:
                with self.lock:
                    self._ranges[(new, old)] = [c for c in listed if c.sha not in reached]
                return True
        return False

    def _walkable(self, new: str, old: str) -> bool:
        return new in self._graph and old in self._graph

    def only_in(self, new: str, old: str | None) -> list[GraphCommit]:
        if old is None:
            return []
        if (new, old) not in self._ranges and self._walkable(new, old):
            return only_in(self._graph, lambda sha: self._rank.get(sha, 0), new, old)
        self.prepare([(new, old)])
        return self._ranges[(new, old)]
