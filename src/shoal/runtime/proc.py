"""A process's identity from /proc: a pid alone can be reused once its process is gone."""

from __future__ import annotations

from pathlib import Path

_STARTTIME = 19  # field 22 of /proc/PID/stat, counted after the ")" that ends the comm field


def start_time(pid: int) -> int | None:
    """When `pid` started (clock ticks after boot); None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):  # dead, waiting to be reaped
        return None
    return int(fields[_STARTTIME])


def is_running(pid: int | None, started: int | None) -> bool:
    return pid is not None and started is not None and start_time(pid) == started
