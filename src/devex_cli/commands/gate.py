"""`devex gate`: deployment gates; exit 1 blocks the pipeline step."""

# No `from __future__ import annotations`: typer reads these annotations at each start.

import sys
from pathlib import Path
from typing import Annotated

import typer

from devex_cli.commands.options import HELP_OPTIONS, GitOpsOption, TextFormat, TextFormatOption
from devex_cli.errors import GateBlocked

app = typer.Typer(help="Deployment gates: exit 1 blocks the pipeline step.",
                  no_args_is_help=True, context_settings=HELP_OPTIONS)


@app.command("qa-release")
def qa_release(
    ctx: typer.Context,
    service: Annotated[str | None, typer.Option(
        metavar="NAME", help="Service to check (default: $BITBUCKET_REPO_SLUG).")] = None,
    environment: Annotated[str | None, typer.Option(
        metavar="ENV", help="Environment of the release (default: gate.environment, else qa).")] = None,
    gitops: GitOpsOption = None,
    repo: Annotated[Path, typer.Option(
        metavar="PATH", help="The service's app repository (default: the current folder).")] = Path(),
    head: Annotated[str | None, typer.Option(
        metavar="REV", help="Commit being deployed (default: $BITBUCKET_COMMIT, else HEAD).")] = None,
    project: Annotated[list[str] | None, typer.Option(
        metavar="KEY", help="Only tickets of this Jira project (repeatable).")] = None,
    ticket_pattern: Annotated[str | None, typer.Option(
        metavar="REGEX", help="Regular expression of ticket keys.")] = None,
    output_format: TextFormatOption = TextFormat.TEXT,
    fail_open: Annotated[bool, typer.Option(
        help="Allow (exit 0, loudly) when Jira cannot be reached.")] = False,
) -> None:
    """Block a QA deployment when tickets since the QA release have no Release Version.

    Exit 0: allowed. Exit 1: blocked. Exit 2: bad input. Exit 3: Jira or git unreachable.
    """
    import logging

    from devex_cli.gates import messages
    from devex_cli.gates import qa_release as gate
    from devex_cli.pipeline_context import PipelineContext

    settings = ctx.obj.settings()
    pipeline = PipelineContext.from_environment(settings.environ)
    options = gate.GateOptions(
        service=service,  # else $BITBUCKET_REPO_SLUG, by the gate
        environment=environment or settings.gate.environment,
        gitops=gitops,
        repo=repo,
        head=head or pipeline.commit or "HEAD",
        projects=tuple(project or ()),
        ticket_pattern=ticket_pattern,
        fail_open=fail_open,
    )
    report = gate.run(options, settings)
    for warning in report.warnings:
        logging.getLogger("devex").warning("%s", warning)
    if output_format is TextFormat.JSON:
        sys.stdout.write(messages.render_gate_json(report) + "\n")
    else:
        sys.stdout.write(messages.render_text(report))
    if report.blocked:
        raise GateBlocked(f"{len(report.missing_fix_version)} ticket(s) without a fix version, "
                          f"{len(report.not_found)} not found in Jira")
