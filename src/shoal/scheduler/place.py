"""Placement (pure): which node of a region runs a new instance.

Feasible: a live node of the region with room for the instance type (CPU and memory as the
node reported them, minus what its instances already reserve). Ranked: the emptiest first
(spreading replicas), then by name so the choice is stable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class NodeView:
    id: str
    name: str
    region: str
    cpus: float
    memory_mb: int
    reserved_cpus: float  # by its live instances
    reserved_memory_mb: int
    replicas_of_service: int = 0  # instances of the service being placed already there


@dataclass(frozen=True)
class Demand:
    region: str
    vcpu: float
    memory_mb: int


def place(demand: Demand, nodes: Iterable[NodeView]) -> NodeView | None:
    feasible = [
        n
        for n in nodes
        if n.region == demand.region
        and n.cpus - n.reserved_cpus >= demand.vcpu
        and n.memory_mb - n.reserved_memory_mb >= demand.memory_mb
    ]
    if not feasible:
        return None
    return min(
        feasible,
        key=lambda n: (n.replicas_of_service, n.reserved_memory_mb / max(n.memory_mb, 1), n.name),
    )


def why_not(demand: Demand, nodes: Iterable[NodeView]) -> str:
    """The message for an instance that cannot be placed."""
    here = [n for n in nodes if n.region == demand.region]
    if not here:
        return f"No node is available in region {demand.region}"
    return (
        f"No node in region {demand.region} has {demand.vcpu:g} vCPU and "
        f"{demand.memory_mb}MB of memory free"
    )
