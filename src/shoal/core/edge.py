"""What the edge routes (pure): each public route of each app's domain, and the healthy
instances behind it.

Koyeb's model: routes map a path prefix of the app's domain to a port of one of its services
(paths are unique within an app); the longest prefix wins and is stripped before the request
reaches the instance. `http` ports are proxied as HTTP/1.1, `http2` ports as cleartext HTTP/2;
`tcp` ports are not routed by path.

Regions: a route's servers are pooled per region (one backend each), and a request goes to
the pool of the region closest to its client that has a healthy instance, the next closest
when that one has none (`choices`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from shoal.core.catalog import nearest_first
from shoal.core.definition import DeploymentDefinition
from shoal.core.mesh import ALL_REGIONS

Protocol = Literal["http", "http2"]
# Where the edge listens for `proxy_ports` (TCP), one port per proxied port of a service.
PUBLIC_TCP_PORTS = range(20000, 30000)


class EdgeServer(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str  # the instance's id
    address: str
    port: int
    region: str
    waker: str = ""  # a sleeping instance's: the Unix socket of its node's agent that wakes it


class EdgeRoute(BaseModel):
    model_config = ConfigDict(frozen=True)

    host: str  # the app's domain
    path: str  # the prefix, starting with "/"
    service_id: str
    port: int
    protocol: Protocol
    regions: tuple[str, ...] = ()  # where the service's active deployment runs
    servers: tuple[EdgeServer, ...] = ()
    asleep: tuple[EdgeServer, ...] = ()  # its instances asleep, light or deep (not in HAProxy)

    def backend(self, region: str) -> str:
        """The name of the route's pool of servers in `region`, the same for as long as the
        route is."""
        key = f"{self.service_id} {self.port} {self.protocol} {self.path}"
        return f"r-{hashlib.sha256(key.encode()).hexdigest()[:20]}-{region}"

    def pools(self) -> dict[str, tuple[EdgeServer, ...]]:
        """Region -> its servers, for each region the service runs in or has servers in (one
        empty pool, of no region, for a route with neither)."""
        regions = dict.fromkeys((*self.regions, *(s.region for s in self.servers))) or {"": None}
        return {r: tuple(s for s in self.servers if s.region == r) for r in regions}

    def asleep_near(self, region: str) -> tuple[EdgeServer, ...]:
        """Its sleeping instances, those of the regions closest to `region` first."""
        order = {r: n for n, r in enumerate(nearest_first(region, [s.region for s in self.asleep]))}
        return tuple(sorted(self.asleep, key=lambda s: (order[s.region], s.id)))

    def pool_for(self, client: str) -> str:
        """The backend a client in region `client` is sent to: the closest pool that has a
        server, or the closest of all when none has (it answers 503)."""
        pools = self.pools()
        serving = [r for r, servers in pools.items() if servers] or list(pools)
        return self.backend(nearest_first(client, serving)[0])


class EdgeTcpRoute(BaseModel):
    """A TCP listener of the edge and the healthy instances behind it: a `proxy_ports` port
    of a service (on the edge's own address), or a port of a service's private mesh address
    (core/mesh.py)."""

    model_config = ConfigDict(frozen=True)

    public_port: int
    service_id: str
    port: int
    address: str = ""  # where the edge listens: its own address (""), or a mesh address
    servers: tuple[EdgeServer, ...] = ()

    @property
    def backend(self) -> str:
        if self.address:
            return f"m-{self.address.replace('.', '-')}-{self.public_port}"
        return f"t-{self.public_port}"


class EdgeTable(BaseModel):
    routes: list[EdgeRoute] = []
    tcp: list[EdgeTcpRoute] = []

    def fingerprint(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:32]


def app_label(app_name: str, org_name: str) -> str:
    """The first label of an app's public domain (unique across organizations)."""
    return f"{app_name}-{org_name}"


def app_domain(app_name: str, org_name: str, base_domain: str) -> str:
    """The public domain of an app (Koyeb's `<app>-<org>.<domain>`)."""
    return f"{app_label(app_name, org_name)}.{base_domain}"


def public_routes(definition: DeploymentDefinition) -> list[tuple[str, int, Protocol]]:
    """(path, port, protocol) of each route of a definition to an HTTP port."""
    protocols = {p.port: p.protocol or "http" for p in definition.ports or []}
    out: list[tuple[str, int, Protocol]] = []
    for route in definition.routes or []:
        protocol = protocols.get(route.port)
        if route.path and route.port and protocol == "http":
            out.append((route.path, route.port, "http"))
        elif route.path and route.port and protocol == "http2":
            out.append((route.path, route.port, "http2"))
    return out


Located = tuple[str, str, str, DeploymentDefinition]  # (id, address, region, definition)


def routes_of(
    host: str,
    service_id: str,
    active: DeploymentDefinition,
    instances: Iterable[Located],
    asleep: Iterable[tuple[Located, str]] = (),
) -> list[EdgeRoute]:
    """The edge's routes for one service: those of its active deployment, each served by the
    healthy `instances` whose own deployment has the same route, so that during a rollout
    the old and the new serve side by side. `asleep`: its sleeping instances, each with the
    Unix socket that wakes it."""
    routes = list(dict.fromkeys(public_routes(active)))
    served = _by_route(routes, ((i, "") for i in instances))
    sleeping = _by_route(routes, asleep)
    return [
        EdgeRoute(
            host=host,
            path=path,
            service_id=service_id,
            port=port,
            protocol=protocol,
            regions=tuple(active.regions or ()),
            servers=served[path, port, protocol],
            asleep=sleeping[path, port, protocol],
        )
        for path, port, protocol in routes
    ]


def _by_route(
    routes: list[tuple[str, int, Protocol]], instances: Iterable[tuple[Located, str]]
) -> dict[tuple[str, int, Protocol], tuple[EdgeServer, ...]]:
    """Each route's servers: the instances whose deployment has that route too."""
    found: dict[tuple[str, int, Protocol], list[EdgeServer]] = {r: [] for r in routes}
    for (inst_id, address, region, definition), waker in instances:
        for route in public_routes(definition):
            if route in found:
                server = EdgeServer(
                    id=inst_id, address=address, port=route[1], region=region, waker=waker
                )
                found[route].append(server)
    return {r: tuple(sorted(servers, key=lambda s: s.id)) for r, servers in found.items()}


def tcp_routes_of(
    service_id: str,
    active: DeploymentDefinition,
    instances: Iterable[Located],
    public_ports: dict[tuple[str, int], int],
) -> list[EdgeTcpRoute]:
    """The edge's TCP routes for one service: a public port for each proxy port of its active
    deployment, served by the healthy `instances` whose deployment exposes that port."""
    out = []
    for port in sorted({pp.port for pp in active.proxy_ports or [] if pp.port}):
        public = public_ports.get((service_id, port))
        if public is None:
            continue
        servers = [
            EdgeServer(id=inst_id, address=address, port=port, region=region)
            for inst_id, address, region, definition in instances
            if port in {p.port for p in definition.ports or []}
        ]
        ordered = tuple(sorted(servers, key=lambda s: s.id))
        out.append(EdgeTcpRoute(public_port=public, service_id=service_id, port=port,
                                servers=ordered))  # fmt: skip
    return out


def mesh_routes_of(
    service_id: str,
    active: DeploymentDefinition,
    instances: Iterable[Located],
    addresses: dict[str, str],
) -> list[EdgeTcpRoute]:
    """The mesh listeners of one service: each of its active deployment's ports on each of
    its mesh addresses (scope -> address: all regions, or one), served by the healthy
    `instances` whose deployment exposes the port (in the address's region)."""
    out = []
    for port in sorted({p.port for p in active.ports or [] if p.port}):
        for scope, address in sorted(addresses.items()):
            servers = [
                EdgeServer(id=inst_id, address=addr, port=port, region=region)
                for inst_id, addr, region, definition in instances
                if port in {p.port for p in definition.ports or []}
                and scope in (ALL_REGIONS, region)
            ]
            ordered = tuple(sorted(servers, key=lambda s: s.id))
            out.append(EdgeTcpRoute(public_port=port, service_id=service_id, port=port,
                                    address=address, servers=ordered))  # fmt: skip
    return out


Layout = tuple[tuple[str, str, str, str], ...]


def layout(table: EdgeTable) -> Layout:
    """What HAProxy's configuration must be reloaded for when it changes: the backends and
    the routes to them, the TCP listeners (servers come and go through the runtime API)."""
    http = {
        (r.backend(region), r.host, r.path, str(r.protocol))
        for r in table.routes
        for region in r.pools()
    }
    tcp = {(t.backend, t.address, str(t.public_port), "tcp") for t in table.tcp}
    return tuple(sorted(http | tcp))


def choices(table: EdgeTable, clients: Iterable[str]) -> dict[tuple[str, str, str], str]:
    """(client's region, host, path) -> the backend such a request goes to, for every route
    and every region a client may be in."""
    return {
        (client, r.host, r.path): r.pool_for(client) for r in table.routes for client in clients
    }


@dataclass(frozen=True)
class ServerChanges:
    added: list[tuple[str, EdgeServer]]  # (backend, server)
    removed: list[tuple[str, str]]  # (backend, server id)
    moved: list[tuple[str, EdgeServer]]  # the same instance at another address or port


def server_changes(old: EdgeTable, new: EdgeTable) -> ServerChanges:
    """How the servers of each backend changed between two tables of the same layout."""
    before, after = _servers(old), _servers(new)
    return ServerChanges(
        added=sorted(((b, s) for (b, i), s in after.items() if (b, i) not in before), key=_order),
        removed=sorted(key for key in before if key not in after),
        moved=sorted(
            ((b, s) for (b, i), s in after.items() if (b, i) in before and before[b, i] != s),
            key=_order,
        ),
    )


def _servers(table: EdgeTable) -> dict[tuple[str, str], EdgeServer]:
    """(backend, instance id) -> the server, for every backend of the table."""
    found = {(r.backend(s.region), s.id): s for r in table.routes for s in r.servers}
    found.update({(t.backend, s.id): s for t in table.tcp for s in t.servers})
    return found


def _order(item: tuple[str, EdgeServer]) -> tuple[str, str]:
    return item[0], item[1].id
