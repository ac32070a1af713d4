"""What every handler needs: the platform's parts, the caller, pagination."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from fastapi import Depends, Query, Request

from shoal.core.errors import FieldError, InvalidArgument, Unauthenticated
from shoal.store import tenancy
from shoal.store.db import Database
from shoal.store.query import Page
from shoal.store.secretbox import SecretBox
from shoal.store.tables import Organization

MAX_LIMIT = 100
DEFAULT_LIMIT = 10


@dataclass
class Platform:
    db: Database
    box: SecretBox
    regions: tuple[str, ...]  # regions offered, the first is the default
    base_domain: str
    hint: Callable[[Iterable[str]], None] = lambda _ids: None  # wake the control loop
    _org_names: dict[str, str] = field(default_factory=dict)

    def org_name(self, org_id: str) -> str:
        """Organization names never change, so they are cached."""
        name = self._org_names.get(org_id)
        if name is None:
            with self.db.session() as s:
                org = s.get(Organization, org_id)
                name = org.name if org else ""
            self._org_names[org_id] = name
        return name


def platform(request: Request) -> Platform:
    p: Platform = request.app.state.platform
    return p


def principal(request: Request, p: Platform = Depends(platform)) -> tenancy.Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        token = header  # a bare token, as a client configured without the prefix sends
    token = token.strip()
    if not token:
        raise Unauthenticated("Missing API token: send 'Authorization: Bearer <token>'")
    with p.db.session() as s:
        return tenancy.authenticate(s, token)


def _non_negative_int(name: str, raw: str | None, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidArgument("Validation error", [FieldError(name, "must be an integer")]) from None
    if value < 0:
        raise InvalidArgument("Validation error", [FieldError(name, "must not be negative")])
    return value


def page(
    limit: str | None = Query(None, description="The number of items to return (at most 100)"),
    offset: str | None = Query(None, description="The offset in the list of items to return"),
) -> Page:
    n = _non_negative_int("limit", limit, DEFAULT_LIMIT)
    if n > MAX_LIMIT:
        raise InvalidArgument("Validation error", [FieldError("limit", f"must be at most {MAX_LIMIT}")])
    return Page(limit=n or DEFAULT_LIMIT, offset=_non_negative_int("offset", offset, 0))


def newest_first(order: str | None) -> bool:
    if order in (None, "", "desc", "DESC"):
        return True
    if order in ("asc", "ASC"):
        return False
    raise InvalidArgument("Validation error", [FieldError("order", "must be asc or desc")])
