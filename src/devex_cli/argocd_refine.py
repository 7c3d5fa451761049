"""Argo CD's view beside the GitOps history: what runs, how it synced, and when deployments
really happened. Pure: applications and history in, refinements out."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from devex_cli.dora.model import ActualState, DeploymentRecord
from devex_cli.gitops_reader import Deployments
from devex_cli.sources.gitops import Deployment, GitOpsHistory

if TYPE_CHECKING:
    from devex_cli.sources.argocd import Application, HistoryEntry


@dataclass(frozen=True)
class ArgoView:
    applications: Mapping[tuple[str, str], Application]
    history: Mapping[str, Sequence[HistoryEntry]]  # application -> entries (cache included)


def actual_states(history: GitOpsHistory, view: ArgoView,
                  after: Callable[[str], set[str] | None]) -> dict[tuple[str, str], ActualState]:
    """What each application runs: the service's state at the GitOps commit it is synced to.

    `after(sync_revision)` gives the branch's first-parent commits after that revision (None when
    it is not on the branch): the state in effect is the last deployment not among them.
    """
    later_than: dict[str, set[str] | None] = {}
    wanted: dict[tuple[str, str], set[str]] = {}  # the commits after each app's sync revision
    for key, app in view.applications.items():
        synced = app.sync_revision or ""
        if synced and synced not in later_than:
            later_than[synced] = after(synced)
        later = later_than.get(synced)
        if later is not None:
            wanted[key] = later
    in_effect = _in_effect(history.deployments, wanted)
    states = {}
    for key, app in view.applications.items():
        revision = version = None
        if (found := in_effect.get(key)) is not None:
            revision, version = found.release.revision, found.release.version
        desired = history.state(*key)
        in_step = desired is not None and (revision, version) == (
            desired.release.revision, desired.release.version)
        drift = app.sync_status == "OutOfSync" or not in_step
        states[key] = ActualState(
            application=app.name, gitops_revision=app.sync_revision, revision=revision,
            version=version, sync=app.sync_status, health=app.health, drift=drift,
            drift_since=desired.deployed_at if drift and desired is not None else None)
    return states


def _in_effect(deployments: Sequence[Deployment], later: Mapping[tuple[str, str], set[str]]
               ) -> dict[tuple[str, str], Deployment]:
    """Each key's last deployment whose GitOps commit is not among `later`'s of the key, found
    from the newest back (the state in effect is a recent one: the deployments years back are
    not looked at)."""
    keys = deployments.pairs() if isinstance(deployments, Deployments) else {
        (d.service, d.environment) for d in deployments}
    todo = {key: commits for key, commits in later.items() if key in keys}
    found: dict[tuple[str, str], Deployment] = {}
    for deployment in reversed(deployments):
        if not todo:
            break
        key = (deployment.service, deployment.environment)
        if key in todo and deployment.gitops_commit not in todo[key]:
            found[key] = deployment
            del todo[key]
    return found


def refine(records: Sequence[DeploymentRecord], view: ArgoView) -> list[DeploymentRecord]:
    """Argo CD's `deployedAt` as the time of the deployments it knows; failed syncs and
    Degraded health mark deployments failed."""
    latest: dict[tuple[str, str], DeploymentRecord] = {}
    for record in records:
        key = (record.service, record.environment)
        if key not in latest or record.time >= latest[key].time:
            latest[key] = record
    deployed_at = _first_deployed(view)
    refined = []
    for record in records:
        key = (record.service, record.environment)
        app = view.applications.get(key)
        if app is None:
            refined.append(record)
            continue
        deployed = deployed_at.get(app.name, {}).get(record.gitops_commit)
        failed = (app.sync_failed and app.operation_revision == record.gitops_commit) or (
            app.health == "Degraded" and latest[key] is record)
        time, failed_sync = deployed or record.time, record.failed_sync or failed
        refined.append(record if (time, failed_sync) == (record.time, record.failed_sync)
                       else replace(record, time=time, failed_sync=failed_sync))
    return refined


@dataclass(frozen=True)
class DeploymentTimes:
    """The time `refine` gives a deployment's record: the first `deployedAt` Argo CD has of its
    GitOps commit, else the commit's time."""

    apps: Mapping[tuple[str, str], str]  # (service, environment) -> application
    deployed_at: Mapping[str, Mapping[str, datetime]]  # application -> GitOps commit -> time

    def of(self, deployment: Deployment) -> datetime:
        app = self.apps.get((deployment.service, deployment.environment))
        return (self.deployed_at.get(app, {}).get(deployment.gitops_commit) if app else None
                ) or deployment.time

    def known(self) -> set[str]:
        """The record keys (`records.record_key`: GitOps commit, service, environment) Argo
        CD has a time of: any other deployment's time is its commit's."""
        return {f"{commit} {service} {environment}"
                for (service, environment), app in self.apps.items()
                for commit in self.deployed_at.get(app, {})}


def deployment_times(view: ArgoView | None) -> DeploymentTimes:
    """The times `refine` gives deployments' records, by Argo CD's view (None: no Argo CD)."""
    if view is None:
        return DeploymentTimes({}, {})
    return DeploymentTimes({key: app.name for key, app in view.applications.items()},
                           _first_deployed(view))


def _first_deployed(view: ArgoView) -> dict[str, dict[str, datetime]]:
    """Application -> GitOps commit -> the first time Argo CD deployed it."""
    deployed_at: dict[str, dict[str, datetime]] = {}
    for name, entries in view.history.items():
        first = deployed_at[name] = {}
        for entry in entries:
            if entry.revision not in first or entry.deployed_at < first[entry.revision]:
                first[entry.revision] = entry.deployed_at
    return deployed_at
