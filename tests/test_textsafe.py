"""textsafe: outside values made inert for a terminal, rich markup and Teams Markdown; and the
text views that use it (the gate's message, status and collect tables, warnings, errors)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from devex_cli.textsafe import WORD_JOINER, md, safe, safe_markup
from tests.conftest import Result
from tests.gitworld import GitRepo, image, kustomization, overlay

Devex = Callable[..., Result]


def test_control_characters_become_visible_escapes() -> None:
    assert safe("QA\x1b[2J\x1b[H ok") == "QA\\x1b[2J\\x1b[H ok"
    assert safe("a\nb\r\tc\x00\x7f\x9b\x85") == "a\\nb\\r\\tc\\x00\\x7f\\x9b\\x85"
    assert safe("abc\u202edef\u2066\u2069") == "abc\\u202edef\\u2066\\u2069"
    assert safe("é 🚀 ✅ · → ü") == "é 🚀 ✅ · → ü"  # printable text is untouched
    assert safe(42) == "42"


@given(st.text())
def test_no_control_character_survives(text: str) -> None:
    out = safe(text)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or 0x202A <= ord(c) <= 0x202E
                   or 0x2066 <= ord(c) <= 0x2069 for c in out)


def test_markup_is_printed_as_written() -> None:
    from rich.console import Console

    value = "\x1b[1A[bold red]ALLOWED[/] [link=https://evil.example]x[/link]"
    buffer = io.StringIO()
    Console(file=buffer, width=200, no_color=True).print(f"[bold]{safe_markup(value)}[/bold]")
    assert buffer.getvalue() == \
        "\\x1b[1A[bold red]ALLOWED[/] [link=https://evil.example]x[/link]\n"


def test_markdown_links_are_not_links() -> None:
    assert md("[Approve deployment](https://evil.example/phish)") == \
        f"\\[Approve deployment\\]\\(https:/{WORD_JOINER}/evil\\.example/phish\\)"
    assert md("<https://evil.example>") == f"\\<https:/{WORD_JOINER}/evil\\.example\\>"
    assert md("//evil.example a/b") == f"/{WORD_JOINER}/evil\\.example a/b"
    assert md("see www.evil.com or evil.com/x") == "see www\\.evil\\.com or evil\\.com/x"
    assert md("![i](u) **b** _i_ `c` ~~s~~ a\\b &amp; {{DATE(x)}}") == (
        "!\\[i\\]\\(u\\) \\*\\*b\\*\\* \\_i\\_ \\`c\\` \\~\\~s\\~\\~ a\\\\b \\&amp; "
        "\\{\\{DATE\\(x\\)\\}\\}")


def test_markdown_blocks_only_at_a_line_start() -> None:
    assert md("1. one\n- two\n# three\n  > four\n---\n2) five") == \
        "1\\. one\n\\- two\n\\# three\n  \\> four\n--\\-\n2\\) five"
    # what only looks like a block marker stays as it is
    assert md("1.4.2-58ddfd6 -5s feature/PAY-9-refunds #412") == \
        "1.4.2-58ddfd6 -5s feature/PAY-9-refunds #412"


# What a hostile Jira ticket, commit or GitOps tag may hold: a screen clear and cursor home, rich
# markup that would print a green verdict, and a right-to-left override.
HOSTILE = "1.0\x1b[2J\x1b[H[bold red]ALLOWED[/]\u202e"
SHOWN = "1.0\\x1b[2J\\x1b[H[bold red]ALLOWED[/]\\u202e"


def assert_inert(output: str) -> None:
    assert "\x1b" not in output and "\u202e" not in output
    assert SHOWN in output  # the brackets are there to read, not taken as markup


def test_gate_messages_show_jira_text_inert() -> None:
    from devex_cli.gates.decision import GateReport, GateTicket
    from devex_cli.gates.messages import render_text

    evil = GateTicket("PAY-2", (), HOSTILE, f"Login {HOSTILE}\nsecond line",
                      "https://acme.atlassian.net/browse/PAY-2")
    blocked = render_text(GateReport("blocked", "pay", "qa", "58ddfd6", "abc", 2, (evil,),
                                     ("PAY-2",)))
    assert_inert(blocked)
    assert blocked.startswith("=" * 72 + "\n" + "QA DEPLOYMENT BLOCKED".center(72).rstrip())
    assert f"  - PAY-2 [{SHOWN}] Login {SHOWN} second line" in blocked
    fine = GateTicket("PAY-3", (HOSTILE,), HOSTILE, "ok", "https://acme.atlassian.net/browse/PAY-3")
    allowed = render_text(GateReport("allowed", "pay", "qa", "58ddfd6", "abc", 1, (fine,)))
    assert_inert(allowed)
    assert f"  PAY-3   {SHOWN}  {SHOWN}" in allowed  # under TICKET, FIX VERSIONS, STATUS


def test_gate_output_from_a_hostile_jira(devex: Devex, tmp_path: Path) -> None:
    from tests.fakes.jira import FakeJira

    app = GitRepo(tmp_path / "app")
    deployed = app.commit("init")
    app.commit("PAY-2 login")
    gitops = GitRepo(tmp_path / "gitops")
    gitops.commit("qa", {overlay("app", "qa"): kustomization([image("app", deployed[:7])])})
    jira = FakeJira().start()
    try:
        jira.add("PAY-2", summary=HOSTILE, status=HOSTILE)
        result = devex("gate", "qa-release", "--service", "app", "--repo", str(app.path),
                       "--gitops", str(gitops.path), env=jira.env())
    finally:
        jira.stop()
    assert result.code == 1, result.err
    assert_inert(result.out)
    assert "QA DEPLOYMENT BLOCKED" in result.out


def hostile_gitops(tmp_path: Path) -> GitRepo:
    repo = GitRepo(tmp_path / "gitops")
    tag = '"1.0\\e[2J\\e[H[bold red]ALLOWED[/]\\u202e"'  # YAML's own escapes for ESC and U+202E
    for environment in ("qa", "prod"):
        repo.commit(f"{environment}", {overlay("pay", environment): kustomization(
            [{"name": "registry.example.com/team/pay", "newTag": tag}])})
    return repo


def test_status_table_shows_a_hostile_tag_inert(devex: Devex, tmp_path: Path) -> None:
    repo = hostile_gitops(tmp_path)
    result = devex("--no-color", "status", "--gitops", str(repo.path))
    assert result.code == 0, result.err
    assert_inert(result.out)
    assert "Skipped" not in result.out  # the tag names no commit: read as a version, not skipped


def test_collect_tables_show_a_hostile_tag_inert(devex: Devex, tmp_path: Path) -> None:
    repo = hostile_gitops(tmp_path)
    result = devex("--no-color", "collect", "--offline", "--gitops", str(repo.path),
                   "--since", "2026-08-01", "--until", "2026-10-01")
    assert result.code == 0, result.err
    assert "\x1b" not in result.out and "\u202e" not in result.out
    dora = result.out.split("DORA figures")[1]  # the `runs` cell, wrapped on two lines
    assert "1.0\\x1b[2J\\x1b[H[bo" in dora and "red]ALLOWED[/]\\u202e" in dora


def test_warnings_and_errors_quote_outside_values_inert(devex: Devex, tmp_path: Path) -> None:
    result = devex("status", "--gitops", str(tmp_path / f"missing{HOSTILE}"))
    assert result.code == 2
    assert "\x1b" not in result.err and "\u202e" not in result.err
    assert "missing1.0\\x1b[2J" in result.err

    import logging

    from devex_cli.cli import _setup_logging

    _setup_logging(verbose=False, quiet=False)
    handler = logging.getLogger("devex").handlers[0]
    record = logging.LogRecord("devex.report", logging.WARNING, __file__, 1,
                               "not delivered to %s: %s", ("qa", HOSTILE), None)
    assert handler.format(record) == f"devex: warning: not delivered to qa: {SHOWN}"


def test_exporter_logs_a_hostile_request_line_inert(tmp_path: Path) -> None:
    import os
    import socket
    import sys

    from tests.services import free_port, running

    repo = GitRepo(tmp_path / "gitops")
    repo.commit("prod", {overlay("pay", "prod"): kustomization([image("pay", "58ddfd6")])})
    port = free_port()
    log = tmp_path / "devex.log"
    argv = [sys.executable, "-m", "devex_cli", "-v", "collect", "--offline", "--gitops",
            str(repo.path), "--serve", "--listen", f"127.0.0.1:{port}"]
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    with (running(argv, f"http://127.0.0.1:{port}/healthz", log=log, env=env),
          socket.create_connection(("127.0.0.1", port), timeout=5) as sock):
        sock.sendall(b"GET /x\x1b[2J\x1b[H\xe2\x80\xae HTTP/1.0\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.0 404")
    written = log.read_bytes()
    assert b"\x1b" not in written and "\u202e".encode() not in written
    assert b'"GET /x\\x1b[2J\\x1b[H' in written
