"""`devex status`: what is deployed where now, read from the GitOps repository (and Argo CD)."""

from __future__ import annotations

from collections.abc import Sequence

from devex_cli.config import Settings
from devex_cli.sources import gitops as gitops_source
from devex_cli.views.status import StatusReport, build_status


def read_status(settings: Settings, *, gitops: str | None, environments: Sequence[str],
                offline: bool) -> StatusReport:
    """The state at the GitOps repository's head (`gitops`, else the configured one, else the
    current folder) and, unless `offline`, what Argo CD runs. Raises UsageError for a
    repository, service or environment that is not there; Argo CD failing only degrades."""
    from devex_cli.sources.commitgraph import local_commit_checker

    repo = gitops_source.open_repository(gitops, settings, default_here=True)
    checker = local_commit_checker({name: s.repo for name, s in settings.services.items()
                                    if s.repo})
    history = gitops_source.read_history(repo, settings, has_commit=checker)
    history.require_services()
    history.require_environments(environments)
    actual = None
    if not offline and settings.environ.get("ARGOCD_SERVER"):
        from devex_cli.argocd_refine import actual_states
        from devex_cli.collect import read_argocd
        from devex_cli.sources.base import SourceHealth

        view = read_argocd(settings, history, SourceHealth())
        if view is not None:
            actual = actual_states(history, view, lambda synced: gitops_source.commits_after(
                repo, synced, history.head))
    return build_status(history, environments=environments, actual=actual)
