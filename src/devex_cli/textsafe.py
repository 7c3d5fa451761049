"""Values from outside (Jira, git, GitOps manifests, scan reports, HTTP requests) made inert for
the text they are shown in: a terminal or log, rich markup, or Teams Markdown.

Every text view passes outside values through one of these where they enter it, never the text it
builds around them: devex's own newlines, styles and links must keep working. JSON output needs
none of this (json escapes what it must).
"""

from __future__ import annotations

import re

# C0 controls (ESC starts the sequences that move the cursor or clear the screen), DEL, C1 (0x9b
# is a one-byte CSI on some terminals), and the bidi overrides and isolates that make a line read
# differently from what it holds. Each becomes a visible escape, so nothing disappears either.
_CONTROL = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_CONTROL.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
_CONTROL.update({code: f"\\u{code:04x}" for code in (*range(0x202A, 0x202F),
                                                       *range(0x2066, 0x206A))})


def safe(value: object) -> str:
    """A value fit for a plain-text line on a terminal or in a log: control characters and bidi
    overrides shown as escapes (`\\x1b`, `\\n`, `\\u202e`), everything else untouched."""
    return str(value).translate(_CONTROL)


def safe_markup(value: object) -> str:
    """A value fit for text that rich reads as markup: `safe`, then `[bold]` or `[link=...]`
    escaped so that it prints as written."""
    from rich.markup import escape

    return escape(safe(value))


# Markdown in Adaptive Card TextBlocks and FactSet values is a CommonMark subset, and CommonMark
# lets a backslash make any ASCII punctuation literal. One pass over the value, in this order:
_MD = re.compile(
    # at the start of a line only: headings, quotes, lists, setext underlines and rules (a
    # version such as `1.4.2` or a `-5s` is none of them, so it stays as it is);
    r"(?P<line>^[ \t]*(?:>|[#+=-]+(?=[ \t]|$)|\d{1,9}[.)](?=[ \t]|$)))"
    # anywhere: links and images (`[ ] ( )`; `( )` too, so that a reader ignoring escapes still
    # never sees `](`), autolinks and HTML (`< >`), entities (`&`), emphasis and code, the
    # backslash itself, and `{ }` (Adaptive Cards replace `{{DATE(...)}}` in text);
    r"|(?P<inline>[\\`*_~\[\]()<>&|{}])"
    # a `.` before a letter, how linkifiers find `www.evil.example` or `evil.com/x` without a
    # scheme: escaped, a Markdown-level linkifier sees the text split there;
    r"|(?P<dot>\.(?=[A-Za-z]))"
    # `//` of `https://evil` or a protocol-relative `//evil`: a WORD JOINER between the slashes
    # (invisible, no line break). Unlike `\:` or `\/`, which only a Markdown parser reads, it
    # also stops a client that linkifies the rendered text.
    r"|(?P<slashes>/(?=/))",
    re.MULTILINE)
WORD_JOINER = "\u2060"


def md(value: object) -> str:
    """A value shown literally in Teams Markdown: no link, image, emphasis, list or heading comes
    out of it, and a URL in it is not made a link. The `md` filter of the card templates."""
    return "" if value is None else _MD.sub(_md_escape, str(value))


def _md_escape(match: re.Match[str]) -> str:
    text = match.group()
    if match.lastgroup == "line":  # the marker is the last character (`#`, `-`, the `.` of `1.`)
        return text[:-1] + "\\" + text[-1]
    if match.lastgroup == "slashes":
        return "/" + WORD_JOINER
    return "\\" + text
