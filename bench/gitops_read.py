"""Reading a GitOps history: devex's one-pass reader against a naive per-commit reader.

    python -m bench.gitops_read [--commits 1300] [--services 20]

The history is 20 services x 3 environments over two years (1,300 commits by default), written
by tests/gitops_shapes.synthetic_history. The naive reader is what the Bash scripts did: list the
commits, then `git show COMMIT:PATH` for every manifest each commit touched. Both run in this
process, on the same repository; the figure that matters is the ratio.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.gitops_shapes import synthetic_history  # noqa: E402

from devex_cli.config import load_settings  # noqa: E402
from devex_cli.manifests import parse_manifest  # noqa: E402
from devex_cli.sources.gitops import read_history  # noqa: E402


def naive(repo: Path) -> int:
    """One `git show` per commit per manifest: the per-item reader devex replaces."""
    log = subprocess.run(["git", "-C", str(repo), "log", "--first-parent", "--reverse",
                          "--format=%H", "--name-only", "main"], capture_output=True, text=True,
                         check=True).stdout
    reads = 0
    commit = ""
    for line in log.splitlines():
        if len(line) == 40 and "/" not in line:
            commit = line
        elif line.endswith((".yaml", ".yml")):
            blob = subprocess.run(["git", "-C", str(repo), "show", f"{commit}:{line}"],
                                  capture_output=True, check=True).stdout
            parse_manifest(line.rsplit("/", 1)[-1], blob)
            reads += 1
    return reads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commits", type=int, default=1300)
    parser.add_argument("--services", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "gitops"
        started = time.perf_counter()
        synthetic_history(path, services=args.services, commits=args.commits)
        print(f"generated {args.commits} commits in {time.perf_counter() - started:.2f}s")
        settings = load_settings(environ={}, cwd=path)
        timings = []
        for run in ("cold", "warm"):
            started = time.perf_counter()
            history = read_history(path, settings)
            timings.append(time.perf_counter() - started)
            print(f"devex reader ({run}): {timings[-1]:.3f}s, "
                  f"{len(history.deployments)} deployments of {len(history.services)} services")
        started = time.perf_counter()
        reads = naive(path)
        naive_time = time.perf_counter() - started
        print(f"naive reader: {naive_time:.3f}s ({reads} git show processes)")
        # cold is the honest comparison: the naive reader keeps nothing between runs either
        print(f"devex / naive: cold {timings[0] / naive_time:.3f}, warm "
              f"{timings[1] / naive_time:.3f} (target: cold at most 0.1)")


if __name__ == "__main__":
    main()
