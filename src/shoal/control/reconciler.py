"""The control loop: level-triggered, idempotent, safe to run after a crash.

API writes `hint` a key for low latency; a periodic resync catches anything a hint missed
(or that changed while the process was down). `sync_*` re-reads the store and acts on the
difference between what the user asked for and what is observed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from sqlalchemy import or_, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from shoal.control import deployer
from shoal.core.enums import AppStatus, DeploymentStatus, InstanceStatus
from shoal.core.status import STARTING_UP, Intent
from shoal.store import apps as app_store
from shoal.store import events
from shoal.store import services as service_store
from shoal.store.db import Database, lost_a_race
from shoal.store.tables import App, Deployment, Instance, Service

log = logging.getLogger(__name__)
RESYNC_SECONDS = 5.0
# Instance statuses on the way somewhere: their service is visited at every resync.
_SETTLING = [
    InstanceStatus.ALLOCATING.value,
    InstanceStatus.STARTING.value,
    InstanceStatus.STOPPING.value,
    InstanceStatus.UNHEALTHY.value,
]


class Reconciler:
    def __init__(
        self, db: Database, notify_nodes: Callable[[set[str]], None] = lambda _ids: None
    ) -> None:
        self.db = db
        self.notify_nodes = notify_nodes  # wake agents waiting for their assignments
        self._services: set[str] = set()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def hint(self, service_ids: Iterable[str]) -> None:
        """Ask for a sync soon; callable from any thread (API handlers run in a pool)."""
        ids = list(service_ids)
        if self._loop is not None and ids:
            self._loop.call_soon_threadsafe(self._enqueue, ids)

    def _enqueue(self, ids: list[str]) -> None:
        self._services.update(ids)
        self._wake.set()

    def sync_service(self, service_id: str) -> None:
        try:
            self._sync_service(service_id)
        except (StaleDataError, OperationalError) as e:
            if not lost_a_race(e):
                raise
            self.hint([service_id])  # a concurrent write won: look again with its result

    def _sync_service(self, service_id: str) -> None:
        with self.db.session() as s:
            svc = s.get(Service, service_id, with_for_update=True)
            if svc is None:
                return
            if svc.resume_deployment_id:
                dep = s.get(Deployment, svc.resume_deployment_id)
                if dep is None or DeploymentStatus(dep.status) not in STARTING_UP:
                    svc.resume_deployment_id = None
            deployer.sync(s, svc, self.notify_nodes)
            if svc.intent == Intent.DELETE.value and service_store.live_instances(s, svc) == 0:
                app_id = svc.app_id
                service_store.purge(s, svc)
                s.flush()
                self._sync_app(s, app_id)
                return
            service_store.refresh_status(s, svc)

    def _sync_app(self, s: Session, app_id: str) -> None:
        app = s.get(App, app_id)
        if app is None:
            return
        remaining = app_store.services_of(s, app)
        if (app.deleting or app.delete_when_empty) and not remaining:
            events.record(
                s, app.organization_id, "app", app.id, "deleted", f"App {app.name} deleted"
            )
            s.delete(app)
        else:
            app_store.refresh_status(s, app)

    def resync(self, everything: bool = False) -> None:
        """Visit what may need work: services not settled (or all of them), apps being
        deleted. A settled service (HEALTHY, its latest deployment active, every instance
        running as wanted) changes only through a write or a report, which hint it."""
        with self.db.read() as s:
            q = select(Service.id)
            if not everything:
                q = q.where(
                    or_(
                        Service.status != AppStatus.HEALTHY.value,
                        Service.intent != Intent.RUN.value,
                        Service.active_deployment_id.is_(None),
                        Service.active_deployment_id != Service.latest_deployment_id,
                        Service.id.in_(
                            select(Instance.service_id).where(
                                Instance.status.in_(_SETTLING),
                            )
                        ),
                    )
                )
            ids = set(s.scalars(q).all())
            deleting_apps = list(s.scalars(select(App.id).where(App.deleting.is_(True))).all())
        for sid in ids:
            self.sync_service(sid)
        for aid in deleting_apps:
            with self.db.session() as s:
                self._sync_app(s, aid)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.resync, True)  # whatever changed while we were down
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), RESYNC_SECONDS)
            except TimeoutError:
                await asyncio.to_thread(self.resync)
                continue
            self._wake.clear()
            batch, self._services = self._services, set()
            for sid in batch:
                await asyncio.to_thread(self.sync_service, sid)
