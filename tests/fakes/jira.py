"""A loopback Jira that answers as Jira Cloud (or Data Center) does today.

Cloud: `POST /rest/api/3/issue/bulkfetch` (<=100 keys, unknown keys silently omitted),
`GET|POST /rest/api/3/search/jql` (only `id` unless `fields` is given, `nextPageToken`, no `total`;
400 with `errorMessages` for a key that does not exist), 410 Gone on the removed
`/rest/api/3/search` and `/rest/api/2/search`. Data Center: `/rest/api/2/search` with
`startAt`/`total`, `validateQuery=warn` turning unknown keys into `warningMessages`.
Auth: Cloud wants Basic email:token, Data Center a Bearer token; anything else is 401 (or, with
`anonymous`, Data Center's anonymous view: 200 with nothing the anonymous user may not see).

Projects: Cloud `GET /rest/api/3/project/search` (`keys` repeated, at most 50, only projects the
caller may browse; `values`, `total`, `isLast`), Data Center `GET /rest/api/2/project` (a list).
A project exists once an issue of it is added, or through `projects`; `hidden` issues exist but
this account may not see them (omitted by bulkfetch, 404 one by one, "does not exist" in JQL,
as Jira says for both). `move(OLD, NEW)` moves an issue: every API answers the old key with the
issue under its new key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.server import Answer, FakeServer, Request, authorised

_KEY_IN = re.compile(r"key\s+in\s*\(([^)]*)\)", re.IGNORECASE)
_KEY_EQ = re.compile(r"key\s*=\s*([A-Z][A-Z0-9_]*-\d+)", re.IGNORECASE)
_PROJECT = re.compile(r"project\s*=\s*\"?([A-Z][A-Z0-9_]*)\"?", re.IGNORECASE)

SPRINT_FIELD = "customfield_10020"
FIELDS = [
    {"id": "summary", "name": "Summary", "custom": False, "schema": {"type": "string",
                                                                   "system": "summary"}},
    {"id": "customfield_10001", "name": "Team", "custom": True,
     "schema": {"type": "team", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:"
                                          "atlassian-team"}},
    {"id": SPRINT_FIELD, "name": "Sprint", "custom": True,
     "schema": {"type": "array", "items": "json",
                "custom": "com.pyxis.greenhopper.jira:gh-sprint", "customId": 10020}},
]

UNAUTHORIZED = {"errorMessages": [
    "You are not authenticated. Authentication required to perform this operation."],
    "errors": {}}


@dataclass
class FakeIssue:
    key: str
    summary: str = "A change"
    status: str = "In Progress"
    category: str = "indeterminate"
    issue_type: str = "Story"
    fix_versions: list[str] = field(default_factory=list)
    components: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    created: str = "2026-10-01T09:00:00.000+0000"
    sprints: list[tuple[str, str]] = field(default_factory=list)  # (name, state)

    def as_json(self, fields: list[str] | None, issue_id: int) -> dict[str, Any]:
        every = {
            "summary": self.summary,
            "status": {"name": self.status, "statusCategory": {"key": self.category}},
            "issuetype": {"name": self.issue_type},
            "fixVersions": [{"id": str(1000 + i), "name": n, "released": False}
                            for i, n in enumerate(self.fix_versions)],
            "created": self.created,
            "components": [{"id": str(i), "name": c} for i, c in enumerate(self.components)],
            "labels": self.labels,
            SPRINT_FIELD: [{"id": 100 + n, "name": name, "state": state, "boardId": 1}
                           for n, (name, state) in enumerate(self.sprints)] or None,
            "resolutiondate": None,
        }
        issue: dict[str, Any] = {"id": str(issue_id), "key": self.key,
                                 "self": f"/rest/api/3/issue/{issue_id}"}
        if fields:
            wanted = every if "*all" in fields else {k: v for k, v in every.items() if k in fields}
            issue["fields"] = wanted
        return issue


class FakeJira(FakeServer):
    def __init__(self, *, cloud: bool = True, email: str = "ci@example.com",
                 token: str = "jira-secret-token-123", page_size: int = 50) -> None:
        super().__init__()
        self.cloud = cloud
        self.email = email
        self.token = token
        self.page_size = page_size
        self.issues: dict[str, FakeIssue] = {}
        self.auto_projects: set[str] = set()  # keys of these projects exist on demand
        self.projects: set[str] = set()  # projects with no issue added (yet)
        self.hidden: set[str] = set()  # issues that exist but this account may not see
        self.moved: dict[str, str] = {}  # old key -> new key
        self.anonymous = False  # Data Center with anonymous access: 200 for the anonymous
        self.anonymous_warning = ("Field 'key' does not exist or this field cannot be viewed "
                                  "by anonymous users.")
        version = 3 if cloud else 2
        self.route("GET", f"/rest/api/{version}/field", self._fields)
        if cloud:
            self.route("GET", "/rest/api/3/project/search", self._project_search)
        else:
            self.route("GET", "/rest/api/2/project", self._project_list)
        self.route_prefix("GET", f"/rest/api/{version}/issue/", self._issue)
        if cloud:
            self.route("POST", "/rest/api/3/issue/bulkfetch", self._bulkfetch)
            self.route("POST", "/rest/api/3/search/jql", self._search_jql)
            self.route("GET", "/rest/api/3/search/jql", self._search_jql)
            for gone in ("/rest/api/3/search", "/rest/api/2/search"):
                self.route("GET", gone, self._gone)
                self.route("POST", gone, self._gone)
        else:
            self.route("GET", "/rest/api/2/search", self._search_dc)
            self.route("POST", "/rest/api/2/search", self._search_dc)

    def add(self, key: str, *fix_versions: str, **attrs: Any) -> FakeIssue:
        issue = FakeIssue(key, fix_versions=list(fix_versions), **attrs)
        self.issues[key] = issue
        return issue

    def env(self) -> dict[str, str]:
        """The environment a devex run against this fake needs."""
        if self.cloud:
            return {"JIRA_URL": self.url, "JIRA_EMAIL": self.email, "JIRA_API_TOKEN": self.token}
        return {"JIRA_URL": self.url, "JIRA_API_TOKEN": self.token}

    def api_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path.startswith("/rest/")]

    # -- handlers ------------------------------------------------------------------------

    def _authorised(self, request: Request) -> bool:
        return authorised(request, self.token, self.email if self.cloud else None)

    def _id(self, key: str) -> int:
        return 10000 + list(self.issues).index(key)

    def move(self, old: str, new: str) -> FakeIssue:
        """Move an issue to another key (another project): Jira answers the old key with it."""
        issue = self.issues.pop(old)
        issue.key = new
        self.issues[new] = issue
        self.moved[old] = new
        return issue

    def all_projects(self) -> set[str]:
        return ({k.rsplit("-", 1)[0] for k in self.issues} | self.projects
                | self.auto_projects)

    def _visible_projects(self) -> list[str]:
        visible = {k.rsplit("-", 1)[0] for k in self.issues if k not in self.hidden}
        return sorted(visible | self.projects | self.auto_projects)

    def _known(self, key: str) -> FakeIssue | None:
        key = key.upper()
        key = self.moved.get(key, key)
        if key in self.hidden:
            return None
        if key not in self.issues and key.rsplit("-", 1)[0] in self.auto_projects:
            number = int(key.rsplit("-", 1)[1])
            self.issues[key] = FakeIssue(key, summary=f"Change {number}",
                                         fix_versions=[] if number % 7 == 0 else ["1.0"])
        return self.issues.get(key)

    def _issue(self, request: Request) -> Answer:
        """GET /rest/api/N/issue/{key}: one ticket (what per-ticket scripts call)."""
        if not self._authorised(request):
            return Answer(401, UNAUTHORIZED)
        key = request.path.rsplit("/", 1)[-1]
        issue = self._known(key)
        if issue is None:
            return Answer(404, {"errorMessages": ["Issue does not exist or you do not have "
                                                  "permission to see it."], "errors": {}})
        fields = request.query.get("fields", ["*navigable"])[0].split(",")
        return Answer(200, issue.as_json(fields, self._id(issue.key)))

    def _project_search(self, request: Request) -> Answer:
        """GET /rest/api/3/project/search: paged projects the caller may browse."""
        if not self._authorised(request):
            return Answer(401, UNAUTHORIZED)
        keys = [k.upper() for k in request.query.get("keys", [])]
        if len(keys) > 50:
            return Answer(400, {"errorMessages": ["Up to 50 project keys can be provided."],
                                "errors": {}})
        visible = self._visible_projects()
        matching = [p for p in visible if p in keys] if keys else visible
        start = int(request.query.get("startAt", ["0"])[0])
        size = min(int(request.query.get("maxResults", ["50"])[0]), 50)
        page = matching[start : start + size]
        return Answer(200, {"maxResults": size, "startAt": start, "total": len(matching),
                            "isLast": start + size >= len(matching),
                            "values": [{"id": str(10000 + n), "key": p, "name": f"Project {p}"}
                                       for n, p in enumerate(page)]})

    def _project_list(self, request: Request) -> Answer:
        """GET /rest/api/2/project (Data Center): every project the caller may browse."""
        if not self._authorised(request):
            if self.anonymous:
                return Answer(200, [])
            return Answer(401, UNAUTHORIZED)
        return Answer(200, [{"id": str(10000 + n), "key": p, "name": f"Project {p}"}
                            for n, p in enumerate(self._visible_projects())])

    def _fields(self, request: Request) -> Answer:
        if not self._authorised(request):
            return Answer(401, UNAUTHORIZED)
        return Answer(200, FIELDS)

    def _gone(self, request: Request) -> Answer:
        return Answer(410, {"errorMessages": [
            "The requested API has been removed. Please migrate to the /rest/api/3/search/jql "
            "API. A full migration guideline is available at "
            "https://developer.atlassian.com/changelog/#CHANGE-2046"], "errors": {}})

    def _bulkfetch(self, request: Request) -> Answer:
        if not self._authorised(request):
            return Answer(401, UNAUTHORIZED)
        body = request.body or {}
        keys = body.get("issueIdsOrKeys") or []
        if not keys or len(keys) > 100:
            return Answer(400, {"errorMessages": [
                "The number of issue IDs or keys must be between 1 and 100."], "errors": {}})
        fields = body.get("fields") or ["*navigable"]
        found = [issue.as_json(fields, self._id(issue.key))
                 for k in keys if (issue := self._known(k)) is not None]
        return Answer(200, {"expand": "schema,names", "issues": found, "issueErrors": []})

    def _matching(self, jql: str) -> tuple[list[FakeIssue], list[str]]:
        keys: list[str] = []
        if found := _KEY_IN.search(jql):
            keys = [k.strip().strip('"').upper() for k in found.group(1).split(",") if k.strip()]
        elif found := _KEY_EQ.search(jql):
            keys = [found.group(1).upper()]
        if keys:
            found = [issue for k in keys if (issue := self._known(k)) is not None]
            unknown = [k for k in keys if self._known(k) is None]
            return list({i.key: i for i in found}.values()), unknown
        if found := _PROJECT.search(jql):
            project = found.group(1).upper()
            return [i for k, i in self.issues.items() if k.startswith(project + "-")], []
        return list(self.issues.values()), []

    def _search_jql(self, request: Request) -> Answer:
        if not self._authorised(request):
            return Answer(401, UNAUTHORIZED)
        if request.method == "POST":
            params = request.body or {}
        else:
            params = {k: v[0] for k, v in request.query.items()}
            if "fields" in params:
                params["fields"] = params["fields"].split(",")
        matching, unknown = self._matching(str(params.get("jql", "")))
        if unknown:
            return Answer(400, {"errorMessages": [
                f"An issue with key '{k}' does not exist for field 'key'." for k in unknown],
                "warningMessages": []})
        size = min(int(params.get("maxResults") or self.page_size), self.page_size)
        start = int(params.get("nextPageToken") or 0)
        page = matching[start : start + size]
        fields = params.get("fields")
        answer: dict[str, Any] = {"issues": [i.as_json(fields, self._id(i.key)) for i in page]}
        if start + size < len(matching):
            answer["nextPageToken"] = str(start + size)
            answer["isLast"] = False
        else:
            answer["isLast"] = True
        return Answer(200, answer)

    def _search_dc(self, request: Request) -> Answer:
        if not self._authorised(request):
            if not self.anonymous:
                return Answer(401, UNAUTHORIZED)
            # Anonymous access on: the anonymous user sees no issue, and Jira says so only in
            # a warning.
            return Answer(200, {"startAt": 0, "maxResults": 50, "total": 0, "issues": [],
                                "warningMessages": [self.anonymous_warning]})
        if request.method == "POST":
            params = request.body or {}
        else:
            params = {k: v[0] for k, v in request.query.items()}
        fields = params.get("fields") or "*navigable"
        if isinstance(fields, str):
            fields = fields.split(",")
        matching, unknown = self._matching(str(params.get("jql", "")))
        warnings: list[str] = []
        if unknown:
            messages = [f"An issue with key '{k}' does not exist for field 'key'." for k in unknown]
            if str(params.get("validateQuery", "strict")) not in ("warn", "false"):
                return Answer(400, {"errorMessages": messages, "errors": {}})
            warnings = messages
        start = int(params.get("startAt") or 0)
        size = min(int(params.get("maxResults") or self.page_size), self.page_size)
        page = matching[start : start + size]
        return Answer(200, {"startAt": start, "maxResults": size, "total": len(matching),
                            "issues": [i.as_json(fields, self._id(i.key)) for i in page],
                            "warningMessages": warnings})
