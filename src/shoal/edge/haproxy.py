"""HAProxy on this machine: where it is, whether a configuration is good, how to run it."""

from __future__ import annotations

import grp
import os
import shutil
import subprocess
from pathlib import Path

ACCOUNT = "haproxy"  # made by Debian's package: HAProxy drops to it after binding


def binary() -> str | None:
    """HAProxy's executable (/usr/sbin is off the PATH of most non-root shells)."""
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")


def account() -> str | None:
    """The unprivileged account HAProxy should run as: Debian's `haproxy` when we are root,
    else none (HAProxy keeps the caller's)."""
    if os.geteuid() != 0:
        return None
    try:
        grp.getgrnam(ACCOUNT)
    except KeyError:
        return None
    return ACCOUNT


def check(haproxy: str, config: Path) -> None:
    """Raise ValueError with HAProxy's own words if it would refuse `config`."""
    done = subprocess.run(
        [haproxy, "-c", "-q", "-f", str(config)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise ValueError((done.stderr or done.stdout).strip())


def command(haproxy: str, config: Path, master_socket: Path | None = None) -> list[str]:
    """HAProxy in the foreground as a master process; with `master_socket`, the master's own
    command line listens there (its `reload` reloads seamlessly)."""
    master = ["-S", str(master_socket)] if master_socket else []
    return [haproxy, "-W", "-db", *master, "-f", str(config)]
