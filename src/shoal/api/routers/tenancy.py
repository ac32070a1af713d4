"""/v1/organizations and /v1/credentials: the subset that lets a user make organizations
and tokens for them."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends
from sqlalchemy import select

from shoal.api.deps import Paged, Platform, QueryOf, platform, principal
from shoal.api.routing import RetryOnConflict
from shoal.api.schemas import tenancy as wire
from shoal.api.schemas.common import ERROR_RESPONSES, Empty
from shoal.core.enums import CredentialType
from shoal.core.errors import FieldError, InvalidArgument, NotFound
from shoal.core.names import name_problem
from shoal.store import tenancy
from shoal.store.query import paginate
from shoal.store.tables import Credential
from shoal.store.tenancy import Principal

router = APIRouter(route_class=RetryOnConflict, tags=["Organizations"], responses=ERROR_RESPONSES)


@router.post(
    "/v1/organizations", operation_id="CreateOrganization", response_model=wire.OrganizationReply
)
def create_organization(
    body: wire.CreateOrganization = Body(...),
    who: Principal = Depends(principal),
    p: Platform = Depends(platform),
) -> wire.OrganizationReply:
    problem = name_problem(body.name)
    if problem or body.name is None:
        raise InvalidArgument("Validation error", [FieldError("name", problem or "is required")])
    with p.db.session() as s:
        org = tenancy.create_organization(s, who.user_id, body.name)
        return wire.OrganizationReply(organization=wire.Organization(id=org.id, name=org.name))


@router.get(
    "/v1/organizations/{id}", operation_id="GetOrganization", response_model=wire.OrganizationReply
)
async def get_organization(
    id: str, who: Principal = Depends(principal), p: Platform = Depends(platform)
) -> wire.OrganizationReply:
    with p.db.read() as s:
        org = tenancy.get_organization(s, who.user_id, id)
        return wire.OrganizationReply(organization=wire.Organization(id=org.id, name=org.name))


def _render(c: Credential, token: str = "") -> wire.Credential:
    return wire.Credential(
        id=c.id,
        type=CredentialType(c.type),
        name=c.name,
        token=token,
        description=c.description,
        user_id=c.user_id,
        organization_id=c.organization_id,
        created_at=c.created_at,
        updated_at=c.updated_at,
        expires_at=c.expires_at,
    )


@router.post(
    "/v1/credentials", operation_id="CreateCredential", response_model=wire.CredentialReply
)
def create_credential(
    body: wire.CreateCredential = Body(...),
    who: Principal = Depends(principal),
    p: Platform = Depends(platform),
) -> wire.CredentialReply:
    if not body.name:
        raise InvalidArgument("Validation error", [FieldError("name", "is required")])
    with p.db.session() as s:
        cred, token = tenancy.create_credential(
            s,
            who.user_id,
            body.organization_id or who.organization_id,
            body.name,
            body.description or "",
            body.type or CredentialType.ORGANIZATION,
        )
        return wire.CredentialReply(credential=_render(cred, token))


@router.get(
    "/v1/credentials", operation_id="ListCredentials", response_model=wire.ListCredentialsReply
)
async def list_credentials(
    args: Paged = Depends(QueryOf(Paged)),
    who: Principal = Depends(principal),
    p: Platform = Depends(platform),
) -> wire.ListCredentialsReply:
    pg = args.page
    q = select(Credential).where(
        Credential.user_id == who.user_id, Credential.organization_id == who.organization_id
    )
    with p.db.read() as s:
        found = paginate(s, q.order_by(Credential.created_at.desc(), Credential.id), pg)
        return wire.ListCredentialsReply(
            credentials=[_render(c) for c in found.rows],
            limit=pg.limit,
            offset=pg.offset,
            count=found.count,
        )


@router.delete("/v1/credentials/{id}", operation_id="DeleteCredential", response_model=Empty)
def delete_credential(
    id: str, who: Principal = Depends(principal), p: Platform = Depends(platform)
) -> Empty:
    with p.db.session() as s:
        cred = s.get(Credential, id)
        if (
            cred is None
            or cred.user_id != who.user_id
            or cred.organization_id != who.organization_id
        ):
            raise NotFound("credential")
        s.delete(cred)
    p.principals.forget(id)
    return Empty()
