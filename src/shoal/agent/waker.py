"""The light sleep's fast path: an edge on the same machine asks the agent, on a Unix socket,
to thaw a frozen instance, and gets the answer once its processes run again — without the
round trip through the control plane, which hears of it from the instance's report (and the
edge tells it too, so that the service counts as awake).

`POST /v1/thaw/{instance_id}`: 200 once thawed (or already awake), 404 for an instance the
node does not run. The socket is in a directory only the agent's user can enter.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from shoal.agent.instance import InstanceTask
from shoal.serving import Server


class Waker:
    def __init__(self, socket: Path, tasks: Callable[[], Mapping[str, InstanceTask]]) -> None:
        self.socket = socket
        self._tasks = tasks
        self._app = Starlette(
            routes=[Route("/v1/thaw/{instance_id}", self._thaw, methods=["POST"])]
        )

    async def serve(self) -> None:
        os.chmod(self.socket.parent, 0o700)
        config = uvicorn.Config(
            self._app, uds=str(self.socket), log_level="warning", lifespan="off", access_log=False
        )
        await Server(config).serve()

    async def _thaw(self, request: Request) -> PlainTextResponse:
        task = self._tasks().get(request.path_params["instance_id"])
        if task is None:
            return PlainTextResponse("no such instance on this node\n", status_code=404)
        if not await task.wake(urgent=False):
            return PlainTextResponse("the instance cannot be woken\n", status_code=409)
        return PlainTextResponse("awake\n")
