"""Adaptive Cards from Jinja templates, and the payloads Teams Workflows accept.

Templates render in a sandbox with StrictUndefined; every value from outside enters a template
through `tojson`, so quotes, backslashes, newlines and `{{ }}` in commit messages stay data, and
through the `md` filter (textsafe.md) wherever Teams reads Markdown, so that a commit subject's
`[Approve](https://evil.example)` is shown, not linked. A card that would pass Teams' ~28 KB limit
is rendered again with shorter lists.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from devex_cli.errors import ConfigError, InputError
from devex_cli.textsafe import md

MAX_BYTES = 27_000  # Teams refuses messages past about 28 KB; keep a margin for the envelope
LIST_LIMITS = (10, 6, 3, 1, 0)
CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"


def templates_folder(configured: str | None) -> Path:
    """report.templates_dir, else the templates shipped in the wheel, else the repository's."""
    if configured:
        folder = Path(configured).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"report.templates_dir {configured} is not a folder")
        return folder
    shipped = Path(str(resources.files("devex_cli") / "templates" / "teams"))
    if shipped.is_dir():
        return shipped
    return Path(__file__).resolve().parents[3] / "templates" / "teams"  # editable install


def render_card(
    template: str,
    context: Mapping[str, Any],
    *,
    folder: Path,
    template_file: Path | None = None,
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """The card for an event, as a dict, within Teams' size limit.

    `context["limit"]` is set by this function: templates show at most that many list items.
    Raises InputError when the template does not render to a JSON object.
    """
    from jinja2 import FileSystemBytecodeCache, FileSystemLoader, StrictUndefined, TemplateError
    from jinja2.sandbox import SandboxedEnvironment

    search = [str(template_file.parent), str(folder)] if template_file else [str(folder)]
    bytecode = None
    if cache_dir is not None:  # compiled templates, keyed by name and source checksum
        try:
            cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            bytecode = FileSystemBytecodeCache(str(cache_dir))
        except OSError:
            bytecode = None
    environment = SandboxedEnvironment(loader=FileSystemLoader(search), undefined=StrictUndefined,
                                       autoescape=False, keep_trailing_newline=True,
                                       bytecode_cache=bytecode)
    environment.filters["md"] = md
    name = template_file.name if template_file else template
    card: dict[str, Any] = {}
    for limit in LIST_LIMITS:
        try:
            text = environment.get_template(name).render({**context, "limit": limit})
        except TemplateError as exc:
            raise InputError(f"template {name} failed: {exc}") from None
        try:
            card = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"template {name} does not give JSON: {exc.msg} at line "
                             f"{exc.lineno}") from None
        if not isinstance(card, dict):
            raise InputError(f"template {name} does not give a JSON object")
        if len(json.dumps(card).encode()) <= MAX_BYTES:
            return card
    return card


def payload(card: Mapping[str, Any], mode: str) -> dict[str, Any]:
    """The body posted to a Workflows webhook: the contract's envelope, or the bare card."""
    if mode == "bare":
        return dict(card)
    return {"type": "message",
            "attachments": [{"contentType": CONTENT_TYPE, "contentUrl": None,
                             "content": dict(card)}]}
