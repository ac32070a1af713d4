"""Registry credentials, and handing them to skopeo without a file on disk or a word in argv.

skopeo reads credentials from an "auth file" (Docker's config.json format). Ours lives in a
memfd: skopeo opens it as /dev/fd/N, nothing reaches the disk, and `ps` shows only the path.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from shoal.build.image_errors import AuthenticationRequired


@dataclass(frozen=True)
class RegistryCredentials:
    username: str
    password: str = field(repr=False)


def credentials_from_secret(kind: str, config: Mapping[str, Any]) -> RegistryCredentials:
    """The credentials a Koyeb registry secret holds (`kind` is its `*_registry` field).

    Google's registries take a service account key as the password of user `_json_key`.
    """
    gcp = kind == "gcp_container_registry"
    username = "_json_key" if gcp else config.get("username")
    password = config.get("keyfile_content" if gcp else "password")
    if not isinstance(username, str) or not isinstance(password, str) or not password:
        raise AuthenticationRequired(
            f"the image_registry_secret ({kind}) has no username and password"
        )
    return RegistryCredentials(username, password)


@dataclass(frozen=True)
class AuthFile:
    path: str  # what to give skopeo's --authfile
    fd: int  # to pass to the child (subprocess pass_fds)


@contextmanager
def auth_file(registry: str, credentials: RegistryCredentials) -> Iterator[AuthFile]:
    """An in-memory auth file granting `credentials` for `registry`, closed on exit."""
    token = base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()
    fd = os.memfd_create("shoal-registry-auth", os.MFD_CLOEXEC)
    try:
        with open(fd, "wb", closefd=False) as out:
            out.write(json.dumps({"auths": {registry: {"auth": token}}}).encode())
        yield AuthFile(f"/dev/fd/{fd}", fd)
    finally:
        os.close(fd)
