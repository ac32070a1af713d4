"""Wire shapes shared by every resource: errors and the base model."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


# A time in a query: one without a zone is UTC's (never the server's local time).
UtcTime = Annotated[datetime, AfterValidator(_utc)]


class Out(BaseModel):
    """Base of reply models."""

    model_config = ConfigDict(from_attributes=True)


class In(BaseModel):
    """Base of request models: unknown fields are refused, named in the error."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        # Neither PostgreSQL text nor a process environment (secrets end up in one) holds a NUL.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


class ErrorField(Out):
    field: str
    description: str


class Error(Out):
    status: int
    code: str
    message: str


class ErrorWithFields(Error):
    fields: list[ErrorField] = []


class Empty(Out):
    """The empty reply of deletes and actions (`{}`)."""


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorWithFields, "description": "Validation error"},
    401: {"model": Error, "description": "Returned when the token is not valid."},
    403: {"model": Error, "description": "Returned when the user may not do this."},
    404: {"model": Error, "description": "Returned when the resource does not exist."},
    409: {"model": ErrorWithFields, "description": "Returned when the name is taken."},
    413: {"model": Error, "description": "Returned when the body is too large."},
    # Every other client error (405, 429...) has the same body. Declaring it also keeps
    # FastAPI from documenting a 422 this API never answers (its validation errors are 400s).
    "4XX": {"model": Error, "description": "Any other client error."},
}
