"""Wire shapes shared by every resource: errors and the base model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Out(BaseModel):
    """Base of reply models."""

    model_config = ConfigDict(from_attributes=True)


class In(BaseModel):
    """Base of request models: unknown fields are refused, named in the error."""

    model_config = ConfigDict(extra="forbid")


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
}
