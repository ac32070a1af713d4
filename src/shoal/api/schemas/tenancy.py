"""Organization and credential wire shapes (the subset shoal serves)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from shoal.api.schemas.common import In, Out
from shoal.core.enums import CredentialType


class CreateOrganization(In):
    name: str | None = None


class Organization(Out):
    id: str
    name: str
    status: str = "ACTIVE"


class OrganizationReply(Out):
    organization: Organization


class CreateCredential(In):
    name: str | None = Field(None, max_length=128)
    description: str | None = Field(None, max_length=512)
    type: CredentialType | None = None
    organization_id: str | None = None


class Credential(Out):
    id: str
    type: CredentialType
    name: str
    token: str = ""
    description: str
    user_id: str
    organization_id: str
    updated_at: datetime
    created_at: datetime
    expires_at: datetime | None = None


class CredentialReply(Out):
    credential: Credential


class ListCredentialsReply(Out):
    credentials: list[Credential]
    limit: int
    offset: int
    count: int
