"""What users read when an instance ends."""

from __future__ import annotations

from shoal.agent.instance import exit_message
from shoal.core.assignment import Assignment
from shoal.core.definition import DockerSource
from shoal.core.enums import InstanceStatus
from shoal.core.rollout import Desired
from shoal.runtime.driver import Phase, SandboxState

A = Assignment(
    instance_id="i", organization_id="o", app_id="a", service_id="s", deployment_id="d",
    region="fra", replica_index=0, desired=Desired.RUN, status=InstanceStatus.HEALTHY,
    docker=DockerSource(image="x"), env={}, ports=[], health_checks=[], instance_type="nano",
    vcpu=0.25, memory_mb=256, disk_mb=2560, hostname="web-0",
)  # fmt: skip


def test_exit_codes_signals_and_memory():
    exited = SandboxState("i", Phase.EXITED, exit_code=1)
    assert exit_message(exited, A).startswith("Application exited with code 1.")
    assert exit_message(SandboxState("i", Phase.EXITED, exit_code=-9), A) == (
        "Application was killed by signal 9"
    )
    oom = exit_message(SandboxState("i", Phase.EXITED, exit_code=-9, oom_killed=True), A)
    assert "ran out of memory (256MB on nano)" in oom and "larger instance type" in oom
    assert "unknown" in exit_message(SandboxState("i", Phase.EXITED), A)
