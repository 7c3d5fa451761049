"""`devex report` end to end, in a Bitbucket-Pipelines-like environment: real git repositories,
the loopback Jira, and a loopback Teams Workflows webhook receiving the posts."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import FAST_HTTP, Result
from tests.fakes.jira import FakeJira
from tests.fakes.teams import FakeTeams
from tests.gitworld import GitRepo, image, kustomization, overlay

Devex = Callable[..., Result]
DATA = Path(__file__).parent / "data"


@pytest.fixture
def teams() -> Iterator[FakeTeams]:
    server = FakeTeams().start()
    yield server
    server.stop()


class Pipeline:
    """An app clone as Bitbucket checks it out, its GitOps repo, and the step's variables."""

    def __init__(self, root: Path, jira: FakeJira, teams: FakeTeams) -> None:
        self.app = GitRepo(root / "payments")
        previous = self.app.commit("PAY-1 first", {"a": "1"})
        self.app.commit("PAY-2 add refunds \"quoted\" {{ braces }} 🎉", {"b": "2"})
        self.head = self.app.commit("PAY-3 fix rounding\n\nAlso UTF-8 names.", {"c": "3"})
        gitops = GitRepo(root / "gitops")
        gitops.commit("qa", {overlay("payments", "qa"): kustomization([
            image("payments", previous[:7])])})
        gitops.commit("prod", {overlay("payments", "prod"): kustomization([
            image("payments", previous[:7])])})
        self.config = root / "devex.toml"
        self.config.write_text(FAST_HTTP + f'[gitops]\nrepo = "{gitops.path}"\n')
        jira.add("PAY-2", "2.0", summary="Refunds", status="Done")
        jira.add("PAY-3", summary="Rounding", status="In Review")
        self.env = {
            **jira.env(),
            "BITBUCKET_COMMIT": self.head, "BITBUCKET_BRANCH": "main",
            "BITBUCKET_REPO_SLUG": "payments", "BITBUCKET_WORKSPACE": "acme",
            "BITBUCKET_BUILD_NUMBER": "412",
            "BITBUCKET_GIT_HTTP_ORIGIN": "https://bitbucket.org/acme/payments",
            "BITBUCKET_CLONE_DIR": str(self.app.path),
            "TEAMS_WEBHOOK_DEPLOYMENTS": teams.webhook(),
            "TEAMS_WEBHOOK_QA": teams.webhook(),
            "TEAMS_WEBHOOK_SECURITY": teams.webhook(),
        }


@pytest.fixture
def pipeline(tmp_path: Path, jira: FakeJira, teams: FakeTeams) -> Pipeline:
    return Pipeline(tmp_path, jira, teams)


def report(devex: Devex, pipeline: Pipeline, *args: str, **env: str) -> Result:
    return devex("report", *args, cwd=pipeline.app.path, config=str(pipeline.config),
                 env={**pipeline.env, **env})


def texts(card: dict) -> str:  # type: ignore[type-arg]
    return json.dumps(card, ensure_ascii=False)


def test_qa_deployment_goes_to_deployments_and_qa(devex: Devex, pipeline: Pipeline,
                                                   teams: FakeTeams) -> None:
    result = report(devex, pipeline, "deployment", "--environment", "qa", "--status",
                    "succeeded", "--version", "1.4.2")
    assert result.code == 0, result.err
    assert len(teams.received) == 2
    envelope = teams.received[0]
    assert envelope["type"] == "message"
    card = envelope["attachments"][0]["content"]
    body = texts(card)
    assert "payments 1.4.2 → qa: succeeded" in body
    # as JSON, and Markdown-escaped (textsafe.md): braces shown as written
    assert "PAY-2 add refunds \\\"quoted\\\" \\\\{\\\\{ braces \\\\}\\\\} 🎉" in body
    assert "[PAY-3](" in body and "Rounding" in body
    assert "UTF-8" not in body.split("Tickets")[1]  # not a ticket: Jira does not know it
    assert "Changes since" in body and "(2)" in body
    assert teams.signature not in result.out + result.err


def test_pr_deployment_goes_to_pr(devex: Devex, pipeline: Pipeline, teams: FakeTeams) -> None:
    result = report(devex, pipeline, "deployment", "--environment", "dev", "--status", "started",
                    "--dry-run", BITBUCKET_PR_ID="87", BITBUCKET_BRANCH="feature/PAY-3",
                    BITBUCKET_PR_DESTINATION_BRANCH="main")
    assert result.code == 0, result.err
    (posted,) = json.loads(result.out)
    assert posted["channel"] == "pr"
    body = texts(posted["payload"])
    assert "PR #87" in body and "pull-requests/87" in body
    assert teams.received == []  # a dry run posts nothing


def test_tests_and_security_cards(devex: Devex, pipeline: Pipeline, teams: FakeTeams) -> None:
    result = report(devex, pipeline, "tests", "--junit", str(DATA / "pytest-junit.xml"),
                    "--junit", str(DATA / "TEST-com.acme.PaymentsTest.xml"))
    assert result.code == 0, result.err
    security = report(devex, pipeline, "security", "--veracode",
                      str(DATA / "veracode-results.json"), "--sca", str(DATA / "sca.json"))
    assert security.code == 0, security.err
    tests_card, security_card = (r["attachments"][0]["content"] for r in teams.received)
    assert "Tests failed" in texts(tests_card) and "refundsTwice" in texts(tests_card)
    assert "SQL Injection" in texts(security_card) and "CVE-2019-12384" in texts(security_card)


def test_bare_payload(devex: Devex, pipeline: Pipeline, teams: FakeTeams) -> None:
    pipeline.config.write_text(pipeline.config.read_text() + '\n[report]\npayload = "bare"\n')
    result = report(devex, pipeline, "security", "--sca", str(DATA / "sca.json"))
    assert result.code == 0, result.err
    assert teams.received[0]["type"] == "AdaptiveCard"


def test_throttled_then_delivered(devex: Devex, pipeline: Pipeline, teams: FakeTeams) -> None:
    teams.fail_next(429, {"error": {"code": "TooManyRequests"}}, {"Retry-After": "1"})
    result = report(devex, pipeline, "security", "--sca", str(DATA / "sca.json"))
    assert result.code == 0 and len(teams.received) == 1


def test_dead_webhook_warns_or_fails_with_strict(devex: Devex, pipeline: Pipeline,
                                                 teams: FakeTeams) -> None:
    teams.fail_next(500, {"error": {"code": "InternalServerError"}}, times=20)
    result = report(devex, pipeline, "security", "--sca", str(DATA / "sca.json"))
    assert result.code == 0
    assert "not delivered to security" in result.err and "500" in result.err
    assert teams.signature not in result.err and "/workflows/****" in result.err
    strict = report(devex, pipeline, "security", "--sca", str(DATA / "sca.json"), "--strict")
    assert strict.code == 3 and teams.signature not in strict.err


def test_wrong_signature(devex: Devex, pipeline: Pipeline, teams: FakeTeams) -> None:
    wrong = teams.webhook("wrong-signature-123")
    result = report(devex, pipeline, "security", "--sca", str(DATA / "sca.json"), "--strict",
                    TEAMS_WEBHOOK_SECURITY=wrong)
    assert result.code == 3 and "401" in result.err
    assert "wrong-signature-123" not in result.err


def test_legacy_connector_is_refused(devex: Devex, pipeline: Pipeline) -> None:
    legacy = "https://acme.webhook.office.com/webhookb2/abc@def/IncomingWebhook/123/456"
    result = report(devex, pipeline, "security", "--sca", str(DATA / "sca.json"),
                    TEAMS_WEBHOOK_SECURITY=legacy)
    assert result.code == 0
    assert "retired" in result.err and "Workflows" in result.err
    assert "IncomingWebhook/123" not in result.err
    strict = report(devex, pipeline, "security", "--sca", str(DATA / "sca.json"), "--strict",
                    TEAMS_WEBHOOK_SECURITY=legacy)
    assert strict.code == 2


def test_channel_without_webhook_is_a_warning(devex: Devex, pipeline: Pipeline,
                                              teams: FakeTeams) -> None:
    result = report(devex, pipeline, "tests", "--junit", str(DATA / "jest-junit.xml"),
                    "--channel", "leadership")
    assert result.code == 0
    assert "TEAMS_WEBHOOK_LEADERSHIP" in result.err and teams.received == []


@pytest.mark.parametrize(("args", "message"), [
    (("tests", "--junit", "missing.xml"), "no such file"),
    (("security",), "no scan given"),
    (("deployment", "--environment", "qa", "--status", "done"), "--status must be"),
    (("deployment", "--environment", "qa", "--status", "started", "--duration", "long"),
     "is not a duration"),
])
def test_bad_input_exits_2(devex: Devex, pipeline: Pipeline, args: tuple[str, ...],
                           message: str) -> None:
    result = report(devex, pipeline, *args)
    assert result.code == 2 and message in result.err


def test_custom_template_and_routes(devex: Devex, pipeline: Pipeline, tmp_path: Path) -> None:
    template = tmp_path / "mine.json.j2"
    template.write_text('{"type": "AdaptiveCard", "version": "1.4", "body": [{"type": '
                        '"TextBlock", "text": {{ ("Deployed " ~ service)|tojson }}}]}')
    pipeline.config.write_text(pipeline.config.read_text() + '\n[[report.routes]]\n'
                               'event = "deployment"\nenvironment = "prod"\n'
                               'channels = ["leadership"]\n')
    result = report(devex, pipeline, "deployment", "--environment", "prod", "--status",
                    "succeeded", "--template", str(template), "--dry-run")
    assert result.code == 0, result.err
    (posted,) = json.loads(result.out)
    assert posted["channel"] == "leadership"
    assert posted["payload"]["attachments"][0]["content"]["body"][0]["text"] == \
        "Deployed payments"


def test_pr_title_and_triggerer_from_bitbucket(devex: Devex, pipeline: Pipeline,
                                               tmp_path: Path) -> None:
    from tests.fakes.bitbucket import FakeBitbucket

    bitbucket = FakeBitbucket().start()
    try:
        bitbucket.repos["payments"] = pipeline.app.path
        bitbucket.pull_requests["87"] = "Refunds: idempotency keys"
        bitbucket.users["{4f1c}"] = "Dara Novak"
        result = report(devex, pipeline, "deployment", "--environment", "dev", "--status",
                        "succeeded", "--dry-run", BITBUCKET_PR_ID="87",
                        BITBUCKET_BRANCH="feature/PAY-3", BITBUCKET_STEP_TRIGGERER_UUID="{4f1c}",
                        **bitbucket.env())
        assert result.code == 0, result.err
        body = texts(json.loads(result.out)[0]["payload"])
        assert "Refunds: idempotency keys" in body and "by Dara Novak" in body
    finally:
        bitbucket.stop()


def test_the_cards_clean_streak_counts_rollbacks_by_the_dora_rule() -> None:
    """The deployment card's "N in a row without a rollback" uses the collector's rule: ancestry
    where the app repository knows both revisions, else a tag put back in the GitOps history."""
    from datetime import UTC, datetime

    from devex_cli.notify.card_context import _rollbacks
    from devex_cli.sources.gitops import Deployment, Release

    def deployment(tag: str, previous: str | None) -> Deployment:
        return Deployment("pay", "prod", Release(tag, tag), Release(previous, previous)
                          if previous else None, "c" * 40, datetime(2026, 9, 1, tzinfo=UTC),
                          "apps/pay/overlays/prod/kustomization.yaml")

    history = [deployment("aaaaaaa", None), deployment("bbbbbbb", "aaaaaaa"),
               deployment("aaaaaaa", "bbbbbbb"), deployment("bbbbbbb", "aaaaaaa")]

    class NoRepository:  # the app repository has none of these commits
        def resolve(self, revision: str) -> None:
            return None

    assert _rollbacks(NoRepository(), history) == [False, False, True, False]

    class Linear:  # aaaaaaa is an ancestor of bbbbbbb
        def resolve(self, revision: str) -> str:
            return revision

        def is_ancestor(self, old: str, new: str) -> bool:
            return (old, new) == ("aaaaaaa", "bbbbbbb")

    assert _rollbacks(Linear(), history) == [False, False, True, False]
