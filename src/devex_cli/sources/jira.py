"""Jira: tickets by key (batched, in parallel) and JQL search, Cloud and Data Center.

Cloud (`JIRA_EMAIL` + `JIRA_API_TOKEN`, Basic): `POST /rest/api/3/issue/bulkfetch` for keys (unknown
keys are silently omitted), `/rest/api/3/search/jql` with `nextPageToken` for JQL.
Data Center (`JIRA_API_TOKEN` alone, Bearer): `/rest/api/2/search` with `startAt` paging and
`validateQuery=warn`; a 400 naming unknown keys is answered by dropping them and asking again.

A key counts as a ticket when its project is a Jira project (`/rest/api/3/project/search?keys=`
on Cloud, `/rest/api/2/project` on Data Center, asked once per client): `UTF-8` is not a ticket,
`PAY-9` that Jira does not return is a ticket "not found or not visible to this account". Keys
the batch did not return are asked one by one, which also finds issues moved to another project
(Jira answers them under their new key). Jira is never asked anonymously.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from devex_cli.config import Settings
from devex_cli.errors import ConfigError, UpstreamError, UpstreamHTTPError
from devex_cli.http import ApiClient, BearerAuth, basic_auth
from devex_cli.masking import mask
from devex_cli.parallel import each, in_background
from devex_cli.sources.base import ApiSource

if TYPE_CHECKING:
    import httpx
from devex_cli.tickets import Ticket, TicketLookup, project_of

TICKET_FIELDS = ("summary", "status", "fixVersions", "issuetype", "resolutiondate", "created",
                 "components", "labels")
MAX_KEYS_PER_REQUEST = 100
MAX_PROJECT_KEYS_PER_REQUEST = 50  # Cloud's project/search takes at most 50 `keys`
MAX_ONE_BY_ONE = 50  # keys a batch did not return, asked one by one; past this: not found
MAX_SEARCH_PAGES = 100  # a JQL search stops there (10,000 issues) instead of paging forever
PAGE_SIZE = 100

# A Jira warning that says the caller may not see what it asked for: its answer is not the truth.
_PERMISSION_WARNING = re.compile(
    r"permission|anonymous|not (?:be )?authenticated|not authori[sz]ed|not logged in|log in",
    re.IGNORECASE)


class JiraClient(ApiSource):
    """Jira, reached through the shared client: a `TicketSource`. Use it as a context manager.
    Raises ConfigError when Jira is not configured or has no credentials."""

    system = "jira"

    def __init__(self, settings: Settings, *, api: ApiClient | None = None) -> None:
        env = settings.environ
        url = settings.jira.url
        if not url:
            raise ConfigError("Jira is not configured", hint="set JIRA_URL (and JIRA_EMAIL, "
                              "JIRA_API_TOKEN) or jira.url in devex.toml")
        self.url = url.rstrip("/")
        email, token = env.get("JIRA_EMAIL"), env.get("JIRA_API_TOKEN")
        if not token:
            # An anonymous Jira answers "no such issue" for every ticket it hides: a gate
            # reading that would allow everything.
            raise ConfigError(
                "Jira credentials are missing: JIRA_API_TOKEN is not set",
                hint="set JIRA_EMAIL and JIRA_API_TOKEN for Jira Cloud, or JIRA_API_TOKEN alone "
                     "for a Data Center personal access token; devex never asks Jira "
                     "anonymously")
        self.cloud = bool(email)
        auth: httpx.Auth = basic_auth(email, token) if email else BearerAuth(token)
        self._projects: dict[str, bool] = {}  # project key -> is a Jira project (this run)
        self._sees_projects: bool | None = None
        self._batch = max(1, min(settings.jira.batch_size, MAX_KEYS_PER_REQUEST))
        self._configured = settings.jira.projects
        self._cache_dir = settings.cache_dir()
        self._concurrency = max(1, settings.jira.concurrency)
        self.api = api or ApiClient(
            "Jira", self.url, settings=settings.http, auth=auth,
            auth_hint="check JIRA_EMAIL and JIRA_API_TOKEN (Cloud) or JIRA_API_TOKEN (Data Center)",
        )

    def browse_url(self, key: str) -> str:
        return f"{self.url}/browse/{key}"

    def fetch_tickets(self, keys: Sequence[str], *, with_sprint: bool = False,
                      projects: Sequence[str] = ()) -> TicketLookup:
        """What Jira says of the keys: tickets (batches of at most 100, several at once), keys
        that are not tickets, and tickets not found or not visible.

        `projects` (else `jira.projects`): only keys of these projects are tickets, and Jira is
        not asked which projects exist. With `with_sprint`, the sprint field is read too.
        Raises UpstreamError when Jira cannot be asked, answers what cannot be read, or says
        the account lacks permission; ConfigError when no credentials are set.
        """
        unique = list(dict.fromkeys(k.upper() for k in keys))
        if not unique:
            return TicketLookup()
        configured = projects or self._configured
        wanted = {project_of(k) for k in unique}
        # Which projects exist is asked beside the tickets: one round trip, not two.
        asking = None if configured else in_background(
            lambda: self.known_projects(wanted), name="jira-projects")
        fields: tuple[str, ...] = TICKET_FIELDS
        sprint = self.sprint_field() if with_sprint else None
        if sprint:
            fields = (*fields, sprint)
        batches = [unique[i : i + self._batch] for i in range(0, len(unique), self._batch)]

        def fetch(batch: list[str]) -> dict[str, Ticket]:
            if self.cloud:
                return self._bulkfetch(batch, fields, sprint)
            return self._search_keys(batch, fields, sprint)

        tickets: dict[str, Ticket] = {}
        for batch_tickets in each(fetch, batches, limit=self._concurrency):
            tickets.update(batch_tickets)
        known = asking.result() if asking else {p.upper() for p in configured}
        candidates = [k for k in unique if project_of(k) in known]
        tickets.update(self._one_by_one([k for k in candidates if k not in tickets],
                                        fields, sprint))
        return TicketLookup(
            tickets={k: tickets[k] for k in candidates if k in tickets},
            not_tickets=tuple(k for k in unique if project_of(k) not in known),
            not_found=tuple(k for k in candidates if k not in tickets))

    def known_projects(self, wanted: Collection[str]) -> set[str]:
        """Which of the project keys are Jira projects this account can see, asked once per
        client (Cloud: `project/search?keys=`, at most 50 a request; Data Center: the project
        list). Raises UpstreamError when the account can see no project at all: every key
        would otherwise be read as "not a ticket".
        """
        ask = sorted(p for p in wanted if p not in self._projects)
        if ask:
            found = self._cloud_projects(ask) if self.cloud else self._dc_projects()
            self._projects.update({p: p in found for p in ask})
        known = {p for p in wanted if self._projects.get(p)}
        if not known and not self._account_sees_projects():
            raise UpstreamError(
                "Jira", "this account can see no Jira project, so no ticket can be checked",
                hint="give the account of JIRA_API_TOKEN the Browse projects permission, or "
                     "check that JIRA_URL is your Jira site")
        return known

    def _cloud_projects(self, keys: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(keys), MAX_PROJECT_KEYS_PER_REQUEST):
            chunk = keys[i : i + MAX_PROJECT_KEYS_PER_REQUEST]
            body = self.api.get_json("/rest/api/3/project/search", params=[
                *(("keys", k) for k in chunk), ("maxResults", MAX_PROJECT_KEYS_PER_REQUEST)])
            found |= _project_keys(_expect_list(body, "values", "project/search"))
        if found:
            self._sees_projects = True
        return found

    def _dc_projects(self) -> set[str]:
        body = self.api.get_json("/rest/api/2/project")
        if not isinstance(body, list):
            raise UpstreamError("Jira", "project answered an unexpected shape (not a list)")
        found = _project_keys(body)
        self._sees_projects = bool(found)  # the whole list: nothing more to ask
        return found

    def _account_sees_projects(self) -> bool:
        if self._sees_projects is None:
            body = self.api.get_json("/rest/api/3/project/search", params={"maxResults": 1})
            self._sees_projects = bool(_expect_list(body, "values", "project/search"))
        return self._sees_projects

    def _one_by_one(self, keys: Sequence[str], fields: Sequence[str],
                    sprint: str | None) -> dict[str, Ticket]:
        """Keys a batch did not return, asked one by one: a moved issue answers under its new
        key; a 404 is "not found or not visible". Past MAX_ONE_BY_ONE keys the rest are not
        asked (and so count as not found: a gate blocks on them)."""
        version = 3 if self.cloud else 2

        def one(key: str) -> tuple[str, Ticket | None]:
            try:
                body = self.api.get_json(f"/rest/api/{version}/issue/{key}",
                                         params={"fields": ",".join(fields)})
            except UpstreamHTTPError as exc:
                if exc.status == 404:
                    return key, None
                raise
            return key, _ticket(body, sprint)

        answered = each(one, list(keys[:MAX_ONE_BY_ONE]), limit=self._concurrency)
        return {key: ticket for key, ticket in answered if ticket is not None}

    def sprint_field(self) -> str | None:
        """The id of the Jira Software sprint field (`schema.custom` ends with `gh-sprint`).

        Field ids never change for a site, so the answer is kept in the cache.
        """
        from devex_cli.cache import TEXT, JsonCache, entries, optional

        # site URL -> the sprint field's id, or null: the site has none
        cache = JsonCache(self._cache_dir, "jira-fields", version=1,
                          shape=entries(optional(TEXT)))
        known = cache.load()
        if self.url in known:
            cached = known[self.url]
            return str(cached) if cached else None
        found = self._find_sprint_field()
        cache.save({**known, self.url: found})
        return found

    def _find_sprint_field(self) -> str | None:
        version = 3 if self.cloud else 2
        body = self.api.get_json(f"/rest/api/{version}/field")
        if not isinstance(body, list):
            raise UpstreamError("Jira", "field answered an unexpected shape (not a list)")
        for item in body:
            custom = str(((item or {}).get("schema") or {}).get("custom") or "")
            if custom.endswith("gh-sprint") and item.get("id"):
                return str(item["id"])
        return None

    def search(self, jql: str, *, fields: Sequence[str] = TICKET_FIELDS) -> list[Ticket]:
        """Every ticket a JQL query finds, following the pages."""
        if self.cloud:
            return list(self._search_cloud(jql, fields))
        return self._search_dc(jql, fields)

    # Cloud -------------------------------------------------------------------------------

    def _bulkfetch(self, keys: list[str], fields: Sequence[str] = TICKET_FIELDS,
                   sprint: str | None = None) -> dict[str, Ticket]:
        body = self.api.post_json(
            "/rest/api/3/issue/bulkfetch", {"issueIdsOrKeys": keys, "fields": list(fields)})
        tickets = [_ticket(i, sprint) for i in _expect_list(body, "issues", "bulkfetch")]
        errors = body.get("issueErrors") or []
        if errors:
            # Keys Jira could not return (a retriable error, a payload limit) are not "unknown":
            # the gate must not read them as tickets without a problem.
            named = ", ".join(str(e.get("id") or e.get("issueIdOrKey") or "?")
                              for e in errors[:5] if isinstance(e, Mapping))
            raise UpstreamError("Jira", f"bulkfetch could not return {len(errors)} ticket(s) "
                                f"({named}): issueErrors", hint="try again later")
        return _only(keys, tickets)

    def _search_cloud(self, jql: str, fields: Sequence[str]) -> Iterator[Ticket]:
        token: str | None = None
        seen_tokens: set[str] = set()
        for _page in range(MAX_SEARCH_PAGES):
            request: dict[str, Any] = {"jql": jql, "fields": list(fields),
                                       "maxResults": PAGE_SIZE}
            if token:
                request["nextPageToken"] = token
            body = self.api.post_json("/rest/api/3/search/jql", request)
            for issue in _expect_list(body, "issues", "search/jql"):
                yield _ticket(issue)
            token = body.get("nextPageToken")
            if body.get("isLast", token is None) or not token:
                return
            if not isinstance(token, str) or token in seen_tokens:
                raise UpstreamError("Jira", "search/jql repeated a nextPageToken; stopped paging")
            seen_tokens.add(token)
        raise _too_many_pages()

    # Data Center -------------------------------------------------------------------------

    def _search_keys(self, keys: list[str], fields: Sequence[str] = TICKET_FIELDS,
                     sprint: str | None = None) -> dict[str, Ticket]:
        remaining = list(keys)
        while remaining:
            jql = f"key in ({', '.join(remaining)})"
            try:
                tickets = self._search_dc(jql, fields, sprint, wanted=set(remaining))
            except UpstreamHTTPError as exc:
                named = _keys_named_in_error(exc.body, remaining) if exc.status == 400 else set()
                if not named:
                    raise
                remaining = [k for k in remaining if k not in named]
                continue
            return _only(keys, tickets)
        return {}

    def _search_dc(self, jql: str, fields: Sequence[str], sprint: str | None = None, *,
                   wanted: set[str] | None = None) -> list[Ticket]:
        """Every page of a search. Paging stops when a page brings nothing new (with `wanted`
        keys: none of them, so at most one page a key), and past MAX_SEARCH_PAGES, whatever
        `total` claims."""
        tickets: list[Ticket] = []
        seen: set[str] = set()
        start = 0
        for _page in range(MAX_SEARCH_PAGES):
            body = self.api.get_json("/rest/api/2/search", params={
                "jql": jql, "fields": ",".join(fields), "startAt": start,
                "maxResults": PAGE_SIZE, "validateQuery": "warn",
            })
            issues = _expect_list(body, "issues", "search")
            _refuse_permission_warnings(body)
            page = [_ticket(i, sprint) for i in issues]
            new = [t for t in page if t.key not in seen]
            seen.update(t.key for t in new)
            tickets.extend(new)
            start += len(issues)
            total = body.get("total")
            # A key search needs no page that brings none of its keys: at most one per key.
            useful = new if wanted is None else [t for t in new if t.key in wanted]
            if (not useful or not isinstance(total, int) or start >= total
                    or (wanted is not None and wanted <= seen)):
                return tickets
        if wanted is not None:
            return tickets  # the keys not returned count as not found
        raise _too_many_pages()


def _too_many_pages() -> UpstreamError:
    return UpstreamError(
        "Jira", f"a search went past {MAX_SEARCH_PAGES} pages ({MAX_SEARCH_PAGES * PAGE_SIZE} "
        "issues); stopped paging", hint="narrow the JQL (jira.incident_jql)")


def _refuse_permission_warnings(body: Mapping[str, Any]) -> None:
    """Data Center answers a search it may not fully run with 200 and `warningMessages`; one
    that speaks of permission means the empty answer is not the truth."""
    for message in body.get("warningMessages") or []:
        if _PERMISSION_WARNING.search(str(message)):
            raise UpstreamError("Jira", f"search warned: {mask(str(message))}",
                                hint="the account lacks permission; check JIRA_API_TOKEN and "
                                     "the account's project permissions")


def _project_keys(projects: Iterable[Any]) -> set[str]:
    try:
        return {str(p["key"]).upper() for p in projects}
    except (KeyError, TypeError):
        raise UpstreamError("Jira", "answered a project of an unexpected shape") from None


def _only(keys: Sequence[str], tickets: Iterable[Ticket]) -> dict[str, Ticket]:
    """The tickets that were asked for, by key."""
    found = {t.key: t for t in tickets}
    return {k: found[k] for k in keys if k in found}


def _expect_list(body: Any, key: str, endpoint: str) -> list[Any]:
    # A missing list is not "no tickets": the gate must never read an odd answer as a pass.
    if not isinstance(body, Mapping) or not isinstance(body.get(key), list):
        raise UpstreamError("Jira", f"{endpoint} answered an unexpected shape (no '{key}' list)")
    items: list[Any] = body[key]
    return items


def _ticket(issue: Any, sprint_field: str | None = None) -> Ticket:
    try:
        key = str(issue["key"]).upper()
        fields = issue.get("fields") or {}
        status = fields.get("status") or {}
        category = (status.get("statusCategory") or {}).get("key", "")
        return Ticket(
            key=key,
            summary=str(fields.get("summary") or ""),
            status=str(status.get("name") or ""),
            status_category=str(category or ""),
            issue_type=str((fields.get("issuetype") or {}).get("name") or ""),
            fix_versions=tuple(str(v["name"]) for v in fields.get("fixVersions") or []),
            created=_jira_time(fields.get("created")),
            components=tuple(str(c["name"]) for c in fields.get("components") or []),
            labels=tuple(str(label) for label in fields.get("labels") or []),
            sprint=_sprint(fields.get(sprint_field)) if sprint_field else None,
        )
    except (KeyError, TypeError, AttributeError, ValueError):
        raise UpstreamError("Jira", "answered an issue of an unexpected shape") from None


_SPRINT_TEXT = re.compile(r"state=([A-Z]+),name=([^,\]]+)")


def _sprint(value: object) -> str | None:
    """The active sprint's name, else the last one's. Cloud answers objects; old Data Center
    versions answer strings such as `...Sprint@1a2b[id=3,rapidViewId=1,state=ACTIVE,name=S 3,...]`."""
    sprints: list[tuple[str, str]] = []
    for item in value if isinstance(value, list) else []:
        if isinstance(item, Mapping) and item.get("name"):
            sprints.append((str(item.get("state") or "").upper(), str(item["name"])))
        elif isinstance(item, str) and (found := _SPRINT_TEXT.search(item)):
            sprints.append((found.group(1), found.group(2)))
    active = [name for state, name in sprints if state == "ACTIVE"]
    return active[-1] if active else (sprints[-1][1] if sprints else None)


def _jira_time(value: object) -> datetime | None:
    """Jira's `2026-10-01T09:00:00.000+0000` (or ISO 8601) as an aware datetime."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
        text = f"{text[:-2]}:{text[-2:]}"
    return datetime.fromisoformat(text)


_QUOTED = re.compile(r"'([^']+)'")


def _keys_named_in_error(body: object, keys: Sequence[str]) -> set[str]:
    """Keys a 400 names as unknown ("An issue with key 'UTF-8' does not exist ...")."""
    if not isinstance(body, Mapping):
        return set()
    wanted = {k.upper(): k for k in keys}
    named: set[str] = set()
    for message in body.get("errorMessages") or []:
        for quoted in _QUOTED.findall(str(message)):
            if quoted.upper() in wanted:
                named.add(wanted[quoted.upper()])
    return named
