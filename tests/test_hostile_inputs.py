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


def _best_seconds(work: Callable[[], object], runs: int = 3) -> float:
    import gc
    import time

    best = float("inf")
    for _ in range(runs):
        # the cyclic collector's passes grow with every live object: off, the figure is the
        # algorithm's own
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            work()
            best = min(best, time.perf_counter() - start)
        finally:
            gc.enable()
    return best


def test_many_images_cost_linear_time() -> None:
    """16,000 images once took 26 s (a list counted once per image): every step from a
    kustomization's bytes to the services of its images grows linearly. Four times the images
    must cost well under eight times the time (quadratic would be sixteen)."""
    from datetime import UTC, datetime

    from devex_cli.gitops_layout import ManifestTemplate
    from devex_cli.sources.gitops import _Change, _Commit, _ReaderState

    path = "apps/shop/overlays/prod/kustomization.yaml"
    templates = [ManifestTemplate("apps/{service}/overlays/{environment}/kustomization.yaml")]

    def steps(count: int) -> tuple[float, float]:
        # half the images share their last name segment with another (the clash rule runs)
        content = b"images:\n" + b"".join(
            b"- name: registry%d.example.com/team/svc%d\n  newTag: %07x\n" % (n % 2, n // 2, n)
            for n in range(count))
        images = parse_kustomization(content)
        assert len(images) == count
        commit = _Commit("c" * 40, datetime(2026, 9, 1, tzinfo=UTC), [_Change(path, "b" * 40)])

        def read() -> None:
            state = _ReaderState("fingerprint")
            assert state.apply([commit], {"b" * 40: images}, templates, {}, {}, None)
            assert len(state.current) == count

        return _best_seconds(lambda: parse_kustomization(content)), _best_seconds(read)

    small, large = steps(2000), steps(8000)
    for step, before, after in zip(("parse", "read"), small, large, strict=True):
        assert after < 8 * before, f"{step}: {before:.3f}s for 2000 images, {after:.3f}s for 8000"
