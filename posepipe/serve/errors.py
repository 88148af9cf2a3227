"""The one error shape every route answers with: ``{"error": "<one sentence>"}``."""

from __future__ import annotations


class ApiError(Exception):
    """A refusal meant for the client: an HTTP status and one sentence."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def busy(what: str) -> ApiError:
    return ApiError(503, f"the server is busy with other {what}; try again shortly", {"Retry-After": "1"})
