"""`devex push-metrics` against a real Pushgateway (and a real Prometheus scraping it)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytest_httpx import HTTPXMock

from tests.conftest import Result
from tests.services import (
    get,
    prometheus,
    prometheus_available,
    pushgateway,
    pushgateway_available,
    query,
)

Devex = Callable[..., Result]
DATA = Path(__file__).parent / "data"

needs_gateway = pytest.mark.skipif(
    not pushgateway_available(),
    reason="needs prometheus-pushgateway (Debian); .ci/run installs it")


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[str]:
    with pushgateway(tmp_path / "pushgateway") as url:
        yield url


def series(url: str, name: str) -> list[str]:
    _, body = get(f"{url}/metrics")
    return [line for line in body.splitlines() if line.startswith(name + "{")
            or line.startswith(name + " ")]


@needs_gateway
def test_deployment_metrics_are_pushed_under_a_bounded_group(devex: Devex,
                                                              gateway: str) -> None:
    result = devex("push-metrics", "deployment", "--environment", "qa", "--status", "succeeded",
                   "--service", "payments", "--version", "1.4.2", "--duration", "4m",
                   "--at", "2026-11-25T10:00:00Z", env={"PUSHGATEWAY_URL": gateway})
    assert result.code == 0, result.err
    assert "POST 4 metric families" in result.err and "service=payments" in result.err
    status = series(gateway, "devex_deployment_status")
    assert ('devex_deployment_status{environment="qa",instance="",job="devex",'
            'service="payments",status="succeeded"} 1') in status
    (stamp,) = series(gateway, "devex_deployment_succeeded_timestamp_seconds")
    assert float(stamp.rsplit(" ", 1)[1]) == 1795600800.0  # 2026-11-25T10:00:00Z
    assert any(line.endswith(" 240") for line in series(gateway,
                                                         "devex_deployment_duration_seconds"))
    # a failure later keeps the last success time (POST replaces only same-named metrics)
    devex("push-metrics", "deployment", "--environment", "qa", "--status", "failed", "--service",
          "payments", env={"PUSHGATEWAY_URL": gateway})
    assert series(gateway, "devex_deployment_succeeded_timestamp_seconds")
    assert series(gateway, "devex_deployment_failed_timestamp_seconds")


@needs_gateway
def test_tests_security_replace_and_delete(devex: Devex, gateway: str) -> None:
    env = {"PUSHGATEWAY_URL": gateway, "BITBUCKET_REPO_SLUG": "payments"}
    assert devex("push-metrics", "tests", "--junit", str(DATA / "pytest-junit.xml"),
                 env=env).code == 0
    assert 'result="failed",service="payments"} 2' in "\n".join(series(gateway, "devex_tests"))
    assert devex("push-metrics", "security", "--veracode", str(DATA / "veracode-results.json"),
                 env=env).code == 0
    assert 'severity="very_high"} 1' in "\n".join(series(gateway, "devex_security_findings"))
    # PUT replaces the whole group of (job, service): the test metrics are gone
    assert devex("push-metrics", "--replace", "security", "--sca", str(DATA / "sca.json"),
                 env=env).code == 0
    assert series(gateway, "devex_tests") == []
    assert devex("push-metrics", "--delete", "security", env=env).code == 0
    assert series(gateway, "devex_security_vulnerabilities") == []


@needs_gateway
def test_collect_output_pushed_with_from(devex: Devex, gateway: str, tmp_path: Path) -> None:
    prom = tmp_path / "devex.prom"
    assert devex("demo", "--format", "prometheus").code == 0
    prom.write_text(devex("demo", "--format", "prometheus").out)
    result = devex("push-metrics", "--from", str(prom), "--job", "devex-collect",
                   "--gateway", gateway)
    assert result.code == 0, result.err
    assert any('service="payments"' in line for line in series(gateway,
                                                                "deployment_desired_state"))


@needs_gateway
@pytest.mark.skipif(not prometheus_available(), reason="needs Prometheus (Debian prometheus)")
def test_prometheus_reads_the_pushed_value(devex: Devex, gateway: str, tmp_path: Path) -> None:
    assert devex("push-metrics", "deployment", "--environment", "prod", "--status",
                 "succeeded", "--service", "cart", "--duration", "90s",
                 env={"PUSHGATEWAY_URL": gateway}).code == 0
    target = gateway.removeprefix("http://")
    with prometheus(tmp_path / "prom", [target], honor_labels=True) as url:
        result = query(url, 'devex_deployment_duration_seconds{service="cart"}')
        assert [(r["metric"]["job"], r["value"][1]) for r in result] == [("devex", "90")]


def test_malformed_from_file_names_the_line(devex: Devex, tmp_path: Path) -> None:
    prom = tmp_path / "bad.prom"
    prom.write_text("# TYPE ok gauge\nok 1\nbroken{label=\"x\" 2\n")
    result = devex("push-metrics", "--from", str(prom), "--gateway", "http://127.0.0.1:9")
    assert result.code == 2
    assert "bad.prom, line 3" in result.err


def test_gateway_down_exits_3_with_masked_credentials(devex: Devex) -> None:
    result = devex("push-metrics", "deployment", "--environment", "qa", "--status", "started",
                   "--service", "x", "--gateway", "http://ci:hunter2-secret@127.0.0.1:9")
    assert result.code == 3
    assert "cannot reach" in result.err and "hunter2-secret" not in result.err
    assert "****@127.0.0.1:9" in result.err


def test_usage_errors(devex: Devex) -> None:
    assert devex("push-metrics", "--gateway", "http://127.0.0.1:9").code == 2
    none = devex("push-metrics", "deployment", "--environment", "qa", "--status", "started",
                 "--service", "x")
    assert none.code == 2 and "PUSHGATEWAY_URL" in none.err
    bad = devex("push-metrics", "--grouping", "nokey", "deployment", "--environment", "qa",
                "--status", "started", "--service", "x", "--gateway", "http://127.0.0.1:9")
    assert bad.code == 2 and "KEY=VALUE" in bad.err


def test_basic_auth_and_label_escaping(devex: Devex, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=200)
    result = devex("push-metrics", "--grouping", "team=web/mobile", "deployment",
                   "--environment", "qa", "--status", "started", "--service", "x",
                   "--gateway", "https://gateway.example.test",
                   env={"PUSHGATEWAY_USERNAME": "ci", "PUSHGATEWAY_PASSWORD": "pw-123456"})
    assert result.code == 0, result.err
    request = httpx_mock.get_requests()[0]
    assert request.method == "POST"
    assert request.headers["authorization"].startswith("Basic ")
    # a label value with "/" uses the @base64 form
    assert re.search(r"/team@base64/[A-Za-z0-9_=-]+", request.url.path)
    assert request.url.path.startswith("/metrics/job/devex/")
    assert "pw-123456" not in result.err


@pytest.mark.parametrize("given, taken", [
    ("http://pushgateway", "http://pushgateway"),  # a Kubernetes service on port 80
    ("pushgateway:9091", "http://pushgateway:9091"),
    ("https://push.example.org", "https://push.example.org"),
    ("localhost", "http://localhost"),
    ("127.0.0.1:9091", "http://127.0.0.1:9091"),
])
def test_a_gateway_address_is_taken_as_written(given: str, taken: str, tmp_path: Path) -> None:
    from devex_cli.config import load_settings
    from devex_cli.metrics.pushgateway import gateway_url

    settings = load_settings(None, environ={}, cwd=tmp_path)
    assert gateway_url(settings, given) == taken


@pytest.mark.parametrize("given", ["not-a-url", "ftp://push.example.org", "http://", "host:port"])
def test_a_gateway_that_cannot_be_an_address_is_refused(given: str, tmp_path: Path) -> None:
    from devex_cli.config import load_settings
    from devex_cli.errors import ConfigError
    from devex_cli.metrics.pushgateway import gateway_url

    settings = load_settings(None, environ={}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="is not an http"):
        gateway_url(settings, given)


def test_push_options_before_and_after_the_event_add_up(devex: Devex,
                                                         httpx_mock: HTTPXMock) -> None:
    """The push options go before the event's name, after it, or both: groupings add up, a job
    or gateway after it wins, --replace on either side replaces."""
    httpx_mock.add_response(status_code=200)
    result = devex("push-metrics", "--job", "ci", "--grouping", "team=web",
                   "--gateway", "http://127.0.0.1:1", "tests", "--service", "x",
                   "--junit", str(DATA / "pytest-junit.xml"), "--grouping", "tier=one",
                   "--job", "nightly", "--replace", "--gateway", "https://gateway.example.test")
    assert result.code == 0, result.err
    request = httpx_mock.get_requests()[0]
    assert request.method == "PUT" and request.url.host == "gateway.example.test"
    path = request.url.path
    assert path.startswith("/metrics/job/nightly/")
    assert {"service/x", "team/web", "tier/one"} <= {
        "/".join(pair) for pair in zip(*[iter(path.split("/")[4:])] * 2, strict=False)}
    httpx_mock.add_response(status_code=202)
    group = devex("push-metrics", "--job", "ci", "tests", "--service", "x", "--delete",
                  "--gateway", "https://gateway.example.test")
    assert group.code == 0, group.err
    deleted = httpx_mock.get_requests()[-1]
    assert deleted.method == "DELETE" and deleted.url.path == "/metrics/job/ci/service/x"
