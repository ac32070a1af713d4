"""An instance's writable scratch area: its own ext4 file system of `disk_mb`, loop-mounted.

Why a loop-mounted file system: it enforces the size by construction (a write past it fails
with ENOSPC) on any host file system, and only what is written takes host disk, since the
image is a sparse file. The alternatives fall short: a tmpfs is charged to the memory cgroup
of whoever writes it, so it would be a second memory limit, not a disk one; project quotas
need the state directory on XFS, or on ext4 mounted with `prjquota`, which the driver cannot
count on or change.

Formatting costs 5 to 35 ms, so each size is formatted once, into a template, and a new
area is a sparse copy of it (well under 1 ms for the few hundred KiB of metadata), mounted
through the loop device directly (kernel.py). The file system has no journal (the area dies
with its instance, so crash consistency is moot) and is mounted with `noinit_itable`, so
the kernel does not zero inode tables in the background and the file stays sparse. The
mount lives in the host's mount namespace, under the instance's state directory, so it
outlives the agent; `remove` undoes it all.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from shoal.runtime import kernel
from shoal.runtime.driver import SandboxError

_FLAGS = kernel.MS_NOSUID | kernel.MS_NODEV | kernel.MS_NOATIME


def create(templates: Path, image: Path, mountpoint: Path, size_mb: int) -> None:
    _sparse_copy(_template(templates, size_mb), image)
    mountpoint.mkdir()
    kernel.loop_mount(image, mountpoint, "ext4", _FLAGS, "noinit_itable")
    os.chmod(mountpoint, 0o1777)  # like /tmp: whatever user the instance runs as can write
    (mountpoint / "lost+found").rmdir()


def remove(image: Path, mountpoint: Path) -> None:
    """Unmount and delete the area; missing parts are fine (idempotent)."""
    # Lazy: the loop device is freed (autoclear) once no namespace uses the mount any more.
    kernel.unmount_lazy(mountpoint)
    if mountpoint.exists():
        mountpoint.rmdir()
    image.unlink(missing_ok=True)


def _template(templates: Path, size_mb: int) -> Path:
    template = templates / f"ext4-{size_mb}m.img"
    if template.exists():
        return template
    templates.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=templates, suffix=".tmp")
    partial = Path(name)
    with os.fdopen(fd, "wb") as f:
        f.truncate(size_mb * 1024 * 1024)
    result = subprocess.run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-m",
            "0",
            "-O",
            "^has_journal",
            "-E",
            "lazy_itable_init=1,nodiscard",
            str(partial),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        partial.unlink()
        raise SandboxError(f"scratch area: mkfs.ext4 failed: {result.stderr.strip()}")
    partial.replace(template)  # atomic: a concurrent start sees no half-made template
    return template


def _sparse_copy(source: Path, target: Path) -> None:
    """Copy only the data extents of `source`; the holes stay holes."""
    src = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            size = os.fstat(src).st_size
            os.ftruncate(dst, size)
            offset = 0
            while offset < size:
                try:
                    start = os.lseek(src, offset, os.SEEK_DATA)
                except OSError:  # ENXIO: nothing but a hole up to the end
                    break
                end = os.lseek(src, start, os.SEEK_HOLE)
                while start < end:
                    start += os.copy_file_range(src, dst, end - start, start, start)
                offset = end
        finally:
            os.close(dst)
    finally:
        os.close(src)
