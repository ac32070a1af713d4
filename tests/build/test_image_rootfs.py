"""Reading an image's files as the image sees them, never the host's."""

from __future__ import annotations

import os

import pytest

from shoal.build.image_errors import UnsupportedImage
from shoal.build.rootfs import MAX_FILE_BYTES, read_text, read_users, resolve


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "usr" / "lib" / "passwd").write_text("app:x:1:2::/h:/bin/sh\n")
    (tmp_path / "host-secret").write_text("host data")
    return root


def test_plain_file(root):
    (root / "etc" / "group").write_text("g:x:5:\n")
    assert read_text(root, "/etc/group") == "g:x:5:\n"
    assert read_text(root, "etc/./group") == "g:x:5:\n"
    assert read_text(root, "/etc/missing") is None
    assert read_text(root, "/etc") is None  # a directory is no file


def test_absolute_symlink_stays_inside(root):
    (root / "etc" / "passwd").symlink_to("/usr/lib/passwd")
    assert read_text(root, "/etc/passwd") == "app:x:1:2::/h:/bin/sh\n"
    assert resolve(root, "/etc/passwd") == root / "usr" / "lib" / "passwd"


def test_escapes_are_clamped_to_the_root(root):
    (root / "etc" / "passwd").symlink_to("../../../../host-secret")
    (root / "etc" / "group").symlink_to(str(root.parent / "host-secret"))
    assert read_text(root, "/etc/passwd") is None
    assert read_text(root, "/etc/group") is None
    assert read_text(root, "/../host-secret") is None


def test_symlinked_directory(root):
    os.symlink("usr/lib", root / "lib")
    assert read_text(root, "/lib/passwd") == "app:x:1:2::/h:/bin/sh\n"


def test_symlink_loop(root):
    (root / "etc" / "a").symlink_to("b")
    (root / "etc" / "b").symlink_to("a")
    assert resolve(root, "/etc/a") is None
    assert read_text(root, "/etc/a") is None


def test_too_large(root):
    (root / "etc" / "passwd").write_bytes(b"x" * (MAX_FILE_BYTES + 1))
    with pytest.raises(UnsupportedImage, match="/etc/passwd in the image is larger"):
        read_text(root, "/etc/passwd")


def test_read_users(root):
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    users = read_users(root)
    assert (users.passwd, users.group) == ("root:x:0:0::/root:/bin/sh\n", None)
