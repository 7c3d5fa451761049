"""Hostile and malformed inputs: whatever comes in, devex answers with its result or a clear
input error (exit 2), never another exception."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_httpx import HTTPXMock

from devex_cli.config import load_settings
from devex_cli.errors import ConfigError, InputError, UsageError
from devex_cli.gitops_layout import ManifestError, parse_kustomization
from devex_cli.notify.junit import parse_junit
from devex_cli.notify.security import parse_sca, parse_veracode
from devex_cli.tickets import compile_ticket_pattern, extract_ticket_keys
from tests.conftest import Result

Devex = Callable[..., Result]
TMP = settings(max_examples=80, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture,
                                      HealthCheck.too_slow])

yaml_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["images", "name", "newTag", "newName", "digest",
                                       "resources", "patches", "x"]), children, max_size=4),
    max_leaves=20)


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_as_a_kustomization(content: bytes) -> None:
    try:
        images = parse_kustomization(content)
    except ManifestError:
        return
    assert all(isinstance(i.name, str) for i in images)


@given(yaml_like)
def test_any_structure_as_a_kustomization(document: object) -> None:
    import yaml

    text = yaml.safe_dump(document, allow_unicode=True).encode()
    try:
        images = parse_kustomization(text)
    except ManifestError:
        return
    for image in images:
        assert isinstance(image.name, str)
        assert image.tag is None or isinstance(image.tag, str)


def test_yaml_anchors_and_a_huge_manifest() -> None:
    anchors = b"base: &img {name: app, newTag: 58ddfd6}\nimages:\n- *img\n- <<: *img\n  name: b\n"
    assert [i.name for i in parse_kustomization(anchors)] == ["app", "b"]
    huge = b"images:\n" + b"".join(b"- name: app%d\n  newTag: %07x\n" % (n, n)
                                   for n in range(20000))
    assert len(parse_kustomization(huge)) == 20000


@TMP
@given(st.text(max_size=400))
def test_any_text_as_junit(tmp_path: Path, text: str) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(text)
    try:
        report = parse_junit([path])
    except InputError as exc:
        assert str(path) in str(exc)
        return
    assert report.tests >= 0


@TMP
@given(st.recursive(st.none() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(
                        st.sampled_from(["findings", "severity", "records", "libraries",
                                         "vulnerabilities", "cve", "cvssScore", "files"]),
                        c, max_size=3), max_leaves=15))
def test_any_json_as_scans(tmp_path: Path, document: object) -> None:
    path = tmp_path / "scan.json"
    path.write_text(json.dumps(document))
    for parse in (parse_veracode, parse_sca):
        with contextlib.suppress(InputError):
            parse(path)


@TMP
@given(st.text(max_size=300))
def test_any_text_as_devex_toml(tmp_path: Path, text: str) -> None:
    path = tmp_path / "devex.toml"
    path.write_text(text)
    with contextlib.suppress(ConfigError):
        load_settings(path, environ={})


@given(st.text(max_size=2000))
def test_any_commit_message_with_the_default_pattern(message: str) -> None:
    keys = extract_ticket_keys([message * 3])
    assert len(keys) == len(set(keys))


def test_huge_commit_message() -> None:
    message = "PAY-1 " + "x" * 2_000_000 + " PAY-2"
    assert extract_ticket_keys([message]) == ["PAY-1", "PAY-2"]


def test_catastrophic_pattern_fails_fast_instead_of_hanging() -> None:
    pattern = compile_ticket_pattern(r"(x+x+)+y")
    with pytest.raises(UsageError, match="catastrophic backtracking"):
        extract_ticket_keys(["x" * 3000], pattern=pattern)


def test_catastrophic_pattern_in_the_gate_exits_2(devex: Devex, tmp_path: Path) -> None:
    from tests.gitworld import GitRepo, image, kustomization, overlay

    app = GitRepo(tmp_path / "app")
    first = app.commit("init")
    app.commit("x" * 3000)
    gitops = GitRepo(tmp_path / "gitops")
    gitops.commit("qa", {overlay("app", "qa"): kustomization([image("app", first[:7])])})
    result = devex("gate", "qa-release", "--service", "app", "--repo", str(app.path), "--gitops",
                   str(gitops.path), "--ticket-pattern", r"(x+x+)+y",
                   env={"JIRA_URL": "http://127.0.0.1:9"})
    assert result.code == 2 and "catastrophic backtracking" in result.err


def test_report_tests_with_a_nan_time_shows_it_unknown(devex: Devex, tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text('<testsuite time="nan"><testcase name="a" time="1e400"/></testsuite>')
    result = devex("report", "tests", "--junit", str(path), "--dry-run", "--channel", "qa")
    assert result.code == 0, result.err
    card = json.loads(result.out)[0]["payload"]["attachments"][0]["content"]
    facts = {f["title"]: f["value"] for f in card["body"][1]["facts"]}
    assert facts["Duration"] == "unknown"
    assert "nan" not in result.out.lower() and "inf" not in result.out.lower()


def test_push_metrics_tests_with_a_nan_time_pushes_no_nan(
    devex: Devex, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(status_code=200)
    path = tmp_path / "junit.xml"
    path.write_text('<testsuite time="nan"><testcase name="a"/></testsuite>')
    result = devex("push-metrics", "tests", "--junit", str(path), "--service", "pay",
                   "--gateway", "http://127.0.0.1:9091")
    assert result.code == 0, result.err
    body = httpx_mock.get_requests()[0].content.decode()
    assert "devex_tests{" in body and "devex_tests_duration_seconds" not in body
    assert "nan" not in body.lower() and "inf" not in body.lower()


@pytest.mark.parametrize(("option", "content"), [
    ("--veracode", "[" * 100_000 + "]" * 100_000),
    ("--veracode", '{"findings": [{"severity": 3, "files": {"source_file": {"line": 1e400}}}]}'),
    ("--sca", '{"records": [{"vulnerabilities": [{"cvssScore": NaN}]}]}'),
])
def test_report_security_with_json_python_cannot_hold_exits_2(
    devex: Devex, tmp_path: Path, option: str, content: str
) -> None:
    path = tmp_path / "scan.json"
    path.write_text(content)
    for command in (("report", "security", "--dry-run"),  # nothing listens on port 9:
                    ("push-metrics", "security", "--service", "pay", "--gateway",
                     "http://127.0.0.1:9")):  # the file is refused before any push
        result = devex(*command, option, str(path))
        assert result.code == 2, (command, result.err)
        assert str(path) in result.err and "internal error" not in result.err


@pytest.mark.parametrize("option", ["--duration", "--at"])
def test_a_duration_past_any_calendar_exits_2(devex: Devex, option: str) -> None:
    result = devex("report", "deployment", "--environment", "qa", "--status", "started",
                   "--service", "pay", option, "99999999999999999999d", "--dry-run")
    assert result.code == 2 and "internal error" not in result.err, result.err


def test_a_failure_building_the_card_never_fails_the_deployment(
    devex: Devex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from devex_cli.notify import events

    def broken(*args: object, **kwargs: object) -> dict[str, object]:
        raise ValueError("a bug in devex")

    monkeypatch.setattr(events, "tests_context", broken)
    path = tmp_path / "junit.xml"
    path.write_text('<testsuite><testcase name="a"/></testsuite>')
    result = devex("report", "tests", "--junit", str(path), "--dry-run")
    assert result.code == 0
    assert "warning: no card sent: internal error: ValueError: a bug in devex" in result.err
    strict = devex("report", "tests", "--junit", str(path), "--dry-run", "--strict")
    assert strict.code == 70 and "a bug in devex" in strict.err
    # what the user named stays theirs to fix, --strict or not
    missing = devex("report", "tests", "--junit", str(tmp_path / "missing.xml"), "--dry-run")
    assert missing.code == 2 and "no such file" in missing.err


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "+inf"])
def test_a_devex_toml_number_that_is_not_finite_is_refused(tmp_path: Path, value: str) -> None:
    path = tmp_path / "devex.toml"
    path.write_text(f"[http]\ntimeout = {value}\n")
    with pytest.raises(ConfigError, match=r"http\.timeout must be a non-negative number"):
        load_settings(path, environ={})
