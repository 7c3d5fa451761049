"""`devex demo`'s folders: where `--keep` cannot build (a one-line error, exit 2), a previous
demo's folder built again, and the temporary folder removed when the demo is interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result

Devex = Callable[..., Result]
WAIT = 30.0  # generous: the machine running the tests may be busy


def devex_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "devex_cli", *args]


def one_line_error(result: Result) -> str:
    assert "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    return lines[0]


def until(condition: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)



@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.write_text("x"), "is a file, not a folder"),
    (lambda p: (p.mkdir(), (p / "mine.txt").write_text("x")),
     "is not empty, and not a previous demo's"),
    (lambda p: None, "cannot build the demo in"),  # below a file: nowhere to write
])
def test_demo_keep_where_it_cannot_build(devex: Devex, tmp_path: Path,
                                         make: Callable[[Path], object], message: str) -> None:
    target = tmp_path / "keep"
    make(target)
    if message == "cannot build the demo in":
        (tmp_path / "file").write_text("x")
        target = tmp_path / "file" / "keep"
    result = devex("demo", "--keep", str(target))
    assert result.code == 2
    line = one_line_error(result)
    assert message in line and str(target) in line
    assert "(give --keep a new or empty folder, or one a previous demo made)" in line


def test_demo_keep_again_replaces_the_previous_demo(devex: Devex, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a relative folder, as people type it
    assert devex("demo", "--format", "json", "--keep", "org").code == 0
    (tmp_path / "org" / "notes.txt").write_text("mine")
    (tmp_path / "org" / "gitops" / "left-over").write_text("from the first demo")
    result = devex("demo", "--format", "json", "--keep", "org")
    assert result.code == 0, result.err
    assert (tmp_path / "org" / "notes.txt").read_text() == "mine"  # only its own files replaced
    assert not (tmp_path / "org" / "gitops" / "left-over").exists()
    assert (tmp_path / "org" / "gitops" / ".git").is_dir()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_demo_interrupted_while_building_removes_its_folder(tmp_path: Path, signum: int) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {**os.environ, "TMPDIR": str(temporary), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    with (tmp_path / "demo.err").open("wb") as stderr:
        process = subprocess.Popen(devex_argv("demo"), stdout=subprocess.DEVNULL, stderr=stderr,
                                   env=env, preexec_fn=default_sigint)
        try:
            # the folder appears at the start of a build that takes a second or more
            assert until(lambda: any(temporary.iterdir()), timeout=WAIT)
            process.send_signal(signum)
            code = process.wait(timeout=WAIT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert code == 130
    assert (tmp_path / "demo.err").read_text() == "devex: error: interrupted\n"
    assert list(temporary.iterdir()) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupt_waits_for_the_end_of_a_held_step(signum: int) -> None:
    """The demo makes its temporary folder with signals held: an interrupt that comes while
    `tempfile` writes its probe file or makes the folder arrives once the folder's name is
    kept, so the `finally` that removes it knows of it (an interrupt in between left one)."""
    from devex_cli.interrupt import signals_held, sigterm_as_interrupt

    finished = False
    with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt(), signals_held():
        os.kill(os.getpid(), signum)
        time.sleep(0.05)  # the signal, were it not held, would be handled here
        finished = True
    assert finished


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupt_waits_for_the_held_step_while_another_thread_runs(signum: int) -> None:
    """Another thread of the process (a server's, a pool's) does not let the interrupt in: a
    signal the main thread blocked would be taken by that thread and acted on inside the
    step; the step's own handler notes it, and it is raised once the step is done."""
    import threading

    from devex_cli.interrupt import signals_held, sigterm_as_interrupt

    idle = threading.Event()
    other = threading.Thread(target=idle.wait, daemon=True)
    other.start()
    finished = False
    try:
        with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt(), signals_held():
            os.kill(os.getpid(), signum)
            time.sleep(0.05)
            finished = True
    finally:
        idle.set()
        other.join()
    assert finished


def test_the_temporary_folder_goes_while_a_cut_short_git_still_writes_in_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An interrupt can leave a git process (killed, or started as it came) that lands its last
    file while the folder is being removed: the folder still goes (the flaky SIGTERM case of
    the test above)."""
    import shutil

    from devex_cli.commands.demo import remove_folder

    folder = tmp_path / "devex-demo-x"
    marks = folder / "org" / "apps" / "payments" / ".git" / "demo-marks"
    marks.parent.mkdir(parents=True)
    real, calls = shutil.rmtree, []

    def removed_while_written(path: Path, ignore_errors: bool = False) -> None:
        calls.append(path)
        real(path, ignore_errors=ignore_errors)
        if len(calls) == 1:  # git's marks land while the walk is under way: what it leaves
            marks.parent.mkdir(parents=True)
            marks.write_text(":1 abc\n")

    monkeypatch.setattr(shutil, "rmtree", removed_while_written)
    remove_folder(folder, pause=0)
    assert not folder.exists()
