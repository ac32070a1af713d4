"""The private mesh's addresses in the store: an organization's block, taken the first time
one of its web services needs one, and each web service's addresses (for all its regions,
and per region), taken when a deployment names them and kept."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from shoal.core import mesh
from shoal.core.definition import DefinitionType, DeploymentDefinition
from shoal.core.errors import PreconditionFailed
from shoal.store.tables import App, MeshAddress, MeshBlock, Service


def assign(s: Session, svc: Service, definition: DeploymentDefinition) -> None:
    """Give a web service with ports its addresses: all regions, and each of its regions."""
    if svc.type != DefinitionType.WEB.value or not definition.ports:
        return
    held = set(s.scalars(select(MeshAddress.scope).where(MeshAddress.service_id == svc.id)).all())
    wanted = [
        scope for scope in (mesh.ALL_REGIONS, *(definition.regions or [])) if scope not in held
    ]
    if not wanted:
        return
    index = _block(s, svc.organization_id)
    taken = set(
        s.scalars(
            select(MeshAddress.address).where(MeshAddress.organization_id == svc.organization_id)
        ).all()
    )
    try:
        free = mesh.free_addresses(index, taken, len(wanted))
    except ValueError as e:
        raise PreconditionFailed(f"the organization's private mesh is full: {e}") from None
    for scope, address in zip(wanted, free, strict=True):
        s.add(
            MeshAddress(
                service_id=svc.id, scope=scope, organization_id=svc.organization_id, address=address
            )
        )


def _block(s: Session, org_id: str) -> int:
    found = s.scalar(select(MeshBlock.index).where(MeshBlock.organization_id == org_id))
    if found is not None:
        return found
    used = set(s.scalars(select(MeshBlock.index)).all())
    index = next((i for i in range(mesh.BLOCKS) if i not in used), None)
    if index is None:
        raise PreconditionFailed("the private mesh holds no more organizations")
    s.add(MeshBlock(organization_id=org_id, index=index))
    s.flush()
    return index


def views(
    s: Session, org_ids: set[str]
) -> dict[str, tuple[str, list[tuple[str, str, str, dict[str, str]]]]]:
    """Organization -> its block and its services' addresses ((app id, app name, service
    name, scope -> address)), for core.mesh.hosts."""
    if not org_ids:
        return {}
    addresses: dict[str, dict[str, str]] = defaultdict(dict)
    for service_id, scope, address in s.execute(
        select(MeshAddress.service_id, MeshAddress.scope, MeshAddress.address).where(
            MeshAddress.organization_id.in_(org_ids)
        )
    ):
        addresses[service_id][scope] = address
    services: dict[str, list[tuple[str, str, str, dict[str, str]]]] = defaultdict(list)
    for service_id, org_id, app_id, app_name, name in s.execute(
        select(Service.id, Service.organization_id, App.id, App.name, Service.name)
        .join(App, App.id == Service.app_id)
        .where(Service.id.in_(list(addresses)))
    ):
        services[org_id].append((app_id, app_name, name, addresses[service_id]))
    blocks = dict(
        s.execute(
            select(MeshBlock.organization_id, MeshBlock.index).where(
                MeshBlock.organization_id.in_(org_ids)
            )
        ).all()
    )
    return {org: (str(mesh.block(index)), services.get(org, [])) for org, index in blocks.items()}


def addresses(s: Session) -> dict[str, dict[str, str]]:
    """Service -> scope -> its mesh address, for every service."""
    out: dict[str, dict[str, str]] = defaultdict(dict)
    for service_id, scope, address in s.execute(
        select(MeshAddress.service_id, MeshAddress.scope, MeshAddress.address)
    ):
        out[service_id][scope] = address
    return dict(out)
