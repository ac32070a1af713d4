"""Talking to registries through skopeo: read a manifest, copy an image into an OCI layout.

skopeo's failures are turned into the typed errors of `image_errors`, worded for users.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from shoal.build.image_errors import (
    AuthenticationRequired,
    ImageError,
    ImageNotFound,
    RegistryUnreachable,
)
from shoal.build.reference import ImageRef
from shoal.build.registry_auth import AuthFile

INSPECT_TIMEOUT_S = 120
COPY_TIMEOUT_S = 1800

# What skopeo (containers/image) says, matched as words once the image's name is taken out.
_UNAUTHORIZED = re.compile(r"\b(unauthorized|authentication required|denied)\b")
_NOT_FOUND = re.compile(r"\b(manifest unknown|name unknown|not found)\b")
_UNREACHABLE = re.compile(
    r"\b(connection refused|no such host|timeout|timed out|tls|x509|network is unreachable"
    r"|connection reset|http response to https client|eof)\b"
)


@dataclass(frozen=True)
class Remote:
    """An image in a registry, and how to reach that registry."""

    ref: ImageRef
    tls_verify: bool
    auth: AuthFile | None  # None: anonymous (the host's stored credentials are not used)
    tmpdir: Path  # for skopeo's temporary files


def inspect_raw(remote: Remote, source: str) -> bytes:
    """The manifest (or index) `source` names, byte for byte as the registry serves it."""
    return _run(remote, ["inspect", "--raw", *_access(remote, ""), source], INSPECT_TIMEOUT_S)


def copy_to_layout(remote: Remote, source: str, layout: Path, tag: str) -> None:
    """Copy `source` into the OCI layout `layout` (created if missing) under `tag`."""
    _run(
        remote,
        ["copy", "--quiet", *_access(remote, "src-"), source, f"oci:{layout}:{tag}"],
        COPY_TIMEOUT_S,
    )


def _access(remote: Remote, prefix: str) -> list[str]:
    tls = f"--{prefix}tls-verify={'true' if remote.tls_verify else 'false'}"
    if remote.auth is None:
        return [tls, f"--{prefix}no-creds"]
    return [tls, f"--{prefix}authfile", remote.auth.path]


def _run(remote: Remote, args: list[str], timeout: float) -> bytes:
    env = {**os.environ, "TMPDIR": str(remote.tmpdir)}
    fds = (remote.auth.fd,) if remote.auth else ()
    try:
        done = subprocess.run(
            ["skopeo", *args],
            capture_output=True,
            timeout=timeout,
            env=env,
            pass_fds=fds,
            check=False,
        )
    except FileNotFoundError:
        raise ImageError("skopeo is not installed: run scripts/install-system-deps") from None
    except subprocess.TimeoutExpired:
        raise RegistryUnreachable(
            f"registry unreachable: {remote.ref.registry} (no answer in {timeout:.0f} s)"
        ) from None
    if done.returncode != 0:
        raise classify(remote, done.stderr.decode(errors="replace"))
    return done.stdout


def classify(remote: Remote, stderr: str) -> ImageError:
    """The typed error for skopeo's complaint `stderr` about `remote`."""
    detail = _detail(stderr)
    registry, image = remote.ref.registry, str(remote.ref)
    words = detail.replace(image, "IMAGE").replace(remote.ref.name, "IMAGE")
    words = words.replace(f"manifest {remote.ref.tag}", "manifest TAG").replace(registry, "HOST")
    words = words.lower()
    if _UNAUTHORIZED.search(words):
        if remote.auth is None:
            return AuthenticationRequired(
                f"authentication required for registry {registry}: set image_registry_secret"
            )
        return AuthenticationRequired(
            f"registry {registry} refused the credentials of image_registry_secret for {image}"
        )
    if _NOT_FOUND.search(words):
        return ImageNotFound(f"image {image} not found in registry")
    if _UNREACHABLE.search(words):
        return RegistryUnreachable(f"registry unreachable: {registry} ({detail})")
    return ImageError(f"pulling image {image} failed: {detail}")


_FATAL = re.compile(r'msg="(?P<msg>(?:[^"\\]|\\.)*)"')
_PREFIX = re.compile(r'^(?:Error parsing image name "[^"]*"|initializing source \S+):\s*')


def _detail(stderr: str) -> str:
    """skopeo's last complaint, without its logging dress and the echoed image name."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if not lines:
        return "skopeo failed without a message"
    last = lines[-1]
    match = _FATAL.search(last)
    message = match.group("msg").replace('\\"', '"') if match else last
    return _PREFIX.sub("", message)
