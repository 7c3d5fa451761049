"""The `devex` command: thin commands that parse, call the core, render and exit.

Imports of heavy modules (httpx, yaml, jinja2, rich) happen inside the commands so that
`devex --help` starts fast. Errors are mapped to exit codes and one-line messages in `main` only.
"""

# No `from __future__ import annotations` here: typer would have to eval every annotation
# string of every command at each start (about 80 ms); real annotations cost nothing.

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from devex_cli import __version__
from devex_cli.errors import DevexError, GateBlocked

if TYPE_CHECKING:
    from datetime import datetime

    from devex_cli.collect import CollectOptions
    from devex_cli.config import Settings

_HELP = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    name="devex",
    help="Delivery truth: DORA metrics, pipeline feedback and deployment gates.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings=_HELP,
)
gate_app = typer.Typer(help="Deployment gates: exit 1 blocks the pipeline step.",
                       no_args_is_help=True, context_settings=_HELP)
app.add_typer(gate_app, name="gate")


# Options several commands share, declared once (typer needs each on every command it follows).
GitOpsOption = Annotated[str | None, typer.Option(
    metavar="PATH|URL", help="GitOps repository: a path or a git URL (default: $DEVEX_GITOPS_REPO).")]
SinceOption = Annotated[str, typer.Option(
    metavar="90d|DATE", help="Start of the window: a duration back from now or a date.")]
UntilOption = Annotated[str | None, typer.Option(
    metavar="DATE", help="End of the window (default: now).")]
OfflineOption = Annotated[bool, typer.Option(help="Use git alone (no Argo CD, Jira).")]


@dataclass
class Globals:
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


def _version(value: bool) -> None:
    if value:
        typer.echo(f"devex {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option(
        "--config", metavar="FILE", help="devex.toml to read (default: $DEVEX_CONFIG, else the nearest one).",
        dir_okay=False)] = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose",
                                          help="More detail on stderr.")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Errors only on stderr.")] = False,
    no_color: Annotated[bool, typer.Option("--no-color", help="No colours.")] = False,
    version: Annotated[bool, typer.Option("-V", "--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """devex: DORA metrics, pipeline feedback and deployment gates."""
    ctx.obj = Globals(config, verbose, quiet, no_color or bool(os.environ.get("NO_COLOR")))
    _setup_logging(verbose=verbose, quiet=quiet)


def _setup_logging(*, verbose: bool, quiet: bool) -> None:
    import logging

    from devex_cli.masking import MaskingFilter
    from devex_cli.textsafe import safe

    class LevelFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:  # warnings quote outside values
            return f"devex: {record.levelname.lower()}: {safe(record.getMessage())}"

    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(MaskingFilter())
    handler.setFormatter(LevelFormatter())
    root = logging.getLogger("devex")
    root.handlers[:] = [handler]
    root.propagate = False
    root.setLevel(logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING)


@gate_app.command("qa-release")
def gate_qa_release(
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
    output_format: Annotated[str, typer.Option(
        "--format", metavar="text|json", help="Output format.")] = "text",
    fail_open: Annotated[bool, typer.Option(
        help="Allow (exit 0, loudly) when Jira cannot be reached.")] = False,
) -> None:
    """Block a QA deployment when tickets since the QA release have no Release Version.

    Exit 0: allowed. Exit 1: blocked. Exit 2: bad input. Exit 3: Jira or git unreachable.
    """
    import logging

    from devex_cli.context import PipelineContext
    from devex_cli.gates import messages, qa_release

    _check_format(output_format, "text", "json")
    settings = ctx.obj.settings()
    pipeline = PipelineContext.from_environment(settings.environ)
    options = qa_release.GateOptions(
        service=service or pipeline.repo_slug,
        environment=environment or settings.gate.environment,
        gitops=gitops,
        repo=repo,
        head=head or pipeline.commit or "HEAD",
        projects=tuple(project or ()),
        ticket_pattern=ticket_pattern,
        fail_open=fail_open,
    )
    report = qa_release.run(options, settings)
    for warning in report.warnings:
        logging.getLogger("devex").warning("%s", warning)
    if output_format == "json":
        sys.stdout.write(messages.render_json(report) + "\n")
    else:
        sys.stdout.write(messages.render_text(report))
    if report.blocked:
        raise GateBlocked(f"{len(report.missing_fix_version)} ticket(s) without a fix version, "
                          f"{len(report.not_found)} not found in Jira")


@app.command("status")
def status(
    ctx: typer.Context,
    gitops: Annotated[str | None, typer.Option(
        metavar="PATH|URL",
        help="GitOps repository: a path or a git URL (default: $DEVEX_GITOPS_REPO, "
             "else the current folder).")] = None,
    environment: Annotated[list[str] | None, typer.Option(
        metavar="ENV", help="Only this environment (repeatable).")] = None,
    output_format: Annotated[str, typer.Option(
        "--format", metavar="table|json", help="Output format.")] = "table",
    offline: Annotated[bool, typer.Option(
        help="Read the GitOps repository alone (no Argo CD).")] = False,
) -> None:
    """What is deployed where now: service x environment, revision or version and its age."""
    from datetime import UTC, datetime

    from devex_cli import status as status_view
    from devex_cli.sources import gitops as gitops_source

    _check_format(output_format, "table", "json")
    settings = ctx.obj.settings()
    from devex_cli.sources.commitgraph import local_commit_checker

    repo = gitops_source.open_repository(gitops, settings, default_here=True)
    checker = local_commit_checker({name: s.repo for name, s in settings.services.items()
                                    if s.repo})
    history = gitops_source.read_history(repo, settings, has_commit=checker)
    history.require_services()
    history.require_environments(environment or ())
    actual = None
    if not offline and settings.environ.get("ARGOCD_SERVER"):
        from devex_cli.collect import read_argocd
        from devex_cli.correlate import actual_states
        from devex_cli.sources.base import SourceHealth

        view = read_argocd(settings, history, SourceHealth())
        if view is not None:
            actual = actual_states(history, view, lambda synced: gitops_source.commits_after(
                repo, synced, history.head))
    report = status_view.build_status(history, environments=environment or (), actual=actual)
    if output_format == "json":
        sys.stdout.write(status_view.render_json(report) + "\n")
    else:
        status_view.render_table(report, now=datetime.now(UTC), color=not ctx.obj.no_color)


@app.command("collect")
def collect_command(
    ctx: typer.Context,
    gitops: GitOpsOption = None,
    since: SinceOption = "30d",
    until: UntilOption = None,
    offline: OfflineOption = False,
    output: Annotated[str, typer.Option(
        metavar="FILE|-", help="Where --format json|prometheus goes.")] = "-",
    output_format: Annotated[str, typer.Option(
        "--format", metavar="table|json|prometheus", help="Output format.")] = "table",
    serve_metrics: Annotated[bool, typer.Option(
        "--serve", help="Run an exporter: /metrics and /healthz, re-collecting.")] = False,
    listen: Annotated[str, typer.Option(
        metavar="HOST:PORT", help="Where --serve listens.")] = "127.0.0.1:9464",
    interval: Annotated[str, typer.Option(
        metavar="5m", help="How often --serve collects.")] = "5m",
) -> None:
    """The DORA collector: deployments, lead time, failures, recovery, tickets and bottlenecks."""

    _check_format(output_format, "table", "json", "prometheus")
    _run_collect(ctx.obj, gitops=gitops, since=since, until=until, offline=offline, output=output,
                 output_format=output_format, serve_metrics=serve_metrics, listen=listen,
                 interval=interval)


def _run_collect(options: Globals, *, gitops: str | None, since: str, until: str | None,
                 offline: bool, output: str, output_format: str, serve_metrics: bool,
                 listen: str, interval: str, config: Path | None = None,
                 environ: Mapping[str, str] | None = None, announce: str = "") -> None:
    """`collect`, also for the demo: its `config` and `environ` (instead of the command's), and
    `announce`, said on stderr once --serve is up."""
    from datetime import UTC, datetime

    from devex_cli.collect import collect
    from devex_cli.config import load_settings
    from devex_cli.timeutil import parse_duration

    settings = load_settings(config, environ=environ) if config else options.settings()
    every = parse_duration(interval, option="--interval").total_seconds()
    host, port = _listen_address(listen)

    def once(step: Callable[[str], None] = lambda text: None) -> object:
        now = datetime.now(UTC)
        return collect(settings, _collect_options(gitops, since, until, offline, now), now=now,
                       step=step)

    if serve_metrics:
        from devex_cli.metrics.exporter import Exporter, ExporterServer, serve
        from devex_cli.sources.gitops import NothingFound

        exporter = Exporter(once, interval=every)  # type: ignore[arg-type]

        def ready(url: str) -> None:
            sys.stderr.write(f"devex: serving {url}/metrics and {url}/healthz, "
                             f"collecting every {interval}\n{announce}")
            sys.stderr.flush()

        # Listening first: a port in use is told before a long first collection.
        with ExporterServer(exporter, host, port) as server:
            exporter.collect()  # the first collection in the foreground: bad input fails fast
            failure = exporter.last_failure
            if exporter.snapshot is None and failure is not None and not isinstance(
                    failure, NothingFound):
                raise failure  # what made it fail, not a second collection to find out
            # (a repository with nothing to read yet is served: /healthz says why, 503)
            serve(server, ready=ready)
        return
    from devex_cli.progress import progress

    with progress(quiet=options.quiet) as step:
        snapshot = once(step)
    _write_snapshot(snapshot, output_format, output, color=not options.no_color)


def _collect_options(gitops: str | None, since: str, until: str | None, offline: bool,
                     now: "datetime") -> "CollectOptions":
    """The window and sources of `collect` (and `explain`) from their options."""
    from devex_cli.collect import CollectOptions
    from devex_cli.errors import UsageError
    from devex_cli.timeutil import parse_moment

    end = parse_moment(until, option="--until", now=now) if until else now
    start = parse_moment(since, option="--since", now=end)
    if start >= end:
        raise UsageError(f"--since {since} is not before --until {until or 'now'}")
    return CollectOptions(gitops, start, end, offline)


@app.command("explain")
def explain_command(
    ctx: typer.Context,
    figure: Annotated[str, typer.Argument(
        metavar="deployments|lead-time|change-failure-rate|recovery-time|bottleneck|tickets",
        help="The figure to explain.", show_default=False)],
    service: Annotated[str | None, typer.Option(
        metavar="NAME", help="The service (bottleneck without it: every service together, "
                             "the tables' 'all' row).")] = None,
    environment: Annotated[str | None, typer.Option(
        metavar="ENV", help="The environment (default: production; bottleneck: every stage; "
                            "tickets: the QA release).")] = None,
    gitops: GitOpsOption = None,
    since: SinceOption = "30d",
    until: UntilOption = None,
    offline: OfflineOption = False,
    output_format: Annotated[str, typer.Option(
        "--format", metavar="table|json", help="Output format.")] = "table",
) -> None:
    """The deployments, commits and arithmetic behind one figure of `devex collect`."""
    import json
    from datetime import UTC, datetime

    from devex_cli import explain
    from devex_cli.collect import collect_inputs
    from devex_cli.errors import UsageError
    from devex_cli.progress import progress

    _check_format(output_format, "table", "json")
    if figure not in explain.FIGURES:
        raise UsageError(f"unknown figure {figure!r}: explain one of "
                         f"{', '.join(explain.FIGURES)}")
    if service is None and figure != "bottleneck":
        raise UsageError(f"explain {figure} needs --service NAME",
                         hint="only the bottleneck has an every-service figure ('all')")
    settings = ctx.obj.settings()
    now = datetime.now(UTC)
    options = _collect_options(gitops, since, until, offline, now)
    with progress(quiet=ctx.obj.quiet) as step:
        collected = collect_inputs(settings, options, now=now, step=step)
    explained = explain.explain(settings, collected,
                                explain.Request(figure, service, environment), gitops=gitops)
    if output_format == "json":
        sys.stdout.write(json.dumps(explained, indent=2) + "\n")
    else:
        explain.render_table(explained, color=not ctx.obj.no_color)


def _write_snapshot(snapshot: object, output_format: str, output: str, *, color: bool) -> None:
    from devex_cli.dora.model import Snapshot

    assert isinstance(snapshot, Snapshot)
    if output_format == "table":
        import io

        from devex_cli.snapshot_views import render_tables

        if output == "-":
            render_tables(snapshot, color=color)
            return
        buffer = io.StringIO()
        render_tables(snapshot, color=False, file=buffer)  # a file gets plain text
        text = buffer.getvalue()
    elif output_format == "json":
        from devex_cli.snapshot_views import render_json

        text = render_json(snapshot, pretty=output == "-" and sys.stdout.isatty()) + "\n"
    else:
        from devex_cli.metrics.exposition import render

        text = render(snapshot)
    if output == "-":
        sys.stdout.write(text)
    else:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            from devex_cli.errors import UsageError

            raise UsageError(f"cannot write {output}: {exc.strerror}") from None


def _listen_address(listen: str) -> tuple[str, int]:
    from devex_cli.errors import UsageError

    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise UsageError(f"--listen {listen!r} is not HOST:PORT", hint="e.g. 0.0.0.0:9464")
    return host.strip("[]"), int(port)


@app.command("demo")
def demo(
    ctx: typer.Context,
    serve_metrics: Annotated[bool, typer.Option(
        "--serve", help="Keep the exporter (for a local Prometheus/Grafana) and the demo's "
                        "Jira (for the QA release gate) up until stopped.")] = False,
    listen: Annotated[str, typer.Option(
        metavar="HOST:PORT", help="Where --serve listens.")] = "127.0.0.1:9464",
    keep: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Build the sample organisation here and keep it.")] = None,
    output_format: Annotated[str, typer.Option(
        "--format", metavar="table|json|prometheus", help="Output format.")] = "table",
) -> None:
    """A sample organisation (4 services, 4 environments, 90 days) and the four answers."""
    import shutil
    import tempfile

    from devex_cli import demo as sample
    from devex_cli.demo_jira import DemoJira
    from devex_cli.interrupt import sigterm_as_interrupt

    _check_format(output_format, "table", "json", "prometheus")
    if keep is not None:
        sample.prepare_kept_folder(keep)
    program = _program()
    # SIGTERM unwinds as Ctrl-C does, so that the temporary folder goes however the demo stops.
    with sigterm_as_interrupt():
        root = keep or Path(tempfile.mkdtemp(prefix="devex-demo-"))
        jira_env: Path | None = None
        try:
            config = sample.build_demo(root / "org" if keep is None else root,
                                       work_in_progress=True)
            folder = config.parent
            # Its own Jira, for this command only: the variables go to its collection alone.
            with DemoJira(folder / sample.ISSUES_FILE) as jira:
                environ = sample.demo_environment(os.environ, jira.environ(), folder)
                if output_format == "table":
                    where = (f"in {folder}" if keep is not None else
                             "in a temporary folder, removed at the end (--keep DIR keeps it)")
                    sys.stdout.write(sample.paragraph(
                        f"Sample organisation {where}: a GitOps repository, four app repositories "
                        "and their Jira tickets, collected with the demo's own Jira on 127.0.0.1 "
                        "(no Argo CD, no Bitbucket).") + "\n\n")
                    sys.stdout.flush()
                announce = ""
                if serve_metrics:
                    jira_env = sample.write_jira_env(folder, jira.environ())
                    announce = sample.serving_note(folder, program, jira.url)
                _run_collect(ctx.obj, gitops=None, since="30d", until=None, offline=False,
                             output="-", output_format=output_format,
                             serve_metrics=serve_metrics, listen=listen, interval="5m",
                             config=config, environ=environ, announce=announce)
            if output_format == "table" and not serve_metrics:
                sys.stdout.write(sample.gate_note(folder, program, kept=keep is not None))
                sys.stdout.write(sample.explain_note(folder, program, kept=keep is not None))
        finally:
            if jira_env is not None:
                jira_env.unlink(missing_ok=True)  # its Jira is gone
            if keep is None:
                shutil.rmtree(root, ignore_errors=True)


def _program() -> str:
    """How this devex was started, for a command line it prints: `devex` when that is the one
    on PATH, else its path, else `python -m devex_cli`."""
    import shlex
    import shutil

    started = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if started is not None and started.name == "devex":
        found = shutil.which("devex")
        if found and Path(found).resolve() == started.resolve():
            return "devex"
        return shlex.quote(str(started.absolute()))
    return f"{shlex.quote(sys.executable)} -m devex_cli"


report_app = typer.Typer(help="Pipeline events as Teams Adaptive Cards.", no_args_is_help=True)
app.add_typer(report_app, name="report")

_CHANNEL = typer.Option(metavar="NAME", help="Send to this channel instead of the routing "
                        "(repeatable; webhook from TEAMS_WEBHOOK_<NAME>).")
_TEMPLATE = typer.Option(metavar="FILE", help="Render this Jinja template instead of the "
                         "event's own.")
_DRY_RUN = typer.Option(help="Post nothing; print [{channel, payload}] as JSON.")
_STRICT = typer.Option(help="Exit non-zero when the card cannot be built or posted (default: "
                       "warn and exit 0).")


@report_app.command("deployment")
def report_deployment(
    ctx: typer.Context,
    environment: Annotated[str, typer.Option(metavar="ENV", help="The environment.")],
    status: Annotated[str, typer.Option(metavar="started|succeeded|failed",
                                        help="Where the deployment is.")],
    service: Annotated[str | None, typer.Option(
        metavar="NAME", help="Service (default: $BITBUCKET_REPO_SLUG).")] = None,
    version: Annotated[str | None, typer.Option(
        metavar="TAG", help="Version deployed (default: the commit's short SHA).")] = None,
    url: Annotated[str | None, typer.Option(metavar="URL",
                                            help="Where the deployed service answers.")] = None,
    duration: Annotated[str | None, typer.Option(
        metavar="5m", help="How long the deployment took, when known.")] = None,
    at: Annotated[str | None, typer.Option(
        metavar="TIME", help="When it happened (RFC 3339; default: now).")] = None,
    channel: Annotated[list[str] | None, _CHANNEL] = None,
    template: Annotated[Path | None, _TEMPLATE] = None,
    dry_run: Annotated[bool, _DRY_RUN] = False,
    strict: Annotated[bool, _STRICT] = False,
) -> None:
    """A deployment started, succeeded or failed: routed to deployments (and qa), or pr."""
    from devex_cli.notify import send

    _check_status(status)
    send.deployment(ctx.obj.settings(), environment=environment, status=status, service=service,
                    version=version, url=url, duration=duration, at=at,
                    channels=channel or [], template=template, dry_run=dry_run, strict=strict,
                    offline=False)


@report_app.command("tests")
def report_tests(
    ctx: typer.Context,
    junit: Annotated[list[Path], typer.Option(metavar="FILE",
                                              help="JUnit XML file (repeatable).")],
    title: Annotated[str | None, typer.Option(metavar="TEXT", help="Card title.")] = None,
    channel: Annotated[list[str] | None, _CHANNEL] = None,
    template: Annotated[Path | None, _TEMPLATE] = None,
    dry_run: Annotated[bool, _DRY_RUN] = False,
    strict: Annotated[bool, _STRICT] = False,
) -> None:
    """Test results from JUnit XML (pytest, jest-junit, Maven Surefire)."""
    from devex_cli.notify import send

    send.tests(ctx.obj.settings(), junit=junit, title=title, channels=channel or [],
               template=template, dry_run=dry_run, strict=strict)


@report_app.command("security")
def report_security(
    ctx: typer.Context,
    veracode: Annotated[Path | None, typer.Option(
        metavar="FILE", help="Veracode Pipeline Scan results.json.")] = None,
    sca: Annotated[Path | None, typer.Option(
        metavar="FILE", help="SourceClear / Veracode SCA JSON (srcclr scan --json).")] = None,
    channel: Annotated[list[str] | None, _CHANNEL] = None,
    template: Annotated[Path | None, _TEMPLATE] = None,
    dry_run: Annotated[bool, _DRY_RUN] = False,
    strict: Annotated[bool, _STRICT] = False,
) -> None:
    """Security scan results, routed to security."""
    from devex_cli.notify import send

    send.security(ctx.obj.settings(), veracode=veracode, sca=sca, channels=channel or [],
                  template=template, dry_run=dry_run, strict=strict)


push_app = typer.Typer(help="Pipeline metrics to a Prometheus Pushgateway.",
                       invoke_without_command=True)
app.add_typer(push_app, name="push-metrics")

_GATEWAY = typer.Option(metavar="URL", help="Pushgateway (default: $PUSHGATEWAY_URL).")
_JOB = typer.Option(metavar="NAME", help="The job of the grouping key.")
_GROUPING = typer.Option(metavar="KEY=VALUE", help="More grouping labels (repeatable; keep "
                         "them bounded: never a build number or a commit).")
_REPLACE = typer.Option(help="PUT: replace the whole group (default POST replaces only the "
                        "metrics of the same names).")
_DELETE = typer.Option(help="DELETE the group.")


@dataclass
class _PushOptions:
    gateway: str | None
    job: str
    grouping: list[str]
    replace: bool
    delete: bool

    def merged(self, gateway: str | None, job: str | None, grouping: list[str] | None,
               replace: bool, delete: bool) -> "_PushOptions":
        return _PushOptions(gateway or self.gateway, job or self.job,
                            [*self.grouping, *(grouping or [])], replace or self.replace,
                            delete or self.delete)


@push_app.callback()
def push_metrics(
    ctx: typer.Context,
    from_file: Annotated[Path | None, typer.Option(
        "--from", metavar="FILE", help="Push a Prometheus text file, e.g. from devex collect.",
        dir_okay=False)] = None,
    gateway: Annotated[str | None, _GATEWAY] = None,
    job: Annotated[str, _JOB] = "devex",
    grouping: Annotated[list[str] | None, _GROUPING] = None,
    replace: Annotated[bool, _REPLACE] = False,
    delete: Annotated[bool, _DELETE] = False,
) -> None:
    """Push deployment, test or security metrics, or a Prometheus text file (--from)."""
    options = _PushOptions(gateway, job, list(grouping or []), replace, delete)
    ctx.meta["push"] = options
    if ctx.invoked_subcommand is not None:
        return
    from devex_cli.errors import InputError, UsageError
    from devex_cli.metrics import pushgateway

    if from_file is None and not delete:
        raise UsageError("nothing to push",
                         hint="name an event (deployment, tests, security) or pass --from FILE")
    families: Sequence[object] = []
    if from_file is not None:
        try:
            text = from_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read {from_file}: {exc}") from None
        families = pushgateway.read_exposition(str(from_file), text)
    _push(ctx.obj, options, families, grouping={})


def _push(options: Globals, push: _PushOptions, families: Sequence[object],
          grouping: dict[str, str]) -> None:
    from devex_cli.errors import UsageError
    from devex_cli.metrics import pushgateway

    settings = options.settings()
    if push.replace and push.delete:
        raise UsageError("--replace and --delete do not go together")
    url = pushgateway.gateway_url(settings, push.gateway)
    key = {**{k: v for k, v in grouping.items() if v}, **pushgateway.parse_grouping(push.grouping)}
    method = "DELETE" if push.delete else "PUT" if push.replace else "POST"
    where = pushgateway.push(settings, url, job=push.job, grouping=key,
                             families=families, method=method)  # type: ignore[arg-type]
    if not options.quiet:
        labels = ",".join(f"{k}={v}" for k, v in sorted(key.items()))
        sys.stderr.write(f"devex: {method} {len(families)} metric famil"
                         f"{'y' if len(families) == 1 else 'ies'} to {where} "
                         f"(job={push.job}{',' + labels if labels else ''})\n")


@push_app.command("deployment")
def push_deployment(
    ctx: typer.Context,
    environment: Annotated[str, typer.Option(metavar="ENV", help="The environment.")],
    status: Annotated[str | None, typer.Option(
        metavar="started|succeeded|failed",
        help="Where the deployment is (not needed with --delete).")] = None,
    service: Annotated[str | None, typer.Option(
        metavar="NAME", help="Service (default: $BITBUCKET_REPO_SLUG).")] = None,
    version: Annotated[str | None, typer.Option(
        metavar="TAG", help="Version deployed (default: the commit's short SHA).")] = None,
    duration: Annotated[str | None, typer.Option(metavar="5m", help="How long it took.")] = None,
    at: Annotated[str | None, typer.Option(metavar="TIME", help="When (default: now).")] = None,
    gateway: Annotated[str | None, _GATEWAY] = None,
    job: Annotated[str | None, _JOB] = None,
    grouping: Annotated[list[str] | None, _GROUPING] = None,
    replace: Annotated[bool, _REPLACE] = False,
    delete: Annotated[bool, _DELETE] = False,
) -> None:
    """Last deployment status, time, version and duration per service and environment."""
    from datetime import UTC, datetime

    from devex_cli.context import pipeline_context, service_name
    from devex_cli.metrics.events import deployment_families
    from devex_cli.timeutil import parse_duration, parse_moment

    push = ctx.meta["push"].merged(gateway, job, grouping, replace, delete)
    settings = ctx.obj.settings()
    name = service_name(service, settings.environ)
    if push.delete:
        _push(ctx.obj, push, [], {"service": name, "environment": environment})
        return
    state = _check_status(status)
    now = datetime.now(UTC)
    pipeline, _ = pipeline_context(settings.environ, Path())
    families = deployment_families(
        service=name, environment=environment, status=state,
        version=version or (pipeline.commit or "")[:7] or "unknown",
        at=parse_moment(at, option="--at", now=now) if at else now,
        duration_seconds=parse_duration(duration, option="--duration").total_seconds()
        if duration else None)
    _push(ctx.obj, push, families, {"service": name, "environment": environment})


@push_app.command("tests")
def push_tests(
    ctx: typer.Context,
    junit: Annotated[list[Path] | None, typer.Option(
        metavar="FILE", help="JUnit XML file (repeatable; not needed with --delete).")] = None,
    service: Annotated[str | None, typer.Option(
        metavar="NAME", help="Service (default: $BITBUCKET_REPO_SLUG).")] = None,
    gateway: Annotated[str | None, _GATEWAY] = None,
    job: Annotated[str | None, _JOB] = None,
    grouping: Annotated[list[str] | None, _GROUPING] = None,
    replace: Annotated[bool, _REPLACE] = False,
    delete: Annotated[bool, _DELETE] = False,
) -> None:
    """Test totals by result, pass ratio, duration and time of the last run."""
    from datetime import UTC, datetime

    from devex_cli.context import service_name
    from devex_cli.metrics.events import tests_families
    from devex_cli.notify.junit import parse_junit

    name = service_name(service, ctx.obj.settings().environ)
    push = ctx.meta["push"].merged(gateway, job, grouping, replace, delete)
    families = [] if push.delete else tests_families(parse_junit(junit or []), service=name,
                                                     at=datetime.now(UTC))
    _push(ctx.obj, push, families, {"service": name})


@push_app.command("security")
def push_security(
    ctx: typer.Context,
    veracode: Annotated[Path | None, typer.Option(
        metavar="FILE", help="Veracode Pipeline Scan results.json.")] = None,
    sca: Annotated[Path | None, typer.Option(
        metavar="FILE", help="SourceClear / Veracode SCA JSON.")] = None,
    service: Annotated[str | None, typer.Option(
        metavar="NAME", help="Service (default: $BITBUCKET_REPO_SLUG).")] = None,
    gateway: Annotated[str | None, _GATEWAY] = None,
    job: Annotated[str | None, _JOB] = None,
    grouping: Annotated[list[str] | None, _GROUPING] = None,
    replace: Annotated[bool, _REPLACE] = False,
    delete: Annotated[bool, _DELETE] = False,
) -> None:
    """Findings per severity and vulnerable dependencies per CVSS band of the last scan."""
    from datetime import UTC, datetime

    from devex_cli.context import service_name
    from devex_cli.metrics.events import security_families
    from devex_cli.notify.security import read_security

    name = service_name(service, ctx.obj.settings().environ)
    push = ctx.meta["push"].merged(gateway, job, grouping, replace, delete)
    families = [] if push.delete else security_families(read_security(veracode, sca),
                                                        service=name, at=datetime.now(UTC))
    _push(ctx.obj, push, families, {"service": name})


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point: run the command; map every error to its exit code and one line."""
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = any(a in ("-v", "--verbose") for a in args)
    try:
        # typer returns 130 for a Ctrl-C (or a SIGTERM that unwinds as one): not a success
        if command.main(args=args, prog_name="devex", standalone_mode=False) == 130:
            _fail("interrupted", 130)
    except GateBlocked:
        sys.exit(1)
    except DevexError as exc:
        _fail(str(exc), exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # typer's usage errors: a bad or missing flag
        context = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":  # `devex gate` alone: its help, exit 0
            sys.stdout.write(exc.format_message() + "\n")
            sys.exit(0)
        if exc.format_message().rstrip(".") == "Missing command":  # `devex --config f` alone
            command.main(args=[*args, "--help"], prog_name="devex", standalone_mode=False)
            sys.exit(0)
        # one style for every error: devex's one line, with where to look
        where = f"{context.command_path} --help" if context is not None else "devex --help"
        _fail(f"{exc.format_message().rstrip('.')} (see {where})", 2)
    except (typer.Abort, KeyboardInterrupt):
        _fail("interrupted", 130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # a bug in devex: one line, the traceback only with -v
        if verbose:
            import traceback

            traceback.print_exc()
        _fail(f"internal error: {type(exc).__name__}: {exc} (please report it; -v shows where)",
              70)
    sys.exit(0)


def _check_status(status: str | None) -> str:
    """`--status` is one of the deployment states, else a usage error naming them."""
    from devex_cli.context import DEPLOYMENT_STATUSES

    if status not in DEPLOYMENT_STATUSES:
        from devex_cli.errors import UsageError

        raise UsageError(f"--status must be {', '.join(DEPLOYMENT_STATUSES[:-1])} or "
                         f"{DEPLOYMENT_STATUSES[-1]}, not {status!r}")
    return status


def _check_format(value: str, *allowed: str) -> None:
    """`--format` is one of `allowed`, else a usage error naming them (one rule for every
    command)."""
    if value not in allowed:
        from devex_cli.errors import UsageError

        choices = ", ".join(allowed[:-1]) + f" or {allowed[-1]}" if len(allowed) > 1 else allowed[0]
        raise UsageError(f"--format must be {choices}, not {value!r}")


def _fail(message: str, code: int) -> NoReturn:
    from devex_cli.masking import mask
    from devex_cli.textsafe import safe

    sys.stderr.write(f"devex: error: {safe(mask(message))}\n")  # errors quote outside values
    sys.exit(code)
