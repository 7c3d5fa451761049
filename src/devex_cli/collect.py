"""`devex collect`: read the sources, correlate them, and compute one snapshot.

Only the GitOps repository is required. Every other source (app repositories, Jira) is optional,
and a failing one degrades the snapshot (its `devex_source_up` is 0) instead of aborting the run.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devex_cli.argocd_refine import ArgoView, actual_states, deployment_times, refine
from devex_cli.cache import (
    INTEGER,
    TEXT,
    JsonCache,
    entries,
    keyed,
    map_of,
    moment,
    optional,
    row,
)
from devex_cli.changes import ticket_source
from devex_cli.config import Settings, bitbucket_configured
from devex_cli.dora.compute import (
    FigureHistory,
    build_snapshot,
    failure_signals,
    history_of,
    waiting_tickets,
)
from devex_cli.dora.model import (
    ActualState,
    Change,
    DataQuality,
    DeploymentRecord,
    Incident,
    RedeploymentRecord,
    Snapshot,
    TicketInfo,
)
from devex_cli.dora.past import Past
from devex_cli.errors import DevexError
from devex_cli.gitcli import local_repository
from devex_cli.horizon import Horizon, earliest_start
from devex_cli.parallel import in_background, quick_switches
from devex_cli.records import RecordCache, Records, build_records, record_fingerprint
from devex_cli.sources import gitops
from devex_cli.sources.base import OnFirstUse, SourceHealth
from devex_cli.sources.commitgraph import CommitCheck, CommitGraph
from devex_cli.tickets_ahead import TicketsAhead
from devex_cli.timeutil import rfc3339

if TYPE_CHECKING:  # the HTTP stack loads only when an online source is used
    from devex_cli.sources.argocd import Application
    from devex_cli.sources.base import CommitSource, TicketSource
    from devex_cli.sources.bitbucket import BitbucketClient, BitbucketCommits
    from devex_cli.tickets import TicketLookup

log = logging.getLogger("devex.collect")

# workspace/repository -> {"resolved": {revision: its full SHA, or null: no such commit}}
_BITBUCKET_SHAPE = entries(keyed(resolved=map_of(optional(TEXT))))
# Argo CD server -> application -> {"id:revision": [id, revision, deployedAt, deployStartedAt]}
_ARGOCD_SHAPE = entries(map_of(map_of(row(INTEGER, TEXT, moment, optional(moment)))))


@dataclass(frozen=True)
class CollectOptions:
    gitops: str | None
    start: datetime
    end: datetime
    offline: bool = False


@dataclass(frozen=True)
class Collected:
    """A snapshot and what it was computed from (for `devex explain`): the records and other
    inputs `build_snapshot` was given, and where the repositories are."""

    snapshot: Snapshot
    records: tuple[DeploymentRecord, ...]
    incidents: tuple[Incident, ...]
    redeployments: tuple[RedeploymentRecord, ...]
    pending: Mapping[tuple[str, str], Sequence[Change]]
    history: FigureHistory  # what the snapshot's figures were computed from
    gitops_repo: Path
    app_repos: Mapping[str, Path] = field(default_factory=dict)


def collect(settings: Settings, options: CollectOptions, *, now: datetime,
            step: Callable[[str], None] = lambda text: None) -> Snapshot:
    """Read every configured source and compute the snapshot; `step` hears what it is doing.

    Raises UsageError/UpstreamError only for the GitOps repository; other sources degrade.
    """
    return collect_inputs(settings, options, now=now, step=step).snapshot


def collect_inputs(settings: Settings, options: CollectOptions, *, now: datetime,
                   step: Callable[[str], None] = lambda text: None) -> Collected:
    """`collect`, keeping what the snapshot was computed from beside it."""
    with without_cycle_collection(), quick_switches():
        return _collect_inputs(settings, options, now=now, step=step)


@contextlib.contextmanager
def without_cycle_collection() -> Iterator[None]:
    """Python's cycle collector paused while a collection builds its objects (tens of
    thousands of records, commits and deployments, none in a cycle the run needs freed: the
    collector would walk them all several times, about an eighth of a warm run); resumed after,
    when it was running before (a concurrent collection, as the exporter's, leaves it to the
    first). A caller done with the objects once it has used them (a one-shot command writing
    the figures) pauses it around that too: resumed while they live, its first pass walks them
    all."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _collect_inputs(settings: Settings, options: CollectOptions, *, now: datetime,
                    step: Callable[[str], None]) -> Collected:
    """The collection, with Jira (when it is asked) opened once for the whole of it: the
    waiting tickets of the last collection are asked as it begins (`tickets_ahead`)."""
    tickets = ticket_source(settings) if not options.offline and settings.jira.url else None
    if tickets is None:
        return _gather(settings, options, now=now, step=step, tickets=None)
    with tickets:  # (a look-up begun ahead and not waited for, the run having failed, is
        # left to end as it does: the client is closed under it, or it is told it was)
        ahead = TicketsAhead(settings, tickets, repr((
            settings.jira.url, record_fingerprint(settings), options.gitops, settings.gitops.repo,
            settings.collect.services)))
        return _gather(settings, options, now=now, step=step, tickets=(tickets, ahead))


def _gather(settings: Settings, options: CollectOptions, *, now: datetime,
            step: Callable[[str], None],
            tickets: tuple[OnFirstUse[TicketSource], TicketsAhead] | None) -> Collected:
    health = SourceHealth()
    health.ok(gitops.SYSTEM)
    argo_applications = (  # Argo CD answers while git is read
        in_background(lambda: _argocd_applications(settings), name="argocd", daemon=True)
        if not options.offline and settings.environ.get("ARGOCD_SERVER") else None)
    step("opening the GitOps repository")
    repo = gitops.open_repository(options.gitops, settings)
    step("opening the app repositories")
    graphs = _app_repositories(settings, health)

    bitbucket: BitbucketClient | None = None
    store_cache = JsonCache(settings.cache_dir(), "bitbucket-commits", version=1,
                            shape=_BITBUCKET_SHAPE)
    store: dict[str, Any] | None = None

    remote: dict[str, BitbucketCommits] = {}

    def source_of(service: str) -> CommitSource | None:
        """The app source of a service (one per run: what it learnt is reused); Bitbucket's
        client and cache open on first need."""
        nonlocal bitbucket, store
        if service in graphs:
            return graphs[service]
        if options.offline or not bitbucket_configured(settings):
            return None
        from devex_cli.sources.bitbucket import BitbucketClient, BitbucketCommits

        if bitbucket is None or store is None:
            bitbucket, store = BitbucketClient(settings), store_cache.load()
        if service not in remote:
            slug = (settings.services[service].bitbucket_repo
                    if service in settings.services else None) or service
            remote[service] = BitbucketCommits(bitbucket, slug, store)
        return remote[service]

    if not options.offline and bitbucket_configured(settings):
        from devex_cli.sources.bitbucket import BitbucketClient

        health.ok(BitbucketClient.system)  # asked only for what the caches do not have
    try:
        step("reading the GitOps history")
        history = _our_history(repo, settings, source_of)
        _resolve_ahead(history, source_of)

        @functools.cache
        def argo_view() -> ArgoView | None:
            """Argo CD's view, asked for once, after the records (its answer comes meanwhile;
            a kept past's plan is checked against its times then)."""
            if argo_applications is None:
                return None
            step("asking Argo CD")
            return read_argocd(settings, history, health, applications=argo_applications.result())

        # the records the windows need, when the store keeps what the earlier ones left
        horizon = Horizon.plan(settings, repo, history,
                               lambda: deployment_times(argo_view()),
                               earliest_start(options.start, now))
        built, past = _records(history, source_of, settings, health, horizon, step)
    finally:
        for commits in remote.values():  # (a tag resolved ahead that no record asked)
            commits.settle()
        if bitbucket is not None:
            bitbucket.close()
        if store is not None:
            store_cache.save(store)  # what was fetched stays fetched, even after a failure
    log.info("%d deployments: %d change set(s) computed, the others kept from earlier runs",
             len(history.deployments), built.computed)
    records, pending, not_found = built.records, built.pending, built.not_found
    quality = DataQuality(
        manifests_skipped=history.skipped_items(),
        revisions_not_found=tuple(sorted(not_found)),
    )
    actual: dict[tuple[str, str], ActualState] = {}
    argocd_services: set[str] = set()
    view = argo_view()
    if view is not None:
        argocd_services = {service for service, _ in view.applications}
        records = refine(records, view)
        actual = actual_states(history, view, lambda synced: gitops.commits_after(
            repo, synced, history.head))
        for (service, environment), state in list(actual.items()):
            graph = graphs.get(service)
            if graph is not None and state.revision:
                full = graph.resolve([state.revision])[state.revision]
                actual[(service, environment)] = replace(state,
                                                         revision=full or state.revision)
    after = records
    if past is not None:  # the records from the cut on, and each key's last one before it
        after, past = horizon.finish(records, past)
        records = [*after, *past.before.values()]
    if tickets is not None:
        step("asking Jira")
    source = tickets[0] if tickets is not None else None
    incidents = _incidents(settings, history.services, health, source) if source else None
    quality = replace(quality, failure_signals=failure_signals(
        records, argocd=argocd_services, incidents=incidents is not None, past=past))
    redeployments = tuple(RedeploymentRecord(r.service, r.environment, r.time)
                          for r in history.redeployments)
    figures = history_of(after, environments=history.environments,
                         production=history.production, incidents=incidents or (),
                         redeployments=redeployments, past=past)
    if past is None:
        horizon.keep(figures, built.unsettled)
    # Jira is asked for the waiting tickets (those not asked ahead) while the snapshot is
    # computed
    asked = in_background(lambda: tickets[1].look_up(waiting_tickets(
        figures, history.environments, history.production, pending)),
        name="jira") if tickets is not None else None
    try:
        snapshot = build_snapshot(
            after, environments=history.environments, production=history.production,
            now=now, start=options.start, end=options.end, pending=pending,
            data_quality=quality, sources=dict(health), actual=actual,
            incidents=incidents or (), redeployments=redeployments,
            qa_environment=settings.gate.environment, history=figures)
    finally:  # the client is closed only once its look-up is done (a failure of the
        if asked is not None:  # snapshot's is raised, not one of the look-up's)
            asked.exception()
    if source is not None and asked is not None:
        snapshot = _with_jira(snapshot, asked.result(), source.system, health)
    return Collected(
        snapshot=snapshot,
        records=tuple(records), incidents=tuple(incidents or ()), redeployments=redeployments,
        pending=pending, history=figures, gitops_repo=repo,
        app_repos={name: graph.repo for name, graph in graphs.items()})


def _records(history: gitops.GitOpsHistory, source_of: Callable[[str], CommitSource | None],
             settings: Settings, health: SourceHealth, horizon: Horizon,
             step: Callable[[str], None]) -> tuple[Records, Past | None]:
    """The records of the deployments the horizon names, with the kept past they go on from;
    else (no usable past) of the whole history."""
    if horizon.positions is not None:
        cache = RecordCache(settings, only=horizon.keys())
        step(f"reading the change sets of {len(horizon.positions)} of "
             f"{len(history.deployments)} deployments (those the windows need)")
        try:
            built = build_records(history, source_of, settings, health, cache,
                                  horizon.positions)
        finally:
            cache.save()
        past = horizon.completed(built.records)
        if past is not None:
            return built, past
    cache = RecordCache(settings)
    step(f"reading the change sets of {len(history.deployments)} deployments")
    try:
        return build_records(history, source_of, settings, health, cache), None
    finally:
        cache.save()


def _resolve_ahead(history: gitops.GitOpsHistory,
                   source_of: Callable[[str], CommitSource | None]) -> None:
    """The deployments of the commits read since the last collection are those it makes new
    records of: their app sources begin resolving their tags now (newest first, as the records
    ask them), beside the plan and the reading of the kept records: a round trip hidden. (The
    revisions they replace are known from the kept records.) Each is given the revision its
    new commits are counted from: production's before them (the base of the commits waiting
    for production and of production's own change set), else the oldest one's previous."""
    added: dict[str, list[gitops.Deployment]] = {}
    for deployment in history.added:
        added.setdefault(deployment.service, []).append(deployment)
    for service, mine in added.items():
        wanted = [d.release.revision for d in reversed(mine) if d.release.revision]
        source = source_of(service) if wanted else None
        if source is not None:
            source.resolve_soon(wanted, _base(history, mine))


def _base(history: gitops.GitOpsHistory, added: Sequence[gitops.Deployment]) -> str | None:
    """The revision a service's new deployments (`added`, oldest first) are compared from."""
    production = history.production
    first = next((d for d in added if d.environment == production), None) if production \
        else added[0]
    if first is not None:
        return first.previous.revision if first.previous else None
    state = history.state(added[0].service, production) if production else None
    return state.release.revision if state else None


def _our_history(repo: Path, settings: Settings,
                 source_of: Callable[[str], CommitSource | None]) -> gitops.GitOpsHistory:
    """The GitOps history of the services this collector serves (`collect.services`): a tag of
    digits only is checked against another service's repository by no collector but that
    service's (its reader state is kept apart, so collectors sharing a cache do not undo each
    other's)."""
    patterns = settings.collect.services

    def ours(service: str) -> CommitSource | None:
        return source_of(service) if gitops.in_service_set(service, patterns) else None

    # Bitbucket answers the check from the listing it makes anyway
    check = CommitCheck(ours if patterns else source_of)
    history = gitops.read_history(repo, settings, has_commit=check, met=check.expect,
                                  variant="checked " + ",".join(patterns) if patterns else None)
    history.require_services()
    return history.only(patterns) if patterns else history


def _incidents(settings: Settings, services: Sequence[str], health: SourceHealth,
               source: OnFirstUse[TicketSource]) -> list[Incident] | None:
    """Incident tickets from `jira.incident_jql`, tied to a service by a component or label
    named after it, at their creation time; None when none were read (no query, Jira failed)."""
    if not settings.jira.incident_jql:
        return None
    try:
        tickets = source.get().search(settings.jira.incident_jql)
    except DevexError as exc:
        log.warning("%s; incidents do not count as failures this run", exc)
        health.failed(source.system, str(exc))
        return None
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


def read_argocd(settings: Settings, history: gitops.GitOpsHistory, health: SourceHealth,
                applications: list[Application] | DevexError | None = None) -> ArgoView | None:
    """Argo CD's applications mapped to services, with history entries kept from earlier runs.

    `applications` is Argo CD's answer when it was asked already. A failure marks the source
    down and returns None.
    """
    from devex_cli.sources.argocd import ArgoCDClient, HistoryEntry, map_applications, server_url

    if applications is None:
        applications = _argocd_applications(settings)
    if isinstance(applications, DevexError):
        log.warning("%s; deployment times come from the GitOps commits", applications)
        health.failed(ArgoCDClient.system, str(applications))
        return None
    health.ok(ArgoCDClient.system)
    mapped = map_applications(
        applications,
        owner_of_path=lambda path: history.owner_of(path) or gitops.path_owner(path, settings),
        services=history.services, environments=history.environments,
        explicit=settings.argocd.applications)
    cache = JsonCache(settings.cache_dir(), "argocd-history", version=1, shape=_ARGOCD_SHAPE)
    stored = cache.load()
    server = server_url(settings.environ.get("ARGOCD_SERVER", ""))
    known: dict[str, dict[str, list[Any]]] = stored.get(server, {})
    by_app: dict[str, list[HistoryEntry]] = {}
    for app in mapped.values():
        seen = known.setdefault(app.name, {})
        for entry in app.history:  # immutable once recorded: keep every one ever seen
            seen[f"{entry.id}:{entry.revision}"] = [
                entry.id, entry.revision, rfc3339(entry.deployed_at),
                rfc3339(entry.deploy_started_at) if entry.deploy_started_at else None]
        by_app[app.name] = [
            HistoryEntry(i, rev, datetime.fromisoformat(at.replace("Z", "+00:00")))
            for i, rev, at, _ in seen.values()]
    cache.save({**stored, server: known})
    return ArgoView(mapped, by_app)


def _app_repositories(settings: Settings, health: SourceHealth) -> dict[str, CommitGraph]:
    graphs = {}
    for name, service in settings.services.items():
        if not service.repo or not gitops.in_service_set(name, settings.collect.services):
            continue
        try:
            path = local_repository(service.repo, settings.cache_dir() / "apps",
                                    what=f"app repository of {name}")
        except DevexError as exc:
            log.warning("%s: change sets and lead times of %s are unknown this run", exc, name)
            health.failed(CommitGraph.system, str(exc))
            continue
        graphs[name] = CommitGraph(path)
        health.ok(CommitGraph.system)
    return graphs


def _with_jira(snapshot: Snapshot, lookup: TicketLookup | DevexError | None, system: str,
               health: SourceHealth) -> Snapshot:
    """The tickets of the snapshot with what the ticket source said of them (`TicketsAhead`: fix
    versions, status, sprint); keys of projects it does not have are left out."""
    health.ok(system)
    infos: dict[str, TicketInfo] = {}
    if isinstance(lookup, DevexError):
        log.warning("%s; tickets are shown without fix versions", lookup)
        health.failed(system, str(lookup))
        return replace(snapshot, sources=dict(health))
    if lookup is not None:
        infos = {k: TicketInfo(k, t.status, t.fix_versions, t.summary, t.sprint)
                 for k, t in lookup.tickets.items()}
    tickets = tuple(
        replace(t, fix_versions=infos[t.ticket].fix_versions, status=infos[t.ticket].status,
                sprint=infos[t.ticket].sprint)
        if t.ticket in infos else t
        for t in snapshot.tickets_in_environment
        # keys of projects Jira does not have are not tickets; a ticket Jira did not return is
        # still one (listed without fix versions)
        if lookup is None or t.ticket not in lookup.not_tickets
    )
    return replace(snapshot, tickets_in_environment=tickets, sources=dict(health))
