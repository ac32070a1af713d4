"""Reading files of an unpacked image as the image itself would see them.

Paths resolve inside the root: an absolute symlink points into the image, `..` stops at its
root, so a hostile image cannot make the agent read the host's files.
"""

from __future__ import annotations

import os
from pathlib import Path

from shoal.build.image_errors import UnsupportedImage
from shoal.core.process import UserDatabase

MAX_FILE_BYTES = 1 << 20
_MAX_SYMLINKS = 40


def read_text(rootfs: Path, path: str) -> str | None:
    """The contents of `path` in the image; None when the image has no such regular file."""
    resolved = resolve(rootfs, path)
    if resolved is None or resolved.is_symlink() or not resolved.is_file():
        return None
    with resolved.open("rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise UnsupportedImage(f"{path} in the image is larger than {MAX_FILE_BYTES} bytes")
    return data.decode(errors="replace")


def read_users(rootfs: Path) -> UserDatabase:
    return UserDatabase(
        passwd=read_text(rootfs, "/etc/passwd"), group=read_text(rootfs, "/etc/group")
    )


def resolve(rootfs: Path, path: str) -> Path | None:
    """`path` in the image, symlinks followed as chroot would; None past too many symlinks."""
    pending = _parts(path)
    current: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if current:
                current.pop()
            continue
        candidate = rootfs.joinpath(*current, part)
        if not candidate.is_symlink():
            current.append(part)
            continue
        hops += 1
        if hops > _MAX_SYMLINKS:
            return None
        target = os.readlink(candidate)
        if target.startswith("/"):
            current = []
        pending = _parts(target) + pending
    return rootfs.joinpath(*current)


def _parts(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]
