"""Start-up of `devex --help` against a bare typer app with the same commands, in one run.

"bare typer" is typer with its defaults (rich help); "plain typer" turns rich help off as devex
does, so it isolates what devex's own imports cost.

    python bench/startup.py [--runs 30]

Prints the median wall time of each and their ratio (target: devex / bare typer <= 1.5), plus
`python -c pass` as the floor. Runs alternate so that machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BARE_APP = '''
import typer
app = typer.Typer(add_completion=False, no_args_is_help=True{markup})
gate = typer.Typer(no_args_is_help=True)
app.add_typer(gate, name="gate")

@app.callback()
def main(verbose: bool = False, quiet: bool = False, no_color: bool = False) -> None:
    """bare"""

@gate.command("qa-release")
def qa(service: str = "", environment: str = "", gitops: str = "", repo: str = "",
       head: str = "", project: list[str] | None = None, ticket_pattern: str = "",
       format: str = "text", fail_open: bool = False) -> None:
    """bare"""

{extra}
app()
'''


def command_names() -> list[str]:
    from devex_cli.cli import app

    return [c.name or c.callback.__name__ for c in app.registered_commands]  # type: ignore[union-attr]


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    extra = "\n".join(
        f'@app.command("{name}")\ndef c{i}(x: str = "") -> None:\n    """bare"""\n'
        for i, name in enumerate(command_names())
    )
    with tempfile.TemporaryDirectory() as folder:
        bare = Path(folder) / "bare.py"
        bare.write_text(BARE_APP.replace("{extra}", extra).replace("{markup}", ""))
        plain = Path(folder) / "plain.py"
        plain.write_text(BARE_APP.replace("{extra}", extra)
                         .replace("{markup}", ", rich_markup_mode=None"))
        commands = {
            "devex --help": [sys.executable, "-m", "devex_cli", "--help"],
            "bare typer --help": [sys.executable, str(bare), "--help"],
            "plain typer --help": [sys.executable, str(plain), "--help"],
            "python -c pass": [sys.executable, "-c", "pass"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for argv in commands.values():
            timed(argv)  # warm the file cache
        for _ in range(args.runs):
            for name, argv in commands.items():
                times[name].append(timed(argv))
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        print(f"{name:20s} {value * 1000:7.1f} ms (median of {args.runs})")
    ratio = medians["devex --help"] / medians["bare typer --help"]
    print(f"devex / bare typer   {ratio:7.2f}x  (target <= 1.5)")
    plain_ratio = medians["devex --help"] / medians["plain typer --help"]
    print(f"devex / plain typer  {plain_ratio:7.2f}x  (same app, rich help off as devex has it)")
    print(f"devex / python floor {medians['devex --help'] / medians['python -c pass']:7.2f}x")


if __name__ == "__main__":
    main()
