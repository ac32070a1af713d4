"""Secrets: the payload is encrypted with the SecretBox and never leaves but by reveal."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shoal.core.enums import SecretType
from shoal.core.errors import Conflict, InvalidArgument
from shoal.core.errors import FieldError as FE
from shoal.core.names import MAX_SECRET_NAME, name_problem
from shoal.store import events
from shoal.store.query import Listing, Page, find, paginate
from shoal.store.secretbox import SecretBox
from shoal.store.tables import Secret

REGISTRY_KINDS = (
    "docker_hub_registry",
    "private_registry",
    "digital_ocean_registry",
    "github_registry",
    "gitlab_registry",
    "gcp_container_registry",
    "azure_container_registry",
)


def get(s: Session, org_id: str, ident: str) -> Secret:
    return find(s, Secret, org_id, ident, "secret", by_name=True)


def listing(s: Session, org_id: str, name: str | None, types: list[str], page: Page) -> Listing:
    q = select(Secret).where(Secret.organization_id == org_id)
    if name:
        q = q.where(Secret.name.contains(name))
    if types:
        q = q.where(Secret.type.in_(types))
    return paginate(s, q.order_by(Secret.created_at.desc(), Secret.id), page)


def names(s: Session, org_id: str, type_: SecretType | None = None) -> frozenset[str]:
    q = select(Secret.name).where(Secret.organization_id == org_id)
    if type_ is not None:
        q = q.where(Secret.type == type_.value)
    return frozenset(s.scalars(q).all())


def _payload(
    type_: SecretType, value: str | None, registry: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], str | None]:
    if type_ == SecretType.SIMPLE:
        if registry:
            raise InvalidArgument(
                "a SIMPLE secret has a value, not a registry",
                [FE(next(iter(registry)), "only for REGISTRY secrets")],
            )
        if value is None:
            raise InvalidArgument("a SIMPLE secret needs a value", [FE("value", "is required")])
        return {"value": value}, None
    if type_ == SecretType.REGISTRY:
        if len(registry) != 1:
            raise InvalidArgument(
                "a REGISTRY secret needs exactly one registry configuration",
                [FE("private_registry", "set exactly one *_registry field")],
            )
        kind, config = next(iter(registry.items()))
        return config, kind
    raise InvalidArgument(
        "shoal manages no MANAGED secrets", [FE("type", "must be SIMPLE or REGISTRY")]
    )


def create(
    s: Session,
    box: SecretBox,
    org_id: str,
    name: str | None,
    type_: SecretType,
    value: str | None,
    registry: dict[str, dict[str, Any]],
) -> Secret:
    problem = name_problem(name, max_len=MAX_SECRET_NAME)
    if problem or name is None:
        raise InvalidArgument("invalid secret name", [FE("name", problem or "is required")])
    clash = select(Secret).where(Secret.organization_id == org_id, Secret.name == name)
    if s.scalars(clash).first():
        raise Conflict(f"a secret named {name!r} already exists", [FE("name", "already exists")])
    payload, kind = _payload(type_, value, registry)
    secret = Secret(
        organization_id=org_id,
        name=name,
        type=type_.value,
        registry_kind=kind,
        ciphertext=box.seal(payload),
    )
    s.add(secret)
    s.flush()
    events.record(s, org_id, "secret", secret.id, "create", f"Secret {name} created")
    return secret


def update(
    s: Session,
    box: SecretBox,
    secret: Secret,
    value: str | None,
    registry: dict[str, dict[str, Any]],
) -> Secret:
    if value is None and not registry:
        return secret
    payload, kind = _payload(SecretType(secret.type), value, registry)
    secret.ciphertext = box.seal(payload)
    secret.registry_kind = kind
    s.flush()
    return secret


def reveal(box: SecretBox, secret: Secret) -> Any:
    payload = box.open(secret.ciphertext)
    return payload["value"] if secret.type == SecretType.SIMPLE else payload


def public_registry(box: SecretBox, secret: Secret) -> tuple[str, dict[str, Any]] | None:
    """The registry configuration without its password or key, for listings."""
    if secret.registry_kind is None:
        return None
    payload = box.open(secret.ciphertext)
    shown = {k: v for k, v in payload.items() if k in ("username", "url", "registry_name")}
    return secret.registry_kind, shown
