"""Records the DORA computation reads, and the snapshot it produces. Plain frozen values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from devex_cli.dora.stats import Summary


@dataclass(frozen=True, slots=True)
class Change:
    """An application commit, as far as the figures need it."""

    sha: str
    author_time: datetime
    tickets: tuple[str, ...] = ()
    merge: bool = False  # merges carry tickets but are not changes of their own


@dataclass(frozen=True, slots=True)
class DeploymentRecord:
    """A deployment read from the GitOps history, refined by the other sources."""

    service: str
    environment: str
    revision: str | None
    version: str
    time: datetime
    gitops_commit: str
    change_set: tuple[Change, ...] | None = None  # None: unknown (first deployment, no app repo)
    # The app repository's word: whether its revision is a proper ancestor of the one it
    # replaced. None where ancestry cannot tell (no app repository, a version on either side, a
    # revision it does not have): the GitOps history decides (dora.rollbacks).
    ancestry_rollback: bool | None = None
    failed_sync: bool = False  # Argo CD: the sync failed or health went Degraded


@dataclass(frozen=True)
class RedeploymentRecord:
    """A new tag naming the commit already deployed (a rebuild): not a deployment, counted
    apart."""

    service: str
    environment: str
    time: datetime


@dataclass(frozen=True)
class Incident:
    """An incident ticket for a service (from Jira's incident JQL)."""

    key: str
    service: str
    time: datetime


@dataclass(frozen=True)
class TicketInfo:
    key: str
    status: str
    fix_versions: tuple[str, ...]
    summary: str = ""
    sprint: str | None = None


@dataclass(frozen=True)
class ActualState:
    """What Argo CD runs of a service in an environment, beside what the GitOps repo asks for."""

    application: str
    gitops_revision: str | None
    revision: str | None
    version: str | None
    sync: str
    health: str
    drift: bool
    drift_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class ReportedDeployment:
    """A deployment as the figures report it (JSON `deployments`): its change set's commits and
    tickets, and whether it failed, rolled back or skipped the stages before production. The
    GitOps reader's own record of it is `gitops_reader.Deployment`."""

    service: str
    environment: str
    revision: str | None
    version: str
    time: datetime
    gitops_commit: str
    commits: tuple[str, ...] | None
    tickets: tuple[str, ...]
    failed: bool
    rollback: bool
    hotfix: bool = False  # reached production without passing the environments before it


@dataclass(frozen=True)
class EnvironmentFigures:
    environment: str
    revision: str | None
    version: str | None
    last_deployed_at: datetime | None
    deployments: int
    deployment_frequency_per_day: float | None  # None: the history covers none of the window
    lead_time: Summary
    change_failure_rate: float | None
    failed: int
    rollbacks: int
    recovery_time: Summary
    hotfixes: int = 0
    redeployments: int = 0  # rebuilds of the deployed commit in the window


@dataclass(frozen=True)
class PromotionWait:
    """Time commits waited between their first deployment to one stage and to the next."""

    from_environment: str
    to_environment: str
    wait: Summary


@dataclass(frozen=True)
class ServiceFigures:
    service: str
    environments: tuple[EnvironmentFigures, ...]
    tier: str | None
    promotion_waits: tuple[PromotionWait, ...]
    bottleneck: PromotionWait | None

    def environment(self, name: str) -> EnvironmentFigures | None:
        return next((e for e in self.environments if e.environment == name), None)


@dataclass(frozen=True)
class WindowFigures:
    name: str
    start: datetime
    end: datetime
    services: tuple[ServiceFigures, ...]
    promotion_waits: tuple[PromotionWait, ...]  # all services together
    bottleneck: PromotionWait | None

    def service(self, name: str) -> ServiceFigures | None:
        return next((s for s in self.services if s.service == name), None)


@dataclass(frozen=True, slots=True)
class TicketInEnvironment:
    ticket: str
    service: str
    environment: str
    fix_versions: tuple[str, ...] | None  # None: Jira was not asked
    status: str | None = None
    sprint: str | None = None


@dataclass(frozen=True)
class Skipped:
    """A manifest not read: the path, the commit, and why (it does not parse; it sets images but
    belongs to no environment)."""

    path: str
    commit: str
    reason: str


# The failure signals a service's figures can rest on (data_quality.failure_signals).
FAILURE_SIGNALS = ("gitops", "ancestry", "argocd", "incidents")


@dataclass(frozen=True)
class DataQuality:
    manifests_skipped: tuple[Skipped, ...] = ()
    revisions_not_found: tuple[tuple[str, str], ...] = ()  # (service, revision)
    deployments_without_change_set: int = 0
    # service -> the FAILURE_SIGNALS its failures were read from (empty: not said)
    failure_signals: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    generated_at: datetime
    environments: tuple[str, ...]
    production: str | None
    deployments: tuple[ReportedDeployment, ...]  # those in the window, oldest first
    window: WindowFigures
    windows: Mapping[str, WindowFigures]
    monthly: Mapping[tuple[str, str, str], int]  # (service, environment, YYYY-MM) -> deployments
    tickets_in_environment: tuple[TicketInEnvironment, ...]
    data_quality: DataQuality = field(default_factory=DataQuality)
    sources: Mapping[str, bool] = field(default_factory=dict)  # source -> up
    actual: Mapping[tuple[str, str], ActualState] = field(default_factory=dict)
    qa_release: str | None = None  # the environment of "the QA release"; None: there is none
