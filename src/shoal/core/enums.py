"""Status and type enums, spelled exactly as Koyeb's API spells them."""

from __future__ import annotations

from enum import StrEnum


class AppStatus(StrEnum):
    STARTING = "STARTING"
    HEALTHY = "HEALTHY"
    DEGRADED = "DEGRADED"
    UNHEALTHY = "UNHEALTHY"
    DELETING = "DELETING"
    DELETED = "DELETED"
    PAUSING = "PAUSING"
    PAUSED = "PAUSED"
    RESUMING = "RESUMING"


# Services share the app's status vocabulary.
ServiceStatus = AppStatus


class ServiceType(StrEnum):
    WEB = "WEB"
    WORKER = "WORKER"


class DeploymentStatus(StrEnum):
    PENDING = "PENDING"
    PROVISIONING = "PROVISIONING"
    SCHEDULED = "SCHEDULED"
    CANCELING = "CANCELING"
    CANCELED = "CANCELED"
    ALLOCATING = "ALLOCATING"
    STARTING = "STARTING"
    HEALTHY = "HEALTHY"
    DEGRADED = "DEGRADED"
    UNHEALTHY = "UNHEALTHY"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    ERRORING = "ERRORING"
    ERROR = "ERROR"
    STASHED = "STASHED"
    SLEEPING = "SLEEPING"


# A deployment's statuses but STASHED: a stashed deployment has no regional ones.
RegionalDeploymentStatus = StrEnum(  # type: ignore[misc]
    "RegionalDeploymentStatus",
    [(s.name, s.value) for s in DeploymentStatus if s is not DeploymentStatus.STASHED],
)


CANCELABLE_DEPLOYMENT_STATUSES = frozenset(
    {DeploymentStatus.PENDING, DeploymentStatus.PROVISIONING, DeploymentStatus.SCHEDULED}
)
FINAL_DEPLOYMENT_STATUSES = frozenset(
    {
        DeploymentStatus.CANCELED,
        DeploymentStatus.STOPPED,
        DeploymentStatus.ERROR,
        DeploymentStatus.STASHED,
    }
)


class DeploymentRole(StrEnum):
    INVALID = "INVALID"
    ACTIVE = "ACTIVE"
    UPCOMING = "UPCOMING"
    CURRENT = "CURRENT"


class InstanceStatus(StrEnum):
    ALLOCATING = "ALLOCATING"
    STARTING = "STARTING"
    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    ERROR = "ERROR"
    SLEEPING = "SLEEPING"


class BuildStatus(StrEnum):
    """A build stage's or step's status (Koyeb's DeploymentProvisioningInfo.Stage.Status)."""

    UNKNOWN = "UNKNOWN"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    FAILED = "FAILED"
    COMPLETED = "COMPLETED"
    ABORTED = "ABORTED"


class SecretType(StrEnum):
    SIMPLE = "SIMPLE"
    REGISTRY = "REGISTRY"
    MANAGED = "MANAGED"


class TriggerType(StrEnum):
    """Why a deployment was made (Koyeb's TriggerDeploymentMetadata.TriggerType): a change
    made through the API, a redeploy included, has no type of its own there."""

    UNKNOWN_TYPE = "UNKNOWN_TYPE"
    GIT = "GIT"
    RESUME = "RESUME"
    DATABASE_SYNC = "DATABASE_SYNC"


class CredentialType(StrEnum):
    INVALID = "INVALID"
    USER = "USER"
    ORGANIZATION = "ORGANIZATION"


PAUSABLE_SERVICE_STATUSES = frozenset(
    {
        AppStatus.STARTING,
        AppStatus.HEALTHY,
        AppStatus.DEGRADED,
        AppStatus.UNHEALTHY,
        AppStatus.RESUMING,
    }
)
