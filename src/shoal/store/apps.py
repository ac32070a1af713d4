"""Apps: create, list, rename, pause, resume, delete."""

from __future__ import annotations

from typing import Any, overload

from sqlalchemy import Connection, Row, Select, bindparam, select
from sqlalchemy.orm import Session

from shoal.core.edge import app_label
from shoal.core.enums import AppStatus
from shoal.core.errors import Conflict, InvalidArgument
from shoal.core.errors import FieldError as FE
from shoal.core.names import name_problem
from shoal.core.status import app_status
from shoal.store import events
from shoal.store.query import Listing, Page, find, paginate, statement
from shoal.store.tables import App, Organization, Service, utcnow


@overload
def get(db: Session, org_id: str, ident: str) -> App: ...
@overload
def get(db: Connection, org_id: str, ident: str) -> Row[Any]: ...
def get(db: Session | Connection, org_id: str, ident: str) -> App | Row[Any]:
    """The app by id, short id or name: an ORM object from a session, a row from a connection."""
    return find(db, App, org_id, ident, "app", by_name=True)


def _check_name(s: Session, org_id: str, name: str | None, app_id: str | None = None) -> str:
    problem = name_problem(name)
    if problem or name is None:
        raise InvalidArgument("invalid app name", [FE("name", problem or "is required")])
    clash = s.scalars(select(App).where(App.organization_id == org_id, App.name == name)).first()
    if clash is not None and clash.id != app_id:
        raise Conflict(f"an app named {name!r} already exists", [FE("name", "already exists")])
    # Domains are <app>-<org>: with dashes in both, two organizations could otherwise share one
    # (app "a-b" of org "c", app "a" of org "b-c") and the edge route one's traffic to the other.
    org = s.get(Organization, org_id)
    label = app_label(name, org.name if org else "")
    taken = s.execute(
        select(App.id)
        .join(Organization, Organization.id == App.organization_id)
        .where(App.name + "-" + Organization.name == label, App.id != (app_id or ""))
        .limit(1)
    ).first()
    if taken is not None:
        raise Conflict(
            f"the domain {label}.* is another organization's app's: choose another name",
            [FE("name", "its domain is taken")],
        )
    return name


def create(s: Session, org_id: str, name: str | None, delete_when_empty: bool = False) -> App:
    app = App(
        organization_id=org_id,
        name=_check_name(s, org_id, name),
        status=AppStatus.HEALTHY.value,
        messages=[],
        delete_when_empty=delete_when_empty,
    )
    s.add(app)
    s.flush()
    events.record(s, org_id, "app", app.id, "create", f"App {app.name} created")
    return app


def listing(db: Session | Connection, org_id: str, name: str | None, page: Page) -> Listing:
    return paginate(db, _apps(bool(name)), page, {"org": org_id, "name": name})


@statement
def _apps(name: bool) -> Select[Any]:
    q = select(App).where(App.organization_id == bindparam("org"))
    if name:
        q = q.where(App.name.contains(bindparam("name")))
    return q.order_by(App.created_at.desc(), App.id)


def update(s: Session, app: App, name: str | None, delete_when_empty: bool | None) -> App:
    if name is not None and name != app.name:
        old = app.name
        app.name = _check_name(s, app.organization_id, name, app.id)
        events.record(
            s, app.organization_id, "app", app.id, "update", f"App renamed from {old} to {app.name}"
        )
    if delete_when_empty is not None:
        app.delete_when_empty = delete_when_empty
    s.flush()
    return app


def services_of(s: Session, app: App) -> list[Service]:
    return list(s.scalars(select(Service).where(Service.app_id == app.id)).all())


def refresh_status(s: Session, app: App) -> None:
    status = app_status(app.deleting, (AppStatus(sv.status) for sv in services_of(s, app)))
    if status.value != app.status:
        app.status = status.value
        if status == AppStatus.PAUSED:
            app.paused_at = utcnow()
        events.record(
            s,
            app.organization_id,
            "app",
            app.id,
            "status_change",
            f"App is {status.value.lower()}",
            {"status": status.value},
        )
