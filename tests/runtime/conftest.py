"""Real sandboxes from a root file system built here: the host's static busybox and its applets.

All sandboxes of a session share one state directory, address pool and cgroup parent, so a
test can hand the state directory to a second driver (as a restarted agent would). Every
test destroys what it started; the session checks that nothing was left behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.runtime.sandboxes import APPLETS, INDEX, POOL, Sandboxes

from shoal.runtime.sandbox import SandboxDriver

BUSYBOX = Path("/bin/busybox")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="real sandboxes need root (namespaces, cgroups, loop mounts)")
    for item in items:
        if "sandbox" in getattr(item, "fixturenames", ()):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not BUSYBOX.exists():
        pytest.fail("busybox-static is not installed: run scripts/install-system-deps")
    root = tmp_path_factory.mktemp("image") / "rootfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    (root / "www").mkdir()
    (root / "www" / "index.html").write_text(INDEX)
    (root / "etc").mkdir()
    (root / "etc" / "image-release").write_text("busybox test image\n")
    return root


@pytest.fixture(scope="session")
def state_dir(cgroup_parent: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="shoal-runtime-"))
    yield path
    if os.geteuid() == 0:  # a driver that keeps no spare networks deletes the ready ones
        SandboxDriver(path, address_pool=POOL, cgroup_parent=cgroup_parent, spare_networks=0)
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    shutil.rmtree(path, ignore_errors=True)
    assert not [m for m in mounts if str(path) in m], "the sandboxes left mounts behind"


@pytest.fixture(scope="session")
def cgroup_parent() -> Iterator[str]:
    name = f"shoal-test-{uuid.uuid4().hex[:8]}"
    yield name
    base = Path("/sys/fs/cgroup")
    for directory in (base / name, *(controller / name for controller in base.iterdir())):
        if directory.is_dir():
            directory.rmdir()  # fails if an instance's cgroup was left inside


@pytest.fixture
def sandbox(state_dir: Path, cgroup_parent: str, rootfs: Path) -> Iterator[Sandboxes]:
    boxes = Sandboxes(state_dir, cgroup_parent, rootfs)
    yield boxes
    for instance_id in boxes.started:
        boxes.driver.destroy(instance_id)
