"""The rollout planner, step by step through the lives of deployments."""

from __future__ import annotations

from shoal.core.definition import StrategyType
from shoal.core.enums import DeploymentStatus as D
from shoal.core.enums import InstanceStatus as I
from shoal.core.rollout import (
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
    deployment_status,
    plan,
)
from shoal.core.status import Intent


def dep(id_, status=D.PENDING, replicas=None, **kw) -> DeploymentFact:
    return DeploymentFact(id_, status, replicas or {"fra": 1}, **kw)


def inst(id_, dep_id, status, region="fra", n=0, desired=Desired.RUN, message="") -> InstanceFact:
    return InstanceFact(id_, dep_id, region, n, status, desired, message)


def snap(deps, insts=(), active=None, target=None, intent=Intent.RUN) -> Snapshot:
    return Snapshot(intent, active, target, tuple(deps), tuple(insts))


def test_a_first_deployment_starts_its_replicas_in_every_region():
    d = dep("d1", replicas={"fra": 2, "was": 1})
    actions = plan(snap([d], target="d1"))
    assert set(a for a in actions if isinstance(a, StartInstance)) == {
        StartInstance("d1", "fra", 0),
        StartInstance("d1", "fra", 1),
        StartInstance("d1", "was", 0),
    }
    assert (
        SetDeploymentStatus("d1", D.SCHEDULED, "Waiting for instances to be allocated") in actions
    )


def test_statuses_follow_the_instances():
    d = dep("d1", D.SCHEDULED, {"fra": 2})
    assert deployment_status(d, [inst("a", "d1", I.ALLOCATING)], False) == D.ALLOCATING
    assert (
        deployment_status(d, [inst("a", "d1", I.STARTING), inst("b", "d1", I.HEALTHY, n=1)], False)
        == D.STARTING
    )
    assert (
        deployment_status(d, [inst("a", "d1", I.HEALTHY), inst("b", "d1", I.HEALTHY, n=1)], False)
        == D.HEALTHY
    )
    healthy_before = dep("d1", D.HEALTHY, {"fra": 2}, ever_healthy=True)
    assert deployment_status(healthy_before, [inst("a", "d1", I.HEALTHY)], False) == D.DEGRADED
    assert deployment_status(healthy_before, [inst("a", "d1", I.UNHEALTHY)], False) == D.UNHEALTHY
    assert deployment_status(d, [inst("a", "d1", I.STOPPING)], True) == D.STOPPING
    assert deployment_status(d, [inst("a", "d1", I.STOPPED)], True) == D.STOPPED


def test_a_healthy_first_deployment_is_activated():
    d = dep("d1", D.STARTING)
    actions = plan(snap([d], [inst("a", "d1", I.HEALTHY)], target="d1"))
    assert Activate("d1") in actions
    assert SetDeploymentStatus("d1", D.HEALTHY, "All instances are healthy") in actions
    assert not [a for a in actions if isinstance(a, (StartInstance, StopInstance))]


def test_rolling_keeps_the_old_one_until_the_new_one_is_healthy():
    old = dep("d1", D.HEALTHY, ever_healthy=True)
    new = dep("d2", D.STARTING)
    running_old = inst("a", "d1", I.HEALTHY)
    actions = plan(
        snap([old, new], [running_old, inst("b", "d2", I.STARTING)], active="d1", target="d2")
    )
    assert not [a for a in actions if isinstance(a, (StopInstance, Activate))]
    actions = plan(
        snap([old, new], [running_old, inst("b", "d2", I.HEALTHY)], active="d1", target="d2")
    )
    assert Activate("d2") in actions
    assert StopInstance("a", "Deployment stopped") in actions
    assert SetDeploymentStatus("d1", D.STOPPING, "Instances are stopping") in actions


def test_immediate_stops_the_old_one_at_once():
    old = dep("d1", D.HEALTHY, ever_healthy=True)
    new = dep("d2", D.PENDING, strategy=StrategyType.IMMEDIATE)
    actions = plan(snap([old, new], [inst("a", "d1", I.HEALTHY)], active="d1", target="d2"))
    assert StopInstance("a", "Deployment stopped") in actions
    assert StartInstance("d2", "fra", 0) in actions


def test_a_failing_new_deployment_errors_and_the_old_one_keeps_serving():
    old = dep("d1", D.HEALTHY, ever_healthy=True)
    new = dep("d2", D.STARTING)
    insts = [
        inst("a", "d1", I.HEALTHY),
        inst("b", "d2", I.ERROR, message="Application exited with code 1"),
        inst("c", "d2", I.STARTING, n=1),
    ]
    actions = plan(snap([old, dep("d2", D.STARTING, {"fra": 2})], insts, active="d1", target="d2"))
    assert SetDeploymentStatus("d2", D.ERROR, "Application exited with code 1") in actions
    assert [a for a in actions if isinstance(a, SetDeploymentStatus)] == [
        SetDeploymentStatus("d2", D.ERROR, "Application exited with code 1")
    ]
    assert StopInstance("c", "Deployment failed") in actions
    assert not [a for a in actions if isinstance(a, StopInstance) and a.instance_id == "a"]
    assert not [a for a in actions if isinstance(a, StartInstance)]
    # Next round: the failed deployment is final; the old one is untouched; nothing restarts.
    failed = dep("d2", D.ERROR, {"fra": 2})
    actions = plan(
        snap(
            [old, failed],
            [insts[0], insts[1], inst("c", "d2", I.STOPPED, n=1)],
            active="d1",
            target="d2",
        )
    )
    assert actions == []
    assert new.status == D.STARTING


def test_a_failed_instance_of_a_healthy_deployment_is_replaced():
    d = dep("d1", D.HEALTHY, ever_healthy=True)
    actions = plan(snap([d], [inst("a", "d1", I.ERROR, message="OOM")], active="d1", target="d1"))
    assert StartInstance("d1", "fra", 0) in actions
    assert SetDeploymentStatus("d1", D.UNHEALTHY, "No instance is healthy") in actions


def test_scaling_down_stops_the_highest_replicas():
    d = dep("d1", D.HEALTHY, {"fra": 1}, ever_healthy=True)
    insts = [inst("a", "d1", I.HEALTHY), inst("b", "d1", I.HEALTHY, n=1)]
    assert plan(snap([d], insts, active="d1", target="d1")) == [StopInstance("b", "Scaled down")]


def test_pause_stops_everything_and_records_the_end():
    d = dep("d1", D.HEALTHY, ever_healthy=True)
    actions = plan(
        snap([d], [inst("a", "d1", I.HEALTHY)], active="d1", target="d1", intent=Intent.PAUSE)
    )
    assert StopInstance("a", "Deployment stopped") in actions
    assert SetDeploymentStatus("d1", D.STOPPING, "Instances are stopping") in actions
    actions = plan(
        snap(
            [dep("d1", D.STOPPING)],
            [inst("a", "d1", I.STOPPED, desired=Desired.STOP)],
            active="d1",
            target="d1",
            intent=Intent.PAUSE,
        )
    )
    assert actions == [SetDeploymentStatus("d1", D.STOPPED, "Deployment stopped")]


def test_superseded_pending_deployments_are_canceled():
    actions = plan(snap([dep("d1", D.PENDING), dep("d2", D.PENDING)], target="d2"))
    assert SetDeploymentStatus("d1", D.CANCELED, "Superseded by a newer deployment") in actions
    assert StartInstance("d2", "fra", 0) in actions


def test_a_deployment_not_ready_starts_nothing():
    d = dep("d1", D.PROVISIONING, ready=False)
    assert plan(snap([d], target="d1")) == []


def test_plans_are_idempotent_once_converged():
    d = dep("d1", D.HEALTHY, {"fra": 2}, ever_healthy=True)
    insts = [inst("a", "d1", I.HEALTHY), inst("b", "d1", I.HEALTHY, n=1)]
    assert plan(snap([d], insts, active="d1", target="d1")) == []


def test_light_sleep_freezes_the_instances_and_a_wake_thaws_those_that_count():
    healthy = [inst("a", "d1", I.HEALTHY), inst("b", "d1", I.HEALTHY, n=1)]
    asleep = dep("d1", D.HEALTHY, {"fra": 0}, ever_healthy=True, light=frozenset({"fra"}))
    actions = plan(snap([asleep], healthy, active="d1", target="d1"))
    assert [a for a in actions if not isinstance(a, SetDeploymentStatus)] == [
        SleepInstance("a"),
        SleepInstance("b"),
    ]  # none stopped, none started
    frozen = [
        inst("a", "d1", I.SLEEPING, desired=Desired.SLEEP),
        inst("b", "d1", I.SLEEPING, n=1, desired=Desired.SLEEP),
    ]
    assert deployment_status(asleep, frozen, False) == D.SLEEPING
    still = dep("d1", D.SLEEPING, {"fra": 0}, ever_healthy=True, light=frozenset({"fra"}))
    assert plan(snap([still], frozen, active="d1", target="d1")) == []
    # Woken with a count of 1: the first thaws, the second stops.
    woken = dep("d1", D.SLEEPING, {"fra": 1}, ever_healthy=True)
    actions = plan(snap([woken], frozen, active="d1", target="d1"))
    assert WakeInstance("a") in actions and StopInstance("b", "Scaled down") in actions
    assert not any(isinstance(a, StartInstance) for a in actions)
    # Deep sleep (count 0, not light): the frozen ones are stopped in place.
    deep = dep("d1", D.SLEEPING, {"fra": 0}, ever_healthy=True)
    actions = plan(snap([deep], frozen, active="d1", target="d1"))
    assert actions == [SleepInstance("a", deep=True), SleepInstance("b", deep=True)]


def test_deep_sleep_keeps_the_instances_that_served_and_a_wake_restarts_them():
    d = dep("d1", D.HEALTHY, {"fra": 0}, ever_healthy=True)
    insts = [
        inst("a", "d1", I.HEALTHY),
        inst("b", "d1", I.SLEEPING, n=1, desired=Desired.DEEP_SLEEP),
        inst("c", "d1", I.STARTING, n=2),  # never served: nothing worth keeping
    ]
    actions = plan(snap([d], insts, active="d1", target="d1"))
    assert [a for a in actions if not isinstance(a, SetDeploymentStatus)] == [
        SleepInstance("a", deep=True),
        StopInstance("c", "Scaled down"),
    ]
    parked = [
        inst("a", "d1", I.SLEEPING, desired=Desired.DEEP_SLEEP),
        inst("b", "d1", I.SLEEPING, n=1, desired=Desired.DEEP_SLEEP),
    ]
    assert deployment_status(d, parked, False) == D.SLEEPING
    asleep = dep("d1", D.SLEEPING, {"fra": 0}, ever_healthy=True)
    assert plan(snap([asleep], parked, active="d1", target="d1")) == []
    woken = dep("d1", D.SLEEPING, {"fra": 2}, ever_healthy=True)
    actions = plan(snap([woken], parked, active="d1", target="d1"))
    assert [a for a in actions if not isinstance(a, SetDeploymentStatus)] == [
        WakeInstance("a"),
        WakeInstance("b"),
    ]  # the same instances, none started


def test_a_paused_service_stops_its_frozen_instances():
    d = dep("d1", D.SLEEPING, {"fra": 0}, ever_healthy=True, light=frozenset({"fra"}))
    frozen = [inst("a", "d1", I.SLEEPING, desired=Desired.SLEEP)]
    actions = plan(snap([d], frozen, active="d1", target="d1", intent=Intent.PAUSE))
    assert StopInstance("a", "Deployment stopped") in actions
