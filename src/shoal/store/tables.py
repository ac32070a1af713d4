"""The store's tables. Rows hold facts; statuses that can be derived are derived in core."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from shoal.core.ids import new_id


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps none of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


def _id() -> Mapped[str]:
    return mapped_column(String(36), primary_key=True, default=new_id)


def _created() -> Mapped[datetime]:
    return mapped_column(default=utcnow)


def _updated() -> Mapped[datetime]:
    return mapped_column(default=utcnow, onupdate=utcnow)


class Organization(Base):
    __tablename__ = "organizations"
    id: Mapped[str] = _id()
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = _id()
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = _created()


class Membership(Base):
    __tablename__ = "memberships"
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(16), default="owner")


class Credential(Base):
    """An API token. Only its SHA-256 is kept; the token itself is shown once."""

    __tablename__ = "credentials"
    id: Mapped[str] = _id()
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(512), default="")
    type: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()
    expires_at: Mapped[datetime | None]


class App(Base):
    __tablename__ = "apps"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)
    id: Mapped[str] = _id()
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    deleting: Mapped[bool] = mapped_column(default=False)
    messages: Mapped[list[Any]] = mapped_column(default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)
    delete_when_empty: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()
    started_at: Mapped[datetime | None]
    succeeded_at: Mapped[datetime | None]
    paused_at: Mapped[datetime | None]
    resumed_at: Mapped[datetime | None]
    terminated_at: Mapped[datetime | None]

    __mapper_args__ = {"version_id_col": version}


class Service(Base):
    __tablename__ = "services"
    __table_args__ = (UniqueConstraint("app_id", "name"),)
    id: Mapped[str] = _id()
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    # What the user last asked for (core.status.Intent); the status is derived from it.
    intent: Mapped[str] = mapped_column(String(8), default="RUN")
    # Set by resume until the deployment it started settles.
    resume_deployment_id: Mapped[str | None] = mapped_column(String(36))
    messages: Mapped[list[Any]] = mapped_column(default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)
    active_deployment_id: Mapped[str | None] = mapped_column(String(36))
    latest_deployment_id: Mapped[str | None] = mapped_column(String(36))
    last_provisioned_deployment_id: Mapped[str | None] = mapped_column(String(36))
    # Deploy on push: the key push webhooks are signed with (encrypted), the last time the
    # tracked branch was polled.
    webhook_secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    git_polled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()
    started_at: Mapped[datetime | None]
    succeeded_at: Mapped[datetime | None]
    paused_at: Mapped[datetime | None]
    resumed_at: Mapped[datetime | None]
    terminated_at: Mapped[datetime | None]

    __mapper_args__ = {"version_id_col": version}


class Deployment(Base):
    """An immutable revision of a service: its definition never changes after insert."""

    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("service_id", "number"),)
    id: Mapped[str] = _id()
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id"), index=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id"), index=True)
    # The service's revision counter: 1, 2, 3... (the wire `version` is the row's own).
    number: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[str | None] = mapped_column(String(36))
    child_id: Mapped[str | None] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(16))
    messages: Mapped[list[Any]] = mapped_column(default=list)
    definition: Mapped[dict[str, Any]]
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    provisioning_info: Mapped[dict[str, Any]] = mapped_column(default=dict)
    skip_build: Mapped[bool] = mapped_column(default=False)
    # A git deployment's build: the node building it, then what it built (core.assignment
    # Artifact's fields); instances start only once there is an artifact.
    build_node_id: Mapped[str | None] = mapped_column(String(36))
    artifact: Mapped[dict[str, Any] | None]
    deployment_group: Mapped[str] = mapped_column(String(64), default="prod")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()
    allocated_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    succeeded_at: Mapped[datetime | None]
    terminated_at: Mapped[datetime | None]

    __mapper_args__ = {"version_id_col": version}


class RegionalDeployment(Base):
    __tablename__ = "regional_deployments"
    __table_args__ = (UniqueConstraint("deployment_id", "region"),)
    id: Mapped[str] = _id()
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id"))
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id"), index=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id"), index=True)
    region: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    messages: Mapped[list[Any]] = mapped_column(default=list)
    definition: Mapped[dict[str, Any]]
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()
    scheduled_at: Mapped[datetime | None]
    allocated_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    succeeded_at: Mapped[datetime | None]
    terminated_at: Mapped[datetime | None]

    __mapper_args__ = {"version_id_col": version}


class Node(Base):
    """A machine running an agent for one region."""

    __tablename__ = "nodes"
    id: Mapped[str] = _id()
    name: Mapped[str] = mapped_column(String(128), unique=True)
    region: Mapped[str] = mapped_column(String(16))
    cpus: Mapped[float]
    memory_mb: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = _created()
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Where an edge on the same machine asks the agent to thaw a frozen instance (a Unix
    # socket; "" when it has none).
    waker: Mapped[str] = mapped_column(String(255), default="", server_default="")


class Instance(Base):
    __tablename__ = "instances"
    id: Mapped[str] = _id()
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id"))
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id"), index=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id"), index=True)
    regional_deployment_id: Mapped[str] = mapped_column(
        ForeignKey("regional_deployments.id"), index=True
    )
    region: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(32))
    replica_index: Mapped[int] = mapped_column(Integer, default=0)
    node_id: Mapped[str | None] = mapped_column(ForeignKey("nodes.id"), index=True)
    # What the control plane wants (core.rollout.Desired); `status` is what the node reports.
    desired: Mapped[str] = mapped_column(String(8), default="RUN")
    address: Mapped[str | None] = mapped_column(String(64))  # where the node reaches it
    status: Mapped[str] = mapped_column(String(16))
    messages: Mapped[list[Any]] = mapped_column(default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()
    started_at: Mapped[datetime | None]
    succeeded_at: Mapped[datetime | None]
    terminated_at: Mapped[datetime | None]

    __mapper_args__ = {"version_id_col": version}


class LogEntry(Base):
    """One line of an instance's output, or of the platform about it (stream `koyeb`)."""

    __tablename__ = "logs"
    __table_args__ = (
        Index("ix_logs_service", "service_id", "id"),
        Index("ix_logs_instance", "instance_id", "id"),
        Index("ix_logs_deployment", "deployment_id", "id"),  # a build's lines
    )
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    organization_id: Mapped[str] = mapped_column(String(36), index=True)
    app_id: Mapped[str] = mapped_column(String(36))
    service_id: Mapped[str] = mapped_column(String(36))
    deployment_id: Mapped[str] = mapped_column(String(36))
    regional_deployment_id: Mapped[str] = mapped_column(String(36))
    instance_id: Mapped[str] = mapped_column(String(36))
    region: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(8))  # runtime | build
    stream: Mapped[str] = mapped_column(String(8))  # stdout | stderr | koyeb
    msg: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Secret(Base):
    """A secret's material lives only in `ciphertext` (the whole payload, encrypted)."""

    __tablename__ = "secrets"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)
    id: Mapped[str] = _id()
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(16))
    # For REGISTRY secrets: which `*_registry` field the payload came in.
    registry_kind: Mapped[str | None] = mapped_column(String(32))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class ServiceScale(Base):
    """The autoscaler's last decision for one region of a service: how many instances, since
    when, and its last burst (autoscale/policy.py). Kept across deployments and restarts."""

    __tablename__ = "service_scales"
    service_id: Mapped[str] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), primary_key=True
    )
    region: Mapped[str] = mapped_column(String(16), primary_key=True)
    replicas: Mapped[int]
    changed_at: Mapped[datetime]
    panic_at: Mapped[datetime | None]
    # Asleep (0 replicas) lightly: its instances are frozen, kept to be thawed on a request.
    light: Mapped[bool] = mapped_column(default=False, server_default=false())


class ProxyPort(Base):
    """The edge's public TCP port for one `proxy_ports` port of a service: it stays the
    service's across its deployments."""

    __tablename__ = "proxy_ports"
    service_id: Mapped[str] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), primary_key=True
    )
    port: Mapped[int] = mapped_column(primary_key=True)
    public_port: Mapped[int] = mapped_column(unique=True)


class MeshBlock(Base):
    """An organization's block of the private mesh's addresses (core/mesh.py)."""

    __tablename__ = "mesh_blocks"
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    index: Mapped[int] = mapped_column(unique=True)


class MeshAddress(Base):
    """A web service's mesh address: for all its regions (scope "") or for one region."""

    __tablename__ = "mesh_addresses"
    service_id: Mapped[str] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), primary_key=True
    )
    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36), index=True)
    address: Mapped[str] = mapped_column(String(15), unique=True)


class InstanceUsage(Base):
    """An instance's run, for usage and billing: kept when the instance's rows, service and
    app are gone (store/usage.py)."""

    __tablename__ = "instance_usages"
    __table_args__ = (Index("ix_instance_usages_org_start", "organization_id", "started_at"),)
    instance_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36))
    app_id: Mapped[str] = mapped_column(String(36))
    app_name: Mapped[str] = mapped_column(String(64))
    service_id: Mapped[str] = mapped_column(String(36))
    service_name: Mapped[str] = mapped_column(String(64))
    region: Mapped[str] = mapped_column(String(16))
    deployment_id: Mapped[str] = mapped_column(String(36))
    regional_deployment_id: Mapped[str] = mapped_column(String(36))
    instance_type: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime]
    terminated_at: Mapped[datetime | None]


class InstanceSleep(Base):
    """A time an instance spent asleep and frozen (light sleep): not counted as usage."""

    __tablename__ = "instance_sleeps"
    instance_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(primary_key=True)
    ended_at: Mapped[datetime | None]


class Archive(Base):
    """An uploaded source tree (a gzipped tar) that deployments build from, like a git one."""

    __tablename__ = "archives"
    id: Mapped[str] = _id()
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    size: Mapped[int] = mapped_column(BigInteger)  # the space provisioned: the upload's bound
    content: Mapped[bytes | None] = mapped_column(LargeBinary)  # None until uploaded
    created_at: Mapped[datetime] = _created()
    uploaded_at: Mapped[datetime | None]


class Event(Base):
    """One append-only log for app, service, deployment, regional deployment and instance events."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_subject", "kind", "subject_id", "when"),)
    id: Mapped[str] = _id()
    organization_id: Mapped[str] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    subject_id: Mapped[str] = mapped_column(String(36))
    type: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(String(1024))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    when: Mapped[datetime] = mapped_column(default=utcnow)
