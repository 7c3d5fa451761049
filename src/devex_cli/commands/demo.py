"""`devex demo`: a sample organisation, collected, and the four answers."""

# No `from __future__ import annotations`: typer reads these annotations at each start.

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from devex_cli.commands.collect import run_collect
from devex_cli.commands.options import ListenOption, SnapshotFormat, SnapshotFormatOption


def demo(
    ctx: typer.Context,
    serve_metrics: Annotated[bool, typer.Option(
        "--serve", help="Keep the exporter (for a local Prometheus/Grafana) and the demo's "
                        "Jira (for the QA release gate) up until stopped.")] = False,
    listen: ListenOption = "127.0.0.1:9464",
    keep: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Build the sample organisation here and keep it.")] = None,
    output_format: SnapshotFormatOption = SnapshotFormat.TABLE,
) -> None:
    """A sample organisation (4 services, 4 environments, 90 days) and the four answers."""
    import tempfile

    from devex_cli import demo as sample
    from devex_cli.demo_jira import DemoJira
    from devex_cli.interrupt import signals_held, sigterm_as_interrupt

    if keep is not None:
        sample.prepare_kept_folder(keep)
    program = _program()
    tables = output_format is SnapshotFormat.TABLE
    # SIGTERM unwinds as Ctrl-C does, so that the temporary folder goes however the demo stops.
    with sigterm_as_interrupt():
        root: Path | None = keep
        jira_env: Path | None = None
        try:
            if root is None:
                with signals_held():  # the folder and its name together, never one without
                    root = Path(tempfile.mkdtemp(prefix="devex-demo-"))
            config = sample.build_demo(root / "org" if keep is None else root,
                                       work_in_progress=True)
            folder = config.parent
            # Its own Jira, for this command only: the variables go to its collection alone.
            with DemoJira(folder / sample.ISSUES_FILE) as jira:
                environ = sample.demo_environment(os.environ, jira.environ(), folder)
                if tables:
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
                run_collect(ctx.obj, gitops=None, since="30d", until=None, offline=False,
                            output="-", output_format=output_format,
                            serve_metrics=serve_metrics, listen=listen, interval="5m",
                            config=config, environ=environ, announce=announce)
            if tables and not serve_metrics:
                sys.stdout.write(sample.gate_note(folder, program, kept=keep is not None))
                sys.stdout.write(sample.explain_note(folder, program, kept=keep is not None))
        finally:
            if jira_env is not None:
                jira_env.unlink(missing_ok=True)  # its Jira is gone
            if keep is None and root is not None:
                with signals_held():  # a second Ctrl-C (or SIGTERM) waits for the removal
                    remove_folder(root)


def remove_folder(folder: Path, *, attempts: int = 100, pause: float = 0.05) -> None:
    """Remove the demo's temporary folder, again while something still writes in it: a git
    process that an interrupt cut short (killed, or left running when it came while the process
    was being started) can land its last file (fast-import's marks) while the folder is being
    removed, and the folder would stay behind."""
    import shutil
    import time

    for _ in range(attempts):
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            return
        time.sleep(pause)


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
