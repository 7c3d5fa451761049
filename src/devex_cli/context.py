"""The pipeline context: Bitbucket Pipelines' variables, read as defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


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
    def in_pipeline(self) -> bool:
        return self.build_number is not None

    @property
    def build_url(self) -> str | None:
        """The pipeline's page, when the workspace, repository and build number are known."""
        if self.git_http_origin and self.build_number:
            return f"{self.git_http_origin.rstrip('/')}/pipelines/results/{self.build_number}"
        return None
