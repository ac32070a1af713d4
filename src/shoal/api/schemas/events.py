"""Event wire shapes: one model per kind, as the reference spells their id fields."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shoal.api.schemas.common import Out


class EventBase(Out):
    id: str
    when: datetime
    organization_id: str
    type: str
    message: str
    metadata: dict[str, Any]


class AppEvent(EventBase):
    app_id: str


class ServiceEvent(EventBase):
    service_id: str


class DeploymentEvent(EventBase):
    deployment_id: str


class RegionalDeploymentEvent(EventBase):
    regional_deployment_id: str


class InstanceEvent(EventBase):
    instance_id: str


class ListEventsReply(Out):
    limit: int
    offset: int
    order: str
    has_next: bool


class ListAppEventsReply(ListEventsReply):
    events: list[AppEvent]


class ListServiceEventsReply(ListEventsReply):
    events: list[ServiceEvent]


class ListDeploymentEventsReply(ListEventsReply):
    events: list[DeploymentEvent]


class ListRegionalDeploymentEventsReply(ListEventsReply):
    events: list[RegionalDeploymentEvent]


class ListInstanceEventsReply(ListEventsReply):
    events: list[InstanceEvent]
