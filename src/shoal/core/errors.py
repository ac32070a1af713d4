"""Domain errors. The API turns them into Koyeb's `{status, code, message, fields}` body."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldError:
    field: str
    description: str


@dataclass
class ShoalError(Exception):
    message: str
    status: int = 500
    code: str = "api_error"
    fields: list[FieldError] = field(default_factory=list)

    def __str__(self) -> str:
        return self.message


class InvalidArgument(ShoalError):
    def __init__(self, message: str, fields: list[FieldError] | None = None) -> None:
        super().__init__(message, 400, "invalid_argument", fields or [])


class NotFound(ShoalError):
    def __init__(self, kind: str) -> None:
        super().__init__(f"{kind} not found", 404, "not_found")


class Conflict(ShoalError):
    def __init__(self, message: str, fields: list[FieldError] | None = None) -> None:
        super().__init__(message, 409, "conflict", fields or [])


class PreconditionFailed(ShoalError):
    """The request is valid but the object's current state does not allow it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 400, "failed_precondition")


class Unauthenticated(ShoalError):
    def __init__(self, message: str = "Invalid or missing API token") -> None:
        super().__init__(message, 401, "authentication_error")


class PermissionDenied(ShoalError):
    def __init__(self, message: str = "Not allowed") -> None:
        super().__init__(message, 403, "authorization_required")
