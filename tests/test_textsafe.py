"""textsafe: outside values made inert for a terminal, rich markup and Teams Markdown."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st

from devex_cli.textsafe import WORD_JOINER, md, safe, safe_markup


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
        f"\\[Approve deployment\\]\\(https:{WORD_JOINER}//evil\\.example/phish\\)"
    assert md("<https://evil.example>") == f"\\<https:{WORD_JOINER}//evil\\.example\\>"
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
