"""App wire shapes (Koyeb's App, AppListItem, Domain, CreateApp, UpdateApp...)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field
from sqlalchemy import Row

from shoal.api.schemas.common import In, Out
from shoal.core.edge import app_domain
from shoal.core.enums import AppStatus
from shoal.store.tables import App as AppRow


class AppLifeCycle(Out):
    delete_when_empty: bool = False


class AppLifeCycleIn(In):
    delete_when_empty: bool | None = None


class Domain(Out):
    id: str
    organization_id: str
    name: str
    created_at: datetime
    updated_at: datetime
    status: str = "ACTIVE"
    type: str = "AUTOASSIGNED"
    app_id: str
    deployment_group: str = "prod"
    verified_at: datetime | None = None
    intended_cname: str = ""
    messages: list[str] = []
    version: str = "1"


class AppListItem(Out):
    id: str
    name: str
    organization_id: str
    updated_at: datetime
    created_at: datetime
    domains: list[Domain]
    status: AppStatus
    messages: list[str]


class App(AppListItem):
    started_at: datetime | None = None
    succeeded_at: datetime | None = None
    paused_at: datetime | None = None
    resumed_at: datetime | None = None
    terminated_at: datetime | None = None
    version: str
    life_cycle: AppLifeCycle


class CreateApp(In):
    name: str | None = None
    life_cycle: AppLifeCycleIn | None = None
    project_id: str | None = Field(
        default=None, description="Accepted and ignored: shoal has no projects"
    )


class UpdateApp(In):
    name: str | None = None
    life_cycle: AppLifeCycleIn | None = None


class AppReply(Out):
    app: App


class ListAppsReply(Out):
    apps: list[AppListItem]
    limit: int
    offset: int
    count: int
    has_next: bool


def render(row: AppRow | Row[Any], org_name: str, base_domain: str) -> App:
    domain = Domain(
        id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"shoal-domain:{row.id}")),
        organization_id=row.organization_id,
        name=app_domain(row.name, org_name, base_domain),
        created_at=row.created_at,
        updated_at=row.updated_at,
        app_id=row.id,
        verified_at=row.created_at,
    )
    return App(
        id=row.id,
        name=row.name,
        organization_id=row.organization_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        started_at=row.started_at,
        succeeded_at=row.succeeded_at,
        paused_at=row.paused_at,
        resumed_at=row.resumed_at,
        terminated_at=row.terminated_at,
        status=AppStatus(row.status),
        messages=list(row.messages),
        version=str(row.version),
        domains=[domain],
        life_cycle=AppLifeCycle(delete_when_empty=row.delete_when_empty),
    )
