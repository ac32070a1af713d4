"""An instance's cgroup: limits, usage, OOM kills, freezer, kill-all; v1 and v2 in this module only.

Every instance gets `<parent>/<instance_id>` in each controller it needs (v1: cpu, cpuacct,
memory, pids, freezer, each its own mount or co-mounted; v2: one directory in the unified
tree). Which version a host uses is detected from /proc/self/mountinfo: v1 wins when all five
controllers are mounted as v1 (that includes "hybrid" hosts, whose v2 tree holds no
controllers); otherwise a v2 mount offering cpu, memory and pids. The freezer is a
controller on v1 and built into every v2 cgroup.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from shoal.runtime.driver import Resources, SandboxUnavailable, Usage

CPU_PERIOD_US = 100_000
_MIN_CPU_QUOTA_US = 1_000  # the kernel refuses quotas under 1 ms
_V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids", "freezer")
_V2_CONTROLLERS = ("cpu", "memory", "pids")
_V2 = ""  # the key of the single directory a v2 cgroup has in `Cgroup.dirs`
_SETTLE_S = 2.0  # how long freezing or emptying a cgroup may take before it is an error


class CgroupVersion(StrEnum):
    V1 = "v1"
    V2 = "v2"


@dataclass(frozen=True)
class Limits:
    cpu_quota_us: int
    memory_bytes: int
    pids: int
    cpu_period_us: int = CPU_PERIOD_US


def limits_for(resources: Resources) -> Limits:
    quota = max(_MIN_CPU_QUOTA_US, round(resources.vcpu * CPU_PERIOD_US))
    return Limits(quota, resources.memory_mb * 1024 * 1024, resources.pids)


@dataclass(frozen=True)
class Hierarchy:
    """Where this host mounts its controllers: v1 one directory each, v2 the unified root."""

    version: CgroupVersion
    mounts: dict[str, Path]

    def prepare(self, parent: str) -> None:
        """Create the parent of all instance cgroups; on v2 let it hand controllers down."""
        if self.version is CgroupVersion.V1:
            for mount in self.mounts.values():
                (mount / parent).mkdir(parents=True, exist_ok=True)
            return
        # A v2 cgroup gets a controller only if its parent lists it in cgroup.subtree_control,
        # so enable them from the root down to `parent` (which holds no process itself).
        directory = self.mounts[_V2]
        for part in ("", *Path(parent).parts):
            directory = directory / part
            directory.mkdir(exist_ok=True)
            control = directory / "cgroup.subtree_control"
            enabled = control.read_text().split()
            missing = [f"+{name}" for name in _V2_CONTROLLERS if name not in enabled]
            if missing:
                _write(control, " ".join(missing))

    def cgroup(self, parent: str, instance_id: str) -> Cgroup:
        dirs = {name: mount / parent / instance_id for name, mount in self.mounts.items()}
        return Cgroup(self.version, dirs)


def detect(mountinfo: Path = Path("/proc/self/mountinfo")) -> Hierarchy:
    v1: dict[str, Path] = {}
    v2: list[Path] = []
    for line in mountinfo.read_text().splitlines():
        fields, _, tail = line.partition(" - ")
        mountpoint = Path(_unescape(fields.split()[4]))
        fstype, _source, superopts = tail.split()[:3]
        if fstype == "cgroup":
            for option in superopts.split(","):
                if option in _V1_CONTROLLERS:
                    v1[option] = mountpoint
        elif fstype == "cgroup2":
            v2.append(mountpoint)
    if all(name in v1 for name in _V1_CONTROLLERS):
        return Hierarchy(CgroupVersion.V1, v1)
    for mount in v2:
        offered = (mount / "cgroup.controllers").read_text().split()
        if all(name in offered for name in _V2_CONTROLLERS):
            return Hierarchy(CgroupVersion.V2, {_V2: mount})
    raise SandboxUnavailable(
        "no cgroup hierarchy offers the controllers the sandbox needs to enforce limits "
        f"(v1: {', '.join(_V1_CONTROLLERS)}; v2: {', '.join(_V2_CONTROLLERS)})"
    )


def _unescape(path: str) -> str:  # mountinfo writes space, tab, newline and \ as \ooo
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


@dataclass(frozen=True)
class Cgroup:
    """One instance's cgroup: v1 keys `dirs` by controller, v2 has the single key ""."""

    version: CgroupVersion
    dirs: dict[str, Path]

    def _file(self, controller: str, name: str) -> Path:
        return self.dirs[_V2 if self.version is CgroupVersion.V2 else controller] / name

    def create(self, limits: Limits) -> None:
        for directory in set(self.dirs.values()):
            directory.mkdir(exist_ok=True)  # a stale one from a start that died is reused
        self.limit(limits)

    def limit(self, limits: Limits) -> None:
        """Set the limits, in place (also while its processes run)."""
        if self.version is CgroupVersion.V1:
            _write(self._file("cpu", "cpu.cfs_period_us"), limits.cpu_period_us)
            _write(self._file("cpu", "cpu.cfs_quota_us"), limits.cpu_quota_us)
            _write(self._file("memory", "memory.limit_in_bytes"), limits.memory_bytes)
            memsw = self._file("memory", "memory.memsw.limit_in_bytes")
            if memsw.exists():  # only with swap accounting; then swap can't bypass the limit
                _write(memsw, limits.memory_bytes)
        else:
            _write(self._file("cpu", "cpu.max"), f"{limits.cpu_quota_us} {limits.cpu_period_us}")
            _write(self._file("memory", "memory.max"), limits.memory_bytes)
            swap = self._file("memory", "memory.swap.max")
            if swap.exists():
                _write(swap, 0)
        _write(self._file("pids", "pids.max"), limits.pids)

    def exists(self) -> bool:
        return any(d.is_dir() for d in self.dirs.values())

    def procs_files(self) -> list[Path]:
        """The files a process writes its pid to, to join this cgroup in every controller."""
        return [d / "cgroup.procs" for d in sorted(set(self.dirs.values()))]

    def pids(self) -> set[int]:
        try:
            text = self._file("pids", "cgroup.procs").read_text()
        except FileNotFoundError:
            return set()
        return {int(pid) for pid in text.split()}

    def usage(self) -> Usage:
        if self.version is CgroupVersion.V1:
            cpu = int(_read(self._file("cpuacct", "cpuacct.usage"))) / 1e9
            memory = int(_read(self._file("memory", "memory.usage_in_bytes")))
            limit = _read(self._file("memory", "memory.limit_in_bytes"))
        else:
            cpu = _keyed(self._file("cpu", "cpu.stat"))["usage_usec"] / 1e6
            memory = int(_read(self._file("memory", "memory.current")))
            limit = _read(self._file("memory", "memory.max"))
        pids = int(_read(self._file("pids", "pids.current")))
        return Usage(cpu, memory, -1 if limit == "max" else int(limit), pids)

    def oom_kills(self) -> int:
        name = "memory.oom_control" if self.version is CgroupVersion.V1 else "memory.events"
        try:
            return _keyed(self._file("memory", name)).get("oom_kill", 0)
        except FileNotFoundError:
            return 0

    def is_frozen(self) -> bool:
        if self.version is CgroupVersion.V1:
            return _read(self._file("freezer", "freezer.state")) == "FROZEN"
        return _keyed(self._file("freezer", "cgroup.events")).get("frozen") == 1

    def freeze(self) -> None:
        self._set_frozen(True)

    def thaw(self) -> None:
        self._set_frozen(False)

    def _set_frozen(self, frozen: bool) -> None:
        deadline = time.monotonic() + _SETTLE_S
        while True:
            # v1 passes through FREEZING; writing FROZEN again retries the tasks that lagged.
            if self.version is CgroupVersion.V1:
                _write(self._file("freezer", "freezer.state"), "FROZEN" if frozen else "THAWED")
            else:
                _write(self._file("freezer", "cgroup.freeze"), int(frozen))
            if self.is_frozen() == frozen:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"cgroup {self.dirs} did not {'freeze' if frozen else 'thaw'}")
            time.sleep(0.001)

    def kill_all(self) -> None:
        """SIGKILL every process in the cgroup and wait until it is empty."""
        if not self.exists():
            return
        kill_file = self._file("pids", "cgroup.kill")
        deadline = time.monotonic() + _SETTLE_S
        while pids := self.pids():
            if self.version is CgroupVersion.V2 and kill_file.exists():
                _write(kill_file, 1)
            else:
                # Frozen, no process can fork while we kill; the kills land on thaw.
                self.freeze()
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.thaw()
            if time.monotonic() > deadline:
                raise TimeoutError(f"processes {sorted(pids)} outlived SIGKILL in {self.dirs}")
            time.sleep(0.005)

    def remove(self) -> None:
        deadline = time.monotonic() + _SETTLE_S
        for directory in set(self.dirs.values()):
            while True:
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as e:  # EBUSY while exiting tasks still hold it
                    if e.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)


def _read(path: Path) -> str:
    return path.read_text().strip()


def _write(path: Path, value: str | int) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def _keyed(path: Path) -> dict[str, int]:
    """A flat-keyed cgroup file ("name value" lines) as a dict."""
    pairs = (line.split() for line in path.read_text().splitlines())
    return {p[0]: int(p[1]) for p in pairs if len(p) == 2}
