"""The sources' shared interface: one health record, one lifecycle for the API clients."""

from __future__ import annotations

from pathlib import Path

import pytest

from devex_cli.config import load_settings
from devex_cli.errors import ConfigError
from devex_cli.sources.argocd import ArgoCDClient
from devex_cli.sources.base import OnFirstUse, SourceHealth
from devex_cli.sources.bitbucket import BitbucketClient, BitbucketCommits
from devex_cli.sources.commitgraph import CommitGraph
from devex_cli.sources.jira import JiraClient


def test_a_failed_source_stays_down_and_the_order_is_first_heard() -> None:
    health = SourceHealth()
    health.ok("gitops")
    health.failed("git", "app repository of pay: no such folder")
    health.ok("git")  # a later repository that opened does not hide the one that did not
    health.ok("bitbucket")
    health.failed("bitbucket", "Bitbucket: 503")
    health.failed("bitbucket", "Bitbucket: 500")
    assert list(health) == [("gitops", True), ("git", False), ("bitbucket", False)]
    assert dict(health) == {"gitops": True, "git": False, "bitbucket": False}
    assert health.reason("bitbucket") == "Bitbucket: 503" and health.reason("gitops") is None
    assert dict(SourceHealth({"gitops": True, "jira": False})) == {"gitops": True, "jira": False}


def test_every_source_names_the_system_it_reports_under() -> None:
    assert (CommitGraph.system, BitbucketCommits.system, BitbucketClient.system,
            JiraClient.system, ArgoCDClient.system) == ("git", "bitbucket", "bitbucket", "jira",
                                                       "argocd")


class _Api:
    """An injected API client: what a test puts in place of the HTTP stack."""

    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


@pytest.mark.parametrize(("client", "environ"), [
    (JiraClient, {"JIRA_URL": "http://127.0.0.1:9", "JIRA_API_TOKEN": "t"}),
    (ArgoCDClient, {"ARGOCD_SERVER": "http://127.0.0.1:9", "ARGOCD_AUTH_TOKEN": "t"}),
    (BitbucketClient, {"BITBUCKET_API_TOKEN": "t", "BITBUCKET_WORKSPACE": "acme"}),
])
def test_the_api_sources_share_one_lifecycle(client: type[JiraClient | ArgoCDClient |
                                                           BitbucketClient],
                                             environ: dict[str, str], tmp_path: Path) -> None:
    """Made from the settings (ConfigError when not configured), an API client injected, used
    as a context manager that closes it, `close()` too."""
    (tmp_path / ".git").mkdir()
    with pytest.raises(ConfigError):
        client(load_settings(environ={}, cwd=tmp_path))
    api = _Api()
    with client(load_settings(environ=environ, cwd=tmp_path), api=api) as source:  # type: ignore[arg-type]
        assert source.api is api
    assert api.closed == 1
    client(load_settings(environ=environ, cwd=tmp_path), api=api).close()  # type: ignore[arg-type]
    assert api.closed == 2


def test_a_source_used_on_first_need_opens_once_and_only_when_asked() -> None:
    opened: list[_Source] = []

    class _Source:
        system = "tickets"

        def __init__(self) -> None:
            self.closed = False
            opened.append(self)

        def close(self) -> None:
            self.closed = True

        def __enter__(self) -> _Source:
            return self

        def __exit__(self, *exc: object) -> None:
            self.close()

    with OnFirstUse("tickets", _Source):
        pass
    assert opened == []
    with OnFirstUse("tickets", _Source) as lazy:
        assert lazy.get() is lazy.get()
    assert len(opened) == 1 and opened[0].closed


def test_a_source_asked_for_after_it_was_closed_is_not_opened() -> None:
    """A thread asking ahead for a command that ended meanwhile: the source, closed, is not
    opened again (nothing would close it); the thread is told so."""
    from devex_cli.errors import UpstreamError

    opened: list[int] = []

    class Source:
        def close(self) -> None:
            opened.append(-1)

    source = OnFirstUse("jira", lambda: opened.append(1) or Source())
    assert source.get() is source.get() and opened == [1]
    source.close()
    with pytest.raises(UpstreamError):
        source.get()
    source.close()
    assert opened == [1, -1]
