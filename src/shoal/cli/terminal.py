"""This terminal (or these pipes) wired to a command running in an instance."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import termios
import threading
import tty as ttys
from collections.abc import Iterator
from types import FrameType

from shoal.client.streams import ExecChannel

CHUNK = 4096


@contextlib.contextmanager
def _raw(fd: int) -> Iterator[None]:
    """Keys go to the remote terminal as typed (Ctrl-C included); restored after."""
    saved = termios.tcgetattr(fd)
    ttys.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _send_size(channel: ExecChannel) -> None:
    size = shutil.get_terminal_size()
    channel.resize(size.lines, size.columns)


def _pump_stdin(channel: ExecChannel, fd: int) -> None:
    with contextlib.suppress(OSError):
        while data := os.read(fd, CHUNK):
            channel.send_stdin(data)
    channel.send_stdin(b"", close=True)


def attach(channel: ExecChannel, tty: bool) -> int:
    """Relay stdin to the command and its output here until it exits; its exit code."""
    stdin = sys.stdin.fileno()
    local_tty = tty and os.isatty(stdin)
    with _raw(stdin) if local_tty else contextlib.nullcontext():
        if local_tty:
            _send_size(channel)

            def resized(_sig: int, _frame: FrameType | None) -> None:
                _send_size(channel)

            signal.signal(signal.SIGWINCH, resized)
        threading.Thread(target=_pump_stdin, args=(channel, stdin), daemon=True).start()
        exit_code = 0
        for out in channel:
            for data, stream in ((out.stdout, sys.stdout), (out.stderr, sys.stderr)):
                if data:
                    stream.buffer.write(data)
                    stream.flush()
            exit_code = out.exit_code or 0
    return exit_code
