from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Result

Devex = Callable[..., Result]


def test_help_lists_commands(devex: Devex) -> None:
    result = devex("--help")
    assert result.code == 0
    assert "gate" in result.out


def test_version(devex: Devex) -> None:
    from devex_cli import __version__

    assert devex("--version").out.strip() == f"devex {__version__}"


def test_unknown_flag_is_a_usage_error(devex: Devex) -> None:
    result = devex("gate", "qa-release", "--bogus")
    assert result.code == 2
    assert "No such option: --bogus" in result.err


def test_bad_format_value(devex: Devex, tmp_path: Path) -> None:
    result = devex("gate", "qa-release", "--format", "yaml", "--service", "x")
    assert result.code == 2
    assert result.err.strip() == "devex: error: --format must be text or json, not 'yaml'"


def test_config_error_is_one_line_exit_2(devex: Devex, tmp_path: Path) -> None:
    config = tmp_path / "devex.toml"
    config.write_text("[jira]\nurll = 'x'\n")
    result = devex("gate", "qa-release", "--service", "x", config=str(config))
    assert result.code == 2
    assert result.err.startswith("devex: error: ") and "unknown key jira.urll" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert "Traceback" not in result.err


def test_missing_service(devex: Devex, tmp_path: Path) -> None:
    result = devex("gate", "qa-release", "--repo", str(tmp_path))
    assert result.code == 2
    assert "no service given" in result.err


def test_not_a_repository(devex: Devex, tmp_path: Path) -> None:
    result = devex("gate", "qa-release", "--service", "x", "--repo", str(tmp_path))
    assert result.code == 2 and "is not a git repository" in result.err


def test_startup_imports_stay_lazy() -> None:
    """`devex --help` must not pay for the HTTP, YAML, template or metrics stacks."""
    heavy = ["httpx", "yaml", "jinja2", "rich", "stamina", "prometheus_client", "pydantic",
             "sqlite3", "devex_cli.config", "devex_cli.sources.jira", "devex_cli.sources.gitops"]
    code = ("import sys, devex_cli.cli\n"
            f"print(','.join(m for m in {heavy!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == ""


def test_module_entry_point() -> None:
    done = subprocess.run([sys.executable, "-m", "devex_cli", "--version"], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0 and done.stdout.startswith("devex ")


def test_help_and_version_short_flags(devex: Devex) -> None:
    from devex_cli import __version__

    for args in ((), ("-h",), ("--help",), ("gate",), ("gate", "-h")):
        result = devex(*args)
        assert result.code == 0, (args, result.err)
        assert "Usage: devex" in result.out and result.err == "", args
    assert devex("-V").out.strip() == f"devex {__version__}"


def test_usage_errors_are_one_devex_line(devex: Devex) -> None:
    for args, message in ((("report", "deployment"), "Missing option '--environment'"),
                          (("collect", "--since"), "Option '--since' requires an argument"),
                          (("gate", "qa-release", "--bogus"), "No such option: --bogus")):
        result = devex(*args)
        assert result.code == 2, args
        assert result.err.startswith(f"devex: error: {message}"), result.err
        assert result.err.count("\n") == 1 and "--help)" in result.err


def test_collect_tables_go_to_the_output_file(devex: Devex, tmp_path: Path) -> None:
    from tests.worlds import World

    world = World(tmp_path / "world")
    out = tmp_path / "tables.txt"
    result = devex("collect", "--offline", "--output", str(out), config=str(world.config))
    assert result.code == 0, result.err
    assert result.out == ""
    text = out.read_text()
    assert "Deployments this month" in text and "\x1b" not in text


def test_a_collection_resumes_the_cycle_collector_once_its_figures_are_written(
        devex: Devex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Paused while the figures are computed and written (a pass then walks them all), and
    running again after, as before: an in-process caller keeps its collector."""
    import gc

    from devex_cli.commands import collect as command
    from tests.worlds import World

    seen: list[bool] = []
    write = command._write_snapshot

    def written(*args: Any, **kwargs: Any) -> None:
        seen.append(gc.isenabled())
        write(*args, **kwargs)

    monkeypatch.setattr(command, "_write_snapshot", written)
    world = World(tmp_path / "world")
    assert gc.isenabled()
    result = devex("collect", "--offline", "--output", str(tmp_path / "t.txt"),
                   config=str(world.config))
    assert result.code == 0, result.err
    assert seen == [False] and gc.isenabled()


def test_a_gateway_that_is_no_url_is_refused_at_once(devex: Devex, tmp_path: Path) -> None:
    prom = tmp_path / "m.prom"
    prom.write_text("# TYPE x gauge\nx 1\n")
    result = devex("push-metrics", "--from", str(prom), "--gateway", "not-a-url")
    assert result.code == 2, result.err
    assert "is not an http(s) URL" in result.err and result.err.count("\n") == 1
