"""Catalog wire shapes: instance types and regions."""

from __future__ import annotations

from shoal.api.schemas.common import Out
from shoal.core.catalog import InstanceType, Region, format_size


class CatalogInstance(Out):
    id: str
    description: str
    vcpu: int
    memory: str
    disk: str
    price_per_second: str
    price_hourly: str
    price_monthly: str
    regions: list[str]
    status: str
    require_plan: list[str]
    vcpu_shares: float
    display_name: str
    aliases: list[str]
    type: str
    service_types: list[str]
    volumes_enabled: bool
    light_sleep_enabled: bool


class CatalogInstanceReply(Out):
    instance: CatalogInstance


class ListCatalogInstancesReply(Out):
    instances: list[CatalogInstance]
    limit: int
    offset: int
    count: int


class CatalogRegion(Out):
    id: str
    name: str
    coordinates: list[str]
    status: str
    instances: list[str]
    datacenters: list[str]
    volumes_enabled: bool
    scope: str


class RegionReply(Out):
    region: CatalogRegion


class ListRegionsReply(Out):
    regions: list[CatalogRegion]
    limit: int
    offset: int
    count: int


def render_instance(t: InstanceType, offered: tuple[str, ...]) -> CatalogInstance:
    return CatalogInstance(
        id=t.id,
        description=f"{t.vcpu_shares:g} vCPU, {format_size(t.memory_mb)} RAM, "
        f"{format_size(t.disk_mb)} disk",
        vcpu=t.vcpu,
        memory=format_size(t.memory_mb),
        disk=format_size(t.disk_mb),
        price_per_second=f"{t.price_per_second:f}",
        price_hourly=f"{t.price_hourly:f}",
        price_monthly=f"{t.price_monthly:f}",
        regions=[r for r in offered if t.available_in(r)],
        status="AVAILABLE",
        require_plan=[],
        vcpu_shares=t.vcpu_shares,
        display_name=t.id,
        aliases=[],
        type=t.family,
        service_types=["web"] if t.is_free else ["web", "worker"],
        volumes_enabled=False,
        light_sleep_enabled=True,
    )


def render_region(r: Region, instance_ids: list[str]) -> CatalogRegion:
    return CatalogRegion(
        id=r.id,
        name=r.name,
        coordinates=[f"{r.latitude}", f"{r.longitude}"],
        status="AVAILABLE",
        instances=instance_ids,
        datacenters=[r.id],
        volumes_enabled=False,
        scope="metropolitan",
    )
