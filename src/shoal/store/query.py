"""Lookups scoped to one organization (by UUID, 8-character short id, or name) and pages.

Both work on an ORM session (writes, which change the rows they find) and on a plain
connection (the API's reads, which only render rows: a Core row costs a fifth of an ORM
object to load). The lookup statements are built once per table and reused with new
parameters: building a statement costs more than running it on SQLite.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from sqlalchemy import Connection, Row, Select, Table, bindparam, func, select
from sqlalchemy.orm import Session

from shoal.core.errors import NotFound
from shoal.core.ids import is_short_id, is_uuid

T = TypeVar("T")


@functools.cache
def _lookup(table: Table, by: str) -> Select[Any]:
    """The rows of `table` in an organization with this id, id prefix (at most 2 rows: a
    short id must be unambiguous; being 8 hex digits, it holds no LIKE wildcard) or name."""
    mine = select(table).where(table.c.organization_id == bindparam("org"))
    if by == "id":
        return mine.where(table.c.id == bindparam("ident"))
    if by == "prefix":
        return mine.where(table.c.id.startswith(bindparam("ident"))).limit(2)
    return mine.where(table.c.name == bindparam("ident")).limit(1)


def _find_row(c: Connection, table: Table, org_id: str, ident: str, by_name: bool) -> Row[Any]:
    rows: list[Row[Any]] = []
    if is_uuid(ident):
        rows = list(c.execute(_lookup(table, "id"), {"org": org_id, "ident": ident.lower()}))
    elif is_short_id(ident):
        rows = list(c.execute(_lookup(table, "prefix"), {"org": org_id, "ident": ident.lower()}))
    if len(rows) != 1 and by_name:
        rows = list(c.execute(_lookup(table, "name"), {"org": org_id, "ident": ident}))
    if len(rows) != 1:
        raise LookupError
    return rows[0]


@overload
def find(
    db: Session,
    model: type[T],
    org_id: str,
    ident: str,
    kind: str,
    *,
    by_name: bool = ...,
    lock: bool = ...,
) -> T: ...
@overload
def find(
    db: Connection,
    model: type[T],
    org_id: str,
    ident: str,
    kind: str,
    *,
    by_name: bool = ...,
    lock: bool = ...,
) -> Row[Any]: ...
def find(
    db: Session | Connection,
    model: type[T],
    org_id: str,
    ident: str,
    kind: str,
    *,
    by_name: bool = False,
    lock: bool = False,
) -> T | Row[Any]:
    """The row of `model` in `org_id` named by `ident`, or NotFound: an ORM object from a
    session, a Core row from a connection.

    `ident` may be a UUID, the first 8 characters of one, or (with `by_name`, for rows whose
    name is unique in the organization) the row's name. `lock` takes the row for update
    (PostgreSQL), so that writers of one service queue up in the same order.
    """
    table: Table = model.__table__  # type: ignore[attr-defined]
    try:
        if isinstance(db, Connection):
            return _find_row(db, table, org_id, ident, by_name)
        row_id = _find_row(db.connection(), table, org_id, ident, by_name).id
    except LookupError:
        raise NotFound(kind) from None
    found = db.get(model, row_id, with_for_update=lock)
    if found is None:  # deleted since, by a writer that committed in between
        raise NotFound(kind)
    return found


def statement(build: Callable[..., Select[Any]]) -> Callable[..., Select[Any]]:
    """Cache a function that builds a statement from the shape of a query (which filters
    it has), not its values: those go in as bound parameters when it runs."""
    return functools.cache(build)


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int


@dataclass(frozen=True)
class Listing:
    rows: list[Any]
    count: int
    has_next: bool


@functools.lru_cache(maxsize=256)
def _paged(q: Select[Any]) -> tuple[Select[Any], Select[Any]]:
    """`q` with the count of all its rows beside each row, limited to a page; and its count
    alone (for a page past the end)."""
    paged = q.add_columns(func.count().over().label("_total"))
    return (
        paged.limit(bindparam("_limit")).offset(bindparam("_offset")),
        select(func.count()).select_from(q.order_by(None).subquery()),
    )


def paginate(
    db: Session | Connection, q: Select[Any], page: Page, params: Mapping[str, Any] | None = None
) -> Listing:
    """One page of `q` (with its bound `params`) and the count of all its rows, in one query
    (a window count) unless the page is past the end. From a session, the rows are `q`'s
    first entity (ORM objects); from a connection, Core rows. A `q` built once and reused
    (see `statement`) is paged without building anything."""
    paged, counted = _paged(q)
    args = dict(params or {})
    result = db.execute(paged, {**args, "_limit": page.limit, "_offset": page.offset}).all()
    if result:
        count = int(result[0][-1])
    elif page.offset == 0:
        count = 0
    else:
        count = int(db.execute(counted, args).scalar() or 0)
    rows: list[Any] = [r[0] for r in result] if isinstance(db, Session) else list(result)
    return Listing(rows, count, page.offset + len(rows) < count)
