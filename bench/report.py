"""docs/performance.md's figures from one run of the benchmark: `python -m bench.report`.

Runs `python -m bench.run` (arguments after `--` are passed to it), then writes the section of
docs/performance.md between its `figures:start` and `figures:end` markers: the date, the machine,
the command, and a table of every row the run printed. No figure in that section is typed by
hand; `--check` only says whether the section's shape (the markers) is there.
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


def render(rows: list[dict[str, Any]], command: str, printed: list[str]) -> str:
    scenarios = [r for r in rows if "scenario" in r]
    summaries = [r for r in rows if "scenario" not in r]
    lines = [START,
             f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}, by "
             f"`python -m bench.report` running `{command}` (regenerate it the same way; "
             "compare ratios within one run, not seconds across machines).", ""]
    lines += [f"- {line}" for line in printed]
    lines += ["", "| scenario | devex s | requests | peak MiB | baseline s | devex/baseline | "
              "floor s | devex/floor |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in scenarios:
        lines.append("| " + " | ".join(_cell(row.get(key)) for key in (
            "scenario", "seconds", "requests", "peak_mib", "baseline_seconds", "devex/baseline",
            "floor_seconds", "devex/floor")) + " |")
    lines.append("")
    for row in summaries:
        lines.append("- " + "; ".join(f"{key}: {_cell(value)}" for key, value in row.items()))
    lines.append(END)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only check the markers are there")
    parser.add_argument("bench_args", nargs=argparse.REMAINDER,
                        help="after --: arguments for bench.run")
    args = parser.parse_args()
    text = DOC.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{DOC}: no {START} ... {END} section")
    if args.check:
        return
    extra = [a for a in args.bench_args if a != "--"]
    command = " ".join(["python -m bench.run", *extra])
    done = subprocess.run([sys.executable, "-m", "bench.run", *extra], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench.run failed ({done.returncode}):\n{done.stderr[-2000:]}")
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    printed = [line for line in done.stdout.splitlines()
               if line.startswith("world:") or line.startswith("gate world")]
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(head + render(rows, command, printed) + tail)
    print(f"wrote {DOC.relative_to(ROOT)}: {len(rows)} rows")


if __name__ == "__main__":
    main()
