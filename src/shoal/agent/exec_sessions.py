"""Users' commands run in this node's instances (`shoal instances exec`, Koyeb's exec).

A session comes with the node's assignments; the agent connects back to the API for it (the
API never connects to nodes), starts the command in the instance's sandbox and relays: input
and terminal sizes in, output out, then the exit code. All on the event loop (no thread
waits on the process): its pipes or pty are read and written non-blocking, and its exit is
watched through a pidfd.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import struct
import subprocess
import termios

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, WebSocketException

from shoal.client.node import NodeClient
from shoal.core.assignment import ExecInput, ExecOutput, ExecSession
from shoal.runtime.driver import Driver, ExecRequest, SandboxError

log = logging.getLogger(__name__)
CHUNK = 64 * 1024
DRAIN_S = 1.0  # after the command exits, how long its output may still come (background jobs)
EOT = b"\x04"  # what ends a terminal's input


class ExecSessions:
    """The sessions being served, so that one listed twice runs once."""

    def __init__(self, client: NodeClient, driver: Driver) -> None:
        self.client = client
        self.driver = driver
        self._running: dict[str, asyncio.Task[None]] = {}

    def start(self, sessions: list[ExecSession]) -> None:
        for s in sessions:
            if s.session_id not in self._running:
                self._running[s.session_id] = asyncio.create_task(self._serve(s))

    def cancel(self) -> None:
        for task in list(self._running.values()):
            task.cancel()

    async def _serve(self, s: ExecSession) -> None:
        try:
            async with self.client.exec_channel(s.session_id) as ws:
                request = ExecRequest(instance_id=s.instance_id, argv=s.command, tty=s.tty)
                try:
                    proc = await asyncio.to_thread(self.driver.exec, request)
                except (SandboxError, OSError, ValueError) as e:
                    await ws.send(
                        ExecOutput(error=f"Cannot run the command: {e}").model_dump_json()
                    )
                    return
                await _relay(ws, proc, s.tty)
        except (OSError, WebSocketException) as e:
            log.warning("exec session %s: %s", s.session_id, e)
        finally:
            self._running.pop(s.session_id, None)


async def _relay(ws: ClientConnection, proc: subprocess.Popen[bytes], tty: bool) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    pidfd = os.pidfd_open(proc.pid)  # readable once the command has exited
    pipes = [("stdout", proc.stdout)]
    if proc.stderr is not None:  # with a tty, stderr goes to stdout's pty
        pipes.append(("stderr", proc.stderr))
    for _, f in pipes:
        os.set_blocking(f.fileno(), False)
    os.set_blocking(proc.stdin.fileno(), False)  # the same file as stdout's with a tty
    readers = [asyncio.create_task(_send_output(ws, name, f.fileno())) for name, f in pipes]
    feeder = asyncio.create_task(_feed(ws, proc, tty))
    try:
        await _ready(pidfd)
        code = proc.wait()
        await asyncio.wait(readers, timeout=DRAIN_S)
        exited = ExecOutput(exit_code=code if code >= 0 else 128 - code)  # a signal: 128 + N
        with contextlib.suppress(ConnectionClosed):  # the user left: nobody to tell
            await ws.send(exited.model_dump_json())
    finally:
        os.close(pidfd)
        for task in [*readers, feeder]:
            task.cancel()
        await asyncio.gather(*readers, feeder, return_exceptions=True)
        _kill(proc)
        for end in (proc.stdin, proc.stdout, proc.stderr):
            if end is not None:
                end.close()


async def _ready(fd: int, write: bool = False) -> None:
    """Until `fd` can be read (or written) without blocking."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    watch, unwatch = (
        (loop.add_writer, loop.remove_writer) if write else (loop.add_reader, loop.remove_reader)
    )

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    watch(fd, wake)
    try:
        await ready
    finally:
        unwatch(fd)


async def _send_output(ws: ClientConnection, stream: str, fd: int) -> None:
    while True:
        await _ready(fd)
        try:
            data = os.read(fd, CHUNK)
        except BlockingIOError:
            continue
        except OSError:  # EIO: a pty whose other end every process has closed
            return
        if not data:
            return
        await ws.send(ExecOutput.model_validate({stream: data}).model_dump_json())


async def _feed(ws: ClientConnection, proc: subprocess.Popen[bytes], tty: bool) -> None:
    """The user's input and terminal sizes to the command; the user gone, the command goes."""
    stdin = proc.stdin
    assert stdin is not None
    fd = stdin.fileno()
    try:
        async for message in ws:
            frame = ExecInput.model_validate_json(message)
            with contextlib.suppress(OSError):  # the command closed its input, or ended
                if frame.tty_size is not None and tty:
                    size = struct.pack("HHHH", frame.tty_size.height, frame.tty_size.width, 0, 0)
                    fcntl.ioctl(fd, termios.TIOCSWINSZ, size)
                if frame.stdin and not stdin.closed:
                    await _write(fd, frame.stdin)
                if frame.close and not stdin.closed:
                    if tty:
                        await _write(fd, EOT)
                    else:
                        stdin.close()
    finally:
        _kill(proc)


async def _write(fd: int, data: bytes) -> None:
    while data:
        try:
            data = data[os.write(fd, data) :]
        except BlockingIOError:
            await _ready(fd, write=True)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """The command, unless it has ended, and its process group (its session, with a tty)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
