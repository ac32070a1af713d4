"""The edge's route table, from the store: each public route of each web service's active
deployment, its proxy ports and its private mesh addresses, with the healthy instances that
serve them."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from shoal.core.definition import DeploymentDefinition
from shoal.core.edge import (
    EdgeRoute,
    EdgeTable,
    EdgeTcpRoute,
    app_domain,
    mesh_routes_of,
    routes_of,
    tcp_routes_of,
)
from shoal.core.enums import InstanceStatus, ServiceStatus, ServiceType
from shoal.core.rollout import ASLEEP, Desired
from shoal.core.status import Intent
from shoal.store import events, mesh, proxy_ports
from shoal.store.tables import (
    App,
    Deployment,
    Instance,
    Node,
    Organization,
    Service,
    ServiceScale,
    utcnow,
)

GONE = (ServiceStatus.DELETING.value, ServiceStatus.DELETED.value)
# Instances a sleeping region keeps, frozen or stopped in place.
KEPT_ASLEEP = (
    Instance.status == InstanceStatus.SLEEPING.value,
    Instance.desired.in_([d.value for d in ASLEEP]),
)


def table(s: Session, base_domain: str) -> EdgeTable:
    services = s.execute(
        select(Service.id, Service.active_deployment_id, App.name, Organization.name)
        .join(App, App.id == Service.app_id)
        .join(Organization, Organization.id == Service.organization_id)
        .where(
            Service.type == ServiceType.WEB.value,
            Service.status.not_in(GONE),
            Service.active_deployment_id.is_not(None),
        )
        .order_by(Service.created_at, Service.id)
    ).all()
    located = (
        Instance.id,
        Instance.service_id,
        Instance.deployment_id,
        Instance.address,
        Instance.region,
    )
    serving: dict[str, list[Any]] = defaultdict(list)
    for row in s.execute(
        select(*located).where(
            Instance.status == InstanceStatus.HEALTHY.value,
            Instance.desired == Desired.RUN.value,
            Instance.address.is_not(None),
        )
    ):
        serving[row.service_id].append(row)
    sleeping: dict[str, list[Any]] = defaultdict(list)
    for sleeper in s.execute(
        select(*located, Node.waker)
        .join(Node, Node.id == Instance.node_id)
        .where(
            *KEPT_ASLEEP,
            Instance.address.is_not(None),
        )
    ):
        sleeping[sleeper.service_id].append(sleeper)
    wanted = {svc.active_deployment_id for svc in services}
    wanted |= {i.deployment_id for rows in serving.values() for i in rows}
    wanted |= {i.deployment_id for rows in sleeping.values() for i in rows}
    definitions = {
        dep_id: DeploymentDefinition.model_validate(definition)
        for dep_id, definition in s.execute(
            select(Deployment.id, Deployment.definition).where(Deployment.id.in_(wanted))
        )
    }
    routes: list[EdgeRoute] = []
    tcp: list[EdgeTcpRoute] = []
    public = proxy_ports.public_ports(s)
    private = mesh.addresses(s)
    for service_id, active_id, app_name, org_name in services:
        active = definitions.get(active_id)
        if active is None:
            continue
        instances = [
            (i.id, i.address, i.region, definitions[i.deployment_id])
            for i in serving.get(service_id, [])
            if i.deployment_id in definitions
        ]
        asleep = [
            ((i.id, i.address, i.region, definitions[i.deployment_id]), i.waker)
            for i in sleeping.get(service_id, [])
            if i.deployment_id in definitions
        ]
        routes += routes_of(
            app_domain(app_name, org_name, base_domain), service_id, active, instances, asleep
        )
        tcp += tcp_routes_of(service_id, active, instances, public)
        tcp += mesh_routes_of(service_id, active, instances, private.get(service_id, {}))
    # Two services of an app routing the same path: the older keeps it, no traffic is split.
    taken: set[tuple[str, str]] = set()
    unique = []
    for r in routes:
        key = (r.host, r.path.rstrip("/") or "/")
        if key not in taken:
            taken.add(key)
            unique.append(r)
    return EdgeTable(routes=unique, tcp=tcp)


WAKING_S = 30.0  # a service woken this recently may still be starting its instances


def wake(s: Session, service_id: str) -> bool:
    """Wake a sleeping service: each of its regions asleep (a count of 0) runs again. True
    when it was asleep or is waking (a request may wait for it), False otherwise."""
    svc = s.get(Service, service_id)
    if svc is None or svc.intent != Intent.RUN.value:
        return False
    now = utcnow()
    woken = []
    for (region,) in s.execute(
        select(ServiceScale.region).where(
            ServiceScale.service_id == service_id, ServiceScale.replicas == 0
        )
    ).all():
        # A region gets back every instance it keeps asleep (a thaw or a restart in place
        # is cheap; a count up to the highest replica kept, so none of them is scaled
        # down); the autoscaler scales it down from there.
        highest = s.scalar(
            select(func.max(Instance.replica_index)).where(
                Instance.service_id == service_id, Instance.region == region, *KEPT_ASLEEP
            )
        )
        count = 1 if highest is None else highest + 1
        # Only if still asleep: the edge and the node's report may wake it at once.
        done = s.execute(  # an UPDATE: a CursorResult, which has the rows' count
            update(ServiceScale)
            .where(
                ServiceScale.service_id == service_id,
                ServiceScale.region == region,
                ServiceScale.replicas == 0,
            )
            .values(replicas=count, changed_at=now, panic_at=None, light=False)
            .execution_options(synchronize_session=False)
        )
        if cast(CursorResult[Any], done).rowcount:
            woken.append(region)
    if woken:
        message = f"Woken by a request in {', '.join(sorted(woken))}"
        events.record(s, svc.organization_id, "service", svc.id, "wake", message)
        return True
    s.expire_all()
    rows = s.scalars(select(ServiceScale).where(ServiceScale.service_id == service_id)).all()
    return any((now - row.changed_at).total_seconds() < WAKING_S for row in rows)
