"""A loopback Bitbucket Cloud API (`/2.0`) backed by real git repositories: a single commit,
and `commits?include=&exclude=` with `pagelen` and `next` pages, as Bitbucket answers them
(without `include`: every branch and tag, as `git log --all`; errors as `{"type": "error",
"error": {"message": ...}}`). `include` and `exclude` take a commit's full SHA1 or a ref name,
as Bitbucket documents them: a short SHA there is answered as a commit not found (the
documentation is silent on it, so the fake is the stricter)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tests.fakes.server import Answer, FakeServer, Request, authorised

NOT_FOUND = {"type": "error", "error": {"message": "Resource not found"}}


class FakeBitbucket(FakeServer):
    def __init__(self, workspace: str = "acme", token: str = "bb-access-token-77",
                 user: str | None = None, page_size: int = 30) -> None:
        super().__init__()
        self.workspace = workspace
        self.token = token
        self.user = user
        self.page_size = page_size
        self.max_pagelen = 100  # Bitbucket's cap on `pagelen` for commits
        self.repos: dict[str, Path] = {}
        self.users: dict[str, str] = {}  # "{uuid}" -> display name
        self.pull_requests: dict[str, str] = {}  # id -> title
        self.route_prefix("GET", "/2.0/repositories/", self._repositories)
        self.route_prefix("GET", "/2.0/users/", self._user)

    def env(self) -> dict[str, str]:
        env = {"BITBUCKET_API_URL": f"{self.url}/2.0", "BITBUCKET_API_TOKEN": self.token,
               "BITBUCKET_WORKSPACE": self.workspace}
        if self.user:
            env["BITBUCKET_API_USER"] = self.user
        return env

    def api_requests(self) -> int:
        return sum(1 for r in self.requests if r.path.startswith("/2.0/"))

    def _authorised(self, request: Request) -> bool:
        return authorised(request, self.token, self.user)

    def _user(self, request: Request) -> Answer:
        if not self._authorised(request):
            return Answer(401, {"type": "error", "error": {"message": "Unauthorized"}})
        from urllib.parse import unquote

        uuid = unquote(request.path.rsplit("/", 1)[-1])
        if uuid not in self.users:
            return Answer(404, NOT_FOUND)
        return Answer(200, {"type": "user", "uuid": uuid, "display_name": self.users[uuid]})

    def _git(self, repo: Path, *args: str) -> str:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              check=False)
        return done.stdout if done.returncode == 0 else ""

    def _documented(self, repo: Path, revision: str) -> bool:
        """A commit's full SHA1 or a ref name (a branch, a tag, HEAD), not a short SHA."""
        if re.fullmatch(r"[0-9a-f]{40}", revision):
            return True
        return revision == "HEAD" or any(
            subprocess.run(["git", "-C", str(repo), "show-ref", "--verify", "--quiet",
                            f"refs/{kind}/{revision}"], check=False).returncode == 0
            for kind in ("heads", "tags"))

    def _commits_json(self, repo: Path, shas: list[str]) -> list[dict[str, Any]]:
        """Commits as Bitbucket shows them, read with one `git log --no-walk`."""
        if not shas:
            return []
        out = self._git(repo, "log", "--no-walk=unsorted",
                        "--format=%x01%H%x00%P%x00%aI%x00%an <%ae>%x00%B", *shas)
        commits = []
        for chunk in out.split("\x01")[1:]:
            full, parents, date, author, message = chunk.split("\x00", 4)
            commits.append({
                "type": "commit", "hash": full, "date": date, "message": message.rstrip("\n"),
                "author": {"type": "author", "raw": author},
                "parents": [{"type": "commit", "hash": p} for p in parents.split()],
                "links": {"html": {"href": f"https://bitbucket.org/{self.workspace}/x/commits/"
                                           f"{full}"}}})
        return commits

    def _repositories(self, request: Request) -> Answer:
        if not self._authorised(request):
            return Answer(401, {"type": "error", "error": {"message": "Unauthorized"}})
        parts = request.path.split("/")  # '', '2.0', 'repositories', ws, repo, kind, [rev]
        if len(parts) < 6 or parts[3] != self.workspace or parts[4] not in self.repos:
            return Answer(404, NOT_FOUND)
        repo = self.repos[parts[4]]
        if parts[5] == "pullrequests" and len(parts) == 7:
            title = self.pull_requests.get(parts[6])
            if title is None:
                return Answer(404, NOT_FOUND)
            return Answer(200, {"type": "pullrequest", "id": int(parts[6]), "title": title,
                                "state": "OPEN",
                                "destination": {"branch": {"name": "main"}}})
        if parts[5] == "commit" and len(parts) == 7:
            sha = self._git(repo, "rev-parse", "--verify", "--quiet", f"{parts[6]}^{{commit}}")
            if not sha.strip():
                return Answer(404, {"type": "error",
                                    "error": {"message": f"Commit not found: {parts[6]}"}})
            return Answer(200, self._commits_json(repo, [sha.strip()])[0])
        if parts[5] == "commits" and len(parts) == 6:
            query = {k: v[0] for k, v in request.query.items()}
            include = request.query.get("include", [])  # none: every branch and tag
            exclude = request.query.get("exclude", [])
            for revision in (*include, *exclude):
                if not self._documented(repo, revision):
                    return Answer(404, {"type": "error", "error": {
                        "message": f"Commit not found: {revision}"}})
            size = min(int(query.get("pagelen", self.page_size)), self.max_pagelen)
            page = int(query.get("page", 1))
            shas = self._git(repo, "rev-list", *(include or ["--all"]),
                             *(f"^{sha}" for sha in exclude)).split()
            if include and not shas and self._git(repo, "rev-parse", "--verify", "--quiet",
                                      *(f"{r}^{{commit}}" for r in include[:1])) == "":
                return Answer(404, {"type": "error", "error": {
                    "message": f"Commit not found: {include[0]}"}})
            chunk = shas[(page - 1) * size : page * size]
            body: dict[str, Any] = {"pagelen": size, "page": page,
                                    "values": self._commits_json(repo, chunk)}
            if page * size < len(shas):
                following = [(k, v) for k, values in request.query.items() for v in values
                             if k not in ("page", "pagelen")]
                following += [("page", str(page + 1)), ("pagelen", str(size))]
                body["next"] = f"{self.url}{request.path}?{urlencode(following)}"
            return Answer(200, body)
        return Answer(404, NOT_FOUND)
