"""devex at a hundred times the benchmark's organisation, offline: one collector's limits.

    python -m bench.org [--services 2000] [--days 365] [--seed 1] [--scrapes 3]

World: N services x dev/qa/preprod/prod x a year, made by the demo's generator (git fast-import;
every service's app repository is a local `repo`, so change sets, lead times and tickets are
read as a collector with clones reads them). No fake and no network: `collect --offline`.

Scenarios (each devex run is its own process; peak memory is that process's own):
  org 1. collect, cold cache (Prometheus text to a file)
  org 2. collect again, warm, nothing new
  org 3. the exporter as users run it (`collect --serve` on a 127.0.0.1 port, warm cache): its
         first collection, then `--scrapes` scrapes of /metrics, each timed; the series are
         counted by prometheus_client's parser and checked by `promtool check metrics` when it
         is installed; the exporter's peak memory is its VmHWM.
Printed as JSON lines, as bench.run prints its rows (bench.report writes them into
docs/performance.md with `--org`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.services import free_port, running  # noqa: E402

from bench.run import Run, run_devex, services  # noqa: E402
from devex_cli.demo import build_demo  # noqa: E402


def build(root: Path, count: int, days: int, seed: int) -> Path:
    """The organisation under `root`; returns its devex.toml."""
    started = time.perf_counter()
    config = build_demo(root, end=datetime.now(UTC).replace(microsecond=0), days=days,
                        seed=seed, services=services(count))
    commits = int(subprocess.run(["git", "-C", str(root / "gitops"), "rev-list", "--count",
                                  "main"], capture_output=True, text=True, check=True).stdout)
    print(f"org world: {count} services x 4 environments x {days} days: {commits} GitOps "
          f"commits, {count} app repositories (built in {time.perf_counter() - started:.0f}s)",
          flush=True)
    return config


def row(name: str, run: Run, **extra: object) -> dict[str, object]:
    line: dict[str, object] = {"scenario": name, "seconds": round(run.seconds, 2),
                               "peak_mib": round(run.peak_mib, 1), **extra}
    print(json.dumps(line), flush=True)
    return line


def series_by_family(text: str) -> Counter[str]:
    """Samples per metric family, read by prometheus_client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    return Counter({family.name: len(family.samples)
                    for family in text_string_to_metric_families(text)})


def promtool(text: str) -> str:
    """What `promtool check metrics` says of the exposition ("ok" when nothing), or why it
    was not run."""
    if shutil.which("promtool") is None:
        return "not installed"
    done = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                          text=True, check=False, timeout=600)
    said = (done.stdout + done.stderr).strip()
    return "ok" if done.returncode == 0 and not said else said.splitlines()[0][:200]


def peak_of(pid: int) -> float:
    """A live process's own peak resident memory (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def serve_and_scrape(root: Path, config: Path, env: dict[str, str], scrapes: int,
                     count: int) -> tuple[dict[str, object], str]:
    """The exporter on a loopback port: time to its first answer, scrapes of /metrics."""
    port = free_port()
    argv = [sys.executable, "-m", "devex_cli", "--config", str(config), "collect", "--offline",
            "--serve", "--listen", f"127.0.0.1:{port}", "--interval", "24h", "--since", "90d"]
    started = time.perf_counter()
    with running(argv, f"http://127.0.0.1:{port}/healthz", log=root / "exporter.log",
                 env=env, timeout=3600) as process:
        ready = time.perf_counter() - started
        times, body = [], b""
        for _ in range(scrapes):
            begun = time.perf_counter()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                        timeout=600) as response:
                body = response.read()
            times.append(time.perf_counter() - begun)
        peak = peak_of(process.pid)
    text = body.decode()
    families = series_by_family(text)
    series = sum(families.values())
    line: dict[str, object] = {
        "scenario": f"org 3 exporter: first collection, then {scrapes} scrapes",
        "seconds": round(ready, 2), "peak_mib": round(peak, 1),
        "series": series, "series/service": round(series / count),
        "metrics_mib": round(len(body) / 2**20, 1),
        "scrape_seconds": round(statistics.median(times), 3),
        "promtool": promtool(text)}
    print(json.dumps(line), flush=True)
    return line, text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=2000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scrapes", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the organisation here")
    args = parser.parse_args(argv)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src")], check=True)
    with tempfile.TemporaryDirectory() as folder:
        root = args.keep or Path(folder)
        config = root / "org" / "devex.toml"
        if not config.exists():
            config = build(root / "org", args.services, args.days, args.seed)
        else:
            kept = len(list((root / "org" / "apps").iterdir()))
            if kept != args.services:
                raise SystemExit(f"{root} holds {kept} services, not {args.services}")
            commits = subprocess.run(["git", "-C", str(root / "org" / "gitops"), "rev-list",
                                      "--count", "main"], capture_output=True, text=True,
                                     check=True).stdout.strip()
            print(f"org world: {kept} services x 4 environments x {args.days} days: {commits} "
                  f"GitOps commits, {kept} app repositories (built earlier in --keep)",
                  flush=True)
        env = {**os.environ, "DEVEX_CACHE_DIR": str(root / "cache"), "CI": "true"}
        shutil.rmtree(root / "cache", ignore_errors=True)
        collect = ["--config", str(config), "collect", "--offline", "--since", "90d",
                   "--format", "prometheus", "--output", str(root / "metrics.prom")]
        # Each run starts with the disk written back (os.sync): a run after the cold one, which
        # wrote the store's gigabyte, would otherwise read while the kernel writes that back
        # (the warm run measured 157 s so, 46 s after a sync, on the same machine and code).
        os.sync()
        cold = run_devex(collect, env)
        assert cold.code == 0, cold.err[-2000:]
        row(f"org 1 collect cold ({args.services} services)", cold)
        os.sync()
        warm = run_devex(collect, env)
        assert warm.code == 0, warm.err[-2000:]
        row(f"org 2 collect warm ({args.services} services)", warm)
        os.sync()
        served, text = serve_and_scrape(root, config, env, args.scrapes, args.services)
        families = series_by_family(text)
        print(json.dumps({"org series by family (per service)": {
            name: round(n / args.services, 1) for name, n in families.most_common(12)}}),
            flush=True)
        print(json.dumps(sizing(args.services, cold, warm, served)), flush=True)


# What a collector is given in deploy/ (a memory limit, Prometheus' scrape timeout, the
# exporter's interval), against which the figures say how many services one collector serves.
LIMITS = {"memory MiB": 4096, "scrape timeout s": 30, "interval s": 300}


def sizing(count: int, cold: Run, warm: Run, served: dict[str, object]) -> dict[str, object]:
    """Per-service costs of this run and, from them (taken as linear), the services one
    collector serves within LIMITS, and which limit binds first."""
    peak = max(cold.peak_mib, warm.peak_mib, float(str(served["peak_mib"])))
    scrape = float(str(served["scrape_seconds"]))
    each = {"memory MiB": peak / count, "scrape timeout s": scrape / count,
            "interval s": warm.seconds / count}
    fits = {name: int(LIMITS[name] / cost) for name, cost in each.items() if cost > 0}
    binding = min(fits, key=fits.__getitem__)
    return {"org per service": {"cold s": round(cold.seconds / count, 4),
                                "warm s": round(warm.seconds / count, 4),
                                "peak MiB": round(peak / count, 3),
                                "/metrics KiB": round(float(str(served["metrics_mib"])) * 1024
                                                      / count, 1),
                                "scrape ms": round(scrape * 1000 / count, 3)},
            "one collector serves (services, linear in these figures)": fits[binding],
            "bound by": f"{binding} {LIMITS[binding]}"}


if __name__ == "__main__":
    main()
