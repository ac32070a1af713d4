"""The one narrow interface every instance runtime implements.

An instance is a sandbox started from an unpacked image root. Sandboxes outlive the agent
that started them: a restarted agent `recover`s them, then keeps inspecting and stopping them,
so everything the driver needs to find a sandbox again lives in its state directory, and a
sandbox's output goes to files, never to a pipe held by the agent.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol


class SandboxError(RuntimeError):
    """A sandbox could not be created or acted on; the message says why."""


class SandboxUnavailable(SandboxError):
    """This host cannot run the driver at all (missing privileges or tools)."""


@dataclass(frozen=True)
class Resources:
    vcpu: float  # CPU quota, in cores
    memory_mb: int  # hard memory limit: the instance is OOM-killed beyond it
    disk_mb: int  # size of the writable scratch area
    pids: int = 512  # most tasks (processes and threads) at once


@dataclass(frozen=True)
class Bind:
    """A host path shown inside the sandbox. `target` is absolute, and its mountpoint must
    exist in the root (or in an earlier bind): bwrap can make one only in a writable
    parent, and the root is read-only."""

    source: Path
    target: str
    writable: bool = False


@dataclass(frozen=True)
class SandboxSpec:
    instance_id: str
    rootfs: Path  # the image's root filesystem, mounted read-only (shared between instances)
    argv: list[str]
    env: dict[str, str]
    resources: Resources
    workdir: str = "/"
    user: str | None = None  # numeric "uid[:gid]", as the image's USER resolves
    hostname: str = ""
    ports: tuple[int, ...] = ()  # the exposed ports
    binds: tuple[Bind, ...] = ()  # mounted over the root, in order
    egress: bool = False  # outbound connections to the outside world, through NAT (egress.py)
    mesh: str | None = None  # the organization's private mesh block it may reach (egress.py)
    # Root with the host root's capabilities, no user namespace: only for a trusted tool that
    # contains its own untrusted payload (buildah's chroot isolation, for Dockerfile builds).
    # Still its own pid, ipc, uts, mount and network namespaces, cgroup limits and root.
    privileged: bool = False


class Phase(StrEnum):
    RUNNING = "RUNNING"
    EXITED = "EXITED"
    MISSING = "MISSING"  # unknown to this driver, or destroyed


@dataclass(frozen=True)
class SandboxState:
    instance_id: str
    phase: Phase
    pid: int | None = None  # the sandbox's main process, as the host sees it
    address: str | None = None  # the instance's private IP, reachable from the host
    exit_code: int | None = None  # when EXITED: the code, or -N for a signal
    oom_killed: bool = False
    started_at: float | None = None  # epoch seconds
    frozen: bool = False  # RUNNING but held by the cgroup freezer (light sleep)
    rootfs: Path | None = None  # the image root it runs from


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float
    memory_bytes: int
    memory_limit_bytes: int
    pids: int


@dataclass(frozen=True)
class LogFiles:
    stdout: Path
    stderr: Path


@dataclass(frozen=True)
class ExecRequest:
    instance_id: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    tty: bool = False


class Driver(Protocol):
    name: str

    def start(self, spec: SandboxSpec) -> SandboxState:
        """Create and start the sandbox; returns once its main process runs."""
        ...

    def resume(self, spec: SandboxSpec) -> SandboxState:
        """Start a stopped sandbox's command again in what it kept (network, cgroup, scratch):
        deep sleep's wake. `spec` is the one it was started with, but for its resources."""
        ...

    def limit(self, instance_id: str, resources: Resources) -> None:
        """Change a sandbox's limits in place."""
        ...

    def inspect(self, instance_id: str) -> SandboxState: ...

    def stop(self, instance_id: str, grace_seconds: float) -> SandboxState:
        """SIGTERM the sandbox's processes, SIGKILL them after the grace period."""
        ...

    def destroy(self, instance_id: str) -> None:
        """Remove everything the sandbox had (network, cgroups, scratch, state). Idempotent."""
        ...

    def recover(self) -> list[SandboxState]:
        """The sandboxes this driver knows of, running or exited, after an agent restart."""
        ...

    def usage(self, instance_id: str) -> Usage: ...

    def logs(self, instance_id: str) -> LogFiles: ...

    def exec(self, request: ExecRequest) -> subprocess.Popen[bytes]:
        """Run a command inside a running sandbox (its namespaces, cgroup and root)."""
        ...

    def freeze(self, instance_id: str) -> None:
        """Pause every process of the sandbox in place (light sleep); memory is kept."""
        ...

    def thaw(self, instance_id: str) -> None:
        """Resume a frozen sandbox."""
        ...
