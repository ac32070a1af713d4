"""cgroup detection and the v2 file protocol, against fake trees (this host runs v1, which the
sandbox tests exercise for real)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.runtime.cgroups import CgroupVersion, Limits, detect, limits_for
from shoal.runtime.driver import Resources, SandboxUnavailable

HYBRID = """\
30 23 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec shared:10 - cgroup2 cgroup2 rw
33 30 0:29 / /sys/fs/cgroup/cpu rw shared:13 - cgroup cgroup rw,cpu
34 30 0:30 / /sys/fs/cgroup/cpuacct rw shared:14 - cgroup cgroup rw,cpuacct
35 30 0:31 / /sys/fs/cgroup/memory rw shared:15 - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/pids rw shared:16 - cgroup cgroup rw,pids
37 30 0:33 / /sys/fs/cgroup/freezer rw shared:17 - cgroup cgroup rw,freezer
"""


def write_mountinfo(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mountinfo"
    path.write_text(text)
    return path


def test_limits_from_resources():
    assert limits_for(Resources(0.25, 256, 1024, pids=100)) == Limits(25_000, 256 << 20, 100)
    assert limits_for(Resources(2, 512, 1024)).cpu_quota_us == 200_000
    assert limits_for(Resources(0.001, 64, 64)).cpu_quota_us == 1_000  # the kernel's minimum


def test_detect_prefers_v1_controllers_on_a_hybrid_host(tmp_path):
    hierarchy = detect(write_mountinfo(tmp_path, HYBRID))
    assert hierarchy.version is CgroupVersion.V1
    cgroup = hierarchy.cgroup("shoal", "i1")
    assert cgroup.dirs["memory"] == Path("/sys/fs/cgroup/memory/shoal/i1")
    assert cgroup.procs_files()[0].name == "cgroup.procs"
    assert len(cgroup.procs_files()) == 5


def test_detect_handles_co_mounted_controllers(tmp_path):
    text = HYBRID.replace(
        "/sys/fs/cgroup/cpu rw shared:13 - cgroup cgroup rw,cpu",
        "/sys/fs/cgroup/cpu,cpuacct rw shared:13 - cgroup cgroup rw,cpu,cpuacct",
    )
    text = "\n".join(line for line in text.splitlines() if "cpuacct rw shared:14" not in line)
    cgroup = detect(write_mountinfo(tmp_path, text)).cgroup("shoal", "i1")
    assert cgroup.dirs["cpu"] == cgroup.dirs["cpuacct"]
    assert len(cgroup.procs_files()) == 4  # one write per distinct directory


def test_detect_pure_v2(tmp_path):
    root = tmp_path / "cg"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    info = write_mountinfo(tmp_path, f"25 1 0:22 / {root} rw - cgroup2 cgroup2 rw\n")
    hierarchy = detect(info)
    assert hierarchy.version is CgroupVersion.V2
    assert hierarchy.cgroup("shoal", "i1").dirs == {"": root / "shoal" / "i1"}


def test_detect_without_usable_controllers_says_what_is_missing(tmp_path):
    root = tmp_path / "cg"
    root.mkdir()
    (root / "cgroup.controllers").write_text("hugetlb\n")  # this host's empty-ish v2 tree
    info = write_mountinfo(tmp_path, f"25 1 0:22 / {root} rw - cgroup2 cgroup2 rw\n")
    with pytest.raises(SandboxUnavailable, match="memory"):
        detect(info)


@pytest.fixture
def v2(tmp_path):
    """A fake unified tree with the files the kernel would have made."""
    root = tmp_path / "cg"
    (root / "shoal" / "i1").mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu io memory pids\n")
    for directory in (root, root / "shoal"):
        (directory / "cgroup.subtree_control").write_text("io\n")
    leaf = root / "shoal" / "i1"
    for name in ("cpu.max", "memory.max", "memory.swap.max", "pids.max", "cgroup.freeze"):
        (leaf / name).write_text("")
    info = write_mountinfo(tmp_path, f"25 1 0:22 / {root} rw - cgroup2 cgroup2 rw\n")
    return detect(info), root, leaf


def test_v2_prepare_enables_controllers_down_to_the_parent(v2):
    hierarchy, root, _ = v2
    hierarchy.prepare("shoal")
    for directory in (root, root / "shoal"):
        # a fake file keeps the last write; the kernel would add these to "io"
        assert (directory / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"


def test_v2_limits(v2):
    hierarchy, _, leaf = v2
    hierarchy.cgroup("shoal", "i1").create(Limits(50_000, 128 << 20, 64))
    assert (leaf / "cpu.max").read_text() == "50000 100000"
    assert (leaf / "memory.max").read_text() == str(128 << 20)
    assert (leaf / "memory.swap.max").read_text() == "0"  # swap may not bypass the limit
    assert (leaf / "pids.max").read_text() == "64"


def test_v2_usage_oom_and_pids(v2):
    hierarchy, _, leaf = v2
    (leaf / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
    (leaf / "memory.current").write_text("1048576\n")
    (leaf / "memory.max").write_text("134217728\n")
    (leaf / "pids.current").write_text("3\n")
    (leaf / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n")
    (leaf / "cgroup.procs").write_text("10\n11\n")
    cgroup = hierarchy.cgroup("shoal", "i1")
    usage = cgroup.usage()
    assert (usage.cpu_seconds, usage.memory_bytes, usage.memory_limit_bytes, usage.pids) == (
        2.5,
        1 << 20,
        128 << 20,
        3,
    )
    assert cgroup.oom_kills() == 1
    assert cgroup.pids() == {10, 11}


def test_v2_freeze_writes_cgroup_freeze_and_waits_for_the_event(v2):
    hierarchy, _, leaf = v2
    cgroup = hierarchy.cgroup("shoal", "i1")
    (leaf / "cgroup.events").write_text("populated 1\nfrozen 1\n")  # as the kernel reports it
    cgroup.freeze()
    assert (leaf / "cgroup.freeze").read_text() == "1"
    assert cgroup.is_frozen()
    (leaf / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    cgroup.thaw()
    assert (leaf / "cgroup.freeze").read_text() == "0"


def test_v2_kill_all_uses_cgroup_kill(v2, monkeypatch):
    hierarchy, _, leaf = v2
    cgroup = hierarchy.cgroup("shoal", "i1")
    (leaf / "cgroup.procs").write_text("10\n")
    (leaf / "cgroup.kill").write_text("")
    writes = []

    def kernel_kills(path, value):
        writes.append((path.name, value))
        (leaf / "cgroup.procs").write_text("")  # the kernel empties it

    monkeypatch.setattr("shoal.runtime.cgroups._write", kernel_kills)
    cgroup.kill_all()
    assert writes == [("cgroup.kill", 1)]
