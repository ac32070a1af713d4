"""The activator: the `wake` server of every route's backend, so it gets the requests no
instance can take — those to a sleeping service. It asks the control plane to wake the
service (once, however many requests wait), holds the requests (at most MAX_HELD a route,
each up to HOLD_S) until the edge's table has an instance for the route, then proxies each
to one. A request to a service that is not asleep (paused, failing) gets the 503 at once.

A sleeping service keeps its instances on their nodes (frozen in light sleep, stopped in deep
sleep). When one of them sleeps on this machine, HAProxy itself asks the node's agent to wake
it and sends the request straight there (wake.lua): the activator sees only what that could
not do. It asks the agents of this machine to wake one (agent/waker.py) and proxies to it as
soon as it answers (a thaw; or its command started again and healthy), and tells the control
plane once that first answer is on its way; the woken instance takes the route's requests
until the edge's table has it serving again. An instance whose agent is on another machine
is woken through the control plane.

HAProxy tells it the route in a header (ROUTE_HEADER: "<backend> <service id>"), and has
already taken the route's prefix off the path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import stat
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import uvicorn
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from shoal.client.errors import ApiError, ApiUnreachable
from shoal.client.node import NodeClient
from shoal.client.waker import wake
from shoal.core.edge import EdgeServer
from shoal.serving import Server

log = logging.getLogger(__name__)
ROUTE_HEADER = "X-Shoal-Route"
HOLD_S = 30.0
MAX_HELD = 1000
WOKEN_S = 10.0  # how long a woken instance takes a route's requests before the table has it
# Not forwarded: they are about one connection, not the request.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
     "upgrade", ROUTE_HEADER.lower()}
)  # fmt: skip


class Activator:
    def __init__(
        self,
        client: NodeClient,
        servers: Callable[[str], tuple[EdgeServer, ...]],
        asleep: Callable[[str], tuple[EdgeServer, ...]],
        socket: Path,
        unavailable: str,
    ) -> None:
        """`servers`: a backend's servers in the table the edge applied; `asleep`: the
        sleeping instances of its route, the closest first; `unavailable`: the body of a
        503."""
        self._client, self._servers, self._asleep = client, servers, asleep
        self._socket, self._unavailable = socket, unavailable
        self._wakes: dict[str, asyncio.Task[bool]] = {}
        self._rousing: dict[str, asyncio.Task[EdgeServer | None]] = {}  # backend ->
        self._woken: dict[str, tuple[EdgeServer, float]] = {}  # backend -> (server, until)
        self._untold: set[str] = set()  # services woken the control plane is not told of yet
        self._held: dict[str, int] = {}
        self._applied = asyncio.Event()  # set (and replaced) at each table the edge applies
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=5.0))

    async def serve(self) -> None:
        config = uvicorn.Config(
            self,
            uds=str(self._socket),
            log_level="warning",
            lifespan="off",
            access_log=False,
            server_header=False,  # the instance's own Server and Date headers pass through
            date_header=False,
        )
        try:
            await Server(config).serve()
        finally:
            await self._http.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        response = await self._answer(Request(scope, receive))
        await response(scope, receive, send)

    async def _answer(self, request: Request) -> Response:
        backend, _, service_id = request.headers.get(ROUTE_HEADER, "").partition(" ")
        if not backend or not service_id:
            return self._refuse()
        if self._held.get(backend, 0) >= MAX_HELD:
            return self._refuse()
        self._held[backend] = self._held.get(backend, 0) + 1
        try:
            server = await self._awake(backend, service_id)
        finally:
            self._held[backend] -= 1
            if not self._held[backend]:
                del self._held[backend]
        if server is None:
            return self._refuse()
        try:
            return await self._forward(request, server)
        finally:
            if service_id in self._untold:  # woken here: now the control plane may hear of it
                self._untold.discard(service_id)
                self._waking(service_id)

    async def _awake(self, backend: str, service_id: str) -> EdgeServer | None:
        """A server of the route once there is one (waking its service), or None."""
        if servers := self._servers(backend):
            self._woken.pop(backend, None)  # the table has it (or others) serving again
            return random.choice(servers)
        woken, until = self._woken.get(backend, (None, 0.0))
        if woken is not None and time.monotonic() < until:
            return woken
        if asleep := self._asleep(backend):
            rousing = self._rousing.get(backend)
            if rousing is None or rousing.done():
                rousing = self._rousing[backend] = asyncio.create_task(
                    self._rouse(backend, service_id, asleep)
                )
            server = await rousing
            self._rousing.pop(backend, None)
            if server is not None:
                return server
        if not await self._waking(service_id):
            return None
        deadline = time.monotonic() + HOLD_S
        while (left := deadline - time.monotonic()) > 0:
            if servers := self._servers(backend):
                return random.choice(servers)  # (the woken instances share the held requests)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._applied.wait(), left)
        return None

    def table_applied(self) -> None:
        """The edge applied a new route table: the held requests look for their servers."""
        self._applied.set()
        self._applied = asyncio.Event()

    def _waking(self, service_id: str) -> asyncio.Task[bool]:
        """The control plane's wake of the service: one at a time, however many wait."""
        wake = self._wakes.get(service_id)
        if wake is None or wake.done():
            wake = self._wakes[service_id] = asyncio.create_task(self._wake(service_id))
        return wake

    async def _rouse(
        self, backend: str, service_id: str, asleep: tuple[EdgeServer, ...]
    ) -> EdgeServer | None:
        """Wake the first sleeping instance whose agent is on this machine and can, within
        HOLD_S; None when none could. The control plane is told once the first request has
        its answer (it wakes the rest): the work that sets off would slow that answer down."""
        deadline = time.monotonic() + HOLD_S
        for server in asleep:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if not is_agent_socket(server.waker):
                continue
            try:
                awake = await wake(server.waker, server.id, left)
            except (OSError, TimeoutError) as e:
                log.info("waking %s: %s", server.id, e)
                continue
            if awake:
                self._woken[backend] = (server, time.monotonic() + WOKEN_S)
                self._untold.add(service_id)
                return server
        return None

    async def _wake(self, service_id: str) -> bool:
        try:
            return await self._client.wake(service_id)
        except (ApiError, ApiUnreachable) as e:
            log.warning("waking %s: %s", service_id, e)
            return False

    async def _forward(self, request: Request, server: EdgeServer) -> Response:
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        url = f"http://{server.address}:{server.port}{request.url.path}"
        if request.url.query:
            url += f"?{request.url.query}"
        upstream = self._http.build_request(
            request.method, url, headers=headers, content=await request.body()
        )
        try:
            answer = await self._http.send(upstream, stream=True)
        except httpx.HTTPError as e:
            log.info("held request to %s: %s", server.id, e)
            return self._refuse()
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
        kept.pop("content-length", None)  # streamed: the length is the body's own
        return StreamingResponse(
            _chunks(answer), answer.status_code, kept, background=BackgroundTask(answer.aclose)
        )

    def _refuse(self) -> Response:
        return PlainTextResponse(self._unavailable, status_code=503)


def is_agent_socket(path: str) -> bool:
    """Whether `path` is a node agent's wake socket on this machine, as `shoal agent` makes
    it (agent/waker.py): a socket named waker.sock in a shoal-agent-* directory, owned by
    this process's user. A node says where its socket is: nothing else is connected to."""
    if not path:
        return False
    where = Path(path)
    if where.name != "waker.sock" or not where.parent.name.startswith("shoal-agent-"):
        return False
    try:
        found = where.lstat()
    except OSError:  # not there, or not ours to look at: another machine's, say
        return False
    return stat.S_ISSOCK(found.st_mode) and found.st_uid == os.geteuid()


async def _chunks(answer: httpx.Response) -> AsyncIterator[bytes]:
    async for chunk in answer.aiter_raw():
        yield chunk
