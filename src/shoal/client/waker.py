"""The edge's side of a node agent's wake socket (agent/waker.py: the protocol is there)."""

from __future__ import annotations

import asyncio
import contextlib

TIMEOUT_S = 5.0  # to connect, and for the request's line
WAKE_S = 30.0  # the longest a wake may take: a deep sleeper's app starting, then healthy
AWAKE, UNKNOWN, REFUSED = b"awake\n", b"unknown\n", b"refused\n"


async def wake(socket: str, instance_id: str, wait: float = WAKE_S) -> bool:
    """Ask the agent listening on `socket` to wake an instance: whether it serves again
    within `wait` seconds."""
    connect = asyncio.open_unix_connection(socket)
    reader, writer = await asyncio.wait_for(connect, min(TIMEOUT_S, wait))
    try:
        writer.write(f"wake {instance_id}\n".encode())
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), wait) == AWAKE
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
