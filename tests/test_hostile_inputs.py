"""Hostile and malformed inputs: whatever comes in, devex answers with its result or a clear
input error (exit 2), never another exception."""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_httpx import HTTPXMock

from devex_cli.config import load_settings
from devex_cli.errors import ConfigError, InputError, UsageError
from devex_cli.inputs.junit import parse_junit
from devex_cli.inputs.security import parse_sca, parse_veracode
from devex_cli.manifests import ManifestError, parse_manifest
from devex_cli.tickets import compile_ticket_pattern, extract_ticket_keys
from tests.conftest import FAST_HTTP, Result
from tests.gitworld import GitRepo

Devex = Callable[..., Result]
TMP = settings(max_examples=80, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture,
                                      HealthCheck.too_slow])

yaml_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["images", "name", "newTag", "newName", "digest",
                                       "resources", "patches", "x", "kind", "apiVersion",
                                       "spec", "template", "containers", "image", "tag",
                                       "repository", "helm", "parameters", "values", "<<"]),
                      children, max_size=4),
    max_leaves=20)


MANIFEST_NAMES = st.sampled_from(["kustomization.yaml", "deployment.yaml", "values-prod.yaml",
                                  ".argocd-source-app.yaml", "app.yml"])


@given(MANIFEST_NAMES, st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_as_a_manifest(name: str, content: bytes) -> None:
    try:
        facts = parse_manifest(name, content)
    except ManifestError:
        return
    assert all(isinstance(i.key, str) for i in facts.uses)


@given(MANIFEST_NAMES, yaml_like | st.fixed_dictionaries(
    {"apiVersion": st.sampled_from(["apps/v1", "argoproj.io/v1alpha1", "batch/v1"]),
     "kind": st.sampled_from(["Deployment", "Application", "CronJob", "HelmRelease"]),
     "spec": yaml_like}))
def test_any_structure_as_a_manifest(name: str, document: object) -> None:
    import yaml

    text = yaml.safe_dump(document, allow_unicode=True).encode()
    try:
        facts = parse_manifest(name, text)
    except ManifestError:
        return
    for use in facts.uses:
        assert isinstance(use.key, str)
        assert use.tag is None or isinstance(use.tag, str)
        assert use.repository is None or isinstance(use.repository, str)


def test_yaml_anchors_and_a_huge_manifest() -> None:
    anchors = b"base: &img {name: app, newTag: 58ddfd6}\nimages:\n- *img\n- <<: *img\n  name: b\n"
    assert [i.key for i in parse_manifest("kustomization.yaml", anchors).uses] == ["app", "b"]
    huge = b"images:\n" + b"".join(b"- name: app%d\n  newTag: %07x\n" % (n, n)
                                   for n in range(20000))
    assert len(parse_manifest("kustomization.yaml", huge).uses) == 20000
    # a merge key that merges itself (an alias cycle) is read, not followed forever
    cycle = b"a: &a\n  <<: *a\n  image: {repository: ghcr.io/x/a, tag: 58ddfd6}\n"
    with contextlib.suppress(ManifestError):
        parse_manifest("values-prod.yaml", cycle)


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

    from devex_cli.gitops_layout import ENVIRONMENT_NAMES
    from devex_cli.gitops_reader import Change, Commit, Layout, ReaderState, Settings
    from devex_cli.manifests import fact_key

    path = "apps/shop/overlays/prod/kustomization.yaml"
    reading = Settings(Layout([], discover=True, environments=ENVIRONMENT_NAMES,
                              production="prod"))

    def steps(count: int) -> tuple[float, float]:
        # pairs of images share their last name segment (one service each pair: a service is
        # never named by a registry path)
        content = b"images:\n" + b"".join(
            b"- name: registry%d.example.com/team/svc%d\n  newTag: %07x\n" % (n % 2, n // 2, n)
            for n in range(count))
        facts = parse_manifest("kustomization.yaml", content)
        assert len(facts.uses) == count
        commit = Commit("c" * 40, datetime(2026, 9, 1, tzinfo=UTC), [Change(path, "b" * 40)])

        def read() -> None:
            state = ReaderState("fingerprint")
            assert state.apply([commit], {fact_key(path, "b" * 40): facts}, reading, None)
            assert len(state.current) == count // 2

        return (_best_seconds(lambda: parse_manifest("kustomization.yaml", content)),
                _best_seconds(read))

    small, large = steps(2000), steps(8000)
    for step, before, after in zip(("parse", "read"), small, large, strict=True):
        assert after < 8 * before, f"{step}: {before:.3f}s for 2000 images, {after:.3f}s for 8000"


# Damaged caches ------------------------------------------------------------------------------
# Every JSON cache devex keeps, and what must go with a damaged one for it to be read at all:
# Bitbucket's is read by change sets to compute (no kept records). The kept records, manifest
# facts and the GitOps reader's state are an SQLite store (test_a_damaged_record_store_is_rebuilt,
# test_a_damaged_reader_state_is_read_again).
CACHES = {"argocd-history": (), "bitbucket-commits": ("devex.sqlite3",), "jira-fields": ()}


def _unlike(node: object, turn: int) -> object:
    """A JSON value of another type than `node`, none of which a cache holds where `node` is
    (so a damage is never a valid entry of another meaning: `null` for "no such commit")."""
    if isinstance(node, bool | int) or node is None:
        return ["x", {"y": [None]}, 1.5][turn % 3] if node is None else ("7", [None])[turn % 2]
    if isinstance(node, str):
        return [7, True, [{"x": []}], {"x": [None]}][turn % 4]
    if isinstance(node, list):
        return [7, "x", {"x": [None]}][turn % 3]
    return [7, "x", [{"x": []}]][turn % 3]


def _damaged(node: object, depth: int, turn: list[int]) -> object:
    """`node` with every value `depth` levels below it replaced by one of another type."""
    if depth == 0:
        turn[0] += 1
        return _unlike(node, turn[0])
    if isinstance(node, dict):
        return {key: _damaged(value, depth - 1, turn) for key, value in node.items()}
    if isinstance(node, list):
        return [_damaged(value, depth - 1, turn) for value in node]
    return node


def _extra(node: object, depth: int) -> object:
    """`node` with an extra field in every object and an extra item in every list `depth`
    levels below it."""
    if isinstance(node, dict):
        return ({**node, "extra": [1]} if depth == 0
                else {key: _extra(value, depth - 1) for key, value in node.items()})
    if isinstance(node, list):
        return [*node, 1] if depth == 0 else [_extra(value, depth - 1) for value in node]
    return node


def _damages(document: dict[str, Any]) -> list[tuple[str, object, bool]]:
    """(what, the damaged document, whether devex must replace it) for one cache file."""
    found: list[tuple[str, object, bool]] = [
        ("null", None, True), ("a number", 7, True), ("a list", [document], True),
        ("another version", {**document, "version": document["version"] + 1}, True),
        ("no version", {"content": document["content"]}, True)]
    for depth in range(1, 6):
        for turn in range(2):
            damaged = _damaged(document, depth, [turn])
            if damaged != document:
                found.append((f"depth {depth} #{turn}", damaged, True))
        extra = _extra(document, depth)
        if extra != document:
            # extra fields are read past; the file is replaced when the cache next changes
            found.append((f"extra at depth {depth}", extra, False))
    return found


@pytest.fixture
def online_world(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A GitOps history whose app repository Bitbucket serves, an Argo CD application with a
    history, and Jira: a collection writes every cache."""
    from tests.fakes.argocd import FakeApplication, FakeArgoCD
    from tests.fakes.bitbucket import FakeBitbucket
    from tests.fakes.jira import FakeJira
    from tests.worlds import World, at

    world = World(tmp_path / "world")
    gitops = GitRepo.__new__(GitRepo)
    gitops.path = world.root / "gitops"
    shas = gitops.git("rev-list", "--first-parent", "--reverse", "main").split()
    argocd, bitbucket, jira = FakeArgoCD().start(), FakeBitbucket(page_size=2).start(), \
        FakeJira().start()
    try:
        argocd.add(FakeApplication(
            "pay-prod", "apps/pay/overlays/prod", sync_revision=shas[7],
            history=[(shas[6], at("2026-10-06T18:07")), (shas[7], at("2026-10-06T20:04"))]))
        bitbucket.repos["pay"] = world.root / "pay"
        jira.auto_projects = {"PAY"}
        config = tmp_path / "online.toml"
        config.write_text(FAST_HTTP + f'[gitops]\nrepo = "{gitops.path}"\n\n'
                          '[jira]\nprojects = ["PAY"]\n')
        yield config, {**argocd.env(), **bitbucket.env(), **jira.env()}
    finally:
        for server in (argocd, bitbucket, jira):
            server.stop()


def _figures(devex: Devex, config: Path, env: dict[str, str]
             ) -> tuple[dict[str, Any], dict[str, Any]]:
    """collect's JSON (without its time) and status's, both exit 0 without a traceback."""
    collect = devex("collect", "--format", "json", "--since", "2026-09-01", "--until",
                    "2026-11-01", config=str(config), env=env)
    status = devex("status", "--format", "json", "--offline", config=str(config))
    assert (collect.code, status.code) == (0, 0), collect.err + status.err
    assert "Traceback" not in collect.err + status.err
    report = json.loads(collect.out)
    report.pop("generated_at")
    return report, json.loads(status.out)


@pytest.mark.parametrize("name", CACHES)
def test_a_damaged_cache_is_read_as_empty_and_replaced(
        devex: Devex, tmp_path: Path, online_world: tuple[Path, dict[str, str]],
        name: str) -> None:
    """Valid JSON of any wrong shape in any cache file (nulls, numbers, lists for objects,
    another version, extra fields, at every depth): every command gives the figures an empty
    cache gives, exit 0, and the file is replaced by a good one."""
    import shutil

    config, env = online_world
    cache = tmp_path / "cache" / "devex"

    def figures() -> tuple[dict[str, Any], dict[str, Any]]:
        return _figures(devex, config, env)

    first = figures()
    assert first[0]["tickets_in_environment"] and first[0]["actual_state"]
    pristine = tmp_path / "pristine"
    shutil.copytree(cache, pristine)
    files = sorted(pristine.glob(f"{name}/*.json")) or [pristine / f"{name}.json"]
    assert all(f.is_file() for f in files), files
    damages = {f: {what: (damaged, replaced) for what, damaged, replaced
                   in _damages(json.loads(f.read_text()))} for f in files}
    assert len(damages[files[0]]) >= 10
    for what, (_, replaced) in damages[files[0]].items():
        shutil.rmtree(cache)
        shutil.copytree(pristine, cache)
        for needed in CACHES[name]:  # for the damaged cache to be read at all
            target = cache / needed
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        for file in files:  # each file of a folder of caches damaged alike
            if what in damages[file]:
                (cache / file.relative_to(pristine)).write_text(
                    json.dumps(damages[file][what][0]))
        assert figures() == first, what
        if replaced:
            for file in files:
                again = json.loads((cache / file.relative_to(pristine)).read_text())
                assert again == json.loads(file.read_text()), (what, file.name)


def test_a_damaged_reader_state_is_read_again(
        devex: Devex, tmp_path: Path, online_world: tuple[Path, dict[str, str]]) -> None:
    """The GitOps reader's states in the store (a JSON body and batches of deployment rows)
    damaged: a body of any wrong shape at every depth, or rows of the wrong types or widths,
    missing or left over, batches lost or not JSON lists, JSON nested too deep, a count of
    deployments not one: the figures a fresh read gives, exit 0, and a damaged state replaced
    by a good one."""
    import shutil
    import sqlite3

    config, env = online_world
    cache = tmp_path / "cache" / "devex"

    def figures() -> tuple[dict[str, Any], dict[str, Any]]:
        return _figures(devex, config, env)

    def states() -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(cache / "devex.sqlite3")) as db:
            return [(name, json.loads(body), count, [row for (rows,) in db.execute(
                "SELECT rows FROM reader_batch WHERE name = ? AND first < ? ORDER BY first",
                (name, count)) for row in json.loads(rows)])
                for name, body, count in db.execute(
                "SELECT name, body, deployments FROM reader_state ORDER BY name")]

    first = figures()
    pristine = tmp_path / "pristine"
    shutil.copytree(cache, pristine)
    good = states()
    assert len(good) == 2 and all(rows for *_, rows in good)  # status's and collect's
    body = good[0][1]
    damages: dict[str, list[tuple[str, tuple[Any, ...]]]] = {
        "not JSON": [("UPDATE reader_state SET body = ?", ("{not json",))],
        "null": [("UPDATE reader_state SET body = 'null'", ())],
        "a list": [("UPDATE reader_state SET body = ?", (json.dumps([body]),))],
        "no body": [("DELETE FROM reader_state", ())],
        "a time of text": [("UPDATE reader_batch SET rows = json_replace(rows, '$[0][7]', "
                            "'x')", ())],
        "no service": [("UPDATE reader_batch SET rows = json_replace(rows, '$[0][0]', NULL)",
                        ())],
        "a revision without its version": [
            ("UPDATE reader_batch SET rows = json_replace(rows, '$[0][4]', NULL, '$[0][5]', "
             "'a')", ())],
        "a row of another width": [
            ("UPDATE reader_batch SET rows = json_remove(rows, '$[0][8]')", ())],
        "a row lost": [("UPDATE reader_batch SET rows = json_remove(rows, '$[0]')", ())],
        "a batch lost": [("DELETE FROM reader_batch", ())],
        "a batch not JSON": [("UPDATE reader_batch SET rows = '[[\"web\"'", ())],
        "a batch not a list": [("UPDATE reader_batch SET rows = '{}'", ())],
        "a batch a killed run left": [  # past the state's count: not read
            ("INSERT INTO reader_batch (name, first, count, rows) SELECT name, first + count, "
             "1, json_array(json_replace(json_extract(rows, '$[0]'), '$[8]', 'x')) "
             "FROM reader_batch WHERE first = 0", ())],
        "a count of text": [("UPDATE reader_state SET deployments = 'x'", ())],
        "a count below zero": [("UPDATE reader_state SET deployments = -1", ())],
        # json recurses once a level
        "a batch nested too deep": [("UPDATE reader_batch SET rows = ?", ("[" * 100_000,))],
        "a body nested too deep": [("UPDATE reader_state SET body = ?", ("[" * 100_000,))],
    }
    for depth in range(1, 5):
        for turn in range(2):
            damaged = _damaged(body, depth, [turn])
            if damaged != body:
                damages[f"depth {depth} #{turn}"] = [
                    ("UPDATE reader_state SET body = ?", (json.dumps(damaged),))]
    # each damage as it is (a batch's checksum then fails), and in batches an earlier version
    # wrote (no checksum: their rows checked as they are read)
    unchecked = [("UPDATE reader_batch SET crc = NULL", ())]
    for (what, statements), earlier in itertools.product(damages.items(), (False, True)):
        shutil.rmtree(cache)
        shutil.copytree(pristine, cache)
        with contextlib.closing(sqlite3.connect(cache / "devex.sqlite3")) as db, db:
            for statement, values in [*statements, *(unchecked if earlier else [])]:
                db.execute(statement, values)
        assert figures() == first, (what, earlier)
        assert states() == good, (what, earlier)


def test_a_reader_batch_edited_checksum_and_all_is_read_again_next_run(
        devex: Devex, tmp_path: Path, online_world: tuple[Path, dict[str, str]]) -> None:
    """A batch of the reader's deployments edited into rows devex cannot have written, its
    checksum made to match: found when the batch is first used, mid-collection, so the run
    stops with one line (exit 70, no traceback) and forgets the state; the next run reads the
    history again and gives the figures a fresh read gives."""
    import sqlite3
    import zlib

    config, env = online_world
    first = _figures(devex, config, env)
    with contextlib.closing(sqlite3.connect(tmp_path / "cache" / "devex" / "devex.sqlite3")) \
            as db, db:
        for name, start, rows, pairs in db.execute(
                "SELECT name, first, rows, pairs FROM reader_batch").fetchall():
            edited = json.dumps([[*row[:7], "a time", row[8]] for row in json.loads(rows)])
            crc = zlib.crc32(pairs.encode(), zlib.crc32(edited.encode()))
            db.execute("UPDATE reader_batch SET rows = ?, crc = ? WHERE name = ? AND first = ?",
                       (edited, crc, name, start))
    result = devex("collect", "--format", "json", config=str(config), env=env)
    assert result.code == 70, result.err
    assert "read again next run" in result.err and "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) <= 2, result.err
    assert _figures(devex, config, env) == first


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
    from devex_cli.notify import card_context

    def broken(*args: object, **kwargs: object) -> dict[str, object]:
        raise ValueError("a bug in devex")

    monkeypatch.setattr(card_context, "tests_context", broken)
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


def test_an_anchor_merged_several_times_at_each_level_is_merged_once() -> None:
    """A 1 KB values file whose anchors each merge the one before three times (`<<: [*a, *a,
    *a]`, 30 levels) took 3^20 merges (hours: devex status hung on one commit); each anchor is
    now merged once per level."""
    import time

    levels = "".join(f"a{n}: &a{n}\n  <<: [*a{n - 1}, *a{n - 1}, *a{n - 1}]\n  k{n}: x\n"
                     for n in range(1, 30))
    text = ("a0: &a0 {k0: x}\n" + levels
            + "image:\n  <<: *a29\n  repository: ghcr.io/acme/app\n  tag: 58ddfd6\n").encode()
    start = time.perf_counter()
    uses = parse_manifest("values-prod.yaml", text).uses
    assert time.perf_counter() - start < 2
    assert [(u.repository, u.tag) for u in uses] == [("ghcr.io/acme/app", "58ddfd6")]


def test_aliased_helm_values_over_aliased_values_object_merge_in_linear_time() -> None:
    """An Argo CD Application whose `helm.values` string and `valuesObject` both hold a tree of
    aliases (each level three aliases of the one before): merging them key by key walked 3^depth
    pairs of mappings (16 levels: 2 minutes, 20: hours); each pair is merged once."""
    import time

    bomb = "l0: &l0 {x: 1}\n" + "".join(
        f"l{n}: &l{n} {{a: *l{n - 1}, b: *l{n - 1}, c: *l{n - 1}}}\n" for n in range(1, 40))
    bomb += "top: *l39\nimage: ghcr.io/acme/app:58ddfd6\n"
    indented = "".join(f"        {line}\n" for line in bomb.splitlines())
    text = ("apiVersion: argoproj.io/v1alpha1\nkind: Application\nspec:\n  source:\n    helm:\n"
            f"      values: {json.dumps(bomb)}\n      valuesObject:\n{indented}").encode()
    start = time.perf_counter()
    uses = parse_manifest("app.yaml", text).uses
    assert time.perf_counter() - start < 2
    assert [(u.repository, u.tag) for u in uses] == [("ghcr.io/acme/app", "58ddfd6")]


def _store_damages(good: bytes) -> dict[str, bytes]:
    """Ways the record store's file can break: garbage, cut short, emptied, another file's."""
    return {"garbage": b"{not a database" * 100, "empty": b"",
            "header only": good[:100], "cut in half": good[: len(good) // 2],
            "cut one page short": good[:-4096], "json": b'{"version": 2, "content": {}}',
            "zeroed pages": good[:4096] + bytes(len(good) - 4096)}


def test_a_damaged_record_store_is_rebuilt(
        devex: Devex, tmp_path: Path, online_world: tuple[Path, dict[str, str]]) -> None:
    """The store (records, manifest facts) cut short, zeroed or not a database at all: the
    figures an empty store gives, exit 0, no traceback, at most one warning about it, and a good
    store again after. The manifest facts are needed too: the GitOps reader's state is lost."""
    import sqlite3

    config, env = online_world
    store = tmp_path / "cache" / "devex" / "devex.sqlite3"

    def figures() -> tuple[dict[str, Any], str]:
        collect = devex("collect", "--format", "json", "--since", "2026-09-01", "--until",
                        "2026-11-01", config=str(config), env=env)
        assert collect.code == 0 and "Traceback" not in collect.err, collect.err
        report = json.loads(collect.out)
        report.pop("generated_at")
        return report, collect.err

    first, _ = figures()
    good = store.read_bytes()
    assert len(good) > 3 * 4096, len(good)  # else "cut one page short" would cut it all
    for what, damaged in _store_damages(good).items():
        store.write_bytes(damaged)
        again, err = figures()
        assert again == first, what
        assert sum("devex.sqlite3" in line for line in err.splitlines()) <= 1, (what, err)
        with contextlib.closing(sqlite3.connect(store)) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",), what
            for table in ("record", "change", "manifest"):
                assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0, (  # noqa: S608
                    what, table)
        assert store.stat().st_mode & 0o777 == 0o600, what
