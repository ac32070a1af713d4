"""/v1/deployments, /v1/regional_deployments, /v1/instances"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import Field
from sqlalchemy import select

from shoal.api.deps import Paged, Platform, QueryOf, newest_first, platform, principal
from shoal.api.routing import RetryOnConflict
from shoal.api.schemas import deployments as wire
from shoal.api.schemas.common import ERROR_RESPONSES, Empty
from shoal.store import services as service_store
from shoal.store.query import find, paginate
from shoal.store.tables import Instance, RegionalDeployment, Service
from shoal.store.tenancy import Principal

router = APIRouter(route_class=RetryOnConflict, tags=["Deployments"], responses=ERROR_RESPONSES)
MAX_REPLICA_INDEX = 2**31 - 1  # the column is a 32-bit integer


class DeploymentsQuery(Paged):
    app_id: str | None = None
    service_id: str | None = None
    statuses: list[str] = []


class RegionalDeploymentsQuery(Paged):
    deployment_id: str | None = None


class InstancesQuery(Paged):
    app_id: str | None = None
    service_id: str | None = None
    deployment_id: str | None = None
    regional_deployment_id: str | None = None
    allocation_id: str | None = None
    replica_index: int | None = Field(None, ge=0, le=MAX_REPLICA_INDEX)
    statuses: list[str] = []
    order: str | None = None
    starting_time: str | None = None
    ending_time: str | None = None


@router.get(
    "/v1/deployments", operation_id="ListDeployments", response_model=wire.ListDeploymentsReply
)
async def list_deployments(
    args: DeploymentsQuery = Depends(QueryOf(DeploymentsQuery)),
    who: Principal = Depends(principal),
    p: Platform = Depends(platform),
) -> wire.ListDeploymentsReply:
    pg = args.page
    with p.db.read() as s:
        found = service_store.deployments(
            s, who.organization_id, args.app_id, args.service_id, args.statuses, pg
        )
        ids = {d.service_id for d in found.rows}
        svcs = {sv.id: sv for sv in s.scalars(select(Service).where(Service.id.in_(ids))).all()}
        items = []
        hosts = p.domains(s, wire.proxied(found.rows))
        for d in found.rows:
            sv = svcs.get(d.service_id)
            role = wire.role_of(
                d, sv.active_deployment_id if sv else None, sv.latest_deployment_id if sv else None
            )
            items.append(wire.render(d, role, hosts))
    return wire.ListDeploymentsReply(
        deployments=items,
        limit=pg.limit,
        offset=pg.offset,
        count=found.count,
        has_next=found.has_next,
    )


@router.get(
    "/v1/deployments/{id}", operation_id="GetDeployment", response_model=wire.DeploymentReply
)
async def get_deployment(
    id: str, who: Principal = Depends(principal), p: Platform = Depends(platform)
) -> wire.DeploymentReply:
    with p.db.read() as s:
        d = service_store.get_deployment(s, who.organization_id, id)
        sv = s.get(Service, d.service_id)
        role = wire.role_of(
            d, sv.active_deployment_id if sv else None, sv.latest_deployment_id if sv else None
        )
        hosts = p.domains(s, wire.proxied([d]))
        return wire.DeploymentReply(deployment=wire.render(d, role, hosts))


@router.post("/v1/deployments/{id}/cancel", operation_id="CancelDeployment", response_model=Empty)
def cancel_deployment(
    id: str, who: Principal = Depends(principal), p: Platform = Depends(platform)
) -> Empty:
    with p.db.session() as s:
        d = service_store.get_deployment(s, who.organization_id, id)
        service_store.cancel(s, d)
    p.hint([d.service_id])
    return Empty()


@router.get(
    "/v1/regional_deployments",
    operation_id="ListRegionalDeployments",
    response_model=wire.ListRegionalDeploymentsReply,
)
async def list_regional_deployments(
    args: RegionalDeploymentsQuery = Depends(QueryOf(RegionalDeploymentsQuery)),
    who: Principal = Depends(principal),
    p: Platform = Depends(platform),
) -> wire.ListRegionalDeploymentsReply:
    pg = args.page
    q = select(RegionalDeployment).where(RegionalDeployment.organization_id == who.organization_id)
    if args.deployment_id:
        q = q.where(RegionalDeployment.deployment_id == args.deployment_id)
    with p.db.read() as s:
        newest_first = q.order_by(RegionalDeployment.created_at.desc(), RegionalDeployment.region)
        found = paginate(s, newest_first, pg)
        items = [wire.render_regional(r) for r in found.rows]
    return wire.ListRegionalDeploymentsReply(
        regional_deployments=items,
        limit=pg.limit,
        offset=pg.offset,
        count=found.count,
        has_next=found.has_next,
    )


@router.get(
    "/v1/regional_deployments/{id}",
    operation_id="GetRegionalDeployment",
    response_model=wire.RegionalDeploymentReply,
)
async def get_regional_deployment(
    id: str, who: Principal = Depends(principal), p: Platform = Depends(platform)
) -> wire.RegionalDeploymentReply:
    with p.db.read() as s:
        row = find(s, RegionalDeployment, who.organization_id, id, "regional deployment")
        return wire.RegionalDeploymentReply(regional_deployment=wire.render_regional(row))


@router.get("/v1/instances", operation_id="ListInstances", response_model=wire.ListInstancesReply)
async def list_instances(
    args: InstancesQuery = Depends(QueryOf(InstancesQuery)),
    who: Principal = Depends(principal),
    p: Platform = Depends(platform),
) -> wire.ListInstancesReply:
    pg = args.page
    q = select(Instance).where(Instance.organization_id == who.organization_id)
    for column, value in (
        (Instance.app_id, args.app_id),
        (Instance.service_id, args.service_id),
        (Instance.deployment_id, args.deployment_id),
        (Instance.regional_deployment_id, args.regional_deployment_id),
        (Instance.id, args.allocation_id),
    ):
        if value:
            q = q.where(column == value)
    if args.replica_index is not None:
        q = q.where(Instance.replica_index == args.replica_index)
    if args.statuses:
        q = q.where(Instance.status.in_(args.statuses))
    desc = newest_first(args.order)
    q = q.order_by(Instance.created_at.desc() if desc else Instance.created_at, Instance.id)
    with p.db.read() as s:
        found = paginate(s, q, pg)
        items = [wire.render_instance(r) for r in found.rows]
    return wire.ListInstancesReply(
        instances=items,
        limit=pg.limit,
        offset=pg.offset,
        count=found.count,
        order="desc" if desc else "asc",
    )


@router.get("/v1/instances/{id}", operation_id="GetInstance", response_model=wire.InstanceReply)
async def get_instance(
    id: str, who: Principal = Depends(principal), p: Platform = Depends(platform)
) -> wire.InstanceReply:
    with p.db.read() as s:
        row = find(s, Instance, who.organization_id, id, "instance")
        return wire.InstanceReply(instance=wire.render_instance(row))
