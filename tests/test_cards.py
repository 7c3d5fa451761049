"""Every card template: valid JSON, valid Adaptive Card 1.4 (less `msteams`), within Teams'
size limit, whatever the outside values hold; and golden files read in review.

Set DEVEX_UPDATE_GOLDEN=1 to rewrite tests/golden/ after a deliberate change.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema.validators import validator_for

from devex_cli.inputs.junit import parse_junit
from devex_cli.inputs.security import read_security
from devex_cli.notify import card_context, cards
from devex_cli.pipeline_context import LocalCommit, PipelineContext

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden"
DATA = Path(__file__).parent / "data"
# The product's shared specs sit beside the checkout; a bare clone (`git clone . /tmp/x`) has
# only the copy in tests/data, which test_schema_copy_matches_the_shared_spec keeps in step.
SHARED_SCHEMA = ROOT.parent / "shared" / "specs" / "adaptive-card-1.4.schema.json"
SCHEMA_PATH = SHARED_SCHEMA if SHARED_SCHEMA.is_file() else DATA / SHARED_SCHEMA.name
FOLDER = ROOT / "templates" / "teams"

PIPELINE = PipelineContext(commit="58ddfd6a1b2c3d4e5f60718293a4b5c6d7e8f901", branch="main",
                           repo_slug="payments", workspace="acme", build_number="412",
                           git_http_origin="https://bitbucket.org/acme/payments")
PR_PIPELINE = PipelineContext(commit="0a1b2c3d4e5f60718293a4b5c6d7e8f901234567",
                              branch="feature/PAY-9-refunds", pr_id="87",
                              pr_destination_branch="main", repo_slug="payments",
                              build_number="413",
                              git_http_origin="https://bitbucket.org/acme/payments")
LOCAL = LocalCommit("58ddfd6a1b2c3d4e5f60718293a4b5c6d7e8f901", "main", "Ana Lima",
                    "PAY-7 Make refunds idempotent")
FRIDAY = datetime(2026, 11, 27, 15, 30, tzinfo=UTC)


def validate(card: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    validator = validator_for(schema)(schema)
    body = {k: v for k, v in card.items() if k != "msteams"}
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
    assert not errors, [(list(e.path), e.message, [c.message for c in e.context or []][:3])
                        for e in errors[:3]]
    assert card["version"] == "1.4" and card["msteams"] == {"width": "Full"}
    assert len(json.dumps(cards.payload(card, "envelope")).encode()) <= 28_000


@pytest.mark.skipif(not SHARED_SCHEMA.is_file(), reason="no shared/ beside this checkout")
def test_schema_copy_matches_the_shared_spec() -> None:
    assert (DATA / SHARED_SCHEMA.name).read_bytes() == SHARED_SCHEMA.read_bytes()


def changes(n_commits: int = 3, n_tickets: int = 2, text: str = "") -> card_context.ChangeSummary:
    return card_context.ChangeSummary(
        commits=[{"short": f"{i:07x}", "subject": f"PAY-{i} change {i} {text}",
                  "author": "Ben Okafor", "url": None} for i in range(n_commits)],
        tickets=[{"key": f"PAY-{i}", "url": f"https://acme.atlassian.net/browse/PAY-{i}",
                  "summary": f"Ticket {i} {text}", "status": "Done"} for i in range(n_tickets)],
        previous_revision="1f2e3d4c", production_deployments=100, clean_streak=20)


def contexts(text: str = "", n: int = 3) -> dict[str, tuple[str, dict[str, Any]]]:
    deployment = card_context.deployment_context(
        service="payments", environment="prod", status="succeeded", version="1.4.2-58ddfd6",
        url="https://payments.acme.example", duration="4m 12s", pipeline=PIPELINE, local=LOCAL,
        changes=changes(n, n, text), at=FRIDAY, production=True, fun=True,
        jira_url="https://acme.atlassian.net")
    failed = card_context.deployment_context(
        service="payments", environment="qa", status="failed", version="1.4.2-58ddfd6", url=None,
        duration=None, pipeline=PIPELINE, local=LOCAL, changes=None, at=FRIDAY,
        production=False, fun=True, jira_url=None)
    pr = card_context.deployment_context(
        service="payments", environment="dev", status="started", version="pr-87",
        url=None, duration=None, pipeline=PR_PIPELINE, local=LOCAL, changes=changes(n, 0, text),
        at=FRIDAY, production=False, fun=True, jira_url=None)
    pr["pr"] = {**pr["pr"], "title": f"Refunds: idempotency keys {text}"}
    tests = card_context.tests_context(parse_junit([DATA / "pytest-junit.xml", DATA / "jest-junit.xml"]),
                                 title=None, pipeline=PIPELINE, local=LOCAL, fun=True)
    security = card_context.security_context(
        read_security(DATA / "veracode-results.json", DATA / "sca.json"), pipeline=PIPELINE,
        local=LOCAL)
    return {"deployment-succeeded": ("deployment.json.j2", deployment),
            "deployment-failed": ("deployment.json.j2", failed),
            "pr-deployment": ("pr_deployment.json.j2", pr),
            "tests": ("tests.json.j2", tests),
            "security": ("security.json.j2", security)}


@pytest.mark.parametrize("name", sorted(contexts()))
def test_golden_cards(name: str) -> None:
    template, context = contexts()[name]
    card = cards.render_card(template, context, folder=FOLDER)
    validate(card)
    golden = GOLDEN / f"{name}.json"
    text = json.dumps(card, indent=2, ensure_ascii=False) + "\n"
    if os.environ.get("DEVEX_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert golden.exists(), f"{golden} is missing: run with DEVEX_UPDATE_GOLDEN=1 and review it"
    assert text == golden.read_text(), f"{golden} differs: DEVEX_UPDATE_GOLDEN=1 to accept"


def test_fun_touches_are_deterministic_and_can_be_turned_off() -> None:
    _, context = contexts()["deployment-succeeded"]
    assert context["notes"] == [
        "🍕 A Friday-afternoon production deployment. Brave. Someone keep an eye on the "
        "dashboards until it settles.",
        "🎉 The 100th production deployment of payments.",
        "🟢 20 deployments in a row without a rollback."]
    quiet = card_context.deployment_context(
        service="payments", environment="prod", status="succeeded", version="1", url=None,
        duration=None, pipeline=PIPELINE, local=LOCAL, changes=changes(), at=FRIDAY,
        production=True, fun=False, jira_url=None)
    assert quiet["notes"] == []


def test_long_lists_are_cut_to_fit() -> None:
    for template, context in contexts("x" * 300, n=400).values():
        card = cards.render_card(template, context, folder=FOLDER)
        validate(card)
    text = json.dumps(cards.render_card(*contexts("x" * 300, n=400)["deployment-succeeded"],
                                        folder=FOLDER))
    assert "more" in text


hostile = st.text(st.characters(codec="utf-8"), max_size=200) | st.sampled_from([
    '"quoted" \\ backslash', "line\nbreak\r\n\ttab", "{{ template }} {% block %}", "🎉🚀 emoji",
    "</script><b>html</b>", "\x00\x07 control", "[link](javascript:alert(1))"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile)
def test_any_outside_text_gives_a_valid_card(text: str) -> None:
    for template, context in contexts(text, n=2).values():
        card = cards.render_card(template, context, folder=FOLDER)
        validate(card)  # parsed back as JSON and checked against the schema


def test_bare_and_envelope_payloads() -> None:
    card = {"type": "AdaptiveCard", "version": "1.4"}
    assert cards.payload(card, "bare") == card
    envelope = cards.payload(card, "envelope")
    assert envelope == {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
         "content": card}]}


# Devex's own links in the cards: the Jira browse links it builds. Any other `](` or a whole
# `https://` in a TextBlock or a fact came from outside.
OWN_LINK = re.compile(r"\[PAY-\d+\]\(https://acme\.atlassian\.net/browse/PAY-\d+\)")
EVIL = ("[Approve deployment](https://evil.example/phish) <https://evil.example/a> "
        "https://evil.example/b www.evil.com")


def _texts(node: object) -> list[str]:
    """Every text Teams reads as Markdown: TextBlock texts and FactSet titles and values."""
    if isinstance(node, list):
        return [t for item in node for t in _texts(item)]
    if not isinstance(node, dict):
        return []
    found = []
    if node.get("type") == "TextBlock":
        found.append(node["text"])
    if node.get("type") == "FactSet":
        found += [part for fact in node["facts"] for part in (fact["title"], fact["value"])]
    return found + [t for key, value in node.items() if key != "actions" for t in _texts(value)]


def hostile_contexts(text: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every card with `text` in every value that comes from outside: the pipeline's variables,
    git, Jira, Bitbucket, JUnit and the scans."""
    from devex_cli.inputs.junit import FailedTest, TestReport
    from devex_cli.inputs.security import Finding, SecurityReport, Vulnerability

    pipeline = PipelineContext(commit="58ddfd6" + text, branch=text, repo_slug=text,
                               build_number=text, pr_id="87" + text, pr_destination_branch=text,
                               git_http_origin="https://bitbucket.org/acme/payments")
    local = LocalCommit("58ddfd6" + text, text, text, text)
    summary = card_context.ChangeSummary(
        commits=[{"short": text[:7], "subject": text, "author": text, "url": None}],
        tickets=[{"key": "PAY-1", "url": "https://acme.atlassian.net/browse/PAY-1",
                  "summary": text, "status": text},
                 {"key": text, "url": None, "summary": text, "status": text}],
        previous_revision=text, production_deployments=1, clean_streak=10)
    found = {}
    for status, production in (("succeeded", True), ("failed", False)):
        context = card_context.deployment_context(
            service=text, environment=text, status=status, version=text, url=None,
            duration=text, pipeline=pipeline, local=local, changes=summary, at=FRIDAY,
            production=production, fun=True, jira_url="https://acme.atlassian.net")
        found[f"deployment-{status}"] = ("deployment.json.j2", context)
        pr = {**context, "pr": {**context["pr"], "title": text}}
        found[f"pr-{status}"] = ("pr_deployment.json.j2", pr)
    junit = TestReport((text,), 3, 1, 1, 0, 1, 1.5, (FailedTest(text, text, "failure", text),
                                                    FailedTest(text, text, "error", text)))
    found["tests"] = ("tests.json.j2", card_context.tests_context(
        junit, title=text, pipeline=pipeline, local=local, fun=True))
    scans = SecurityReport(
        findings=(Finding(5, text, text, text, 7),),
        vulnerabilities=(Vulnerability(text, text, 9.8, text, text, text),),
        sources=(text,), static_scanned=True, sca_scanned=True)
    found["security"] = ("security.json.j2", card_context.security_context(
        scans, pipeline=pipeline, local=local))
    found["security-nothing"] = ("security.json.j2", card_context.security_context(
        SecurityReport(sources=(text,), static_scanned=True), pipeline=pipeline, local=local))
    return found


def assert_no_outside_links(card: dict[str, Any]) -> None:
    for text in _texts(card["body"]):
        rest = OWN_LINK.sub("", text)
        assert "](" not in rest, f"a link from outside in {text!r}"
        assert "//" not in rest, f"a URL Teams would link in {text!r}"
        assert "<" not in rest.replace("\\<", ""), f"an autolink or HTML in {text!r}"


@pytest.mark.parametrize("name", sorted(hostile_contexts("")))
def test_markdown_from_outside_is_shown_not_followed(name: str) -> None:
    template, context = hostile_contexts(EVIL)[name]
    card = cards.render_card(template, context, folder=FOLDER)
    validate(card)
    assert_no_outside_links(card)
    body = json.dumps(card["body"], ensure_ascii=False)
    assert "evil" in body  # the text is there, shown literally
    if name.startswith("deployment"):  # devex's own Jira link is still a link
        assert "[PAY-1](https://acme.atlassian.net/browse/PAY-1)" in body


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile | st.sampled_from([EVIL, "**bold** _it_ `code` ~~s~~ ![img](https://x.example/i)",
                                   "1. one\n- two\n# three\n> quote", "[a]: https://x.example\n[a]"]))
def test_any_outside_text_in_every_field_gives_a_card_without_its_links(text: str) -> None:
    for template, context in hostile_contexts(text).values():
        card = cards.render_card(template, context, folder=FOLDER)
        validate(card)
        assert_no_outside_links(card)
