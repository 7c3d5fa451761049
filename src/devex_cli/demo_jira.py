"""The demo's own Jira: the sample organisation's tickets on 127.0.0.1, for as long as a command runs.

Read-only, and only what devex asks of Jira Cloud, answered in Jira Cloud's shapes:
`POST /rest/api/3/issue/bulkfetch` (1 to 100 keys; keys it does not have are left out, as Jira
leaves out issues that do not exist or that the account may not see), `GET /rest/api/3/issue/{key}`
(404 for one it does not have), `GET /rest/api/3/project/search` (`keys` repeated, paged) and
`GET /rest/api/3/field`. Every API call wants Basic auth with the run's own email and random token
(401 otherwise, with Jira's message). `GET /browse/{key}`, where the gate's links point, is a
plain-text page.

The tickets are the organisation's `jira/issues.json` (written by `demo.build_demo`), read again
whenever the file changes: giving a ticket a fix version there is giving it one in this Jira.
Standard library only, so that the demo loads nothing more for it.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

EMAIL = "demo@acme.example"
MAX_KEYS = 100  # bulkfetch's limit
UNAUTHORIZED = {"errorMessages": [
    "You are not authenticated. Authentication required to perform this operation."],
    "errors": {}}
NOT_FOUND = {"errorMessages": ["Issue does not exist or you do not have permission to see it."],
             "errors": {}}
# A few of the system fields Jira Cloud lists (it lists hundreds); no sprint field: the demo has
# no Jira Software board.
FIELDS = [
    {"id": key, "key": key, "name": name, "custom": False, "orderable": True,
     "navigable": True, "searchable": True, "schema": {"type": kind, "system": key}}
    for key, name, kind in (("summary", "Summary", "string"), ("status", "Status", "status"),
                            ("issuetype", "Issue Type", "issuetype"),
                            ("fixVersions", "Fix versions", "array"),
                            ("created", "Created", "datetime"),
                            ("components", "Components", "array"), ("labels", "Labels", "array"))
]
_CATEGORIES = {"Done": ("done", "Done"), "To Do": ("new", "To Do")}


class _Tickets:
    """`issues.json`, read again when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self.issues: dict[str, dict[str, Any]] = {}
        self.projects: list[dict[str, str]] = []
        self.versions: dict[str, int] = {}  # fix version name -> its id

    def current(self) -> _Tickets:
        with self._lock:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp != self._stamp:
                # a file being edited may not parse: keep what was read before until it does
                try:
                    content = json.loads(self.path.read_text(encoding="utf-8"))
                    issues = {str(i["key"]).upper(): i for i in content["issues"]}
                    projects = [{"key": str(p["key"]), "name": str(p["name"])}
                                for p in content["projects"]]
                except (ValueError, KeyError, TypeError):
                    if self._stamp is None:
                        raise
                    return self
                self.issues, self.projects, self._stamp = issues, projects, stamp
                names = [str(n) for i in issues.values() for n in i.get("fix_versions") or ()]
                self.versions = {name: 10000 + n for n, name in enumerate(dict.fromkeys(names))}
            return self


class DemoJira:
    """The loopback Jira; use it as a context manager (started on entry, stopped on exit)."""

    def __init__(self, issues_file: Path) -> None:
        self.tickets = _Tickets(issues_file)
        self.tickets.current()  # a file that cannot be read fails here, not in a request
        self.email = EMAIL
        self.token = secrets.token_urlsafe(24)
        self._expected = "Basic " + base64.b64encode(
            f"{self.email}:{self.token}".encode()).decode()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the demo's own output is the tables."""

            def do_GET(self) -> None:
                self._answer(owner.answer("GET", self.path, self.headers.get("Authorization"),
                                          None))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if 0 < length <= 1 << 20 else b""
                self._answer(owner.answer("POST", self.path,
                                          self.headers.get("Authorization"), body))

            def _answer(self, answer: tuple[int, str, bytes]) -> None:
                status, kind, payload = answer
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                """A client that left mid-answer is no news on the demo's terminal."""

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="demo-jira",
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_port}"

    def environ(self) -> dict[str, str]:
        """JIRA_URL, JIRA_EMAIL and JIRA_API_TOKEN for a devex run against this Jira."""
        return {"JIRA_URL": self.url, "JIRA_EMAIL": self.email, "JIRA_API_TOKEN": self.token}

    def __enter__(self) -> DemoJira:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- answers -------------------------------------------------------------------------

    def answer(self, method: str, target: str, authorization: str | None,
               body: bytes | None) -> tuple[int, str, bytes]:
        """Status, content type and body of the answer to a request."""
        parts = urlsplit(target)
        path, query = parts.path, parse_qs(parts.query)
        try:
            tickets = self.tickets.current()
        except (OSError, ValueError, KeyError, TypeError):  # moved away, or never valid
            return _json(503, {"errorMessages": [
                f"devex demo's Jira cannot read its tickets in {self.tickets.path}"], "errors": {}})
        if method == "GET" and path.startswith("/browse/"):
            return self._browse(tickets, path.removeprefix("/browse/"))
        if not path.startswith("/rest/api/3/"):
            return _json(404, {"errorMessages": ["Not found"], "errors": {}})
        if not hmac.compare_digest((authorization or "").encode(), self._expected.encode()):
            return _json(401, UNAUTHORIZED)
        route = (method, path)
        if route == ("POST", "/rest/api/3/issue/bulkfetch"):
            return self._bulkfetch(tickets, body)
        if route == ("GET", "/rest/api/3/project/search"):
            return self._project_search(tickets, query)
        if route == ("GET", "/rest/api/3/field"):
            return _json(200, FIELDS)
        if method == "GET" and path.startswith("/rest/api/3/issue/"):
            key = path.removeprefix("/rest/api/3/issue/").upper()
            if key not in tickets.issues:
                return _json(404, NOT_FOUND)
            fields = query.get("fields", ["*navigable"])[0].split(",")
            return _json(200, self._issue(tickets, key, fields))
        return _json(404, {"errorMessages": ["Not found"], "errors": {}})

    def _bulkfetch(self, tickets: _Tickets, body: bytes | None) -> tuple[int, str, bytes]:
        try:
            request = json.loads(body or b"{}")
            keys = [str(k).upper() for k in request.get("issueIdsOrKeys") or []]
            fields = [str(f) for f in request.get("fields") or ["*navigable"]]
        except (ValueError, AttributeError, TypeError):
            return _json(400, {"errorMessages": ["Invalid request payload."], "errors": {}})
        if not 1 <= len(keys) <= MAX_KEYS:
            return _json(400, {"errorMessages": [
                f"The number of issue IDs or keys must be between 1 and {MAX_KEYS}."],
                "errors": {}})
        issues = [self._issue(tickets, key, fields)
                  for key in dict.fromkeys(keys) if key in tickets.issues]
        return _json(200, {"expand": "schema,names", "issues": issues, "issueErrors": []})

    def _project_search(self, tickets: _Tickets,
                        query: dict[str, list[str]]) -> tuple[int, str, bytes]:
        keys = {k.upper() for k in query.get("keys", [])}
        if len(keys) > 50:
            return _json(400, {"errorMessages": ["Up to 50 project keys can be provided."],
                               "errors": {}})
        matching = [p for p in tickets.projects if not keys or p["key"] in keys]
        start = _number(query, "startAt", 0)
        size = min(_number(query, "maxResults", 50), 50)
        page = matching[start : start + size]
        values = [{"self": f"{self.url}/rest/api/3/project/{10000 + n}", "id": str(10000 + n),
                   "key": p["key"], "name": p["name"], "projectTypeKey": "software"}
                  for n, p in enumerate(page, start)]
        return _json(200, {"self": f"{self.url}/rest/api/3/project/search", "maxResults": size,
                           "startAt": start, "total": len(matching),
                           "isLast": start + size >= len(matching), "values": values})

    def _issue(self, tickets: _Tickets, key: str, fields: list[str]) -> dict[str, Any]:
        issue = tickets.issues[key]
        number = 10000 + list(tickets.issues).index(key)
        status = str(issue.get("status") or "To Do")
        category, category_name = _CATEGORIES.get(status, ("indeterminate", "In Progress"))
        every: dict[str, Any] = {
            "summary": str(issue.get("summary") or ""),
            "status": {"name": status, "statusCategory": {"key": category,
                                                          "name": category_name}},
            "issuetype": {"name": str(issue.get("type") or "Story"), "subtask": False},
            "fixVersions": [
                {"self": f"{self.url}/rest/api/3/version/{tickets.versions.get(str(name), 0)}",
                 "id": str(tickets.versions.get(str(name), 0)), "name": str(name),
                 "archived": False, "released": issue.get("status") == "Done"}
                for name in issue.get("fix_versions") or ()],
            "created": issue.get("created"),
            "components": [],
            "labels": [],
        }
        wanted = every if {"*all", "*navigable"} & set(fields) else {
            name: value for name, value in every.items() if name in fields}
        return {"expand": "renderedFields,names,schema,operations,editmeta,changelog",
                "id": str(number), "self": f"{self.url}/rest/api/3/issue/{number}",
                "key": issue["key"], "fields": wanted}

    def _browse(self, tickets: _Tickets, key: str) -> tuple[int, str, bytes]:
        issue = tickets.issues.get(key.upper())
        if issue is None:
            return 404, "text/plain; charset=utf-8", f"{key}: no such ticket\n".encode()
        versions = ", ".join(issue.get("fix_versions") or ()) or "none"
        page = (f"{issue['key']} {issue.get('summary', '')}\nStatus: {issue.get('status')}\n"
                f"Fix versions: {versions}\n\nThis is devex demo's Jira: its tickets are "
                f"{self.tickets.path}; give this one a fix version there.\n")
        return 200, "text/plain; charset=utf-8", page.encode()


def _json(status: int, body: object) -> tuple[int, str, bytes]:
    return status, "application/json;charset=UTF-8", json.dumps(body).encode()


def _number(query: dict[str, list[str]], name: str, default: int) -> int:
    value = query.get(name, [str(default)])[0]
    return int(value) if value.isdigit() else default
