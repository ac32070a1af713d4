"""/v1/apps"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Body, Depends, Query
from pydantic import Field
from sqlalchemy import Row
from sqlalchemy.orm import Session

from shoal.api.deps import Paged, Platform, QueryOf, platform, principal
from shoal.api.routing import RetryOnConflict
from shoal.api.schemas import apps as wire
from shoal.api.schemas.common import ERROR_RESPONSES, Empty
from shoal.store import apps as app_store
from shoal.store import services as service_store
from shoal.store.tables import App, Service
from shoal.store.tenancy import Principal

router = APIRouter(
    route_class=RetryOnConflict, prefix="/v1/apps", tags=["Apps"], responses=ERROR_RESPONSES
)


def _render(p: Platform, row: App | Row[Any]) -> wire.App:
    return wire.render(row, p.org_name(row.organization_id), p.base_domain)


class AppsQuery(Paged):
    name: str | None = Field(None, description="(Optional) A filter for name")
    project_id: str | None = Field(None, description="Accepted and ignored: shoal has no projects")


@router.get("", operation_id="ListApps", response_model=wire.ListAppsReply)
async def list_apps(
    args: AppsQuery = Depends(QueryOf(AppsQuery)),
    who: Principal = Depends(principal),
    p: Platform = Depends(platform),
) -> wire.ListAppsReply:
    pg = args.page
    with p.db.rows() as c:
        found = app_store.listing(c, who.organization_id, args.name, pg)
        items = [_render(p, r) for r in found.rows]
    return wire.ListAppsReply(
        apps=items, limit=pg.limit, offset=pg.offset, count=found.count, has_next=found.has_next
    )


@router.post("", operation_id="CreateApp", response_model=wire.AppReply)
def create_app(
    body: wire.CreateApp = Body(...),
    who: Principal = Depends(principal),
    p: Platform = Depends(platform),
) -> wire.AppReply:
    lc = body.life_cycle
    with p.db.session() as s:
        row = app_store.create(s, who.organization_id, body.name, bool(lc and lc.delete_when_empty))
        return wire.AppReply(app=_render(p, row))


@router.get("/{id}", operation_id="GetApp", response_model=wire.AppReply)
async def get_app(
    id: str, who: Principal = Depends(principal), p: Platform = Depends(platform)
) -> wire.AppReply:
    with p.db.rows() as c:
        return wire.AppReply(app=_render(p, app_store.get(c, who.organization_id, id)))


def update_app(
    id: str,
    body: wire.UpdateApp = Body(...),
    update_mask: str | None = Query(None, description="Accepted; the body's fields are applied"),
    who: Principal = Depends(principal),
    p: Platform = Depends(platform),
) -> wire.AppReply:
    lc = body.life_cycle
    with p.db.session() as s:
        row = app_store.get(s, who.organization_id, id)
        app_store.update(s, row, body.name, lc.delete_when_empty if lc else None)
        return wire.AppReply(app=_render(p, row))


# Koyeb serves the same update as PUT (UpdateApp) and PATCH (UpdateApp2).
for _method, _op in (("PUT", "UpdateApp"), ("PATCH", "UpdateApp2")):
    router.add_api_route(
        "/{id}", update_app, methods=[_method], operation_id=_op, response_model=wire.AppReply
    )


def _on_services(
    id: str, who: Principal, p: Platform, act: Callable[[Session, App], list[Service]]
) -> Empty:
    """Apply an app-wide action to the app's services and wake the control loop for them."""
    with p.db.session() as s:
        row = app_store.get(s, who.organization_id, id)
        members = [sv.id for sv in act(s, row)]
    p.hint(members)
    return Empty()


@router.delete("/{id}", operation_id="DeleteApp", response_model=Empty)
def delete_app(
    id: str, who: Principal = Depends(principal), p: Platform = Depends(platform)
) -> Empty:
    return _on_services(id, who, p, service_store.delete_app)


@router.post("/{id}/pause", operation_id="PauseApp", response_model=Empty)
def pause_app(
    id: str, who: Principal = Depends(principal), p: Platform = Depends(platform)
) -> Empty:
    return _on_services(id, who, p, service_store.pause_app)


@router.post("/{id}/resume", operation_id="ResumeApp", response_model=Empty)
def resume_app(
    id: str, who: Principal = Depends(principal), p: Platform = Depends(platform)
) -> Empty:
    return _on_services(id, who, p, service_store.resume_app)
