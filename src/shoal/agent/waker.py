"""The fast path of a wake: an edge on the same machine asks the agent, on a Unix socket, to
wake a sleeping instance, and gets the answer once it serves again — without the round trip
through the control plane, which hears of it from the instance's report (and the edge tells
it too, so that the service counts as awake). A light sleeper is thawed; a deep sleeper's
command starts again in the sandbox it kept, and the answer waits for its health checks.

One line each way on a connection: `wake <instance id>` is answered `awake` once it serves
(or already did), `unknown` for an instance the node does not run, `refused` for one that
cannot be woken (stopping, or failing to start). A line protocol rather than HTTP: the wake
is on the first request's path, and an HTTP client and server cost 2-3 ms there, a line
0.1-0.5 ms. The edge's HAProxy asks itself (edge/wake.lua), the edge's activator when that
could not. The socket is in a directory only the agent's user can enter, and the group it is
given (HAProxy's, which drops root).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from shoal.agent.instance import InstanceTask
from shoal.client.waker import AWAKE, REFUSED, TIMEOUT_S, UNKNOWN


class Waker:
    def __init__(
        self,
        socket: Path,
        tasks: Callable[[], Mapping[str, InstanceTask]],
        group: int | None = None,
    ) -> None:
        self.socket = socket
        self._tasks = tasks
        self._group = group

    async def serve(self) -> None:
        os.chmod(self.socket.parent, 0o700)
        server = await asyncio.start_unix_server(self._serve, str(self.socket))
        if self._group is not None:
            for where, mode in ((self.socket, 0o660), (self.socket.parent, 0o710)):
                os.chown(where, -1, self._group)
                os.chmod(where, mode)
        async with server:
            await server.serve_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), TIMEOUT_S)
            verb, _, instance_id = line.decode(errors="replace").strip().partition(" ")
            writer.write(await self._answer(verb, instance_id))
            await writer.drain()
        except (OSError, TimeoutError):  # the edge went away, or said nothing
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _answer(self, verb: str, instance_id: str) -> bytes:
        task = self._tasks().get(instance_id)
        if verb != "wake" or task is None:
            return UNKNOWN
        return AWAKE if await task.wake(urgent=False) else REFUSED
