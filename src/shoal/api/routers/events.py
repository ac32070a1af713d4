"""/v1/app_events, /v1/service_events, /v1/deployment_events, ... (one log, five views)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, create_model

from shoal.api.deps import Paged, Platform, QueryOf, newest_first, platform, principal
from shoal.api.routing import RetryOnConflict
from shoal.api.schemas import events as wire
from shoal.api.schemas.common import ERROR_RESPONSES
from shoal.store import events as event_store
from shoal.store.tenancy import Principal

router = APIRouter(route_class=RetryOnConflict, tags=["Events"], responses=ERROR_RESPONSES)


class EventsQuery(Paged):
    ids: list[str] = []  # named after the resource in each route's own model (`app_id`...)
    types: list[str] = []
    order: str | None = None


def _listing(
    kind: str,
    id_field: str,
    item: type[wire.EventBase],
    reply: type[BaseModel],
    who: Principal,
    p: Platform,
    args: EventsQuery,
) -> Any:
    desc = newest_first(args.order)
    pg = args.page
    with p.db.read() as s:
        found = event_store.list_events(
            s, who.organization_id, kind, args.ids, args.types, pg, desc
        )
        events = [
            item.model_validate(
                {
                    "id": e.id,
                    "when": e.when,
                    "organization_id": e.organization_id,
                    "type": e.type,
                    "message": e.message,
                    "metadata": e.meta,
                    id_field: e.subject_id,
                }
            )
            for e in found.rows
        ]
    return reply.model_validate(
        {
            "events": events,
            "limit": pg.limit,
            "offset": pg.offset,
            "order": "desc" if desc else "asc",
            "has_next": found.has_next,
        }
    )


def _route(
    path: str,
    op: str,
    kind: str,
    id_param: str,
    id_field: str,
    item: type[wire.EventBase],
    reply: type[BaseModel],
) -> None:
    query = create_model(
        f"{op}Query", __base__=EventsQuery, ids=(list[str], Field([], alias=id_param))
    )

    async def endpoint(
        args: EventsQuery = Depends(QueryOf(query)),
        who: Principal = Depends(principal),
        p: Platform = Depends(platform),
    ) -> Any:
        return _listing(kind, id_field, item, reply, who, p, args)

    endpoint.__name__ = op
    router.add_api_route(path, endpoint, methods=["GET"], operation_id=op, response_model=reply)


_ROUTES: list[tuple[str, str, str, str, str, type[wire.EventBase], type[BaseModel]]] = [
    (
        "/v1/app_events",
        "ListAppEvents",
        "app",
        "app_id",
        "app_id",
        wire.AppEvent,
        wire.ListAppEventsReply,
    ),
    (
        "/v1/service_events",
        "ListServiceEvents",
        "service",
        "service_id",
        "service_id",
        wire.ServiceEvent,
        wire.ListServiceEventsReply,
    ),
    (
        "/v1/deployment_events",
        "ListDeploymentEvents",
        "deployment",
        "deployment_id",
        "deployment_id",
        wire.DeploymentEvent,
        wire.ListDeploymentEventsReply,
    ),
    (
        "/v1/regional_deployment_events",
        "ListRegionalDeploymentEvents",
        "regional_deployment",
        "regional_deployment_id",
        "regional_deployment_id",
        wire.RegionalDeploymentEvent,
        wire.ListRegionalDeploymentEventsReply,
    ),
    (
        "/v1/instance_events",
        "ListInstanceEvents",
        "instance",
        "instance_ids",
        "instance_id",
        wire.InstanceEvent,
        wire.ListInstanceEventsReply,
    ),
]
for _path, _op, _kind, _param, _field, _item, _reply in _ROUTES:
    _route(_path, _op, _kind, _param, _field, _item, _reply)
