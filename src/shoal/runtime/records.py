"""What the driver keeps on disk for each instance, so that a restarted agent finds it again.

`<state>/instances/<id>/` holds the record (instance.json, written before any resource is
made, so `destroy` can undo a start that died half-way), bwrap's status file, the output
logs, and the scratch area's image and mount point. The record holds the environment, so
the directory and the record are private to root.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from shoal.runtime.cgroups import Cgroup, CgroupVersion
from shoal.runtime.netns import Network


@dataclass(frozen=True)
class InstanceFiles:
    root: Path

    @property
    def record(self) -> Path:
        return self.root / "instance.json"

    @property
    def status(self) -> Path:
        return self.root / "bwrap-status.json"

    @property
    def stdout(self) -> Path:
        return self.root / "stdout.log"

    @property
    def stderr(self) -> Path:
        return self.root / "stderr.log"

    @property
    def scratch_image(self) -> Path:
        return self.root / "scratch.img"

    @property
    def scratch(self) -> Path:
        return self.root / "scratch"


@dataclass(frozen=True)
class Record:
    instance_id: str
    slot: int  # the address lease
    address: str
    netns: str
    veth: str
    cgroup_version: str  # a CgroupVersion
    cgroup_dirs: dict[str, str]
    uid: int
    gid: int
    workdir: str
    env: dict[str, str] = field(default_factory=dict)
    rootfs: str = ""  # the image root it runs from (so its image is kept while it runs)
    pid: int | None = None  # bwrap's monitor, once started
    pid_start: int | None = None  # its start time (clock ticks after boot): tells it from a reuse
    started_at: float | None = None

    @property
    def network(self) -> Network:
        return Network(self.netns, self.veth)

    @property
    def cgroup(self) -> Cgroup:
        dirs = {name: Path(d) for name, d in self.cgroup_dirs.items()}
        return Cgroup(CgroupVersion(self.cgroup_version), dirs)

    def started(self, pid: int, pid_start: int, at: float) -> Record:
        return replace(self, pid=pid, pid_start=pid_start, started_at=at)

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(self), f)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> Record | None:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        known = {f.name for f in fields(cls)}  # a record written by another version
        return cls(**{k: v for k, v in data.items() if k in known})
