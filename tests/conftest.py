from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.jira import FakeJira

# Variables a developer's shell or a pipeline may set that would leak into a test's run.
_ISOLATED = ("JIRA_", "ARGOCD_", "BITBUCKET_", "TEAMS_WEBHOOK_", "PUSHGATEWAY_", "DEVEX_")

FAST_HTTP = "[http]\nbackoff = 0.01\nmax_retry_after = 2\nretries = 3\ntimeout = 5\n"


PLANS_GONE_ON: list[str] = []  # the collections whose plan went on from a kept past's
WHOLE_PLAN: list[bool] = []  # not empty while the whole history's plan is made to compare


@pytest.fixture(autouse=True)
def _plans_compared(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every collection of the suite that plans from where a kept past's deployments are
    (`Horizon._go_on`) is checked against the plan of the whole history: the same positions,
    keys and records to make again, and the same verdict on Argo CD's times."""
    from devex_cli import horizon as module

    plan, right = module.Horizon.plan.__func__, module.Horizon._guessed_right  # type: ignore[attr-defined]

    def compared(cls: type[module.Horizon], *args: Any, **kwargs: Any) -> module.Horizon:
        planned = plan(cls, *args, **kwargs)
        if planned.prefix is not None:
            PLANS_GONE_ON.append(planned.store.name)
            WHOLE_PLAN.append(True)
            try:
                whole = plan(cls, *args, **{**kwargs, "whole": True})
            finally:
                WHOLE_PLAN.pop()
            assert whole.prefix is None
            assert (planned.positions, planned.before, planned.unsettled, planned.validity) == (
                whole.positions, whole.before, whole.unsettled, whole.validity)
        return planned

    def checked(self: module.Horizon, cut: datetime) -> bool:
        verdict = right(self, cut)
        if self.prefix is not None:
            prefix, self.prefix = self.prefix, None
            try:
                assert right(self, cut) == verdict
            finally:
                self.prefix = prefix
        return verdict

    monkeypatch.setattr(module.Horizon, "plan", classmethod(compared))
    monkeypatch.setattr(module.Horizon, "_guessed_right", checked)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(_ISOLATED) and name != "DEVEX_UPDATE_GOLDEN":  # the tests' own switch
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # settings read with `environ={}` fall back to ~/.cache: never the developer's own
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    server = FakeJira().start()
    yield server
    server.stop()


@pytest.fixture
def jira_dc() -> Iterator[FakeJira]:
    server = FakeJira(cloud=False).start()
    yield server
    server.stop()


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def devex(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> object:
    """Run `devex ARGS` in this process: exit code, stdout and stderr.

    Unless the arguments name a --config, a devex.toml with fast HTTP retries is used.
    """
    from devex_cli.cli import main

    default_config = tmp_path / "fast-devex.toml"
    default_config.write_text(FAST_HTTP)

    def run(*args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None,
            config: str | None = None) -> Result:
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        if cwd is not None:
            monkeypatch.chdir(cwd)
        argv = list(args)
        if "--config" not in argv:
            argv = ["--config", config or str(default_config), *argv]
        capsys.readouterr()
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        else:  # pragma: no cover - main always exits
            code = 0
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
