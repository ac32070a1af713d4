"""What the client raises: the API's refusals and failures to reach it."""

from __future__ import annotations

from typing import Any

from shoal.core.errors import FieldError


class ApiError(Exception):
    """The API answered with an error: Koyeb's `{status, code, message, fields}` body."""

    def __init__(
        self, status: int, code: str, message: str, fields: list[FieldError] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or []

    @classmethod
    def from_body(cls, status: int, body: Any, fallback: str) -> ApiError:
        """Parse an error reply; a body that is not Koyeb's shape keeps `fallback` as message."""
        if not isinstance(body, dict):
            return cls(status, "api_error", fallback)
        fields = [
            FieldError(str(f.get("field", "")), str(f.get("description", "")))
            for f in body.get("fields") or []
            if isinstance(f, dict)
        ]
        return cls(
            int(body.get("status", status)),
            str(body.get("code", "api_error")),
            str(body.get("message") or fallback),
            fields,
        )


class ApiUnreachable(Exception):
    """No HTTP answer came back from the API (refused, DNS, timeout...)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the shoal API at {url}: {reason}")
        self.url = url
        self.reason = reason
