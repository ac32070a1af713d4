"""Each running instance's use of its instance type, sampled for the control plane: CPU as
a percentage of the type's vCPU over the time since the last sample, and memory in use (the
autoscaler's `average_cpu` and `average_mem`, Koyeb's CPU_TOTAL_PERCENT and MEM_RSS).
Sleeping instances are not sampled: they use no CPU, and a node may keep a thousand."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from shoal.core.assignment import Assignment
from shoal.core.metrics import ResourceSample
from shoal.runtime.driver import Driver, SandboxError


class Running(Protocol):
    a: Assignment
    address: str | None  # set once its sandbox runs
    asleep: bool


class Sampler:
    def __init__(self, driver: Driver) -> None:
        self._driver = driver
        self._last: dict[str, tuple[float, float]] = {}  # instance -> (when, CPU seconds)

    def sample(self, tasks: Mapping[str, Running], now: float) -> list[ResourceSample]:
        out = []
        for instance_id, task in tasks.items():
            if task.address is None or task.asleep:
                self._last.pop(instance_id, None)  # awake again, it starts afresh
                continue
            try:
                used = self._driver.usage(instance_id)
            except (SandboxError, OSError):  # going away meanwhile
                continue
            before = self._last.get(instance_id)
            self._last[instance_id] = (now, used.cpu_seconds)
            if before is None or now <= before[0]:
                continue
            share = (used.cpu_seconds - before[1]) / (now - before[0]) / max(task.a.vcpu, 0.01)
            out.append(
                ResourceSample(
                    service_id=task.a.service_id,
                    instance_id=instance_id,
                    at=now,
                    cpu_percent=max(share * 100, 0.0),
                    memory_bytes=used.memory_bytes,
                    memory_limit_bytes=used.memory_limit_bytes,
                )
            )
        for gone in set(self._last) - set(tasks):
            del self._last[gone]
        return out
