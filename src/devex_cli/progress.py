"""Progress of long collections on a terminal: a spinner naming the step, on stderr only when
it is a terminal and not a CI log (`CI` set) nor `--quiet`."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Step = Callable[[str], None]


def _quiet_step(text: str) -> None:
    """No progress to show."""


@contextmanager
def progress(*, quiet: bool) -> Iterator[Step]:
    """Yields a function that names the current step."""
    if quiet or os.environ.get("CI") or not sys.stderr.isatty():
        yield _quiet_step
        return
    from rich.console import Console

    console = Console(stderr=True)
    with console.status("starting", spinner="dots") as status:
        yield lambda text: status.update(text)
