"""Every error leaves the API as Koyeb's `{status, code, message, fields}` body."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException

from shoal.core.errors import FieldError, ShoalError
from shoal.store.db import lost_a_race

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "invalid_argument",
    401: "authentication_error",
    403: "authorization_required",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limit_error",
}


def error_body(
    status: int, code: str, message: str, fields: Sequence[FieldError] = ()
) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "code": code, "message": message}
    if fields or status == 400:
        body["fields"] = [{"field": f.field, "description": f.description} for f in fields]
    return body


def error_response(
    status: int,
    code: str,
    message: str,
    fields: Sequence[FieldError] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(status, code, message, fields), status_code=status, headers=headers
    )


def _field_path(loc: Sequence[int | str]) -> str:
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out or "body"


def _describe(err: dict[str, Any]) -> str:
    if err.get("type") == "extra_forbidden":
        return "unknown field"
    if err.get("type") == "json_invalid":
        return f"malformed JSON: {err.get('ctx', {}).get('error', 'cannot be parsed')}"
    # A validator's own ValueError reads "Value error, <its message>": keep the message.
    return str(err.get("msg", "invalid value")).removeprefix("Value error, ")


async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
    fields = [
        FieldError(
            "body" if e.get("type") == "json_invalid" else _field_path(e.get("loc", ())),
            _describe(e),
        )
        for e in exc.errors()
    ]
    malformed = any(e.get("type") == "json_invalid" for e in exc.errors())
    message = "Malformed JSON body" if malformed else "Validation error"
    return error_response(400, "invalid_argument", message, fields)


async def _shoal(_: Request, exc: ShoalError) -> JSONResponse:
    return error_response(exc.status, exc.code, exc.message, exc.fields)


def _allowed_methods(request: Request) -> str | None:
    """Every method documented at the request's path (Starlette's 405 names one route's)."""
    for template, operations in request.app.openapi()["paths"].items():
        if re.fullmatch(re.sub(r"\{[^/]+\}", "[^/]+", template), request.url.path):
            return ", ".join(sorted(method.upper() for method in operations))
    return None


async def _http(request: Request, exc: HTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(exc.status_code, "api_error")
    message = exc.detail if isinstance(exc.detail, str) else "Error"
    headers = dict(exc.headers or {})
    allowed = _allowed_methods(request) if exc.status_code == 405 else None
    if allowed:
        headers["Allow"] = allowed
    return error_response(exc.status_code, code, message, headers=headers)


async def _integrity(_: Request, exc: IntegrityError) -> JSONResponse:
    # Two writers raced for the same unique name: the loser gets what a sequential call would.
    log.info("integrity error: %s", exc.orig.__class__.__name__)
    return error_response(409, "conflict", "A resource with this name already exists")


async def _operational(_: Request, exc: OperationalError) -> JSONResponse:
    if lost_a_race(exc):
        return error_response(409, "conflict", "The resource changed meanwhile: retry the request")
    log.error("database unavailable: %s", exc.orig.__class__.__name__)
    return error_response(503, "unavailable", "The database is unavailable: retry later")


async def _stale(_: Request, exc: StaleDataError) -> JSONResponse:
    return error_response(409, "conflict", "The resource changed meanwhile: retry the request")


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error")
    return error_response(500, "api_error", "Internal error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(ShoalError, _shoal)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http)  # type: ignore[arg-type]
    app.add_exception_handler(IntegrityError, _integrity)  # type: ignore[arg-type]
    app.add_exception_handler(StaleDataError, _stale)  # type: ignore[arg-type]
    app.add_exception_handler(OperationalError, _operational)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
