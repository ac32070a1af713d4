"""Public TCP ports of the edge for services' `proxy_ports`: each port of a service gets one
of PUBLIC_TCP_PORTS the first time a deployment asks for it, and keeps it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shoal.core.definition import DeploymentDefinition
from shoal.core.edge import PUBLIC_TCP_PORTS
from shoal.core.errors import PreconditionFailed
from shoal.store.tables import ProxyPort


def assign(s: Session, service_id: str, definition: DeploymentDefinition) -> list[dict[str, Any]]:
    """The deployment's `metadata.proxy_ports` (without the host, which the API adds): a
    public port for each of its proxy ports, taken on first use."""
    wanted = sorted({pp.port for pp in definition.proxy_ports or [] if pp.port})
    if not wanted:
        return []
    held = {
        row.port: row.public_port
        for row in s.scalars(select(ProxyPort).where(ProxyPort.service_id == service_id))
    }
    taken: set[int] | None = None
    for port in wanted:
        if port in held:
            continue
        if taken is None:
            taken = set(s.scalars(select(ProxyPort.public_port)))
        free = next((p for p in PUBLIC_TCP_PORTS if p not in taken), None)
        if free is None:
            why = "the edge has no public TCP port left"
            raise PreconditionFailed(f"{why} ({len(PUBLIC_TCP_PORTS)} in use)")
        s.add(ProxyPort(service_id=service_id, port=port, public_port=free))
        taken.add(free)
        held[port] = free
    return [{"port": port, "public_port": held[port], "protocol": "tcp"} for port in wanted]


def public_ports(s: Session) -> dict[tuple[str, int], int]:
    """(service, port) -> its public port, for every service."""
    return {(r.service_id, r.port): r.public_port for r in s.scalars(select(ProxyPort))}
