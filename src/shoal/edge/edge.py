"""The edge: follows the control plane's route table and keeps HAProxy, its data plane, in
step with it.

HAProxy runs as this process's child (master-worker mode). A change of servers only (an
instance became healthy, or left) goes through HAProxy's runtime API, with no reload: a new
server is added and enabled; a leaving one is drained (it takes no new request, its requests
in flight finish) and deleted once idle, or after DRAIN_S. A change of routes or backends
rewrites the configuration and reloads HAProxy seamlessly: the new worker takes the listening
socket, the old one finishes what it was serving.

Which region's pool serves a client is an entry of the route map; when a region's pool
empties or fills, the entries change through the runtime API too (`set map`).

Every second, what each instance answered goes to the control plane as request metrics
(metrics.py).
"""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from shoal.client.errors import ApiError, ApiUnreachable
from shoal.client.node import NodeClient
from shoal.core.catalog import KNOWN_REGIONS
from shoal.core.edge import EdgeServer, EdgeTable, choices, layout, server_changes
from shoal.core.mesh import MESH_POOL
from shoal.edge import haproxy, request_log
from shoal.edge.activator import Activator, is_agent_socket
from shoal.edge.haproxy_config import (
    NO_INSTANCE,
    Backend,
    ClientRegion,
    map_key,
    render_edge,
    route_map,
    server_line,
    sleeper,
)
from shoal.edge.metrics import report_requests
from shoal.edge.runtime_api import Refused, RuntimeApi
from shoal.supervise import Supervised

log = logging.getLogger(__name__)
WAIT_S = 30.0  # long poll of the route table
RETRY_S = 1.0
DRAIN_S = 60.0  # at most this long for a leaving instance's requests to finish
REAP_S = 0.5  # how often draining servers are looked at
RELOAD_S = 10.0  # for a reloaded HAProxy to take over


class Edge:
    def __init__(
        self,
        client: NodeClient,
        binary: str,
        run_dir: Path,
        host: str,
        port: int,
        region: str,
        region_header: str,
        sources: str = "",
        user: str | None = None,
    ) -> None:
        """`region`: where clients are when they do not say and their address is not in
        `sources` (a map from haproxy_config.sources_map)."""
        self._client = client
        self._binary = binary
        self._run_dir = run_dir
        self._host, self._port, self._user = host, port, user
        self._config = run_dir / "edge.cfg"
        self._map = run_dir / "routes.map"
        self._sleepers_map = run_dir / "sleepers.map"
        self._sleepers: dict[str, str] = {}  # backend -> its sleeper, as HAProxy has them
        self._request_log = run_dir / "requests.sock"
        self._activator_socket = run_dir / "activator.sock"
        self._pools: dict[str, tuple[EdgeServer, ...]] = {}  # backend -> servers applied
        self._asleep: dict[str, tuple[EdgeServer, ...]] = {}  # backend -> its sleeping instances
        self._activator = Activator(
            client,
            lambda backend: self._pools.get(backend, ()),
            lambda backend: self._asleep.get(backend, ()),
            self._activator_socket,
            NO_INSTANCE,
        )
        self._regions = ClientRegion(
            tuple(KNOWN_REGIONS), region, region_header, str(run_dir / "sources.map")
        )
        _replace(run_dir / "sources.map", sources)
        self._api = RuntimeApi(run_dir / "edge.sock")
        self._applied = EdgeTable()
        self._draining: dict[tuple[str, str], float] = {}  # (backend, server) -> deadline
        # The master's command line: a `reload` sent there is taken once the master can (a
        # SIGUSR2 sent while it starts is lost, or kills it).
        self._master = RuntimeApi(run_dir / "master.sock")
        self._haproxy = Supervised(
            "HAProxy", haproxy.command(binary, self._config, self._master.socket)
        )
        self._lock = asyncio.Lock()  # one change of HAProxy at a time
        self._mesh = False  # whether this host takes the private mesh's addresses

    async def run(self) -> None:
        self._mesh = await asyncio.to_thread(_mesh_addresses_local)
        self._write(self._applied, {})
        await asyncio.to_thread(haproxy.check, self._binary, self._config)
        group = grp.getgrnam(self._user).gr_gid if self._user else None
        transport, requests = await request_log.listen(self._request_log, group)
        activator = asyncio.create_task(self._activator.serve())
        while not self._activator_socket.exists() and not activator.done():
            await asyncio.sleep(0.01)  # HAProxy's `wake` server must be there first
        tasks = [
            activator,
            asyncio.create_task(self._haproxy.run()),
            asyncio.create_task(self._reap()),
            asyncio.create_task(
                report_requests(self._api, self._client, requests, lambda: self._applied)
            ),
        ]
        try:
            await self._follow()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            transport.close()

    async def _follow(self) -> None:
        etag = ""
        while True:
            try:
                table, etag = await self._client.edge_routes(etag, WAIT_S)
            except (ApiUnreachable, ApiError) as e:
                log.warning("route table: %s", e)
                await asyncio.sleep(RETRY_S)
                continue
            if not self._mesh:  # its addresses are not this host's: HAProxy cannot listen
                table = table.model_copy(update={"tcp": [t for t in table.tcp if not t.address]})
            if table != self._applied:
                await self.apply(table)

    async def apply(self, table: EdgeTable) -> None:
        async with self._lock:
            sleepers = wakeable(table)
            if layout(table) != layout(self._applied):
                await self._reload(table, sleepers)
                return
            try:
                await self._change_servers(table, sleepers)
            except (Refused, OSError) as e:
                log.warning("runtime API: %s; reloading instead", e)
                await self._reload(table, sleepers)
                return
            self._write(table, sleepers)  # what a restarted HAProxy starts from
            self._applied = table

    async def _change_servers(self, table: EdgeTable, sleepers: dict[str, str]) -> None:
        http2 = {
            r.backend(region): r.protocol == "http2" for r in table.routes for region in r.pools()
        }
        changes = server_changes(self._applied, table)
        for backend, s in changes.added:
            server = f"{backend}/{s.id}"
            if self._draining.pop((backend, s.id), None) is not None:
                # Back before it was deleted, maybe at another address.
                await self._api.change(f"set server {server} addr {s.address} port {s.port}")
                await self._api.change(f"set server {server} state ready")
                continue
            line = server_line(s.id, s.address, s.port, http2.get(backend, False))
            await self._api.change(f"add server {backend}/{line}")
            await self._api.change(f"enable server {backend}/{s.id}")
        for backend, s in changes.moved:
            await self._api.change(f"set server {backend}/{s.id} addr {s.address} port {s.port}")
        before = choices(self._applied, self._regions.regions)
        for (client, host, path), backend in choices(table, self._regions.regions).items():
            if before.get((client, host, path)) != backend:
                key = map_key(client, host, path)
                await self._api.change(f"set map {self._map} {key} {backend}")
        for backend, entry in sleepers.items():
            if backend not in self._sleepers:
                await self._api.change(f"add map {self._sleepers_map} {backend} {entry}")
            elif self._sleepers[backend] != entry:
                await self._api.change(f"set map {self._sleepers_map} {backend} {entry}")
        for backend in self._sleepers.keys() - sleepers.keys():
            await self._api.change(f"del map {self._sleepers_map} {backend}")
        self._sleepers = sleepers
        for backend, server_id in changes.removed:
            await self._api.change(f"set server {backend}/{server_id} state drain")
            self._draining[backend, server_id] = time.monotonic() + DRAIN_S

    async def _reap(self) -> None:
        """Delete drained servers once they serve nothing (or their time is up)."""
        while True:
            await asyncio.sleep(REAP_S)
            async with self._lock:
                if not self._draining:
                    continue
                try:  # one look at every server's requests in flight for all of them
                    in_flight = await self._api.in_flight()
                except OSError as e:
                    log.info("drained servers: %s", e)
                    continue
                for (backend, server), deadline in list(self._draining.items()):
                    busy = in_flight.get((backend, server), 0)
                    try:
                        if busy and time.monotonic() < deadline:
                            continue
                        await self._api.change(f"set server {backend}/{server} state maint")
                        if busy:
                            await self._api.change(f"shutdown sessions server {backend}/{server}")
                        await self._api.change(f"del server {backend}/{server}")
                    except (Refused, OSError) as e:
                        log.info("drained server %s/%s: %s", backend, server, e)
                        continue
                    del self._draining[backend, server]

    async def _reload(self, table: EdgeTable, sleepers: dict[str, str]) -> None:
        kept = self._sleepers
        self._write(table, sleepers)
        try:
            await asyncio.to_thread(haproxy.check, self._binary, self._config)
        except ValueError as e:  # a table HAProxy cannot take: keep serving the last one
            log.error("HAProxy refuses the new configuration: %s", e)
            self._write(self._applied, kept)
            return
        self._applied = table
        self._draining.clear()  # the reloaded configuration holds only the current servers
        before = await self._api.pid()
        if not await self._ask_master("reload"):
            log.warning("HAProxy's master did not take the reload: it restarts on the new one")
            self._haproxy.signal(signal.SIGTERM)
            return
        now = await self._answering(before)
        log.info("HAProxy reloaded (worker %s, was %s): %d routes", now, before, len(table.routes))

    async def _ask_master(self, command: str) -> bool:
        """Send `command` to HAProxy's master, waiting up to RELOAD_S for it to listen."""
        deadline = time.monotonic() + RELOAD_S
        while time.monotonic() < deadline:
            try:
                await self._master.command(command)
                return True
            except (FileNotFoundError, ConnectionRefusedError):  # not listening yet
                await asyncio.sleep(0.05)
        return False

    async def _answering(self, other_than: int | None) -> int | None:
        """The pid of the HAProxy worker answering, once it is not `other_than` (None after
        RELOAD_S without one)."""
        deadline = time.monotonic() + RELOAD_S
        while time.monotonic() < deadline:
            pid = await self._api.pid()
            if pid is not None and pid != other_than:
                return pid
            await asyncio.sleep(0.05)
        return None

    def _write(self, table: EdgeTable, sleepers: dict[str, str]) -> None:
        """The configuration and the maps for `table`, each replaced at once."""
        backends: dict[str, tuple[Backend, list[str]]] = {}
        for r in table.routes:
            http2 = r.protocol == "http2"
            for region, servers in r.pools().items():
                lines = [server_line(s.id, s.address, s.port, http2) for s in servers]
                name = r.backend(region)
                backends[name] = (Backend(name, r.path, http2, r.service_id), lines)
        self._pools = {
            r.backend(region): servers
            for r in table.routes
            for region, servers in r.pools().items()
        }
        self._asleep = {
            r.backend(region): r.asleep_near(region) for r in table.routes for region in r.pools()
        }
        self._activator.table_applied()
        tcp = [
            (
                t.backend,
                t.address,
                t.public_port,
                [server_line(s.id, s.address, s.port, False) for s in t.servers],
            )
            for t in table.tcp
        ]
        entries = [
            (map_key(client, host, path), backend)
            for (client, host, path), backend in choices(table, self._regions.regions).items()
        ]
        _replace(self._map, route_map(entries))
        _replace(self._sleepers_map, route_map(list(sleepers.items())))
        self._sleepers = sleepers
        config = render_edge(
            self._host,
            self._port,
            [backends[name] for name in sorted(backends)],
            str(self._map),
            self._regions,
            str(self._api.socket),
            str(self._request_log),
            str(self._activator_socket),
            str(self._sleepers_map),
            tcp,
            self._user,
        )
        _replace(self._config, config)


def wakeable(table: EdgeTable) -> dict[str, str]:
    """The backends HAProxy wakes an instance for itself (haproxy_config.render_edge): those
    with no server whose closest sleeping instance that this machine's agent can wake is
    there to be woken -> that instance, as the map of sleepers has it."""
    found = {}
    for r in table.routes:
        for region, servers in r.pools().items():
            near = next((s for s in r.asleep_near(region) if is_agent_socket(s.waker)), None)
            if servers or near is None:
                continue
            if entry := sleeper(near.waker, near.id, near.address, near.port):
                found[r.backend(region)] = entry
    return found


def _mesh_addresses_local() -> bool:
    """Make every address of the private mesh this host's own (one `local` route), so that
    HAProxy listens on them; False, and said, where that takes root that we do not have."""
    if os.geteuid() != 0:
        log.warning("not root: no private mesh (services do not reach each other by name)")
        return False
    done = subprocess.run(
        ["ip", "route", "replace", "local", str(MESH_POOL), "dev", "lo"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        log.warning("no private mesh: ip route: %s", done.stderr.strip())
    return done.returncode == 0


def _replace(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".new")
    tmp.write_text(text)
    os.replace(tmp, path)
