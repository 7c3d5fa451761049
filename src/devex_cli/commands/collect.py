"""`devex collect`: the DORA figures as tables, JSON or Prometheus, once or served."""

# No `from __future__ import annotations`: typer reads these annotations at each start.

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from devex_cli.commands.options import (
    GitOpsOption,
    Globals,
    ListenOption,
    OfflineOption,
    SinceOption,
    SnapshotFormat,
    SnapshotFormatOption,
    UntilOption,
)

if TYPE_CHECKING:
    from datetime import datetime

    from devex_cli.collect import CollectOptions
    from devex_cli.dora.model import Snapshot


def collect(
    ctx: typer.Context,
    gitops: GitOpsOption = None,
    since: SinceOption = "30d",
    until: UntilOption = None,
    offline: OfflineOption = False,
    output: Annotated[str, typer.Option(
        metavar="FILE|-", help="Where --format json|prometheus goes.")] = "-",
    output_format: SnapshotFormatOption = SnapshotFormat.TABLE,
    serve_metrics: Annotated[bool, typer.Option(
        "--serve", help="Run an exporter: /metrics and /healthz, re-collecting.")] = False,
    listen: ListenOption = "127.0.0.1:9464",
    interval: Annotated[str, typer.Option(
        metavar="5m", help="How often --serve collects.")] = "5m",
) -> None:
    """The DORA collector: deployments, lead time, failures, recovery, tickets and bottlenecks."""
    run_collect(ctx.obj, gitops=gitops, since=since, until=until, offline=offline, output=output,
                output_format=output_format, serve_metrics=serve_metrics, listen=listen,
                interval=interval)


def run_collect(options: Globals, *, gitops: str | None, since: str, until: str | None,
                offline: bool, output: str, output_format: SnapshotFormat, serve_metrics: bool,
                listen: str, interval: str, config: Path | None = None,
                environ: Mapping[str, str] | None = None, announce: str = "") -> None:
    """`collect`, also for the demo: its `config` and `environ` (instead of the command's), and
    `announce`, said on stderr once --serve is up."""
    from datetime import UTC, datetime

    from devex_cli.collect import collect as collect_snapshot
    from devex_cli.config import load_settings
    from devex_cli.timeutil import parse_duration

    settings = load_settings(config, environ=environ) if config else options.settings()
    every = parse_duration(interval, option="--interval").total_seconds()
    host, port = _listen_address(listen)

    def once(step: Callable[[str], None] = lambda text: None) -> "Snapshot":
        now = datetime.now(UTC)
        return collect_snapshot(settings, collect_options(gitops, since, until, offline, now),
                                now=now, step=step)

    if serve_metrics:
        from devex_cli.metrics.exporter import Exporter, ExporterServer, serve
        from devex_cli.sources.gitops import NothingFound, reader_states_held

        exporter = Exporter(once, interval=every)

        def ready(url: str) -> None:
            sys.stderr.write(f"devex: serving {url}/metrics and {url}/healthz, "
                             f"collecting every {interval}\n{announce}")
            sys.stderr.flush()

        # Listening first: a port in use is told before a long first collection. Each
        # collection goes on from the last one's GitOps reading, held in memory.
        with ExporterServer(exporter, host, port) as server, reader_states_held():
            exporter.collect()  # the first collection in the foreground: bad input fails fast
            failure = exporter.last_failure
            if exporter.snapshot is None and failure is not None and not isinstance(
                    failure, NothingFound):
                raise failure  # what made it fail, not a second collection to find out
            # (a repository with nothing to read yet is served: /healthz says why, 503)
            serve(server, ready=ready)
        return
    from devex_cli.collect import without_cycle_collection

    # The cycle collector resumes once the figures are written and let go: resumed earlier,
    # its first pass walks every object the collection made (~15 ms of a warm run).
    with without_cycle_collection():
        _collect_and_write(once, options, output_format, output)


def _collect_and_write(once: Callable[[Callable[[str], None]], "Snapshot"], options: Globals,
                       output_format: SnapshotFormat, output: str) -> None:
    from devex_cli.progress import progress

    with progress(quiet=options.quiet) as step:
        snapshot = once(step)
    _write_snapshot(snapshot, output_format, output, color=not options.no_color)


def collect_options(gitops: str | None, since: str, until: str | None, offline: bool,
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


def _write_snapshot(snapshot: "Snapshot", output_format: SnapshotFormat, output: str, *,
                    color: bool) -> None:
    if output_format is SnapshotFormat.TABLE:
        import io

        from devex_cli.views.tables import render_tables

        if output == "-":
            render_tables(snapshot, color=color)
            return
        buffer = io.StringIO()
        render_tables(snapshot, color=False, file=buffer)  # a file gets plain text
        text = buffer.getvalue()
    elif output_format is SnapshotFormat.JSON:
        from devex_cli.views.json import render_snapshot_json

        text = render_snapshot_json(snapshot, pretty=output == "-" and sys.stdout.isatty()) + "\n"
    else:
        from devex_cli.views.prometheus import render

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
