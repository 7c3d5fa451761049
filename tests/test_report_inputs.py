"""Parsing of report inputs (JUnit dialects, Veracode, SCA) and routing. No network."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest

from devex_cli.config import RouteRule
from devex_cli.errors import InputError
from devex_cli.inputs.junit import parse_junit
from devex_cli.inputs.security import cvss_band, parse_sca, parse_veracode, read_security
from devex_cli.notify.routing import route
from devex_cli.pipeline_context import PipelineContext

DATA = Path(__file__).parent / "data"


def test_pytest_junit() -> None:
    report = parse_junit([DATA / "pytest-junit.xml"])
    assert (report.tests, report.failures, report.errors, report.skipped) == (6, 2, 1, 1)
    assert report.passed == 2 and report.pass_rate == pytest.approx(2 / 5)
    assert report.duration_seconds == pytest.approx(3.21)
    assert report.failed[0].message == "AssertionError: assert 90 == 95 + where 90 = total()"
    assert report.failed[2].kind == "error"
    assert not report.ok


def test_jest_junit_messages_come_from_the_text() -> None:
    report = parse_junit([DATA / "jest-junit.xml"])
    assert (report.tests, report.failures, report.skipped) == (4, 1, 1)
    assert report.failed[0].message.startswith("Error: expect(received).toBe(expected)")


def test_surefire_flaky_and_thousands_separator() -> None:
    report = parse_junit([DATA / "TEST-com.acme.PaymentsTest.xml"])
    assert (report.tests, report.failures, report.flaky) == (3, 1, 1)
    assert report.duration_seconds == 1234.5
    assert report.failed[0].message == "expected: <1> but was: <2>"


def test_several_files_add_up() -> None:
    report = parse_junit([DATA / "pytest-junit.xml", DATA / "jest-junit.xml"])
    assert report.tests == 10 and len(report.failed) == 4


@pytest.mark.parametrize(("name", "content", "message"), [
    ("broken.xml", "<testsuites><testsuite>", "is not valid JUnit XML"),
    ("html.xml", "<html><body/></html>", "its root is <html>"),
    ("laughs.xml", (DATA / "billion-laughs.xml").read_text(), "is not valid JUnit XML"),
    ("time.xml", '<testsuite time="soon"><testcase name="x"/></testsuite>', "is not a number"),
])
def test_bad_junit(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        parse_junit([path])
    with pytest.raises(InputError, match="no such file"):
        parse_junit([tmp_path / "missing.xml"])


def test_veracode_findings() -> None:
    findings = parse_veracode(DATA / "veracode-results.json")
    assert [(f.severity, f.cwe, f.file, f.line) for f in findings] == [
        (5, "89", "com/acme/payments/RefundDao.java", 42),
        (3, "80", "com/acme/web/Receipt.java", 17),
        (2, "331", "com/acme/util/Tokens.java", 9)]


def test_sca_vulnerabilities() -> None:
    vulnerabilities = parse_sca(DATA / "sca.json")
    first, second, third = vulnerabilities
    assert (first.cve, first.cvss, first.band, first.library, first.version, first.fix) == (
        "CVE-2019-12384", 8.1, "high", "jackson-databind", "2.9.8", "2.9.9.1")
    assert (second.cve, second.band, second.library) == ("CVE-2020-8203", "high", "lodash")
    assert third.cve is None and third.band == "medium"
    report = read_security(DATA / "veracode-results.json", DATA / "sca.json")
    assert report.findings_by_severity()[5] == 1
    assert report.vulnerabilities_by_band() == {"critical": 0, "high": 2, "medium": 1, "low": 0,
                                                "none": 0}


def test_cvss_bands() -> None:
    assert [cvss_band(s) for s in (None, 0.0, 3.9, 4.0, 6.9, 7.0, 8.9, 9.0, 10.0)] == [
        "none", "none", "low", "medium", "medium", "high", "high", "critical", "critical"]


@pytest.mark.parametrize(("content", "message"), [
    ("{", "is not valid JSON"),
    ('{"findings": {}}', "no 'findings' list"),
    ('{"findings": [{"severity": 9}]}', "finding 0 has no readable severity"),
])
def test_bad_veracode(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        parse_veracode(path)


def test_bad_sca(tmp_path: Path) -> None:
    path = tmp_path / "sca.json"
    path.write_text('{"records": []}')
    with pytest.raises(InputError, match="no 'records\\[0\\]'"):
        parse_sca(path)
    with pytest.raises(InputError, match="no scan given"):
        read_security(None, None)


@pytest.mark.parametrize(("event", "kwargs", "channels"), [
    ("deployment", {"environment": "prod", "branch": "main"}, ["deployments"]),
    ("deployment", {"environment": "qa", "branch": "release/2.3"}, ["deployments", "qa"]),
    ("deployment", {"environment": "qa", "branch": "feature/x"}, ["pr"]),
    ("deployment", {"environment": "dev", "branch": "main", "in_pr": True}, ["pr"]),
    ("pr_deployment", {"environment": "dev"}, ["pr"]),
    ("security", {"branch": "feature/x", "in_pr": True}, ["security"]),
    ("tests", {"branch": "main"}, ["deployments"]),
    ("tests", {"branch": "feature/x", "in_pr": True}, ["pr"]),
])
def test_default_routing(event: str, kwargs: dict, channels: list[str]) -> None:  # type: ignore[type-arg]
    assert route(event, **kwargs) == channels


def test_rules_come_first() -> None:
    rules = [RouteRule(event="deployment", environment="prod*", channels=("leadership", "ops")),
             RouteRule(branch="hotfix/*", channels=("ops",))]
    assert route("deployment", environment="production", branch="main", rules=rules) == [
        "leadership", "ops"]
    assert route("tests", branch="hotfix/login", rules=rules) == ["ops"]
    assert route("deployment", environment="qa", branch="main", rules=rules) == [
        "deployments", "qa"]


@pytest.mark.parametrize("time", ["nan", "NaN", "inf", "-inf", "1e400", "-5"])
def test_a_junit_time_that_is_no_duration_is_unknown(tmp_path: Path, time: str) -> None:
    from devex_cli.notify.card_context import tests_context

    odd = tmp_path / "odd.xml"
    odd.write_text(f'<testsuite name="s" time="{time}"><testcase name="a"/>'
                   '<testcase name="b"><failure message="boom"/></testcase></testsuite>')
    cases = tmp_path / "cases.xml"  # no suite time: the cases' times, one of them odd
    cases.write_text(f'<testsuite name="t"><testcase name="c" time="1.5"/>'
                     f'<testcase name="d" time="{time}"/></testsuite>')
    report = parse_junit([odd])
    assert report.duration_seconds is None and (report.tests, report.failures) == (2, 1)
    # one file's unknown time makes the total unknown, not a sum that leaves it out
    assert parse_junit([DATA / "pytest-junit.xml", odd]).duration_seconds is None
    assert parse_junit([cases]).duration_seconds is None
    context = tests_context(report, title=None, pipeline=PipelineContext(), local=None, fun=False)
    assert context["duration"] == "unknown"


def test_odd_junit_time_pushes_no_duration_and_no_nan(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from devex_cli.metrics.pipeline_metrics import tests_families

    path = tmp_path / "nan.xml"
    path.write_text('<testsuite time="nan"><testcase name="a" time="nan"/></testsuite>')
    families = tests_families(parse_junit([path]), service="pay", at=datetime.now(UTC))
    assert "devex_tests_duration_seconds" not in {f.name for f in families}
    assert all(math.isfinite(s.value) for f in families for s in f.samples)
    known = tests_families(parse_junit([DATA / "pytest-junit.xml"]), service="pay",
                           at=datetime.now(UTC))
    assert "devex_tests_duration_seconds" in {f.name for f in known}


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(("parse", "content", "message"), [
    (parse_veracode, '{"findings": [{"severity": 3, "files": {"source_file": '
                     '{"file": "a", "line": 1e400}}}]}', "1e400 is not a finite number"),
    (parse_veracode, '{"findings": [{"severity": NaN}]}', "NaN is not a finite number"),
    (parse_veracode, '{"findings": [{"severity": 3, "files": {"source_file": '
                     '{"file": "a", "line": "x"}}}]}', "finding 0 has no readable severity"),
    (parse_sca, '{"records": [{"vulnerabilities": [{"cvssScore": Infinity}]}]}',
     "Infinity is not a finite number"),
    (parse_veracode, DEEP, "nested too deeply"),
    (parse_veracode, '{"findings": ' + DEEP + "}", "nested too deeply"),
    (parse_sca, DEEP, "nested too deeply"),
])
def test_scans_with_numbers_or_nesting_json_cannot_hold(
    tmp_path: Path, parse: Callable[[Path], object], content: str, message: str
) -> None:
    path = tmp_path / "scan.json"
    path.write_text(content)
    with pytest.raises(InputError, match=message) as caught:
        parse(path)
    assert str(path) in str(caught.value)


def test_a_cvss_score_that_is_no_number_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "sca.json"
    path.write_text('{"records": [{"vulnerabilities": [{"cve": "2020-1", "cvssScore": "nan"},'
                    ' {"cve": "2020-2", "cvss3Score": "inf"}]}]}')
    assert [(v.cvss, v.band) for v in parse_sca(path)] == [(None, "none"), (None, "none")]
