"""The activator: the backup server of every route's backend, so it gets the requests no
instance can take — those to a sleeping service. It asks the control plane to wake the
service (once, however many requests wait), holds the requests (at most MAX_HELD a route,
each up to HOLD_S) until the edge's table has an instance for the route, then proxies each
to one. A request to a service that is not asleep (paused, failing) gets the 503 at once.

HAProxy tells it the route in a header (ROUTE_HEADER: "<backend> <service id>"), and has
already taken the route's prefix off the path.
"""

from __future__ import annotations

import asyncio
import logging
import random
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
from shoal.core.edge import EdgeServer
from shoal.serving import Server

log = logging.getLogger(__name__)
ROUTE_HEADER = "X-Shoal-Route"
HOLD_S = 30.0
MAX_HELD = 1000
POLL_S = 0.01
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
        socket: Path,
        unavailable: str,
    ) -> None:
        """`servers`: a backend's servers in the table the edge applied; `unavailable`: the
        body of a 503."""
        self._client, self._servers, self._socket = client, servers, socket
        self._unavailable = unavailable
        self._wakes: dict[str, asyncio.Task[bool]] = {}
        self._held: dict[str, int] = {}
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=5.0))

    async def serve(self) -> None:
        config = uvicorn.Config(
            self, uds=str(self._socket), log_level="warning", lifespan="off", access_log=False
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
        return await self._forward(request, server)

    async def _awake(self, backend: str, service_id: str) -> EdgeServer | None:
        """A server of the route once there is one (waking its service), or None."""
        if servers := self._servers(backend):
            return random.choice(servers)
        wake = self._wakes.get(service_id)
        if wake is None or wake.done():
            wake = self._wakes[service_id] = asyncio.create_task(self._wake(service_id))
        if not await wake:
            return None
        deadline = time.monotonic() + HOLD_S
        while time.monotonic() < deadline:
            if servers := self._servers(backend):
                return random.choice(servers)  # (the woken instances share the held requests)
            await asyncio.sleep(POLL_S)
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


async def _chunks(answer: httpx.Response) -> AsyncIterator[bytes]:
    async for chunk in answer.aiter_raw():
        yield chunk
