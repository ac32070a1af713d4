"""Rollouts as a pure decision: from a snapshot of one service, what to start, stop and record.

The control loop gathers a `Snapshot`, calls `plan`, and carries the actions out; running it
again on the new facts is always safe (level-triggered). Strategies (see the README):

- ROLLING (the default, also DEFAULT and CANARY): the new deployment's instances start beside
  the active ones; the new deployment takes traffic once all of them are HEALTHY, and only
  then do the previous deployment's instances stop. No moment without a serving deployment.
- BLUE_GREEN: the same start-beside, but the switch is held until every region of the new
  deployment is healthy and the old set is stopped all at once — identical to ROLLING while
  each region switches as a whole, which is what shoal does today; kept as its own name
  for clients that ask for it.
- IMMEDIATE: the previous deployment's instances stop as soon as the new deployment starts
  (a short gap in service, half the resources).

A deployment whose instance fails before the deployment was ever healthy goes to ERROR with
that instance's reason, and its instances stop; the active deployment keeps serving. Once a
deployment has been healthy, a failed instance is replaced by a new one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from shoal.core.definition import StrategyType
from shoal.core.enums import DeploymentStatus, InstanceStatus
from shoal.core.status import Intent

_ENDED = frozenset({InstanceStatus.STOPPED, InstanceStatus.ERROR})
_FINAL = frozenset(
    {
        DeploymentStatus.ERROR,
        DeploymentStatus.CANCELED,
        DeploymentStatus.STOPPED,
        DeploymentStatus.STASHED,
    }
)
_NOT_STARTED = frozenset(
    {DeploymentStatus.PENDING, DeploymentStatus.PROVISIONING, DeploymentStatus.SCHEDULED}
)


class Desired(StrEnum):
    RUN = "RUN"
    SLEEP = "SLEEP"  # light sleep: kept, frozen (its memory with it)
    DEEP_SLEEP = "DEEP"  # deep sleep: its processes stopped, its sandbox kept on its node
    STOP = "STOP"


ASLEEP = frozenset({Desired.SLEEP, Desired.DEEP_SLEEP})


@dataclass(frozen=True)
class InstanceFact:
    id: str
    deployment_id: str
    region: str
    replica_index: int
    status: InstanceStatus
    desired: Desired
    message: str = ""

    @property
    def live(self) -> bool:
        return self.status not in _ENDED


@dataclass(frozen=True)
class DeploymentFact:
    id: str
    status: DeploymentStatus
    replicas: dict[str, int]  # region -> how many instances it should run there
    strategy: StrategyType = StrategyType.DEFAULT
    ever_healthy: bool = False
    ready: bool = True  # its artifact exists (built or pulled): instances may start
    # Regions asleep (a count of 0) lightly: instances frozen; the others asleep are deeply.
    light: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Snapshot:
    intent: Intent
    active_id: str | None
    target_id: str | None  # the newest runnable deployment
    deployments: tuple[DeploymentFact, ...]
    instances: tuple[InstanceFact, ...]


@dataclass(frozen=True)
class StartInstance:
    deployment_id: str
    region: str
    replica_index: int


@dataclass(frozen=True)
class StopInstance:
    instance_id: str
    reason: str


@dataclass(frozen=True)
class SleepInstance:
    """Until a request wakes it: freeze it (light sleep: kept with its memory), or stop its
    processes and keep the rest (deep sleep: its network, cgroup and disk, on its node)."""

    instance_id: str
    deep: bool = False


@dataclass(frozen=True)
class WakeInstance:
    instance_id: str


@dataclass(frozen=True)
class SetDeploymentStatus:
    deployment_id: str
    status: DeploymentStatus
    message: str


@dataclass(frozen=True)
class Activate:
    deployment_id: str


Action = (
    StartInstance | StopInstance | SleepInstance | WakeInstance | SetDeploymentStatus | Activate
)


def deployment_status(
    d: DeploymentFact, instances: Iterable[InstanceFact], stopping: bool
) -> DeploymentStatus:
    """A deployment's status from its instances' (pure).

    While it should run: SCHEDULED before any instance exists, ALLOCATING while instances are
    prepared, STARTING until all are HEALTHY, then HEALTHY; after it has been healthy,
    DEGRADED when some are not healthy and UNHEALTHY when none is. While it should stop:
    STOPPING until none runs, then STOPPED.
    """
    own = [i for i in instances if i.deployment_id == d.id and i.live]
    if stopping:
        return DeploymentStatus.STOPPING if own else DeploymentStatus.STOPPED
    want = sum(d.replicas.values())
    healthy = sum(1 for i in own if i.status == InstanceStatus.HEALTHY)
    sleeping = sum(1 for i in own if i.status == InstanceStatus.SLEEPING)
    if want and healthy + sleeping >= want:
        return DeploymentStatus.SLEEPING if sleeping == want else DeploymentStatus.HEALTHY
    if want == 0:
        return DeploymentStatus.SLEEPING if d.ever_healthy else DeploymentStatus.HEALTHY
    if d.ever_healthy:
        return DeploymentStatus.DEGRADED if healthy + sleeping else DeploymentStatus.UNHEALTHY
    if not own:
        return DeploymentStatus.SCHEDULED
    if any(i.status != InstanceStatus.ALLOCATING for i in own):
        return DeploymentStatus.STARTING
    return DeploymentStatus.ALLOCATING


def plan(snap: Snapshot) -> list[Action]:
    actions: list[Action] = []
    by_id = {d.id: d for d in snap.deployments}
    target = by_id.get(snap.target_id or "")
    if snap.intent != Intent.RUN or (target is not None and target.status in _FINAL):
        target = None
    active = by_id.get(snap.active_id or "") if snap.intent == Intent.RUN else None
    if active is not None and active.status in _FINAL:
        active = None
    keep = {d.id for d in (target, active) if d is not None}

    if target is not None and target is not active:
        failed = _first_failure(target, snap.instances)
        if failed is not None and not target.ever_healthy:
            actions += _fail(target, snap.instances, failed)
            target = None  # still in `keep`: its failure is its end, not a wind-down

    immediate = target is not None and target.strategy == StrategyType.IMMEDIATE
    if immediate and target is not active and active is not None:
        keep.discard(active.id)
        active = None

    running = {d.id: d for d in (target, active) if d is not None and d.ready}
    for d in running.values():
        actions += _converge(d, snap.instances)

    if target is not None and target is not active:
        status = deployment_status(target, snap.instances, stopping=False)
        if status == DeploymentStatus.HEALTHY:
            actions.append(Activate(target.id))
            if active is not None:
                keep.discard(active.id)
                active = None
        if status != target.status and target.ready:
            actions.append(SetDeploymentStatus(target.id, status, _message(status)))
    if active is not None:
        status = deployment_status(active, snap.instances, stopping=False)
        if status != active.status:
            actions.append(SetDeploymentStatus(active.id, status, _message(status)))

    for d in snap.deployments:
        if d.id in keep:
            continue
        if d.status in _FINAL:  # ended: make sure nothing of it still runs
            actions += _stops(d, snap.instances, "Deployment stopped")
        else:
            actions += _wind_down(d, snap.instances)
    return actions


def _stops(d: DeploymentFact, instances: Iterable[InstanceFact], reason: str) -> list[Action]:
    return [
        StopInstance(i.id, reason)
        for i in instances
        if i.deployment_id == d.id and i.live and i.desired != Desired.STOP
    ]


def _first_failure(d: DeploymentFact, instances: Iterable[InstanceFact]) -> InstanceFact | None:
    for i in instances:
        if i.deployment_id == d.id and i.status == InstanceStatus.ERROR:
            return i
    return None


def _fail(
    d: DeploymentFact, instances: Iterable[InstanceFact], failed: InstanceFact
) -> list[Action]:
    reason = failed.message or "An instance failed to start"
    return [
        SetDeploymentStatus(d.id, DeploymentStatus.ERROR, reason),
        *_stops(d, instances, "Deployment failed"),
    ]


def _converge(d: DeploymentFact, instances: Iterable[InstanceFact]) -> list[Action]:
    """Start the replicas that are missing (or failed), wake the sleeping ones that count and
    stop the ones above the count. A region asleep (a count of 0) keeps its instances: in
    light sleep all frozen, in deep sleep the healthy (or sleeping) ones stopped in place;
    the others stop for good."""
    out: list[Action] = []
    kept = [
        i for i in instances if i.deployment_id == d.id and i.live and i.desired != Desired.STOP
    ]
    for region, count in sorted(d.replicas.items()):
        here = [i for i in kept if i.region == region]
        if region in d.light:
            out += [SleepInstance(i.id) for i in here if i.desired == Desired.RUN]
            continue
        if count == 0:
            for i in here:
                if i.status not in (InstanceStatus.HEALTHY, InstanceStatus.SLEEPING):
                    out.append(StopInstance(i.id, "Scaled down"))
                elif i.desired != Desired.DEEP_SLEEP:
                    out.append(SleepInstance(i.id, deep=True))
            continue
        present = {i.replica_index for i in here}
        out += [StartInstance(d.id, region, n) for n in range(count) if n not in present]
        out += [WakeInstance(i.id) for i in here if i.desired in ASLEEP and i.replica_index < count]
        out += [StopInstance(i.id, "Scaled down") for i in here if i.replica_index >= count]
    out += [StopInstance(i.id, "Region removed") for i in kept if i.region not in d.replicas]
    return out


def _wind_down(d: DeploymentFact, instances: Iterable[InstanceFact]) -> list[Action]:
    """A deployment that should not run: stop its instances, then record how it ended."""
    own = [i for i in instances if i.deployment_id == d.id]
    out = _stops(d, own, "Deployment stopped")
    if not own and d.status in _NOT_STARTED:
        out.append(
            SetDeploymentStatus(d.id, DeploymentStatus.CANCELED, "Superseded by a newer deployment")
        )
        return out
    status = deployment_status(d, instances, stopping=True)
    if status != d.status:
        out.append(SetDeploymentStatus(d.id, status, _message(status)))
    return out


_MESSAGES = {
    DeploymentStatus.SCHEDULED: "Waiting for instances to be allocated",
    DeploymentStatus.ALLOCATING: "Instances are being allocated",
    DeploymentStatus.STARTING: "Instances are starting",
    DeploymentStatus.HEALTHY: "All instances are healthy",
    DeploymentStatus.DEGRADED: "Some instances are not healthy",
    DeploymentStatus.UNHEALTHY: "No instance is healthy",
    DeploymentStatus.STOPPING: "Instances are stopping",
    DeploymentStatus.STOPPED: "Deployment stopped",
    DeploymentStatus.SLEEPING: "Deployment is sleeping",
}


def _message(status: DeploymentStatus) -> str:
    return _MESSAGES.get(status, status.value.capitalize())
