"""Service wire shapes (Koyeb's Service, ServiceListItem, CreateService, UpdateService...)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field
from sqlalchemy import Row

from shoal.api.schemas.common import In, Out
from shoal.core.definition import DeploymentDefinition
from shoal.core.enums import AppStatus, ServiceType
from shoal.store.tables import Service as ServiceRow


class ServiceLifeCycle(Out):
    delete_after_sleep: int | None = None
    delete_after_create: int | None = None


class ServiceLifeCycleIn(In):
    delete_after_sleep: int | None = None
    delete_after_create: int | None = None


class ServiceListItem(Out):
    id: str
    name: str
    type: ServiceType
    organization_id: str
    app_id: str
    updated_at: datetime
    created_at: datetime
    status: AppStatus
    messages: list[str]
    version: str
    state: dict[str, Any]
    active_deployment_id: str
    latest_deployment_id: str
    life_cycle: ServiceLifeCycle


class Service(ServiceListItem):
    started_at: datetime | None = None
    succeeded_at: datetime | None = None
    paused_at: datetime | None = None
    resumed_at: datetime | None = None
    terminated_at: datetime | None = None
    last_provisioned_deployment_id: str


class CreateService(In):
    app_id: str | None = None
    definition: DeploymentDefinition | None = None
    life_cycle: ServiceLifeCycleIn | None = None
    project_id: str | None = None
    name: str | None = None


class UpdateService(In):
    definition: DeploymentDefinition | None = None
    metadata: dict[str, Any] | None = None
    skip_build: bool | None = None
    save_only: bool | None = None
    life_cycle: ServiceLifeCycleIn | None = None


class RedeployRequest(In):
    deployment_group: str | None = Field(None, max_length=64)
    sha: str | None = None
    use_cache: bool | None = None
    skip_build: bool | None = None


class ServiceReply(Out):
    service: Service


class ListServicesReply(Out):
    services: list[ServiceListItem]
    limit: int
    offset: int
    count: int
    has_next: bool


def render(row: ServiceRow | Row[Any]) -> Service:
    return Service(
        id=row.id,
        name=row.name,
        type=ServiceType(row.type),
        organization_id=row.organization_id,
        app_id=row.app_id,
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
        state={},
        active_deployment_id=row.active_deployment_id or "",
        latest_deployment_id=row.latest_deployment_id or "",
        last_provisioned_deployment_id=row.last_provisioned_deployment_id or "",
        life_cycle=ServiceLifeCycle(),
    )
