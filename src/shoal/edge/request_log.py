"""The edge's request counter: HAProxy logs each request it proxied (LOG_FORMAT) to a Unix
datagram socket; this tallies them per backend and server, for the edge to send on as
metrics every second.

A datagram HAProxy could not send (the socket's queue full) is a request not counted: the
counts are as exact as the host keeps up, which it does at the edge's full speed here
(bench/bench_edge.py runs with it on).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from pathlib import Path

from shoal.core.metrics import Tally

log = logging.getLogger(__name__)
# Backend (a route's pool), server (an instance id, "<NOSRV>" when none answered), status,
# ms to the response's headers (-1: none came), ms in flight.
LOG_FORMAT = "%b %s %ST %Tr %Ta"
NO_SERVER = b"<NOSRV>"


class RequestLog(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.tallies: dict[tuple[str, str | None], Tally] = {}

    def datagram_received(self, data: bytes, addr: object) -> None:
        try:
            backend, server, status, response, active = data.split()
            key = (backend.decode(), None if server == NO_SERVER else server.decode())
            tally = self.tallies.get(key)
            if tally is None:
                tally = self.tallies[key] = Tally()
            tally.add(int(status), float(response), float(active))
        except ValueError:
            log.debug("request log: cannot read %r", data[:200])

    def take(self) -> dict[tuple[str, str | None], Tally]:
        """What was counted since the last take."""
        taken, self.tallies = self.tallies, {}
        return taken


async def listen(path: Path, group: int | None) -> tuple[asyncio.DatagramTransport, RequestLog]:
    """Bind the log socket at `path`, writable by `group` (HAProxy's, once it dropped root)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    if group is not None:
        for where, mode in ((path, 0o620), (path.parent, 0o750)):
            os.chown(where, -1, group)
            where.chmod(mode)
    transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        RequestLog, sock=sock
    )
    return transport, protocol
