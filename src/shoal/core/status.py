"""Service and app statuses, derived from facts (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from shoal.core.enums import AppStatus, DeploymentStatus

STARTING_UP = frozenset(
    {
        DeploymentStatus.PENDING,
        DeploymentStatus.PROVISIONING,
        DeploymentStatus.SCHEDULED,
        DeploymentStatus.ALLOCATING,
        DeploymentStatus.STARTING,
    }
)
_FAILED = frozenset({DeploymentStatus.ERROR, DeploymentStatus.ERRORING, DeploymentStatus.CANCELED})
_SERVING = frozenset({DeploymentStatus.HEALTHY, DeploymentStatus.SLEEPING})


class Intent(StrEnum):
    """What the user last asked of a service."""

    RUN = "RUN"
    PAUSE = "PAUSE"
    DELETE = "DELETE"


@dataclass(frozen=True)
class ServiceFacts:
    intent: Intent
    resuming: bool  # resumed and the resume deployment has not settled yet
    live_instances: int  # instances not yet STOPPED or ERROR
    active: DeploymentStatus | None  # the deployment that takes traffic, if any
    latest: DeploymentStatus | None  # the newest deployment, if any


def service_status(f: ServiceFacts) -> AppStatus:
    """The seed's service statuses:

    DELETING/PAUSING while instances still run after a delete/pause, PAUSED once none do;
    RESUMING until the resume deployment settles; STARTING until a first deployment serves;
    HEALTHY when the active deployment is healthy and the latest is not a failure;
    DEGRADED when the active deployment is degraded or the latest failed;
    UNHEALTHY when no deployment can serve requests.
    """
    if f.intent == Intent.DELETE:
        return AppStatus.DELETING
    if f.intent == Intent.PAUSE:
        return AppStatus.PAUSING if f.live_instances else AppStatus.PAUSED
    if f.resuming:
        return AppStatus.RESUMING
    if f.active is None:
        if f.latest is None or f.latest in STARTING_UP:
            return AppStatus.STARTING
        return AppStatus.UNHEALTHY
    if f.active not in _SERVING:
        return AppStatus.DEGRADED if f.active == DeploymentStatus.DEGRADED else AppStatus.UNHEALTHY
    if f.latest in _FAILED:
        return AppStatus.DEGRADED
    return AppStatus.HEALTHY


def app_status(deleting: bool, services: Iterable[AppStatus]) -> AppStatus:
    """An app's status summarises its services' (an empty app is HEALTHY)."""
    if deleting:
        return AppStatus.DELETING
    statuses = set(services)
    if not statuses:
        return AppStatus.HEALTHY
    if statuses == {AppStatus.PAUSED}:
        return AppStatus.PAUSED
    for status in (AppStatus.PAUSING, AppStatus.RESUMING, AppStatus.STARTING):
        if status in statuses:
            return status
    if statuses <= {AppStatus.UNHEALTHY, AppStatus.PAUSED}:
        return AppStatus.UNHEALTHY
    if statuses & {AppStatus.UNHEALTHY, AppStatus.DEGRADED}:
        return AppStatus.DEGRADED
    return AppStatus.HEALTHY
