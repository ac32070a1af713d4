"""The bubblewrap side of a sandbox: its command line, a pure function of the spec, and the
status file bwrap keeps for it (`--json-status-fd` pointed at a file, not a pipe, so the exit
code is recorded even when no agent is there to wait for it).

The process tree is bwrap's monitor (the pid the driver records) → bwrap's init, pid 1 of
the sandbox (the status file's `child-pid`) → the instance's command. The sandbox always has
its own user namespace, which maps the instance's user (root if the image names none) to the
host's root, and every capability is dropped: root inside is no one special outside, and
the state directory can stay private to root. The cost: only that one uid is mapped, so
image files owned by another uid show as `nobody` inside and are reached through their
group and other permission bits. The network namespace is not bwrap's doing: the driver
starts bwrap already inside the instance's (see netns.py).
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from shoal.runtime.driver import SandboxSpec

# What bwrap mounts over inside the read-only image; each must exist in the image.
MOUNTPOINTS = ("proc", "dev", "tmp")
_HOST_NAME_MAX = 64
_SIGNAL_BASE = 128  # bwrap, like a shell, exits 128+N when its command died of signal N


@dataclass(frozen=True)
class Identity:
    uid: int
    gid: int


def identity(user: str | None) -> Identity:
    """The spec's numeric "uid[:gid]"; no user is root, a uid alone has group 0 (as Docker)."""
    if not user:
        return Identity(0, 0)
    uid, _, gid = user.partition(":")
    if not uid.isdigit() or (gid and not gid.isdigit()):
        raise ValueError(f"user must be numeric uid[:gid], got {user!r}")
    return Identity(int(uid), int(gid or 0))


def bwrap_options(spec: SandboxSpec, scratch: Path, status_fd: int) -> list[str]:
    """Everything but the command. They reach bwrap through `--args FD`, not its command line,
    which the sandbox can read as its pid 1's: they name host paths the instance has no
    business knowing."""
    hostname = (spec.hostname or spec.instance_id)[: _HOST_NAME_MAX - 1]
    who = identity(spec.user)
    user = ["--unshare-user", "--uid", str(who.uid), "--gid", str(who.gid), "--cap-drop", "ALL"]
    return [
        *([] if spec.privileged else user),
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup",
        "--hostname",
        hostname,
        "--new-session",  # no TIOCSTI into a terminal it could have inherited
        "--json-status-fd",
        str(status_fd),
        "--ro-bind",
        str(spec.rootfs),
        "/",
        *_binds(spec),  # over the read-only root: their mountpoints must exist in it
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--bind",
        str(scratch),
        "/tmp",
        "--chdir",
        spec.workdir,
    ]


def _binds(spec: SandboxSpec) -> list[str]:
    return [
        arg
        for bind in spec.binds
        for arg in ("--bind" if bind.writable else "--ro-bind", str(bind.source), bind.target)
    ]


def command_line(spec: SandboxSpec, options_fd: int, bwrap: str = "bwrap") -> list[str]:
    return [bwrap, "--args", str(options_fd), "--", *spec.argv]


def encode_options(options: list[str]) -> bytes:
    """The `--args` format: each argument followed by a NUL."""
    return b"".join(os.fsencode(option) + b"\0" for option in options)


@dataclass(frozen=True)
class Status:
    child_pid: int | None = None  # the sandbox's pid 1, as the host sees it
    exit_code: int | None = None  # the driver's convention: the code, or -N for signal N


def parse_status(text: str) -> Status:
    """bwrap writes one JSON object a line: `child-pid` (and namespace ids) once it has
    cloned the sandbox, `exit-code` when the sandbox is over."""
    child_pid = code = None
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line still being written
            continue
        child_pid = record.get("child-pid", child_pid)
        code = record.get("exit-code", code)
    return Status(child_pid, None if code is None else _signed(code))


def _signed(code: int) -> int:
    signum = code - _SIGNAL_BASE
    return -signum if 0 < signum <= signal.SIGRTMAX else code
