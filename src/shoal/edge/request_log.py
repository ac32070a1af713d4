"""Response times at the edge: HAProxy logs requests (LOG_FORMAT) to a Unix datagram
socket — every one while the edge takes up to LOG_ALL_RATE a second, one in LOG_SAMPLE
beyond — and this keeps the times per backend and server until the edge takes them for its
next metrics window. (The counts come from HAProxy's counters, stats.py: a log line for
every request would cost the data plane a fifth of its speed, and reading one in ten still
took this process a few percent of the machine's CPU at 40,000 requests a second.)
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from pathlib import Path

log = logging.getLogger(__name__)
# Backend (a route's pool), server (an instance id, "<NOSRV>" when none answered), ms to the
# response's headers (-1: none came).
LOG_FORMAT = "%b %s %Tr"
LOG_ALL_RATE = 500  # requests a second the edge takes before it samples their log
LOG_SAMPLE = 100
NO_SERVER = b"<NOSRV>"


class RequestLog(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.times: dict[tuple[str, str], list[float]] = {}

    def datagram_received(self, data: bytes, addr: object) -> None:
        try:
            backend, server, response = data.split()
            ms = float(response)
        except ValueError:
            log.debug("request log: cannot read %r", data[:200])
            return
        if server != NO_SERVER and ms >= 0:
            self.times.setdefault((backend.decode(), server.decode()), []).append(ms)

    def take(self) -> dict[tuple[str, str], list[float]]:
        """What was logged since the last take."""
        taken, self.times = self.times, {}
        return taken


async def listen(path: Path, group: int | None) -> tuple[asyncio.DatagramTransport, RequestLog]:
    """Bind the log socket at `path`, writable by `group` (HAProxy's, once it dropped root)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    if group is not None:
        for where, mode in ((path, 0o620), (path.parent, 0o750)):
            os.chown(where, -1, group)
            where.chmod(mode)
    transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        RequestLog, sock=sock
    )
    return transport, protocol
