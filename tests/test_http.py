from __future__ import annotations

import httpx
import pytest
from pytest_httpx import HTTPXMock

from devex_cli.config import HttpSettings
from devex_cli.errors import UpstreamError, UpstreamHTTPError
from devex_cli.http import ApiClient, BearerAuth, error_summary, parse_retry_after
from devex_cli.masking import mask

FAST = HttpSettings(timeout=2, retries=3, backoff=0.0, max_retry_after=0.05)


def client(**kw: object) -> ApiClient:
    return ApiClient("Jira", "https://jira.example.com", settings=FAST, **kw)  # type: ignore[arg-type]


def test_retries_5xx_then_succeeds(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=503)
    httpx_mock.add_response(status_code=502)
    httpx_mock.add_response(json={"ok": True})
    with client() as api:
        assert api.get_json("/x") == {"ok": True}
        assert api.requests_made == 3


def test_429_waits_for_retry_after_capped(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=429, headers={"Retry-After": "3600"})
    httpx_mock.add_response(json=[])
    with client() as api:
        assert api.get_json("/x") == []  # waited the 0.05 s cap, not an hour


def test_gives_up_with_the_status_and_jira_message(httpx_mock: HTTPXMock) -> None:
    for _ in range(4):
        httpx_mock.add_response(status_code=503, json={"errorMessages": ["Maintenance"]})
    with client() as api, pytest.raises(UpstreamHTTPError) as raised:
        api.get_json("/x")
    assert raised.value.exit_code == 3
    assert "503" in str(raised.value) and "Maintenance" in str(raised.value)
    assert "after 4 attempts" in str(raised.value)


def test_client_errors_are_not_retried(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=401, json={"errorMessages": ["Not authenticated"]})
    with client(auth_hint="check JIRA_API_TOKEN") as api, pytest.raises(UpstreamHTTPError) as e:
        api.get_json("/x")
    assert e.value.status == 401
    assert api.requests_made == 1
    assert "check JIRA_API_TOKEN" in str(e.value)


def test_connection_errors_are_retried_then_reported(httpx_mock: HTTPXMock) -> None:
    for _ in range(4):
        httpx_mock.add_exception(httpx.ConnectError("Connection refused"))
    with client() as api, pytest.raises(UpstreamError, match="cannot reach"):
        api.get_json("/x")


def test_malformed_json_is_an_upstream_error(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(text="<html>login</html>", headers={"content-type": "text/html"})
    with client() as api, pytest.raises(UpstreamError, match="not JSON"):
        api.get_json("/x")


def test_tokens_never_appear_in_errors(httpx_mock: HTTPXMock) -> None:
    token = "canary-token-5f1e2d"
    httpx_mock.add_response(status_code=400, json={"errorMessages": [f"bad token {token}"]})
    with client(auth=BearerAuth(token)) as api, pytest.raises(UpstreamHTTPError) as raised:
        api.get_json("/x")
    assert token not in str(raised.value)
    assert httpx_mock.get_requests()[0].headers["Authorization"] == f"Bearer {token}"


def test_credentials_in_urls_are_masked() -> None:
    assert mask("cloning https://user:pw123456@git.example/x.git") == \
        "cloning https://****@git.example/x.git"


@pytest.mark.parametrize(("value", "seconds"), [
    ("5", 5.0), ("0", 0.0), ("", None), (None, None), ("soon", None),
    ("Wed, 25 Nov 2026 12:00:10 GMT", 10.0),
])
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after(value, now=now) == seconds


def test_error_summary_shapes() -> None:
    assert error_summary({"errorMessages": ["a", "b"]}) == "a; b"
    assert error_summary({"errorMessages": [], "errors": {"jql": "bad"}}) == "jql: bad"
    assert error_summary({"message": "permission denied", "code": 7}) == "permission denied"
    assert error_summary(["x"]) == ""


def test_plain_http_systems_load_no_trust_store_and_verify_any_tls() -> None:
    """An http:// system (an in-cluster Pushgateway) skips loading the trust store; should it
    redirect to https, the empty store fails verification instead of trusting anything."""
    import ssl

    from devex_cli.http import _tls

    plain, secure = _tls(plain_http=True), _tls(plain_http=False)
    assert plain is not secure
    assert plain.verify_mode == ssl.CERT_REQUIRED and plain.check_hostname
    assert plain.cert_store_stats()["x509_ca"] == 0
    assert secure.verify_mode == ssl.CERT_REQUIRED and secure.check_hostname
