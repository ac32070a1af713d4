"""Lookups scoped to one organization: by UUID, 8-character short id, or name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from shoal.core.errors import NotFound
from shoal.core.ids import is_short_id, is_uuid

T = TypeVar("T")


def find(
    s: Session,
    model: type[T],
    org_id: str,
    ident: str,
    kind: str,
    *,
    by_name: dict[str, Any] | None = None,
    lock: bool = False,
) -> T:
    """The row of `model` in `org_id` named by `ident`, or NotFound.

    `ident` may be a UUID, the first 8 characters of one, or (when `by_name` gives the
    extra filters that make a name unique) the row's name. `lock` takes the row for update
    (PostgreSQL), so that writers of one service queue up in the same order.
    """
    col = model.id  # type: ignore[attr-defined]
    base = select(model).where(model.organization_id == org_id)  # type: ignore[attr-defined]
    if lock:
        base = base.with_for_update()
    row: T | None = None
    if is_uuid(ident):  # by primary key: the session's cached identity lookup
        row = s.get(model, ident.lower(), with_for_update=lock)
        if row is not None and row.organization_id != org_id:  # type: ignore[attr-defined]
            row = None
    elif is_short_id(ident):
        rows = s.scalars(base.where(col.startswith(ident.lower())).limit(2)).all()
        row = rows[0] if len(rows) == 1 else None
    if row is None and by_name is not None:
        q = base.where(model.name == ident)  # type: ignore[attr-defined]
        for field, value in by_name.items():
            q = q.where(getattr(model, field) == value)
        row = s.scalars(q).first()
    if row is None:
        raise NotFound(kind)
    return row


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int


@dataclass(frozen=True)
class Listing:
    rows: list[Any]
    count: int
    has_next: bool


def paginate(s: Session, q: Select[Any], page: Page) -> Listing:
    count = s.scalar(select(func.count()).select_from(q.order_by(None).subquery())) or 0
    rows = list(s.scalars(q.limit(page.limit).offset(page.offset)).all())
    return Listing(rows, count, page.offset + len(rows) < count)
