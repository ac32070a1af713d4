"""The node's stack: a root for sandboxes that run on the host's own userland instead of an
image's, as buildpack builds and the apps they make do.

A buildpack app runs on the node's stack: the host's Debian userland, read-only; the app and
its dependencies come as /workspace (and a build's cache as /cache). The root itself is a
small skeleton: mountpoints, the host's merged-/usr links (bin -> usr/bin...), and an /etc of
its own with users root and nobody, localhost, and a copy of the host's resolv.conf (a copy:
the host's may be a link into /run, or be replaced while the sandbox runs; a nameserver on
the host's loopback, such as systemd-resolved's, is out of a sandbox's reach). Over it,
`stack_binds` shows the host's /usr (and /bin, /lib... where they are not links into it), CA
certificates, OpenSSL's configuration, the alternatives and the loader's cache, read-only.
Nothing else of the host is there: no /root, /home, /var, /run, nor the rest of /etc (no
shadow, no /etc/ssl/private).

The skeleton is made in a temporary directory then renamed, so sandboxes starting at once
share one and none sees it half-made; it is named after its contents, so a changed
resolv.conf makes a new one for the sandboxes started from then on.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from shoal.runtime.driver import Bind

_USR_LINKS = ("bin", "lib", "lib64", "sbin")  # links into /usr, or directories on old layouts
_SHARED_ETC = (
    "/etc/ssl/certs",
    "/etc/ssl/openssl.cnf",
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/containers",  # buildah's configuration, for Dockerfile builds
)
# /sys, /run and /var/tmp: for Dockerfile builds (buildah mounts /sys into RUN steps, keeps
# its locks in /run and big temporary files in /var/tmp); the caller binds them.
_MOUNTPOINTS = ("proc", "dev", "tmp", "sys", "run", "var/tmp", "workspace", "cache")
_ETC = {
    "passwd": (
        "root:x:0:0:root:/root:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    ),
    "group": "root:x:0:\nnogroup:x:65534:\n",
    "hosts": "127.0.0.1 localhost\n",
    "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
}


def stack_binds() -> tuple[Bind, ...]:
    """The host's userland, read-only, as `stack_root` has mountpoints for it."""
    return tuple(Bind(Path(path), path) for path in _shared())


def stack_root(state_dir: Path) -> Path:
    """The skeleton root under `state_dir`, made if it is not there yet."""
    dirs, files, links = _skeleton()
    digest = hashlib.sha256(repr((dirs, files, links)).encode()).hexdigest()[:16]
    root = state_dir / f"stack-{digest}"
    if root.is_dir():
        return root
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".stack-", dir=state_dir))
    try:
        tmp.chmod(0o755)
        for name in dirs:
            (tmp / name).mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (tmp / name).write_text(text)
        for name, target in links.items():
            (tmp / name).symlink_to(target)
        tmp.rename(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if not root.is_dir():  # else another start made it first: rename refused to replace it
            raise
    return root


def _shared() -> list[str]:
    """The host paths a stack sandbox sees: those of /usr's and /etc's that the host has."""
    dirs = [f"/{name}" for name in _USR_LINKS if not os.path.islink(f"/{name}")]
    return [path for path in ("/usr", *dirs, *_SHARED_ETC) if os.path.exists(path)]


def _skeleton() -> tuple[list[str], dict[str, str], dict[str, str]]:
    """The root's directories, files (with their text) and links, relative to it."""
    dirs = [*_MOUNTPOINTS, "etc", "etc/ssl"]
    files = {f"etc/{name}": text for name, text in _ETC.items()}
    for path in _shared():  # mountpoints, directory or file like what goes over them
        if os.path.isdir(path):
            dirs.append(path[1:])
        else:
            files[path[1:]] = ""
    resolv = Path("/etc/resolv.conf")
    if resolv.exists():
        files["etc/resolv.conf"] = resolv.read_text()
    links = {name: os.readlink(f"/{name}") for name in _USR_LINKS if os.path.islink(f"/{name}")}
    return dirs, files, links
