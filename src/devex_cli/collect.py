"""`devex collect`: read the sources, correlate them, and compute one snapshot.

Only the GitOps repository is required. Every other source (app repositories, Jira) is optional,
and a failing one degrades the snapshot (its `devex_source_up` is 0) instead of aborting the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from devex_cli.cache import JsonCache
from devex_cli.config import Settings
from devex_cli.correlate import ArgoView, actual_states, refine
from devex_cli.dora.compute import build_snapshot
from devex_cli.dora.model import (
    ActualState,
    Change,
    DataQuality,
    DeploymentRecord,
    Incident,
    Skip,
    Snapshot,
    TicketInfo,
)
from devex_cli.errors import DevexError, UpstreamError
from devex_cli.gitcli import local_repository
from devex_cli.sources import gitops
from devex_cli.sources.commitgraph import CommitGraph, GraphCommit
from devex_cli.tickets import compile_ticket_pattern, extract_ticket_keys
from devex_cli.timeutil import rfc3339

if TYPE_CHECKING:  # the HTTP stack loads only when an online source is used
    from devex_cli.sources.argocd import Application
    from devex_cli.sources.bitbucket import BitbucketCommits

    CommitSource = CommitGraph | BitbucketCommits

log = logging.getLogger("devex.collect")


@dataclass(frozen=True)
class CollectOptions:
    gitops: str | None
    start: datetime
    end: datetime
    offline: bool = False


def collect(settings: Settings, options: CollectOptions, *, now: datetime,
            step: Callable[[str], None] = lambda text: None) -> Snapshot:
    """Read every configured source and compute the snapshot; `step` hears what it is doing.

    Raises UsageError/UpstreamError only for the GitOps repository; other sources degrade.
    """
    sources: dict[str, bool] = {"gitops": True}
    background = ThreadPoolExecutor(max_workers=1)  # Argo CD answers while git is read
    argo_applications = (background.submit(_argocd_applications, settings)
                         if not options.offline and settings.environ.get("ARGOCD_SERVER")
                         else None)
    background.shutdown(wait=False)
    step("opening the GitOps repository")
    repo = gitops.open_repository(options.gitops, settings)
    step("opening the app repositories")
    graphs = _app_repositories(settings, sources)

    def has_commit(service: str, sha: str) -> bool:
        graph = graphs.get(service)
        return graph is not None and graph.resolve([sha])[sha] is not None

    step("reading the GitOps history")
    history = gitops.read_history(repo, settings, has_commit=has_commit)
    sources_of_commits: dict[str, CommitSource] = dict(graphs)
    from devex_cli.sources.bitbucket import BitbucketClient, BitbucketCommits, bitbucket_configured

    bitbucket = None
    store_cache = JsonCache(settings.cache_dir(), "bitbucket-commits")
    store: dict[str, Any] = {}
    if not options.offline and bitbucket_configured(settings):
        bitbucket = BitbucketClient(settings)
        sources["bitbucket"] = True
        store = store_cache.load()
        for service in history.services:
            if service not in graphs:
                slug = (settings.services[service].bitbucket_repo
                        if service in settings.services else None) or service
                sources_of_commits[service] = BitbucketCommits(bitbucket, slug, store)
    step(f"reading the change sets of {len(history.deployments)} deployments")
    try:
        records, pending, not_found = _records(history, sources_of_commits, settings, sources)
    finally:
        if bitbucket is not None:
            bitbucket.close()
            store_cache.save(store)  # what was fetched stays fetched, even after a failure
    quality = DataQuality(
        manifests_skipped=tuple(Skip(s.path, s.commit, s.reason) for s in history.skipped),
        revisions_not_found=tuple(sorted(not_found)),
    )
    actual: dict[tuple[str, str], ActualState] = {}
    if argo_applications is not None:
        step("asking Argo CD")
        view = read_argocd(settings, history, sources, applications=argo_applications.result())
        if view is not None:
            records = refine(records, view)
            actual = actual_states(history, view,
                                   gitops.first_parent_positions(repo, history.branch))
            for (service, environment), state in list(actual.items()):
                graph = graphs.get(service)
                if graph is not None and state.revision:
                    full = graph.resolve([state.revision])[state.revision]
                    actual[(service, environment)] = replace(state,
                                                             revision=full or state.revision)
    jira = not options.offline and bool(settings.jira.url)
    if jira:
        step("asking Jira")
    incidents = _incidents(settings, history.services, sources) if jira else []
    snapshot = build_snapshot(
        records, environments=history.environments, production=history.production, now=now,
        start=options.start, end=options.end, pending=pending, data_quality=quality,
        sources=sources, actual=actual, incidents=incidents)
    return _with_jira(snapshot, settings) if jira else snapshot


def _incidents(settings: Settings, services: Sequence[str],
               sources: dict[str, bool]) -> list[Incident]:
    """Incident tickets from `jira.incident_jql`, tied to a service by a component or label
    named after it, at their creation time."""
    if not settings.jira.incident_jql:
        return []
    from devex_cli.sources.jira import JiraClient

    try:
        with JiraClient(settings) as jira:
            tickets = jira.search(settings.jira.incident_jql)
    except DevexError as exc:
        log.warning("%s; incidents do not count as failures this run", exc)
        sources["jira"] = False
        return []
    by_name = {s.lower(): s for s in services}
    incidents = []
    for ticket in tickets:
        for name in {n.lower() for n in (*ticket.components, *ticket.labels)}:
            if name in by_name and ticket.created is not None:
                incidents.append(Incident(ticket.key, by_name[name], ticket.created))
    return incidents


def _argocd_applications(settings: Settings) -> list[Application] | DevexError:
    from devex_cli.sources.argocd import ArgoCDClient

    try:
        with ArgoCDClient(settings) as client:
            return client.applications()
    except DevexError as exc:
        return exc


def read_argocd(settings: Settings, history: gitops.GitOpsHistory, sources: dict[str, bool],
                applications: list[Application] | DevexError | None = None) -> ArgoView | None:
    """Argo CD's applications mapped to services, with history entries kept from earlier runs.

    `applications` is Argo CD's answer when it was asked already. A failure marks the source
    down and returns None.
    """
    from devex_cli.sources.argocd import HistoryEntry, map_applications, server_url

    if applications is None:
        applications = _argocd_applications(settings)
    if isinstance(applications, DevexError):
        log.warning("%s; deployment times come from the GitOps commits", applications)
        sources["argocd"] = False
        return None
    sources["argocd"] = True
    mapped = map_applications(
        applications, owner_of_path=lambda path: gitops.path_owner(path, settings),
        services=history.services, environments=history.environments,
        explicit=settings.argocd.applications)
    cache = JsonCache(settings.cache_dir(), "argocd-history")
    stored = cache.load()
    server = server_url(settings.environ.get("ARGOCD_SERVER", ""))
    known: dict[str, dict[str, list[int | str | None]]] = stored.get(server, {})
    entries: dict[str, list[HistoryEntry]] = {}
    for app in mapped.values():
        seen = known.setdefault(app.name, {})
        for entry in app.history:  # immutable once recorded: keep every one ever seen
            seen[f"{entry.id}:{entry.revision}"] = [
                entry.id, entry.revision, rfc3339(entry.deployed_at),
                rfc3339(entry.deploy_started_at) if entry.deploy_started_at else None]
        entries[app.name] = [
            HistoryEntry(int(str(i)), str(rev),
                         datetime.fromisoformat(str(at).replace("Z", "+00:00")))
            for i, rev, at, _ in seen.values()]
    cache.save({**stored, server: known})
    return ArgoView(mapped, entries)


def _app_repositories(settings: Settings, sources: dict[str, bool]) -> dict[str, CommitGraph]:
    graphs = {}
    for name, service in settings.services.items():
        if not service.repo:
            continue
        try:
            path = local_repository(service.repo, settings.cache_dir() / "apps",
                                    what=f"app repository of {name}")
        except DevexError as exc:
            log.warning("%s: change sets and lead times of %s are unknown this run", exc, name)
            sources["git"] = False
            continue
        graphs[name] = CommitGraph(path)
        sources.setdefault("git", True)
    return graphs


def _records(
    history: gitops.GitOpsHistory, commit_sources: Mapping[str, CommitSource],
    settings: Settings, sources: dict[str, bool],
) -> tuple[list[DeploymentRecord], dict[tuple[str, str], tuple[Change, ...]],
           set[tuple[str, str]]]:
    """Deployment records with change sets and rollbacks; the commits each environment before
    production has and production does not; the deployed revisions missing from app repos."""
    pattern = compile_ticket_pattern(settings.jira.ticket_pattern)
    projects = settings.jira.projects
    full: dict[tuple[str, str], str | None] = {}
    graphs: dict[str, CommitSource] = {}

    def prepare(service: str, graph: CommitSource) -> dict[str, str | None]:
        """Resolve a service's revisions and fetch (or load) its change sets."""
        mine = [d for d in history.deployments if d.service == service]
        revisions = {r for d in mine
                     for r in (d.release.revision, d.previous.revision if d.previous else None)
                     if r}
        resolved = graph.resolve(sorted(revisions))
        graph.load(sha for sha in resolved.values() if sha)
        graph.prefetch(
            (new, old) for d in mine
            if (new := resolved.get(d.release.revision or ""))
            and (old := resolved.get(d.previous.revision if d.previous and
                                     d.previous.revision else ""))
        )
        return resolved

    # Services are prepared side by side; each source bounds its own concurrency.
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(commit_sources)))) as pool:
        futures = {service: pool.submit(prepare, service, graph)
                   for service, graph in commit_sources.items()}
    for service, future in futures.items():
        graph = commit_sources[service]
        try:
            resolved = future.result()
        except DevexError as exc:
            log.warning("%s; change sets of %s are unknown this run", exc, service)
            sources["git" if isinstance(graph, CommitGraph) else "bitbucket"] = False
            continue
        graphs[service] = graph
        full.update({(service, short): sha for short, sha in resolved.items()})
    not_found = {key for key, sha in full.items() if sha is None}
    ticket_cache: dict[str, tuple[str, ...]] = {}
    change_cache: dict[str, Change] = {}  # a commit is in the change sets of every environment

    def tickets(sha: str, message: str) -> tuple[str, ...]:
        if sha not in ticket_cache:
            ticket_cache[sha] = tuple(extract_ticket_keys([message], pattern=pattern,
                                                          projects=projects))
        return ticket_cache[sha]

    def change(commit: GraphCommit) -> Change:
        found = change_cache.get(commit.sha)
        if found is None:
            found = change_cache[commit.sha] = Change(
                commit.sha, commit.author_time, tickets(commit.sha, commit.message),
                merge=commit.is_merge)
        return found

    records = []
    for deployment in history.deployments:
        app = graphs.get(deployment.service)
        new = full.get((deployment.service, deployment.release.revision or ""))
        previous = deployment.previous.revision if deployment.previous else None
        old = full.get((deployment.service, previous or ""))
        change_set: tuple[Change, ...] | None = None
        rollback = False
        if app is not None and new and old:
            commits = app.only_in(new, old)
            change_set = tuple(change(c) for c in reversed(commits))
            rollback = not commits and new != old
        records.append(DeploymentRecord(
            service=deployment.service, environment=deployment.environment,
            revision=new or deployment.release.revision, version=deployment.release.version,
            time=deployment.time, gitops_commit=deployment.gitops_commit,
            change_set=change_set, rollback=rollback))
    return records, _pending(history, graphs, full, change), not_found


def _pending(
    history: gitops.GitOpsHistory,
    graphs: Mapping[str, CommitSource],
    full: Mapping[tuple[str, str], str | None],
    change: Callable[[GraphCommit], Change],
) -> dict[tuple[str, str], tuple[Change, ...]]:
    """Per (service, environment) before production: the commits it runs that production does
    not (`git rev-list PROD..ENV`)."""
    production = history.production
    if production is None or production not in history.environments:
        return {}
    before = history.environments[: history.environments.index(production)]
    ranges: dict[tuple[str, str], tuple[str, str]] = {}
    for (service, environment), state in history.current.items():
        prod = history.state(service, production)
        if service not in graphs or environment not in before or prod is None:
            continue
        here = full.get((service, state.release.revision or ""))
        there = full.get((service, prod.release.revision or ""))
        if here and there:
            ranges[(service, environment)] = (here, there)
    by_service: dict[str, list[tuple[str, str]]] = {}
    for (service, _), pair in ranges.items():
        by_service.setdefault(service, []).append(pair)
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(by_service)))) as pool:
        for future in [pool.submit(graphs[s].prefetch, pairs) for s, pairs in by_service.items()]:
            future.result()
    return {
        key: tuple(change(c) for c in reversed(graphs[key[0]].only_in(here, there)))
        for key, (here, there) in ranges.items()
    }


def _with_jira(snapshot: Snapshot, settings: Settings) -> Snapshot:
    from devex_cli.sources.jira import JiraClient

    keys = sorted({t.ticket for t in snapshot.tickets_in_environment})
    sources = {**snapshot.sources, "jira": snapshot.sources.get("jira", True)}
    infos: dict[str, TicketInfo] = {}
    try:
        with JiraClient(settings) as jira:
            lookup = jira.fetch_tickets(keys, with_sprint=True) if keys else None
    except (UpstreamError, DevexError) as exc:
        log.warning("%s; tickets are shown without fix versions", exc)
        return replace(snapshot, sources={**sources, "jira": False})
    if lookup is not None:
        infos = {k: TicketInfo(k, t.status, t.fix_versions, t.summary, t.sprint)
                 for k, t in lookup.tickets.items()}
    tickets = tuple(
        replace(t, fix_versions=infos[t.ticket].fix_versions, status=infos[t.ticket].status,
                sprint=infos[t.ticket].sprint)
        if t.ticket in infos else t
        for t in snapshot.tickets_in_environment
        if lookup is None or t.ticket in infos  # keys Jira does not know are not tickets
    )
    return replace(snapshot, tickets_in_environment=tickets, sources=sources)
