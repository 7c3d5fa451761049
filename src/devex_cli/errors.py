"""The error hierarchy. Every error carries its exit code; the CLI's top level maps them.

Exit codes (see CONTRACT.md): 0 success, 1 a check failed (gate blocked), 2 usage, configuration
or input error, 3 an upstream unreachable or answering what cannot be read.
"""

from __future__ import annotations


class DevexError(Exception):
    """Base of every error devex reports to the user as one line."""

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(DevexError):
    """A bad flag, an unknown service, a revision that does not exist."""

    exit_code = 2


class ConfigError(UsageError):
    """devex.toml or an environment variable is missing, malformed or of the wrong type."""


class InputError(UsageError):
    """A file or manifest given to devex cannot be read or parsed."""


class UpstreamError(DevexError):
    """An outside system (Jira, Argo CD, a git remote, ...) failed after retries."""

    exit_code = 3

    def __init__(self, system: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{system}: {message}", hint=hint)
        self.system = system


class UpstreamHTTPError(UpstreamError):
    """An outside system answered an HTTP error status that retrying does not fix."""

    def __init__(
        self,
        system: str,
        message: str,
        *,
        status: int,
        body: object = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(system, message, hint=hint)
        self.status = status
        self.body = body


class GateBlocked(DevexError):
    """A gate refused the deployment; the message explaining why was already printed."""

    exit_code = 1
