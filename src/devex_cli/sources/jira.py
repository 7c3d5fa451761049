"""Jira: tickets by key (batched, in parallel) and JQL search, Cloud and Data Center.

Cloud (`JIRA_EMAIL` + `JIRA_API_TOKEN`, Basic): `POST /rest/api/3/issue/bulkfetch` for keys (unknown
keys are silently omitted), `/rest/api/3/search/jql` with `nextPageToken` for JQL.
Data Center (`JIRA_API_TOKEN` alone, Bearer): `/rest/api/2/search` with `startAt` paging and
`validateQuery=warn`; a 400 naming unknown keys is answered by dropping them and asking again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from devex_cli.config import Settings
from devex_cli.errors import ConfigError, UpstreamError, UpstreamHTTPError
from devex_cli.http import ApiClient, BearerAuth, basic_auth
from devex_cli.parallel import each
from devex_cli.tickets import Ticket, TicketLookup

TICKET_FIELDS = ("summary", "status", "fixVersions", "issuetype", "resolutiondate", "created",
                 "components", "labels")
MAX_KEYS_PER_REQUEST = 100


class JiraClient:
    """Jira, reached through the shared client. Use it as a context manager."""

    def __init__(self, settings: Settings, *, api: ApiClient | None = None) -> None:
        env = settings.environ
        url = settings.jira.url
        if not url:
            raise ConfigError("Jira is not configured", hint="set JIRA_URL (and JIRA_EMAIL, "
                              "JIRA_API_TOKEN) or jira.url in devex.toml")
        self.url = url.rstrip("/")
        email, token = env.get("JIRA_EMAIL"), env.get("JIRA_API_TOKEN")
        self.cloud = bool(email and token)
        auth = None
        if email and token:
            auth = basic_auth(email, token)
        elif token:
            auth = BearerAuth(token)
        self._batch = max(1, min(settings.jira.batch_size, MAX_KEYS_PER_REQUEST))
        self._cache_dir = settings.cache_dir()
        self._concurrency = max(1, settings.jira.concurrency)
        self.api = api or ApiClient(
            "Jira", self.url, settings=settings.http, auth=auth,
            auth_hint="check JIRA_EMAIL and JIRA_API_TOKEN (Cloud) or JIRA_API_TOKEN (Data Center)",
        )

    def __enter__(self) -> JiraClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.api.close()

    def browse_url(self, key: str) -> str:
        return f"{self.url}/browse/{key}"

    def fetch_tickets(self, keys: Sequence[str], *, with_sprint: bool = False) -> TicketLookup:
        """Tickets for the keys, in batches of at most 100, several batches at once.

        With `with_sprint`, the sprint custom field is found first (one request) and read too.
        Raises UpstreamError when Jira cannot be asked or answers what cannot be read.
        """
        unique = list(dict.fromkeys(k.upper() for k in keys))
        if not unique:
            return TicketLookup()
        fields: tuple[str, ...] = TICKET_FIELDS
        sprint = self.sprint_field() if with_sprint else None
        if sprint:
            fields = (*fields, sprint)
        batches = [unique[i : i + self._batch] for i in range(0, len(unique), self._batch)]

        def fetch(batch: list[str]) -> dict[str, Ticket]:
            if self.cloud:
                return self._bulkfetch(batch, fields, sprint)
            return self._search_keys(batch, fields, sprint)

        results = each(fetch, batches, limit=self._concurrency)
        tickets: dict[str, Ticket] = {}
        for batch_tickets in results:
            tickets.update(batch_tickets)
        unknown = tuple(k for k in unique if k not in tickets)
        return TicketLookup(tickets={k: tickets[k] for k in unique if k in tickets},
                            unknown=unknown)

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
        while True:
            request: dict[str, Any] = {"jql": jql, "fields": list(fields), "maxResults": 100}
            if token:
                request["nextPageToken"] = token
            body = self.api.post_json("/rest/api/3/search/jql", request)
            for issue in _expect_list(body, "issues", "search/jql"):
                yield _ticket(issue)
            token = body.get("nextPageToken")
            if body.get("isLast", token is None) or not token:
                return
            if token in seen_tokens:
                raise UpstreamError("Jira", "search/jql repeated a nextPageToken; stopped paging")
            seen_tokens.add(token)

    # Data Center -------------------------------------------------------------------------

    def _search_keys(self, keys: list[str], fields: Sequence[str] = TICKET_FIELDS,
                     sprint: str | None = None) -> dict[str, Ticket]:
        remaining = list(keys)
        while remaining:
            jql = f"key in ({', '.join(remaining)})"
            try:
                tickets = self._search_dc(jql, fields, sprint)
            except UpstreamHTTPError as exc:
                named = _keys_named_in_error(exc.body, remaining) if exc.status == 400 else set()
                if not named:
                    raise
                remaining = [k for k in remaining if k not in named]
                continue
            return _only(keys, tickets)
        return {}

    def _search_dc(self, jql: str, fields: Sequence[str],
                   sprint: str | None = None) -> list[Ticket]:
        tickets: list[Ticket] = []
        start = 0
        while True:
            body = self.api.get_json("/rest/api/2/search", params={
                "jql": jql, "fields": ",".join(fields), "startAt": start, "maxResults": 100,
                "validateQuery": "warn",
            })
            issues = _expect_list(body, "issues", "search")
            tickets.extend(_ticket(i, sprint) for i in issues)
            start += len(issues)
            total = body.get("total")
            if not issues or not isinstance(total, int) or start >= total:
                return tickets


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
