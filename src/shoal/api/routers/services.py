"""/v1/services"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query
from pydantic import Field
from sqlalchemy.orm import Session

from shoal.api.deps import Paged, Platform, QueryOf, platform, principal
from shoal.api.routing import RetryOnConflict
from shoal.api.schemas import deployments as dwire
from shoal.api.schemas import services as wire
from shoal.api.schemas.common import ERROR_RESPONSES, Empty
from shoal.core.defaults import complete
from shoal.core.definition import DeploymentDefinition
from shoal.core.enums import TriggerType
from shoal.core.errors import FieldError, InvalidArgument
from shoal.core.validation import check
from shoal.store import apps as app_store
from shoal.store import services as service_store
from shoal.store.tables import Deployment, Service
from shoal.store.tenancy import Principal

router = APIRouter(
    route_class=RetryOnConflict, prefix="/v1/services", tags=["Services"], responses=ERROR_RESPONSES
)


def _prepared(
    s: Session,
    p: Platform,
    org_id: str,
    definition: DeploymentDefinition | None,
    service_id: str | None,
) -> DeploymentDefinition:
    """The definition with Koyeb's defaults, or InvalidArgument naming every bad field."""
    if definition is None:
        raise InvalidArgument("Validation error", [FieldError("definition", "is required")])
    full = complete(definition, p.regions[0])
    ctx = service_store.validation_context(s, org_id, frozenset(p.regions), service_id, p.local_git)
    problems = check(full, ctx)
    if problems:
        raise InvalidArgument("Validation error", problems)
    return full


class ServicesQuery(Paged):
    app_id: str | None = Field(None, description="(Optional) The id of the app")
    name: str | None = Field(None, description="(Optional) A filter for name")
    types: list[str] = Field([], description="(Optional) Filter on service types")
    statuses: list[str] = Field([], description="(Optional) Filter on service statuses")
    regions: list[str] = Field([], description="(Optional) Filter on regions")
    project_id: str | None = Field(None, description="Accepted and ignored: shoal has no projects")


@router.get("", operation_id="ListServices", response_model=wire.ListServicesReply)
async def list_services(
    q: ServicesQuery = Depends(QueryOf(ServicesQuery)),
    who: Principal = Depends(principal),
    p: Platform = Depends(platform),
) -> wire.ListServicesReply:
    pg = q.page
    with p.db.rows() as c:
        found = service_store.listing(
            c, who.organization_id, q.app_id, q.name, q.types, q.statuses, q.regions, pg
        )
        items = [wire.render(r) for r in found.rows]
    return wire.ListServicesReply(
        services=items, limit=pg.limit, offset=pg.offset, count=found.count, has_next=found.has_next
    )


@router.post("", operation_id="CreateService", response_model=wire.ServiceReply)
def create_service(
    body: wire.CreateService = Body(...),
    dry_run: bool = Query(False, description="If set, validate and answer without creating"),
    who: Principal = Depends(principal),
    p: Platform = Depends(platform),
) -> wire.ServiceReply:
    if not body.app_id:
        raise InvalidArgument("Validation error", [FieldError("app_id", "is required")])
    with p.db.session(commit=not dry_run) as s:
        app = app_store.get(s, who.organization_id, body.app_id)
        definition = _prepared(s, p, who.organization_id, body.definition, None)
        row = service_store.create(s, app, definition)
        s.flush()
        reply = wire.ServiceReply(service=wire.render(row))
    if not dry_run:
        p.hint([row.id])
    return reply


@router.get("/{id}", operation_id="GetService", response_model=wire.ServiceReply)
async def get_service(
    id: str, who: Principal = Depends(principal), p: Platform = Depends(platform)
) -> wire.ServiceReply:
    with p.db.rows() as c:
        return wire.ServiceReply(service=wire.render(service_store.get(c, who.organization_id, id)))


def _merged(
    current: DeploymentDefinition, patch: dict[str, Any], mask: str | None
) -> DeploymentDefinition:
    """PATCH: the fields in the body (or only those the update mask names) replace the current
    ones."""
    base = current.model_dump(mode="json", exclude_none=True)
    fields: set[str] = set(patch)
    if mask:
        fields = {
            m.strip().removeprefix("definition.").split(".")[0]
            for m in mask.split(",")
            if m.strip()
        }
    for f in fields:
        if f in patch:
            base[f] = patch[f]
        else:
            base.pop(f, None)
    return DeploymentDefinition.model_validate(base)


def _update(
    id: str,
    body: wire.UpdateService,
    who: Principal,
    p: Platform,
    dry_run: bool,
    patch_mask: str | None,
    is_patch: bool,
) -> wire.ServiceReply:
    with p.db.session(commit=not dry_run) as s:
        svc = service_store.get(s, who.organization_id, id, lock=True)
        definition = body.definition
        if is_patch and definition is not None:
            given = definition.model_dump(mode="json", exclude_unset=True)
            definition = _merged(service_store.latest_definition(s, svc), given, patch_mask)
        full = _prepared(s, p, who.organization_id, definition, svc.id)
        service_store.new_deployment(
            s,
            svc,
            full,
            service_store.Trigger(TriggerType.UNKNOWN_TYPE),
            save_only=bool(body.save_only),
            skip_build=bool(body.skip_build),
        )
        s.flush()
        reply = wire.ServiceReply(service=wire.render(svc))
    if not dry_run:
        p.hint([svc.id])
    return reply


@router.put("/{id}", operation_id="UpdateService", response_model=wire.ServiceReply)
def update_service(
    id: str,
    body: wire.UpdateService = Body(...),
    update_mask: str | None = Query(None),
    dry_run: bool = Query(False),
    who: Principal = Depends(principal),
    p: Platform = Depends(platform),
) -> wire.ServiceReply:
    return _update(id, body, who, p, dry_run, update_mask, is_patch=False)


@router.patch("/{id}", operation_id="UpdateService2", response_model=wire.ServiceReply)
def patch_service(
    id: str,
    body: wire.UpdateService = Body(...),
    update_mask: str | None = Query(None),
    dry_run: bool = Query(False),
    who: Principal = Depends(principal),
    p: Platform = Depends(platform),
) -> wire.ServiceReply:
    return _update(id, body, who, p, dry_run, update_mask, is_patch=True)


@router.delete("/{id}", operation_id="DeleteService", response_model=Empty)
def delete_service(
    id: str, who: Principal = Depends(principal), p: Platform = Depends(platform)
) -> Empty:
    with p.db.session() as s:
        svc = service_store.get(s, who.organization_id, id, lock=True)
        service_store.delete(s, svc)
    p.hint([svc.id])
    return Empty()


@router.post("/{id}/pause", operation_id="PauseService", response_model=Empty)
def pause_service(
    id: str, who: Principal = Depends(principal), p: Platform = Depends(platform)
) -> Empty:
    with p.db.session() as s:
        svc = service_store.get(s, who.organization_id, id, lock=True)
        service_store.pause(s, svc)
    p.hint([svc.id])
    return Empty()


@router.post("/{id}/resume", operation_id="ResumeService", response_model=Empty)
def resume_service(
    id: str,
    skip_build: bool = Query(False),
    use_cache: bool = Query(False),
    who: Principal = Depends(principal),
    p: Platform = Depends(platform),
) -> Empty:
    with p.db.session() as s:
        svc = service_store.get(s, who.organization_id, id, lock=True)
        service_store.resume(s, svc, skip_build)
    p.hint([svc.id])
    return Empty()


@router.post("/{id}/redeploy", operation_id="ReDeploy", response_model=dwire.DeploymentReply)
def redeploy_service(
    id: str,
    body: wire.RedeployRequest = Body(...),
    who: Principal = Depends(principal),
    p: Platform = Depends(platform),
) -> dwire.DeploymentReply:
    with p.db.session() as s:
        svc: Service = service_store.get(s, who.organization_id, id, lock=True)
        dep: Deployment = service_store.redeploy(
            s, svc, bool(body.skip_build), body.deployment_group
        )
        s.flush()
        role = dwire.role_of(dep, svc.active_deployment_id, svc.latest_deployment_id)
        hosts = p.domains(s, dwire.proxied([dep]))
        reply = dwire.DeploymentReply(deployment=dwire.render(dep, role, hosts))
    p.hint([svc.id])
    return reply
