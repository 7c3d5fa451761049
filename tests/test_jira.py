from __future__ import annotations

from pathlib import Path

import pytest

from devex_cli.config import load_settings
from devex_cli.errors import ConfigError, UpstreamError, UpstreamHTTPError
from devex_cli.sources.jira import JiraClient
from tests.conftest import FAST_HTTP
from tests.fakes.jira import FakeJira


def settings_for(server: FakeJira, tmp_path: Path, extra: str = "", **env: str):  # type: ignore[no-untyped-def]
    config = tmp_path / "devex.toml"
    config.write_text(FAST_HTTP + extra)
    return load_settings(config, environ={**server.env(), **env})


def test_bulkfetch_in_batches_of_100(jira: FakeJira, tmp_path: Path) -> None:
    keys = [f"PROJ-{n}" for n in range(1, 251)]
    for n, key in enumerate(keys):
        jira.add(key, *(["1.4.0"] if n % 2 else []))
    with JiraClient(settings_for(jira, tmp_path)) as client:
        lookup = client.fetch_tickets([*keys, "UTF-8", "SHA-256"])
    calls = [r for r in jira.api_requests() if r.path == "/rest/api/3/issue/bulkfetch"]
    assert len(calls) == 3
    assert sorted(len(r.body["issueIdsOrKeys"]) for r in calls) == [52, 100, 100]
    # Which projects exist: one request for the three candidates, beside the batches.
    projects = [r for r in jira.api_requests() if r.path == "/rest/api/3/project/search"]
    assert [sorted(r.query["keys"]) for r in projects] == [["PROJ", "SHA", "UTF"]]
    assert len(jira.api_requests()) == 4
    assert len(lookup.tickets) == 250
    assert lookup.not_tickets == ("UTF-8", "SHA-256")
    assert lookup.not_found == ()
    assert lookup.tickets["PROJ-2"].fix_versions == ("1.4.0",)
    assert lookup.tickets["PROJ-1"].fix_versions == ()
    assert lookup.tickets["PROJ-1"].status == "In Progress"
    assert list(lookup.tickets)[:2] == ["PROJ-1", "PROJ-2"]


def test_search_jql_follows_next_page_token(jira: FakeJira, tmp_path: Path) -> None:
    for n in range(1, 121):
        jira.add(f"OPS-{n}", issue_type="Incident")
    with JiraClient(settings_for(jira, tmp_path)) as client:
        tickets = client.search("project = OPS")
    assert len(tickets) == 120
    assert tickets[0].issue_type == "Incident"
    assert len(jira.api_requests()) == 3  # pages of 50


def test_data_center_search_with_validate_query_warn(jira_dc: FakeJira, tmp_path: Path) -> None:
    jira_dc.add("PROJ-1", "2.0")
    with JiraClient(settings_for(jira_dc, tmp_path)) as client:
        assert not client.cloud
        lookup = client.fetch_tickets(["PROJ-1", "UTF-8"])
    assert lookup.tickets["PROJ-1"].fix_versions == ("2.0",)
    assert lookup.not_tickets == ("UTF-8",)
    request = next(r for r in jira_dc.api_requests() if r.path == "/rest/api/2/search")
    assert request.query["validateQuery"] == ["warn"]
    assert request.headers["authorization"] == f"Bearer {jira_dc.token}"


def test_data_center_400_naming_unknown_keys_is_retried_without_them(
    jira_dc: FakeJira, tmp_path: Path
) -> None:
    jira_dc.add("PROJ-1")
    # A server that ignores validateQuery answers 400 naming the key.
    jira_dc.fail_next(400, {"errorMessages": [
        "An issue with key 'SHA-256' does not exist for field 'key'."], "errors": {}},
        path="/rest/api/2/search")
    with JiraClient(settings_for(jira_dc, tmp_path)) as client:
        lookup = client.fetch_tickets(["PROJ-1", "SHA-256"])
    assert list(lookup.tickets) == ["PROJ-1"]
    assert lookup.not_tickets == ("SHA-256",)
    searches = [r for r in jira_dc.api_requests() if r.path == "/rest/api/2/search"]
    assert "SHA-256" not in searches[1].query["jql"][0]


def test_429_then_success(jira: FakeJira, tmp_path: Path) -> None:
    jira.add("PROJ-1", "1.0")
    jira.fail_next(429, {"errorMessages": ["Rate limit exceeded"]}, {"Retry-After": "1"},
                   path="/rest/api/3/issue/bulkfetch")
    with JiraClient(settings_for(jira, tmp_path)) as client:
        assert client.fetch_tickets(["PROJ-1"]).tickets["PROJ-1"].fix_versions == ("1.0",)
    assert [r.path for r in jira.api_requests()].count("/rest/api/3/issue/bulkfetch") == 2


def test_wrong_credentials(jira: FakeJira, tmp_path: Path) -> None:
    settings = settings_for(jira, tmp_path, JIRA_API_TOKEN="wrong-token-value")
    with JiraClient(settings) as client, pytest.raises(UpstreamHTTPError) as raised:
        client.fetch_tickets(["PROJ-1"])
    assert raised.value.status == 401
    assert "not authenticated" in str(raised.value)
    assert "wrong-token-value" not in str(raised.value)


def test_removed_search_endpoint_answers_410(jira: FakeJira, tmp_path: Path) -> None:
    with JiraClient(settings_for(jira, tmp_path)) as client, \
            pytest.raises(UpstreamHTTPError) as raised:
        client.api.get_json("/rest/api/3/search", params={"jql": "project = X"})
    assert raised.value.status == 410 and "search/jql" in str(raised.value)


def test_malformed_and_wrongly_shaped_answers(jira: FakeJira, tmp_path: Path) -> None:
    bulk = "/rest/api/3/issue/bulkfetch"
    jira.fail_next(200, b"{not json", path=bulk)
    jira.fail_next(200, {"issues": {"PROJ-1": {}}}, path=bulk)
    with JiraClient(settings_for(jira, tmp_path)) as client:
        with pytest.raises(UpstreamError, match="not JSON"):
            client.fetch_tickets(["PROJ-1"])
        with pytest.raises(UpstreamError, match="unexpected shape"):
            client.fetch_tickets(["PROJ-1"])


def test_not_configured(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    with pytest.raises(ConfigError, match="JIRA_URL"):
        JiraClient(load_settings(environ={}, cwd=tmp_path))


def test_sprint_from_data_center_strings() -> None:
    from devex_cli.sources.jira import _sprint

    old = ["com.atlassian.greenhopper.service.sprint.Sprint@1a2b[id=3,rapidViewId=1,"
           "state=CLOSED,name=S 3,startDate=2026-01-01]",
           "com.atlassian.greenhopper.service.sprint.Sprint@1a2c[id=4,rapidViewId=1,"
           "state=ACTIVE,name=S 4,startDate=2026-01-15]"]
    assert _sprint(old) == "S 4"
    assert _sprint([{"name": "A", "state": "closed"}, {"name": "B", "state": "future"}]) == "B"
    assert _sprint(None) is None


def test_paging_is_bounded_when_tokens_never_end(jira: FakeJira, tmp_path: Path) -> None:
    """A server handing out a new nextPageToken on every page (and never isLast) is stopped
    after MAX_SEARCH_PAGES, not followed forever."""
    from devex_cli.sources.jira import MAX_SEARCH_PAGES
    from tests.fakes.server import Answer

    count = iter(range(10**9))

    def endless(request: object) -> Answer:
        n = next(count)
        return Answer(200, {"issues": [{"id": str(n), "key": f"OPS-{n + 1}", "fields": {}}],
                            "nextPageToken": f"t{n}", "isLast": False})

    jira.route("POST", "/rest/api/3/search/jql", endless)
    with JiraClient(settings_for(jira, tmp_path)) as client, \
            pytest.raises(UpstreamError, match="past 100 pages"):
        client.search("project = OPS")
    assert len(jira.api_requests()) == MAX_SEARCH_PAGES


def test_a_repeated_token_stops_paging(jira: FakeJira, tmp_path: Path) -> None:
    from tests.fakes.server import Answer

    jira.route("POST", "/rest/api/3/search/jql", lambda request: Answer(200, {
        "issues": [], "nextPageToken": "same", "isLast": False}))
    with JiraClient(settings_for(jira, tmp_path)) as client, \
            pytest.raises(UpstreamError, match="repeated a nextPageToken"):
        client.search("project = OPS")
    assert len(jira.api_requests()) == 2


def test_data_center_total_of_a_trillion_is_not_believed(
    jira_dc: FakeJira, tmp_path: Path
) -> None:
    """`total: 10**12` and pages of issues nobody asked for: a key search stops at the first
    page that brings none of its keys; a JQL search at the page cap."""
    from devex_cli.sources.jira import MAX_SEARCH_PAGES
    from tests.fakes.server import Answer

    jira_dc.add("PROJ-1", "1.0")
    jira_dc.add("PROJ-2", "1.0")
    count = iter(range(10**9))

    def lying(request: object) -> Answer:
        n = next(count)
        issues = [{"id": str(n), "key": f"JUNK-{n + 1}", "fields": {}}]
        if n == 0:
            issues.append({"id": "1", "key": "PROJ-1", "fields": {"fixVersions": []}})
        return Answer(200, {"startAt": n, "maxResults": 50, "total": 10**12, "issues": issues})

    jira_dc.route("GET", "/rest/api/2/search", lying)
    with JiraClient(settings_for(jira_dc, tmp_path)) as client:
        lookup = client.fetch_tickets(["PROJ-1", "PROJ-2"])
        searches = [r for r in jira_dc.api_requests() if r.path == "/rest/api/2/search"]
        assert len(searches) == 2  # the second page brought neither key: stop
        assert "PROJ-1" in lookup.tickets
        assert lookup.tickets["PROJ-2"].fix_versions == ("1.0",)  # asked one by one
        with pytest.raises(UpstreamError, match="past 100 pages"):
            client.search("project = JUNK")
    searches = [r for r in jira_dc.api_requests() if r.path == "/rest/api/2/search"]
    assert len(searches) == 2 + MAX_SEARCH_PAGES
