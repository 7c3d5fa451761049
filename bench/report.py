"""docs/performance.md's figures from one run of the benchmark: `python -m bench.report`.

Runs `python -m bench.run` (arguments after `--` are passed to it), then writes the section of
docs/performance.md between its `figures:start` and `figures:end` markers: the date, the machine,
the command, and a table of every row the run printed. No figure in that section is typed by
hand; `--check` only says whether the section's shape (the markers) is there.

`python -m bench.report --org [-- ARGS]` runs `python -m bench.org` instead (2,000 services,
offline; tens of minutes) and writes only its block inside the section (`org-figures:start` to
`org-figures:end`), which a run without `--org` keeps as it is. `--read FILE` takes the
benchmark's output from FILE, saved from a run of the same command (`python -m bench.org ARGS |
tee FILE`), instead of running it again.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "performance.md"
START, END = "<!-- figures:start -->", "<!-- figures:end -->"
ORG_START, ORG_END = "<!-- org-figures:start -->", "<!-- org-figures:end -->"


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "?") \
        if Path("/proc/cpuinfo").exists() else platform.processor() or "?"
    memory = next((int(line.split()[1]) // 1024 // 1024 for line in
                   Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), 0) if Path("/proc/meminfo").exists() else 0
    return (f"{os.cpu_count()} cores ({model}), {memory} GiB, Python "
            f"{platform.python_version()}, {platform.system()} {platform.release()}")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _measured(command: str, report: str) -> str:
    return (f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}, by "
            f"`{report}` running `{command}` (regenerate it the same way; "
            "compare ratios within one run, not seconds across machines).")


def _summary(row: dict[str, Any]) -> str:
    return "- " + "; ".join(
        f"{key}: " + (", ".join(f"{k} {_cell(v)}" for k, v in value.items())
                      if isinstance(value, dict) else _cell(value))
        for key, value in row.items())


def render(rows: list[dict[str, Any]], command: str, printed: list[str], org: str = "") -> str:
    """The figures section; `org` is bench.org's block (render_org), kept inside it."""
    scenarios = [r for r in rows if "scenario" in r]
    summaries = [r for r in rows if "scenario" not in r]
    lines = [START, _measured(command, "python -m bench.report"), ""]
    lines += [f"- {line}" for line in printed]
    lines += ["", "| scenario | devex s | requests | peak MiB | baseline s | devex/baseline | "
              "floor s | devex/floor |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in scenarios:
        lines.append("| " + " | ".join(_cell(row.get(key)) for key in (
            "scenario", "seconds", "requests", "peak_mib", "baseline_seconds", "devex/baseline",
            "floor_seconds", "devex/floor")) + " |")
    lines.append("")
    lines += [_summary(row) for row in summaries]
    if org:
        lines += ["", org]
    lines.append(END)
    return "\n".join(lines)


ORG_COLUMNS = ("scenario", "seconds", "peak_mib", "series", "series/service", "metrics_mib",
               "scrape_seconds", "promtool")


def render_org(rows: list[dict[str, Any]], command: str, printed: list[str]) -> str:
    """bench.org's block of the figures section."""
    lines = [ORG_START, "An organisation a hundred times the benchmark's, offline "
             "(`python -m bench.org`): " + _measured(command, "python -m bench.report --org"),
             ""]
    lines += [f"- {line}" for line in printed]
    lines += ["", "| scenario | devex s | peak MiB | series | series a service | /metrics MiB "
              "| scrape s | promtool check metrics |", "| --- " * len(ORG_COLUMNS) + "|"]
    for row in rows:
        if "scenario" in row:
            lines.append("| " + " | ".join(_cell(row.get(key)) for key in ORG_COLUMNS) + " |")
    lines.append("")
    lines += [_summary(row) for row in rows if "scenario" not in row]
    lines.append(ORG_END)
    return "\n".join(lines)


def org_block(text: str) -> str:
    """The org block of docs/performance.md's figures section, or "" when it has none."""
    if ORG_START not in text or ORG_END not in text:
        return ""
    return ORG_START + text.split(ORG_START, 1)[1].split(ORG_END, 1)[0] + ORG_END


def _run(module: str, extra: list[str],
         saved: Path | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows and world lines `python -m module extra` prints (read from `saved`, the output
    of such a run, when given)."""
    if saved is not None:
        output = saved.read_text()
    else:
        done = subprocess.run([sys.executable, "-m", module, *extra], cwd=ROOT,
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{module} failed ({done.returncode}):\n{done.stderr[-2000:]}")
        output = done.stdout
    rows = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    printed = [line for line in output.splitlines()
               if line.startswith(("world:", "gate world", "org world:"))]
    return rows, printed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only check the markers are there")
    parser.add_argument("--org", action="store_true",
                        help="run bench.org and write only its block of the section")
    parser.add_argument("--read", type=Path, metavar="FILE",
                        help="the benchmark's output saved from a run of the same command")
    parser.add_argument("bench_args", nargs=argparse.REMAINDER,
                        help="after --: arguments for bench.run (bench.org with --org)")
    args = parser.parse_args()
    text = DOC.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{DOC}: no {START} ... {END} section")
    if args.check:
        return
    extra = [a for a in args.bench_args if a != "--"]
    module = "bench.org" if args.org else "bench.run"
    rows, printed = _run(module, extra, args.read)
    command = " ".join([f"python -m {module}", *extra])
    head, rest = text.split(START, 1)
    section, tail = rest.split(END, 1)
    if args.org:
        block = render_org(rows, command, printed)
        kept = org_block(section)
        section = (section.replace(kept, block) if kept
                   else section.rstrip("\n") + "\n\n" + block + "\n")
        DOC.write_text(head + START + section + END + tail)
    else:
        DOC.write_text(head + render(rows, command, printed, org_block(section)) + tail)
    print(f"wrote {DOC.relative_to(ROOT)}: {len(rows)} rows")


if __name__ == "__main__":
    main()
