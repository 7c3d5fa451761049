"""devex at the scale of an organisation, against loopback fakes with latency.

    python -m bench.run [--services 20] [--days 365] [--latency 0.05] [--quick]

World: N services x dev/qa/preprod/prod x a year of history (git fast-import, reproducible from
--seed), app repositories served by the Bitbucket fake, tickets by the Jira fake, applications by
the Argo CD fake; every fake answers after --latency seconds and counts requests.

Scenarios (each devex run is its own process; peak memory is that process's max RSS):
  1. gate qa-release, 500 commits and 200 tickets since the QA release (also in process: the
     gate's own work in a warm interpreter)
  2. collect, cold cache        3. collect again, warm, nothing new
  4. collect after 10, then 40 more, new deployments
  5. start-up: devex --help and devex report --dry-run
Scenario 3 is run five times (with --compare, in turn with the other devex's warm runs) and
scenario 4 three times (new deployments made before each run), and the run of median time
reported (its requests; the highest peak memory of them): one run of a sub-second collection
moves by several percent between runs of the same code.
Scenarios 2-4 run twice: on the organisation and on one with a quarter of its history, and the
ratios between the two show what grows with history and what with new work.
Baselines measured in the same run: a sequential client making one request per item (what the
Bash scripts did), timed on a sample and scaled to the item count; and the floor: unique requests
/ concurrency x latency, plus a bare interpreter's start.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.argocd import FakeApplication, FakeArgoCD  # noqa: E402
from tests.fakes.bitbucket import FakeBitbucket  # noqa: E402
from tests.fakes.jira import FakeJira  # noqa: E402
from tests.gitworld import GitRepo, image, kustomization, overlay  # noqa: E402

from devex_cli.demo import DemoService, build_demo  # noqa: E402

ENVIRONMENTS = ("dev", "qa", "preprod", "prod")


@dataclass
class Run:
    seconds: float
    peak_mib: float
    code: int
    out: str
    err: str


def run_devex(args: list[str], env: dict[str, str], cwd: Path | None = None) -> Run:
    """One devex process: wall time, its own peak memory (bench/peak.py: not the benchmark's,
    which a child forked from it would count), output."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile() as peak:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, str(Path(__file__).with_name("peak.py")),
                               peak.name, "--", sys.executable, "-m", "devex_cli", *args],
                              stdout=out, stderr=err, env=env, cwd=cwd, check=False)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        kib = int(Path(peak.name).read_text() or 0)
        return Run(seconds, kib / 1024, done.returncode, out.read().decode(),
                   err.read().decode())


def python_floor(runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def sequential_cost(url: str, headers: dict[str, str], samples: int = 20) -> float:
    """Seconds per request of a sequential client (one request after another)."""
    with httpx.Client(headers=headers, timeout=30) as client:
        started = time.perf_counter()
        for _ in range(samples):
            client.get(url)
        return (time.perf_counter() - started) / samples


def services(count: int) -> list[DemoService]:
    return [DemoService(f"svc{n:02d}", f"P{n:02d}", commits_per_day=2.0 + n % 3,
                        prod_every_weeks=1 + n % 2) for n in range(count)]


def report_row(name: str, run: Run, requests: int, baseline: float | None,
               floor: float | None) -> dict[str, object]:
    row: dict[str, object] = {"scenario": name, "seconds": round(run.seconds, 3),
                              "requests": requests, "peak_mib": round(run.peak_mib, 1)}
    if baseline:
        row["baseline_seconds"] = round(baseline, 3)
        row["devex/baseline"] = round(run.seconds / baseline, 3)
    if floor:
        row["floor_seconds"] = round(floor, 3)
        row["devex/floor"] = round(run.seconds / floor, 2)
    print(json.dumps(row))
    return row


def gate_scenario(root: Path, jira: FakeJira, env: dict[str, str], floor_python: float,
                  latency: float) -> dict[str, object]:
    app = GitRepo(root / "gate-app")
    deployed = app.commit("P99-1 the QA release", {"a": "0"})
    stream = []
    for n in range(500):
        ticket = 2 + n % 200
        message = f"P99-{ticket} change {n}\n\nRefs P99-{2 + (n * 7) % 200}".encode()
        stream.append(b"commit refs/heads/main\n" + f"mark :{n + 1}\n".encode()
                      + b"committer Dev <dev@acme.example> 1790000000 +0000\n"
                      + f"data {len(message)}\n".encode() + message + b"\n"
                      + (f"from {deployed}\n".encode() if n == 0 else b"")
                      + f"M 100644 inline f{n % 20}\ndata 2\n{n % 10}\n\n".encode())
    subprocess.run(["git", "-C", str(app.path), "fast-import", "--quiet"],
                   input=b"".join(stream), check=True, capture_output=True)
    app.git("reset", "-q", "--hard", "main")
    gitops = GitRepo(root / "gate-gitops")
    gitops.commit("qa", {overlay("gate", "qa"): kustomization([image("gate", deployed[:7])])})
    before = len(jira.api_requests())
    run = run_devex(["gate", "qa-release", "--service", "gate", "--gitops", str(gitops.path),
                     "--repo", str(app.path), "--format", "json"], env)
    requests = len(jira.api_requests()) - before
    report = json.loads(run.out)
    assert report["commits"] == 500 and len(report["tickets"]) == 200, report
    per_request = sequential_cost(f"{jira.url}/rest/api/3/issue/P99-2",
                                  {"Authorization": httpx.BasicAuth(
                                      jira.email, jira.token)._auth_header})
    baseline = floor_python + 200 * per_request
    floor = floor_python + math.ceil(math.ceil(200 / 100) / 4) * latency
    return report_row("1 gate: 500 commits, 200 tickets", run, requests, baseline, floor)


@dataclass
class Organisation:
    """A generated organisation served by the fakes, and how devex reaches it."""

    root: Path
    services: int
    days: int
    end: datetime
    jira: FakeJira
    argocd: FakeArgoCD
    bitbucket: FakeBitbucket
    env: dict[str, str]
    collect: list[str]
    gitops_commits: int
    app_commits: int
    new_deployments: int = 0

    def counts(self) -> tuple[int, int, int]:
        return (len(self.jira.api_requests()), len(self.argocd.requests),
                self.bitbucket.api_requests())

    def stop(self) -> None:
        for server in (self.jira, self.argocd, self.bitbucket):
            server.stop()


def organisation(root: Path, *, services_count: int, days: int, seed: int,
                 latency: float) -> Organisation:
    started = time.perf_counter()
    end = datetime.now(UTC).replace(microsecond=0)
    build_demo(root / "org", end=end, days=days, seed=seed, services=services(services_count))
    gitops = root / "org" / "gitops"
    commits = int(subprocess.run(["git", "-C", str(gitops), "rev-list", "--count", "main"],
                                 capture_output=True, text=True).stdout)
    app_commits = sum(int(subprocess.run(
        ["git", "-C", str(p), "rev-list", "--count", "main"], capture_output=True,
        text=True).stdout) for p in (root / "org" / "apps").iterdir())
    print(f"world: {services_count} services x {len(ENVIRONMENTS)} environments x "
          f"{days} days: {commits} GitOps commits, {app_commits} app commits "
          f"(built in {time.perf_counter() - started:.1f}s)")
    jira, argocd, bitbucket = FakeJira().start(), FakeArgoCD().start(), FakeBitbucket().start()
    for server in (jira, argocd, bitbucket):
        server.latency = latency
    jira.auto_projects = {f"P{n:02d}" for n in range(services_count)} | {"P99"}
    for app in (root / "org" / "apps").iterdir():
        bitbucket.repos[app.name] = app
    head = subprocess.run(["git", "-C", str(gitops), "rev-parse", "main"],
                          capture_output=True, text=True).stdout.strip()
    for service in services(services_count):
        for environment in ENVIRONMENTS:
            argocd.add(FakeApplication(f"{service.name}-{environment}",
                                       f"apps/{service.name}/overlays/{environment}",
                                       sync_revision=head))
    remote = root / "remote.toml"
    projects = ", ".join(f'"P{n:02d}"' for n in range(services_count))
    remote.write_text(f'[gitops]\nrepo = "{gitops}"\n\n[jira]\nprojects = [{projects}]\n')
    env = {**os.environ, **jira.env(), **argocd.env(), **bitbucket.env(),
           "XDG_CACHE_HOME": str(root / "cache"), "CI": "true"}
    collect = ["--config", str(remote), "collect", "--format", "json", "--output",
               str(root / "out.json"), "--since", "90d"]
    return Organisation(root, services_count, days, end, jira, argocd, bitbucket, env, collect,
                        commits, app_commits)


def deploy_new(org: Organisation, count: int) -> None:
    """`count` new deployments: a new commit of a service deployed to dev, round the services."""
    for n in range(count):
        service = services(org.services)[n % org.services]
        number = org.new_deployments = org.new_deployments + 1
        when = org.end + timedelta(minutes=2 * number)
        app = GitRepo.__new__(GitRepo)
        app.path = org.root / "org" / "apps" / service.name
        app.clock = when
        app.git("config", "user.name", "Bench")
        app.git("config", "user.email", "bench@acme.example")
        sha = app.commit(f"{service.project}-{9000 + number} a new change",
                         {"new.txt": str(number)}, when=when)
        repo = GitRepo.__new__(GitRepo)
        repo.path, repo.clock = org.root / "org" / "gitops", when
        repo.git("config", "user.name", "Bench")
        repo.git("config", "user.email", "bench@acme.example")
        repo.commit(f"Deploy {service.name} to dev", {
            f"apps/{service.name}/overlays/dev/kustomization.yaml": kustomization(
                [{"name": f"registry.acme.example/shop/{service.name}",
                  "newTag": f"9.9.{number}-{sha[:7]}"}])}, when=when + timedelta(minutes=1))


def collect_once(org: Organisation, env: dict[str, str] | None = None
                 ) -> tuple[Run, list[int]]:
    """One collection of the organisation (by another devex with `env`: `compared_env`) and
    the requests it made of each fake."""
    before = org.counts()
    run = run_devex(org.collect, org.env if env is None else env)
    assert run.code == 0, run.err
    return run, [a - b for a, b in zip(org.counts(), before, strict=True)]


RUNS = 3  # runs of a new-deployments scenario (each adds deployments): the median is reported
WARM_RUNS = 5  # runs of a warm scenario (and of the compared devex's, in turn with them)


def median_run(runs: list[tuple[Run, list[int]]]) -> tuple[Run, list[int]]:
    """The run of median time (with its requests), carrying the highest peak of them all."""
    run, spent = sorted(runs, key=lambda r: r[0].seconds)[len(runs) // 2]
    return Run(run.seconds, max(r.peak_mib for r, _ in runs), run.code, run.out,
               run.err), spent


def items_per_deployment(org: Organisation) -> int:
    """Deployed revisions to resolve plus change sets to list: what a client asking one item
    at a time needs for the organisation's history."""
    from devex_cli.config import load_settings
    from devex_cli.sources.gitops import read_history

    settings = load_settings(org.root / "remote.toml",
                             environ={"XDG_CACHE_HOME": str(org.root / "items-cache")})
    history = read_history(org.root / "org" / "gitops", settings)
    revisions = {(d.service, d.release.revision) for d in history.deployments
                 if d.release.revision}
    ranges = sum(1 for d in history.deployments
                 if d.release.revision and d.previous and d.previous.revision)
    return len(revisions) + ranges


def compared_env(org: Organisation, source: Path) -> dict[str, str]:
    """How another devex (its source tree's `src` folder, first on the path, its bytecode
    compiled as this one's is) collects the same organisation, with a cache of its own; its
    cold collection is run here, so that what follows is warm."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(source)], check=True)
    env = {**org.env, "PYTHONPATH": str(source), "XDG_CACHE_HOME": str(org.root / "compared")}
    collect_once(org, env)
    return env


def collect_scenarios(org: Organisation, floor_python: float, latency: float,
                      label: str = "", compare: Path | None = None) -> dict[str, float]:
    """Scenarios 2-4 on one organisation; returns their seconds (and peaks) by name. With
    `compare`, scenario 3 is also run by the devex of that source tree."""
    cold, spent = collect_once(org)
    unique = sum(spent)
    per_request = sequential_cost(
        f"{org.bitbucket.url}/2.0/repositories/acme/svc00/commit/main",
        {"Authorization": f"Bearer {org.bitbucket.token}"})
    # The Bash scripts' way: a request per deployed revision and per change set, in turn.
    items = items_per_deployment(org)
    baseline = floor_python + items * per_request
    floor = floor_python + (spent[2] / 8 + math.ceil(spent[0] / 4) + spent[1]) * latency
    report_row(f"2 collect cold{label} (jira {spent[0]}, argocd {spent[1]}, "
               f"bitbucket {spent[2]}; {items} items)", cold, unique, baseline, floor)

    # With `compare`, the other devex's warm runs alternate with this one's: a drift of the
    # machine's speed during the scenario moves both alike (their ratio is the figure)
    other = compared_env(org, compare) if compare is not None else None
    warm_runs, other_runs = [], []
    for _ in range(WARM_RUNS):
        warm_runs.append(collect_once(org))
        if other is not None:
            other_runs.append(collect_once(org, other))
    warm, spent_warm = median_run(warm_runs)
    report_row(f"3 collect warm{label} (jira {spent_warm[0]}, argocd {spent_warm[1]}, "
                     f"bitbucket {spent_warm[2]})", warm, sum(spent_warm), None,
                     floor_python + (1 + 1) * latency)
    print(json.dumps({"warm/cold": round(warm.seconds / cold.seconds, 3),
                      "immutable requests (bitbucket)": spent_warm[2]}))
    times = {"cold": cold.seconds, "warm": warm.seconds, "cold_peak": cold.peak_mib,
             "warm_peak": warm.peak_mib}
    if compare is not None:
        revision = subprocess.run(["git", "-C", str(compare), "rev-parse", "--short", "HEAD"],
                                  capture_output=True, text=True).stdout.strip() or "?"
        compared = median_run(other_runs)[0]
        report_row(f"3 collect warm{label}, by devex at {revision} (--compare)", compared, 0,
                   None, floor_python + (1 + 1) * latency)
        times["compared_warm"] = compared.seconds
    for count in (10, 40):
        rounds = []
        for _ in range(RUNS):
            deploy_new(org, count)
            rounds.append(collect_once(org))
        new, spent_new = median_run(rounds)
        report_row(
            f"4 collect after {count} new deployments{label} (jira {spent_new[0]}, argocd "
            f"{spent_new[1]}, bitbucket {spent_new[2]})", new, sum(spent_new),
            floor_python + sum(spent_new) * per_request,
            floor_python + (spent_new[2] / 8 + 2) * latency)
        times[f"new{count}"] = new.seconds
    return times


def gate_in_process(root: Path, env: dict[str, str], latency: float,
                    runs: int = 7) -> dict[str, object]:
    """The gate's own work, in a warm interpreter (imports done, one run before): what the
    interpreter's start and imports add is the rest of scenario 1."""
    from devex_cli.config import load_settings
    from devex_cli.gates import qa_release

    settings = load_settings(None, environ=env)
    options = qa_release.GateOptions(
        service="gate", environment="qa", gitops=str(root / "gate-gitops"),
        repo=root / "gate-app", head="HEAD")
    qa_release.run(options, settings)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        report = qa_release.run(options, settings)
        times.append(time.perf_counter() - started)
        assert report.commits == 500 and len(report.tickets) == 200
    seconds = statistics.median(times)
    floor = math.ceil(math.ceil(200 / 100) / 4) * latency
    row = {"scenario": "1 gate, in process (warm interpreter)", "seconds": round(seconds, 3),
           "floor_seconds": floor, "devex/floor": round(seconds / floor, 2)}
    print(json.dumps(row))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="5 services, 60 days")
    parser.add_argument("--compare", type=Path, metavar="SRC",
                        help="also run the warm collection of the long history with the devex "
                             "of this source folder (a checkout's src/, e.g. a git worktree of "
                             "an older commit)")
    args = parser.parse_args()
    if args.quick:
        args.services, args.days = 5, 60
    # An installed wheel has its bytecode compiled; do the same for the source tree, so that
    # start-up is measured as users get it (PYTHONDONTWRITEBYTECODE may be set).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src")], check=True)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        floor_python = python_floor()
        jira = FakeJira()
        jira.start()
        jira.latency = args.latency
        jira.auto_projects = {"P99"}
        gate_env = {**os.environ, **jira.env(), "XDG_CACHE_HOME": str(root / "gate-cache"),
                    "CI": "true"}
        gate_scenario(root, jira, gate_env, floor_python, args.latency)
        gate_in_process(root, gate_env, args.latency)
        jira.stop()

        # Scenarios 2-4 on the organisation, then on one with a quarter of its history:
        # what a collection costs should follow new work, not the length of the history.
        results = {}
        for days, label in ((args.days, ""), (max(args.days // 4, 14), " (quarter history)")):
            org = organisation(root / f"days-{days}", services_count=args.services, days=days,
                               seed=args.seed, latency=args.latency)
            try:
                results[days] = (org.gitops_commits, collect_scenarios(
                    org, floor_python, args.latency, label,
                    compare=args.compare if days == args.days else None))
            finally:
                org.stop()
        (long_commits, long), (short_commits, short) = results.values()
        print(json.dumps({
            "history": f"{long_commits} vs {short_commits} GitOps commits "
                       f"(x{long_commits / short_commits:.1f})",
            "warm: long/short": round(long["warm"] / short["warm"], 2),
            "10 new: long/short": round(long["new10"] / short["new10"], 2),
            "cold: long/short": round(long["cold"] / short["cold"], 2),
            "40 new vs 10 new (same history)": round(long["new40"] / long["new10"], 2),
            "10 new / warm (long)": round(long["new10"] / long["warm"], 2),
            "warm peak / cold peak (long)": round(long["warm_peak"] / long["cold_peak"], 2),
            **({"warm / compared warm (long)": round(long["warm"] / long["compared_warm"], 2)}
               if "compared_warm" in long else {}),
        }))

        junit = ROOT / "tests" / "data" / "jest-junit.xml"
        for name, argv in (("5 devex --help", ["--help"]),
                           ("5 devex report tests --dry-run",
                            ["report", "tests", "--junit", str(junit), "--dry-run"])):
            runs = [run_devex(argv, {**os.environ, "XDG_CACHE_HOME": str(root / "c")})
                    for _ in range(7)]
            middle = sorted(runs, key=lambda r: r.seconds)[3]
            report_row(name, middle, 0, None, floor_python)


if __name__ == "__main__":
    main()
