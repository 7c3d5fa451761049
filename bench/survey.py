"""What devex reads in real GitOps repositories: `python -m bench.survey PATH...`.

For each repository (a clone, bare or not), `devex status --format json` from an empty cache,
then again warm: the services and environments found, the third-party images and skipped items,
and the time each run took. Prints one Markdown table, the one docs/gitops-layouts.md quotes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path


def status(repo: Path, cache: Path) -> tuple[int, dict[str, object], str, float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "devex_cli", "status", "--gitops", str(repo), "--format", "json"],
        capture_output=True, text=True, check=False, cwd=cache,
        env={**os.environ, "XDG_CACHE_HOME": str(cache), "DEVEX_CACHE_DIR": ""})
    seconds = time.perf_counter() - started
    report = json.loads(done.stdout) if done.returncode == 0 and done.stdout else {}
    last_line = (done.stderr.strip().splitlines() or [""])[-1]
    return done.returncode, report, last_line, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("repos", nargs="+", type=Path)
    args = parser.parse_args()
    print("| repository | exit | services | environments (services in each) | third-party | "
          "skipped | cold s | warm s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for repo in args.repos:
        with tempfile.TemporaryDirectory() as folder:
            cache = Path(folder)
            code, report, err, cold = status(repo, cache)
            _, _, _, warm = status(repo, cache)
        services = report.get("services", [])
        assert isinstance(services, list)
        envs = Counter(e["environment"] for s in services for e in s["environments"])
        third = report.get("third_party", [])
        skipped = report.get("skipped", [])
        assert isinstance(third, list) and isinstance(skipped, list)
        name = repo.name if repo.name != "repo" else repo.parent.name.replace("+", "/")
        where = ", ".join(f"{e} ({n})" for e, n in envs.items()) or (
            "nothing found (exit 2, naming the closest files)" if "no service found" in err
            else "nothing deployed at the head")
        print(f"| {name} | {code} | {len(services)} | {where} | "
              f"{len({t['image'] for t in third})} | {len(skipped)} | {cold:.1f} | {warm:.2f} |")


if __name__ == "__main__":
    main()
