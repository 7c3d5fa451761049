"""Running git: one place that turns git's failures into devex errors.

devex talks to git through its command line (what Bitbucket Pipelines and every laptop have),
reading history in single passes (`git log --raw`, `git cat-file --batch`), never one process per
commit.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import subprocess
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit, urlunsplit

from devex_cli.errors import UpstreamError, UsageError
from devex_cli.masking import mask, register_basic_auth

log = logging.getLogger("devex.git")

# Never ask for credentials on a terminal: a pipeline would hang.
_ENV = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}


# Lines git and ssh add after the reason itself ("Connection refused", "Could not resolve host").
_GENERIC = ("please make sure you have the correct access rights", "and the repository exists.",
            "fatal: could not read from remote repository.")


def _reason(stderr: str) -> str:
    """git's last meaningful line: ssh's reason comes before three lines of boilerplate."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    meaningful = [line for line in lines if line.lower() not in _GENERIC] or lines
    if not meaningful:
        return ""
    last = meaningful[-1]
    for prefix in ("fatal: ", "error: "):
        last = last.removeprefix(prefix)
    return last


class GitFailed(Exception):
    """A git command exited non-zero; callers decide what it means."""

    def __init__(self, args: Sequence[str], returncode: int, stderr: str) -> None:
        super().__init__(mask(_reason(stderr)))
        self.args_ = list(args)
        self.returncode = returncode
        self.stderr = mask(stderr)


def git(repo: Path, *args: str, input_text: str | None = None,
        env: Mapping[str, str] | None = None) -> str:
    """Run `git -C repo args...` (with `env` added to its environment) and return stdout.
    Raises GitFailed."""
    return git_bytes(repo, *args, env=env, input_bytes=None if input_text is None
                     else input_text.encode()).decode("utf-8", "replace")


def git_bytes(repo: Path, *args: str, input_bytes: bytes | None = None,
              env: Mapping[str, str] | None = None) -> bytes:
    command = ["git", "-C", str(repo), *args]
    log.debug("git %s", mask(" ".join(args)))
    try:
        done = subprocess.run(command, input=input_bytes, capture_output=True,
                              env={**_ENV, **env} if env else _ENV, check=False)
    except FileNotFoundError:
        raise UsageError("git is not installed", hint="install git and try again") from None
    if done.returncode != 0:
        raise GitFailed(args, done.returncode, done.stderr.decode("utf-8", "replace"))
    return done.stdout


def is_url(spec: str) -> bool:
    """A git URL (`https://`, `ssh://`, `file://`, `git@host:path`) rather than a local path."""
    if "://" in spec:
        return True
    head = spec.split("/", 1)[0]
    return "@" in head and ":" in head


def read_blobs(repo: Path, shas: Iterable[str]) -> Iterator[tuple[str, bytes]]:
    """The contents of many blobs from one `git cat-file --batch` process, one at a time: the
    shas are written by a thread while the answers are read, so memory holds one blob, not a
    history's worth of them."""
    wanted = list(dict.fromkeys(shas))
    if not wanted:
        return
    log.debug("git cat-file --batch (%d blobs)", len(wanted))
    try:
        process = subprocess.Popen(["git", "-C", str(repo), "cat-file", "--batch"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, env=_ENV)
    except FileNotFoundError:
        raise UsageError("git is not installed", hint="install git and try again") from None
    assert process.stdin is not None and process.stdout is not None

    def feed(stdin: IO[bytes]) -> None:
        try:
            for sha in wanted:
                stdin.write(sha.encode() + b"\n")
        except BrokenPipeError:
            pass  # git ended early: the reader says why
        finally:
            with contextlib.suppress(BrokenPipeError):
                stdin.close()

    writer = threading.Thread(target=feed, args=(process.stdin,), daemon=True)
    writer.start()
    try:
        for sha in wanted:
            header = process.stdout.readline().split()
            if not header:
                raise GitFailed(("cat-file", "--batch"), process.wait(), "ended early")
            if len(header) < 3 or header[1] == b"missing":
                continue
            size = int(header[2])
            content = process.stdout.read(size)
            process.stdout.read(1)  # the newline after each object
            yield sha, content
    finally:
        process.stdout.close()
        process.kill()
        process.wait()
        writer.join()


def without_credentials(url: str) -> tuple[str, dict[str, str]]:
    """An http(s) URL's `user:password` taken out: the clean URL, and the environment that gives
    git the credentials as an `Authorization` header for that host, for one command only.

    A clone keeps the URL it was given in its config (mode 0644); the header, set through
    `GIT_CONFIG_*` rather than `-c` (a command line is readable by every user of the machine),
    is never written anywhere. Other URLs (ssh, a user alone) are returned as they are.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or parts.password is None:
        return url, {}
    user, password = unquote(parts.username or ""), unquote(parts.password)
    register_basic_auth(user, password)
    host = parts.netloc.rsplit("@", 1)[-1]
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    index = int(_ENV.get("GIT_CONFIG_COUNT") or 0)  # after any the caller's environment sets
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)), {
        "GIT_CONFIG_COUNT": str(index + 1),
        f"GIT_CONFIG_KEY_{index}": f"http.{parts.scheme.lower()}://{host}/.extraHeader",
        f"GIT_CONFIG_VALUE_{index}": f"Authorization: Basic {basic}",
    }


def remote_error(url: str, exc: GitFailed) -> UpstreamError:
    return UpstreamError("git", f"cannot fetch {mask(url)}: {exc}",
                         hint="check the URL and the credentials of the git remote")


def local_repository(spec: str, cache_root: Path, *, what: str) -> Path:
    """A local path as it is, or a URL cloned (bare) into the cache and fetched on each call.

    Raises UsageError for a path that is not a git repository, UpstreamError when a remote cannot
    be fetched.
    """
    if not is_url(spec):
        path = Path(spec).expanduser()
        try:
            is_folder = path.is_dir()
        except OSError as exc:  # a folder this user may not read (EACCES)
            raise UsageError(f"cannot read the {what} {spec}: {exc.strerror}",
                             hint="run devex as a user who can read it") from None
        if not is_folder:
            raise UsageError(f"{what} {spec} does not exist", hint="give a local path or a git URL")
        try:
            git(path, "rev-parse", "--git-dir")
        except GitFailed:
            raise UsageError(f"{spec} is not a git repository",
                             hint=f"give the {what}'s folder or its git URL") from None
        return path
    # (keyed by the URL as given, credentials included, so clones made before are found again)
    target = cache_root / hashlib.sha256(spec.encode()).hexdigest()[:16]
    url, credentials = without_credentials(spec)
    try:
        if (target / "HEAD").is_file():
            if url != spec:  # a clone made with the credentials in its config: take them out
                git(target, "config", "remote.origin.url", url)
            git(target, "fetch", "--prune", "--quiet", "origin", "+refs/heads/*:refs/heads/*",
                env=credentials)
        else:
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            git(target.parent, "clone", "--bare", "--quiet", url, str(target), env=credentials)
    except GitFailed as exc:
        raise remote_error(spec, exc) from None
    return target
