"""What every request goes through before FastAPI sees it: a body size limit enforced while
the body streams in (Content-Length may lie or be absent), JSON as the body's type whatever
the client said (as Koyeb's gateway does: `curl -d` sends a form content type), and no NUL
character in the path or the query (neither PostgreSQL text nor a process environment holds
one). FastAPI's own `max_body_size` answers a plain-text 413, not Koyeb's error body, hence
this; and a check here costs nothing next to a dependency on every route."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shoal.api.errors import error_response
from shoal.core.errors import FieldError

MAX_BODY = 1024 * 1024


class BodyLimit:
    def __init__(
        self, app: ASGIApp, max_bytes: int = MAX_BODY, larger: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = larger or {}  # path prefix -> its own limit (uploads)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        bad = _nul_fields(scope)
        if bad:
            await error_response(400, "invalid_argument", "Validation error", bad)(
                scope, receive, send
            )
            return
        limit = next(
            (n for prefix, n in self.larger.items() if scope["path"].startswith(prefix)),
            self.max_bytes,
        )
        too_large = f"Request body larger than {limit} bytes"
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await error_response(413, "payload_too_large", too_large)(scope, receive, send)
                return
        scope = dict(scope)
        scope["headers"] = [(n, v) for n, v in scope.get("headers", []) if n != b"content-type"]
        scope["headers"].append((b"content-type", b"application/json"))
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # The API's error handler turns this into the 413 error body.
                    raise HTTPException(413, too_large)
            return message

        await self.app(scope, limited_receive, send)


def _nul_fields(scope: Scope) -> list[FieldError]:
    """The path, and each query parameter, that holds a NUL character."""
    found = []
    if "\x00" in scope["path"]:
        found.append(FieldError("path", "must not contain NUL characters"))
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if "\x00" in name + value:
                found.append(
                    FieldError(name.replace("\x00", ""), "must not contain NUL characters")
                )
    return found
