"""Bitbucket Cloud: commit metadata and change sets for services whose app repository is not
on disk.

`GET /repositories/{ws}/{repo}/commit/{rev}` resolves a (short) revision; `GET
.../commits?include=NEW&exclude=OLD` lists `git rev-list NEW ^OLD`, following `next` pages. Both
answers are immutable for full SHAs, so they are cached between runs: a warm collection asks
Bitbucket only about deployments it has not seen.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from devex_cli.config import Settings
from devex_cli.errors import ConfigError, UpstreamError, UpstreamHTTPError
from devex_cli.http import ApiClient, BearerAuth, basic_auth
from devex_cli.sources.commitgraph import GraphCommit

log = logging.getLogger("devex.bitbucket")

DEFAULT_API = "https://api.bitbucket.org/2.0"
PAGE = 100


def bitbucket_configured(settings: Settings) -> bool:
    return bool(settings.environ.get("BITBUCKET_API_TOKEN") and _workspace(settings))


def _workspace(settings: Settings) -> str | None:
    return settings.bitbucket.workspace or settings.environ.get("BITBUCKET_WORKSPACE")


class BitbucketClient:
    def __init__(self, settings: Settings) -> None:
        token = settings.environ.get("BITBUCKET_API_TOKEN")
        workspace = _workspace(settings)
        if not token or not workspace:
            raise ConfigError("Bitbucket is not configured",
                              hint="set BITBUCKET_API_TOKEN (and BITBUCKET_API_USER for an API "
                                   "token) and bitbucket.workspace or BITBUCKET_WORKSPACE")
        user = settings.environ.get("BITBUCKET_API_USER")
        self.workspace = workspace
        self.concurrency = max(1, settings.bitbucket.concurrency)
        # Every request of this client, from any thread, counts against one limit.
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self.api = ApiClient(
            "Bitbucket", settings.environ.get("BITBUCKET_API_URL") or DEFAULT_API,
            settings=settings.http,
            auth=basic_auth(user, token) if user else BearerAuth(token),
            auth_hint="check BITBUCKET_API_USER and BITBUCKET_API_TOKEN (app passwords stopped "
                      "working in 2026: use an API token or an access token)")

    def close(self) -> None:
        self.api.close()

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
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
        commits: list[GraphCommit] = []
        url: str | None = f"/repositories/{self.workspace}/{repo}/commits"
        params: dict[str, Any] | None = {"include": new, "exclude": old, "pagelen": PAGE}
        seen: set[str] = set()
        while url:
            body = self._get(url, params=params)
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
        return commits


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
    """The commit-graph interface of collect, answered by Bitbucket. Resolved revisions go into
    `store` (shared by every repository of a run, guarded by one lock; the caller saves it
    once). Ranges stay in memory: the change sets made of them are kept by collect's records,
    so keeping them here too would only grow the cache with history."""

    lock = threading.Lock()

    def __init__(self, client: BitbucketClient, repo: str, store: dict[str, Any]) -> None:
        self.client = client
        self.repo = repo
        with self.lock:
            mine = store.setdefault(f"{client.workspace}/{repo}", {})
            mine.pop("ranges", None)  # kept by earlier versions
            self._resolved: dict[str, str | None] = mine.setdefault("resolved", {})
        self._ranges: dict[tuple[str, str], list[GraphCommit]] = {}

    def resolve(self, revisions: Iterable[str]) -> dict[str, str | None]:
        wanted = list(dict.fromkeys(revisions))
        missing = [r for r in wanted if r not in self._resolved]
        if missing:
            with ThreadPoolExecutor(max_workers=min(self.client.concurrency, len(missing))) as pool:
                found = list(pool.map(lambda r: self.client.commit(self.repo, r), missing))
            with self.lock:
                for revision, commit in zip(missing, found, strict=True):
                    self._resolved[revision] = commit.sha if commit else None
        return {r: self._resolved.get(r) for r in wanted}

    def load(self, tips: Iterable[str]) -> None:
        """Nothing to load up front: ranges are fetched by `prefetch`."""

    def prefetch(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Fetch the ranges (new, old) not fetched yet this run, several at once."""
        missing = [p for p in dict.fromkeys(pairs) if p not in self._ranges]
        if not missing:
            return
        with ThreadPoolExecutor(max_workers=min(self.client.concurrency, len(missing))) as pool:
            results = list(pool.map(lambda p: self.client.range(self.repo, p[0], p[1]), missing))
        with self.lock:
            self._ranges.update(zip(missing, results, strict=True))

    def only_in(self, new: str, old: str | None) -> list[GraphCommit]:
        if old is None:
            return []
        self.prefetch([(new, old)])
        return self._ranges[(new, old)]
