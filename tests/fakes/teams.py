"""A loopback Teams Workflows webhook: `POST .../workflows/{id}/triggers/manual/paths/invoke`
with `sig=` answering 202 and an empty body, 401 for a wrong signature, 413 past ~28 KB, and
scripted 429/5xx through `fail_next`."""

from __future__ import annotations

from typing import Any

from tests.fakes.server import Answer, FakeServer, Request

PATH = "/workflows/0a1b2c3d4e5f/triggers/manual/paths/invoke"


class FakeTeams(FakeServer):
    def __init__(self, signature: str = "s3cr3t-sig-value-Xy") -> None:
        super().__init__()
        self.signature = signature
        self.received: list[Any] = []
        self.route("POST", PATH, self._invoke)

    def webhook(self, signature: str | None = None) -> str:
        sig = signature or self.signature
        return f"{self.url}{PATH}?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={sig}"

    def _invoke(self, request: Request) -> Answer:
        if request.query.get("sig") != [self.signature]:
            return Answer(401, {"error": {"code": "DirectApiAuthorizationRequired",
                                          "message": "The request must be authenticated."}})
        size = len(str(request.body).encode())
        if size > 28_000:
            return Answer(413, {"error": {"code": "MessageTooLarge",
                                          "message": "Request Entity too large"}})
        self.received.append(request.body)
        return Answer(202, None)
