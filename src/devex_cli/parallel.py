"""Work side by side: a few threads for I/O (git processes, HTTP round trips), never for
computation."""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Services are read side by side up to this many; each source bounds its own requests.
SERVICES_AT_ONCE = 16
# How long a thread holding the interpreter runs before one waiting for it takes it over, while
# `quick_switches` holds (Python's default: 5 ms)
QUICK_SWITCH = 0.0005

_switching = threading.Lock()
_quick = 0  # blocks inside `quick_switches`
_interval = 0.005  # the interval before the first of them


@contextlib.contextmanager
def quick_switches() -> Iterator[None]:
    """Within the block, a thread that comes back from a short blocking call (an SQLite query,
    a git pipe) gets the interpreter back within `QUICK_SWITCH` from a background thread busy
    computing (importing the HTTP stack, parsing an answer), not up to 5 ms later: a collection
    makes hundreds of such calls while its Argo CD and Jira threads work. Python's interval
    comes back once the last block ends."""
    global _quick, _interval
    with _switching:
        if _quick == 0:
            _interval = sys.getswitchinterval()
            sys.setswitchinterval(min(_interval, QUICK_SWITCH))
        _quick += 1
    try:
        yield
    finally:
        with _switching:
            _quick -= 1
            if _quick == 0:
                sys.setswitchinterval(_interval)


def in_background(work: Callable[[], R], *, name: str, daemon: bool = False) -> Future[R]:
    """Start `work` on its own thread now; its result (or exception) waits in the future.
    A `daemon` thread's work is only ever a help (an answer asked ahead): the process does not
    wait for it on its way out (a failing command exits at once, not after a hung server's
    retries). Work begun from such a thread is a help too: on a daemon thread of its own."""
    if not daemon and not threading.current_thread().daemon:
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"devex-{name}")
        future = pool.submit(work)
        pool.shutdown(wait=False)
        return future
    helped: Future[R] = Future()
    helped.set_running_or_notify_cancel()
    threading.Thread(target=_fulfil, args=(helped, work), name=f"devex-{name}",
                     daemon=True).start()
    return helped


def _fulfil(future: Future[R], work: Callable[[], R]) -> None:
    """`work`'s result, or its exception, in `future` (the caller hears it from there)."""
    try:
        future.set_result(work())
    except BaseException as exc:
        future.set_exception(exc)


def each(work: Callable[[T], R], items: Iterable[T], *, limit: int) -> list[R]:
    """`work` on every item, at most `limit` at a time; results in the items' order. The first
    exception is raised once every item is done."""
    todo = list(items)
    if not todo:
        return []
    if threading.current_thread().daemon:  # a help's (`in_background`): its threads are
        return _each_on_daemons(work, todo, limit)  # not waited for on the way out either
    with ThreadPoolExecutor(max_workers=max(1, min(limit, len(todo)))) as pool:
        return list(pool.map(work, todo))


def _each_on_daemons(work: Callable[[T], R], todo: list[T], limit: int) -> list[R]:
    """`each` on daemon threads (a pool's threads are joined as the process exits, daemon or
    not)."""
    done: list[Future[R]] = [Future() for _ in todo]
    positions = iter(range(len(todo)))
    taking = threading.Lock()

    def run() -> None:
        while True:
            with taking:
                position = next(positions, -1)
            if position < 0:
                return
            # (an exception is raised below, in the items' order)
            _fulfil(done[position], functools.partial(work, todo[position]))

    threads = [threading.Thread(target=run, daemon=True)
               for _ in range(max(1, min(limit, len(todo))))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [future.result() for future in done]
