"""/v1/secrets"""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, Query
from pydantic import Field

from shoal.api.deps import Paged, Platform, QueryOf, platform, principal
from shoal.api.routing import RetryOnConflict
from shoal.api.schemas import secrets as wire
from shoal.api.schemas.common import ERROR_RESPONSES, Empty
from shoal.core.enums import SecretType
from shoal.store import secrets as secret_store
from shoal.store.secretbox import SecretBox
from shoal.store.tables import Secret
from shoal.store.tenancy import Principal

router = APIRouter(
    route_class=RetryOnConflict, prefix="/v1/secrets", tags=["Secrets"], responses=ERROR_RESPONSES
)


def _render(box: SecretBox, row: Secret) -> wire.Secret:
    out = wire.Secret(
        id=row.id,
        name=row.name,
        organization_id=row.organization_id,
        type=SecretType(row.type),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
    registry = secret_store.public_registry(box, row)
    if registry is not None:
        setattr(out, registry[0], registry[1])
    return out


class SecretsQuery(Paged):
    name: str | None = None
    types: list[SecretType] = []
    project_id: str | None = Field(None, description="Accepted and ignored: shoal has no projects")


@router.get(
    "",
    operation_id="ListSecrets",
    response_model=wire.ListSecretsReply,
    response_model_exclude_none=True,
)
async def list_secrets(
    args: SecretsQuery = Depends(QueryOf(SecretsQuery)),
    who: Principal = Depends(principal),
    p: Platform = Depends(platform),
) -> wire.ListSecretsReply:
    pg = args.page
    types = [t.value for t in args.types]
    with p.db.read() as s:
        found = secret_store.listing(s, who.organization_id, args.name, types, pg)
        items = [_render(p.box, r) for r in found.rows]
    return wire.ListSecretsReply(secrets=items, limit=pg.limit, offset=pg.offset, count=found.count)


@router.post(
    "",
    operation_id="CreateSecret",
    response_model=wire.SecretReply,
    response_model_exclude_none=True,
)
def create_secret(
    body: wire.SecretBody = Body(...),
    who: Principal = Depends(principal),
    p: Platform = Depends(platform),
) -> wire.SecretReply:
    with p.db.session() as s:
        row = secret_store.create(
            s,
            p.box,
            who.organization_id,
            body.name,
            body.type or SecretType.SIMPLE,
            body.value,
            body.registry(),
        )
        return wire.SecretReply(secret=_render(p.box, row))


@router.get(
    "/{id}",
    operation_id="GetSecret",
    response_model=wire.SecretReply,
    response_model_exclude_none=True,
)
async def get_secret(
    id: str, who: Principal = Depends(principal), p: Platform = Depends(platform)
) -> wire.SecretReply:
    with p.db.read() as s:
        return wire.SecretReply(secret=_render(p.box, secret_store.get(s, who.organization_id, id)))


def update_secret(
    id: str,
    body: wire.SecretBody = Body(...),
    update_mask: str | None = Query(None, description="Accepted; the body's fields are applied"),
    who: Principal = Depends(principal),
    p: Platform = Depends(platform),
) -> wire.SecretReply:
    with p.db.session() as s:
        row = secret_store.get(s, who.organization_id, id)
        secret_store.update(s, p.box, row, body.value, body.registry())
        return wire.SecretReply(secret=_render(p.box, row))


# Koyeb serves the same update as PUT (UpdateSecret) and PATCH (UpdateSecret2).
for _method, _op in (("PUT", "UpdateSecret"), ("PATCH", "UpdateSecret2")):
    router.add_api_route(
        "/{id}",
        update_secret,
        methods=[_method],
        operation_id=_op,
        response_model=wire.SecretReply,
        response_model_exclude_none=True,
    )


@router.delete("/{id}", operation_id="DeleteSecret", response_model=Empty)
def delete_secret(
    id: str, who: Principal = Depends(principal), p: Platform = Depends(platform)
) -> Empty:
    with p.db.session() as s:
        s.delete(secret_store.get(s, who.organization_id, id))
    return Empty()


@router.post("/{id}/reveal", operation_id="RevealSecret", response_model=wire.RevealSecretReply)
def reveal_secret(
    id: str,
    body: dict[str, object] | None = Body(None),
    who: Principal = Depends(principal),
    p: Platform = Depends(platform),
) -> wire.RevealSecretReply:
    with p.db.session() as s:
        row = secret_store.get(s, who.organization_id, id)
        return wire.RevealSecretReply(value=secret_store.reveal(p.box, row))
