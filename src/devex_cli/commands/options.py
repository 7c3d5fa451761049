"""What several commands share, declared once: the global options they read, their common
flags, the output formats each offers, and the deployment states.

No `from __future__ import annotations`: typer reads these annotations at each start.
"""

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from devex_cli.deployment_status import DEPLOYMENT_STATUSES
from devex_cli.errors import UsageError

if TYPE_CHECKING:
    from devex_cli.config import Settings


HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}


@dataclass
class Globals:
    """The options given before the command (`devex --config F -q collect`)."""

    config: Path | None
    verbose: bool
    quiet: bool
    no_color: bool
    _settings: "Settings | None" = None

    def settings(self) -> "Settings":
        """devex.toml and the environment, read once per command."""
        if self._settings is None:
            from devex_cli.config import load_settings

            self._settings = load_settings(self.config)
        return self._settings


def _one_of(values: tuple[str, ...]) -> str:
    """`a, b or c`, as the usage errors name the values allowed."""
    return ", ".join(values[:-1]) + f" or {values[-1]}" if len(values) > 1 else values[0]


class TextFormat(StrEnum):
    """The gate's outputs."""

    TEXT = "text"
    JSON = "json"


class TableFormat(StrEnum):
    """The outputs of `status` and `explain`."""

    TABLE = "table"
    JSON = "json"


class SnapshotFormat(StrEnum):
    """The views of one snapshot (`collect`, `demo`)."""

    TABLE = "table"
    JSON = "json"
    PROMETHEUS = "prometheus"


def _format_option(formats: type[StrEnum]) -> Any:
    """`--format` taking one of `formats`, else a usage error naming them (one rule for every
    command)."""
    names = tuple(f.value for f in formats)

    def parse(value: str) -> StrEnum:  # also given the default, a member
        try:
            return formats(value)
        except ValueError:
            raise UsageError(f"--format must be {_one_of(names)}, not {value!r}") from None

    return typer.Option("--format", metavar="|".join(names), help="Output format.",
                        parser=parse)


TextFormatOption = Annotated[TextFormat, _format_option(TextFormat)]
TableFormatOption = Annotated[TableFormat, _format_option(TableFormat)]
SnapshotFormatOption = Annotated[SnapshotFormat, _format_option(SnapshotFormat)]


def check_status(status: str | None) -> str:
    """`--status` is one of the deployment states, else a usage error naming them. (Checked in
    the command, after what it needs first, such as the service.)"""
    if status not in DEPLOYMENT_STATUSES:
        raise UsageError(f"--status must be {_one_of(DEPLOYMENT_STATUSES)}, not {status!r}")
    return status


STATUS_METAVAR = "|".join(DEPLOYMENT_STATUSES)

# Options several commands share (typer needs each on every command it follows).
GitOpsOption = Annotated[str | None, typer.Option(
    metavar="PATH|URL", help="GitOps repository: a path or a git URL (default: $DEVEX_GITOPS_REPO).")]
SinceOption = Annotated[str, typer.Option(
    metavar="90d|DATE", help="Start of the window: a duration back from now or a date.")]
UntilOption = Annotated[str | None, typer.Option(
    metavar="DATE", help="End of the window (default: now).")]
OfflineOption = Annotated[bool, typer.Option(help="Use git alone (no Argo CD, Jira).")]
ListenOption = Annotated[str, typer.Option(metavar="HOST:PORT", help="Where --serve listens.")]
EnvironmentOption = Annotated[str, typer.Option(metavar="ENV", help="The environment.")]
ServiceOption = Annotated[str | None, typer.Option(
    metavar="NAME", help="Service (default: $BITBUCKET_REPO_SLUG).")]
VersionOption = Annotated[str | None, typer.Option(
    metavar="TAG", help="Version deployed (default: the commit's short SHA).")]
VeracodeOption = Annotated[Path | None, typer.Option(
    metavar="FILE", help="Veracode Pipeline Scan results.json.")]
ScaOption = Annotated[Path | None, typer.Option(
    metavar="FILE", help="SourceClear / Veracode SCA JSON (srcclr scan --json).")]
