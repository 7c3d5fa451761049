"""The `devex` command: the Typer app, its global options, logging, and the one place where
errors become exit codes and one-line messages (`main`).

Each command is a module of `devex_cli.commands` (parse, call the core, render). They import
heavy modules (httpx, yaml, jinja2, rich) inside their functions so that `devex --help` starts fast.
"""

# No `from __future__ import annotations` here: typer would have to eval every annotation
# string of every command at each start (about 80 ms); real annotations cost nothing.

import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from devex_cli import __version__
from devex_cli.commands import collect, demo, explain, gate, push_metrics, report, status
from devex_cli.commands.options import HELP_OPTIONS, Globals
from devex_cli.errors import DevexError, GateBlocked

app = typer.Typer(
    name="devex",
    help="Delivery truth: DORA metrics, pipeline feedback and deployment gates.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings=HELP_OPTIONS,
)
app.add_typer(gate.app, name="gate")
app.command("status")(status.status)
app.command("collect")(collect.collect)
app.command("explain")(explain.explain)
app.command("demo")(demo.demo)
app.add_typer(report.app, name="report")
app.add_typer(push_metrics.app, name="push-metrics")


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


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point: run the command; map every error to its exit code and one line. Without
    `argv` (the `devex` program itself), the process ends with the command: what it made is
    let go with the process, not walked once more by the cycle collector on the way out (its
    last passes took most of a warm collection's 35 ms exit)."""
    try:
        _main(argv)
    finally:
        if argv is None:
            import gc

            gc.freeze()


def _main(argv: list[str] | None) -> NoReturn:
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


def _fail(message: str, code: int) -> NoReturn:
    from devex_cli.masking import mask
    from devex_cli.textsafe import safe

    sys.stderr.write(f"devex: error: {safe(mask(message))}\n")  # errors quote outside values
    sys.exit(code)
