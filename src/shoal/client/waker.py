"""The edge's side of a node agent's thaw socket (agent/waker.py: the protocol is there)."""

from __future__ import annotations

import asyncio
import contextlib

TIMEOUT_S = 5.0
AWAKE, UNKNOWN, REFUSED = b"awake\n", b"unknown\n", b"refused\n"


async def thaw(socket: str, instance_id: str) -> bool:
    """Ask the agent listening on `socket` to thaw an instance: whether it is awake."""
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(socket), TIMEOUT_S)
    try:
        writer.write(f"thaw {instance_id}\n".encode())
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), TIMEOUT_S) == AWAKE
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
