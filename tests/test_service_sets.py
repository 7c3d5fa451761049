"""`collect.services`: a collector reads and exposes a set of services, so that collectors side by
side split a large organisation (docs/performance.md); together they expose what one collector
of everything exposes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import Result

Devex = Callable[..., Result]
END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ALL = ("catalog", "checkout", "notifications", "payments")


@pytest.fixture(scope="module")
def organisation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's four services, 60 days; returns its devex.toml."""
    from devex_cli.demo import build_demo

    return build_demo(tmp_path_factory.mktemp("org"), end=END, days=60)


def collect(devex: Devex, config: Path, output_format: str, *, services: str = "") -> Result:
    env = {"DEVEX_COLLECT_SERVICES": services or ""}  # empty: unset (the file's, else all)
    return devex("collect", "--offline", "--format", output_format, "--since", "30d",
                 "--until", "2026-11-20", env=env, config=str(config))


def test_a_collector_reads_only_its_services(devex: Devex, organisation: Path) -> None:
    result = collect(devex, organisation, "json", services="pay*, checkout")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert [s["service"] for s in report["services"]] == ["checkout", "payments"]
    assert {d["service"] for d in report["deployments"]} == {"checkout", "payments"}
    assert {t["service"] for t in report["tickets_in_environment"]} <= {"checkout", "payments"}
    everything = json.loads(collect(devex, organisation, "json").out)
    assert [s["service"] for s in everything["services"]] == list(ALL)
    # the same figures for the services it serves
    mine = {s["service"]: s for s in everything["services"]}
    assert [mine["checkout"], mine["payments"]] == report["services"]


def series(text: str) -> set[str]:
    """The per-service series of a Prometheus exposition (name and labels, not values: ages
    move with the clock); the organisation-wide ones (service="") are each collector's own."""
    return {line.split(" ")[0] for line in text.splitlines()
            if re.search(r'\bservice="[^"]', line)}


def test_two_collectors_expose_what_one_exposes(devex: Devex, organisation: Path) -> None:
    whole = collect(devex, organisation, "prometheus")
    first = collect(devex, organisation, "prometheus", services="pay*,checkout")
    second = collect(devex, organisation, "prometheus", services="catalog,notifications")
    assert whole.code == first.code == second.code == 0, (first.err, second.err)
    assert series(first.out) and series(second.out)
    assert not series(first.out) & series(second.out)
    assert series(first.out) | series(second.out) == series(whole.out)
    assert 'service="catalog"' not in first.out and 'service="payments"' not in second.out


def test_the_set_is_a_key_of_the_file(devex: Devex, organisation: Path,
                                      tmp_path: Path) -> None:
    config = tmp_path / "devex.toml"
    config.write_text(organisation.read_text().replace(
        'repo = "gitops"', f'repo = "{organisation.parent / "gitops"}"').replace(
        'repo = "apps/', f'repo = "{organisation.parent / "apps"}/')
        + '\n[collect]\nservices = ["cat*"]\n')
    result = collect(devex, config, "json")
    assert result.code == 0, result.err
    assert [s["service"] for s in json.loads(result.out)["services"]] == ["catalog"]


def test_other_services_app_repositories_are_not_opened(devex: Devex, organisation: Path,
                                                        tmp_path: Path) -> None:
    """A collector of payments does not open the repositories of services it does not serve:
    one missing there is not its failure (its git source stays up)."""
    config = tmp_path / "devex.toml"
    config.write_text(organisation.read_text().replace(
        'repo = "gitops"', f'repo = "{organisation.parent / "gitops"}"').replace(
        'repo = "apps/', f'repo = "{organisation.parent / "apps"}/').replace(
        f'repo = "{organisation.parent / "apps"}/catalog"', 'repo = "/nonexistent/catalog"'))
    served = collect(devex, config, "json", services="payments")
    assert served.code == 0, served.err
    assert json.loads(served.out)["sources"] == {"gitops": True, "git": True}
    everything = collect(devex, config, "json")
    assert json.loads(everything.out)["sources"]["git"] is False  # what the set spared it


def test_a_pattern_matching_no_service_is_named(devex: Devex, organisation: Path) -> None:
    """One pattern of a set with a typo (`chekout`) serves fewer services than meant: the
    collection goes on with the others, and says which pattern matched nothing."""
    result = collect(devex, organisation, "json", services="pay*,chekout")
    assert result.code == 0, result.err
    assert [s["service"] for s in json.loads(result.out)["services"]] == ["payments"]
    assert ("collect.services pattern 'chekout' matches none of the GitOps repository's "
            "services; the others serve payments") in result.err
    assert "pay*" not in result.err


def test_a_set_matching_no_service_is_an_input_error(devex: Devex, organisation: Path) -> None:
    result = collect(devex, organisation, "json", services="billing*")
    assert result.code == 2
    assert "collect.services (billing*) matches none of the 4 services" in result.err
    assert "Traceback" not in result.err


def test_argocd_applications_map_to_a_served_service_as_in_the_whole_repository() -> None:
    """The Argo CD application of a folder that gives two services (an umbrella chart) is
    neither's, and one of another service's folder is that service's even when named after a
    served one: a collector of payments maps them as a collector of everything does."""
    from devex_cli.sources.argocd import Application, map_applications
    from devex_cli.sources.gitops import GitOpsHistory

    whole = GitOpsHistory(
        head="h", branch="main", deployments=(), current={}, skipped=(),
        environments=("prod",), production="prod", services=("catalog", "payments"),
        owners={"umbrella/prod": (("catalog", "prod"), ("payments", "prod")),
                "catalog/prod": (("catalog", "prod"),)})

    def application(name: str, path: str) -> Application:
        return Application(name, "default", "git", path, "main", "Synced", None, "Healthy",
                           None, None, None, None, (), ())

    apps = [application("umbrella-prod", "umbrella/prod"),
            application("payments-prod", "catalog/prod")]

    def mapped(history: GitOpsHistory) -> dict[tuple[str, str], str]:
        found = map_applications(apps, owner_of_path=history.owner_of,
                                 services=history.services,
                                 environments=history.environments, explicit={})
        return {key: app.name for key, app in found.items()}

    assert mapped(whole) == {("catalog", "prod"): "payments-prod"}
    assert mapped(whole.only(["pay*"])) == {}


def test_explaining_a_service_outside_the_set_says_so(devex: Devex, organisation: Path) -> None:
    """Not "the GitOps repository has payments": it has checkout too, this collector does not
    read it."""
    result = devex("explain", "lead-time", "--service", "checkout", "--offline",
                   env={"DEVEX_COLLECT_SERVICES": "pay*"}, config=str(organisation))
    assert result.code == 2
    assert "'checkout' is not one this collector reads: collect.services is pay*" in result.err
    assert "Traceback" not in result.err
    served = devex("explain", "lead-time", "--service", "payments", "--offline",
                   env={"DEVEX_COLLECT_SERVICES": "pay*"}, config=str(organisation))
    assert served.code == 0, served.err
