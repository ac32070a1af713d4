"""Deployment, regional deployment and instance wire shapes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from shoal.api.schemas.common import Out
from shoal.core.definition import DeploymentDefinition
from shoal.core.enums import (
    FINAL_DEPLOYMENT_STATUSES,
    DeploymentRole,
    DeploymentStatus,
    InstanceStatus,
    RegionalDeploymentStatus,
)
from shoal.store.tables import Deployment as DeploymentRow
from shoal.store.tables import Instance as InstanceRow
from shoal.store.tables import RegionalDeployment as RegionalRow


class DeploymentListItem(Out):
    id: str
    created_at: datetime
    updated_at: datetime
    allocated_at: datetime | None = None
    started_at: datetime | None = None
    succeeded_at: datetime | None = None
    terminated_at: datetime | None = None
    organization_id: str
    app_id: str
    service_id: str
    parent_id: str
    child_id: str
    status: DeploymentStatus
    metadata: dict[str, Any]
    definition: DeploymentDefinition
    messages: list[str]
    provisioning_info: dict[str, Any]
    version: str
    deployment_group: str


class Deployment(DeploymentListItem):
    skip_build: bool
    role: DeploymentRole


class DeploymentReply(Out):
    deployment: Deployment


class ListDeploymentsReply(Out):
    deployments: list[DeploymentListItem]
    limit: int
    offset: int
    count: int
    has_next: bool


def role_of(row: DeploymentRow, active_id: str | None, latest_id: str | None) -> DeploymentRole:
    """ACTIVE takes traffic; UPCOMING is the newest one on its way; the rest have no role."""
    if row.id == active_id:
        return DeploymentRole.ACTIVE
    if row.id == latest_id and DeploymentStatus(row.status) not in FINAL_DEPLOYMENT_STATUSES:
        return DeploymentRole.UPCOMING
    return DeploymentRole.INVALID


def proxied(rows: Iterable[DeploymentRow]) -> set[str]:
    """The apps of the rows that have public TCP ports (their metadata names the app's host)."""
    return {row.app_id for row in rows if row.meta.get("proxy_ports")}


def render(row: DeploymentRow, role: DeploymentRole, hosts: dict[str, str]) -> Deployment:
    """`hosts`: the public domain of the apps in `proxied`."""
    metadata = row.meta
    if metadata.get("proxy_ports"):
        host = hosts.get(row.app_id, "")
        metadata = {
            **metadata,
            "proxy_ports": [{**p, "host": host} for p in metadata["proxy_ports"]],
        }
    return Deployment(
        id=row.id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        allocated_at=row.allocated_at,
        started_at=row.started_at,
        succeeded_at=row.succeeded_at,
        terminated_at=row.terminated_at,
        organization_id=row.organization_id,
        app_id=row.app_id,
        service_id=row.service_id,
        parent_id=row.parent_id or "",
        child_id=row.child_id or "",
        status=DeploymentStatus(row.status),
        metadata=metadata,
        definition=DeploymentDefinition.model_validate(row.definition),
        messages=list(row.messages),
        provisioning_info=row.provisioning_info,
        version=str(row.number),
        deployment_group=row.deployment_group,
        skip_build=row.skip_build,
        role=role,
    )


class RegionalDeploymentListItem(Out):
    id: str
    created_at: datetime
    updated_at: datetime
    region: str
    status: RegionalDeploymentStatus
    messages: list[str]
    definition: dict[str, Any]


class RegionalDeployment(RegionalDeploymentListItem):
    scheduled_at: datetime | None = None
    allocated_at: datetime | None = None
    started_at: datetime | None = None
    succeeded_at: datetime | None = None
    terminated_at: datetime | None = None
    organization_id: str
    app_id: str
    service_id: str
    deployment_id: str
    version: str
    deployment_group: str = "prod"
    datacenters: list[str] = []
    metadata: dict[str, Any] = {}


class RegionalDeploymentReply(Out):
    regional_deployment: RegionalDeployment


class ListRegionalDeploymentsReply(Out):
    regional_deployments: list[RegionalDeploymentListItem]
    limit: int
    offset: int
    count: int
    has_next: bool


def render_regional(row: RegionalRow) -> RegionalDeployment:
    return RegionalDeployment(
        id=row.id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        scheduled_at=row.scheduled_at,
        allocated_at=row.allocated_at,
        started_at=row.started_at,
        succeeded_at=row.succeeded_at,
        terminated_at=row.terminated_at,
        organization_id=row.organization_id,
        app_id=row.app_id,
        service_id=row.service_id,
        deployment_id=row.deployment_id,
        region=row.region,
        status=RegionalDeploymentStatus(row.status),
        messages=list(row.messages),
        definition=row.definition,
        version=str(row.version),
        datacenters=[row.region],
    )


class InstanceListItem(Out):
    id: str
    created_at: datetime
    updated_at: datetime
    organization_id: str
    app_id: str
    service_id: str
    regional_deployment_id: str
    allocation_id: str
    type: str
    replica_index: int
    region: str
    datacenter: str
    status: InstanceStatus
    messages: list[str]
    xyz_deployment_id: str


class Instance(InstanceListItem):
    hypervisor: str = ""
    started_at: datetime | None = None
    succeeded_at: datetime | None = None
    terminated_at: datetime | None = None


class InstanceReply(Out):
    instance: Instance


class ListInstancesReply(Out):
    instances: list[InstanceListItem]
    limit: int
    offset: int
    count: int
    order: str


def render_instance(row: InstanceRow) -> Instance:
    return Instance(
        id=row.id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        organization_id=row.organization_id,
        app_id=row.app_id,
        service_id=row.service_id,
        regional_deployment_id=row.regional_deployment_id,
        allocation_id=row.id,
        type=row.type,
        replica_index=row.replica_index,
        region=row.region,
        datacenter=row.region,
        status=InstanceStatus(row.status),
        messages=list(row.messages),
        xyz_deployment_id=row.deployment_id,
        started_at=row.started_at,
        succeeded_at=row.succeeded_at,
        terminated_at=row.terminated_at,
    )
