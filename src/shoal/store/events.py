"""The event log behind /v1/*_events."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shoal.store.query import Listing, Page, paginate
from shoal.store.tables import Event


def record(
    s: Session,
    org_id: str,
    kind: str,
    subject_id: str,
    type_: str,
    message: str,
    meta: dict[str, Any] | None = None,
) -> None:
    s.add(
        Event(
            organization_id=org_id,
            kind=kind,
            subject_id=subject_id,
            type=type_,
            message=message,
            meta=meta or {},
        )
    )


def list_events(
    s: Session,
    org_id: str,
    kind: str,
    subject_ids: list[str],
    types: list[str],
    page: Page,
    newest_first: bool,
) -> Listing:
    q = select(Event).where(Event.organization_id == org_id, Event.kind == kind)
    if subject_ids:
        q = q.where(Event.subject_id.in_(subject_ids))
    if types:
        q = q.where(Event.type.in_(types))
    order = (Event.when.desc(), Event.id.desc()) if newest_first else (Event.when, Event.id)
    return paginate(s, q.order_by(*order), page)
