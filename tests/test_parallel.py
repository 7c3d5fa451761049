"""parallel.py: threads side by side, and how quickly they hand the interpreter over."""

from __future__ import annotations

import sys
import threading

from devex_cli.parallel import QUICK_SWITCH, each, in_background, quick_switches


def test_quick_switches_hold_until_the_last_block_ends() -> None:
    """Collections overlap (the exporter's beside an in-process one): the interval stays quick
    while any of them runs, whichever ends first, and Python's own comes back after the last."""
    own = sys.getswitchinterval()
    assert own > QUICK_SWITCH
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[float] = []

    def first() -> None:
        with quick_switches():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with quick_switches():
            second_in.set()
            first_out.wait(5)
            seen.append(sys.getswitchinterval())  # the first one has ended

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == [QUICK_SWITCH] and sys.getswitchinterval() == own
    with quick_switches(), quick_switches():
        assert sys.getswitchinterval() == QUICK_SWITCH
    assert sys.getswitchinterval() == own


def test_work_runs_beside_and_in_order() -> None:
    assert each(lambda n: n * 2, range(40), limit=4) == [n * 2 for n in range(40)]
    assert in_background(lambda: "done", name="test").result(5) == "done"


def test_work_begun_as_a_help_runs_on_a_daemon_thread() -> None:
    """`in_background(daemon=True)`: the result or the exception comes through the future as
    for any background work, from a thread the process does not wait for on its way out."""
    import threading

    from devex_cli.parallel import in_background

    seen: list[bool] = []

    def work() -> int:
        seen.append(threading.current_thread().daemon)
        return 7

    def failing() -> int:
        raise KeyError("lost")

    assert in_background(work, name="t", daemon=True).result(timeout=10) == 7 and seen == [True]
    assert isinstance(in_background(failing, name="t", daemon=True).exception(timeout=10),
                      KeyError)
    assert in_background(work, name="t").result(timeout=10) == 7 and seen == [True, False]


def test_work_begun_from_a_help_runs_on_daemon_threads_in_order() -> None:
    """Work a daemon thread begins (`each`, `in_background`) is a help too: on daemon threads,
    never a pool's (joined as the process exits); `each` keeps the items' order and raises the
    first item's exception once every item is done."""
    import threading
    from concurrent.futures.thread import _threads_queues as joined_at_exit

    from devex_cli.parallel import in_background

    def nested() -> tuple[list[int], list[bool], bool, str]:
        daemons: list[bool] = []

        def double(n: int) -> int:
            here = threading.current_thread()  # (a pool's threads are joined at exit, daemon
            daemons.append(here.daemon and here not in joined_at_exit)  # or not)
            return n * 2

        doubled = each(double, range(40), limit=4)
        inner = in_background(lambda: threading.current_thread() not in joined_at_exit,
                              name="inner")
        finished: list[int] = []
        error = "nothing raised"

        def failing(n: int) -> int:
            if n in (3, 7):
                raise KeyError(n)
            finished.append(n)
            return n

        try:
            each(failing, range(10), limit=3)
        except KeyError as exc:
            error = f"{exc} after {sorted(finished)}"
        return doubled, daemons, inner.result(5), error

    doubled, daemons, inner, error = in_background(nested, name="test", daemon=True).result(5)
    assert doubled == [n * 2 for n in range(40)] and daemons == [True] * 40 and inner
    assert error == "3 after [0, 1, 2, 4, 5, 6, 8, 9]"
