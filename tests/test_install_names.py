"""No file tells a user to install devex by a name devex does not own.

The package index holds an unrelated `devex-cli` (its `devex` has no `gate` command); devex's
distribution is `devex-delivery`. Every pip/pipx/uv install line in the repository must name
`devex-delivery`, a path, a wheel, a git URL, or one of the few other tools the docs install.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTION = "devex-delivery"
# Other packages the repository's documents install (not devex): the wheel builder in the
# Dockerfile and the renderer's plotting library.
OTHER_TOOLS = {"build", "matplotlib"}
SKIPPED_PARTS = {".git", ".venv", "node_modules", "__pycache__", ".mypy_cache", ".pytest_cache",
                 ".ruff_cache", "dist", "build"}
INSTALL = re.compile(r"\b(?:pip3?|pipx|uv\s+pip|uv\s+tool|python3?\s+-m\s+pip)\s+(?:install|download)\b"
                     r"(?P<args>[^\n]*)")
OPTIONS_WITH_VALUE = {"-r", "--requirement", "-c", "--constraint", "-d", "--dest", "-i",
                      "--index-url", "--extra-index-url", "-f", "--find-links", "-t", "--target",
                      "--python", "--prefix", "--root", "--platform", "--python-version"}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(args: str) -> Iterator[str]:
    """The requirement words of one install command's arguments (options and their values dropped)."""
    command = re.split(r"&&|\|\||[;|`)#>]", args, maxsplit=1)[0]
    try:
        words = shlex.split(command)
    except ValueError:  # an unbalanced quote in prose: take the words as they are
        words = command.split()
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word in OPTIONS_WITH_VALUE:
            skip = True
        elif not word.startswith("-") and word != "\\":  # a line continuation
            yield word.strip("`'\",")


def offence(requirement: str) -> str | None:
    """Why a requirement must not be in a document, or None when it is fine."""
    if requirement.startswith((".", "/", "~", "$", "git+", "http://", "https://")) \
            or requirement.endswith((".whl", ".tar.gz", ".zip")) or "@" in requirement:
        # A path, an archive or a direct reference ("devex-delivery @ git+https://...").
        name = requirement.split("@")[0].strip()
        if "@" in requirement and name and normalize(re.split(r"[\[<>=!~ ]", name)[0]) != DISTRIBUTION:
            return f"{requirement}: a direct reference must be named {DISTRIBUTION}"
        return None
    if not requirement or requirement in ("install", "download"):
        return None
    name = normalize(re.split(r"[\[<>=!~;]", requirement)[0])
    if name == DISTRIBUTION or name in OTHER_TOOLS:
        return None
    return f"{requirement}: not devex's distribution ({DISTRIBUTION}) nor a path"


def documents() -> Iterator[Path]:
    try:
        listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--cached", "--others",
                                 "--exclude-standard"], capture_output=True, text=True, check=True)
        paths = [ROOT / line for line in listed.stdout.splitlines()]
    except (OSError, subprocess.CalledProcessError):  # a source tree without git
        paths = [p for p in ROOT.rglob("*") if not SKIPPED_PARTS & set(p.relative_to(ROOT).parts)]
    for path in paths:
        if path.is_file() and path != Path(__file__).resolve():
            yield path


def offences() -> list[str]:
    found = []
    for path in documents():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary files (images) hold no instructions
        relative = path.relative_to(ROOT)
        for match in INSTALL.finditer(text):
            for requirement in requirements(match["args"]):
                reason = offence(requirement)
                if reason:
                    line = text.count("\n", 0, match.start()) + 1
                    found.append(f"{relative}:{line}: {reason}")
        if re.fullmatch(r"requirements.*\.txt|constraints.*\.txt", path.name):
            for number, line in enumerate(text.splitlines(), 1):
                words = line.split("#")[0].split()
                if words and not words[0].startswith("-"):
                    reason = offence(words[0])
                    if reason:
                        found.append(f"{relative}:{number}: {reason}")
    return found


def test_the_distribution_is_devex_delivery_and_the_command_stays_devex() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION
    assert project["scripts"] == {"devex": "devex_cli.cli:main"}


def test_no_document_installs_devex_by_a_name_it_does_not_own() -> None:
    assert offences() == []


@pytest.mark.parametrize(("line", "allowed"), [
    ("pip install -q devex-cli -r requirements.txt", False),
    ("python3 -m pip install devex_cli==0.1.0", False),
    ("pipx install devex", False),
    ("uv tool install 'devex-cli[dev]'", False),
    ("pip install somebody-elses-tool && devex gate qa-release", False),
    ("pip install 'devex-cli @ git+https://bitbucket.org/acme/devex'", False),
    ("pip install -q devex-delivery==0.1.0", True),
    ("pip install -r requirements.txt", True),
    (".venv/bin/pip install -q -e '.[dev]' && .venv/bin/python -m pytest", True),
    ("pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels", True),
    ("pip install 'devex-delivery @ git+https://bitbucket.org/acme/devex@v0.1.0'", True),
    ("pip install matplotlib", True),
])
def test_the_scanner_tells_devex_delivery_and_paths_from_other_names(line: str, allowed: bool) -> None:
    match = INSTALL.search(line)
    assert match
    reasons = [reason for word in requirements(match["args"]) if (reason := offence(word))]
    assert (reasons == []) is allowed, reasons
