"""The cache folder and its files: private whoever made them, and a write that fails leaves
nothing behind and fails no command (a cache is an optimisation)."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devex_cli import cache as cache_module
from devex_cli.cache import INTEGER, JsonCache, fields
from devex_cli.store import _StoreFile
from tests.conftest import Result
from tests.gitworld import GitRepo, image, kustomization, overlay

Devex = Callable[..., Result]


@pytest.fixture
def gitops(tmp_path: Path) -> Path:
    repo = GitRepo(tmp_path / "gitops")
    repo.commit("qa", {overlay("pay", "qa"): kustomization([image("pay", "58ddfd6")])})
    repo.commit("prod", {overlay("pay", "prod"): kustomization([image("pay", "58ddfd6")])})
    return repo.path


@pytest.fixture
def umask_022() -> Iterator[None]:
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def run_commands(devex: Devex, gitops: Path, env: dict[str, str] | None = None) -> str:
    """status and an offline collection (every cache they keep is written); their stderr."""
    errors = ""
    for command in ("status", "collect"):
        result = devex(command, "--gitops", str(gitops), "--offline", "--format", "json",
                       env=env)
        assert result.code == 0, result.err
        errors += result.err
    return errors


def no_space(*args: Any, **kwargs: Any) -> Any:
    raise OSError(errno.ENOSPC, "No space left on device")


def store_full(*args: Any, **kwargs: Any) -> Any:
    """SQLite's answer when the disk fills up while the store is written."""
    error = sqlite3.OperationalError("database or disk is full")
    error.sqlite_errorname = "SQLITE_FULL"  # type: ignore[attr-defined]
    raise error


@pytest.mark.parametrize("failing", ["write", "rename"])
def test_a_failed_cache_write_leaves_no_temporary_file_and_fails_nothing(
        devex: Devex, gitops: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        failing: str) -> None:
    cache = tmp_path / "cache" / "devex"
    with monkeypatch.context() as patch:
        if failing == "rename":
            patch.setattr(os, "replace", no_space)
        else:
            opened = os.fdopen

            def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
                handle = opened(fd, *args, **kwargs)
                handle.write = no_space  # the disk fills up while the cache is written
                return handle

            patch.setattr(os, "fdopen", fdopen)
        patch.setattr(_StoreFile, "_transaction", store_full)
        errors = run_commands(devex, gitops)
        warned: list[str] = []  # a JSON cache (those are written online) fails the same way
        patch.setattr(cache_module.log, "warning", lambda text, *args: warned.append(text % args))
        JsonCache(cache, "argocd-history", version=1, shape=fields(a=INTEGER)).save({"a": 1})
    assert any("cannot write the cache" in w and "No space left on device" in w for w in warned)
    assert "cannot write the store" in errors and "database or disk is full" in errors
    assert "Traceback" not in errors
    assert cache.is_dir()
    assert [p.name for p in cache.rglob("*") if p.is_file()] == []  # no .tmp-*, no cache
    run_commands(devex, gitops)  # the disk has room again: the caches are written
    with contextlib.closing(sqlite3.connect(cache / "devex.sqlite3")) as db:
        states = db.execute("SELECT count(*) FROM reader_state").fetchone()[0]
    assert states == 2  # status's and collect's GitOps reader
    assert not list(cache.rglob(".tmp-*"))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _assert_private(root: Path) -> None:
    assert _mode(root) == 0o700
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files, "no cache was written"
    for path in files:
        assert _mode(path) == 0o600, path
    for path in root.rglob("*"):
        if path.is_dir():
            assert _mode(path) & 0o077 == 0, path


@pytest.mark.usefixtures("umask_022")
def test_the_cache_folder_devex_creates_is_private(devex: Devex, gitops: Path,
                                                   tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"  # not there yet: devex creates it and its folder under umask 022
    run_commands(devex, gitops, env={"XDG_CACHE_HOME": str(xdg)})
    _assert_private(xdg / "devex")
    assert _mode(xdg) == 0o755  # the XDG folder is not devex's to change


@pytest.mark.usefixtures("umask_022")
def test_the_cache_folder_is_private_when_the_gitops_clone_creates_it(
        devex: Devex, gitops: Path, tmp_path: Path) -> None:
    """A URL is cloned into the cache before any cache file is written."""
    root = tmp_path / "custom" / "devex-cache"
    result = devex("status", "--gitops", f"file://{gitops}", "--offline",
                   env={"DEVEX_CACHE_DIR": str(root)})
    assert result.code == 0, result.err
    assert _mode(root) == 0o700


@pytest.mark.usefixtures("umask_022")
def test_a_loose_cache_folder_of_the_user_is_tightened(devex: Devex, gitops: Path,
                                                       tmp_path: Path) -> None:
    root = tmp_path / "shared-cache"
    root.mkdir(mode=0o777)
    root.chmod(0o777)
    run_commands(devex, gitops, env={"DEVEX_CACHE_DIR": str(root)})
    _assert_private(root)


def test_a_cache_folder_that_cannot_be_made_fails_nothing(devex: Devex, gitops: Path,
                                                          tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    errors = run_commands(devex, gitops, env={"DEVEX_CACHE_DIR": str(blocker / "devex")})
    assert errors.count("cannot make the cache folder") == 1
    assert "cannot write the store" in errors and "Traceback" not in errors
