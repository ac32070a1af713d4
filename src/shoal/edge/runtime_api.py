"""HAProxy's runtime API, over its stats socket: one command per connection."""

from __future__ import annotations

import asyncio
from pathlib import Path

from shoal.edge import stats

# What HAProxy answers to a change that worked (nothing, for most).
DONE = ("", "New server registered.", "Server deleted.")


class Refused(Exception):
    """HAProxy refused a command; says why in its words."""


class RuntimeApi:
    def __init__(self, socket: Path) -> None:
        self.socket = socket

    async def command(self, line: str) -> str:
        """Run one command; HAProxy's answer, as text."""
        reader, writer = await asyncio.open_unix_connection(str(self.socket))
        try:
            writer.write(line.encode() + b"\n")
            await writer.drain()
            return (await asyncio.wait_for(reader.read(), 10)).decode(errors="replace")
        finally:
            writer.close()

    async def change(self, line: str) -> None:
        """Run a command that changes something; Refused with HAProxy's words unless it
        answered that it was done."""
        answer = (await self.command(line)).strip()
        if answer not in DONE:
            raise Refused(f"{line}: {answer}")

    async def pid(self) -> int | None:
        """The process answering (it changes when a reload has taken over)."""
        try:
            info = await self.command("show info")
        except OSError:
            return None
        for row in info.splitlines():
            if row.startswith("Pid:"):
                return int(row.split(":", 1)[1])
        return None

    async def in_flight(self) -> dict[tuple[str, str], int]:
        """(backend, server) -> the requests it still serves (current sessions, from `show
        stat` of the servers alone)."""
        found = stats.parse(await self.command("show stat -1 4 -1"))
        return {key: counters.current for key, counters in found.items()}
