"""Services and their immutable deployments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, overload

from sqlalchemy import Connection, Row, Select, bindparam, func, select
from sqlalchemy.orm import Session

from shoal.core.definition import DeploymentDefinition
from shoal.core.enums import (
    CANCELABLE_DEPLOYMENT_STATUSES,
    FINAL_DEPLOYMENT_STATUSES,
    PAUSABLE_SERVICE_STATUSES,
    AppStatus,
    DeploymentStatus,
    InstanceStatus,
    SecretType,
    TriggerType,
)
from shoal.core.errors import Conflict, InvalidArgument, PreconditionFailed
from shoal.core.errors import FieldError as FE
from shoal.core.regional import regional_definition
from shoal.core.status import STARTING_UP, Intent, ServiceFacts, service_status
from shoal.core.validation import Context
from shoal.store import apps, events, mesh, proxy_ports
from shoal.store import archives as archive_store
from shoal.store import secrets as secret_store
from shoal.store.query import Listing, Page, find, paginate, statement
from shoal.store.tables import (
    App,
    Deployment,
    Instance,
    RegionalDeployment,
    Service,
    utcnow,
)

MAX_SERVICES_PER_APP = 16  # the seed's limit
FREE_TYPE = "free"
_LIVE_INSTANCE = (
    InstanceStatus.ALLOCATING,
    InstanceStatus.STARTING,
    InstanceStatus.HEALTHY,
    InstanceStatus.UNHEALTHY,
    InstanceStatus.STOPPING,
    InstanceStatus.SLEEPING,
)


@overload
def get(db: Session, org_id: str, ident: str, lock: bool = False) -> Service: ...
@overload
def get(db: Connection, org_id: str, ident: str, lock: bool = False) -> Row[Any]: ...
def get(
    db: Session | Connection, org_id: str, ident: str, lock: bool = False
) -> Service | Row[Any]:
    """By id or short id (the CLI resolves `app/service` names itself, as Koyeb's does);
    `lock` before changing it. An ORM object from a session, a row from a connection."""
    return find(db, Service, org_id, ident, "service", lock=lock)


def get_deployment(s: Session, org_id: str, ident: str) -> Deployment:
    return find(s, Deployment, org_id, ident, "deployment")


def listing(
    db: Session | Connection,
    org_id: str,
    app_id: str | None,
    name: str | None,
    types: list[str],
    statuses: list[str],
    regions: list[str],
    page: Page,
) -> Listing:
    params: dict[str, object] = {"org": org_id, "app_id": app_id, "name": name}
    params |= {"types": types, "statuses": statuses, "regions": regions}
    shape = _services(bool(app_id), bool(name), bool(types), bool(statuses), bool(regions))
    return paginate(db, shape, page, params)


@statement
def _services(app: bool, name: bool, types: bool, statuses: bool, regions: bool) -> Select[Any]:
    q = select(Service).where(Service.organization_id == bindparam("org"))
    if app:
        q = q.where(Service.app_id == bindparam("app_id"))
    if name:
        q = q.where(Service.name.contains(bindparam("name")))
    if types:
        q = q.where(Service.type.in_(bindparam("types", expanding=True)))
    if statuses:
        q = q.where(Service.status.in_(bindparam("statuses", expanding=True)))
    if regions:
        q = q.where(
            Service.id.in_(
                select(RegionalDeployment.service_id).where(
                    RegionalDeployment.deployment_id == Service.latest_deployment_id,
                    RegionalDeployment.region.in_(bindparam("regions", expanding=True)),
                )
            )
        )
    return q.order_by(Service.created_at.desc(), Service.id)


def deployments(
    s: Session,
    org_id: str,
    app_id: str | None,
    service_id: str | None,
    statuses: list[str],
    page: Page,
) -> Listing:
    params = {"org": org_id, "app_id": app_id, "service_id": service_id, "statuses": statuses}
    return paginate(s, _deployments(bool(app_id), bool(service_id), bool(statuses)), page, params)


@statement
def _deployments(app: bool, service: bool, statuses: bool) -> Select[Any]:
    q = select(Deployment).where(Deployment.organization_id == bindparam("org"))
    if app:
        q = q.where(Deployment.app_id == bindparam("app_id"))
    if service:
        q = q.where(Deployment.service_id == bindparam("service_id"))
    if statuses:
        q = q.where(Deployment.status.in_(bindparam("statuses", expanding=True)))
    return q.order_by(Deployment.created_at.desc(), Deployment.number.desc())


def validation_context(
    s: Session,
    org_id: str,
    regions: frozenset[str],
    service_id: str | None,
    local_repositories: bool = False,
) -> Context:
    """What validating a definition needs to know about the organization."""
    free = 0
    q = (
        select(Deployment.definition)
        .join(Service, Service.latest_deployment_id == Deployment.id)
        .where(Service.organization_id == org_id, Service.intent != Intent.DELETE.value)
    )
    if service_id:
        q = q.where(Service.id != service_id)
    for definition in s.scalars(q).all():
        d = DeploymentDefinition.model_validate(definition)
        for region in d.regions or []:
            r = regional_definition(d, region)
            if r.get("instance_type") == FREE_TYPE:
                free += (r.get("scaling") or {}).get("max", 1)
    return Context(
        regions=regions,
        secret_names=secret_store.names(s, org_id),
        registry_secret_names=secret_store.names(s, org_id, SecretType.REGISTRY),
        free_instances_elsewhere=free,
        archive_ids=frozenset(archive_store.uploaded_ids(s, org_id)),
        local_repositories=local_repositories,
    )


@dataclass(frozen=True)
class Trigger:
    """Why a deployment was made, as recorded in its metadata."""

    type: TriggerType
    actor: str = "USER"  # Koyeb's TriggerDeploymentMetadata.ActorType: USER or SYSTEM
    git: dict[str, str] | None = None  # a push's repository, branch and sha

    def metadata(self) -> dict[str, Any]:
        trigger: dict[str, Any] = {"type": self.type.value, "actor": self.actor}
        if self.git:
            trigger["git"] = self.git
        return {"trigger": trigger}


def create(
    s: Session, app: App, definition: DeploymentDefinition, save_only: bool = False
) -> Service:
    if app.deleting:
        raise PreconditionFailed("the app is being deleted")
    count = s.scalar(select(func.count()).where(Service.app_id == app.id)) or 0
    if count >= MAX_SERVICES_PER_APP:
        raise InvalidArgument(
            f"an app holds at most {MAX_SERVICES_PER_APP} services",
            [FE("app_id", f"already has {count} services")],
        )
    _ensure_unique_name(s, app.id, definition.name or "", None)
    svc = Service(
        organization_id=app.organization_id,
        app_id=app.id,
        name=definition.name,
        type=(definition.type or "WEB"),
        status=AppStatus.STARTING.value,
        messages=[],
    )
    s.add(svc)
    s.flush()
    events.record(
        s, svc.organization_id, "service", svc.id, "create", f"Service {svc.name} created"
    )
    new_deployment(s, svc, definition, Trigger(TriggerType.UNKNOWN_TYPE), save_only=save_only)
    return svc


def _ensure_unique_name(s: Session, app_id: str, name: str, service_id: str | None) -> None:
    clash = s.scalars(select(Service).where(Service.app_id == app_id, Service.name == name)).first()
    if clash is not None and clash.id != service_id:
        raise Conflict(
            f"a service named {name!r} already exists in this app",
            [FE("definition.name", "already exists")],
        )


def new_deployment(
    s: Session,
    svc: Service,
    definition: DeploymentDefinition,
    trigger: Trigger,
    *,
    save_only: bool = False,
    skip_build: bool = False,
) -> Deployment:
    """Store a new immutable revision of `svc` and its regional deployments."""
    if definition.name != svc.name:
        _ensure_unique_name(s, svc.app_id, definition.name or "", svc.id)
        svc.name = definition.name or svc.name
    last = s.scalar(select(func.max(Deployment.number)).where(Deployment.service_id == svc.id))
    number = (last or 0) + 1
    status = DeploymentStatus.STASHED if save_only else DeploymentStatus.PENDING
    wire = definition.wire()
    dep = Deployment(
        organization_id=svc.organization_id,
        app_id=svc.app_id,
        service_id=svc.id,
        number=number,
        parent_id=svc.latest_deployment_id,
        status=status.value,
        messages=[],
        definition=wire,
        meta={**trigger.metadata(), **_proxied(s, svc, definition, save_only)},
        provisioning_info={},
        skip_build=skip_build,
    )
    s.add(dep)
    s.flush()
    if svc.latest_deployment_id:
        parent = s.get(Deployment, svc.latest_deployment_id)
        if parent is not None:
            parent.child_id = dep.id
    events.record(
        s,
        svc.organization_id,
        "deployment",
        dep.id,
        "create",
        f"Deployment {number} created",
        {"status": status.value},
    )
    if save_only:
        return dep
    mesh.assign(s, svc, definition)
    for region in definition.regions or []:
        rd = RegionalDeployment(
            organization_id=svc.organization_id,
            app_id=svc.app_id,
            service_id=svc.id,
            deployment_id=dep.id,
            region=region,
            status=DeploymentStatus.PENDING.value,
            messages=[],
            definition=regional_definition(definition, region),
        )
        s.add(rd)
    svc.latest_deployment_id = dep.id
    svc.messages = []
    refresh_status(s, svc)
    return dep


def _proxied(
    s: Session, svc: Service, definition: DeploymentDefinition, save_only: bool
) -> dict[str, Any]:
    """The deployment's public TCP ports on the edge (`metadata.proxy_ports`)."""
    found = [] if save_only else proxy_ports.assign(s, svc.id, definition)
    return {"proxy_ports": found} if found else {}


def latest_definition(s: Session, svc: Service) -> DeploymentDefinition:
    dep = s.get(Deployment, svc.latest_deployment_id) if svc.latest_deployment_id else None
    if dep is None:
        raise PreconditionFailed("the service has no deployment")
    return DeploymentDefinition.model_validate(dep.definition)


def _stop_unfinished(s: Session, svc: Service, reason: str) -> None:
    """Cancel deployments that have not started; the ones that did stop."""
    final = [x.value for x in FINAL_DEPLOYMENT_STATUSES]
    q = select(Deployment).where(Deployment.service_id == svc.id, Deployment.status.not_in(final))
    for dep in s.scalars(q).all():
        if DeploymentStatus(dep.status) in CANCELABLE_DEPLOYMENT_STATUSES:
            set_deployment_status(s, dep, DeploymentStatus.CANCELED, reason)
        else:
            set_deployment_status(s, dep, DeploymentStatus.STOPPING, reason)


def set_deployment_status(
    s: Session, dep: Deployment, status: DeploymentStatus, message: str
) -> None:
    if dep.status == status.value:
        return
    dep.status = status.value
    dep.messages = [message]
    now = utcnow()
    if status in FINAL_DEPLOYMENT_STATUSES:
        dep.terminated_at = now
    elif status == DeploymentStatus.ALLOCATING:
        dep.allocated_at = dep.allocated_at or now
    elif status == DeploymentStatus.STARTING:
        dep.started_at = dep.started_at or now
    elif status == DeploymentStatus.HEALTHY:
        dep.succeeded_at = dep.succeeded_at or now
    q = select(RegionalDeployment).where(RegionalDeployment.deployment_id == dep.id)
    for rd in s.scalars(q).all():
        rd.status = status.value if status != DeploymentStatus.STASHED else rd.status
        rd.messages = [message]
        rd.allocated_at, rd.started_at = dep.allocated_at, dep.started_at
        rd.succeeded_at, rd.terminated_at = dep.succeeded_at, dep.terminated_at
    events.record(
        s,
        dep.organization_id,
        "deployment",
        dep.id,
        "status_change",
        message,
        {"status": status.value},
    )


def pause(s: Session, svc: Service) -> None:
    if AppStatus(svc.status) not in PAUSABLE_SERVICE_STATUSES:
        raise PreconditionFailed(f"a {svc.status} service cannot be paused")
    svc.intent = Intent.PAUSE.value
    svc.resume_deployment_id = None
    svc.paused_at = utcnow()
    _stop_unfinished(s, svc, "Service paused")
    events.record(s, svc.organization_id, "service", svc.id, "pause", f"Service {svc.name} paused")
    refresh_status(s, svc)


def resume(s: Session, svc: Service, skip_build: bool = False) -> Deployment:
    if svc.status != AppStatus.PAUSED.value:
        raise PreconditionFailed(f"only a PAUSED service can be resumed, this one is {svc.status}")
    svc.intent = Intent.RUN.value
    svc.resumed_at = utcnow()
    events.record(
        s, svc.organization_id, "service", svc.id, "resume", f"Service {svc.name} resumed"
    )
    dep = new_deployment(
        s, svc, latest_definition(s, svc), Trigger(TriggerType.RESUME), skip_build=skip_build
    )
    svc.resume_deployment_id = dep.id
    refresh_status(s, svc)
    return dep


def redeploy(
    s: Session, svc: Service, skip_build: bool, deployment_group: str | None
) -> Deployment:
    if svc.intent != Intent.RUN.value:
        raise PreconditionFailed(f"a {svc.status} service cannot be redeployed")
    if skip_build and svc.last_provisioned_deployment_id is None:
        raise PreconditionFailed("skip_build needs a previous successful build, and there is none")
    definition = latest_definition(s, svc)
    dep = new_deployment(
        s, svc, definition, Trigger(TriggerType.UNKNOWN_TYPE), skip_build=skip_build
    )
    if deployment_group:
        dep.deployment_group = deployment_group
    events.record(
        s, svc.organization_id, "service", svc.id, "redeploy", f"Service {svc.name} redeployed"
    )
    return dep


def delete(s: Session, svc: Service) -> None:
    if svc.intent == Intent.DELETE.value:
        return
    svc.intent = Intent.DELETE.value
    _stop_unfinished(s, svc, "Service deleted")
    events.record(
        s, svc.organization_id, "service", svc.id, "delete", f"Service {svc.name} deleting"
    )
    refresh_status(s, svc)


def cancel(s: Session, dep: Deployment) -> None:
    if DeploymentStatus(dep.status) not in CANCELABLE_DEPLOYMENT_STATUSES:
        raise PreconditionFailed(
            "only a PENDING, PROVISIONING or SCHEDULED deployment can be canceled, "
            f"this one is {dep.status}"
        )
    set_deployment_status(s, dep, DeploymentStatus.CANCELED, "Deployment canceled")
    svc = s.get(Service, dep.service_id)
    if svc is not None:
        refresh_status(s, svc)


def live_instances(s: Session, svc: Service) -> int:
    q = select(func.count()).where(
        Instance.service_id == svc.id, Instance.status.in_([x.value for x in _LIVE_INSTANCE])
    )
    return s.scalar(q) or 0


def refresh_status(s: Session, svc: Service) -> AppStatus:
    """Derive the service's status from the facts and record a change."""

    def status_of(dep_id: str | None) -> DeploymentStatus | None:
        dep = s.get(Deployment, dep_id) if dep_id else None
        return DeploymentStatus(dep.status) if dep else None

    resuming = status_of(svc.resume_deployment_id) in STARTING_UP
    facts = ServiceFacts(
        intent=Intent(svc.intent),
        resuming=resuming,
        live_instances=live_instances(s, svc),
        active=status_of(svc.active_deployment_id),
        latest=status_of(svc.latest_deployment_id),
    )
    status = service_status(facts)
    if status.value != svc.status:
        svc.status = status.value
        if status == AppStatus.PAUSED:
            svc.paused_at = svc.paused_at or utcnow()
        if status == AppStatus.HEALTHY:
            svc.succeeded_at = utcnow()
        events.record(
            s,
            svc.organization_id,
            "service",
            svc.id,
            "status_change",
            f"Service is {status.value.lower()}",
            {"status": status.value},
        )
    app = s.get(App, svc.app_id)
    if app is not None:
        s.flush()
        apps.refresh_status(s, app)
    return status


def purge(s: Session, svc: Service) -> None:
    """Remove a deleted service's rows once nothing of it runs (its events stay)."""
    for model in (Instance, RegionalDeployment, Deployment):
        for row in s.scalars(select(model).where(model.service_id == svc.id)).all():
            s.delete(row)
    events.record(
        s, svc.organization_id, "service", svc.id, "deleted", f"Service {svc.name} deleted"
    )
    s.delete(svc)


def delete_app(s: Session, app: App) -> list[Service]:
    """Mark the app and all its services for deletion; returns the services to reconcile."""
    app.deleting = True
    events.record(s, app.organization_id, "app", app.id, "delete", f"App {app.name} deleting")
    members = apps.services_of(s, app)
    for svc in members:
        delete(s, svc)
    apps.refresh_status(s, app)
    return members


def pause_app(s: Session, app: App) -> list[Service]:
    """Pause every service that can be paused."""
    members = [
        sv for sv in apps.services_of(s, app) if AppStatus(sv.status) in PAUSABLE_SERVICE_STATUSES
    ]
    for svc in members:
        pause(s, svc)
    events.record(s, app.organization_id, "app", app.id, "pause", f"App {app.name} paused")
    return members


def resume_app(s: Session, app: App) -> list[Service]:
    """Resume every paused service."""
    members = [sv for sv in apps.services_of(s, app) if sv.status == AppStatus.PAUSED.value]
    for svc in members:
        resume(s, svc)
    app.resumed_at = utcnow()
    events.record(s, app.organization_id, "app", app.id, "resume", f"App {app.name} resumed")
    return members
