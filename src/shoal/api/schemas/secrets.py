"""Secret wire shapes. A secret's value never appears in them; only reveal returns it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shoal.api.schemas.common import In, Out
from shoal.core.enums import SecretType
from shoal.store.secrets import REGISTRY_KINDS


class RegistryIn(In):
    username: str | None = None
    password: str | None = None
    url: str | None = None


class GCPRegistryIn(In):
    keyfile_content: str | None = None
    url: str | None = None


class AzureRegistryIn(In):
    registry_name: str | None = None
    username: str | None = None
    password: str | None = None


class SecretBody(In):
    """CreateSecret, and the body of an update (Koyeb sends a whole Secret there)."""

    name: str | None = None
    type: SecretType | None = None
    value: str | None = None
    docker_hub_registry: RegistryIn | None = None
    private_registry: RegistryIn | None = None
    digital_ocean_registry: RegistryIn | None = None
    github_registry: RegistryIn | None = None
    gitlab_registry: RegistryIn | None = None
    gcp_container_registry: GCPRegistryIn | None = None
    azure_container_registry: AzureRegistryIn | None = None
    project_id: str | None = None
    # Read-only fields a client may echo back on update; ignored.
    id: str | None = None
    organization_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def registry(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for kind in REGISTRY_KINDS:
            config = getattr(self, kind)
            if config is not None:
                out[kind] = config.model_dump(exclude_none=True)
        return out


class Secret(Out):
    id: str
    name: str
    organization_id: str
    type: SecretType
    updated_at: datetime
    created_at: datetime
    docker_hub_registry: dict[str, Any] | None = None
    private_registry: dict[str, Any] | None = None
    digital_ocean_registry: dict[str, Any] | None = None
    github_registry: dict[str, Any] | None = None
    gitlab_registry: dict[str, Any] | None = None
    gcp_container_registry: dict[str, Any] | None = None
    azure_container_registry: dict[str, Any] | None = None


class SecretReply(Out):
    secret: Secret


class ListSecretsReply(Out):
    secrets: list[Secret]
    limit: int
    offset: int
    count: int


class RevealSecretReply(Out):
    value: Any
