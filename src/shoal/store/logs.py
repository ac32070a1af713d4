"""Instance and build logs: appended by agents, kept per instance (and build) up to a bound,
queried by users."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from shoal.core.assignment import LogLine
from shoal.store.tables import Deployment, Instance, LogEntry

MAX_LINES_PER_INSTANCE = 5000  # the retention bound: older lines go first


def append(s: Session, node_id: str, lines: Iterable[LogLine]) -> None:
    """Store lines of instances placed on `node_id` and of builds it runs (lines of others
    are dropped), keeping at most MAX_LINES_PER_INSTANCE of each instance and build."""
    owners: dict[str, Instance | Deployment | None] = {}
    touched: set[tuple[str, str]] = set()
    for line in lines:
        key = line.instance_id or line.deployment_id
        if key not in owners:
            owners[key] = _owner(s, node_id, line)
        owner = owners[key]
        if owner is None:
            continue
        if isinstance(owner, Deployment):
            touched.add(("deployment_id", owner.id))
            where = {"deployment_id": owner.id, "regional_deployment_id": "", "instance_id": ""}
            where |= {"region": "", "type": "build"}
        else:
            touched.add(("instance_id", owner.id))
            where = {"deployment_id": owner.deployment_id, "instance_id": owner.id}
            where |= {"regional_deployment_id": owner.regional_deployment_id}
            where |= {"region": owner.region, "type": "runtime"}
        s.add(
            LogEntry(
                organization_id=owner.organization_id,
                app_id=owner.app_id,
                service_id=owner.service_id,
                stream=line.stream,
                msg=line.msg.replace("\x00", ""),
                created_at=line.created_at,
                **where,
            )
        )
    s.flush()
    for column, owner_id in touched:
        # An instance's lines, or a build's (its deployment's runtime lines are its instances').
        mine = (getattr(LogEntry, column) == owner_id, LogEntry.type == _TYPE[column])
        oldest_kept = s.scalar(
            select(LogEntry.id)
            .where(*mine)
            .order_by(LogEntry.id.desc())
            .offset(MAX_LINES_PER_INSTANCE - 1)
            .limit(1)
        )
        if oldest_kept is not None:
            s.execute(delete(LogEntry).where(*mine, LogEntry.id < oldest_kept))


_TYPE = {"instance_id": "runtime", "deployment_id": "build"}


def _owner(s: Session, node_id: str, line: LogLine) -> Instance | Deployment | None:
    if line.instance_id:
        inst = s.get(Instance, line.instance_id)
        return inst if inst is not None and inst.node_id == node_id else None
    dep = s.get(Deployment, line.deployment_id)
    return dep if dep is not None and dep.build_node_id == node_id else None


@dataclass(frozen=True)
class LogQuery:
    organization_id: str
    type: str = "runtime"
    app_id: str | None = None
    service_id: str | None = None
    deployment_id: str | None = None
    regional_deployment_id: str | None = None
    instance_ids: tuple[str, ...] = ()
    streams: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    text: str | None = None
    regex: re.Pattern[str] | None = None
    newest_first: bool = True
    limit: int = 100
    after_id: int = 0  # for following: only lines newer than this


def query(s: Session, q: LogQuery) -> list[LogEntry]:
    stmt = select(LogEntry).where(
        LogEntry.organization_id == q.organization_id,
        LogEntry.type == q.type,
        LogEntry.id > q.after_id,
    )
    for column, value in (
        (LogEntry.app_id, q.app_id),
        (LogEntry.service_id, q.service_id),
        (LogEntry.deployment_id, q.deployment_id),
        (LogEntry.regional_deployment_id, q.regional_deployment_id),
    ):
        if value:
            stmt = stmt.where(column == value)
    if q.instance_ids:
        stmt = stmt.where(LogEntry.instance_id.in_(q.instance_ids))
    if q.streams:
        stmt = stmt.where(LogEntry.stream.in_(q.streams))
    if q.start:
        stmt = stmt.where(LogEntry.created_at >= q.start)
    if q.end:
        stmt = stmt.where(LogEntry.created_at <= q.end)
    if q.text:
        stmt = stmt.where(LogEntry.msg.contains(q.text, autoescape=True))
    stmt = stmt.order_by(LogEntry.id.desc() if q.newest_first else LogEntry.id)
    if q.regex is None:
        return list(s.scalars(stmt.limit(q.limit)).all())
    # A regular expression is applied here, the same on every database, over a bounded scan.
    out = []
    for row in s.scalars(stmt.limit(q.limit * 50)).all():
        if q.regex.search(row.msg):
            out.append(row)
            if len(out) == q.limit:
                break
    return out
