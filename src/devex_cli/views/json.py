"""The JSON view of a snapshot (`collect --format json`), and the summaries `explain` shares."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from devex_cli.dora.model import PromotionWait, Skipped, Snapshot
from devex_cli.dora.stats import Summary
from devex_cli.timeutil import rfc3339


def snapshot_json(snapshot: Snapshot) -> dict[str, Any]:
    """The contract's JSON shape, plus tiers, promotion waits, monthly counts and data quality."""
    window = snapshot.window
    return {
        "generated_at": rfc3339(snapshot.generated_at),
        "window": {"start": rfc3339(window.start), "end": rfc3339(window.end)},
        "environments": list(snapshot.environments),
        "production": snapshot.production,
        "qa_release": snapshot.qa_release,
        "deployments": [
            {"service": d.service, "environment": d.environment, "revision": d.revision,
             "version": d.version, "time": rfc3339(d.time), "gitops_commit": d.gitops_commit,
             "commits": list(d.commits or ()), "change_set_known": d.commits is not None,
             "tickets": list(d.tickets), "failed": d.failed, "rollback": d.rollback,
             "hotfix": d.hotfix}
            for d in snapshot.deployments
        ],
        "services": [
            {
                "service": s.service,
                "tier": s.tier,
                **stages_json(s.bottleneck, s.promotion_waits),
                "environments": [
                    {"environment": e.environment, "revision": e.revision, "version": e.version,
                     "last_deployed_at": rfc3339(e.last_deployed_at) if e.last_deployed_at
                     else None,
                     "deployments": e.deployments,
                     "deployment_frequency_per_day": None
                     if e.deployment_frequency_per_day is None
                     else round(e.deployment_frequency_per_day, 6),
                     "lead_time_seconds": summary_json(e.lead_time),
                     "change_failure_rate": e.change_failure_rate,
                     "failed_deployments": e.failed,
                     "rollbacks": e.rollbacks,
                     "hotfixes": e.hotfixes,
                     "redeployments": e.redeployments,
                     "recovery_time_seconds": {"median": e.recovery_time.median,
                                               "count": e.recovery_time.count}}
                    for e in s.environments],
            }
            for s in window.services
        ],
        # every service's waits together: the tables' 'all' row (`devex explain bottleneck`)
        "organisation": stages_json(window.bottleneck, window.promotion_waits),
        "deployments_per_month": [
            {"service": service, "environment": environment, "month": month, "deployments": n}
            for (service, environment, month), n in sorted(snapshot.monthly.items())
        ],
        "tickets_in_environment": [
            {"ticket": t.ticket, "service": t.service, "environment": t.environment,
             "fix_versions": None if t.fix_versions is None else list(t.fix_versions),
             "status": t.status, "sprint": t.sprint}
            for t in snapshot.tickets_in_environment
        ],
        "data_quality": {
            "manifests_skipped": skipped_json(snapshot.data_quality.manifests_skipped),
            "revisions_not_found": [{"service": s, "revision": r}
                                    for s, r in snapshot.data_quality.revisions_not_found],
            "deployments_without_change_set":
                snapshot.data_quality.deployments_without_change_set,
            "failure_signals": {service: list(signals) for service, signals
                                in sorted(snapshot.data_quality.failure_signals.items())},
        },
        "sources": dict(snapshot.sources),
        "actual_state": [
            {"service": service, "environment": environment, "application": a.application,
             "gitops_revision": a.gitops_revision, "revision": a.revision, "version": a.version,
             "sync": a.sync, "health": a.health, "drift": a.drift,
             "drift_since": rfc3339(a.drift_since) if a.drift_since else None}
            for (service, environment), a in sorted(snapshot.actual.items())
        ],
    }


def render_snapshot_json(snapshot: Snapshot, *, pretty: bool = True) -> str:
    """Indented for a person; compact (and several times faster to write) for a file."""
    if pretty:
        return json.dumps(snapshot_json(snapshot), indent=2)
    return json.dumps(snapshot_json(snapshot), separators=(",", ":"))


def summary_json(summary: Summary) -> dict[str, Any]:
    """A median/mean/p90/count summary as the JSON views write it."""
    return {"median": summary.median, "mean": summary.mean, "p90": summary.p90,
            "count": summary.count}


def skipped_json(skipped: Sequence[Skipped]) -> list[dict[str, str]]:
    """The skipped items as `status --format json` and `collect --format json` write them."""
    return [{"path": s.path, "commit": s.commit, "reason": s.reason} for s in skipped]


def bottleneck_json(neck: PromotionWait | None) -> dict[str, Any] | None:
    """The slowest promotion stage as the JSON views write it (None: no stage measured)."""
    return None if neck is None else {"from": neck.from_environment, "to": neck.to_environment,
                                      "median_seconds": neck.wait.median}


def stages_json(neck: PromotionWait | None, waits: Sequence[PromotionWait]) -> dict[str, Any]:
    """A service's (or every service's) bottleneck and promotion waits."""
    return {"bottleneck": bottleneck_json(neck),
            "promotion_waits": [{"from": w.from_environment, "to": w.to_environment,
                                 **summary_json(w.wait)} for w in waits]}
