"""The pipeline context: Bitbucket Pipelines' variables, read as defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class PipelineContext:
    commit: str | None = None
    branch: str | None = None
    tag: str | None = None
    pr_id: str | None = None
    pr_destination_branch: str | None = None
    repo_slug: str | None = None
    workspace: str | None = None
    build_number: str | None = None
    deployment_environment: str | None = None
    git_http_origin: str | None = None
    exit_code: str | None = None
    pipeline_uuid: str | None = None
    step_triggerer_uuid: str | None = None
    clone_dir: str | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> PipelineContext:
        """Read BITBUCKET_* variables; empty values count as unset."""

        def get(name: str) -> str | None:
            return environ.get(f"BITBUCKET_{name}") or None

        return cls(
            commit=get("COMMIT"), branch=get("BRANCH"), tag=get("TAG"), pr_id=get("PR_ID"),
            pr_destination_branch=get("PR_DESTINATION_BRANCH"), repo_slug=get("REPO_SLUG"),
            workspace=get("WORKSPACE"), build_number=get("BUILD_NUMBER"),
            deployment_environment=get("DEPLOYMENT_ENVIRONMENT"),
            git_http_origin=get("GIT_HTTP_ORIGIN"), exit_code=get("EXIT_CODE"),
            pipeline_uuid=get("PIPELINE_UUID"), step_triggerer_uuid=get("STEP_TRIGGERER_UUID"),
            clone_dir=get("CLONE_DIR"),
        )

    @property
    def build_url(self) -> str | None:
        """The pipeline's page, when the workspace, repository and build number are known."""
        if self.git_http_origin and self.build_number:
            return f"{self.git_http_origin.rstrip('/')}/pipelines/results/{self.build_number}"
        return None


@dataclass(frozen=True)
class LocalCommit:
    """The checked-out commit of a local repository."""

    sha: str
    branch: str | None
    author: str
    subject: str


def local_commit(repo: Path) -> LocalCommit | None:
    """HEAD of the repository at `repo`, or None outside a git repository."""
    from devex_cli.gitcli import GitFailed, git

    try:
        out = git(repo, "log", "-1", "--format=%H%x00%an%x00%s", "HEAD")
    except GitFailed:
        return None
    sha, author, subject = [*out.strip().split("\x00"), "", ""][:3]
    try:
        branch: str | None = git(repo, "symbolic-ref", "--short", "-q", "HEAD").strip() or None
    except GitFailed:
        branch = None  # detached, as Bitbucket Pipelines check out
    return LocalCommit(sha, branch, author, subject)


def pipeline_context(environ: Mapping[str, str], repo: Path) -> tuple[PipelineContext,
                                                                       LocalCommit | None]:
    """Bitbucket's variables, with the local repository filling what they leave out."""
    context = PipelineContext.from_environment(environ)
    local = local_commit(repo)
    if local is not None:
        context = replace(context, commit=context.commit or local.sha,
                          branch=context.branch or local.branch)
    return context, local


def deployed_version(given: str | None, pipeline: PipelineContext) -> str:
    """--version, else the commit's short SHA, else `unknown`."""
    return given or (pipeline.commit or "")[:7] or "unknown"


def service_name(given: str | None, environ: Mapping[str, str]) -> str:
    """--service, else $BITBUCKET_REPO_SLUG. Raises UsageError without either."""
    name = given or environ.get("BITBUCKET_REPO_SLUG")
    if not name:
        from devex_cli.errors import UsageError

        raise UsageError("no service given",
                         hint="pass --service NAME (defaults to $BITBUCKET_REPO_SLUG)")
    return name
