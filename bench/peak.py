"""Run a command and write its own peak memory: `python bench/peak.py OUT -- COMMAND...`.

A child's `ru_maxrss` includes what it shared with its parent when it was forked (Linux keeps the
high-water mark across `exec`), so a command forked from a benchmark holding 200 MiB reads at
least 200 MiB. Forked from this small process instead, it reads its own peak (this launcher's
few MiB are the floor). The peak in KiB is written to OUT; the command's exit code is this one's.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> None:
    out, separator, *command = sys.argv[1:]
    if separator != "--" or not command:
        raise SystemExit("usage: python bench/peak.py OUT -- COMMAND...")
    pid = os.posix_spawnp(command[0], command, os.environ)
    _, status, usage = os.wait4(pid, 0)
    Path(out).write_text(str(usage.ru_maxrss))
    raise SystemExit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
