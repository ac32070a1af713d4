"""Usage records: an instance's run, kept after its service, app and rows are gone (billing
outlives them). Made when the instance starts, closed when it ends."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from shoal.core.usage import Lifetime
from shoal.store.tables import App, Instance, InstanceSleep, InstanceUsage, Service, utcnow


def started(s: Session, inst: Instance) -> None:
    """Record the start of an instance (its started_at set)."""
    if inst.started_at is None or s.get(InstanceUsage, inst.id) is not None:
        return
    app, svc = s.get(App, inst.app_id), s.get(Service, inst.service_id)
    s.add(
        InstanceUsage(
            instance_id=inst.id,
            organization_id=inst.organization_id,
            app_id=inst.app_id,
            app_name=app.name if app else "",
            service_id=inst.service_id,
            service_name=svc.name if svc else "",
            region=inst.region,
            deployment_id=inst.deployment_id,
            regional_deployment_id=inst.regional_deployment_id,
            instance_type=inst.type,
            started_at=inst.started_at,
            terminated_at=None,
        )
    )


def ended(s: Session, inst: Instance) -> None:
    row = s.get(InstanceUsage, inst.id)
    if row is not None and row.terminated_at is None:
        row.terminated_at = inst.terminated_at
    woke(s, inst.id, inst.terminated_at or utcnow())


def slept(s: Session, instance_id: str, at: datetime) -> None:
    """The instance went to sleep at `at` (frozen, or stopped in place): free from then
    until it wakes."""
    if s.scalars(_open_sleeps(instance_id)).first() is None:
        s.add(InstanceSleep(instance_id=instance_id, started_at=at, ended_at=None))


def woke(s: Session, instance_id: str, at: datetime) -> None:
    """Close its open sleep (every one: two reports of it made at once may both have opened
    one; usage counts overlapping sleeps once)."""
    for row in s.scalars(_open_sleeps(instance_id)):
        row.ended_at = max(at, row.started_at)


def _open_sleeps(instance_id: str) -> Select[InstanceSleep]:
    return select(InstanceSleep).where(
        InstanceSleep.instance_id == instance_id, InstanceSleep.ended_at.is_(None)
    )


def lifetimes(s: Session, org_id: str, start: datetime, end: datetime) -> list[Lifetime]:
    """The organization's instance runs that overlap [start, end)."""
    rows = s.scalars(
        select(InstanceUsage)
        .where(
            InstanceUsage.organization_id == org_id,
            InstanceUsage.started_at < end,
            or_(InstanceUsage.terminated_at.is_(None), InstanceUsage.terminated_at > start),
        )
        .order_by(InstanceUsage.started_at, InstanceUsage.instance_id)
    ).all()
    asleep: dict[str, list[tuple[datetime, datetime | None]]] = defaultdict(list)
    for sleep in s.scalars(
        select(InstanceSleep)
        .where(InstanceSleep.instance_id.in_([r.instance_id for r in rows]))
        .order_by(InstanceSleep.started_at)
    ):
        asleep[sleep.instance_id].append((sleep.started_at, sleep.ended_at))
    return [
        Lifetime(
            r.instance_id,
            r.organization_id,
            r.app_id,
            r.app_name,
            r.service_id,
            r.service_name,
            r.region,
            r.deployment_id,
            r.regional_deployment_id,
            r.instance_type,
            r.started_at,
            r.terminated_at,
            tuple(asleep.get(r.instance_id, ())),
        )
        for r in rows
    ]
