"""Nodes: registration, the instances assigned to each, and what their agents report
(builds: store/builds.py)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from shoal.core.assignment import (
    Artifact,
    Assignment,
    InstanceReport,
    NodeHello,
    Placement,
    RegistrySecret,
)
from shoal.core.assignment import build as build_assignment
from shoal.core.definition import DeploymentDefinition
from shoal.core.edge import app_domain
from shoal.core.enums import DeploymentStatus, InstanceStatus, SecretType
from shoal.core.mesh import Mesh, hosts
from shoal.core.rollout import ASLEEP, Desired
from shoal.store import edge, events, mesh, usage
from shoal.store.secretbox import SecretBox
from shoal.store.tables import (
    App,
    Deployment,
    Instance,
    Node,
    Organization,
    Secret,
    Service,
    utcnow,
)

NODE_TIMEOUT = timedelta(seconds=30)  # a node not heard of for this long is not placed on
FINAL = (InstanceStatus.STOPPED.value, InstanceStatus.ERROR.value)


def register(s: Session, hello: NodeHello) -> Node:
    node = s.scalars(select(Node).where(Node.name == hello.name)).first()
    if node is None:
        node = Node(
            name=hello.name, region=hello.region, cpus=hello.cpus, memory_mb=hello.memory_mb
        )
        s.add(node)
    node.region, node.cpus, node.memory_mb = hello.region, hello.cpus, hello.memory_mb
    node.waker = hello.waker
    node.last_seen_at = utcnow()
    s.flush()
    return node


def alive(s: Session) -> list[Node]:
    return list(s.scalars(select(Node).where(Node.last_seen_at > utcnow() - NODE_TIMEOUT)).all())


def _assigned(s: Session, node_id: str) -> list[Instance]:
    q = select(Instance).where(Instance.node_id == node_id, Instance.status.not_in(FINAL))
    return list(s.scalars(q.order_by(Instance.created_at, Instance.id)).all())


def fingerprint(s: Session, node_id: str) -> str:
    """Changes whenever the node's assignments do (which instances, and what is wanted)."""
    node = s.get(Node, node_id)
    if node is not None:
        node.last_seen_at = utcnow()
    rows = s.execute(
        select(Instance.id, Instance.desired, Instance.organization_id)
        .where(Instance.node_id == node_id, Instance.status.not_in(FINAL))
        .order_by(Instance.id)
    ).all()
    names = mesh.views(s, {r.organization_id for r in rows})  # their /etc/hosts
    builds = s.scalars(
        select(Deployment.id)
        .where(
            Deployment.build_node_id == node_id,
            Deployment.status == DeploymentStatus.PROVISIONING.value,
            Deployment.artifact.is_(None),
        )
        .order_by(Deployment.id)
    ).all()
    return hashlib.sha256(repr((rows, builds, sorted(names.items()))).encode()).hexdigest()[:32]


def assignments(s: Session, box: SecretBox, node_id: str, base_domain: str) -> list[Assignment]:
    out = []
    secret_cache: dict[str, tuple[dict[str, str], dict[str, RegistrySecret]]] = {}
    assigned = _assigned(s, node_id)
    names = mesh.views(s, {inst.organization_id for inst in assigned})
    for inst in assigned:
        dep = s.get(Deployment, inst.deployment_id)
        svc = s.get(Service, inst.service_id)
        app = s.get(App, inst.app_id)
        org = s.get(Organization, inst.organization_id)
        if dep is None or svc is None or app is None or org is None:
            continue
        if inst.organization_id not in secret_cache:
            secret_cache[inst.organization_id] = org_secrets(s, box, inst.organization_id)
        values, registries = secret_cache[inst.organization_id]
        definition = DeploymentDefinition.model_validate(dep.definition)
        registry = None
        if definition.docker and definition.docker.image_registry_secret:
            registry = registries.get(definition.docker.image_registry_secret)
        placement = Placement(
            instance_id=inst.id,
            organization_id=inst.organization_id,
            app_id=app.id,
            app_name=app.name,
            service_id=svc.id,
            service_name=svc.name,
            deployment_id=dep.id,
            region=inst.region,
            replica_index=inst.replica_index,
            desired=Desired(inst.desired),
            status=InstanceStatus(inst.status),
            public_domain=app_domain(app.name, org.name, base_domain),
        )
        artifact = Artifact.model_validate(dep.artifact) if dep.artifact else None
        assignment = build_assignment(placement, definition, values, registry, artifact)
        if inst.organization_id in names:
            block, services = names[inst.organization_id]
            assignment.mesh = Mesh(block=block, hosts=hosts(app.id, inst.region, services))
        out.append(assignment)
    return out


def org_secrets(
    s: Session, box: SecretBox, org_id: str
) -> tuple[dict[str, str], dict[str, RegistrySecret]]:
    """The organization's secrets, decrypted: only ever sent to its instances' nodes."""
    values: dict[str, str] = {}
    registries: dict[str, RegistrySecret] = {}
    for secret in s.scalars(select(Secret).where(Secret.organization_id == org_id)).all():
        payload = box.open(secret.ciphertext)
        if secret.type == SecretType.SIMPLE.value:
            values[secret.name] = payload["value"]
        elif secret.registry_kind:
            registries[secret.name] = RegistrySecret(kind=secret.registry_kind, config=payload)
    return values, registries


def apply_report(s: Session, node_id: str, report: InstanceReport) -> str | None:
    """Record what a node says of one of its instances; returns the instance's service id."""
    inst = s.get(Instance, report.instance_id)
    if inst is None or inst.node_id != node_id:
        return None
    if inst.status in FINAL:
        return None  # an ended instance stays ended
    status = report.status.value
    if report.address:
        inst.address = report.address
    if report.started_at and inst.started_at is None:
        inst.started_at = report.started_at
        usage.started(s, inst)
    if status == InstanceStatus.HEALTHY.value and inst.succeeded_at is None:
        inst.succeeded_at = utcnow()
    if status in FINAL:
        inst.terminated_at = report.terminated_at or utcnow()
        usage.ended(s, inst)
    elif status == InstanceStatus.SLEEPING.value:
        usage.slept(s, inst.id, utcnow())
    elif inst.status == InstanceStatus.SLEEPING.value:
        usage.woke(s, inst.id, utcnow())
        if Desired(inst.desired) in ASLEEP:
            # Woken on its node for a request (agent/waker.py): the service is awake.
            edge.wake(s, inst.service_id)
    if status != inst.status or (report.message and [report.message] != inst.messages):
        inst.status = status
        inst.messages = [report.message] if report.message else []
        events.record(
            s,
            inst.organization_id,
            "instance",
            inst.id,
            "status_change",
            report.message or f"Instance is {status.lower()}",
            {"status": status},
        )
    return inst.service_id
