"""/v1/catalog/instances and /v1/catalog/regions (public, like Koyeb's)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import Field

from shoal.api.deps import Paged, Platform, QueryOf, platform
from shoal.api.routing import RetryOnConflict
from shoal.api.schemas import catalog as wire
from shoal.api.schemas.common import ERROR_RESPONSES
from shoal.core.catalog import INSTANCE_TYPES, KNOWN_REGIONS
from shoal.core.errors import NotFound

router = APIRouter(
    route_class=RetryOnConflict, prefix="/v1/catalog", tags=["Catalog"], responses=ERROR_RESPONSES
)


class CatalogInstancesQuery(Paged):
    id: str | None = Field(None, description="(Optional) A filter for the instance type id")


class RegionsQuery(Paged):
    id: str | None = Field(None, description="(Optional) A filter for the region id")


@router.get(
    "/instances", operation_id="ListCatalogInstances", response_model=wire.ListCatalogInstancesReply
)
async def list_instances(
    args: CatalogInstancesQuery = Depends(QueryOf(CatalogInstancesQuery)),
    p: Platform = Depends(platform),
) -> wire.ListCatalogInstancesReply:
    pg = args.page
    types = [t for t in INSTANCE_TYPES.values() if args.id is None or t.id == args.id]
    shown = types[pg.offset : pg.offset + pg.limit]
    return wire.ListCatalogInstancesReply(
        instances=[wire.render_instance(t, p.regions) for t in shown],
        limit=pg.limit,
        offset=pg.offset,
        count=len(types),
    )


@router.get(
    "/instances/{id}", operation_id="GetCatalogInstance", response_model=wire.CatalogInstanceReply
)
async def get_instance(id: str, p: Platform = Depends(platform)) -> wire.CatalogInstanceReply:
    t = INSTANCE_TYPES.get(id)
    if t is None:
        raise NotFound("instance type")
    return wire.CatalogInstanceReply(instance=wire.render_instance(t, p.regions))


def _region(p: Platform, region_id: str) -> wire.CatalogRegion:
    types = [t.id for t in INSTANCE_TYPES.values() if t.available_in(region_id)]
    return wire.render_region(KNOWN_REGIONS[region_id], types)


@router.get("/regions", operation_id="ListRegions", response_model=wire.ListRegionsReply)
async def list_regions(
    args: RegionsQuery = Depends(QueryOf(RegionsQuery)), p: Platform = Depends(platform)
) -> wire.ListRegionsReply:
    pg = args.page
    ids = [r for r in p.regions if args.id is None or r == args.id]
    shown = ids[pg.offset : pg.offset + pg.limit]
    return wire.ListRegionsReply(
        regions=[_region(p, r) for r in shown], limit=pg.limit, offset=pg.offset, count=len(ids)
    )


@router.get("/regions/{id}", operation_id="GetRegion", response_model=wire.RegionReply)
async def get_region(id: str, p: Platform = Depends(platform)) -> wire.RegionReply:
    if id not in p.regions:
        raise NotFound("region")
    return wire.RegionReply(region=_region(p, id))
