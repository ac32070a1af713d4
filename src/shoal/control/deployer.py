"""Carrying out the rollout planner's decisions for one service (core.rollout.plan)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from shoal.autoscale.policy import scalings
from shoal.core.catalog import INSTANCE_TYPES
from shoal.core.definition import DeploymentDefinition, StrategyType
from shoal.core.enums import FINAL_DEPLOYMENT_STATUSES, DeploymentStatus, InstanceStatus
from shoal.core.rollout import (
    Action,
    Activate,
    DeploymentFact,
    Desired,
    InstanceFact,
    SetDeploymentStatus,
    SleepInstance,
    Snapshot,
    StartInstance,
    StopInstance,
    WakeInstance,
    plan,
)
from shoal.core.status import Intent
from shoal.scheduler.place import Demand, NodeView, place, why_not
from shoal.store import builds, events, nodes
from shoal.store import services as service_store
from shoal.store.tables import Deployment, Instance, RegionalDeployment, Service, ServiceScale

_FINAL = [s.value for s in FINAL_DEPLOYMENT_STATUSES]
_LIVE = [s.value for s in InstanceStatus if s not in (InstanceStatus.STOPPED, InstanceStatus.ERROR)]


def replicas(definition: DeploymentDefinition, scales: dict[str, int]) -> dict[str, int]:
    """How many instances each region runs: none while it sleeps, the autoscaler's count
    (`scales`) where the region scales on load, within its min and max; else the min, at
    least one."""
    return {region: sc.count(scales.get(region)) for region, sc in scalings(definition).items()}


def snapshot(s: Session, svc: Service) -> tuple[Snapshot, dict[str, Deployment]]:
    keep = [i for i in (svc.active_deployment_id, svc.latest_deployment_id) if i]
    live_deps = select(Instance.deployment_id).where(
        Instance.service_id == svc.id, Instance.status.in_(_LIVE)
    )
    deps = {
        d.id: d
        for d in s.scalars(
            select(Deployment).where(
                Deployment.service_id == svc.id,
                or_(
                    Deployment.status.not_in(_FINAL),
                    Deployment.id.in_(keep),
                    Deployment.id.in_(live_deps),
                ),
            )
        ).all()
    }
    scales: dict[str, int] = {}
    light: set[str] = set()
    for region, count, lightly in s.execute(
        select(ServiceScale.region, ServiceScale.replicas, ServiceScale.light).where(
            ServiceScale.service_id == svc.id
        )
    ):
        scales[region] = count
        if lightly and count == 0:
            light.add(region)
    facts = []
    for d in deps.values():
        definition = DeploymentDefinition.model_validate(d.definition)
        facts.append(
            DeploymentFact(
                id=d.id,
                status=DeploymentStatus(d.status),
                replicas=replicas(definition, scales),
                strategy=definition.strategy.type if definition.strategy else StrategyType.DEFAULT,
                ever_healthy=d.succeeded_at is not None,
                ready=not builds.needs_build(d),
                light=frozenset(light),
            )
        )
    insts = s.scalars(select(Instance).where(Instance.deployment_id.in_(list(deps)))).all()
    inst_facts = tuple(
        InstanceFact(
            i.id,
            i.deployment_id,
            i.region,
            i.replica_index,
            InstanceStatus(i.status),
            Desired(i.desired),
            i.messages[0] if i.messages else "",
        )
        for i in insts
    )
    target = svc.latest_deployment_id
    if target in deps and deps[target].status == DeploymentStatus.STASHED.value:
        target = None
    snap = Snapshot(Intent(svc.intent), svc.active_deployment_id, target, tuple(facts), inst_facts)
    return snap, deps


def sync(s: Session, svc: Service, notify_nodes: Callable[[set[str]], None]) -> None:
    touched: set[str] = set()
    _start_build(s, svc, touched)
    snap, deps = snapshot(s, svc)
    for action in plan(snap):
        _apply(s, svc, deps, action, touched)
    _place_waiting(s, svc, touched)
    s.flush()
    if touched:
        notify_nodes(touched)


def _apply(
    s: Session, svc: Service, deps: dict[str, Deployment], action: Action, touched: set[str]
) -> None:
    if isinstance(action, StartInstance):
        dep = deps[action.deployment_id]
        rd = s.scalars(
            select(RegionalDeployment).where(
                RegionalDeployment.deployment_id == dep.id,
                RegionalDeployment.region == action.region,
            )
        ).one()
        inst = Instance(
            organization_id=svc.organization_id,
            app_id=svc.app_id,
            service_id=svc.id,
            deployment_id=dep.id,
            regional_deployment_id=rd.id,
            region=action.region,
            type=rd.definition.get("instance_type", "nano"),
            replica_index=action.replica_index,
            status=InstanceStatus.ALLOCATING.value,
            desired=Desired.RUN.value,
            messages=[],
        )
        s.add(inst)
        s.flush()
        events.record(
            s,
            svc.organization_id,
            "instance",
            inst.id,
            "create",
            f"Instance created for deployment {dep.number} in {action.region}",
        )
    elif isinstance(action, StopInstance):
        stopping = s.get(Instance, action.instance_id)
        if stopping is None or stopping.desired == Desired.STOP.value:
            return
        _stop(s, svc, stopping, action.reason, touched)
    elif isinstance(action, SleepInstance | WakeInstance):
        changing = s.get(Instance, action.instance_id)
        if changing is None or changing.desired == Desired.STOP.value:
            return
        if isinstance(action, WakeInstance):
            desired, what, message = Desired.RUN, "wake", "Instance is waking up"
        elif action.deep:
            desired, what, message = Desired.DEEP_SLEEP, "sleep", "Instance is going to deep sleep"
        else:
            desired, what, message = Desired.SLEEP, "sleep", "Instance is going to sleep"
        changing.desired = desired.value
        if changing.node_id is not None:
            touched.add(changing.node_id)
        events.record(s, svc.organization_id, "instance", changing.id, what, message)
    elif isinstance(action, SetDeploymentStatus):
        service_store.set_deployment_status(
            s, deps[action.deployment_id], action.status, action.message
        )
    elif isinstance(action, Activate):
        dep = deps[action.deployment_id]
        svc.active_deployment_id = dep.id
        svc.last_provisioned_deployment_id = dep.id
        events.record(
            s,
            svc.organization_id,
            "service",
            svc.id,
            "activate",
            f"Deployment {dep.number} is now active",
        )


def _start_build(s: Session, svc: Service, touched: set[str]) -> None:
    """Hand the service's newest deployment, if it is a git one still to build, to a node of
    its first region (any node when that region has none), and again to another when its
    node is lost mid-build; `skip_build` takes the last build instead. Older unbuilt
    deployments are superseded: the planner cancels them."""
    dep = s.get(Deployment, svc.latest_deployment_id) if svc.latest_deployment_id else None
    if svc.intent != Intent.RUN.value or dep is None or not builds.needs_build(dep):
        return
    alive = nodes.alive(s)
    building = dep.status == DeploymentStatus.PROVISIONING.value
    if building and dep.build_node_id in {n.id for n in alive}:
        return
    if dep.status != DeploymentStatus.PENDING.value and not building:
        return
    if dep.skip_build:
        if not builds.reuse_previous(s, dep):
            message = "skip_build: the service has no previous build to reuse"
            service_store.set_deployment_status(s, dep, DeploymentStatus.ERROR, message)
        return
    region = (dep.definition.get("regions") or [""])[0]
    candidates = [n for n in alive if n.region == region] or alive
    if not candidates:
        if dep.messages != [_NO_BUILDER]:
            dep.messages = [_NO_BUILDER]
        return
    node = min(candidates, key=lambda n: n.name)
    builds.assign(s, dep, node.id)
    touched.add(node.id)


_NO_BUILDER = "Waiting for a node to build on"


def _stop(s: Session, svc: Service, inst: Instance, reason: str, touched: set[str]) -> None:
    inst.desired = Desired.STOP.value
    if inst.node_id is None:  # never placed: nothing runs
        inst.status = InstanceStatus.STOPPED.value
        inst.messages = [reason]
    else:
        touched.add(inst.node_id)
    events.record(s, svc.organization_id, "instance", inst.id, "stop", reason)


def _place_waiting(s: Session, svc: Service, touched: set[str]) -> None:
    """Give a node to every instance of the service that still waits for one."""
    waiting = s.scalars(
        select(Instance)
        .where(
            Instance.service_id == svc.id,
            Instance.node_id.is_(None),
            Instance.desired == Desired.RUN.value,
            Instance.status == InstanceStatus.ALLOCATING.value,
        )
        .order_by(Instance.created_at)
    ).all()
    if not waiting:
        return
    views = _node_views(s, svc.id)
    for inst in waiting:
        itype = INSTANCE_TYPES.get(inst.type, INSTANCE_TYPES["nano"])
        demand = Demand(inst.region, itype.vcpu_shares, itype.memory_mb)
        chosen = place(demand, views.values())
        if chosen is None:
            message = why_not(demand, views.values())
            if inst.messages != [message]:
                inst.messages = [message]
            continue
        inst.node_id = chosen.id
        inst.messages = []
        touched.add(chosen.id)
        views[chosen.id] = NodeView(
            chosen.id,
            chosen.name,
            chosen.region,
            chosen.cpus,
            chosen.memory_mb,
            chosen.reserved_cpus + itype.vcpu_shares,
            chosen.reserved_memory_mb + itype.memory_mb,
            chosen.replicas_of_service + 1,
        )


def _node_views(s: Session, service_id: str) -> dict[str, NodeView]:
    views = {}
    for node in nodes.alive(s):
        # A deep sleeper holds no CPU or memory (it takes them back when woken).
        placed = s.scalars(
            select(Instance).where(
                Instance.node_id == node.id,
                Instance.status.in_(_LIVE),
                Instance.desired != Desired.DEEP_SLEEP.value,
            )
        ).all()
        types = [INSTANCE_TYPES.get(i.type, INSTANCE_TYPES["nano"]) for i in placed]
        views[node.id] = NodeView(
            node.id,
            node.name,
            node.region,
            node.cpus,
            node.memory_mb,
            sum(t.vcpu_shares for t in types),
            sum(t.memory_mb for t in types),
            sum(1 for i in placed if i.service_id == service_id),
        )
    return views
