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
    and removes a probe file). Outside the main thread the block runs unchanged.

    The signals are noted by a handler of the block's, and raised again to their own handlers
    when it ends, rather than blocked: a signal the main thread blocks is taken by another
    thread of the process when there is one, and Python then runs its handler in the main
    thread at once, inside the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[int] = []

    def note(signum: int, frame: object) -> None:
        if signum not in noted:
            noted.append(signum)

    # (a handler not installed from Python reads as None: such a signal is left alone)
    previous = {signum: signal.signal(signum, note)
                for signum in (signal.SIGINT, signal.SIGTERM)
                if signal.getsignal(signum) is not None}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for number in noted:
            signal.raise_signal(number)  # to this thread: its handler runs now
