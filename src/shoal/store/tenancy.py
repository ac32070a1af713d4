"""Organizations, users and API tokens (stored as SHA-256 hashes)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from shoal.core.enums import CredentialType
from shoal.core.errors import Conflict, NotFound, PermissionDenied, Unauthenticated
from shoal.store.tables import Credential, Membership, Organization, User, utcnow

TOKEN_PREFIX = "shoal_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user acting inside one organization."""

    user_id: str
    organization_id: str
    credential_id: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def authenticate(s: Session, token_hash: str) -> Principal:
    """Who the token with this SHA-256 is (see `hash_token`), or Unauthenticated."""
    cred = s.scalars(select(Credential).where(Credential.token_hash == token_hash)).first()
    if cred is None or (cred.expires_at is not None and cred.expires_at <= utcnow()):
        raise Unauthenticated()
    return Principal(cred.user_id, cred.organization_id, cred.id)


def create_organization(s: Session, user_id: str, name: str) -> Organization:
    if s.scalars(select(Organization).where(Organization.name == name)).first() is not None:
        raise Conflict(f"an organization named {name!r} already exists")
    org = Organization(name=name)
    s.add(org)
    s.flush()
    s.add(Membership(user_id=user_id, organization_id=org.id, role="owner"))
    return org


def get_organization(s: Session, user_id: str, org_id: str) -> Organization:
    member = s.get(Membership, (user_id, org_id))
    org = s.get(Organization, org_id) if member else None
    if org is None:
        raise NotFound("organization")
    return org


def create_credential(
    s: Session,
    user_id: str,
    org_id: str,
    name: str,
    description: str = "",
    type_: CredentialType = CredentialType.ORGANIZATION,
) -> tuple[Credential, str]:
    """A new token for `org_id`, which the user must belong to. The token is returned once."""
    if s.get(Membership, (user_id, org_id)) is None:
        raise PermissionDenied("you are not a member of this organization")
    token = new_token()
    cred = Credential(
        token_hash=hash_token(token),
        name=name,
        description=description,
        type=type_.value,
        user_id=user_id,
        organization_id=org_id,
    )
    s.add(cred)
    s.flush()
    return cred, token


def bootstrap(s: Session, org_name: str) -> str | None:
    """On an empty store: an admin user, an organization and a token for it (returned).

    Returns None when the store already has users.
    """
    if s.scalars(select(User).limit(1)).first() is not None:
        return None
    user = User(name="admin")
    s.add(user)
    s.flush()
    org = create_organization(s, user.id, org_name)
    _, token = create_credential(s, user.id, org.id, "admin", "created by shoal up")
    return token
