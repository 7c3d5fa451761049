"""The Prometheus view of a snapshot: a custom collector that builds metric families from the
current snapshot on each scrape, as prometheus-client's custom collectors do.

Label cardinality is bounded: revisions appear only on `deployment_desired_state` (one series per
service and environment at a time), tickets only while they are between an environment and
production, months only for the last 13, windows are 7d/30d/90d. docs/metrics.md lists every
family.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from devex_cli import __version__
from devex_cli.dora.model import Snapshot
from devex_cli.dora.stats import Summary
from devex_cli.dora.tiers import TIERS

STATISTICS = ("median", "mean", "p90")


class SnapshotCollector(Collector):
    """Yields the metric families of whatever snapshot `current()` returns at scrape time."""

    def __init__(self, current: Callable[[], Snapshot | None],
                 clock: Callable[[], float] = time.time,
                 health: Callable[[], dict[str, float]] | None = None) -> None:
        self._current = current
        self._clock = clock
        self._health = health

    def collect(self) -> Iterator[GaugeMetricFamily | InfoMetricFamily]:
        build = InfoMetricFamily("devex_build", "devex version", value={"version": __version__})
        yield build
        if self._health is not None:
            for name, value in self._health().items():
                yield GaugeMetricFamily(name, _HEALTH_HELP.get(name, name), value=value)
        snapshot = self._current()
        if snapshot is None:
            return
        yield from families(snapshot, now=self._clock())


_HEALTH_HELP = {
    "devex_collection_duration_seconds": "Wall time of the last collection",
    "devex_last_collection_timestamp_seconds": "When the last collection finished (Unix time)",
    "devex_last_collection_success": "1 when the last collection succeeded, else 0",
    "devex_collections": "Collections run since the exporter started (a gauge: it restarts "
                         "at zero)",
}


def families(snapshot: Snapshot, *, now: float) -> Iterator[GaugeMetricFamily]:
    """Every metric family of a snapshot."""
    se = ["service", "environment"]

    desired = GaugeMetricFamily(
        "deployment_desired_state",
        "1 for the revision and version the GitOps repository deploys to an environment",
        labels=[*se, "revision", "version"])
    age = GaugeMetricFamily("deployment_age_seconds",
                            "Seconds since the current deployment of a service to an environment",
                            labels=se)
    last = GaugeMetricFamily("deployment_last_timestamp_seconds",
                             "Time of the current deployment (Unix time)", labels=se)
    states = {(e.environment, s.service): e for s in snapshot.window.services
              for e in s.environments}
    for (environment, name), figures in sorted(states.items()):
        if figures.last_deployed_at is None:
            continue
        desired.add_metric([name, environment, figures.revision or "", figures.version or ""], 1)
        stamp = figures.last_deployed_at.timestamp()
        age.add_metric([name, environment], max(0.0, now - stamp))
        last.add_metric([name, environment], stamp)
    yield from (desired, age, last)

    actual = GaugeMetricFamily(
        "deployment_actual_state",
        "1 for the revision Argo CD runs, with its sync and health status",
        labels=[*se, "revision", "version", "sync", "health"])
    drift = GaugeMetricFamily("deployment_drift",
                              "1 when what runs differs from what the GitOps repository asks for",
                              labels=se)
    drift_age = GaugeMetricFamily("deployment_drift_seconds",
                                  "How long what runs has differed from the desired state",
                                  labels=se)
    for (name, environment), state in sorted(snapshot.actual.items()):
        actual.add_metric([name, environment, state.revision or "", state.version or "",
                           state.sync, state.health], 1)
        drift.add_metric([name, environment], 1 if state.drift else 0)
        if state.drift and state.drift_since is not None:
            drift_age.add_metric([name, environment],
                                 max(0.0, now - state.drift_since.timestamp()))
    yield from (actual, drift, drift_age)

    swe = [*se, "window"]
    lead = GaugeMetricFamily("deployment_lead_time_seconds",
                             "Lead time from commit (author time) to its first deployment to the "
                             "environment, over the window", labels=[*swe, "statistic"])
    lead_commits = GaugeMetricFamily("dora_lead_time_commits",
                                     "Commits first deployed to the environment in the window",
                                     labels=swe)
    count = GaugeMetricFamily("dora_deployments", "Deployments in the window", labels=swe)
    frequency = GaugeMetricFamily("dora_deployment_frequency",
                                  "Deployments per day over the days of the window the "
                                  "environment's history covers", labels=swe)
    failure = GaugeMetricFamily("dora_change_failure_ratio",
                                "Failed deployments / deployments in the window (0-1)",
                                labels=swe)
    failed = GaugeMetricFamily("dora_failed_deployments", "Failed deployments in the window",
                               labels=swe)
    rollbacks = GaugeMetricFamily("dora_rollbacks", "Rollbacks in the window", labels=swe)
    hotfixes = GaugeMetricFamily("dora_hotfixes",
                                 "Production deployments with commits that skipped the "
                                 "environments before production", labels=swe)
    rebuilds = GaugeMetricFamily("dora_redeployments",
                                 "New tags of the commit already deployed (rebuilds) in the "
                                 "window; not deployments", labels=swe)
    recovery = GaugeMetricFamily("dora_recovery_time_seconds",
                                 "Failed deployment recovery time over the window",
                                 labels=[*swe, "statistic"])
    tier = GaugeMetricFamily("dora_performance_tier",
                             "DORA tier of the service in production: 0 low, 1 medium, 2 high, "
                             "3 elite", labels=["service", "window"])
    wait = GaugeMetricFamily("dora_promotion_wait_seconds",
                             "Wait of commits between their first deployment to one environment "
                             "and to the next", labels=["service", "from_environment",
                                                        "to_environment", "window", "statistic"])
    neck = GaugeMetricFamily("dora_bottleneck",
                             "1 for the stage with the largest median promotion wait",
                             labels=["service", "from_environment", "to_environment", "window"])
    for window_name, window in snapshot.windows.items():
        for service in window.services:
            for env in service.environments:
                labels = [service.service, env.environment, window_name]
                _statistics(lead, labels, env.lead_time)
                lead_commits.add_metric(labels, env.lead_time.count)
                count.add_metric(labels, env.deployments)
                if env.deployment_frequency_per_day is not None:
                    frequency.add_metric(labels, env.deployment_frequency_per_day)
                if env.change_failure_rate is not None:
                    failure.add_metric(labels, env.change_failure_rate)
                failed.add_metric(labels, env.failed)
                rollbacks.add_metric(labels, env.rollbacks)
                hotfixes.add_metric(labels, env.hotfixes)
                rebuilds.add_metric(labels, env.redeployments)
                if env.recovery_time.median is not None:
                    recovery.add_metric([*labels, "median"], env.recovery_time.median)
            if service.tier is not None:
                tier.add_metric([service.service, window_name], TIERS.index(service.tier))
            for stage in service.promotion_waits:
                _statistics(wait, [service.service, stage.from_environment,
                                   stage.to_environment, window_name], stage.wait)
            if service.bottleneck is not None:
                neck.add_metric([service.service, service.bottleneck.from_environment,
                                 service.bottleneck.to_environment, window_name], 1)
        for stage in window.promotion_waits:
            _statistics(wait, ["", stage.from_environment, stage.to_environment, window_name],
                        stage.wait)
    yield from (lead, lead_commits, count, frequency, failure, failed, rollbacks, hotfixes,
                rebuilds, recovery, tier, wait, neck)

    monthly = GaugeMetricFamily("dora_monthly_deployments",
                                "Deployments per calendar month (UTC), last 13 months",
                                labels=[*se, "month"])
    for (name, environment, month), n in sorted(snapshot.monthly.items()):
        monthly.add_metric([name, environment, month], n)
    yield monthly

    in_env = GaugeMetricFamily("ticket_in_environment",
                               "1 for a ticket deployed to an environment and not yet to "
                               "production", labels=["ticket", *se])
    versions = GaugeMetricFamily("ticket_fix_version", "1 for each fix version of a ticket "
                                 "that is in an environment", labels=["ticket", "fix_version"])
    missing = GaugeMetricFamily("ticket_missing_fix_version",
                                "1 for a ticket in an environment whose Jira fix version is "
                                "empty", labels=["ticket", *se])
    tickets_count = GaugeMetricFamily("devex_tickets_in_environment",
                                      "Tickets in an environment and not yet in production",
                                      labels=se)
    per_env: dict[tuple[str, str], int] = {}
    seen_versions: set[tuple[str, str]] = set()
    for ticket in snapshot.tickets_in_environment:
        in_env.add_metric([ticket.ticket, ticket.service, ticket.environment], 1)
        key = (ticket.service, ticket.environment)
        per_env[key] = per_env.get(key, 0) + 1
        if ticket.fix_versions == ():
            missing.add_metric([ticket.ticket, ticket.service, ticket.environment], 1)
        for version in ticket.fix_versions or ():
            if (ticket.ticket, version) not in seen_versions:
                seen_versions.add((ticket.ticket, version))
                versions.add_metric([ticket.ticket, version], 1)
    for (name, environment), n in sorted(per_env.items()):
        tickets_count.add_metric([name, environment], n)
    yield from (in_env, versions, missing, tickets_count)

    environments = GaugeMetricFamily(
        "devex_environment_info",
        "1 per environment, with its promotion order and whether it is production; join on "
        "`environment` to pick production figures", labels=["environment", "order", "production"])
    for order, environment in enumerate(snapshot.environments):
        environments.add_metric([environment, str(order),
                                 "true" if environment == snapshot.production else "false"], 1)
    yield environments
    if snapshot.production is not None:
        production = GaugeMetricFamily("devex_production_environment",
                                       "1 for the environment that is production",
                                       labels=["environment"])
        production.add_metric([snapshot.production], 1)
        yield production

    up = GaugeMetricFamily("devex_source_up", "1 when the source answered in the last "
                           "collection, 0 when it failed", labels=["source"])
    for source, ok in sorted(snapshot.sources.items()):
        up.add_metric([source], 1 if ok else 0)
    quality = snapshot.data_quality
    yield up
    yield GaugeMetricFamily("devex_manifests_skipped",
                            "Manifests skipped: versions in the GitOps history that could not "
                            "be parsed, and kustomizations that match no template",
                            value=len(quality.manifests_skipped))
    yield GaugeMetricFamily("devex_revisions_not_found",
                            "Deployed revisions missing from the app repositories",
                            value=len(quality.revisions_not_found))
    yield GaugeMetricFamily("devex_deployments_without_change_set",
                            "Deployments whose change set is unknown",
                            value=quality.deployments_without_change_set)
    yield GaugeMetricFamily("devex_snapshot_timestamp_seconds",
                            "When the figures were computed (Unix time)",
                            value=snapshot.generated_at.timestamp())


def _statistics(family: GaugeMetricFamily, labels: list[str], summary: Summary) -> None:
    for statistic in STATISTICS:
        value = getattr(summary, statistic)
        if value is not None:
            family.add_metric([*labels, statistic], value)


def render(snapshot: Snapshot, *, now: float | None = None) -> str:
    """The snapshot in the Prometheus text format."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: snapshot,
                                        clock=(lambda: now) if now is not None else time.time))
    return generate_latest(registry).decode()
