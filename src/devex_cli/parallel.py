"""Work side by side: a few threads for I/O (git processes, HTTP round trips), never for
computation."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Services are read side by side up to this many; each source bounds its own requests.
SERVICES_AT_ONCE = 16


def in_background(work: Callable[[], R], *, name: str) -> Future[R]:
    """Start `work` on its own thread now; its result (or exception) waits in the future."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"devex-{name}")
    future = pool.submit(work)
    pool.shutdown(wait=False)
    return future


def each(work: Callable[[T], R], items: Iterable[T], *, limit: int) -> list[R]:
    """`work` on every item, at most `limit` at a time; results in the items' order. The first
    exception is raised once every item is done."""
    todo = list(items)
    if not todo:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(limit, len(todo)))) as pool:
        return list(pool.map(work, todo))
