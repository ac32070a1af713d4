"""The autoscaler's loop: every TICK_S, each region of each running service that scales on
load gets a decision (autoscale/policy.py) from the edge's request metrics and the nodes'
CPU and memory samples of the last stable window, and the instances ready. (It also lets
the metrics of deleted services go.) The decision is stored (service_scales), so that a
restarted control plane carries on; a change of count is a service event saying why, and a
hint to the reconciler, which starts or drains instances (control/deployer.py reads the
count).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from shoal.autoscale.policy import (
    STABLE_S,
    Decision,
    Scale,
    Scaling,
    Second,
    Utilisation,
    decide,
    scalings,
)
from shoal.core.definition import DeploymentDefinition
from shoal.core.enums import InstanceStatus
from shoal.core.metrics import RequestMetrics, RequestSample, weighted_response_ms
from shoal.core.rollout import Desired
from shoal.core.status import Intent
from shoal.store import events
from shoal.store.db import Database
from shoal.store.tables import Deployment, Instance, Service, ServiceScale

log = logging.getLogger(__name__)
TICK_S = 1.0


class Autoscaler:
    def __init__(
        self,
        db: Database,
        metrics: RequestMetrics,
        hint: Callable[[Iterable[str]], None],
        stable_s: float = STABLE_S,
    ) -> None:
        self._db, self._metrics, self._hint, self._stable_s = db, metrics, hint, stable_s
        self._scalings: dict[str, dict[str, Scaling]] = {}  # deployment -> region -> scaling
        self._started = time.time()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                changed = await asyncio.to_thread(self.tick, time.time())
            except OperationalError as e:  # the store busy or away: the next tick sees
                log.warning("autoscaler: %s", e)
                continue
            except IntegrityError:  # a service deleted meanwhile: the next tick sees
                log.info("autoscaler: a service went while it was decided for")
                continue
            if changed:
                self._hint(changed)

    def tick(self, now: float) -> set[str]:
        """Decide for every autoscaled region; the services whose count changed."""
        changed = set()
        with self._db.session() as s:
            running = s.execute(
                select(Service.id, Service.organization_id, Service.active_deployment_id).where(
                    Service.intent == Intent.RUN.value, Service.active_deployment_id.is_not(None)
                )
            ).all()
            actives = {active_id for _, _, active_id in running}
            existing = set(s.scalars(select(Service.id)).all())
            self._metrics.forget(self._metrics.services() - existing)
            self._scalings = {k: v for k, v in self._scalings.items() if k in actives}
            for service_id, org_id, active_id in running:
                if active_id is None:
                    continue
                automatic = {
                    r: sc
                    for r, sc in self._scalings_of(s, active_id).items()
                    if sc.automatic or sc.sleeps
                }
                if automatic and self._service(s, service_id, org_id, active_id, automatic, now):
                    changed.add(service_id)
        return changed

    def _scalings_of(self, s: Session, deployment_id: str) -> dict[str, Scaling]:
        """A deployment's scaling per region (deployments never change: read once)."""
        found = self._scalings.get(deployment_id)
        if found is None:
            raw = s.scalar(select(Deployment.definition).where(Deployment.id == deployment_id))
            found = scalings(DeploymentDefinition.model_validate(raw or {}))
            self._scalings[deployment_id] = found
        return found

    def _service(
        self,
        s: Session,
        service_id: str,
        org_id: str,
        active_id: str,
        scalings: dict[str, Scaling],
        now: float,
    ) -> bool:
        region_of: dict[str, str] = {}
        ready: dict[str, int] = defaultdict(int)
        for inst_id, region, status, desired, dep_id in s.execute(
            select(
                Instance.id, Instance.region, Instance.status, Instance.desired,
                Instance.deployment_id,
            ).where(Instance.service_id == service_id)
        ):  # fmt: skip
            region_of[inst_id] = region
            healthy = status == InstanceStatus.HEALTHY.value and desired == Desired.RUN.value
            ready[region] += healthy and dep_id == active_id
        found = self._metrics.samples(service_id, now - self._stable_s, now)
        used = self._metrics.resources(service_id, now - self._stable_s, now)
        changed = False
        for region, scaling in scalings.items():
            samples = [
                x
                for inst, xs in found.items()
                if inst and region_of.get(inst) == region
                for x in xs
            ]
            load = seconds(samples, scaling.targets.response_quantile)
            utilisation = [
                Utilisation(x.at, x.cpu_percent, x.memory_percent)
                for inst, xs in used.items()
                if region_of.get(inst) == region
                for x in xs
            ]
            row = s.get(ServiceScale, (service_id, region))
            last = (
                Scale(
                    row.replicas,
                    row.changed_at.timestamp(),
                    row.panic_at.timestamp() if row.panic_at else None,
                    row.light,
                )
                if row
                else Scale(scaling.floor, now)
            )
            active_at = self._active_at(s, service_id, active_id, region, region_of, scaling, now)
            d = decide(
                scaling, load, ready[region], last, now, self._stable_s, utilisation, active_at
            )
            self._store(s, row, service_id, region, last, d, now)
            if d.reason:
                message = f"Scaled from {last.replicas} to {d.replicas} in {region}: {d.reason}"
                if d.replicas == last.replicas:  # a light sleep turned deep
                    message = f"Sleeping in {region}: {d.reason}"
                events.record(s, org_id, "service", service_id, "autoscale", message)
                changed = True
        return changed

    def _active_at(
        self,
        s: Session,
        service_id: str,
        active_id: str,
        region: str,
        region_of: dict[str, str],
        scaling: Scaling,
        now: float,
    ) -> float:
        """When the region last had something to do: its last request or open connection,
        its deployment's becoming healthy, or this loop's start (before it, nothing was
        counted)."""
        if scaling.sleep_after is None:
            return 0.0
        healthy = s.scalar(select(Deployment.succeeded_at).where(Deployment.id == active_id))
        recent = self._metrics.samples(service_id, now - scaling.sleep_after - 1, now)
        times = [
            x.at
            for inst, xs in recent.items()
            if inst and region_of.get(inst) == region
            for x in xs
            if x.active
        ]
        return max([self._started, healthy.timestamp() if healthy else 0.0, *times])

    @staticmethod
    def _store(
        s: Session,
        row: ServiceScale | None,
        service_id: str,
        region: str,
        last: Scale,
        d: Decision,
        now: float,
    ) -> None:
        panic_at = _utc(d.panic_at) if d.panic_at is not None else None
        if row is None:
            row = ServiceScale(service_id=service_id, region=region, changed_at=_utc(now))
            s.add(row)
        elif (d.replicas, d.panic_at, d.light) == (last.replicas, last.panic_at, last.light):
            return
        if (d.replicas, d.light) != (last.replicas, last.light):
            row.changed_at = _utc(now)
        row.replicas, row.panic_at, row.light = d.replicas, panic_at, d.light


def seconds(samples: list[RequestSample], quantile: int) -> list[Second]:
    """A region's load second by second: its instances' samples of each window together.
    A response-time target's quantile is read from the nearest measured one at or above it
    (p50, p90, p99, then the max): never lower than asked."""
    index = next((n for n, q in enumerate((50, 90, 99)) if quantile <= q), 3)
    windows: dict[float, list[RequestSample]] = defaultdict(list)
    for x in samples:
        windows[x.at].append(x)
    return [
        Second(
            at,
            sum(x.requests for x in xs),
            sum(x.busy_ms for x in xs) / 1000,
            weighted_response_ms(xs, index),
        )
        for at, xs in sorted(windows.items())
    ]


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)
