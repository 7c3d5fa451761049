"""SIGTERM handled as Ctrl-C is, for commands that run until stopped or leave things to clean up."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt as SIGINT does.

    Python's default for SIGTERM ends the process at once (exit 143): no `finally` runs, so a
    container or service manager stopping devex would leave temporary folders behind. Outside
    the main thread (where signals cannot be handled) the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def signals_held() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM wait (they arrive when it ends): for a step that must
    not be cut in two, such as making a temporary folder and recording its name, so that an
    interrupt cannot leave one behind that nothing knows of (`tempfile`'s first use also writes
    and removes a probe file). Outside the main thread the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
